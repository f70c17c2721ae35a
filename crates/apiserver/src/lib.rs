//! Peapod's API server: the Kubernetes REST API over HTTPS, in front of the revisioned store.
//!
//! It is the only component that touches the store. It authenticates every request (bearer tokens, client
//! certificates), routes it by Kubernetes' URL scheme, decodes, defaults and validates objects with `peapod-api`,
//! writes them with compare-and-swap, and serves lists, watches and server-side Tables the way kube-apiserver does,
//! so the real `kubectl` works unchanged.
//!
//! Module map: [`pki`] credentials on disk; [`serve`] TLS and HTTP connections; [`auth`] who is calling;
//! [`route`] what a URL names; [`registry`] objects in the store; [`handlers`] the verbs; [`watch`] watch streams;
//! [`node_proxy`] `pods/log` from the node that runs the Pod; [`service_accounts`] Pod tokens, their admission
//! and the root-CA ConfigMaps; [`discovery`] and [`openapi`] what kubectl asks before
//! anything else; [`bootstrap`] the namespaces and service accounts every cluster starts with and namespace deletion.

pub mod auth;
pub mod bootstrap;
pub mod discovery;
pub mod handlers;
pub mod node_proxy;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod response;
pub mod route;
pub mod serve;
pub mod service_accounts;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Kubernetes' limit on request bodies (`--max-request-bytes` default in kube-apiserver, 3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// Errors of starting and running the server (request errors are `peapod_api::ApiError`s, sent to clients).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("store: {0}")]
    Store(#[from] peapod_store::StoreError),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// What `peapod server` passes in.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store, credentials and kubeconfig live.
    pub data_dir: PathBuf,
    /// The address to serve HTTPS on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// How many revisions of history to keep for watches (older ones answer 410 Gone).
    pub keep_revisions: i64,
    /// How often history is compacted.
    pub compaction_interval: std::time::Duration,
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            keep_revisions: 10_000,
            compaction_interval: bootstrap::COMPACTION_INTERVAL,
        }
    }
}

/// A running server.
pub struct RunningServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The kubeconfig file written for the admin user.
    pub kubeconfig: PathBuf,
    /// The URL clients use.
    pub url: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The cluster's credentials, kept to issue node serving certificates.
    pki: Arc<pki::Pki>,
}

impl RunningServer {
    /// Credentials for an in-process node agent's server: the cluster CA (to trust the API server's kubelet-client
    /// certificate) and a serving certificate for `names` (the addresses the Node object will publish).
    pub fn node_credentials(&self, names: &[String]) -> Result<pki::NodeCredentials, ServerError> {
        self.pki.node_credentials(names)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it does not, unless its listener fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Opens the store, prepares credentials, bootstraps the cluster's initial objects and starts serving.
pub async fn start(config: Config, store: Arc<dyn peapod_store::Store>) -> Result<RunningServer, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Io {
        context: format!("create {}", config.data_dir.display()),
        source: e,
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Io {
            context: format!("listen on {}", config.listen),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| ServerError::Io {
        context: "read listening address".into(),
        source: e,
    })?;
    let names = pki::serving_names(addr);
    let pki = pki::Pki::load_or_create(&config.data_dir, &names)?;
    let url = pki::server_url(addr);
    let kubeconfig = pki::write_kubeconfig(&config.data_dir, &pki.admin_kubeconfig(&url))?;

    let registry = Arc::new(registry::Registry::new(store));
    let sas = service_accounts::ServiceAccounts {
        signer: service_accounts::TokenSigner::load_or_create(&pki.dir)?,
        ca_pem: pki.ca_pem.clone(),
    };
    bootstrap::ensure_initial_objects(&registry, &sas.ca_pem).await?;
    let auth = auth::Authenticator::new(pki.admin_token.clone());
    // The identity the API server shows node servers when it proxies to them (kube-apiserver's
    // `--kubelet-client-certificate`); issued afresh at each start, never written to disk.
    let (kubelet_cert, kubelet_key) = pki.issue_client_cert("kube-apiserver-kubelet-client", &["system:masters"])?;
    let node_proxy = node_proxy::NodeProxy::new(&pki.ca_pem, &kubelet_cert, &kubelet_key);
    let state = Arc::new(
        handlers::State::new(registry, auth)
            .with_node_proxy(node_proxy)
            .with_service_accounts(sas),
    );
    bootstrap::spawn_controllers(state.clone(), config.keep_revisions, config.compaction_interval);

    let tls = serve::tls_config(&pki)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(serve::accept_loop(listener, tls, state, rx));
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "API server ready");
    Ok(RunningServer {
        addr,
        kubeconfig,
        url,
        shutdown: tx,
        task,
        pki: Arc::new(pki),
    })
}
