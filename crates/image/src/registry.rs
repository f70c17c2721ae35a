//! Where a pull goes and with which credentials (pure: parses bytes, answers questions).
//!
//! - [`RegistryConfig`]: k3s' `registries.yaml` (`mirrors.<registry>.endpoint` lists, `"*"` for every registry,
//!   `configs.<host>.auth` and `.tls`). An endpoint's scheme decides plain HTTP: a registry is spoken to over plain
//!   HTTP only when an endpoint says `http://` (or the CLI lists it with `--insecure-registry`).
//! - [`DockerConfig`]: docker's `config.json` / a `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson`
//!   (`auths.<host>.auth` = base64 `user:password`, or `username`/`password`).
//!
//! Unlike k3s, a registry with mirrors is *not* also tried at its upstream address after the mirrors fail: a node
//! whose configuration points `docker.io` at a mirror never sends a packet to Docker Hub (what offline machines and
//! Peapod's tests need). List the upstream as the last endpoint to get k3s' fallback.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// `registries.yaml`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 `user:password`.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub identitytoken: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An identity/registry token, sent as a bearer token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// One place to pull from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as the client addresses it.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
}

/// A configuration file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct ConfigError {
    pub what: String,
    pub reason: String,
}

impl RegistryConfig {
    pub fn parse(yaml: &str, what: &str) -> Result<RegistryConfig, ConfigError> {
        if yaml.trim().is_empty() {
            return Ok(RegistryConfig::default());
        }
        serde_saphyr::from_str(yaml).map_err(|e| ConfigError {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// The endpoints to try, in order, for images of `registry` (a reference's domain, `docker.io` for Hub).
    pub fn endpoints(&self, registry: &str, insecure: &[String]) -> Vec<Endpoint> {
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let listed: Vec<Endpoint> = mirror
            .map(|m| m.endpoint.iter().filter_map(|e| parse_endpoint(e)).collect())
            .unwrap_or_default();
        if !listed.is_empty() {
            return listed;
        }
        let host = if registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        let plain_http = insecure.iter().any(|i| i == registry || *i == host);
        vec![Endpoint { host, plain_http }]
    }

    /// Credentials `configs` gives for `host`.
    pub fn credentials(&self, host: &str) -> Option<Credentials> {
        let auth = self.configs.get(host)?.auth.as_ref()?;
        if let Some(t) = &auth.identitytoken {
            return Some(Credentials::Token(t.clone()));
        }
        if let (Some(u), Some(p)) = (&auth.username, &auth.password) {
            return Some(Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            });
        }
        auth.auth.as_deref().and_then(decode_basic)
    }

    pub fn tls(&self, host: &str) -> Option<&TlsConfig> {
        self.configs.get(host)?.tls.as_ref()
    }
}

/// `http://h:p/v2` → host `h:p`, plain; `https://h` or a bare `h` → HTTPS.
fn parse_endpoint(e: &str) -> Option<Endpoint> {
    let (plain_http, rest) = if let Some(r) = e.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = e.strip_prefix("https://") {
        (false, r)
    } else {
        (false, e)
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return None;
    }
    Some(Endpoint {
        host: host.to_string(),
        plain_http,
    })
}

fn decode_basic(b64: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some(Credentials::Basic {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// Docker's `config.json`, or a `.dockerconfigjson` Secret value.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    pub auths: BTreeMap<String, DockerAuth>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DockerAuth {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub identitytoken: Option<String>,
}

impl DockerConfig {
    pub fn parse(json: &[u8], what: &str) -> Result<DockerConfig, ConfigError> {
        serde_json::from_slice(json).map_err(|e| ConfigError {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// Credentials for `registry` (a reference's domain) or the endpoint `host` it is reached at. Keys may be
    /// written with a scheme and path (`https://index.docker.io/v1/`), as `docker login` writes them.
    pub fn credentials(&self, registry: &str, host: &str) -> Option<Credentials> {
        let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
        for (key, a) in &self.auths {
            let k = key.trim_start_matches("https://").trim_start_matches("http://");
            let k = k.split('/').next().unwrap_or_default();
            let matches = k == registry || k == host || (hub(k) && (hub(registry) || hub(host)));
            if !matches {
                continue;
            }
            if let Some(t) = &a.identitytoken {
                return Some(Credentials::Token(t.clone()));
            }
            if let (Some(u), Some(p)) = (&a.username, &a.password) {
                return Some(Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                });
            }
            if let Some(c) = a.auth.as_deref().and_then(decode_basic) {
                return Some(c);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_and_configs() {
        let c = RegistryConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example:8443/v2"
  "*":
    endpoint: ["http://127.0.0.1:1"]
configs:
  "127.0.0.1:5000":
    auth:
      username: alice
      password: s3cret
  "mirror.example:8443":
    auth:
      auth: Ym9iOnB3      # bob:pw
    tls:
      insecure_skip_verify: true
"#,
            "registries.yaml",
        )
        .unwrap();
        assert_eq!(
            c.endpoints("docker.io", &[]),
            vec![
                Endpoint {
                    host: "127.0.0.1:5000".into(),
                    plain_http: true
                },
                Endpoint {
                    host: "mirror.example:8443".into(),
                    plain_http: false
                }
            ]
        );
        assert_eq!(
            c.endpoints("quay.io", &[]),
            vec![Endpoint {
                host: "127.0.0.1:1".into(),
                plain_http: true
            }]
        );
        assert_eq!(
            c.credentials("127.0.0.1:5000"),
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            c.credentials("mirror.example:8443"),
            Some(Credentials::Basic {
                username: "bob".into(),
                password: "pw".into()
            })
        );
        assert!(c.tls("mirror.example:8443").unwrap().insecure_skip_verify);
        let none = RegistryConfig::default();
        assert_eq!(
            none.endpoints("docker.io", &[]),
            vec![Endpoint {
                host: "registry-1.docker.io".into(),
                plain_http: false
            }]
        );
        assert_eq!(
            none.endpoints("localhost:5000", &["localhost:5000".into()]),
            vec![Endpoint {
                host: "localhost:5000".into(),
                plain_http: true
            }]
        );
        assert!(RegistryConfig::parse("mirrors: [", "f").is_err());
    }

    #[test]
    fn docker_config_auths() {
        let d = DockerConfig::parse(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"127.0.0.1:5000":{"username":"a","password":"b"}}}"#,
            "config.json",
        )
        .unwrap();
        assert_eq!(
            d.credentials("docker.io", "registry-1.docker.io"),
            Some(Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            d.credentials("127.0.0.1:5000", "127.0.0.1:5000"),
            Some(Credentials::Basic {
                username: "a".into(),
                password: "b".into()
            })
        );
        assert_eq!(d.credentials("quay.io", "quay.io"), None);
        assert!(format!("{:?}", d.credentials("127.0.0.1:5000", "x")).contains("redacted"));
    }
}
