//! Image references, normalised exactly as Kubernetes and containerd do (`github.com/distribution/reference`'s
//! `ParseNormalizedNamed`): `nginx:1.21` → `docker.io/library/nginx:1.21`, `my-company/my-app` →
//! `docker.io/my-company/my-app:latest`, `host:5000/a/b@sha256:…` kept as written.
//!
//! Pure: no IO. The error texts are the Go library's, so a Pod with a bad image shows the same `InvalidImageName`
//! message as on a kubelet (see [`invalid_image_name_message`]).

use std::fmt;

/// The registry of names without a domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `docker.io`, `registry.example.com:5000`, `[::1]:5000`.
    pub domain: String,
    /// The repository path inside the registry: `library/nginx`.
    pub path: String,
    /// The tag, `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:…` when pinned by digest.
    pub digest: Option<String>,
}

/// Why a reference does not parse; `Display` is distribution/reference's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    NameContainsUppercase(String),
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("invalid checksum digest format")]
    DigestFormat,
    #[error("invalid checksum digest length")]
    DigestLength,
    #[error("unsupported digest algorithm")]
    DigestAlgorithm,
}

/// The message a kubelet puts in a container's `InvalidImageName` state and event for `image`.
pub fn invalid_image_name_message(image: &str, err: &ReferenceError) -> String {
    format!("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {err}")
}

impl ImageRef {
    /// Parses and normalises `s` as `ParseNormalizedNamed` + `TagNameOnly` do.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = remainder.split(':').next().unwrap_or_default();
        if remote_name.to_ascii_lowercase() != remote_name {
            return Err(ReferenceError::NameContainsUppercase(remote_name.to_string()));
        }
        let full = format!("{domain}/{remainder}");
        match parse_full(&full) {
            Ok(r) => Ok(r),
            Err(ReferenceError::InvalidFormat) if parse_full(&full.to_ascii_lowercase()).is_ok() => {
                Err(ReferenceError::NameContainsUppercase(remote_name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The reference as the store and the CRI name it: `docker.io/library/nginx:1.21`, `…@sha256:…`.
    pub fn full(&self) -> String {
        self.to_string()
    }

    /// Short form as `docker` and `kubectl` users write it: `nginx:1.21`, `my-company/my-app:v1`.
    pub fn familiar(&self) -> String {
        let mut name = if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(d);
        }
        name
    }

    /// The reference a registry is asked for: by digest when pinned, else by tag.
    pub fn locator(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == "localhost"
                || name[..i].to_ascii_lowercase() != name[..i] =>
        {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// Parses `domain/path[:tag][@digest]` (the domain always present) by distribution/reference's grammar.
fn parse_full(s: &str) -> Result<ImageRef, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::NameEmpty);
    }
    let (before_digest, digest) = match s.split_once('@') {
        Some((a, d)) => (a, Some(d)),
        None => (s, None),
    };
    let slash = before_digest.find('/').ok_or(ReferenceError::InvalidFormat)?;
    let domain = &before_digest[..slash];
    let rest = &before_digest[slash + 1..];
    if !is_domain(domain) {
        return Err(ReferenceError::InvalidFormat);
    }
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    };
    if path.is_empty() || !path.split('/').all(is_path_component) {
        return Err(ReferenceError::InvalidFormat);
    }
    if let Some(t) = tag {
        if !is_tag(t) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    if let Some(d) = digest {
        if !is_digest_syntax(d) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(d) = digest {
        validate_digest(d)?;
    }
    let tag = match (tag, digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_string()),
    };
    Ok(ImageRef {
        domain: domain.to_string(),
        path: path.to_string(),
        tag,
        digest: digest.map(str::to_string),
    })
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or '-'+, followed by an alphanumeric.
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host(:port)?` where host is a domain name, an IPv4 address or `[IPv6]`.
fn is_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else { return false };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => ("ipv6", Some(p)),
            None if after.is_empty() => ("ipv6", None),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host == "ipv6" && d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
fn is_digest_syntax(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Parse` + `Validate` for the algorithms a registry serves.
fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let (alg, hex) = d.split_once(':').ok_or(ReferenceError::DigestFormat)?;
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestAlgorithm),
    };
    if hex.len() != want {
        return Err(ReferenceError::DigestLength);
    }
    if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ReferenceError::DigestFormat);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match ImageRef::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn normalises_like_containerd() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let cases = [
            ("nginx", "docker.io/library/nginx:latest".to_string()),
            ("nginx:1.21", "docker.io/library/nginx:1.21".to_string()),
            ("library/nginx:1.21", "docker.io/library/nginx:1.21".to_string()),
            ("docker.io/nginx", "docker.io/library/nginx:latest".to_string()),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1".to_string(),
            ),
            (
                "my-company/my-app:v1.0.0",
                "docker.io/my-company/my-app:v1.0.0".to_string(),
            ),
            ("localhost/foo", "localhost/foo:latest".to_string()),
            ("localhost:5000/a/b:c", "localhost:5000/a/b:c".to_string()),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest".to_string()),
            ("[::1]:5000/a:t", "[::1]:5000/a:t".to_string()),
            (&format!("host:5000/a/b@{d}"), format!("host:5000/a/b@{d}")),
            (
                &format!("busybox:1.35@{d}"),
                format!("docker.io/library/busybox:1.35@{d}"),
            ),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10".to_string()),
            ("a__b/c--d_e.f", "docker.io/a__b/c--d_e.f:latest".to_string()),
            ("Foo/bar", "Foo/bar:latest".to_string()),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn rejects_like_distribution_reference() {
        let cases = [
            ("", "error: invalid reference format"),
            (
                "Nginx",
                "error: invalid reference format: repository name (library/Nginx) must be lowercase",
            ),
            (
                "foo/Bar",
                "error: invalid reference format: repository name (foo/Bar) must be lowercase",
            ),
            ("nginx:", "error: invalid reference format"),
            ("nginx:-x", "error: invalid reference format"),
            ("-nginx", "error: invalid reference format"),
            ("nginx@sha256:abc", "error: invalid reference format"),
            ("a///b", "error: invalid reference format"),
            ("a..b", "error: invalid reference format"),
            ("a b", "error: invalid reference format"),
            (
                "nginx@md5:0123456789abcdef0123456789abcdef",
                "error: unsupported digest algorithm",
            ),
            (
                "nginx@sha256:0123456789abcdef0123456789abcdef",
                "error: invalid checksum digest length",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input:?}");
        }
        let hex = "a".repeat(64);
        assert_eq!(
            norm(&hex),
            format!("error: invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
        assert_eq!(
            norm(&format!("a/{}", "b".repeat(260))),
            "error: repository name must not be more than 255 characters"
        );
        assert_eq!(
            norm(&format!("nginx:{}", "t".repeat(129))),
            "error: invalid reference format"
        );
    }

    #[test]
    fn kubelet_message() {
        let err = ImageRef::parse("Nginx:1.21").unwrap_err();
        assert_eq!(
            invalid_image_name_message("Nginx:1.21", &err),
            "Failed to apply default image tag \"Nginx:1.21\": couldn't parse image name \"Nginx:1.21\": \
             invalid reference format: repository name (library/Nginx) must be lowercase"
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(ImageRef::parse("nginx:1.21").unwrap().familiar(), "nginx:1.21");
        assert_eq!(
            ImageRef::parse("my-company/my-app:v1").unwrap().familiar(),
            "my-company/my-app:v1"
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/x").unwrap().familiar(),
            "localhost:5000/x:latest"
        );
    }
}
