//! The real kubectl against a real `peapod server`: apply, get (all output forms), watch, describe, delete, and
//! the errors kubectl prints for missing, invalid and misspelled objects. No node agent runs, so Pods stay Pending.

use peapod_test_support::{fixture, Server};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

fn server() -> Server {
    Server::start(Path::new(env!("CARGO_BIN_EXE_peapod")))
}

fn f(name: &str) -> String {
    fixture(name).display().to_string()
}

/// Splits a kubectl table line into its cells (kubectl pads with at least 3 spaces; cells have no double spaces).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn apply_get_describe_delete_the_seed_manifests() {
    let s = server();

    // apply → created, again → unchanged, edited → configured.
    let out = s.kubectl(&["apply", "-f", &f("nginx-pod.yaml")]).ok();
    assert_eq!(out.stdout, "pod/nginx-pod created\n");
    let out = s.kubectl(&["apply", "-f", &f("nginx-pod.yaml")]).ok();
    assert_eq!(out.stdout, "pod/nginx-pod unchanged\n");
    let edited = std::fs::read_to_string(fixture("nginx-pod.yaml"))
        .unwrap()
        .replace("nginx:1.21", "nginx:1.22");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &edited).ok();
    assert_eq!(out.stdout, "pod/nginx-pod configured\n");
    let image = s
        .kubectl(&["get", "pod", "nginx-pod", "-o", "jsonpath={.spec.containers[0].image}"])
        .ok();
    assert_eq!(image.stdout, "nginx:1.22");
    let out = s.kubectl(&["apply", "-f", &f("web-with-log-sidecar.yaml")]).ok();
    assert_eq!(out.stdout, "pod/web-with-logger created\n");
    let out = s.kubectl(&["apply", "-f", &f("app-with-init.yaml")]).ok();
    assert_eq!(out.stdout, "pod/app-with-init created\n");

    // get pods: kubectl's columns, Pending without a node.
    let out = s.kubectl(&["get", "pods"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(cells(lines[0]), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(
        lines[0].starts_with("NAME              READY   STATUS    RESTARTS   AGE"),
        "{:?}",
        lines[0]
    );
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| cells(l)).collect();
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["app-with-init", "nginx-pod", "web-with-logger"]
    );
    assert_eq!(&rows[1][1..4], ["0/1", "Pending", "0"]);
    assert_eq!(&rows[2][1..4], ["0/2", "Pending", "0"]);
    assert!(rows[1][4].ends_with('s'), "age {:?}", rows[1][4]);

    // -o wide adds IP, NODE, NOMINATED NODE, READINESS GATES.
    let out = s.kubectl(&["get", "pods", "-o", "wide"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        cells(lines[0]),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert_eq!(&cells(lines[2])[5..], ["<none>", "<none>", "<none>", "<none>"]);

    // -l, -A.
    let out = s.kubectl(&["get", "pods", "-l", "app=nginx"]).ok();
    assert_eq!(out.stdout.lines().count(), 2);
    assert!(out.stdout.contains("nginx-pod") && !out.stdout.contains("web-with-logger"));
    let out = s.kubectl(&["get", "pods", "-A"]).ok();
    assert_eq!(cells(out.stdout.lines().next().unwrap())[0], "NAMESPACE");
    assert!(out.stdout.lines().skip(1).all(|l| l.starts_with("default ")));

    // -o json / -o yaml carry the API's defaults.
    let out = s.kubectl(&["get", "pod", "nginx-pod", "-o", "json"]).ok();
    let pod: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    assert!(pod["metadata"]["uid"].as_str().unwrap().len() == 36);
    let out = s.kubectl(&["get", "pods", "-o", "yaml"]).ok();
    assert!(
        out.stdout
            .starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n"),
        "{}",
        &out.stdout[..200]
    );
    assert!(out.stdout.contains("    name: web-with-logger\n"));
    assert!(out.stdout.contains("kind: List\n"));
    let out = s.kubectl(&["get", "pods", "-o", "name"]).ok();
    assert_eq!(out.stdout, "pod/app-with-init\npod/nginx-pod\npod/web-with-logger\n");

    // describe pod.
    let out = s.kubectl(&["describe", "pod", "nginx-pod"]).ok();
    for want in [
        "Name:             nginx-pod\n",
        "Namespace:        default\n",
        "Priority:         0\n",
        "Service Account:  default\n",
        "Node:             <none>\n",
        "Labels:           app=nginx\n",
        "Status:           Pending\n",
        "    Image:        nginx:1.22\n",
        "    Port:         80/TCP\n",
        "Host Port:    0/TCP\n",
        // The scheduler found no node (this server runs without its agent), so the Pod has a condition and an event.
        "Conditions:\n  Type           Status\n  PodScheduled   False \n",
        // The ServiceAccount admission step's token volume, as kubectl prints it (the Volumes block widens the
        // columns of everything after it, as it does against kube-apiserver).
        "    Mounts:\n      /var/run/secrets/kubernetes.io/serviceaccount from kube-api-access-",
        "Volumes:\n  kube-api-access-",
        "    Type:                    Projected (a volume that contains injected data from multiple sources)\n    TokenExpirationSeconds:  3607\n    ConfigMapName:           kube-root-ca.crt\n    ConfigMapOptional:       <nil>\n    DownwardAPI:             true\n",
        "QoS Class:                   BestEffort\n",
        "Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n",
        "                             node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n",
        "default-scheduler  no nodes available to schedule pods\n",
    ] {
        assert!(out.stdout.contains(want), "describe lacks {want:?}:\n{}", out.stdout);
    }

    // describe lists the Pod's events (found by kubectl through involvedObject field selectors).
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let now = s
        .kubectl(&[
            "get",
            "pod",
            "nginx-pod",
            "-o",
            "jsonpath={.metadata.creationTimestamp}",
        ])
        .ok()
        .stdout;
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: nginx-pod.18a1\ninvolvedObject:\n  apiVersion: v1\n  kind: Pod\n  name: nginx-pod\n  namespace: default\n  uid: {uid}\nreason: FailedScheduling\nmessage: '0/0 nodes are available: no nodes available to schedule pods.'\ntype: Warning\nsource:\n  component: default-scheduler\nfirstTimestamp: \"{now}\"\nlastTimestamp: \"{now}\"\ncount: 1\n"
    );
    s.kubectl_stdin(&["create", "-f", "-"], &event).ok();
    let other = event
        .replace("nginx-pod.18a1", "web.18a2")
        .replace("name: nginx-pod\n", "name: web-with-logger\n");
    s.kubectl_stdin(&["create", "-f", "-"], &other).ok();
    let out = s.kubectl(&["describe", "pod", "nginx-pod"]).ok();
    let events = out.stdout.split("Events:").nth(1).expect("an Events section");
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["Type", "Reason", "Age", "From", "Message"]
    );
    // The scheduler's own event and the one created above; not the other Pod's.
    assert!(
        lines[3..]
            .iter()
            .all(|l| l.trim_start().starts_with("Warning  FailedScheduling  ")),
        "{events}"
    );
    assert!(
        lines[3..]
            .iter()
            .any(|l| l.ends_with("default-scheduler  0/0 nodes are available: no nodes available to schedule pods.")),
        "{events}"
    );
    assert_eq!(lines.len(), 5, "only the Pod's own events: {events}");
    let out = s.kubectl(&["get", "events"]).ok();
    assert_eq!(
        cells(out.stdout.lines().next().unwrap()),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(out.stdout.contains("pod/nginx-pod"), "{}", out.stdout);

    // delete by name and by file; each waits for the object to be gone.
    let out = s.kubectl(&["delete", "pod", "nginx-pod"]).ok();
    assert_eq!(out.stdout, "pod \"nginx-pod\" deleted\n");
    let out = s.kubectl(&["delete", "-f", &f("web-with-log-sidecar.yaml")]).ok();
    assert_eq!(out.stdout, "pod \"web-with-logger\" deleted\n");
    let out = s.kubectl(&["get", "pods"]).ok();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    s.kubectl(&["delete", "pod", "app-with-init"]).ok();
    let out = s.kubectl(&["get", "pods"]).ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in default namespace.\n");
}

#[test]
fn errors_in_kubectls_words() {
    let s = server();
    let out = s.kubectl(&["get", "pod", "x"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "Error from server (NotFound): pods \"x\" not found\n");

    let no_image = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: no-image\nspec:\n  containers:\n  - name: app\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], no_image);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "The Pod \"no-image\" is invalid: spec.containers[0].image: Required value\n"
    );

    let two = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: app\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], two);
    assert_eq!(out.code, 1);
    let mut lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.remove(0), "The Pod \"bad\" is invalid: ");
    lines.sort();
    assert_eq!(
        lines,
        [
            "* spec.containers[0].image: Required value",
            "* spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]
    );

    let typo = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: typo\nspec:\n  containers:\n  - name: app\n    imagee: nginx:1.21\n    image: nginx:1.21\n";
    let path = s.data_dir().join("typo.yaml");
    std::fs::write(&path, typo).unwrap();
    let out = s.kubectl(&["apply", "-f", &path.display().to_string()]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "Error from server (BadRequest): error when creating \"{}\": Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].imagee\"\n",
            path.display()
        )
    );
    // Nothing of the refused objects was stored.
    assert_eq!(s.kubectl(&["get", "pods", "-o", "name"]).ok().stdout, "");

    let out = s.kubectl(&["create", "-f", &f("nginx-pod.yaml")]).ok();
    assert_eq!(out.stdout, "pod/nginx-pod created\n");
    let out = s.kubectl(&["create", "-f", &f("nginx-pod.yaml")]);
    assert_eq!(
        out.stderr,
        format!(
            "Error from server (AlreadyExists): error when creating \"{}\": pods \"nginx-pod\" already exists\n",
            f("nginx-pod.yaml")
        )
    );

    // Changing an immutable field is refused with Kubernetes' message.
    let changed = std::fs::read_to_string(fixture("nginx-pod.yaml"))
        .unwrap()
        .replace("containerPort: 80", "containerPort: 8080");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &changed);
    assert_eq!(out.code, 1);
    // kubectl first warns that the object was made by `create`, as it does against Kubernetes.
    assert!(out.stderr.starts_with(
        "Warning: resource pods/nginx-pod is missing the kubectl.kubernetes.io/last-applied-configuration annotation"
    ));
    assert!(
        out.stderr.lines().nth(1).unwrap_or("").starts_with("The Pod \"nginx-pod\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"),
        "{}",
        out.stderr
    );

    let out = s.kubectl(&["get", "pods", "-n", "nosuchns"]).ok();
    assert_eq!(out.stderr, "No resources found in nosuchns namespace.\n");
    let out = s.kubectl_stdin(
        &["apply", "-n", "nope", "-f", "-"],
        &std::fs::read_to_string(fixture("nginx-pod.yaml")).unwrap(),
    );
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): error when creating \"STDIN\": namespaces \"nope\" not found\n"
    );
}

#[test]
fn watch_sees_changes_made_by_another_command() {
    let s = server();
    s.kubectl(&["apply", "-f", &f("nginx-pod.yaml")]).ok();
    let mut child = s.kubectl_spawn(&["get", "pods", "--watch"]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let header = rx.recv_timeout(Duration::from_secs(20)).expect("header");
    assert_eq!(cells(&header), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("first row");
    assert!(first.starts_with("nginx-pod "), "{first}");
    s.kubectl(&["apply", "-f", &f("web-with-log-sidecar.yaml")]).ok();
    let second = rx.recv_timeout(Duration::from_secs(20)).expect("row for the new pod");
    assert!(second.starts_with("web-with-logger "), "{second}");
    assert_eq!(&cells(&second)[1..3], ["0/2", "Pending"]);
    // The scheduler's status patch (PodScheduled=False: there is no node) may show as another web-with-logger row.
    let next_for = |name: &str| loop {
        let row = rx.recv_timeout(Duration::from_secs(20)).expect("a row");
        if row.starts_with(&format!("{name} ")) {
            break row;
        }
    };
    s.kubectl(&["label", "pod", "nginx-pod", "tier=front"]).ok();
    let third = next_for("nginx-pod");
    assert_eq!(&cells(&third)[1..3], ["0/1", "Pending"]);
    s.kubectl(&["delete", "pod", "web-with-logger"]).ok();
    let fourth = next_for("web-with-logger");
    assert!(fourth.starts_with("web-with-logger "), "{fourth}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn server_side_apply_namespaces_and_other_resources() {
    let s = server();
    let out = s.kubectl(&["apply", "--server-side", "-f", &f("nginx-pod.yaml")]).ok();
    assert_eq!(out.stdout, "pod/nginx-pod serverside-applied\n");
    let out = s.kubectl(&["apply", "--server-side", "-f", &f("nginx-pod.yaml")]).ok();
    assert_eq!(out.stdout, "pod/nginx-pod serverside-applied\n");

    let out = s.kubectl(&["get", "namespaces"]).ok();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| cells(l)[..2] == [ns.to_string(), "Active".to_string()]),
            "{}",
            out.stdout
        );
    }
    s.kubectl(&["create", "namespace", "team-a"]).ok();
    s.kubectl(&["-n", "team-a", "create", "configmap", "cfg", "--from-literal=a=b"])
        .ok();
    s.kubectl_stdin(
        &["apply", "-n", "team-a", "-f", "-"],
        &std::fs::read_to_string(fixture("nginx-pod.yaml")).unwrap(),
    )
    .ok();
    assert!(Server::eventually(Duration::from_secs(10), || {
        s.kubectl(&["-n", "team-a", "get", "serviceaccount", "default", "-o", "name"])
            .code
            == 0
    }));
    let out = s.kubectl(&["-n", "team-a", "get", "configmaps"]).ok();
    assert!(out.stdout.contains("cfg "), "{}", out.stdout);
    let out = s.kubectl(&["delete", "namespace", "team-a"]).ok();
    assert_eq!(out.stdout, "namespace \"team-a\" deleted\n");
    let out = s.kubectl(&["get", "namespace", "team-a"]);
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): namespaces \"team-a\" not found\n"
    );
    let out = s.kubectl(&["delete", "namespace", "default"]);
    assert_eq!(
        out.stderr,
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n"
    );
}
