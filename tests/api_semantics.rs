//! API semantics over real HTTPS against a real `peapod server`: optimistic concurrency, watch replay and 410 after
//! compaction, durability across SIGKILL, authentication, body limits, paging, graceful deletion, finalizers.

use peapod_client::{Client, ClientError, Config};
use peapod_test_support::Server;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_peapod"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client(s: &Server) -> Client {
    Client::connect(&Config::from_kubeconfig(&s.kubeconfig()).unwrap())
        .await
        .unwrap()
}

fn cm(name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": v}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

fn status_code(e: &ClientError) -> u16 {
    match e {
        ClientError::Status { code, .. } => *code,
        other => panic!("not a status error: {other}"),
    }
}

#[test]
fn concurrent_conflicting_updates_exactly_one_wins() {
    let s = Server::start(bin());
    rt().block_on(async {
        let c = client(&s).await;
        let created = c.create(CMS, &cm("race", "0")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let c = client(&s).await;
            let mut body = created.clone();
            body["data"]["k"] = json!(format!("writer-{i}"));
            tasks.push(tokio::spawn(async move { c.send(http::Method::PUT, &format!("{CMS}/race"), Some(&body)).await }));
        }
        let (mut ok, mut conflicts) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(ClientError::Status { code: 409, body, .. }) => {
                    conflicts += 1;
                    assert_eq!(body["reason"], "Conflict");
                    assert_eq!(
                        body["message"],
                        "Operation cannot be fulfilled on configmaps \"race\": the object has been modified; please apply your changes to the latest version and try again"
                    );
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, conflicts), (1, 15));
    });
}

#[test]
fn watch_replays_in_order_and_compaction_gives_410() {
    let s = Server::start_with(bin(), &["--keep-revisions", "1", "--compaction-interval-seconds", "1"]);
    rt().block_on(async {
        let c = client(&s).await;
        let a = c.create(CMS, &cm("a", "1")).await.unwrap();
        let start = rv(&a);
        let mut a2 = a.clone();
        a2["data"]["k"] = json!("2");
        c.send(http::Method::PUT, &format!("{CMS}/a"), Some(&a2)).await.unwrap();
        c.create(CMS, &cm("b", "1")).await.unwrap();
        c.delete(&format!("{CMS}/a")).await.unwrap();

        // A watch from the current revision sees new events in order.
        let list = c.get(CMS).await.unwrap();
        let now = rv(&list);
        let mut w = c
            .watch(&format!("{CMS}?watch=true&resourceVersion={now}"))
            .await
            .unwrap();
        c.create(CMS, &cm("c", "1")).await.unwrap();
        c.delete(&format!("{CMS}/c")).await.unwrap();
        let e1 = w.next().await.unwrap().unwrap();
        let e2 = w.next().await.unwrap().unwrap();
        assert_eq!(
            (e1["type"].as_str(), e1["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("c"))
        );
        assert_eq!(
            (e2["type"].as_str(), e2["object"]["metadata"]["name"].as_str()),
            (Some("DELETED"), Some("c"))
        );
        assert!(rv(&e2["object"]) > rv(&e1["object"]));

        // After compaction, the first revision is gone: one ERROR event with 410 Expired, then the stream ends.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut w = c
            .watch(&format!("{CMS}?watch=true&resourceVersion={start}"))
            .await
            .unwrap();
        let e = w.next().await.unwrap().unwrap();
        assert_eq!(e["type"], "ERROR");
        assert_eq!(e["object"]["code"], 410);
        assert_eq!(e["object"]["reason"], "Expired");
        assert!(e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("too old resource version: {start} (")));
        assert!(w.next().await.is_none());
    });
}

#[test]
fn watch_from_an_old_revision_replays_every_change_in_order() {
    let s = Server::start(bin());
    rt().block_on(async {
        let c = client(&s).await;
        let a = c.create(CMS, &cm("a", "1")).await.unwrap();
        let start = rv(&a);
        let mut a2 = a.clone();
        a2["data"]["k"] = json!("2");
        c.send(http::Method::PUT, &format!("{CMS}/a"), Some(&a2)).await.unwrap();
        c.create(CMS, &cm("b", "1")).await.unwrap();
        c.delete(&format!("{CMS}/a")).await.unwrap();
        let mut w = c
            .watch(&format!("{CMS}?watch=true&resourceVersion={start}"))
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut last = start;
        for _ in 0..3 {
            let e = w.next().await.unwrap().unwrap();
            let r = rv(&e["object"]);
            assert!(r > last, "revisions must rise: {r} after {last}");
            last = r;
            seen.push(format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            ));
        }
        assert_eq!(seen, ["MODIFIED a", "ADDED b", "DELETED a"]);
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let mut s = Server::start(bin());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = rt();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let kubeconfig = s.kubeconfig();
            let acked = acked.clone();
            let stop = stop.clone();
            runtime.spawn(async move {
                let c = Client::connect(&Config::from_kubeconfig(&kubeconfig).unwrap())
                    .await
                    .unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("w{w}-{i}");
                    match c.create(CMS, &cm(&name, "x")).await {
                        Ok(_) => acked.lock().unwrap().push(name),
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = runtime.block_on(w);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "too few writes to mean anything: {}", acked.len());
    s.restart();
    runtime.block_on(async {
        let c = client(&s).await;
        let list = c.get(CMS).await.unwrap();
        let names: std::collections::HashSet<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        let missing: Vec<&String> = acked.iter().filter(|n| !names.contains(n.as_str())).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged writes lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        eprintln!(
            "verified {} acknowledged writes after SIGKILL ({} objects present)",
            acked.len(),
            names.len()
        );
    });
}

#[test]
fn authentication_and_limits() {
    let s = Server::start(bin());
    // Wrong token, discovery cache cold: kubectl reports the 401 of discovery, as against kube-apiserver.
    let out = s.kubectl(&["--token", "not-a-token", "get", "pods"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.lines().last(),
        Some("error: You must be logged in to the server (the server has asked for the client to provide credentials)")
    );
    // Cache warm: the 401 Status of the request itself.
    s.kubectl(&["get", "pods"]).ok();
    let out = s.kubectl(&["--token", "not-a-token", "get", "pods"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: You must be logged in to the server (Unauthorized)\n"
    );
    rt().block_on(async {
        // No credentials at all.
        let mut cfg = Config::from_kubeconfig(&s.kubeconfig()).unwrap();
        cfg.token = None;
        let anon = Client::connect(&cfg).await.unwrap();
        let e = anon.get("/api/v1/namespaces/default/pods").await.unwrap_err();
        assert_eq!(status_code(&e), 401);
        // Health is public, as in Kubernetes.
        assert!(anon.send_raw(http::Method::GET, "/readyz", None, "", "*/*").await.unwrap().0.is_success());
        // Bodies over 3 MiB.
        let c = client(&s).await;
        let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 1)}});
        let e = c.create(CMS, &big).await.unwrap_err();
        assert_eq!(status_code(&e), 413);
        assert!(c.get(&format!("{CMS}/big")).await.is_err());
    });
    // Plain HTTP on the API port gets no HTTP answer.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plain HTTP was answered"
    );
}

#[test]
fn client_certificates_signed_by_the_ca_authenticate() {
    let s = Server::start(bin());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = s.data_dir().join("pki");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {:?}: {}",
            args,
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "u.key",
        "-out",
        "u.csr",
        "-subj",
        "/CN=alice/O=devs",
    ]);
    std::fs::write(d.join("ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "u.csr",
        "-CA",
        &pki.join("ca.crt").display().to_string(),
        "-CAkey",
        &pki.join("ca.key").display().to_string(),
        "-CAcreateserial",
        "-out",
        "u.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: p\n  context: {{cluster: p, user: alice}}\ncurrent-context: p\n",
        s.url(),
        pki.join("ca.crt").display(),
        d.join("u.crt").display(),
        d.join("u.key").display()
    );
    std::fs::write(d.join("kc"), kc).unwrap();
    let out = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &d.join("kc").display().to_string(),
            "get",
            "namespaces",
            "-o",
            "name",
        ])
        .env("HOME", d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/kube-system"));
}

#[test]
fn paging_selectors_dry_run() {
    let s = Server::start(bin());
    rt().block_on(async {
        let c = client(&s).await;
        for i in 0..7 {
            let mut o = cm(&format!("cm-{i}"), "v");
            o["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
            c.create(CMS, &o).await.unwrap();
        }
        let mut names = Vec::new();
        let mut path = format!("{CMS}?limit=3");
        let mut pages = 0;
        loop {
            let page = c.get(&path).await.unwrap();
            pages += 1;
            names.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
            );
            match page["metadata"]["continue"].as_str() {
                Some(t) => {
                    if pages == 1 {
                        // 7 + the kube-root-ca.crt ConfigMap every namespace has.
                        assert_eq!(page["metadata"]["remainingItemCount"], 5);
                    }
                    path = format!("{CMS}?limit=3&continue={t}");
                }
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut want: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
        want.push("kube-root-ca.crt".into());
        assert_eq!(names, want);
        let odd = c
            .get(&format!("{CMS}?labelSelector=parity%20in%20(odd)"))
            .await
            .unwrap();
        assert_eq!(odd["items"].as_array().unwrap().len(), 3);
        let one = c
            .get(&format!("{CMS}?fieldSelector=metadata.name%3Dcm-4"))
            .await
            .unwrap();
        assert_eq!(one["items"].as_array().unwrap().len(), 1);
        let e = c.get(&format!("{CMS}?fieldSelector=data.k%3Dv")).await.unwrap_err();
        assert_eq!(status_code(&e), 400);
    });
    let out = s.kubectl(&["get", "configmaps", "--chunk-size=2", "-o", "name"]).ok();
    assert_eq!(out.stdout.lines().filter(|l| l.starts_with("configmap/cm-")).count(), 7);
    let out = s
        .kubectl(&["get", "configmaps", "-l", "parity=even", "-o", "name"])
        .ok();
    assert_eq!(
        out.stdout,
        "configmap/cm-0\nconfigmap/cm-2\nconfigmap/cm-4\nconfigmap/cm-6\n"
    );
    let out = s
        .kubectl(&["create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server"])
        .ok();
    assert_eq!(out.stdout, "configmap/dry created (server dry run)\n");
    assert_eq!(s.kubectl(&["get", "configmap", "dry"]).code, 1);
}

#[test]
fn graceful_deletion_and_finalizers() {
    let s = Server::start(bin());
    // A Pod bound to a node is deleted gracefully: it stays, Terminating, until its node (or a forced delete)
    // removes it.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: node-x\n  containers:\n  - name: app\n    image: busybox:1.35\n";
    s.kubectl_stdin(&["apply", "-f", "-"], pod).ok();
    let out = s.kubectl(&["delete", "pod", "bound", "--wait=false"]).ok();
    assert_eq!(out.stdout, "pod \"bound\" deleted\n");
    let out = s.kubectl(&["get", "pod", "bound"]).ok();
    assert!(
        out.stdout.lines().nth(1).unwrap().contains(" Terminating "),
        "{}",
        out.stdout
    );
    let obj: Value = serde_json::from_str(&s.kubectl(&["get", "pod", "bound", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 30);
    let out = s
        .kubectl(&["delete", "pod", "bound", "--grace-period=0", "--force"])
        .ok();
    assert_eq!(out.stdout, "pod \"bound\" force deleted\n");
    assert_eq!(s.kubectl(&["get", "pod", "bound"]).code, 1);

    // An object with a finalizer waits for it.
    let cmf =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata: {a: b}\n";
    s.kubectl_stdin(&["apply", "-f", "-"], cmf).ok();
    s.kubectl(&["delete", "configmap", "held", "--wait=false"]).ok();
    let obj: Value = serde_json::from_str(&s.kubectl(&["get", "configmap", "held", "-o", "json"]).ok().stdout).unwrap();
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    s.kubectl(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"finalizers\":null}}",
    ])
    .ok();
    assert_eq!(s.kubectl(&["get", "configmap", "held"]).code, 1);
}
