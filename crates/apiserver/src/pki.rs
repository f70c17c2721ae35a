//! The cluster's credentials on disk: the CA, the serving certificate, the admin token and the kubeconfig; and the
//! certificates the CA issues in memory (node serving certificates, client certificates).
//!
//! Owns `<data-dir>/pki/` and `<data-dir>/kubeconfig.yaml`. Created on first start and reused afterwards; the serving
//! certificate is re-issued (by the same CA) when the names it must cover change, so clients keep trusting the
//! server across restarts.
//!
//! Security: private keys and tokens are written with mode 0600 through a temporary file and a rename, so a crash
//! never leaves a half-written key and no other user can read them. Tokens are 32 random bytes from the OS RNG.

use crate::ServerError;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The credentials a server runs with.
pub struct Pki {
    /// PEM of the CA certificate (what clients trust).
    pub ca_pem: String,
    /// PEM of the serving certificate followed by nothing else (the CA is distributed separately).
    pub server_cert_pem: String,
    /// PEM of the serving key.
    pub server_key_pem: String,
    /// The bearer token of the `admin` user (group `system:masters`).
    pub admin_token: String,
    /// Where the files live.
    pub dir: PathBuf,
    /// The CA key, kept to sign client certificates for node agents.
    ca_key_pem: String,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |e| ServerError::Io { context, source: e }
}

fn tls_err(context: &str) -> impl FnOnce(rcgen::Error) -> ServerError + '_ {
    move |e| ServerError::Tls(format!("{context}: {e}"))
}

/// Writes `data` to `path` atomically with `mode`.
pub(crate) fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(format!("create {}", tmp.display())))?;
    f.write_all(data).map_err(io_err(format!("write {}", tmp.display())))?;
    f.sync_all().map_err(io_err(format!("sync {}", tmp.display())))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io_err(format!("chmod {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("rename {} to {}", tmp.display(), path.display())))
}

fn read_opt(path: &Path) -> Result<Option<String>, ServerError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServerError::Io {
            context: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// A fresh random token: 32 bytes from the OS, URL-safe base64 without padding.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The names the serving certificate must cover for `listen`: its IP (unless unspecified, then every loopback
/// name), `localhost`, `127.0.0.1`, `::1` and the host name.
pub fn serving_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if let Ok(h) = hostname() {
        names.push(h);
    }
    names.sort();
    names.dedup();
    names
}

/// The host's name from the kernel.
pub fn hostname() -> Result<String, ServerError> {
    let s = fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(io_err("read /proc/sys/kernel/hostname".to_string()))?;
    Ok(s.trim().to_string())
}

fn ca_params() -> Result<CertificateParams, ServerError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
    params.distinguished_name.push(DnType::CommonName, "peapod-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// Issues a serving certificate (server auth) for `names` (IP addresses become IP SANs, the rest DNS SANs), signed
/// by the CA. Returns (certificate PEM, key PEM).
fn sign_serving_cert(
    ca_pem: &str,
    ca_key_pem: &str,
    cn: &str,
    names: &[String],
) -> Result<(String, String), ServerError> {
    let key = KeyPair::generate().map_err(tls_err("generate serving key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("serving parameters"))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .map_err(tls_err("serving names"))?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(tls_err("read CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(tls_err("read CA certificate"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(tls_err("sign serving certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a node agent needs to serve the API server (its `:10250`): the cluster CA, which signs the API server's
/// kubelet-client certificate and which the API server trusts for nodes, and a serving certificate for the node.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
}

impl Pki {
    /// Loads the credentials under `data_dir`, creating whatever is missing, and makes sure the serving certificate
    /// covers `names`.
    pub fn load_or_create(data_dir: &Path, names: &[String]) -> Result<Self, ServerError> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod {}", dir.display())))?;

        let (ca_pem, ca_key_pem) = match (read_opt(&dir.join("ca.crt"))?, read_opt(&dir.join("ca.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate().map_err(tls_err("generate CA key"))?;
                let cert = ca_params()?.self_signed(&key).map_err(tls_err("self-sign CA"))?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write_private(&dir.join("ca.key"), k.as_bytes(), 0o600)?;
                write_private(&dir.join("ca.crt"), c.as_bytes(), 0o644)?;
                (c, k)
            }
        };

        let wanted = names.join(",");
        let have = read_opt(&dir.join("server.names"))?;
        let (server_cert_pem, server_key_pem) = match (
            read_opt(&dir.join("server.crt"))?,
            read_opt(&dir.join("server.key"))?,
            have.as_deref() == Some(wanted.as_str()),
        ) {
            (Some(c), Some(k), true) => (c, k),
            _ => {
                let (c, k) = sign_serving_cert(&ca_pem, &ca_key_pem, "peapod-apiserver", names)?;
                write_private(&dir.join("server.key"), k.as_bytes(), 0o600)?;
                write_private(&dir.join("server.crt"), c.as_bytes(), 0o644)?;
                write_private(&dir.join("server.names"), wanted.as_bytes(), 0o644)?;
                (c, k)
            }
        };

        let admin_token = match read_opt(&dir.join("admin.token"))? {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = random_token();
                write_private(&dir.join("admin.token"), t.as_bytes(), 0o600)?;
                t
            }
        };

        Ok(Self {
            ca_pem,
            server_cert_pem,
            server_key_pem,
            admin_token,
            dir,
            ca_key_pem,
        })
    }

    /// Issues a serving certificate for a node server covering `names` (IP addresses and DNS names), signed by the
    /// CA. Returns (certificate PEM, key PEM).
    pub fn issue_serving_cert(&self, names: &[String]) -> Result<(String, String), ServerError> {
        sign_serving_cert(&self.ca_pem, &self.ca_key_pem, "peapod-node", names)
    }

    /// A node's credentials: a fresh serving certificate for `names` and the CA.
    pub fn node_credentials(&self, names: &[String]) -> Result<NodeCredentials, ServerError> {
        let (serving_cert_pem, serving_key_pem) = self.issue_serving_cert(names)?;
        Ok(NodeCredentials {
            ca_pem: self.ca_pem.clone(),
            serving_cert_pem,
            serving_key_pem,
        })
    }

    /// Issues a client certificate for `user` in `groups` (CN and O, as Kubernetes reads them), signed by the CA.
    /// Returns (certificate PEM, key PEM).
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> Result<(String, String), ServerError> {
        let key = KeyPair::generate().map_err(tls_err("generate client key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("client parameters"))?;
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(tls_err("read CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, ca_key).map_err(tls_err("read CA certificate"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(tls_err("sign client certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The kubeconfig for the admin user against `server_url` (cluster `peapod`, user `admin`, context `peapod`).
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: peapod\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: peapod\n  context:\n    cluster: peapod\n    user: admin\n    namespace: default\ncurrent-context: peapod\npreferences: {{}}\n",
            self.admin_token
        )
    }
}

/// The URL clients should use for a server listening on `listen` (loopback when it listens on every address).
pub fn server_url(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{}", listen.port()),
        IpAddr::V6(v6) => format!("https://[{v6}]:{}", listen.port()),
    }
}

/// Writes `<data-dir>/kubeconfig.yaml` (0600: it holds the admin token).
pub fn write_kubeconfig(data_dir: &Path, contents: &str) -> Result<PathBuf, ServerError> {
    let path = data_dir.join("kubeconfig.yaml");
    write_private(&path, contents.as_bytes(), 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reuses() {
        let d = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let a = Pki::load_or_create(d.path(), &names).unwrap();
        let b = Pki::load_or_create(d.path(), &names).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        let mode = fs::metadata(d.path().join("pki/ca.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // New names: same CA, new serving certificate.
        let c = Pki::load_or_create(d.path(), &["10.1.2.3".to_string()]).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.server_cert_pem, c.server_cert_pem);
        let (cert, key) = c.issue_client_cert("system:node:n1", &["system:nodes"]).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
    }

    #[test]
    fn kubeconfig_shape() {
        let d = tempfile::tempdir().unwrap();
        let p = Pki::load_or_create(d.path(), &["localhost".to_string()]).unwrap();
        let k = p.admin_kubeconfig("https://127.0.0.1:6443");
        assert!(k.contains("current-context: peapod"));
        assert!(k.contains(&p.admin_token));
        assert_eq!(server_url("0.0.0.0:6443".parse().unwrap()), "https://127.0.0.1:6443");
    }
}
