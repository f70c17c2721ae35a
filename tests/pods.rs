//! Pods run as real containers on a real node: the seed article's steps with the real kubectl, checked on the
//! host afterwards for anything left behind (mounts, shims, runc containers, veths, cgroups, IPs, files).
//!
//! Every test starts its own isolated node (`Server::start_node`): its own bridge and Pod range, Pod egress off,
//! registries pointed at a closed loopback port.

use peapod_test_support::{fixture, Server};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn node() -> Server {
    Server::start_node(Path::new(env!("CARGO_BIN_EXE_peapod")), &[])
}

/// The STATUS column of `kubectl get pod`.
fn status_of(s: &Server, pod: &str) -> String {
    let out = s.kubectl(&["get", "pod", pod, "--no-headers"]);
    out.stdout.split_whitespace().nth(2).unwrap_or("").to_string()
}

fn wait_status(s: &Server, pod: &str, want: &str, secs: u64) {
    let ok = Server::eventually(Duration::from_secs(secs), || status_of(s, pod) == want);
    assert!(
        ok,
        "pod {pod} never showed {want}; now:\n{}\n{}",
        s.kubectl(&["get", "pod", pod, "-o", "wide"]).stdout,
        s.kubectl(&["describe", "pod", pod]).stdout
    );
}

fn jsonpath(s: &Server, pod: &str, path: &str) -> String {
    s.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")])
        .stdout
}

/// One HTTP GET over a plain TCP connection (the Pod's IP is reachable from the node).
fn http_get(ip: &str, port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().expect("address"),
        Duration::from_secs(5),
    )
    .expect("connect to the pod");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").expect("send request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn delete_all_and_check(s: &Server) {
    s.kubectl(&[
        "delete",
        "pods",
        "--all",
        "--grace-period=1",
        "--wait=true",
        "--timeout=90s",
    ])
    .ok();
    let gone = Server::eventually(Duration::from_secs(60), || {
        s.kubectl(&["get", "pods", "--no-headers"]).stdout.trim().is_empty()
    });
    assert!(gone, "pods remain: {}", s.kubectl(&["get", "pods"]).stdout);
    let node = s.node.as_ref().expect("a node server");
    let clean = Server::eventually(Duration::from_secs(20), || node.leaks(s.data_dir()).is_empty());
    if !clean {
        node.assert_no_leaks(s.data_dir());
    }
}

#[test]
fn seed_nginx_pod_runs_answers_http_and_goes_away() {
    let s = node();
    let mut watch = s.kubectl_spawn(&["get", "pods", "--watch", "--v=6"]);
    // The watch is open once kubectl logged its watch request (`--v=6` logs each request with its status).
    let mut err_text = String::new();
    if let Some(e) = watch.stderr.as_mut() {
        let mut byte = [0u8; 1];
        while !(err_text.contains("watch=true") && err_text.ends_with('\n')) {
            match e.read(&mut byte) {
                Ok(1) => err_text.push(byte[0] as char),
                _ => break,
            }
        }
    }
    assert!(err_text.contains("watch=true"), "{err_text}");
    s.kubectl(&["apply", "-f", fixture("nginx-pod.yaml").to_str().expect("path")])
        .ok();
    wait_status(&s, "nginx-pod", "Running", 60);
    let row = s.kubectl(&["get", "pod", "nginx-pod", "--no-headers"]).stdout;
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["1/1", "Running", "0"], "{row}");
    let wide = s.kubectl(&["get", "pods", "-o", "wide"]).ok().stdout;
    let ip = jsonpath(&s, "nginx-pod", "{.status.podIP}");
    let node = &s.node.as_ref().expect("node").node_name;
    assert!(ip.starts_with("10.244."), "pod IP {ip}");
    assert!(wide.contains(&ip) && wide.contains(node.as_str()), "{wide}");
    assert_eq!(jsonpath(&s, "nginx-pod", "{.status.podIPs[0].ip}"), ip);
    assert!(!jsonpath(&s, "nginx-pod", "{.status.hostIP}").is_empty());
    let page = http_get(&ip, 80, "/");
    assert!(page.contains("200 OK") && page.contains("Welcome to nginx"), "{page}");
    let describe = s.kubectl(&["describe", "pod", "nginx-pod"]).ok().stdout;
    for want in [
        "Successfully assigned default/nginx-pod to",
        "Container image \"nginx:1.21\" already present on machine",
        "Created container nginx",
        "Started container nginx",
        "Status:           Running",
    ] {
        assert!(describe.contains(want), "describe lacks {want:?}:\n{describe}");
    }
    let started = Instant::now();
    s.kubectl(&["delete", "pod", "nginx-pod"]).ok();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "nginx stops on SIGTERM well within its grace period"
    );
    let _ = watch.kill();
    let mut seen = String::new();
    if let Some(mut out) = watch.stdout.take() {
        let _ = out.read_to_string(&mut seen);
    }
    let mut err = String::new();
    if let Some(mut e) = watch.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = watch.wait();
    assert!(!seen.is_empty(), "the watch printed nothing; stderr: {err}");
    for want in ["Pending", "ContainerCreating", "Running"] {
        assert!(seen.contains(want), "watch never showed {want}:\n{seen}");
    }
    delete_all_and_check(&s);
}

#[test]
fn sidecar_shares_an_empty_dir_and_containers_share_localhost() {
    let s = node();
    s.kubectl(&[
        "apply",
        "-f",
        fixture("web-with-log-sidecar.yaml").to_str().expect("path"),
    ])
    .ok();
    let pair = r#"
apiVersion: v1
kind: Pod
metadata:
  name: two-on-localhost
spec:
  containers:
  - name: web
    image: nginx:1.21
  - name: client
    image: busybox:1.35
    command: ['sh', '-c', 'until wget -qO- http://localhost/ ; do sleep 1; done; sleep 3600']
  - name: second-binder
    image: nginx:1.21
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pair).ok();
    wait_status(&s, "web-with-logger", "Running", 60);
    let ip = jsonpath(&s, "web-with-logger", "{.status.podIP}");
    assert!(http_get(&ip, 80, "/").contains("200 OK"));
    let logged = Server::eventually(Duration::from_secs(20), || {
        s.kubectl(&["logs", "web-with-logger", "-c", "log-sidecar"])
            .stdout
            .contains("\"GET / HTTP/1.0\" 200")
    });
    assert!(
        logged,
        "{}",
        s.kubectl(&["logs", "web-with-logger", "-c", "log-sidecar"]).stdout
    );
    // The client reaches nginx over the Pod's shared localhost.
    let talked = Server::eventually(Duration::from_secs(30), || {
        s.kubectl(&["logs", "two-on-localhost", "-c", "client"])
            .stdout
            .contains("Welcome to nginx")
    });
    assert!(talked, "{}", s.kubectl(&["describe", "pod", "two-on-localhost"]).stdout);
    // A second container binding the same port in the same network namespace fails, as in Kubernetes.
    let clash = Server::eventually(Duration::from_secs(40), || {
        s.kubectl(&["logs", "two-on-localhost", "-c", "second-binder", "--previous"])
            .stdout
            .contains("bind() to 0.0.0.0:80 failed")
            || s.kubectl(&["logs", "two-on-localhost", "-c", "second-binder"])
                .stdout
                .contains("bind() to 0.0.0.0:80 failed")
    });
    assert!(clash, "{}", s.kubectl(&["describe", "pod", "two-on-localhost"]).stdout);
    // Both Pods have one IP each, different.
    assert_ne!(ip, jsonpath(&s, "two-on-localhost", "{.status.podIP}"));
    delete_all_and_check(&s);
}

#[test]
fn init_container_holds_the_pod_at_init_0_of_1() {
    let s = node();
    s.kubectl(&["apply", "-f", fixture("app-with-init.yaml").to_str().expect("path")])
        .ok();
    wait_status(&s, "app-with-init", "Init:0/1", 60);
    let describe = s.kubectl(&["describe", "pod", "app-with-init"]).ok().stdout;
    assert!(describe.contains("Init Containers:"), "{describe}");
    assert!(describe.contains("Started container wait-for-db"), "{describe}");
    assert!(
        !describe.contains("Started container app"),
        "the app must not start before its init container"
    );
    assert_eq!(jsonpath(&s, "app-with-init", "{.status.phase}"), "Pending");
    let init_then_app = r#"
apiVersion: v1
kind: Pod
metadata:
  name: init-then-app
spec:
  initContainers:
  - name: prepare
    image: busybox:1.35
    command: ['sh', '-c', 'echo prepared > /work/ready']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: busybox:1.35
    command: ['sh', '-c', 'cat /work/ready; sleep 3600']
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], init_then_app).ok();
    wait_status(&s, "init-then-app", "Running", 60);
    let logs_ok = Server::eventually(Duration::from_secs(10), || {
        s.kubectl(&["logs", "init-then-app"]).stdout.contains("prepared")
    });
    assert!(logs_ok);
    delete_all_and_check(&s);
}

#[test]
fn crash_loop_backs_off_and_previous_logs_show_the_last_run() {
    let s = node();
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: app
    image: busybox:1.35
    command: ['sh', '-c', 'echo "run at $(date +%s)"; exit 1']
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pod).ok();
    wait_status(&s, "crasher", "CrashLoopBackOff", 60);
    let restarts = |s: &Server| {
        jsonpath(s, "crasher", "{.status.containerStatuses[0].restartCount}")
            .parse::<i32>()
            .unwrap_or(0)
    };
    let first = restarts(&s);
    assert!(first >= 1);
    assert!(
        Server::eventually(Duration::from_secs(40), || restarts(&s) > first),
        "RESTARTS never grew"
    );
    let row = s.kubectl(&["get", "pod", "crasher", "--no-headers"]).stdout;
    assert!(row.contains("ago)"), "RESTARTS shows when: {row}");
    let prev = s.kubectl(&["logs", "crasher", "--previous"]).ok().stdout;
    assert!(prev.starts_with("run at "), "{prev}");
    let describe = s.kubectl(&["describe", "pod", "crasher"]).ok().stdout;
    for want in [
        "Last State:     Terminated",
        "Reason:       Error",
        "Exit Code:    1",
        "Back-off restarting failed container app in pod crasher_default(",
    ] {
        assert!(describe.contains(want), "describe lacks {want:?}:\n{describe}");
    }
    let waiting = jsonpath(&s, "crasher", "{.status.containerStatuses[0].state.waiting.message}");
    assert!(waiting.is_empty() || waiting.starts_with("back-off "), "{waiting}");
    assert_eq!(jsonpath(&s, "crasher", "{.status.phase}"), "Running");
    delete_all_and_check(&s);
}

#[test]
fn unknown_image_is_err_image_pull_then_image_pull_back_off() {
    let s = node();
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: my-app
spec:
  containers:
  - name: app
    image: my-company/my-app:v1.0.0
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pod).ok();
    // Every status the Pod goes through, from a watch (a poll could miss a short one).
    let mut watch = s.kubectl_spawn(&["get", "pod", "my-app", "--watch", "--no-headers"]);
    let out = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen.contains("ErrImagePull") && seen.contains("ImagePullBackOff")) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            seen.insert(line.split_whitespace().nth(2).unwrap_or("").to_string());
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.contains("ErrImagePull") && seen.contains("ImagePullBackOff"),
        "statuses seen: {seen:?}"
    );
    let describe = s.kubectl(&["describe", "pod", "my-app"]).ok().stdout;
    for want in [
        "Pulling image \"my-company/my-app:v1.0.0\"",
        "Failed to pull image \"my-company/my-app:v1.0.0\":",
        "connection refused",
        "Error: ErrImagePull",
        "Back-off pulling image \"my-company/my-app:v1.0.0\"",
        "Error: ImagePullBackOff",
    ] {
        assert!(describe.contains(want), "describe lacks {want:?}:\n{describe}");
    }
    let logs = s.kubectl(&["logs", "my-app"]);
    assert!(logs.stderr.contains("is waiting to start"), "{logs:?}");
    delete_all_and_check(&s);
}

#[test]
fn more_memory_than_the_node_has_stays_pending_with_the_reason() {
    let s = node();
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hungry
spec:
  containers:
  - name: app
    image: busybox:1.35
    command: ['sleep', '3600']
    resources:
      requests:
        memory: 4000Gi
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pod).ok();
    let said = Server::eventually(Duration::from_secs(30), || {
        s.kubectl(&["describe", "pod", "hungry"])
            .stdout
            .contains("FailedScheduling")
    });
    let describe = s.kubectl(&["describe", "pod", "hungry"]).ok().stdout;
    assert!(said, "{describe}");
    assert!(
        describe.contains("0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available:"),
        "{describe}"
    );
    assert_eq!(status_of(&s, "hungry"), "Pending");
    assert_eq!(
        jsonpath(&s, "hungry", "{.status.conditions[?(@.type==\"PodScheduled\")].reason}"),
        "Unschedulable"
    );
    delete_all_and_check(&s);
}

#[test]
fn restart_policy_never_ends_completed_or_error_and_delete_keeps_grace() {
    let s = node();
    let pods = r#"
apiVersion: v1
kind: Pod
metadata:
  name: once-ok
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox:1.35
    command: ['sh', '-c', 'echo done']
---
apiVersion: v1
kind: Pod
metadata:
  name: once-bad
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox:1.35
    command: ['sh', '-c', 'exit 3']
---
apiVersion: v1
kind: Pod
metadata:
  name: stubborn
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: busybox:1.35
    command: ['sleep', '3600']
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pods).ok();
    wait_status(&s, "once-ok", "Completed", 60);
    wait_status(&s, "once-bad", "Error", 60);
    assert_eq!(jsonpath(&s, "once-ok", "{.status.phase}"), "Succeeded");
    assert_eq!(jsonpath(&s, "once-bad", "{.status.phase}"), "Failed");
    assert_eq!(
        jsonpath(
            &s,
            "once-bad",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "3"
    );
    assert_eq!(s.kubectl(&["logs", "once-ok"]).ok().stdout, "done\n");
    wait_status(&s, "stubborn", "Running", 60);
    // `sleep` as PID 1 ignores SIGTERM: the delete waits out the 3 s grace period, then SIGKILL ends it.
    let started = Instant::now();
    s.kubectl(&["delete", "pod", "stubborn"]).ok();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "deleted before the grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the grace period was not enforced: {took:?}"
    );
    delete_all_and_check(&s);
}

/// `(pod, container ID → host PID)` from the OCI runtime's own state, not from Peapod.
fn runtime_pids(s: &Server) -> std::collections::BTreeMap<String, String> {
    let node = s.node.as_ref().expect("node");
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(node.run_dir.join("runc"))
        .args(["list", "--format", "json"])
        .output()
        .expect("runc list");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["id"].as_str().unwrap_or("").to_string(), c["pid"].to_string()))
        .collect()
}

#[test]
fn agent_kill_9_keeps_every_container_running() {
    let mut s = node();
    let mut yaml = String::new();
    for i in 0..20 {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: keep-{i}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    command: ['sh', '-c', 'trap \"exit 0\" TERM; sleep 3600 & wait']\n---\n"
        ));
    }
    s.kubectl_stdin(&["apply", "-f", "-"], &yaml).ok();
    let all_running = Server::eventually(Duration::from_secs(120), || {
        let out = s.kubectl(&["get", "pods", "--no-headers"]).stdout;
        out.lines().filter(|l| l.contains(" Running ")).count() == 20
    });
    assert!(all_running, "{}", s.kubectl(&["get", "pods"]).stdout);
    let before = runtime_pids(&s);
    assert_eq!(before.len(), 20);
    s.kill9();
    // The containers do not depend on the agent.
    assert_eq!(runtime_pids(&s), before);
    s.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        runtime_pids(&s),
        before,
        "a container was restarted after the agent came back"
    );
    let out = s.kubectl(&["get", "pods", "--no-headers"]).ok().stdout;
    for l in out.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(&cols[1..4], &["1/1", "Running", "0"], "{l}");
    }
    // The adopted Pods still obey the agent: one is deleted cleanly, the rest too.
    s.kubectl(&["delete", "pod", "keep-0"]).ok();
    assert_eq!(runtime_pids(&s).len(), 19);
    delete_all_and_check(&s);
}

#[test]
fn churn_of_200_pods_leaves_nothing_behind() {
    let s = node();
    for batch in 0..10 {
        let mut yaml = String::new();
        for i in 0..20 {
            yaml.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: churn-{batch}-{i}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    command: ['sh', '-c', 'trap \"exit 0\" TERM; sleep 3600 & wait']\n---\n"
            ));
        }
        s.kubectl_stdin(&["apply", "-f", "-"], &yaml).ok();
        let running = Server::eventually(Duration::from_secs(120), || {
            s.kubectl(&["get", "pods", "--no-headers"])
                .stdout
                .lines()
                .filter(|l| l.contains(" Running "))
                .count()
                == 20
        });
        assert!(running, "batch {batch}: {}", s.kubectl(&["get", "pods"]).stdout);
        s.kubectl(&["delete", "pods", "--all", "--wait=true", "--timeout=120s"])
            .ok();
    }
    delete_all_and_check(&s);
}

#[test]
fn logs_follow_tail_timestamps_all_containers_and_config_from_the_api() {
    let s = node();
    let objects = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello
  app.properties: "mode=test\n"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
stringData:
  password: s3cret
---
apiVersion: v1
kind: Pod
metadata:
  name: talker
  labels:
    team: blue
spec:
  containers:
  - name: main
    image: busybox:1.35
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: app-secret, key: password}}
    - name: MY_POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MY_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    command: ['sh', '-c']
    args:
    - |
      echo "$GREETING $PASSWORD $MY_POD $MY_IP"
      cat /config/app.properties /secret/password /info/labels; echo
      echo "host=$(hostname)"
      i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done
    volumeMounts:
    - {name: config, mountPath: /config}
    - {name: secret, mountPath: /secret, readOnly: true}
    - {name: info, mountPath: /info}
  - name: helper
    image: busybox:1.35
    command: ['sh', '-c', 'echo helper-up; sleep 3600']
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: secret
    secret: {secretName: app-secret}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], objects).ok();
    wait_status(&s, "talker", "Running", 60);
    let ip = jsonpath(&s, "talker", "{.status.podIP}");
    let ticked = Server::eventually(Duration::from_secs(20), || {
        s.kubectl(&["logs", "talker", "-c", "main"]).stdout.contains("tick 3")
    });
    assert!(ticked);
    let all = s.kubectl(&["logs", "talker", "-c", "main"]).ok().stdout;
    assert!(
        all.starts_with(&format!(
            "hello s3cret talker {ip}\nmode=test\ns3cretteam=\"blue\"\nhost=talker\n"
        )),
        "{all}"
    );
    let tail = s.kubectl(&["logs", "talker", "-c", "main", "--tail=2"]).ok().stdout;
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("tick ")), "{tail}");
    let ts = s
        .kubectl(&["logs", "talker", "-c", "main", "--tail=1", "--timestamps"])
        .ok()
        .stdout;
    let (stamp, rest) = ts.split_once(' ').expect("a timestamp");
    assert!(
        stamp.ends_with('Z') && stamp.contains('T') && rest.starts_with("tick "),
        "{ts}"
    );
    let since = s.kubectl(&["logs", "talker", "-c", "main", "--since=2s"]).ok().stdout;
    assert!(!since.contains("hello"), "{since}");
    let both = s
        .kubectl(&["logs", "talker", "--all-containers", "--prefix", "--tail=1"])
        .ok()
        .stdout;
    assert!(both.contains("[pod/talker/helper] helper-up"), "{both}");
    assert!(both.contains("[pod/talker/main] tick "), "{both}");
    // -f streams new lines as they are written, until the client stops.
    let mut follow = s.kubectl_spawn(&["logs", "-f", "talker", "-c", "main", "--tail=1"]);
    let mut out = follow.stdout.take().expect("stdout");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(20);
    while String::from_utf8_lossy(&got).matches("tick ").count() < 3 && Instant::now() < deadline {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        String::from_utf8_lossy(&got).matches("tick ").count() >= 3,
        "{}",
        String::from_utf8_lossy(&got)
    );
    let err = s.kubectl(&["logs", "talker", "-c", "main", "--previous"]);
    assert_eq!(
        err.stderr.trim(),
        "Error from server (BadRequest): previous terminated container \"main\" in pod \"talker\" not found"
    );
    delete_all_and_check(&s);
}

#[test]
fn memory_limit_ends_in_oom_killed() {
    let s = node();
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox:1.35
    command: ['tail', '/dev/zero']
    resources:
      limits:
        memory: 32Mi
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pod).ok();
    wait_status(&s, "greedy", "OOMKilled", 60);
    assert_eq!(
        jsonpath(&s, "greedy", "{.status.containerStatuses[0].state.terminated.exitCode}"),
        "137"
    );
    assert_eq!(jsonpath(&s, "greedy", "{.status.phase}"), "Failed");
    assert_eq!(jsonpath(&s, "greedy", "{.status.qosClass}"), "Burstable");
    // A force delete removes the object at once; the agent still kills and removes everything of the Pod.
    let sleeper = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    command: ['sleep', '3600']\n";
    s.kubectl_stdin(&["apply", "-f", "-"], sleeper).ok();
    wait_status(&s, "sleeper", "Running", 60);
    let out = s
        .kubectl(&["delete", "pod", "sleeper", "--grace-period=0", "--force"])
        .ok();
    assert_eq!(out.stdout, "pod \"sleeper\" force deleted\n");
    delete_all_and_check(&s);
}

#[test]
fn init_failures_host_ports_and_missing_config_show_as_kubernetes_shows_them() {
    let s = node();
    let host_port = peapod_test_support::free_port();
    let pods = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: init-fails-never
spec:
  restartPolicy: Never
  initContainers:
  - name: setup
    image: busybox:1.35
    command: ['sh', '-c', 'exit 1']
  containers:
  - name: app
    image: busybox:1.35
    command: ['sleep', '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: init-fails-always
spec:
  initContainers:
  - name: setup
    image: busybox:1.35
    command: ['sh', '-c', 'exit 1']
  containers:
  - name: app
    image: busybox:1.35
    command: ['sleep', '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: needs-config
spec:
  containers:
  - name: app
    image: busybox:1.35
    command: ['sleep', '3600']
    volumeMounts: [{{name: config, mountPath: /config}}]
  volumes:
  - name: config
    configMap: {{name: nope}}
---
apiVersion: v1
kind: Pod
metadata:
  name: published
spec:
  containers:
  - name: web
    image: nginx:1.21
    ports:
    - containerPort: 80
      hostPort: {host_port}
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &pods).ok();
    wait_status(&s, "init-fails-never", "Init:Error", 60);
    assert_eq!(jsonpath(&s, "init-fails-never", "{.status.phase}"), "Failed");
    wait_status(&s, "init-fails-always", "Init:CrashLoopBackOff", 60);
    assert_eq!(jsonpath(&s, "init-fails-always", "{.status.phase}"), "Pending");
    let said = Server::eventually(Duration::from_secs(30), || {
        s.kubectl(&["describe", "pod", "needs-config"])
            .stdout
            .contains("MountVolume.SetUp failed for volume \"config\" : configmap \"nope\" not found")
    });
    assert!(said, "{}", s.kubectl(&["describe", "pod", "needs-config"]).stdout);
    assert_eq!(status_of(&s, "needs-config"), "ContainerCreating");
    // Creating the ConfigMap lets the Pod start (the agent retries the mount).
    s.kubectl(&["create", "configmap", "nope", "--from-literal=k=v"]).ok();
    wait_status(&s, "needs-config", "Running", 60);
    wait_status(&s, "published", "Running", 60);
    let host_ip = jsonpath(&s, "published", "{.status.hostIP}");
    let page = http_get(&host_ip, host_port, "/");
    assert!(
        page.contains("Welcome to nginx"),
        "hostPort {host_ip}:{host_port}: {page}"
    );
    delete_all_and_check(&s);
}
