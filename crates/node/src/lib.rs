//! Peapod's node agent (our kubelet, DESIGN §2–§4): registers the Node and renews its Lease, watches the Pods bound
//! to it, and runs one pod worker per Pod that drives images, sandbox, volumes, init and app containers, restart
//! back-off and deletion, computing status in `peapod-api` and recording kubelet's events.
//!
//! - [`agent`]: the watch of this node's Pods, one [`worker`] per Pod, re-adoption of shims after a restart.
//! - [`worker`]: a Pod's worker: what to start, stop, restart, and the status it patches.
//! - [`sandbox`]: the Pod's directories, shim, network and managed files; teardown.
//! - [`container`]: command, environment, user and limits of a container.
//! - [`images`]: image pull policy, pulls with kubelet's events and back-off.
//! - [`status`]: container statuses from the shim's records.
//! - [`node`]: the Node object, its status and Lease.
//! - [`logs`], [`server`]: container logs and the node's HTTPS endpoint the API server proxies to.
//! - [`volumes`]: Pod volumes.

pub mod agent;
pub mod container;
pub mod images;
pub mod logs;
pub mod node;
pub mod sandbox;
pub mod server;
pub mod status;
pub mod volumes;
pub mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub use agent::run;

/// How the agent is set up (the `peapod server` / `peapod agent` flags).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// The node's address (Pods' `hostIP`, the Node's InternalIP, where the node server listens).
    pub node_ip: Ipv4Addr,
    /// `<data-dir>`: images under `images/`, Pods under `pods/<uid>`.
    pub data_dir: PathBuf,
    /// `/run/peapod`: shims (`pods/<uid>`) and the OCI runtime's state (`runc/`).
    pub run_dir: PathBuf,
    /// `/var/log/pods`.
    pub pod_log_dir: PathBuf,
    /// The OCI runtime binary.
    pub oci_runtime: String,
    /// This binary, re-executed as `peapod shim`.
    pub exe: PathBuf,
    pub network: peapod_network::NetworkConfig,
    /// k3s' registries.yaml (mirrors, auth, TLS).
    pub registries: peapod_image::registry::RegistryConfig,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The cluster DNS address written into Pods' resolv.conf.
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The cgroup under which Pods go (`/<parent>/pod<uid>/<container>`).
    pub cgroup_parent: String,
    /// `pids.max` of each container (`podPidsLimit`-like fork-bomb protection); `None` = unlimited.
    pub pids_limit: Option<i64>,
    /// Where the node server listens (port 0: any free port).
    pub server_listen: SocketAddr,
    /// The node server's certificate and key, and the CA whose client certificates (the API server's) it accepts.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_ca_pem: String,
    /// Pods this node accepts (kubelet's `maxPods`).
    pub max_pods: u32,
}

/// What every part of the agent shares.
pub struct AgentContext {
    pub config: AgentConfig,
    pub client: peapod_client::Client,
    pub recorder: peapod_client::events::EventRecorder,
    pub images: peapod_image::store::ImageStore,
    pub puller: std::sync::Arc<peapod_image::pull::Puller>,
    pub network: peapod_network::PodNetwork,
    pub cgroups: peapod_runtime::cgroup::Cgroups,
    /// The Node's allocatable resources (for downward API defaults).
    pub allocatable: std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// The node's memory capacity in bytes (Burstable OOM scores).
    pub memory_capacity: i64,
    /// Where log requests find containers (filled by workers).
    pub log_index: agent::LogIndex,
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("register node {node}: {message}")]
    Register { node: String, message: String },
    #[error("network: {0}")]
    Network(#[from] peapod_network::NetworkError),
    #[error("image store: {0}")]
    Image(#[from] peapod_image::ImageError),
    #[error("node server: {0}")]
    Server(String),
    #[error("watch pods of node {node}: {message}")]
    Watch { node: String, message: String },
}
