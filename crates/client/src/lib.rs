//! A small client for Peapod's (and any Kubernetes) API over HTTPS: reads a kubeconfig, trusts its CA, sends its
//! bearer token or client certificate, and speaks HTTP/2 so one connection carries many concurrent requests and
//! watches.
//!
//! Used by the benchmarks now, and by the node agent, scheduler, controllers and CLI as they arrive. It knows
//! nothing of Kubernetes types: requests and replies are JSON values.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

pub mod events;

/// Errors of the client. Each says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("connect to {server}: {message}")]
    Connect { server: String, message: String },
    #[error("{method} {path}: {message}")]
    Request {
        method: String,
        path: String,
        message: String,
    },
    /// The server answered with an error Status.
    #[error("{method} {path}: {code} {body}")]
    Status {
        method: String,
        path: String,
        code: u16,
        body: Value,
    },
}

#[derive(Debug, Deserialize)]
struct RawKubeconfig {
    #[serde(default)]
    clusters: Vec<Named<RawCluster>>,
    #[serde(default)]
    users: Vec<Named<RawUser>>,
    #[serde(default)]
    contexts: Vec<Named<RawContext>>,
    #[serde(rename = "current-context", default)]
    current_context: String,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: T,
}

#[derive(Debug, Deserialize, Default)]
struct RawCluster {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority", default)]
    ca_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct RawUser {
    #[serde(default)]
    token: Option<String>,
    #[serde(rename = "client-certificate-data", default)]
    cert_data: Option<String>,
    #[serde(rename = "client-key-data", default)]
    key_data: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct RawContext {
    cluster: String,
    user: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// The parts of a kubeconfig the client uses (the current context resolved).
#[derive(Debug, Clone)]
pub struct Config {
    /// `https://host:port`
    pub server: String,
    pub ca_pem: Vec<u8>,
    pub token: Option<String>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub namespace: String,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| e.to_string())
}

impl Config {
    /// Reads a kubeconfig file and resolves its current context.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ClientError> {
        let err = |m: String| ClientError::Kubeconfig {
            path: path.display().to_string(),
            message: m,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw: RawKubeconfig = serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
        let ctx = raw
            .contexts
            .iter()
            .find(|c| c.name == raw.current_context)
            .ok_or_else(|| err(format!("context {:?} not found", raw.current_context)))?;
        let cluster = raw
            .clusters
            .iter()
            .find(|c| c.name == ctx.item.cluster)
            .ok_or_else(|| err(format!("cluster {:?} not found", ctx.item.cluster)))?;
        let user = raw.users.iter().find(|u| u.name == ctx.item.user);
        let ca_pem = match (&cluster.item.ca_data, &cluster.item.ca_file) {
            (Some(d), _) => b64(d).map_err(err)?,
            (None, Some(f)) => std::fs::read(f).map_err(|e| err(format!("{f}: {e}")))?,
            (None, None) => return Err(err("the cluster has no certificate authority".into())),
        };
        Ok(Self {
            server: cluster.item.server.trim_end_matches('/').to_string(),
            ca_pem,
            token: user.and_then(|u| u.item.token.clone()),
            client_cert_pem: user
                .and_then(|u| u.item.cert_data.as_deref())
                .map(b64)
                .transpose()
                .map_err(err)?,
            client_key_pem: user
                .and_then(|u| u.item.key_data.as_deref())
                .map(b64)
                .transpose()
                .map_err(err)?,
            namespace: ctx.item.namespace.clone().unwrap_or_else(|| "default".into()),
        })
    }
}

/// A connection to an API server. Cheap to clone; clones share the HTTP/2 connection.
#[derive(Clone)]
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    token: Option<Arc<str>>,
}

impl Client {
    /// Opens a TLS + HTTP/2 connection to the server of `config`.
    pub async fn connect(config: &Config) -> Result<Self, ClientError> {
        let cerr = |m: String| ClientError::Connect {
            server: config.server.clone(),
            message: m,
        };
        let authority = config
            .server
            .strip_prefix("https://")
            .ok_or_else(|| cerr("only https:// servers are supported".into()))?
            .to_string();
        let (host, _port) = authority
            .rsplit_once(':')
            .ok_or_else(|| cerr("the server URL has no port".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&config.ca_pem) {
            roots
                .add(c.map_err(|e| cerr(format!("CA: {e}")))?)
                .map_err(|e| cerr(format!("CA: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| cerr(e.to_string()))?
            .with_root_certificates(roots);
        let mut tls = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(c), Some(k)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(c)
                    .collect::<Result<_, _>>()
                    .map_err(|e| cerr(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(k).map_err(|e| cerr(format!("client key: {e}")))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| cerr(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = ServerName::try_from(host.clone()).map_err(|e| cerr(format!("server name {host}: {e}")))?;
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| cerr(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .map_err(|e| cerr(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| cerr(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            authority,
            token: config.token.as_deref().map(Arc::from),
        })
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
        accept: &str,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let rerr = |m: String| ClientError::Request {
            method: method.to_string(),
            path: path.to_string(),
            message: m,
        };
        let mut b = Request::builder()
            .method(method.clone())
            .uri(format!("https://{}{}", self.authority, path))
            .header(http::header::ACCEPT, accept);
        if let Some(t) = &self.token {
            b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header(http::header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(serde_json::to_vec(v).map_err(|e| rerr(e.to_string()))?))
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body).map_err(|e| rerr(e.to_string()))
    }

    /// Sends a request and reads the whole reply as bytes.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
        accept: &str,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let rerr = |m: String| ClientError::Request {
            method: method.to_string(),
            path: path.to_string(),
            message: m,
        };
        let req = self.build(&method, path, body, content_type, accept)?;
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|e| rerr(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| rerr(e.to_string()))?;
        let status = resp.status();
        let bytes = read_all(resp.into_body()).await.map_err(rerr)?;
        Ok((status, bytes))
    }

    /// Sends a JSON request; a non-2xx reply is [`ClientError::Status`].
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.send_typed(method, path, body, "application/json").await
    }

    /// Sends `body` with `content_type` and decodes the JSON reply; a non-2xx reply is [`ClientError::Status`].
    async fn send_typed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = self
            .send_raw(method.clone(), path, body, content_type, "application/json")
            .await?;
        let v: Value =
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(v)
        } else {
            Err(ClientError::Status {
                method: method.to_string(),
                path: path.to_string(),
                code: status.as_u16(),
                body: v,
            })
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn create(&self, path: &str, obj: &Value) -> Result<Value, ClientError> {
        self.send(Method::POST, path, Some(obj)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    /// PATCHes `path` with `body`, sent with the Content-Type of `patch_type`; a non-2xx reply is
    /// [`ClientError::Status`].
    pub async fn patch(&self, path: &str, patch_type: PatchType, body: &Value) -> Result<Value, ClientError> {
        self.send_typed(Method::PATCH, path, Some(body), patch_type.content_type())
            .await
    }

    /// Opens a watch (`path` must carry `watch=true`) and returns its events as they arrive.
    pub async fn watch(&self, path: &str) -> Result<WatchStream, ClientError> {
        let method = Method::GET;
        let rerr = |m: String| ClientError::Request {
            method: "GET".into(),
            path: path.to_string(),
            message: m,
        };
        let req = self.build(&method, path, None, "application/json", "application/json")?;
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|e| rerr(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| rerr(e.to_string()))?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let bytes = read_all(resp.into_body()).await.map_err(rerr)?;
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(ClientError::Status {
                method: "GET".into(),
                path: path.to_string(),
                code,
                body,
            });
        }
        Ok(WatchStream {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }

    /// Sends a GET and hands back the status and the reply body unread, whatever the status, for replies that
    /// stream (container logs proxied from a node).
    pub async fn stream_get(&self, path: &str) -> Result<(StatusCode, hyper::body::Incoming), ClientError> {
        let rerr = |m: String| ClientError::Request {
            method: "GET".into(),
            path: path.to_string(),
            message: m,
        };
        let req = self.build(&Method::GET, path, None, "application/json", "*/*")?;
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|e| rerr(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| rerr(e.to_string()))?;
        Ok((resp.status(), resp.into_body()))
    }
}

/// The three patch formats the API server accepts, each with its own Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`): maps merge, lists are replaced.
    Merge,
    /// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`): lists with a merge key
    /// (conditions by `type`, containers by `name`) merge item by item.
    StrategicMerge,
    /// RFC 6902 JSON patch (`application/json-patch+json`): a list of operations.
    Json,
}

impl PatchType {
    /// The Content-Type header this patch is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// Reads a whole reply body.
async fn read_all(body: hyper::body::Incoming) -> Result<Bytes, String> {
    Ok(body.collect().await.map_err(|e| e.to_string())?.to_bytes())
}

/// Events of a watch, one JSON value (`{"type":…,"object":…}`) at a time.
pub struct WatchStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Result<Value, ClientError>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(&line).map_err(|e| ClientError::Request {
                    method: "GET".into(),
                    path: "watch".into(),
                    message: format!("bad event: {e}"),
                }));
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => {
                    return Some(Err(ClientError::Request {
                        method: "GET".into(),
                        path: "watch".into(),
                        message: e.to_string(),
                    }))
                }
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }
}
