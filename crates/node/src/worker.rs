//! A Pod's worker: one task per Pod that drives it towards its spec, as the kubelet's pod worker and
//! `SyncPod` do. It wakes on a new version of the Pod, on an exit reported by the Pod's shim, or when a back-off
//! ends — never on a polling timer — and each time it:
//!
//! 1. tears everything down if the Pod is being deleted (stop signal, grace period, SIGKILL, sandbox, final
//!    status, then the API object is deleted);
//! 2. creates the sandbox (shim, namespaces, IP) and the volumes if they are missing;
//! 3. runs init containers one at a time, then every app container, restarting exited ones by `restartPolicy`
//!    with the crash-loop back-off;
//! 4. computes the status in `peapod-api` and patches `pods/status` when it changed.

use crate::agent::{LogEntry, LogInstance};
use crate::container::{self, EnvSources};
use crate::images::{self, PullState};
use crate::sandbox::{self, PodPaths};
use crate::status::{self, ImageInfo, Waiting};
use crate::AgentContext;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use peapod_api::pod_status::{self, RestartBackoff};
use peapod_client::events::ObjectRef;
use peapod_client::PatchType;
use peapod_runtime::protocol::StartContainer;
use peapod_runtime::{ContainerRecord, ShimClient};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// How long the kubelet waits before retrying a Pod whose sync failed (`backOffPeriod`).
pub const SYNC_RETRY: Duration = Duration::from_secs(10);
/// After `ErrImagePull` the kubelet's next sync, a few seconds later and still inside the 10 s pull back-off, shows
/// `ImagePullBackOff`.
pub const IMAGE_BACKOFF_SHOW: Duration = Duration::from_secs(5);
/// The minimum grace a container gets on a graceful stop (`minimumGracePeriodInSeconds`).
pub const MIN_GRACE_SECONDS: i64 = 2;
/// The default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What wakes a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// A new version of the Pod from the watch.
    Update(Box<Pod>),
    /// The Pod object is gone from the API.
    Removed,
    /// The shim reported an exit.
    ShimEvent,
}

/// The event reference of a Pod, from its metadata (no serialisation of the whole Pod on the start path).
pub fn pod_ref(pod: &Pod) -> ObjectRef {
    let m = &pod.metadata;
    ObjectRef {
        kind: "Pod".into(),
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        api_version: "v1".into(),
        resource_version: m.resource_version.clone().unwrap_or_default(),
        field_path: None,
    }
}

/// The field path of a container in events (`spec.containers{name}`, `spec.initContainers{name}`).
pub fn field_path(pod: &Pod, name: &str) -> String {
    let is_init = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.init_containers.iter().flatten().any(|c| c.name == name));
    if is_init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// One Pod's worker.
pub struct PodWorker {
    ctx: Arc<AgentContext>,
    pod: Pod,
    uid: String,
    name: String,
    namespace: String,
    paths: PodPaths,
    rx: mpsc::Receiver<WorkerMsg>,
    tx: mpsc::Sender<WorkerMsg>,
    shim: Option<ShimClient>,
    pod_ip: Option<Ipv4Addr>,
    records: Vec<ContainerRecord>,
    waiting: HashMap<String, Waiting>,
    images: HashMap<String, ImageInfo>,
    crash_backoff: HashMap<String, RestartBackoff>,
    pulls: PullState,
    volumes_ready: bool,
    prepared: Option<crate::volumes::PreparedVolumes>,
    start_time: Option<String>,
    last_status: Option<Value>,
    wake_at: Option<Instant>,
    /// The object was deleted from the API (force delete, or our own final delete).
    removed: bool,
    /// The Pod reached Succeeded/Failed and its sandbox was released.
    finished: bool,
    /// Senders telling log followers whether a container instance still runs.
    running: HashMap<String, tokio::sync::watch::Sender<bool>>,
    /// A status PATCH still in flight.
    pending_patch: Option<tokio::task::JoinHandle<(Value, Result<Value, String>)>>,
    /// Events go through one task per worker: recorded in order, without the Pod's start waiting on the API.
    events: images::EventQueue,
}

impl PodWorker {
    pub fn new(ctx: Arc<AgentContext>, pod: Pod) -> (PodWorker, mpsc::Sender<WorkerMsg>) {
        let (tx, rx) = mpsc::channel(64);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let paths = PodPaths::new(&ctx, &namespace, &name, &uid);
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string());
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) && !paths.run.exists();
        let (events, mut queue) = mpsc::unbounded_channel::<(ObjectRef, &'static str, &'static str, String)>();
        let recorder = ctx.recorder.clone();
        tokio::spawn(async move {
            while let Some((obj, type_, reason, message)) = queue.recv().await {
                recorder.record(&obj, type_, reason, &message).await;
            }
        });
        let w = PodWorker {
            ctx,
            pod,
            uid,
            name,
            namespace,
            paths,
            rx,
            tx: tx.clone(),
            shim: None,
            pod_ip: None,
            records: Vec::new(),
            waiting: HashMap::new(),
            images: HashMap::new(),
            crash_backoff: HashMap::new(),
            pulls: PullState::default(),
            volumes_ready: false,
            prepared: None,
            start_time,
            last_status: None,
            wake_at: None,
            removed: false,
            finished,
            running: HashMap::new(),
            pending_patch: None,
            events,
        };
        (w, tx)
    }

    /// Runs until the Pod is gone from the node and the API.
    pub async fn run(mut self) {
        let span =
            tracing::info_span!("pod", pod.namespace = %self.namespace, pod.name = %self.name, pod.uid = %self.uid);
        async move {
            self.adopt().await;
            loop {
                if self.sync().await {
                    break;
                }
                let msg = match self.wake_at {
                    Some(at) => tokio::select! {
                        m = self.rx.recv() => m,
                        _ = tokio::time::sleep_until(at) => { self.wake_at = None; continue; }
                    },
                    None => self.rx.recv().await,
                };
                let Some(msg) = msg else { break };
                self.apply(msg);
                // Coalesce whatever else is queued into one sync.
                while let Ok(m) = self.rx.try_recv() {
                    self.apply(m);
                }
            }
            self.ctx
                .log_index
                .lock()
                .map(|mut i| i.remove(&(self.namespace.clone(), self.name.clone())))
                .ok();
        }
        .instrument(span)
        .await
    }

    fn apply(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Update(p) => {
                if p.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                    self.pod = *p;
                }
            }
            WorkerMsg::Removed => self.removed = true,
            WorkerMsg::ShimEvent => {}
        }
    }

    fn obj(&self) -> ObjectRef {
        pod_ref(&self.pod)
    }

    async fn event(&self, container: Option<&str>, type_: &'static str, reason: &'static str, message: &str) {
        let mut o = self.obj();
        if let Some(c) = container {
            o = o.with_field_path(field_path(&self.pod, c));
        }
        let _ = self.events.send((o, type_, reason, message.to_string()));
    }

    /// After an agent restart: find the Pod's shim, take its records, and listen to it again. Containers that
    /// still match the spec are kept running untouched.
    async fn adopt(&mut self) {
        if !self.paths.run.join(peapod_runtime::shim::SOCKET).exists() {
            return;
        }
        let shim = ShimClient::new(&self.paths.run);
        match shim.status().await {
            Ok((_, records)) => {
                self.records = records;
                self.pod_ip = self
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok())
                    .or_else(|| self.allocated_ip());
                self.listen(&shim).await;
                self.shim = Some(shim);
                self.volumes_ready = false;
                tracing::info!(containers = self.records.len(), "adopted the Pod's shim");
            }
            Err(e) => tracing::warn!(error = %e, "the Pod's shim does not answer; it will be recreated"),
        }
    }

    fn allocated_ip(&self) -> Option<Ipv4Addr> {
        self.ctx
            .network
            .allocations()
            .ok()?
            .into_iter()
            .find(|(_, u)| *u == self.uid)
            .map(|(ip, _)| ip)
    }

    /// Forwards the shim's exit events into this worker's queue.
    async fn listen(&self, shim: &ShimClient) {
        match shim.subscribe().await {
            Ok(mut events) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    while events.next().await.is_some() {
                        if tx.send(WorkerMsg::ShimEvent).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "subscribe to the shim"),
        }
    }

    async fn refresh(&mut self) {
        if let Some(shim) = &self.shim {
            match shim.status().await {
                Ok((_, records)) => self.records = records,
                Err(e) => tracing::warn!(error = %e, "read container records from the shim"),
            }
        }
        for r in &self.records {
            if let Some(tx) = self.running.get(&r.id) {
                let _ = tx.send(r.exit.is_none());
            }
        }
    }

    fn spec_containers(&self) -> (Vec<Container>, Vec<Container>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        (spec.init_containers.unwrap_or_default(), spec.containers)
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn newest(&self, name: &str) -> Option<&ContainerRecord> {
        self.records.iter().filter(|r| r.name == name).max_by_key(|r| r.attempt)
    }

    /// One pass. Returns true when the worker is done (the Pod is gone).
    async fn sync(&mut self) -> bool {
        if self.removed || self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate().await;
        }
        if self.finished {
            return false;
        }
        if self.shim.is_none() {
            if let Err(e) = self.create_sandbox().await {
                self.event(
                    None,
                    "Warning",
                    "FailedCreatePodSandBox",
                    &format!("Failed to create pod sandbox: {e}"),
                )
                .await;
                self.wake_at = Some(Instant::now() + SYNC_RETRY);
                self.patch_status(false).await;
                return false;
            }
            // As the kubelet's status manager does at the start of a sync: the Pod has its IP and its containers
            // are ContainerCreating (what `kubectl get pods --watch` shows before Running), sent while the
            // containers start.
            self.update_status(true, true).await;
        }
        self.refresh().await;
        if !self.volumes_ready {
            match self.prepare_volumes().await {
                Ok(()) => self.volumes_ready = true,
                Err(msg) => {
                    self.event(None, "Warning", "FailedMount", &msg).await;
                    self.wake_at = Some(Instant::now() + Duration::from_secs(2));
                    self.patch_status(true).await;
                    return false;
                }
            }
        }
        self.run_containers().await;
        self.refresh().await;
        let phase = self.patch_status(true).await;
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            self.finish().await;
        }
        false
    }

    async fn create_sandbox(&mut self) -> Result<(), String> {
        let host_ports: Vec<peapod_network::HostPort> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()))
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let hp = p.host_port.filter(|h| *h > 0)?;
                Some(peapod_network::HostPort {
                    host_port: hp as u16,
                    container_port: p.container_port as u16,
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => peapod_network::Protocol::Udp,
                        Some("SCTP") => peapod_network::Protocol::Sctp,
                        _ => peapod_network::Protocol::Tcp,
                    },
                    host_ip: p.host_ip.as_deref().and_then(|h| h.parse().ok()),
                })
            })
            .collect();
        let (shim, ip) = sandbox::create(&self.ctx, &self.paths, &self.pod, &host_ports).await?;
        self.listen(&shim).await;
        self.shim = Some(shim);
        self.pod_ip = Some(ip);
        if self.start_time.is_none() {
            self.start_time = Some(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        Ok(())
    }

    fn facts(&self) -> crate::volumes::PodFacts {
        crate::volumes::PodFacts {
            node_name: self.ctx.config.node_name.clone(),
            pod_ip: self.pod_ip.map(|i| i.to_string()),
            host_ip: Some(self.ctx.config.node_ip.to_string()),
            allocatable: self.ctx.allocatable.clone(),
        }
    }

    async fn fetch<T: serde::de::DeserializeOwned>(&self, kind: &str, name: &str) -> Option<T> {
        let path = format!("/api/v1/namespaces/{}/{kind}/{name}", self.namespace);
        let v = self.ctx.client.get(&path).await.ok()?;
        serde_json::from_value(v).ok()
    }

    async fn prepare_volumes(&mut self) -> Result<(), String> {
        let mut inputs = crate::volumes::VolumeInputs {
            facts: self.facts(),
            ..Default::default()
        };
        for need in crate::volumes::referenced_objects(&self.pod) {
            match need.kind {
                crate::volumes::ObjectKind::ConfigMap => {
                    if let Some(cm) = self.fetch::<ConfigMap>("configmaps", &need.name).await {
                        inputs.config_maps.insert(need.name.clone(), cm);
                    }
                }
                crate::volumes::ObjectKind::Secret => {
                    if let Some(s) = self.fetch::<Secret>("secrets", &need.name).await {
                        inputs.secrets.insert(need.name.clone(), s);
                    }
                }
            }
        }
        inputs.ca_crt = Some(self.ctx.config.client_ca_pem.clone().into_bytes());
        inputs.service_account_token = self.service_account_token().await?;
        let pod = self.pod.clone();
        let dir = self.paths.data.clone();
        let prepared = tokio::task::spawn_blocking(move || crate::volumes::prepare(&pod, &dir, &inputs))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.prepared = Some(prepared);
        Ok(())
    }

    /// A token for the Pod's service account when a projected volume asks for one: a TokenRequest bound to this
    /// Pod (so it stops working when the Pod goes), with the projection's audience and lifetime, as the kubelet's
    /// token manager asks for it.
    async fn service_account_token(&self) -> Result<Option<String>, String> {
        let spec = self.pod.spec.as_ref();
        let projection = spec
            .into_iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.projected.as_ref())
            .flat_map(|p| p.sources.iter().flatten())
            .find_map(|s| s.service_account_token.clone());
        let Some(projection) = projection else { return Ok(None) };
        let sa = spec
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut spec_json = json!({
            "expirationSeconds": projection.expiration_seconds.unwrap_or(3607),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid},
        });
        if let Some(aud) = projection.audience.filter(|a| !a.is_empty()) {
            spec_json["audiences"] = json!([aud]);
        }
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec_json});
        let path = format!("/api/v1/namespaces/{}/serviceaccounts/{sa}/token", self.namespace);
        let reply = self.ctx.client.create(&path, &body).await.map_err(|e| {
            format!(
                "MountVolume.SetUp failed for projected service account token of pod {}/{}: {e}",
                self.namespace, self.name
            )
        })?;
        Ok(reply
            .pointer("/status/token")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Init containers in order, then app containers, as `computePodActions` decides.
    async fn run_containers(&mut self) {
        let (inits, apps) = self.spec_containers();
        let policy = self.restart_policy();
        for c in &inits {
            let sidecar = pod_status::is_sidecar(c);
            match self.newest(&c.name).cloned() {
                None => {
                    self.start(c, 0).await;
                    if !sidecar || self.newest(&c.name).is_none_or(|r| r.exit.is_some()) {
                        return;
                    }
                }
                Some(r) if r.exit.is_none() => {
                    if !sidecar {
                        return;
                    }
                }
                Some(r) => {
                    let code = r.exit.as_ref().map(|e| e.code).unwrap_or(0);
                    if !sidecar && code == 0 {
                        continue;
                    }
                    if !sidecar && policy == "Never" {
                        return;
                    }
                    self.restart(c, &r).await;
                    return;
                }
            }
        }
        for c in &apps {
            match self.newest(&c.name).cloned() {
                None => self.start(c, 0).await,
                Some(r) if r.exit.is_none() => {
                    if definition_changed(c, &r) {
                        // The only mutable field of a container is its image; the kubelet restarts it.
                        let msg = format!("Container {} definition changed, will be restarted", c.name);
                        self.event(Some(&c.name), "Normal", "Killing", &msg).await;
                        let grace = self
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(DEFAULT_GRACE_SECONDS)
                            .max(MIN_GRACE_SECONDS) as u64;
                        if let Some(shim) = &self.shim {
                            if let Err(e) = shim.stop(&r.id, stop_signal(&r), grace).await {
                                tracing::warn!(container = %c.name, error = %e, "stop a changed container");
                            }
                        }
                    }
                }
                Some(r) => {
                    let code = r.exit.as_ref().map(|e| e.code).unwrap_or(0);
                    if pod_status::should_restart(&policy, code) {
                        self.restart(c, &r).await;
                    }
                }
            }
        }
    }

    /// Restarts an exited container unless it is backing off (kubelet's `doBackOff`).
    async fn restart(&mut self, c: &Container, last: &ContainerRecord) {
        let finished: Timestamp = last
            .exit
            .as_ref()
            .and_then(|e| e.finished_at.parse().ok())
            .unwrap_or_else(Timestamp::now);
        let now = Timestamp::now();
        let b = self
            .crash_backoff
            .entry(c.name.clone())
            .or_insert_with(RestartBackoff::crash_loop);
        if let Some(left) = b.in_backoff_since(finished, now) {
            let delay = b.current_delay().unwrap_or(left);
            let msg = pod_status::crash_loop_message(delay, &c.name, &self.name, &self.namespace, &self.uid);
            let already = self
                .waiting
                .get(&c.name)
                .is_some_and(|w| w.reason == "CrashLoopBackOff");
            self.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: pod_status::REASON_CRASH_LOOP_BACK_OFF.into(),
                    message: msg,
                },
            );
            if !already {
                let text = pod_status::crash_loop_event_message(&c.name, &self.name, &self.namespace, &self.uid);
                self.event(Some(&c.name), "Warning", "BackOff", &text).await;
            }
            self.wake(left);
            return;
        }
        b.next(finished, now);
        self.start(c, last.attempt + 1).await;
    }

    fn wake(&mut self, after: Duration) {
        let at = Instant::now() + after;
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Pulls the image, prepares the root, builds the spec and asks the shim to run the container.
    async fn start(&mut self, c: &Container, attempt: u32) {
        let Some(shim) = self.shim.clone() else { return };
        // Still backing off a failed pull: nothing to do (or to report again) until the back-off ends.
        let image_name = c.image.clone().unwrap_or_default();
        if self
            .waiting
            .get(&c.name)
            .is_some_and(|w| w.reason == "ImagePullBackOff")
        {
            if let Some(left) = self.pulls.retry_in(&image_name, Timestamp::now()) {
                self.wake(left);
                return;
            }
        }
        let secrets = images::pull_secrets(&self.ctx, &self.pod).await;
        let image = match images::ensure_image(&self.ctx, &mut self.pulls, &self.pod, c, &secrets, &self.events).await {
            Ok(i) => i,
            Err(w) => {
                self.event(Some(&c.name), "Warning", "Failed", &format!("Error: {}", w.reason))
                    .await;
                let image = c.image.clone().unwrap_or_default();
                let wait = match w.reason {
                    "ErrImagePull" => Some(IMAGE_BACKOFF_SHOW),
                    "ImagePullBackOff" => self.pulls.retry_in(&image, Timestamp::now()),
                    _ => Some(SYNC_RETRY),
                };
                if let Some(d) = wait {
                    self.wake(d);
                }
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: w.reason.to_string(),
                        message: w.message,
                    },
                );
                return;
            }
        };
        self.images.insert(
            c.name.clone(),
            ImageInfo {
                image: image.name.clone(),
                image_id: image.repo_digest(),
            },
        );
        match self.create_container(&shim, c, attempt, &image).await {
            Ok(record) => {
                self.waiting.remove(&c.name);
                if let Some(err) = record.exit.as_ref().and_then(|e| e.start_error.clone()) {
                    self.event(Some(&c.name), "Warning", "Failed", &format!("Error: {err}"))
                        .await;
                } else {
                    self.event(
                        Some(&c.name),
                        "Normal",
                        "Created",
                        &format!("Created container {}", c.name),
                    )
                    .await;
                    self.event(
                        Some(&c.name),
                        "Normal",
                        "Started",
                        &format!("Started container {}", c.name),
                    )
                    .await;
                }
                self.records.push(record);
                self.prune(&shim, &c.name, attempt).await;
                self.index_logs();
            }
            Err(msg) => {
                self.event(Some(&c.name), "Warning", "Failed", &format!("Error: {msg}"))
                    .await;
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: msg,
                    },
                );
                self.wake(SYNC_RETRY);
            }
        }
    }

    /// Keeps the newest two instances of a container (the kubelet keeps one dead instance for `--previous`).
    async fn prune(&mut self, shim: &ShimClient, name: &str, attempt: u32) {
        let old: Vec<ContainerRecord> = self
            .records
            .iter()
            .filter(|r| r.name == name && r.attempt + 1 < attempt && r.exit.is_some())
            .cloned()
            .collect();
        for r in old {
            if shim.remove(&r.id).await.is_ok() {
                self.records.retain(|x| x.id != r.id);
                self.running.remove(&r.id);
                let dir = self.paths.container_dir(name, r.attempt);
                let images = self.ctx.images.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let root = peapod_image::rootfs::Rootfs {
                        rootfs: dir.join("rootfs"),
                        lease: sandbox::lease_of(&dir),
                        dir,
                    };
                    peapod_image::rootfs::remove(&images, &root)
                })
                .await;
            }
        }
    }

    async fn create_container(
        &mut self,
        shim: &ShimClient,
        c: &Container,
        attempt: u32,
        image: &peapod_image::store::Image,
    ) -> Result<ContainerRecord, String> {
        let id = new_container_id();
        let (cms, secs) = container::env_references(&self.pod);
        let mut sources = EnvSources::default();
        for n in cms {
            if let Some(cm) = self.fetch::<ConfigMap>("configmaps", &n).await {
                sources.config_maps.insert(n, cm);
            }
        }
        for n in secs {
            if let Some(s) = self.fetch::<Secret>("secrets", &n).await {
                sources.secrets.insert(n, s);
            }
        }
        let hostname = sandbox::pod_hostname(&self.name, self.pod.spec.as_ref().and_then(|s| s.hostname.as_deref()));
        let icfg = image.config.config.clone();
        let env = container::environment(
            &self.pod,
            c,
            icfg.env.as_deref().unwrap_or(&[]),
            &sources,
            &self.facts(),
            &hostname,
        )
        .map_err(|e| e.0)?;
        let dir = self.paths.container_dir(&c.name, attempt);
        let images = self.ctx.images.clone();
        let img = image.clone();
        let lease = format!("{}_{}", self.uid, id);
        let root = tokio::task::spawn_blocking(move || {
            let root = peapod_image::rootfs::prepare(&images, &img, &dir, &lease)?;
            let _ = std::fs::write(dir.join("lease"), &lease);
            Ok::<_, peapod_image::ImageError>(root)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let user =
            container::process_user(&self.pod, c, icfg.user.as_deref().unwrap_or(""), &root.rootfs).map_err(|e| e.0)?;
        let args = container::command_line(
            c,
            icfg.entrypoint.as_deref().unwrap_or(&[]),
            icfg.cmd.as_deref().unwrap_or(&[]),
            &env,
        );
        if args.is_empty() {
            return Err("failed to create containerd container: no command specified".into());
        }
        let prepared = self.prepared.as_ref().ok_or("the Pod's volumes are not ready")?;
        let mut mounts: Vec<peapod_runtime::spec::Mount> = crate::volumes::container_mounts(&self.pod, c, prepared)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| peapod_runtime::spec::Mount {
                destination: m.destination().display().to_string(),
                kind: m.typ().clone().unwrap_or_else(|| "bind".into()),
                source: m.source().as_ref().map(|s| s.display().to_string()).unwrap_or_default(),
                options: m.options().clone().unwrap_or_default(),
            })
            .collect();
        let ro = c
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false);
        let explicit = |dest: &str| mounts.iter().any(|m| m.destination == dest);
        let mut managed = Vec::new();
        if !explicit("/etc/hosts") {
            managed.push(peapod_runtime::spec::Mount::bind(
                self.paths.etc_hosts().display().to_string(),
                "/etc/hosts",
                ro,
            ));
        }
        if !explicit("/etc/resolv.conf") {
            managed.push(peapod_runtime::spec::Mount::bind(
                self.paths.resolv_conf().display().to_string(),
                "/etc/resolv.conf",
                ro,
            ));
        }
        if !explicit("/etc/hostname") {
            managed.push(peapod_runtime::spec::Mount::bind(
                self.paths.hostname_file().display().to_string(),
                "/etc/hostname",
                ro,
            ));
        }
        managed.push(peapod_runtime::spec::Mount::bind(
            self.paths.shm().display().to_string(),
            "/dev/shm",
            false,
        ));
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_file = root.dir.join("termination-log");
        let _ = std::fs::write(&term_file, b"");
        managed.push(peapod_runtime::spec::Mount::bind(
            term_file.display().to_string(),
            term_path,
            false,
        ));
        mounts.extend(managed);
        let qos = peapod_api::defaults::qos_class(&serde_json::to_value(&self.pod).unwrap_or_default());
        let sc = c.security_context.as_ref();
        let cgroups_path = format!("/{}/pod{}/{}", self.ctx.config.cgroup_parent, self.uid, id);
        let config = peapod_runtime::spec::ContainerConfig {
            args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or(icfg.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            user,
            rootfs: root.rootfs.display().to_string(),
            readonly_rootfs: ro,
            hostname: String::new(),
            mounts,
            namespaces: Some(peapod_runtime::spec::PodNamespaces {
                net: peapod_runtime::shim::ns_path(&self.paths.run, "net")
                    .display()
                    .to_string(),
                ipc: peapod_runtime::shim::ns_path(&self.paths.run, "ipc")
                    .display()
                    .to_string(),
                uts: peapod_runtime::shim::ns_path(&self.paths.run, "uts")
                    .display()
                    .to_string(),
            }),
            cgroups_path: cgroups_path.clone(),
            resources: container::resources(c, self.ctx.config.pids_limit),
            capabilities: container::capabilities(c),
            no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
            cgroup_namespace: self.ctx.cgroups.setup() == peapod_runtime::cgroup::CgroupSetup::Unified,
            annotations: vec![
                ("io.kubernetes.pod.name".into(), self.name.clone()),
                ("io.kubernetes.pod.namespace".into(), self.namespace.clone()),
                ("io.kubernetes.pod.uid".into(), self.uid.clone()),
                ("io.kubernetes.container.name".into(), c.name.clone()),
            ],
            oom_score_adj: container::oom_score_adj(qos, c, self.ctx.memory_capacity),
        };
        let spec = peapod_runtime::spec::build_spec(&config);
        let log_path = self.paths.logs.join(&c.name).join(format!("{attempt}.log"));
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("container".to_string(), serde_json::to_string(c).unwrap_or_default());
        if let Some(sig) = icfg.stop_signal.clone() {
            labels.insert("stop-signal".to_string(), sig);
        }
        let record = shim
            .start(StartContainer {
                id: id.clone(),
                name: c.name.clone(),
                attempt,
                spec,
                log_path: log_path.display().to_string(),
                memory_cgroup: Some(self.ctx.cgroups.memory_dir(&cgroups_path).display().to_string()),
                labels,
            })
            .await
            .map_err(|e| e.to_string())?;
        let (tx, _) = tokio::sync::watch::channel(record.exit.is_none());
        self.running.insert(record.id.clone(), tx);
        Ok(record)
    }

    /// Publishes where each container's logs are, for the node server.
    fn index_logs(&self) {
        let mut containers = HashMap::new();
        for r in &self.records {
            let tx = self.running.get(&r.id);
            let inst = LogInstance {
                path: r.log_path.clone().into(),
                attempt: r.attempt,
                running: tx.map(|t| t.subscribe()),
                exited: r.exit.is_some(),
            };
            containers.entry(r.name.clone()).or_insert_with(Vec::new).push(inst);
        }
        let entry = LogEntry {
            uid: self.uid.clone(),
            containers,
            waiting: self
                .waiting
                .iter()
                .map(|(k, v)| (k.clone(), v.reason.clone()))
                .collect(),
        };
        if let Ok(mut i) = self.ctx.log_index.lock() {
            i.insert((self.namespace.clone(), self.name.clone()), entry);
        }
    }

    /// Computes the status and patches it when it changed. Returns the phase.
    async fn patch_status(&mut self, sandbox_ready: bool) -> String {
        self.update_status(sandbox_ready, false).await
    }

    /// Like [`patch_status`](Self::patch_status); `in_background` leaves the PATCH in flight (the next status
    /// waits for it), so the Pod's start does not wait on the API.
    async fn update_status(&mut self, sandbox_ready: bool, in_background: bool) -> String {
        self.finish_patch().await;
        self.index_logs();
        let spec = self.pod.spec.clone().unwrap_or_default();
        let prev = self.pod.status.clone().unwrap_or_default();
        let (inits, apps) = self.spec_containers();
        let initial = if inits.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let init_statuses = status::statuses(
            true,
            &inits,
            &self.records,
            &self.waiting,
            &self.images,
            initial,
            prev.init_container_statuses.as_deref().unwrap_or(&[]),
        );
        let mut app_statuses = status::statuses(
            false,
            &apps,
            &self.records,
            &self.waiting,
            &self.images,
            initial,
            prev.container_statuses.as_deref().unwrap_or(&[]),
        );
        pod_status::sort_container_statuses(&mut app_statuses);
        let terminating = self.pod.metadata.deletion_timestamp.is_some();
        let mut phase = pod_status::compute_phase(&spec, &init_statuses, &app_statuses, terminating).to_string();
        if matches!(prev.phase.as_deref(), Some("Succeeded" | "Failed")) {
            phase = prev.phase.clone().unwrap_or(phase);
        }
        let conditions = pod_status::compute_conditions(
            &pod_status::ConditionInput {
                spec: &spec,
                init_statuses: &init_statuses,
                statuses: &app_statuses,
                phase: &phase,
                sandbox_ready: sandbox_ready && self.shim.is_some(),
                generation: self.pod.metadata.generation,
            },
            prev.conditions.as_deref().unwrap_or(&[]),
            Timestamp::now(),
        );
        let host_ip = self.ctx.config.node_ip.to_string();
        let mut st = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "qosClass": peapod_api::defaults::qos_class(&serde_json::to_value(&self.pod).unwrap_or_default()),
            "containerStatuses": app_statuses,
        });
        if !init_statuses.is_empty() {
            st["initContainerStatuses"] = json!(init_statuses);
        }
        if let Some(ip) = self.pod_ip {
            st["podIP"] = json!(ip.to_string());
            st["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        if let Some(t) = &self.start_time {
            st["startTime"] = json!(t);
        }
        if self.last_status.as_ref() != Some(&st) {
            let patch = self.send_patch(st);
            self.pending_patch = Some(patch);
            if !in_background {
                self.finish_patch().await;
            }
        }
        phase
    }

    /// Starts a status PATCH; its result is taken by [`finish_patch`](Self::finish_patch).
    fn send_patch(&self, st: Value) -> tokio::task::JoinHandle<(Value, Result<Value, String>)> {
        let path = format!("/api/v1/namespaces/{}/pods/{}/status", self.namespace, self.name);
        let client = self.ctx.client.clone();
        tokio::spawn(async move {
            let r = client
                .patch(&path, PatchType::Merge, &json!({"status": st}))
                .await
                .map_err(|e| e.to_string());
            (st, r)
        })
    }

    /// Waits for the status PATCH in flight, if any, and takes its result (patches land in order: a new one is
    /// only sent after the previous one finished).
    async fn finish_patch(&mut self) {
        let Some(h) = self.pending_patch.take() else { return };
        match h.await {
            Ok((st, Ok(v))) => {
                if let Ok(p) = serde_json::from_value::<Pod>(v) {
                    if p.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                        self.pod.status = p.status;
                    }
                }
                self.last_status = Some(st);
            }
            Ok((_, Err(e))) => {
                tracing::warn!(error = %e, "patch pod status");
                self.wake(Duration::from_secs(1));
            }
            Err(e) => tracing::warn!(error = %e, "status patch task"),
        }
    }

    /// A Pod that reached Succeeded/Failed: its sandbox (namespaces, IP, roots, cgroups) is released; its status
    /// and logs stay until it is deleted.
    async fn finish(&mut self) {
        let uid = self.uid.clone();
        if let Err(e) = sandbox::destroy(&self.ctx, &self.paths, &uid).await {
            tracing::warn!(error = %e, "release the sandbox of a finished Pod");
        }
        self.shim = None;
        self.finished = true;
        for tx in self.running.values() {
            let _ = tx.send(false);
        }
    }

    /// Deletion: stop every container with its grace period, release everything, write the final status, delete the
    /// object. Returns true (the worker ends).
    async fn terminate(&mut self) -> bool {
        let requested = self.pod.metadata.deletion_grace_period_seconds;
        let grace = requested
            .or(self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        if let Some(shim) = self.shim.clone() {
            self.refresh().await;
            let running: Vec<ContainerRecord> = self.records.iter().filter(|r| r.exit.is_none()).cloned().collect();
            for r in &running {
                self.event(
                    Some(&r.name),
                    "Normal",
                    "Killing",
                    &format!("Stopping container {}", r.name),
                )
                .await;
                let (sig, timeout) = if self.removed && requested.unwrap_or(0) == 0 || grace == 0 {
                    (libc::SIGKILL, 0)
                } else {
                    (stop_signal(r), grace.max(MIN_GRACE_SECONDS) as u64)
                };
                if let Err(e) = shim.stop(&r.id, sig, timeout).await {
                    tracing::warn!(container = %r.name, error = %e, "stop container");
                }
            }
            let deadline = Instant::now() + Duration::from_secs(grace.max(MIN_GRACE_SECONDS) as u64 + 5);
            while self.records.iter().any(|r| r.exit.is_none()) && Instant::now() < deadline {
                tokio::select! {
                    m = self.rx.recv() => match m {
                        Some(m) => self.apply(m),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
                self.refresh().await;
            }
            if !self.removed {
                self.patch_status(false).await;
            }
        }
        let uid = self.uid.clone();
        if let Err(e) = sandbox::destroy(&self.ctx, &self.paths, &uid).await {
            tracing::warn!(error = %e, "tear down the Pod");
        }
        self.shim = None;
        for tx in self.running.values() {
            let _ = tx.send(false);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.paths.logs) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "remove the Pod's logs");
            }
        }
        if !self.removed {
            let path = format!("/api/v1/namespaces/{}/pods/{}", self.namespace, self.name);
            let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                              "preconditions": {"uid": self.uid}});
            if let Err(e) = self.ctx.client.send(http::Method::DELETE, &path, Some(&body)).await {
                tracing::warn!(error = %e, "final delete of the Pod");
            }
        }
        true
    }
}

/// Whether the running instance was made from another definition of the container than the Pod's current one,
/// compared field by field (the record keeps the container's spec as JSON). A record without one (made by an older
/// agent) is taken as matching: nothing is restarted for lack of information.
fn definition_changed(c: &Container, r: &ContainerRecord) -> bool {
    let Some(stored) = r.labels.get("container") else {
        return false;
    };
    let Ok(stored) = serde_json::from_str::<Value>(stored) else {
        return false;
    };
    serde_json::to_value(c).map(|now| now != stored).unwrap_or(false)
}

/// The signal that stops a container: its image's `StopSignal` (kept in the record's labels), else SIGTERM.
fn stop_signal(r: &ContainerRecord) -> i32 {
    r.labels
        .get("stop-signal")
        .and_then(|s| signal_number(s))
        .unwrap_or(libc::SIGTERM)
}

/// A signal by name (`SIGQUIT`, `QUIT`) or number, as an image's `StopSignal` gives it.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Some(n).filter(|n| (1..=64).contains(n));
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        "PWR" => libc::SIGPWR,
        _ => return None,
    })
}

/// A new container ID: 64 hex digits, as containerd's.
pub fn new_container_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_or_number() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("0"), None);
    }
}
