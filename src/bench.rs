//! `peapod bench …`: benchmarks that print figures (medians and percentiles), never assertions. Each starts a real
//! `peapod server` child process on a free loopback port with a fresh data dir and drives it over HTTPS like a
//! client would.

use anyhow::{anyhow, bail, Context, Result};
use peapod_client::{Client, Config};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Declared here rather than in main.rs, which belongs to others; the file is src/bench_pods.rs.
#[path = "bench_pods.rs"]
mod bench_pods;

#[derive(clap::Subcommand)]
pub enum Which {
    /// The image store: load, unpack MB/s, registry pull, container-root preparation; beside Podman.
    Image {
        /// The nginx docker-archive (default: built by tests/images/build.sh).
        #[arg(long)]
        archive: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Runs of the container-root figure.
        #[arg(long, default_value_t = 200)]
        root_runs: usize,
    },
    /// Pods through the node agent: create → Running latency, memory per Pod; beside Podman's `kube play`.
    Pods {
        /// Pods created (one at a time) and kept running for the memory figure.
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// The server's data dir (default: a fresh temporary one).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The API server: creates/s, list latency (JSON and Table), watch fan-out delay, idle RSS.
    Api {
        /// Pods in the listed collection.
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        /// Concurrent clients for the parallel create figure.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Watchers for the fan-out figure.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
    },
}

pub async fn run(which: Which) -> Result<()> {
    match which {
        Which::Image {
            archive,
            runs,
            root_runs,
        } => tokio::task::spawn_blocking(move || crate::bench_image::image(archive, runs, root_runs)).await?,
        Which::Pods { pods, data_dir } => bench_pods::pods(pods, data_dir).await,
        Which::Api {
            pods,
            clients,
            watchers,
        } => api(pods, clients, watchers).await,
    }
}

/// A server child process with its own data dir.
struct ServerProcess {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_server() -> Result<ServerProcess> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "server",
            "--disable-agent",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("PEAPOD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start peapod server")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Peapod API server ready") => break,
            Some(Ok(_)) => continue,
            _ => bail!("the server exited before it was ready"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(ServerProcess {
        child,
        kubeconfig: dir.path().join("kubeconfig.yaml"),
        _dir: dir,
    })
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.35", "command": ["sleep", "3600"],
                                  "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "b"}]}]}
    })
}

async fn create_ns(c: &Client, ns: &str) -> Result<()> {
    c.create(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

async fn api(pods: usize, clients: usize, watchers: usize) -> Result<()> {
    let server = start_server()?;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid)?;
    let cfg = Config::from_kubeconfig(&server.kubeconfig)?;
    let c = Client::connect(&cfg).await?;

    // Sequential creates.
    create_ns(&c, "bench-seq").await?;
    let t = Instant::now();
    for i in 0..pods {
        c.create("/api/v1/namespaces/bench-seq/pods", &pod(&format!("p-{i:05}")))
            .await?;
    }
    let seq = pods as f64 / t.elapsed().as_secs_f64();

    // Concurrent creates: `clients` connections, each creating its share.
    create_ns(&c, "bench-par").await?;
    let per = pods.max(clients) / clients;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Client::connect(&cfg).await?);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (k, cl) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                cl.create("/api/v1/namespaces/bench-par/pods", &pod(&format!("c{k:02}-{i:05}")))
                    .await?;
            }
            Ok::<_, peapod_client::ClientError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let par = (per * clients) as f64 / t.elapsed().as_secs_f64();

    // Lists of `pods` Pods, JSON and Table.
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let mut lat_json = Vec::new();
    let mut lat_table = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let (s, b) = c
            .send_raw(
                http::Method::GET,
                "/api/v1/namespaces/bench-seq/pods",
                None,
                "application/json",
                "application/json",
            )
            .await?;
        if !s.is_success() || b.len() < pods * 100 {
            bail!("list failed: {s}");
        }
        lat_json.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let (s, _) = c
            .send_raw(
                http::Method::GET,
                "/api/v1/namespaces/bench-seq/pods?limit=500",
                None,
                "application/json",
                table,
            )
            .await?;
        if !s.is_success() {
            bail!("table list failed: {s}");
        }
        lat_table.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The Table figure reads all pages, as kubectl does.
    let mut lat_table_full = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut path = "/api/v1/namespaces/bench-seq/pods?limit=500".to_string();
        loop {
            let (_, b) = c
                .send_raw(http::Method::GET, &path, None, "application/json", table)
                .await?;
            let v: Value = serde_json::from_slice(&b)?;
            match v
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(cont) => path = format!("/api/v1/namespaces/bench-seq/pods?limit=500&continue={cont}"),
                None => break,
            }
        }
        lat_table_full.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Watch fan-out: `watchers` watches on one namespace, then timed creates.
    create_ns(&c, "bench-watch").await?;
    let rev = c.get("/api/v1/namespaces/bench-watch/pods").await?;
    let rv = rev
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let wc = Client::connect(&cfg).await?;
    let events = 20usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut handles = Vec::new();
    for _ in 0..watchers {
        let mut w = wc
            .watch(&format!(
                "/api/v1/namespaces/bench-watch/pods?watch=true&resourceVersion={rv}"
            ))
            .await?;
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            let mut seen = 0;
            while let Some(Ok(ev)) = w.next().await {
                if let Some(n) = ev.pointer("/object/metadata/name").and_then(Value::as_str) {
                    let _ = tx.send((n.to_string(), Instant::now()));
                }
                seen += 1;
                if seen == events {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut sent = std::collections::HashMap::new();
    for i in 0..events {
        let name = format!("w-{i:03}");
        let t = Instant::now();
        c.create("/api/v1/namespaces/bench-watch/pods", &pod(&name)).await?;
        sent.insert(name, t);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays = Vec::new();
    while let Some((name, at)) = rx.recv().await {
        if let Some(t) = sent.get(&name) {
            delays.push(at.duration_since(*t).as_secs_f64() * 1e3);
        }
    }
    for h in handles {
        let _ = h.await;
    }
    let loaded_rss = rss_kib(pid)?;

    let (j50, j99) = summary(lat_json);
    let (t50, t99) = summary(lat_table);
    let (f50, f99) = summary(lat_table_full);
    let (w50, w99) = summary(delays.clone());
    println!(
        "peapod bench api ({} CPUs, pods={pods}, clients={clients}, watchers={watchers})",
        num_cpus()
    );
    println!("{:<52} {:>12}", "figure", "value");
    println!("{:<52} {:>12.0}", "creates/s, 1 client (sequential)", seq);
    println!(
        "{:<52} {:>12.0}",
        format!("creates/s, {clients} concurrent clients"),
        par
    );
    println!(
        "{:<52} {:>5.1} / {:>4.1}",
        format!("list {pods} pods JSON, ms p50 / p99"),
        j50,
        j99
    );
    println!(
        "{:<52} {:>5.1} / {:>4.1}",
        "list 500 pods Table (one page), ms p50 / p99", t50, t99
    );
    println!(
        "{:<52} {:>5.1} / {:>4.1}",
        format!("list {pods} pods Table (all pages), ms p50 / p99"),
        f50,
        f99
    );
    println!(
        "{:<52} {:>5.1} / {:>4.1}",
        format!("watch delay, {watchers} watchers x {events} events, ms p50 / p99"),
        w50,
        w99
    );
    println!("{:<52} {:>12}", "events delivered", delays.len());
    println!(
        "{:<52} {:>9.1} MB",
        "idle server RSS (fresh, after start)",
        idle_rss as f64 / 1024.0
    );
    println!(
        "{:<52} {:>9.1} MB",
        "server RSS after the run",
        loaded_rss as f64 / 1024.0
    );
    println!("targets: >= 1000 creates/s; list of 1000 pods <= 20 ms; idle RSS <= 40 MB");
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
