//! `peapod bench pods`: how long a one-container Pod takes from create to Running, and what each idle Pod costs in
//! memory, beside Podman's `kube play` of the same manifest measured in the same run.
//!
//! - Peapod: a `peapod server` child with its node agent, isolated as the node tests isolate theirs (own bridge,
//!   Pod range, cgroup parent, run and log directories, no egress, registries pointed at a closed port), the
//!   busybox test image loaded first. Pods are created one at a time; each latency runs from just before the POST
//!   to the watch event that shows the Pod `Running` with its container running.
//! - Podman: `podman kube play --network none` of the same Pod (a private store, the image loaded from the same
//!   archive), timed as the wall time of the command, which returns once the containers have started.
//! - Memory, with all Pods still running: the PSS of every per-Pod monitor (Peapod's `peapod shim`, Podman's
//!   `conmon`) per Pod, and the Peapod server's own growth per Pod.
//!
//! Each side gets one warm-up Pod first that is not counted (it pays for the bridge, the pause image, caches).
//! Everything is removed at the end and the host is checked for leftover shims. Prints figures, never asserts.

use anyhow::{anyhow, bail, Context, Result};
use peapod_client::{Client, Config, WatchStream};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The image both sides run (Peapod's name; Podman's `load` names the same archive `localhost/busybox:1.35`).
const IMAGE: &str = "busybox:1.35";
const PODMAN_IMAGE: &str = "localhost/busybox:1.35";
/// The isolated node's settings (the test harness uses `ppt<k>` and `10.244.<k>.0/24`, k ≤ 250).
const BRIDGE: &str = "ppbench";
const POD_CIDR: &str = "10.244.250.0/24";
const NODE_NAME: &str = "bench";
const CGROUP_PARENT: &str = "peapod-bench";
const NAMESPACE: &str = "default";
/// How long one Pod may take to run before the bench gives up.
const POD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the deletion of all Pods may take (each gets the 2 s minimum grace, in parallel).
const DELETE_TIMEOUT: Duration = Duration::from_secs(180);
/// A pause before reading memory, so status updates and allocator caches settle; not a poll.
const SETTLE: Duration = Duration::from_secs(2);

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

/// Nearest-rank percentiles and the mean; NaN for no samples.
fn stats(samples: &[f64]) -> Stats {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
            v[idx.min(v.len() - 1)]
        }
    };
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    Stats {
        p50: pick(0.5),
        p99: pick(0.99),
        mean,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The Pod both sides run.
fn pod_manifest(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-pods"}},
        "spec": {"containers": [{"name": "app", "image": image, "command": ["sleep", "3600"]}]}
    })
}

/// Running as `kubectl get pods --watch` would show it: phase Running and every container's state `running`.
fn is_running(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    match (phase, statuses) {
        (Some("Running"), Some(s)) if !s.is_empty() => s.iter().all(|c| c.pointer("/state/running").is_some()),
        _ => false,
    }
}

/// A `Key:   123 kB` line of `/proc/<pid>/smaps_rollup` (or `status`), in KiB.
fn field_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (PSS, RSS) of a process in KiB.
fn pss_rss_kib(pid: i32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let pss = field_kib(&text, "Pss").ok_or_else(|| anyhow!("no Pss in {path}"))?;
    let rss = field_kib(&text, "Rss").ok_or_else(|| anyhow!("no Rss in {path}"))?;
    Ok((pss, rss))
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    ppid: i32,
    args: Vec<String>,
}

impl Proc {
    fn cmdline(&self) -> String {
        self.args.join(" ")
    }
}

/// The parent pid from `/proc/<pid>/stat` (the field after the parenthesised command name).
fn stat_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ppid = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| stat_ppid(&s))
            .unwrap_or(0);
        out.push(Proc { pid, ppid, args });
    }
    out
}

/// A `peapod shim` of this bench: the `shim` subcommand with this run dir on its command line.
fn is_bench_shim(p: &Proc, run_dir: &str) -> bool {
    p.args.get(1).map(String::as_str) == Some("shim") && p.cmdline().contains(run_dir)
}

/// A `conmon` of this bench's Podman store (its command line names the store's directories).
fn is_bench_conmon(p: &Proc, store: &str) -> bool {
    p.args
        .first()
        .map(|a| Path::new(a).file_name().is_some_and(|n| n == "conmon"))
        .unwrap_or(false)
        && p.cmdline().contains(store)
}

/// Sum of PSS and RSS (KiB) over processes; ones that exited meanwhile are skipped.
fn sum_memory(procs: &[&Proc]) -> (u64, u64, usize) {
    let (mut pss, mut rss, mut n) = (0, 0, 0);
    for p in procs {
        if let Ok((a, b)) = pss_rss_kib(p.pid) {
            pss += a;
            rss += b;
            n += 1;
        }
    }
    (pss, rss, n)
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The busybox test archive: one already built for the tests, else built now into `work`.
fn busybox_archive(work: &Path) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![root.join("target/test-images/busybox-1.35.tar")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.insert(0, PathBuf::from(t).join("test-images/busybox-1.35.tar"));
    }
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Ok(found);
    }
    let out = work.join("images");
    run_quiet(Command::new("bash").arg(root.join("tests/images/build.sh")).arg(&out))?;
    Ok(out.join("busybox-1.35.tar"))
}

/// What a Pod's watch events showed, in ms from just before its POST.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    /// The POST's reply.
    created: f64,
    /// The first event with `spec.nodeName` (the scheduler's binding).
    bound: f64,
    /// The agent's first status (containers `ContainerCreating`).
    agent: f64,
    /// Phase Running with the container running.
    running: f64,
}

/// Creates a Pod and follows `watch` until it runs.
async fn create_and_wait(c: &Client, watch: &mut WatchStream, name: &str) -> Result<Timeline> {
    let t0 = Instant::now();
    c.create(
        &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
        &pod_manifest(name, IMAGE),
    )
    .await
    .with_context(|| format!("create pod {name}"))?;
    let created = ms(t0.elapsed());
    let (mut bound, mut agent) = (None, None);
    let mut last = Value::Null;
    let wait = async {
        while let Some(ev) = watch.next().await {
            let ev = ev.with_context(|| format!("watch while waiting for pod {name}"))?;
            let obj = &ev["object"];
            if obj.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
                continue;
            }
            let at = ms(t0.elapsed());
            if bound.is_none() && obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some() {
                bound = Some(at);
            }
            if agent.is_none() && obj.pointer("/status/containerStatuses").is_some() {
                agent = Some(at);
            }
            last = obj.clone();
            if is_running(obj) {
                return Ok(at);
            }
        }
        Err(anyhow!("the watch ended while waiting for pod {name}"))
    };
    let running = match tokio::time::timeout(POD_TIMEOUT, wait).await {
        Ok(r) => r?,
        Err(_) => bail!(
            "pod {name} not Running after {POD_TIMEOUT:?}; last status: {}",
            last.get("status").unwrap_or(&Value::Null)
        ),
    };
    Ok(Timeline {
        created,
        bound: bound.unwrap_or(running),
        agent: agent.unwrap_or(running),
        running,
    })
}

/// The Peapod server child with its node agent, and how to remove everything it left on the host.
struct Node {
    child: Option<Child>,
    data: PathBuf,
    run_dir: PathBuf,
}

impl Node {
    fn start(exe: &Path, data: &Path) -> Result<Node> {
        let run_dir = data.join("run");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Any pull goes to a closed loopback port: the image is loaded, so none should happen, and none may leave
        // the machine if one did.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let registries = data.join("registries.yaml");
        let mut yaml = String::from("mirrors:\n");
        for reg in ["docker.io", "registry.k8s.io", "quay.io", "ghcr.io"] {
            yaml.push_str(&format!("  {reg}:\n    endpoint: [\"http://127.0.0.1:{closed}\"]\n"));
        }
        std::fs::write(&registries, yaml).with_context(|| format!("write {}", registries.display()))?;
        let mut child = Command::new(exe)
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            .args([
                "--node-name",
                NODE_NAME,
                "--bridge",
                BRIDGE,
                "--pod-cidr",
                POD_CIDR,
                "--pod-egress=false",
                "--node-port",
                "0",
                "--cgroup-parent",
                CGROUP_PARENT,
                "--run-dir",
            ])
            .arg(&run_dir)
            .arg("--pod-log-dir")
            .arg(data.join("logs"))
            .arg("--registry-config")
            .arg(&registries)
            .env(
                "PEAPOD_LOG",
                std::env::var("PEAPOD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start peapod server")?;
        let mut node = Node {
            child: None,
            data: data.to_path_buf(),
            run_dir,
        };
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        node.child = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("Peapod API server ready") => break,
                Some(Ok(_)) => continue,
                _ => bail!("the server exited before it was ready"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(node)
    }

    fn pid(&self) -> Result<i32> {
        let c = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("the server is not running"))?;
        i32::try_from(c.id()).context("server pid")
    }

    fn run_dir_str(&self) -> String {
        self.run_dir.display().to_string()
    }

    fn shims(&self) -> Vec<Proc> {
        let run = self.run_dir_str();
        processes().into_iter().filter(|p| is_bench_shim(p, &run)).collect()
    }

    /// SIGTERM to the server and a wait for it (SIGKILL if it lingers).
    fn stop_server(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let st = child.wait();
            let _ = tx.send(());
            st
        });
        if rx.recv_timeout(Duration::from_secs(15)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        waiter
            .join()
            .map_err(|_| anyhow!("the server waiter panicked"))?
            .context("wait for the server")?;
        Ok(())
    }

    /// The node's bridge, firewall table and cgroup parent, which outlive the server by design.
    fn remove_node_network(&self) {
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("peapod-{BRIDGE}")])
            .output();
        for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let dir = ctrl.path().join(CGROUP_PARENT);
            if dir.is_dir() {
                // Only empty cgroup directories can go; `find -delete` removes them depth first.
                let _ = Command::new("find")
                    .arg(&dir)
                    .args(["-depth", "-type", "d", "-delete"])
                    .output();
            }
        }
    }

    /// What of the bench's Pods is still on the host.
    fn leaks(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .shims()
            .iter()
            .map(|p| format!("shim process {} {}", p.pid, p.cmdline()))
            .collect();
        let data = self.data.display().to_string();
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in m.lines() {
                let mp = l.split(' ').nth(4).unwrap_or("");
                if mp.starts_with(&data) {
                    out.push(format!("mount {mp}"));
                }
            }
        }
        if let Ok(o) = Command::new("runc")
            .arg("--root")
            .arg(self.run_dir.join("runc"))
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()) {
                out.push(format!("runc container {id}"));
            }
        }
        if let Ok(o) = Command::new("ip")
            .args(["-o", "link", "show", "master", BRIDGE])
            .output()
        {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                out.push(format!("veth {}", l.split(':').nth(1).unwrap_or("").trim()));
            }
        }
        out
    }

    /// Removes everything, whatever state a failure left it in: server, shims, containers, mounts, network.
    fn force_clean(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in self.shims() {
            let _ = Command::new("kill").args(["-KILL", &p.pid.to_string()]).status();
        }
        let root = self.run_dir.join("runc");
        if let Ok(o) = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()) {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        let data = self.data.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|mp| mp.starts_with(&data))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        if let Ok(o) = Command::new("ip")
            .args(["-o", "link", "show", "master", BRIDGE])
            .output()
        {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                let name = l.split(':').nth(1).unwrap_or("").trim().split('@').next().unwrap_or("");
                let _ = Command::new("ip").args(["link", "del", name]).output();
            }
        }
        self.remove_node_network();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.force_clean();
        }
    }
}

/// Peapod's figures.
struct PeapodFigures {
    first: Timeline,
    timelines: Vec<Timeline>,
    shims: usize,
    shim_pss_kib: u64,
    shim_rss_kib: u64,
    pods_running: usize,
    server_before_kib: u64,
    server_after_kib: u64,
    leaks: Vec<String>,
}

async fn peapod_side(exe: PathBuf, archive: PathBuf, data: PathBuf, n: usize) -> Result<PeapodFigures> {
    run_quiet(
        Command::new(&exe)
            .args(["image", "--data-dir"])
            .arg(&data)
            .args(["load", "-i"])
            .arg(&archive),
    )?;
    let (e, d) = (exe.clone(), data.clone());
    let mut node = tokio::task::spawn_blocking(move || Node::start(&e, &d)).await??;
    let cfg = Config::from_kubeconfig(&data.join("kubeconfig.yaml"))?;
    let c = Client::connect(&cfg).await?;
    let list = c.get(&format!("/api/v1/namespaces/{NAMESPACE}/pods")).await?;
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let mut watch = c
        .watch(&format!(
            "/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={rv}"
        ))
        .await?;

    let mut names = vec!["bench-warmup".to_string()];
    let first = create_and_wait(&c, &mut watch, &names[0]).await?;
    tokio::time::sleep(SETTLE).await;
    let server_pid = node.pid()?;
    let (server_before_kib, _) = pss_rss_kib(server_pid)?;

    let mut timelines = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("bench-{i:03}");
        timelines.push(create_and_wait(&c, &mut watch, &name).await?);
        names.push(name);
    }
    tokio::time::sleep(SETTLE).await;
    let (server_after_kib, _) = pss_rss_kib(server_pid)?;
    let shims = node.shims();
    let (shim_pss_kib, shim_rss_kib, counted) = sum_memory(&shims.iter().collect::<Vec<_>>());
    let listed = c.get(&format!("/api/v1/namespaces/{NAMESPACE}/pods")).await?;
    let pods_running = listed["items"]
        .as_array()
        .map(|a| a.iter().filter(|p| is_running(p)).count())
        .unwrap_or(0);

    // Delete all (in parallel, the 2 s minimum grace each) and wait until the agent has removed every one.
    let deletes = names.iter().map(|name| {
        let c = c.clone();
        async move {
            c.delete(&format!(
                "/api/v1/namespaces/{NAMESPACE}/pods/{name}?gracePeriodSeconds=1"
            ))
            .await
            .with_context(|| format!("delete pod {name}"))
        }
    });
    for r in futures::future::join_all(deletes).await {
        r?;
    }
    let mut pending: HashSet<String> = names.iter().cloned().collect();
    let gone = async {
        while let Some(ev) = watch.next().await {
            let ev = ev.context("watch while waiting for deletions")?;
            if ev["type"] == "DELETED" {
                if let Some(name) = ev.pointer("/object/metadata/name").and_then(Value::as_str) {
                    pending.remove(name);
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(anyhow!("the watch ended while waiting for deletions"))
    };
    match tokio::time::timeout(DELETE_TIMEOUT, gone).await {
        Ok(r) => r?,
        Err(_) => bail!(
            "pods not deleted after {DELETE_TIMEOUT:?}: {:?}",
            pending.iter().collect::<Vec<_>>()
        ),
    }
    drop(watch);
    drop(c);
    node.stop_server()?;
    node.remove_node_network();
    let leaks = node.leaks();
    Ok(PeapodFigures {
        first,
        timelines,
        shims: counted,
        shim_pss_kib,
        shim_rss_kib,
        pods_running,
        server_before_kib,
        server_after_kib,
        leaks,
    })
}

/// A private Podman store, removed on drop with everything running from it.
struct PodmanStore {
    dir: tempfile::TempDir,
}

impl PodmanStore {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "overlay"]);
        c
    }

    fn path_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn conmons(&self) -> Vec<Proc> {
        let store = self.path_str();
        processes().into_iter().filter(|p| is_bench_conmon(p, &store)).collect()
    }

    fn remove_pods(&self) -> Result<()> {
        run_quiet(self.cmd().args(["pod", "rm", "--force", "--all", "--time", "0"]))
    }
}

impl Drop for PodmanStore {
    fn drop(&mut self) {
        let _ = self.remove_pods();
        let _ = self
            .cmd()
            .args(["system", "reset", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Podman's figures.
struct PodmanFigures {
    first_ms: f64,
    latencies: Vec<f64>,
    pods: usize,
    conmons: usize,
    conmon_pss_kib: u64,
    conmon_rss_kib: u64,
    pause_pss_kib: u64,
    running_containers: usize,
    conmons_left: usize,
}

fn podman_side(archive: &Path, n: usize) -> Result<PodmanFigures> {
    let store = PodmanStore {
        dir: tempfile::Builder::new().prefix("pp-bench-podman").tempdir()?,
    };
    run_quiet(store.cmd().args(["load", "-q", "-i"]).arg(archive))?;
    let play = |name: &str| -> Result<f64> {
        let file = store.dir.path().join(format!("{name}.yaml"));
        // JSON is YAML: the same manifest Peapod gets, with the name Podman's `load` gave the image.
        std::fs::write(&file, pod_manifest(name, PODMAN_IMAGE).to_string())
            .with_context(|| format!("write {}", file.display()))?;
        let t = Instant::now();
        // `--network none`: the Pod gets only a loopback, nothing can leave the machine.
        run_quiet(
            store
                .cmd()
                .args(["kube", "play", "--network", "none", "--quiet"])
                .arg(&file),
        )?;
        Ok(ms(t.elapsed()))
    };
    let first_ms = play("bench-warmup")?;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        latencies.push(play(&format!("bench-{i:03}"))?);
    }
    let out = store
        .cmd()
        .args(["ps", "-q", "--filter", "status=running"])
        .output()
        .context("podman ps")?;
    let running_containers = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    let all = processes();
    let store_path = store.path_str();
    let conmons: Vec<&Proc> = all.iter().filter(|p| is_bench_conmon(p, &store_path)).collect();
    let (conmon_pss_kib, conmon_rss_kib, counted) = sum_memory(&conmons);
    // The infra container's process (catatonit) is Podman's per-Pod pause; a child of the infra conmon.
    let infra: HashSet<i32> = conmons
        .iter()
        .filter(|p| p.args.iter().any(|a| a.ends_with("-infra")))
        .map(|p| p.pid)
        .collect();
    let pauses: Vec<&Proc> = all.iter().filter(|p| infra.contains(&p.ppid)).collect();
    let (pause_pss_kib, _, _) = sum_memory(&pauses);
    store.remove_pods()?;
    let conmons_left = store.conmons().len();
    Ok(PodmanFigures {
        first_ms,
        latencies,
        pods: n + 1,
        conmons: counted,
        conmon_pss_kib,
        conmon_rss_kib,
        pause_pss_kib,
        running_containers,
        conmons_left,
    })
}

fn have_podman() -> bool {
    Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

pub async fn pods(n: usize, data_dir: Option<PathBuf>) -> Result<()> {
    if n == 0 {
        bail!("--pods must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let work = tempfile::Builder::new().prefix("pp-bench").tempdir()?;
    let data = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
            std::fs::canonicalize(&d).with_context(|| format!("resolve {}", d.display()))?
        }
        None => work.path().join("d"),
    };
    let archive = {
        let w = work.path().to_path_buf();
        tokio::task::spawn_blocking(move || busybox_archive(&w)).await??
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "peapod bench pods ({cpus} CPUs, pods={n}, {IMAGE} `sleep 3600`, warm image, one Pod at a time, \
         1 warm-up Pod per side not counted)"
    );
    println!("archive: {}, peapod data dir: {}", archive.display(), data.display());

    let ours = peapod_side(exe, archive.clone(), data, n).await?;
    let theirs = if have_podman() {
        let a = archive.clone();
        Some(tokio::task::spawn_blocking(move || podman_side(&a, n)).await??)
    } else {
        println!("podman is not installed: no peer figures (apt-get install podman)");
        None
    };

    let ours_lat: Vec<f64> = ours.timelines.iter().map(|t| t.running).collect();
    let o = stats(&ours_lat);
    println!();
    println!("{:<44} {:>10} {:>10}", "create → Running, ms", "peapod", "podman");
    let t = theirs.as_ref().map(|p| stats(&p.latencies));
    let col = |v: Option<f64>| {
        v.map(|x| format!("{x:>10.1}"))
            .unwrap_or_else(|| format!("{:>10}", "-"))
    };
    println!("{:<44} {:>10.1} {}", "p50", o.p50, col(t.map(|s| s.p50)));
    println!("{:<44} {:>10.1} {}", "p99", o.p99, col(t.map(|s| s.p99)));
    println!("{:<44} {:>10.1} {}", "mean", o.mean, col(t.map(|s| s.mean)));
    println!(
        "{:<44} {:>10.1} {}",
        "warm-up Pod (not counted)",
        ours.first.running,
        col(theirs.as_ref().map(|p| p.first_ms))
    );
    let phase = |f: fn(&Timeline) -> f64| stats(&ours.timelines.iter().map(f).collect::<Vec<_>>()).p50;
    println!(
        "peapod phases (p50, ms after the POST): POST answered {:.1}; bound to the node {:.1}; agent's first \
         status (ContainerCreating) {:.1}; Running {:.1}",
        phase(|t| t.created),
        phase(|t| t.bound),
        phase(|t| t.agent),
        phase(|t| t.running)
    );
    if let Some(t) = t {
        println!(
            "podman p50 / peapod p50: {:.2}× (targets: peapod p50 ≤ 75 ms, ≥ 4× faster than podman)",
            t.p50 / o.p50
        );
    } else {
        println!("targets: peapod p50 ≤ 75 ms, ≥ 4× faster than podman");
    }

    println!();
    let pods_total = n + 1;
    println!(
        "memory per Pod, {pods_total} idle Pods running ({} of them Running in the API):",
        ours.pods_running
    );
    println!(
        "  peapod shim:   {:.2} MB PSS per Pod ({} shims, {:.2} MB RSS each)",
        mib(ours.shim_pss_kib as f64 / pods_total as f64),
        ours.shims,
        mib(ours.shim_rss_kib as f64 / ours.shims.max(1) as f64)
    );
    println!(
        "  peapod server: {:+.2} MB PSS per Pod (server {:.1} MB → {:.1} MB over {n} Pods)",
        mib((ours.server_after_kib as f64 - ours.server_before_kib as f64) / n as f64),
        mib(ours.server_before_kib as f64),
        mib(ours.server_after_kib as f64)
    );
    if let Some(p) = &theirs {
        println!(
            "  podman conmon: {:.2} MB PSS per Pod ({} conmon processes for {} Pods, {:.2} MB RSS each; \
             {} containers running)",
            mib(p.conmon_pss_kib as f64 / p.pods as f64),
            p.conmons,
            p.pods,
            mib(p.conmon_rss_kib as f64 / p.conmons.max(1) as f64),
            p.running_containers
        );
        println!(
            "  podman pause:  {:.2} MB PSS per Pod besides (the infra container's catatonit)",
            mib(p.pause_pss_kib as f64 / p.pods as f64)
        );
        println!(
            "  peapod shim PSS / podman conmon PSS: {:.2}",
            ours.shim_pss_kib as f64 / p.conmon_pss_kib.max(1) as f64
        );
    }
    println!("target: ≤ 1 MB per Pod");

    println!();
    if ours.leaks.is_empty() {
        println!("cleanup: all Pods deleted through the API, server stopped, no peapod shim of the bench left");
    } else {
        println!("cleanup: LEFT ON THE HOST:\n  {}", ours.leaks.join("\n  "));
    }
    if let Some(p) = &theirs {
        println!(
            "cleanup: podman pods removed, {} conmon processes of the bench left",
            p.conmons_left
        );
    }
    if !ours.leaks.is_empty() {
        bail!("{} things of the bench's Pods were left on the host", ours.leaks.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Counts per key, for tests of the process filters.
    fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
        let mut m = BTreeMap::new();
        for i in items {
            *m.entry(i).or_insert(0) += 1;
        }
        m
    }

    fn proc_of(pid: i32, args: &[&str]) -> Proc {
        Proc {
            pid,
            ppid: 1,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn stats_of_samples() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = stats(&v);
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!(s.mean, 50.5);
        let one = stats(&[7.0]);
        assert_eq!((one.p50, one.p99, one.mean), (7.0, 7.0, 7.0));
        assert!(stats(&[]).p50.is_nan());
        // Order of the input does not matter.
        assert_eq!(stats(&[3.0, 1.0, 2.0]).p50, 2.0);
    }

    #[test]
    fn running_needs_phase_and_every_container_running() {
        let mut p = json!({"status": {"phase": "Pending",
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert!(!is_running(&p));
        p["status"]["phase"] = json!("Running");
        assert!(!is_running(&p));
        p["status"]["containerStatuses"][0]["state"] = json!({"running": {"startedAt": "2024-01-01T00:00:00Z"}});
        assert!(is_running(&p));
        p["status"]["containerStatuses"] = json!([]);
        assert!(!is_running(&p));
        assert!(!is_running(&json!({"status": {"phase": "Running"}})));
    }

    #[test]
    fn smaps_rollup_fields() {
        let text = "55d0c0a00000-7ffd4b3f2000 ---p 00000000 00:00 0  [rollup]\n\
                    Rss:                3804 kB\nPss:                1187 kB\nPss_Anon:            652 kB\n";
        assert_eq!(field_kib(text, "Pss"), Some(1187));
        assert_eq!(field_kib(text, "Rss"), Some(3804));
        assert_eq!(field_kib(text, "Swap"), None);
        // Our own process has a rollup with both fields.
        let own = pss_rss_kib(std::process::id() as i32).unwrap();
        assert!(own.0 > 0 && own.1 >= own.0);
    }

    #[test]
    fn ppid_after_the_command_name() {
        assert_eq!(stat_ppid("123 (a b) c) S 45 123 123 0"), Some(45));
        assert_eq!(stat_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(stat_ppid("garbage"), None);
    }

    #[test]
    fn picks_the_bench_shims_and_conmons_only() {
        let run = "/tmp/pp-benchX/d/run";
        let procs = [
            proc_of(
                1,
                &[
                    "/usr/bin/peapod",
                    "shim",
                    "--dir",
                    "/tmp/pp-benchX/d/run/pods/u1",
                    "--hostname",
                    "a",
                ],
            ),
            proc_of(2, &["/usr/bin/peapod", "shim", "--dir", "/run/peapod/pods/u2"]),
            proc_of(3, &["/usr/bin/peapod", "server", "--run-dir", run]),
            proc_of(
                4,
                &[
                    "/usr/bin/conmon",
                    "-b",
                    "/tmp/pp-bench-podmanY/root/overlay-containers/x",
                ],
            ),
            proc_of(
                5,
                &[
                    "/usr/bin/conmon",
                    "-b",
                    "/var/lib/containers/storage/overlay-containers/x",
                ],
            ),
            proc_of(6, &["/bin/sh", "-c", "echo /tmp/pp-bench-podmanY conmon"]),
        ];
        let kinds = count_by(procs.iter().map(|p| {
            if is_bench_shim(p, run) {
                "shim"
            } else if is_bench_conmon(p, "/tmp/pp-bench-podmanY") {
                "conmon"
            } else {
                "other"
            }
        }));
        assert_eq!(kinds.get("shim"), Some(&1));
        assert_eq!(kinds.get("conmon"), Some(&1));
        assert_eq!(kinds.get("other"), Some(&4));
        assert!(is_bench_shim(&procs[0], run));
        assert!(is_bench_conmon(&procs[3], "/tmp/pp-bench-podmanY"));
    }

    #[test]
    fn manifest_is_the_one_container_busybox_pod() {
        let m = pod_manifest("p", IMAGE);
        assert_eq!(m["metadata"]["name"], "p");
        assert_eq!(m["spec"]["containers"].as_array().map(Vec::len), Some(1));
        assert_eq!(m["spec"]["containers"][0]["image"], "busybox:1.35");
        assert_eq!(m["spec"]["containers"][0]["command"], json!(["sleep", "3600"]));
    }
}
