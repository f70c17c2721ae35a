//! The agent's main loop: set up the node (image store, network, node server, Node object, Lease), list and watch
//! the Pods bound to this node (`spec.nodeName=<node>`), and hand each Pod to its [`PodWorker`]. On start it
//! re-adopts the shims of Pods that still exist and tears down what belongs to Pods that are gone, so an agent
//! restart neither restarts containers nor leaks anything.

use crate::server::{LocateError, NodeServerConfig, PodLogs};
use crate::worker::{PodWorker, WorkerMsg};
use crate::{AgentConfig, AgentContext, NodeError};
use k8s_openapi::api::core::v1::Pod;
use peapod_client::Client;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where the node server finds each Pod's container logs: (namespace, name) → entry.
pub type LogIndex = Arc<Mutex<HashMap<(String, String), LogEntry>>>;

/// A Pod's containers, for the node server.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    pub uid: String,
    /// Container name → its instances (attempts).
    pub containers: HashMap<String, Vec<LogInstance>>,
    /// Container name → the reason it waits, if it does.
    pub waiting: HashMap<String, String>,
}

/// One instance of a container.
#[derive(Debug, Clone)]
pub struct LogInstance {
    pub path: PathBuf,
    pub attempt: u32,
    pub running: Option<watch::Receiver<bool>>,
    pub exited: bool,
}

/// The agent's answer to "which log file?" with the kubelet's errors (reference/pod-behaviour.md §9.2).
struct IndexedLogs(LogIndex);

impl PodLogs for IndexedLogs {
    fn locate(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Result<(PathBuf, watch::Receiver<bool>), LocateError> {
        let index = self
            .0
            .lock()
            .map_err(|_| LocateError::NotFound(format!("pod {name:?} does not exist")))?;
        let Some(entry) = index.get(&(namespace.to_string(), name.to_string())) else {
            return Err(LocateError::NotFound(format!(
                "pod {name:?} cannot be found - no logs available"
            )));
        };
        let mut instances = entry.containers.get(container).cloned().unwrap_or_default();
        instances.sort_by_key(|i| std::cmp::Reverse(i.attempt));
        let waiting = entry.waiting.get(container);
        let pick = |i: &LogInstance| {
            let rx = i.running.clone().unwrap_or_else(|| watch::channel(false).1);
            (i.path.clone(), rx)
        };
        if previous {
            // The previous instance: the one before the newest, or the newest if it exited and waits for a restart.
            let inst = match (instances.first(), waiting) {
                (Some(n), Some(_)) if n.exited => Some(n),
                _ => instances.get(1),
            };
            return inst.map(pick).ok_or_else(|| {
                LocateError::Unavailable(format!(
                    "previous terminated container {container:?} in pod {name:?} not found"
                ))
            });
        }
        match (instances.first(), waiting) {
            (Some(n), _) => Ok(pick(n)),
            (None, Some(reason)) => {
                let why = match reason.as_str() {
                    "ErrImagePull" => "image can't be pulled".to_string(),
                    "ImagePullBackOff" => "trying and failing to pull image".to_string(),
                    other => other.to_string(),
                };
                Err(LocateError::Unavailable(format!(
                    "container {container:?} in pod {name:?} is waiting to start: {why}"
                )))
            }
            (None, None) => Err(LocateError::Unavailable(format!(
                "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
            ))),
        }
    }
}

/// The node's address: the source address of the route to a documentation address (nothing is sent).
pub fn detect_node_ip() -> std::net::Ipv4Addr {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0");
    let ip = sock
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        });
    ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST)
}

/// Runs the agent until the process ends.
pub async fn run(config: AgentConfig, client: Client) -> Result<(), NodeError> {
    peapod_image::pull::install_crypto_provider();
    let host = crate::node::HostFacts::read(&config);
    for d in [
        config.run_dir.join("pods"),
        config.run_dir.join("runc"),
        config.data_dir.join("pods"),
        config.pod_log_dir.clone(),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| NodeError::Register {
            node: config.node_name.clone(),
            message: format!("create {}: {e}", d.display()),
        })?;
    }
    let images = peapod_image::store::ImageStore::open(&config.data_dir.join("images"))?;
    let puller = Arc::new(
        peapod_image::pull::Puller::new(images.clone(), config.registries.clone())
            .with_insecure(config.insecure_registries.clone()),
    );
    let network = peapod_network::PodNetwork::setup(config.network.clone()).await?;
    let cgroups = peapod_runtime::cgroup::Cgroups::detect(std::path::Path::new(peapod_runtime::cgroup::CGROUP_ROOT));
    let (_, allocatable) = crate::node::resources(&host, config.max_pods);
    let allocatable = serde_json::from_value(allocatable).unwrap_or_default();
    let log_index: LogIndex = Arc::new(Mutex::new(HashMap::new()));
    let (server_addr, _server_task) = crate::server::serve(
        NodeServerConfig {
            listen: config.server_listen,
            cert_pem: config.server_cert_pem.clone(),
            key_pem: config.server_key_pem.clone(),
            client_ca_pem: config.client_ca_pem.clone(),
        },
        Arc::new(IndexedLogs(log_index.clone())),
    )
    .await
    .map_err(|e| NodeError::Server(e.to_string()))?;
    crate::node::register(&client, &config, &host, server_addr.port()).await?;
    tokio::spawn(crate::node::heartbeat(
        client.clone(),
        config.clone(),
        host.clone(),
        server_addr.port(),
    ));
    let recorder = peapod_client::events::EventRecorder::new(client.clone(), "kubelet", Some(&config.node_name));
    let ctx = Arc::new(AgentContext {
        memory_capacity: host.memory_bytes,
        config,
        client,
        recorder,
        images,
        puller,
        network,
        cgroups,
        allocatable,
        log_index,
    });
    tracing::info!(node = %ctx.config.node_name, "node agent ready");
    watch_pods(ctx).await
}

/// Lists and watches this node's Pods forever, dispatching to workers.
async fn watch_pods(ctx: Arc<AgentContext>) -> Result<(), NodeError> {
    let node = ctx.config.node_name.clone();
    let selector = format!("spec.nodeName%3D{node}");
    let mut workers: HashMap<String, mpsc::Sender<WorkerMsg>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut first = true;
    // Back-off for a failing list or watch: 250 ms doubling to 10 s, reset by success.
    let mut retry = Duration::from_millis(250);
    loop {
        let list = match ctx.client.get(&format!("/api/v1/pods?fieldSelector={selector}")).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "list this node's pods");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        retry = Duration::from_millis(250);
        let rv = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string();
        let pods: Vec<Pod> = list
            .get("items")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| serde_json::from_value(p.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let live: std::collections::HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        if first {
            first = false;
            cleanup_orphans(&ctx, &live).await;
        }
        for (uid, tx) in &workers {
            if !live.contains(uid) {
                let _ = tx.send(WorkerMsg::Removed).await;
            }
        }
        for p in pods {
            dispatch(&ctx, &mut workers, &done_tx, p).await;
        }
        let mut stream = match ctx
            .client
            .watch(&format!(
                "/api/v1/pods?fieldSelector={selector}&watch=true&resourceVersion={rv}&allowWatchBookmarks=true"
            ))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "watch this node's pods");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                ev = stream.next() => {
                    let Some(Ok(ev)) = ev else { break };
                    let kind = ev.get("type").and_then(Value::as_str).unwrap_or("");
                    let obj = ev.get("object").cloned().unwrap_or(Value::Null);
                    match kind {
                        "ADDED" | "MODIFIED" => {
                            if let Ok(p) = serde_json::from_value::<Pod>(obj) {
                                dispatch(&ctx, &mut workers, &done_tx, p).await;
                            }
                        }
                        "DELETED" => {
                            let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
                            if let Some(tx) = workers.get(uid) {
                                let _ = tx.send(WorkerMsg::Removed).await;
                            }
                        }
                        "ERROR" => break,
                        _ => {}
                    }
                }
                Some(uid) = done_rx.recv() => { workers.remove(&uid); }
            }
        }
        // The watch ended: list again (a resync) and watch from there.
    }
}

async fn dispatch(
    ctx: &Arc<AgentContext>,
    workers: &mut HashMap<String, mpsc::Sender<WorkerMsg>>,
    done: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    if let Some(tx) = workers.get(&uid) {
        if tx.send(WorkerMsg::Update(Box::new(pod))).await.is_ok() {
            return;
        }
        workers.remove(&uid);
        return;
    }
    let (worker, tx) = PodWorker::new(ctx.clone(), pod);
    workers.insert(uid.clone(), tx);
    let done = done.clone();
    tokio::spawn(async move {
        worker.run().await;
        let _ = done.send(uid);
    });
}

/// Removes what belongs to Pods that no longer exist: their shims and containers, namespaces, IPs, volumes,
/// roots, cgroups and logs.
async fn cleanup_orphans(ctx: &Arc<AgentContext>, live: &std::collections::HashSet<String>) {
    let mut uids = std::collections::BTreeSet::new();
    for dir in [ctx.config.run_dir.join("pods"), ctx.config.data_dir.join("pods")] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                uids.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    if let Ok(allocs) = ctx.network.allocations() {
        uids.extend(allocs.into_iter().map(|(_, u)| u));
    }
    for uid in uids.into_iter().filter(|u| !live.contains(u)) {
        let paths = crate::sandbox::PodPaths {
            run: ctx.config.run_dir.join("pods").join(&uid),
            data: ctx.config.data_dir.join("pods").join(&uid),
            logs: PathBuf::new(),
        };
        tracing::info!(pod.uid = %uid, "removing what is left of a Pod that no longer exists");
        if let Err(e) = crate::sandbox::destroy(ctx, &paths, &uid).await {
            tracing::warn!(pod.uid = %uid, error = %e, "clean up an orphaned Pod");
        }
    }
    if let Ok(rd) = std::fs::read_dir(&ctx.config.pod_log_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let uid = name.rsplit('_').next().unwrap_or("");
            if !uid.is_empty() && !live.contains(uid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
