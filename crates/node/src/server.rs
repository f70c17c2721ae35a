//! The node's HTTPS server (the kubelet's `:10250`): what the API server calls to read a container's log.
//!
//! Routes: `GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&sinceSeconds=&sinceTime=
//! &timestamps=&limitBytes=` streams the log as [`crate::logs::stream_log`] renders it, one HTTP/2 data frame (or
//! HTTP/1.1 chunk) per chunk as soon as it is read, so `kubectl logs -f` sees lines live; `GET /healthz` answers
//! `ok`. Errors are plain text with the kubelet's status codes (404 for an unknown Pod or container, 400 for a
//! container that has no log to show); the API server turns them into the Status kubectl prints.
//!
//! This module owns the listener, TLS, client authorization and the HTTP side. Which file holds which container's
//! log is the agent's business, asked through [`PodLogs`].
//!
//! Security: the port speaks only TLS and requires a client certificate signed by the configured CA (the handshake
//! fails without one). A verified certificate is then authorized: only the `system:masters` group (the API
//! server's kubelet-client certificate) may read logs; other cluster identities, such as other nodes'
//! `system:nodes` certificates signed by the same CA, get 403, as the kubelet's `nodes/proxy` check would answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::logs::{self, LogError};

/// How long a client may take to finish the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks of log output queued between the file reader and the connection. Small: a slow client slows the reader
/// instead of the node buffering the log in memory.
const LOG_QUEUE: usize = 8;
/// The group whose certificates may use this server (the API server's `kube-apiserver-kubelet-client`).
const AUTHORIZED_GROUP: &str = "system:masters";

/// Why a container's log cannot be served. The text is the kubelet's own, shown to the user by kubectl.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    /// 404: the node does not know the Pod or the container (`pod "web" does not exist`,
    /// `container "x" not found in pod "web"`).
    #[error("{0}")]
    NotFound(String),
    /// 400: the container has no log to show yet or any more (`container "app" in pod "web" is waiting to start:
    /// ContainerCreating`, `previous terminated container "app" in pod "web" not found`).
    #[error("{0}")]
    Unavailable(String),
}

impl From<String> for LocateError {
    /// A bare message is the common case, a container without a log: [`LocateError::Unavailable`].
    fn from(message: String) -> Self {
        LocateError::Unavailable(message)
    }
}

/// What the server needs from the agent to find a container's log (implemented by the agent).
pub trait PodLogs: Send + Sync + 'static {
    /// The log file to read for `container` of Pod `namespace/name` (`previous`: the previous instance), and a
    /// receiver that is true while that instance runs (false once it exited; a dropped sender counts as exited).
    fn locate(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Result<(PathBuf, watch::Receiver<bool>), LocateError>;
}

/// Where and with which credentials the server listens.
#[derive(Debug, Clone)]
pub struct NodeServerConfig {
    /// The address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The serving certificate (PEM, leaf first) and its key; its names must cover the address the API server dials.
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA whose client certificates are accepted (the cluster CA).
    pub client_ca_pem: String,
}

/// Errors of starting the server (request errors are HTTP replies).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("node server: listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("node server: TLS: {0}")]
    Tls(String),
}

/// Serves HTTPS (h2 and http/1.1) requiring a client certificate signed by `config.client_ca_pem`. Returns the bound
/// address and the task serving it; aborting that task closes the listener and every open connection.
pub async fn serve(
    config: NodeServerConfig,
    logs: Arc<dyn PodLogs>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServerError> {
    let tls = tls_config(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Listen {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, "node server listening");
    let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), logs));
    Ok((addr, task))
}

fn tls_err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ServerError {
    move |e| ServerError::Tls(format!("{what}: {e}"))
}

/// rustls with the serving certificate, a mandatory client certificate and ALPN `h2`, `http/1.1`.
fn tls_config(config: &NodeServerConfig) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(config.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(tls_err("read serving certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes()).map_err(tls_err("read serving key"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(config.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(tls_err("read client CA"))?;
        roots.add(ca).map_err(tls_err("add client CA"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Security: no `allow_unauthenticated()`: a client without a certificate from the CA fails the handshake.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(tls_err("client verifier"))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(tls_err("serving certificate"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Accepts connections until aborted. Connections live in a `JoinSet` owned by this task, so aborting it ends
/// them too.
async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, logs: Arc<dyn PodLogs>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning on the same error.
                tracing::warn!(error = %e, "node server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        connections.spawn(serve_connection(tcp, peer, acceptor.clone(), logs.clone()));
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, logs: Arc<dyn PodLogs>) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "node server: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "node server: TLS handshake timed out");
            return;
        }
    };
    let access = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(authorize)
        .unwrap_or_else(|| Err("Unauthorized".to_string()));
    let access: Arc<Result<(), String>> = Arc::new(access);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let logs = logs.clone();
        let access = access.clone();
        async move { Ok::<_, Infallible>(handle(&*logs, &access, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %e, "node server: connection ended with an error");
    }
}

/// Whether a verified client certificate may use the server: its subject must list [`AUTHORIZED_GROUP`] as an
/// organization (Kubernetes reads CN as the user and each O as a group). Err is the kubelet's 403 text.
fn authorize(der: &CertificateDer<'_>) -> Result<(), String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Err("Forbidden (user=, verb=get, resource=nodes, subresource(s)=[proxy])".into());
    };
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("");
    if subject
        .iter_organization()
        .any(|o| o.as_str().ok() == Some(AUTHORIZED_GROUP))
    {
        Ok(())
    } else {
        Err(format!(
            "Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[proxy])"
        ))
    }
}

/// One request.
async fn handle(logs: &dyn PodLogs, access: &Result<(), String>, req: Request<Incoming>) -> Response<ReplyBody> {
    if let Err(why) = access {
        return text(StatusCode::FORBIDDEN, why.clone());
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed".into());
    }
    let path = req.uri().path();
    match route(path) {
        Some(Route::Healthz) => text(StatusCode::OK, "ok".into()),
        Some(Route::ContainerLogs {
            namespace,
            pod,
            container,
        }) => container_logs(logs, namespace, pod, container, req.uri().query().unwrap_or("")).await,
        None => text(StatusCode::NOT_FOUND, "404 page not found".into()),
    }
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Healthz,
    ContainerLogs {
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
    },
}

/// Parses a path. Segments are taken as they are: Kubernetes names never need percent-encoding, and a segment that
/// is not a known name simply finds no Pod.
fn route(path: &str) -> Option<Route<'_>> {
    if path == "/healthz" {
        return Some(Route::Healthz);
    }
    let rest = path.strip_prefix("/containerLogs/")?;
    let mut parts = rest.split('/');
    let (namespace, pod, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [namespace, pod, container].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(Route::ContainerLogs {
        namespace,
        pod,
        container,
    })
}

/// apimachinery's query boolean: anything but `0` and `false` (any case) is true, an empty value included.
fn query_flag(query: &str, key: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .is_some_and(|(_, v)| !(v == "0" || v.eq_ignore_ascii_case("false")))
}

/// The kubelet's text for a log that could not be read before anything was sent.
fn log_error_text(e: &LogError) -> String {
    match e {
        // The kubelet resolves the log's symlinks first; a missing file fails there, in these words.
        LogError::NotFound { path } => format!(
            "failed to try resolving symlinks in path {:?}: lstat {}: no such file or directory",
            path.display().to_string(),
            path.display()
        ),
        other => other.to_string(),
    }
}

async fn container_logs(
    logs: &dyn PodLogs,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<ReplyBody> {
    let opts = match logs::parse_query(form_urlencoded::parse(query.as_bytes()), jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let previous = query_flag(query, "previous");
    let (path, running) = match logs.locate(namespace, pod, container, previous) {
        Ok(x) => x,
        Err(LocateError::NotFound(m)) => return text(StatusCode::NOT_FOUND, m),
        Err(LocateError::Unavailable(m)) => return text(StatusCode::BAD_REQUEST, m),
    };
    let (tx, mut rx) = mpsc::channel(LOG_QUEUE);
    let what = format!("{namespace}/{pod}/{container}");
    let reader_path = path.clone();
    let mut reader = tokio::spawn(async move { logs::stream_log(&reader_path, &opts, tx, running).await });

    // As the kubelet: the status is decided by the first output. An error before any output is a 400 with its
    // text; once bytes went out, a later error can only end the stream.
    let first = tokio::select! {
        biased;
        Some(chunk) = rx.recv() => Some(chunk),
        done = &mut reader => match done {
            // Chunks sent just before the reader finished are still queued.
            Ok(Ok(())) => rx.try_recv().ok(),
            Ok(Err(e)) => {
                tracing::debug!(container = %what, path = %path.display(), error = %e, "container log unreadable");
                return text(StatusCode::BAD_REQUEST, log_error_text(&e));
            }
            Err(e) => {
                tracing::warn!(container = %what, error = %e, "container log reader failed");
                return text(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the log of {what} failed"));
            }
        },
    };
    if !reader.is_finished() {
        // Report what happens to the reader after the reply started; it stops by itself once the client is gone.
        tokio::spawn(async move {
            if let Ok(Err(e)) = reader.await {
                tracing::warn!(container = %what, error = %e, "container log stream ended with an error");
            }
        });
    }
    let body = ReplyBody { first, rest: Some(rx) };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

/// A plain-text reply.
fn text(code: StatusCode, message: String) -> Response<ReplyBody> {
    let mut resp = Response::new(ReplyBody {
        first: Some(Bytes::from(message)),
        rest: None,
    });
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A reply body: an optional first chunk, then whatever arrives on the channel until its sender is gone. Each chunk
/// is handed to hyper as its own frame, which it writes out at once.
struct ReplyBody {
    first: Option<Bytes>,
    rest: Option<mpsc::Receiver<Bytes>>,
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(rx) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => {
                self.rest = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.first, &self.rest) {
            (Some(b), None) => SizeHint::with_exact(b.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz"), Some(Route::Healthz));
        assert_eq!(
            route("/containerLogs/default/web/app"),
            Some(Route::ContainerLogs {
                namespace: "default",
                pod: "web",
                container: "app"
            })
        );
        assert_eq!(route("/containerLogs/default/web"), None);
        assert_eq!(route("/containerLogs/default/web/app/x"), None);
        assert_eq!(route("/containerLogs/default//app"), None);
        assert_eq!(route("/pods"), None);
    }

    #[test]
    fn flags() {
        assert!(query_flag("previous=true", "previous"));
        assert!(query_flag("a=1&previous=", "previous"));
        assert!(!query_flag("previous=false", "previous"));
        assert!(!query_flag("previous=0", "previous"));
        assert!(!query_flag("follow=true", "previous"));
    }

    #[test]
    fn missing_file_text() {
        let e = LogError::NotFound {
            path: "/var/log/pods/x/app/0.log".into(),
        };
        assert_eq!(
            log_error_text(&e),
            "failed to try resolving symlinks in path \"/var/log/pods/x/app/0.log\": lstat /var/log/pods/x/app/0.log: no such file or directory"
        );
    }
}
