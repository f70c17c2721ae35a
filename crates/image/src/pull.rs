//! Pulling images from registries with `oci-client`: manifests and indexes stored byte for byte (so digests hold),
//! this machine's platform picked from an index, layers streamed to `ingest/` in parallel while hashed, then
//! verified (digest and size), renamed into the store, unpacked, and only then named. Two pulls of one image at once
//! share one download.
//!
//! Errors read as a kubelet on containerd shows them in `kubectl describe pod` (`failed to pull and unpack image
//! "…": failed to resolve reference "…": …: not found`), with the gRPC code containerd would return, so the node
//! agent can write `Failed to pull image "x": rpc error: code = NotFound desc = …` events word for word.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use tokio::io::AsyncWriteExt;

use crate::digest::{Digest, Hasher};
use crate::oci::{self, Descriptor, Document};
use crate::reference::ImageRef;
use crate::registry::{Credentials, DockerConfig, Endpoint, RegistryConfig};
use crate::store::{Image, ImageStore};
use crate::ImageError;

/// The class of a pull failure, as containerd's gRPC status code names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullErrorKind {
    NotFound,
    Unauthorized,
    Unreachable,
    /// The registry did not answer in time (containerd: `DeadlineExceeded`).
    Timeout,
    Other,
}

/// A failed pull. `Display` is containerd's message (the `desc` of its gRPC error).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    pub kind: PullErrorKind,
    pub message: String,
}

impl PullError {
    /// The gRPC code containerd's CRI plugin returns for this error.
    pub fn grpc_code(&self) -> &'static str {
        match self.kind {
            PullErrorKind::NotFound => "NotFound",
            PullErrorKind::Timeout => "DeadlineExceeded",
            _ => "Unknown",
        }
    }

    /// The error text a kubelet shows after `Failed to pull image "x": `. Since Kubernetes 1.28 the CRI client
    /// strips the gRPC wrapper from `Unknown` errors, so only NotFound and DeadlineExceeded keep `rpc error: …`.
    pub fn cri_message(&self) -> String {
        match self.grpc_code() {
            "Unknown" => self.message.clone(),
            code => format!("rpc error: code = {code} desc = {}", self.message),
        }
    }
}

/// Progress of one pull, for the CLI's bars.
pub trait Progress: Send + Sync {
    /// The layers to fetch (digest, size) once the manifest is known; `present` ones are already stored.
    fn layers(&self, _layers: &[(String, u64, bool)]) {}
    /// `n` more bytes of layer `digest` arrived.
    fn bytes(&self, _digest: &str, _n: u64) {}
    /// Layer `digest` is stored and verified.
    fn done(&self, _digest: &str) {}
    /// All content is in; unpacking starts.
    fn unpacking(&self) {}
}

/// Installs the process-wide rustls crypto provider (ring) if none is installed yet.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

type Inflight = Shared<BoxFuture<'static, Result<Image, PullError>>>;

/// Pulls images into a store; share one per process (it deduplicates concurrent pulls).
pub struct Puller {
    store: ImageStore,
    config: RegistryConfig,
    insecure: Vec<String>,
    docker_config: Option<DockerConfig>,
    /// One client per endpoint and credentials: oci-client remembers the first credentials it saw per registry.
    clients: Mutex<HashMap<(String, bool, String), oci_client::Client>>,
    inflight: Mutex<HashMap<String, Inflight>>,
    /// Layers fetched at once per image.
    pub parallel_layers: usize,
}

const ACCEPT: [&str; 4] = [
    oci::OCI_INDEX,
    oci::DOCKER_LIST,
    oci::OCI_MANIFEST,
    oci::DOCKER_MANIFEST,
];

impl Puller {
    pub fn new(store: ImageStore, config: RegistryConfig) -> Puller {
        install_crypto_provider();
        Puller {
            store,
            config,
            insecure: Vec::new(),
            docker_config: None,
            clients: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            parallel_layers: 3,
        }
    }

    /// Registries (`host:port`) spoken to over plain HTTP when no mirror is configured for them.
    pub fn with_insecure(mut self, hosts: Vec<String>) -> Self {
        self.insecure = hosts;
        self
    }

    /// Credentials from a docker `config.json`.
    pub fn with_docker_config(mut self, c: Option<DockerConfig>) -> Self {
        self.docker_config = c;
        self
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Pulls `image` (always asking the registry), with `secrets` (a Pod's `imagePullSecrets`) tried first for
    /// credentials. Concurrent pulls of the same reference share one download.
    pub async fn pull(
        self: &Arc<Self>,
        image: &ImageRef,
        secrets: &[DockerConfig],
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Image, PullError> {
        let key = image.full();
        let fut = {
            let mut inflight = self.inflight.lock().map_err(|_| other("pull table poisoned"))?;
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let this = Arc::clone(self);
                    let image = image.clone();
                    let secrets = secrets.to_vec();
                    let f = async move { this.pull_uncached(&image, &secrets, progress).await }
                        .boxed()
                        .shared();
                    inflight.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        let result = fut.await;
        if let Ok(mut inflight) = self.inflight.lock() {
            inflight.remove(&key);
        }
        result
    }

    async fn pull_uncached(
        &self,
        image: &ImageRef,
        secrets: &[DockerConfig],
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Image, PullError> {
        let endpoints = self.config.endpoints(&image.domain, &self.insecure);
        let mut last = other("no registry endpoint");
        for (i, ep) in endpoints.iter().enumerate() {
            match self.pull_from(image, ep, secrets, progress.clone()).await {
                Ok(img) => return Ok(img),
                Err(e) if e.kind == PullErrorKind::Unreachable && i + 1 < endpoints.len() => {
                    tracing::info!(image = %image, endpoint = %ep.host, error = %e, "registry endpoint failed, trying the next");
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn client(&self, ep: &Endpoint, auth: &RegistryAuth) -> Result<oci_client::Client, PullError> {
        let who = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(u, p) => format!("basic:{u}:{}", Digest::of(p.as_bytes())),
            RegistryAuth::Bearer(t) => format!("bearer:{}", Digest::of(t.as_bytes())),
        };
        let key = (ep.host.clone(), ep.plain_http, who);
        let mut clients = self.clients.lock().map_err(|_| other("client table poisoned"))?;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let tls = self.config.tls(&ep.host);
        let mut extra = Vec::new();
        if let Some(ca) = tls.and_then(|t| t.ca_file.as_deref()) {
            let data = std::fs::read(ca).map_err(|e| other(&format!("reading ca_file {ca}: {e}")))?;
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        if tls.is_some_and(|t| t.cert_file.is_some()) {
            tracing::warn!(registry = %ep.host, "registries.yaml cert_file/key_file (client certificates) are not supported yet; ignored");
        }
        let config = ClientConfig {
            protocol: if ep.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: tls.is_some_and(|t| t.insecure_skip_verify),
            extra_root_certificates: extra,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            max_concurrent_download: self.parallel_layers.max(1),
            ..Default::default()
        };
        let c = oci_client::Client::new(config);
        clients.insert(key, c.clone());
        Ok(c)
    }

    fn auth_for(&self, image: &ImageRef, ep: &Endpoint, secrets: &[DockerConfig]) -> RegistryAuth {
        let creds = secrets
            .iter()
            .find_map(|s| s.credentials(&image.domain, &ep.host))
            .or_else(|| self.config.credentials(&ep.host))
            .or_else(|| {
                self.docker_config
                    .as_ref()
                    .and_then(|d| d.credentials(&image.domain, &ep.host))
            });
        match creds {
            Some(Credentials::Basic { username, password }) => RegistryAuth::Basic(username, password),
            Some(Credentials::Token(t)) => RegistryAuth::Bearer(t),
            None => RegistryAuth::Anonymous,
        }
    }

    async fn pull_from(
        &self,
        image: &ImageRef,
        ep: &Endpoint,
        secrets: &[DockerConfig],
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Image, PullError> {
        let auth = self.auth_for(image, ep, secrets);
        let client = self.client(ep, &auth)?;
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let name = image.full();
        let scheme = if ep.plain_http { "http" } else { "https" };
        let manifest_url = format!("{scheme}://{}/v2/{}/manifests/{}", ep.host, image.path, image.locator());
        let reference = match &image.digest {
            Some(d) => oci_client::Reference::with_digest(ep.host.clone(), image.path.clone(), d.clone()),
            None => oci_client::Reference::with_tag(ep.host.clone(), image.path.clone(), image.locator()),
        };
        let resolve_err = |e: OciDistributionError| classify(e, &name, true, &manifest_url, &ep.host, anonymous);
        let (top_bytes, top_digest) = client
            .pull_manifest_raw(&reference, &auth, &ACCEPT)
            .await
            .map_err(resolve_err)?;
        let store_err = |e: ImageError| other(&format!("failed to pull and unpack image {name:?}: {e}"));
        let _guard = self.store.lock_shared().map_err(store_err)?;
        let top =
            Digest::parse(&top_digest).map_err(|e| other(&format!("failed to pull and unpack image {name:?}: {e}")))?;
        if Digest::of(&top_bytes) != top {
            return Err(other(&format!(
                "failed to pull and unpack image {name:?}: manifest digest mismatch"
            )));
        }
        let doc = Document::parse(&top_bytes)
            .map_err(|e| other(&format!("failed to pull and unpack image {name:?}: {e}")))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&top_bytes)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| match doc {
                Document::Index(_) => oci::OCI_INDEX.to_string(),
                Document::Manifest(_) => oci::OCI_MANIFEST.to_string(),
            });
        let target = Descriptor {
            media_type,
            digest: top.to_string(),
            size: top_bytes.len() as u64,
            ..Default::default()
        };
        self.store.write_blob(&top_bytes).map_err(store_err)?;
        let manifest = match doc {
            Document::Manifest(m) => m,
            Document::Index(idx) => {
                let want = oci::host_platform();
                let d = oci::select_platform(&idx, &want).ok_or_else(|| {
                    other(&format!(
                        "failed to pull and unpack image {name:?}: no match for platform in manifest: not found"
                    ))
                })?;
                let child = oci_client::Reference::with_digest(ep.host.clone(), image.path.clone(), d.digest.clone());
                let (mb, md) = client.pull_manifest_raw(&child, &auth, &ACCEPT).await.map_err(|e| {
                    classify(
                        e,
                        &name,
                        false,
                        &format!("{scheme}://{}/v2/{}/manifests/{}", ep.host, image.path, d.digest),
                        &ep.host,
                        anonymous,
                    )
                })?;
                if md != d.digest || Digest::of(&mb).as_str() != d.digest {
                    return Err(other(&format!(
                        "failed to pull and unpack image {name:?}: manifest {} digest mismatch",
                        d.digest
                    )));
                }
                self.store.write_blob(&mb).map_err(store_err)?;
                match Document::parse(&mb)
                    .map_err(|e| other(&format!("failed to pull and unpack image {name:?}: {e}")))?
                {
                    Document::Manifest(m) => m,
                    Document::Index(_) => {
                        return Err(other(&format!(
                            "failed to pull and unpack image {name:?}: nested index"
                        )))
                    }
                }
            }
        };
        // Config.
        let config_digest = Digest::parse(&manifest.config.digest)
            .map_err(|e| other(&format!("failed to pull and unpack image {name:?}: {e}")))?;
        if !self.store.has_blob(&config_digest) {
            if manifest.config.size > oci::MAX_DOCUMENT {
                return Err(other(&format!(
                    "failed to pull and unpack image {name:?}: image config is larger than 8 MiB"
                )));
            }
            let mut buf: Vec<u8> = Vec::new();
            client
                .pull_blob(&reference, &oci_descriptor(&manifest.config), &mut buf)
                .await
                .map_err(|e| {
                    classify(
                        e,
                        &name,
                        false,
                        &blob_url(scheme, ep, image, &manifest.config.digest),
                        &ep.host,
                        anonymous,
                    )
                })?;
            if Digest::of(&buf) != config_digest {
                return Err(other(&format!(
                    "failed to pull and unpack image {name:?}: image config digest mismatch"
                )));
            }
            self.store.write_blob(&buf).map_err(store_err)?;
        }
        // Layers, in parallel.
        let layers: Vec<(String, u64, bool)> = manifest
            .layers
            .iter()
            .map(|l| {
                let present = Digest::parse(&l.digest)
                    .map(|d| self.store.has_blob(&d))
                    .unwrap_or(false);
                (l.digest.clone(), l.size, present)
            })
            .collect();
        if let Some(p) = &progress {
            p.layers(&layers);
        }
        let mut fetches = Vec::new();
        for (l, (_, _, present)) in manifest.layers.iter().zip(&layers) {
            if !present {
                fetches.push(self.fetch_layer(
                    &client,
                    &reference,
                    l.clone(),
                    &name,
                    scheme,
                    ep,
                    image,
                    progress.clone(),
                ));
            }
        }
        futures::stream::iter(fetches)
            .buffer_unordered(self.parallel_layers.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        if let Some(p) = &progress {
            p.unpacking();
        }
        let store = self.store.clone();
        let name2 = name.clone();
        let img = tokio::task::spawn_blocking(move || -> Result<Image, ImageError> {
            let img = store.resolve(&name2, &target)?;
            store.ensure_unpacked(&img)?;
            store.tag(&name2, &target)?;
            Ok(img)
        })
        .await
        .map_err(|e| other(&format!("failed to pull and unpack image {name:?}: {e}")))?
        .map_err(store_err)?;
        Ok(img)
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_layer(
        &self,
        client: &oci_client::Client,
        reference: &oci_client::Reference,
        layer: Descriptor,
        name: &str,
        scheme: &str,
        ep: &Endpoint,
        image: &ImageRef,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<(), PullError> {
        let fail = |msg: String| {
            other(&format!(
                "failed to pull and unpack image {name:?}: failed to copy: {msg}"
            ))
        };
        let expected = Digest::parse(&layer.digest).map_err(|e| fail(e.to_string()))?;
        let url = blob_url(scheme, ep, image, &layer.digest);
        let mut stream = client
            .pull_blob_stream(reference, &oci_descriptor(&layer))
            .await
            .map_err(|e| classify(e, name, false, &url, &ep.host, false))?;
        let (tmp, file) = self.store.temp_file().map_err(|e| fail(e.to_string()))?;
        let mut out = tokio::fs::File::from_std(file);
        let mut hasher = Hasher::default();
        let result: Result<(), PullError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| fail(format!("httpReadSeeker: failed open: {e}")))?;
                hasher.update(&chunk);
                if hasher.len > layer.size {
                    return Err(fail(format!(
                        "{}: more content than the descriptor's {} bytes",
                        layer.digest, layer.size
                    )));
                }
                out.write_all(&chunk).await.map_err(|e| fail(e.to_string()))?;
                if let Some(p) = &progress {
                    p.bytes(&layer.digest, chunk.len() as u64);
                }
            }
            out.flush().await.map_err(|e| fail(e.to_string()))?;
            Ok(())
        }
        .await;
        drop(out);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let len = hasher.len;
        let actual = hasher.finish();
        let store = self.store.clone();
        let size = layer.size;
        tokio::task::spawn_blocking(move || store.commit_temp(&tmp, &actual, len, &expected, Some(size)))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        if let Some(p) = &progress {
            p.done(&layer.digest);
        }
        Ok(())
    }
}

fn blob_url(scheme: &str, ep: &Endpoint, image: &ImageRef, digest: &str) -> String {
    format!("{scheme}://{}/v2/{}/blobs/{digest}", ep.host, image.path)
}

fn oci_descriptor(d: &Descriptor) -> oci_client::manifest::OciDescriptor {
    oci_client::manifest::OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..Default::default()
    }
}

fn other(msg: &str) -> PullError {
    PullError {
        kind: PullErrorKind::Other,
        message: msg.to_string(),
    }
}

/// Turns an oci-client error into containerd's words. `resolving` is true while fetching the top manifest
/// (containerd's "failed to resolve reference" stage).
fn classify(e: OciDistributionError, name: &str, resolving: bool, url: &str, host: &str, anonymous: bool) -> PullError {
    let stage = if resolving {
        format!("failed to pull and unpack image {name:?}: failed to resolve reference {name:?}")
    } else {
        format!("failed to pull and unpack image {name:?}: failed to copy")
    };
    let (kind, detail) = match &e {
        OciDistributionError::RequestError(re) => {
            let method = if resolving { "Head" } else { "Get" };
            (
                if re.is_timeout() {
                    PullErrorKind::Timeout
                } else {
                    PullErrorKind::Unreachable
                },
                format!("failed to do request: {method} {url:?}: {}", dial_error(re, host)),
            )
        }
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => (
            PullErrorKind::Unauthorized,
            if anonymous {
                "pull access denied, repository does not exist or may require authorization: authorization failed: \
                 no basic auth credentials"
                    .to_string()
            } else if resolving {
                format!("unexpected status from HEAD request to {url}: 401 Unauthorized")
            } else {
                format!("unexpected status from GET request to {url}: 401 Unauthorized")
            },
        ),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope.errors.iter().map(|x| format!("{:?}", x.code)).collect();
            let joined = codes.join(",").to_ascii_uppercase();
            if joined.contains("UNKNOWN") && !joined.contains("UNAUTHORIZED") {
                (PullErrorKind::NotFound, format!("{name}: not found"))
            } else if joined.contains("UNAUTHORIZED") || joined.contains("DENIED") {
                (
                    PullErrorKind::Unauthorized,
                    "pull access denied, repository does not exist or may require authorization: authorization failed"
                        .to_string(),
                )
            } else {
                (PullErrorKind::Other, e.to_string())
            }
        }
        OciDistributionError::ServerError { code: 404, .. } | OciDistributionError::ImageManifestNotFoundError(_) => {
            (PullErrorKind::NotFound, format!("{name}: not found"))
        }
        OciDistributionError::ServerError { code, .. } => (
            PullErrorKind::Other,
            format!("unexpected status from request to {url}: {code}"),
        ),
        _ => (PullErrorKind::Other, e.to_string()),
    };
    PullError {
        kind,
        message: format!("{stage}: {detail}"),
    }
}

/// Go's `dial tcp 127.0.0.1:5999: connect: connection refused` from a reqwest error.
fn dial_error(e: &reqwest::Error, host: &str) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let what = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                std::io::ErrorKind::ConnectionReset => "read: connection reset by peer".to_string(),
                _ => io.to_string(),
            };
            return format!("dial tcp {host}: {what}");
        }
        src = s.source();
    }
    if e.is_timeout() {
        return format!("dial tcp {host}: i/o timeout");
    }
    let mut msg = e.to_string();
    let mut s = std::error::Error::source(e);
    while let Some(x) = s {
        msg = format!("{msg}: {x}");
        s = x.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_shows_the_grpc_wrapper_only_for_not_found_and_deadlines() {
        let e = |kind| PullError {
            kind,
            message: "failed to pull and unpack image \"x\": m".into(),
        };
        assert_eq!(
            e(PullErrorKind::NotFound).cri_message(),
            "rpc error: code = NotFound desc = failed to pull and unpack image \"x\": m"
        );
        assert_eq!(
            e(PullErrorKind::Timeout).cri_message(),
            "rpc error: code = DeadlineExceeded desc = failed to pull and unpack image \"x\": m"
        );
        for k in [
            PullErrorKind::Unauthorized,
            PullErrorKind::Unreachable,
            PullErrorKind::Other,
        ] {
            assert_eq!(e(k).cri_message(), "failed to pull and unpack image \"x\": m");
        }
    }
}
