//! Authentication: who is calling, from a bearer token or a verified client certificate.
//!
//! A request with neither, or with a token nobody issued, is `401 Unauthorized` (except the health and version
//! endpoints, which Kubernetes also serves to anonymous callers). Authorization beyond "authenticated" comes with
//! node agents (NodeRestriction) in a later issue. Service-account JWTs are checked by
//! [`crate::service_accounts::authenticate`] (it needs the store to see that the ServiceAccount and bound Pod still
//! exist), which the request handler asks when no token here matches; they get no more and no less access than any
//! other authenticated user, since there is no RBAC yet.
//!
//! Security: tokens are compared in constant time, so response timing does not reveal how much of a guessed token
//! was right. Client certificates reach this module only after rustls verified them against the cluster CA.

use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::RwLock;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// The user a verified client certificate names: CN is the user, each O a group (Kubernetes' convention).
    pub fn from_certificate(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push("system:authenticated".into());
        Some(Self { name, groups })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Knows every valid token.
pub struct Authenticator {
    admin_token: String,
    /// Further tokens (node join tokens, service-account tokens) and whom they stand for.
    tokens: RwLock<HashMap<String, User>>,
}

impl Authenticator {
    pub fn new(admin_token: String) -> Self {
        Self {
            admin_token,
            tokens: RwLock::new(HashMap::new()),
        }
    }

    /// Registers another token.
    pub fn add_token(&self, token: String, user: User) {
        let mut t = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        t.insert(token, user);
    }

    /// The user behind an `Authorization` header value, if it is a known bearer token.
    pub fn authenticate_header(&self, header: &str) -> Option<User> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))?
            .trim();
        if token.is_empty() {
            return None;
        }
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(User {
                name: "admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            });
        }
        let t = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .find(|(k, _)| constant_time_eq(k.as_bytes(), token.as_bytes()))
            .map(|(_, u)| u.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let a = Authenticator::new("secret".into());
        assert_eq!(a.authenticate_header("Bearer secret").unwrap().name, "admin");
        assert!(a.authenticate_header("Bearer secre").is_none());
        assert!(a.authenticate_header("Basic secret").is_none());
        assert!(a.authenticate_header("Bearer ").is_none());
        a.add_token(
            "n1".into(),
            User {
                name: "system:node:n1".into(),
                groups: vec![],
            },
        );
        assert_eq!(a.authenticate_header("Bearer n1").unwrap().name, "system:node:n1");
    }
}
