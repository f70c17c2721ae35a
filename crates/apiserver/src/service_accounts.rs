//! Service accounts as Pods see them: the ServiceAccount admission step that gives every Pod a projected
//! `kube-api-access-xxxxx` volume, the root-CA ConfigMap (`kube-root-ca.crt`) every namespace carries, the
//! TokenRequest subresource (`POST …/serviceaccounts/{name}/token`) and the signed JWTs it issues and
//! authentication accepts.
//!
//! Tokens are ES256 JWTs (ECDSA P-256, SHA-256) signed with `<data-dir>/pki/sa.key`, which is created on first start
//! and kept; the claims are the ones kube-apiserver writes (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`,
//! `kubernetes.io`). Signing and verifying use `ring` directly (already in the tree through rustls), so no JWT crate
//! is needed.
//!
//! Security: a token is accepted only if its signature verifies with our key, it is inside its validity window, one
//! of its audiences is the API server's, and the ServiceAccount (and the Pod it is bound to, if any) still exists
//! with the UID the token names — deleting either revokes every token issued for it.

use crate::handlers::{self, State};
use crate::registry::Registry;
use crate::ServerError;
use base64::Engine;
use http::{Response, StatusCode};
use peapod_api::resources::{self, ResourceInfo};
use peapod_api::{ApiError, FieldError};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// Where the admission step mounts the token, CA and namespace (`DefaultAPITokenMountPath`).
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Prefix of the projected volume's name (`ServiceAccountVolumeName` + `-`).
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Its key.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// What kube-apiserver's root-CA publisher writes on the ConfigMap.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using \
internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across \
distributions of Kubernetes clusters.";
/// The token issuer, which is also the API server's audience (kube-apiserver's defaults for
/// `--service-account-issuer` and `--api-audiences`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Lifetime of a requested token when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (2^32 seconds, kube-apiserver's limit).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// Lifetime the admission step writes into the projected token source.
pub const PROJECTED_EXPIRATION_SECONDS: i64 = 3607;

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
}

/// A name and UID inside the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaim {
    pub name: String,
    pub uid: String,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub nbf: i64,
    pub sub: String,
}

impl Claims {
    /// Claims for service account `namespace/name` (UID `uid`), optionally bound to a Pod, valid from `now` for
    /// `seconds`.
    pub fn new(
        namespace: &str,
        sa: ObjectClaim,
        pod: Option<ObjectClaim>,
        audiences: Vec<String>,
        now: i64,
        seconds: i64,
    ) -> Self {
        Self {
            aud: audiences,
            exp: now + seconds,
            iat: now,
            iss: ISSUER.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            sub: format!("system:serviceaccount:{namespace}:{}", sa.name),
            kubernetes: KubernetesClaims {
                namespace: namespace.into(),
                serviceaccount: sa,
                pod,
            },
            nbf: now,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not a JWT: {0}")]
    Malformed(&'static str),
    #[error("token signature does not verify")]
    Signature,
    #[error("token issuer {0:?} is not ours")]
    Issuer(String),
    #[error("token expired at {0}")]
    Expired(i64),
    #[error("token not valid before {0}")]
    NotYetValid(i64),
    #[error("token audiences {0:?} do not include the API server's")]
    Audience(Vec<String>),
    #[error("signing failed")]
    Sign,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Signs and verifies service-account tokens with one P-256 key.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl TokenSigner {
    /// A signer from a PKCS#8 PEM key.
    pub fn from_pem(pem: &str) -> Result<Self, ServerError> {
        let kp =
            rcgen::KeyPair::from_pem(pem).map_err(|e| ServerError::Tls(format!("read service-account key: {e}")))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &kp.serialize_der(), &rng)
            .map_err(|e| ServerError::Tls(format!("service-account key is not a P-256 PKCS#8 key: {e}")))?;
        // kube-apiserver's key ID: the URL-safe base64 of the SHA-256 of the public key.
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref()).as_ref());
        Ok(Self { key, rng, kid })
    }

    /// Loads `<pki-dir>/sa.key`, creating it (mode 0600) on first use.
    pub fn load_or_create(pki_dir: &Path) -> Result<Self, ServerError> {
        let path = pki_dir.join("sa.key");
        match std::fs::read_to_string(&path) {
            Ok(pem) => Self::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| ServerError::Tls(format!("generate service-account key: {e}")))?;
                let pem = kp.serialize_pem();
                crate::pki::write_private(&path, pem.as_bytes(), 0o600)?;
                Self::from_pem(&pem)
            }
            Err(e) => Err(ServerError::Io {
                context: format!("read {}", path.display()),
                source: e,
            }),
        }
    }

    /// A signed compact JWT carrying `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let body = serde_json::to_vec(claims).map_err(|_| TokenError::Sign)?;
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(&body));
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        Ok(format!("{input}.{}", b64(sig.as_ref())))
    }

    /// The claims of `token` if its signature, issuer, validity window (at `now`, Unix seconds) and audiences
    /// (one of them must be `audience`) check out. Whether the objects it names still exist is the caller's part.
    pub fn verify(&self, token: &str, now: i64, audience: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("not three parts"));
        };
        let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s);
        let header: Value = dec(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed("header"))?;
        // Security: only the algorithm we sign with is accepted (no `none`, no algorithm confusion).
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(TokenError::Signature);
        }
        let sig = dec(s).map_err(|_| TokenError::Malformed("signature"))?;
        let public = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        let signed = &token[..h.len() + 1 + p.len()];
        public
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = dec(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed("claims"))?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer(claims.iss));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired(claims.exp));
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid(claims.nbf));
        }
        if !claims.aud.iter().any(|a| a == audience) {
            return Err(TokenError::Audience(claims.aud));
        }
        Ok(claims)
    }
}

/// What the API server keeps for service accounts: the token key and the CA it publishes.
pub struct ServiceAccounts {
    pub signer: TokenSigner,
    pub ca_pem: String,
}

fn info(plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    resources::find("", "v1", plural).ok_or_else(|| ApiError::internal(format!("{plural} not served")))
}

// ---------------------------------------------------------------------------------------------------------------
// Admission

/// Whether a Pod gets the token volume: the Pod's `automountServiceAccountToken` wins, then its ServiceAccount's,
/// else yes.
pub fn should_automount(pod: &Value, sa: Option<&Value>) -> bool {
    if let Some(b) = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
    {
        return b;
    }
    sa.and_then(|s| s.get("automountServiceAccountToken"))
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// The projected volume named `name` as the admission step writes it.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    })
}

/// Adds the token volume (named `kube-api-access-<suffix>`) and a read-only mount of it at [`TOKEN_MOUNT_PATH`] to
/// every init container and container that has no mount there yet; the volume is added only if some container got
/// the mount. Pure (`mountServiceAccountToken` in kube-apiserver's ServiceAccount admission plugin).
pub fn mount_token_volume(pod: &mut Value, suffix: &str) {
    let name = format!("{VOLUME_PREFIX}{suffix}");
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
            {
                continue;
            }
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if !needed {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(vs) = volumes.as_array_mut() {
        if !vs
            .iter()
            .any(|v| v.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            vs.push(token_volume(&name));
        }
    }
}

/// The ServiceAccount admission step for a new (defaulted) Pod in `namespace`: the Pod's ServiceAccount must
/// exist, and the token volume is mounted unless automounting is off.
///
/// A missing `default` ServiceAccount is let through (treated as automounting): the namespace controller creates
/// it moments after the namespace, and refusing Pods in that window would only make clients retry.
pub fn admit_pod(registry: &Registry, namespace: &str, pod: &mut Value) -> Result<(), ApiError> {
    let sa_name = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    let sa_info = info("serviceaccounts")?;
    let sa = registry.get(sa_info, &sa_info.key(Some(namespace), &sa_name), &sa_name)?;
    if sa.is_none() && sa_name != "default" {
        let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        return Err(ApiError::forbidden(
            "",
            "pods",
            pod_name,
            &format!("error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"),
        ));
    }
    if should_automount(pod, sa.as_deref()) {
        mount_token_volume(pod, &handlers::random_suffix(5));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Root CA publisher

/// Makes sure namespace `ns` has the `kube-root-ca.crt` ConfigMap holding `ca_pem` (creating it, or fixing its
/// data when it differs).
pub async fn ensure_root_ca(registry: &Registry, ns: &str, ca_pem: &str) -> Result<(), ApiError> {
    let cm = info("configmaps")?;
    let key = cm.key(Some(ns), ROOT_CA_CONFIGMAP);
    let data = json!({ROOT_CA_KEY: ca_pem});
    match registry.get(cm, &key, ROOT_CA_CONFIGMAP)? {
        Some(cur) if cur.get("data") == Some(&data) => Ok(()),
        Some(cur) => {
            let mut new = (*cur).clone();
            new["data"] = data;
            let Some(rev) = crate::registry::resource_version(&cur) else {
                return Err(ApiError::internal(format!(
                    "{ns}/{ROOT_CA_CONFIGMAP} has no resourceVersion"
                )));
            };
            match registry.update(cm, &key, ROOT_CA_CONFIGMAP, &new, rev).await {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        None => {
            let obj = json!({
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {
                    "name": ROOT_CA_CONFIGMAP,
                    "namespace": ns,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": handlers::now_rfc3339(),
                    "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                },
                "data": data,
            });
            match registry.create(cm, &key, ROOT_CA_CONFIGMAP, &obj).await {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TokenRequest

/// The parts of a TokenRequest body the server reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TokenRequestSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// (kind, name, uid) of the bound object.
    pub bound: Option<(String, String, String)>,
}

/// Reads and validates a TokenRequest body (defaults: the API audience, 3600 seconds). Pure.
pub fn parse_token_request(body: &Value, sa_name: &str) -> Result<TokenRequestSpec, ApiError> {
    let invalid = |errs: Vec<FieldError>| ApiError::invalid("authentication.k8s.io", "TokenRequest", sa_name, &errs);
    if let Some(k) = body
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| *k != "TokenRequest")
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({k}) is not TokenRequest"
        )));
    }
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(vec![FieldError::invalid(
                "spec.expirationSeconds",
                v.to_string(),
                "must be an integer",
            )])
        })?,
    };
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(vec![FieldError::invalid(
            "spec.expirationSeconds",
            expiration_seconds.to_string(),
            "may not specify a duration less than 10 minutes",
        )]));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(vec![FieldError::invalid(
            "spec.expirationSeconds",
            expiration_seconds.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        )]));
    }
    let bound = match spec.get("boundObjectRef").filter(|v| !v.is_null()) {
        None => None,
        Some(b) => {
            let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let kind = s("kind");
            if kind != "Pod" {
                return Err(invalid(vec![FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    &kind,
                    &["Pod"],
                )]));
            }
            Some((kind, s("name"), s("uid")))
        }
    };
    Ok(TokenRequestSpec {
        audiences,
        expiration_seconds,
        bound,
    })
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: issues a token for the ServiceAccount, bound to a
/// Pod if asked, and answers 201 with the TokenRequest carrying `status.token` and `status.expirationTimestamp`.
/// `req` is the decoded body (JSON, YAML or protobuf, which kubectl sends).
pub fn create_token(
    state: &State,
    ns: &str,
    sa_name: &str,
    req: &Value,
) -> Result<Response<axum::body::Body>, ApiError> {
    let sas = state
        .service_accounts
        .as_ref()
        .ok_or_else(|| ApiError::internal("this server has no service-account signing key"))?;
    let spec = parse_token_request(req, sa_name)?;
    let sa_info = info("serviceaccounts")?;
    let sa = state
        .registry
        .get(sa_info, &sa_info.key(Some(ns), sa_name), sa_name)?
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", sa_name))?;
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let pod = match &spec.bound {
        None => None,
        Some((_, name, uid)) => {
            let pod_info = info("pods")?;
            let pod = state
                .registry
                .get(pod_info, &pod_info.key(Some(ns), name), name)?
                .ok_or_else(|| ApiError::not_found("", "pods", name))?;
            let have = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            if !uid.is_empty() && uid != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
            Some(ObjectClaim {
                name: name.clone(),
                uid: have.to_string(),
            })
        }
    };
    let now = jiff::Timestamp::now();
    let claims = Claims::new(
        ns,
        ObjectClaim {
            name: sa_name.into(),
            uid: sa_uid,
        },
        pod.clone(),
        spec.audiences.clone(),
        now.as_second(),
        spec.expiration_seconds,
    );
    let token = sas
        .signer
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("sign token for {ns}/{sa_name}: {e}")))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(|e| ApiError::internal(format!("token expiry out of range: {e}")))?;
    let mut out_spec = json!({"audiences": spec.audiences, "expirationSeconds": spec.expiration_seconds});
    if let (Some((kind, _, _)), Some(p)) = (&spec.bound, &pod) {
        out_spec["boundObjectRef"] = json!({"kind": kind, "apiVersion": "v1", "name": p.name, "uid": p.uid});
    } else {
        out_spec["boundObjectRef"] = Value::Null;
    }
    let reply = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": null},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": handlers::format_time(expires)},
    });
    tracing::info!(namespace = ns, serviceaccount = sa_name, pod = ?pod.map(|p| p.name), "issued service-account token");
    Ok(crate::response::json_response(StatusCode::CREATED, &reply))
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication

/// The user a service-account bearer token stands for, if it verifies and the objects it names still exist with
/// the UIDs it names.
pub fn authenticate(state: &State, token: &str) -> Option<crate::auth::User> {
    let sas = state.service_accounts.as_ref()?;
    let claims = match sas.signer.verify(token, jiff::Timestamp::now().as_second(), ISSUER) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "service-account token refused");
            return None;
        }
    };
    let k = &claims.kubernetes;
    let exists = |plural: &str, name: &str, uid: &str| -> bool {
        let Ok(i) = info(plural) else { return false };
        match state.registry.get(i, &i.key(Some(&k.namespace), name), name) {
            Ok(Some(o)) => o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid),
            _ => false,
        }
    };
    if !exists("serviceaccounts", &k.serviceaccount.name, &k.serviceaccount.uid) {
        tracing::debug!(sub = %claims.sub, "service-account token refused: service account gone");
        return None;
    }
    if let Some(p) = &k.pod {
        if !exists("pods", &p.name, &p.uid) {
            tracing::debug!(sub = %claims.sub, pod = %p.name, "service-account token refused: pod gone");
            return None;
        }
    }
    Some(crate::auth::User {
        name: claims.sub.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", k.namespace),
            "system:authenticated".into(),
        ],
    })
}

/// The extra subresource discovery lists for `serviceaccounts` (its Kind lives in another group, which the shared
/// resource table cannot express).
pub fn discovery_token_subresource() -> Value {
    json!({"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]})
}

/// The same for legacy (`/api/v1`) discovery.
pub fn legacy_token_subresource() -> Value {
    json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true, "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        let d = tempfile::tempdir().unwrap();
        let a = TokenSigner::load_or_create(d.path()).unwrap();
        let b = TokenSigner::load_or_create(d.path()).unwrap();
        assert_eq!(a.kid, b.kid, "the key is kept across starts");
        a
    }

    fn claims(now: i64, secs: i64, aud: &str) -> Claims {
        Claims::new(
            "default",
            ObjectClaim {
                name: "default".into(),
                uid: "u1".into(),
            },
            Some(ObjectClaim {
                name: "p".into(),
                uid: "u2".into(),
            }),
            vec![aud.into()],
            now,
            secs,
        )
    }

    #[test]
    fn round_trip() {
        let s = signer();
        let c = claims(1000, 3600, ISSUER);
        let t = s.sign(&c).unwrap();
        assert_eq!(s.verify(&t, 1001, ISSUER).unwrap(), c);
        assert_eq!(c.sub, "system:serviceaccount:default:default");
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["kubernetes.io"]["pod"]["name"], "p");
        assert_eq!(payload["kubernetes.io"]["serviceaccount"]["uid"], "u1");
        assert_eq!(payload["exp"], 4600);
    }

    #[test]
    fn refusals() {
        let s = signer();
        let t = s.sign(&claims(1000, 600, ISSUER)).unwrap();
        assert_eq!(s.verify(&t, 1600, ISSUER), Err(TokenError::Expired(1600)));
        assert_eq!(s.verify(&t, 999, ISSUER), Err(TokenError::NotYetValid(1000)));
        let other = s.sign(&claims(1000, 600, "vault")).unwrap();
        assert!(matches!(s.verify(&other, 1001, ISSUER), Err(TokenError::Audience(_))));
        // Tampered payload (claims re-encoded with another subject, old signature kept).
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(1000, 600, ISSUER);
        c.sub = "system:serviceaccount:kube-system:admin".into();
        let forged = format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&c).unwrap()), parts[2]);
        assert_eq!(s.verify(&forged, 1001, ISSUER), Err(TokenError::Signature));
        // Another key's token, and `alg: none`.
        assert_eq!(signer().verify(&t, 1001, ISSUER), Err(TokenError::Signature));
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(s.verify(&none, 1001, ISSUER), Err(TokenError::Signature));
        assert!(matches!(s.verify("abc", 1001, ISSUER), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn mounts_in_every_container() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "volumes": [{"name": "d", "emptyDir": {}}],
        }});
        mount_token_volume(&mut pod, "abcde");
        let m = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"], json!([m]));
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][1], m);
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(),
            1
        );
        let vols = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(
            vols[1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(vols[1]["projected"]["defaultMode"], 420);

        // Nothing needs it: no volume.
        let mut pod = json!({"spec": {"containers": [{"name": "b", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}]}});
        mount_token_volume(&mut pod, "abcde");
        assert!(pod["spec"].get("volumes").is_none());
    }

    #[test]
    fn automount_precedence() {
        let sa_off = json!({"automountServiceAccountToken": false});
        assert!(should_automount(&json!({"spec": {}}), None));
        assert!(!should_automount(&json!({"spec": {}}), Some(&sa_off)));
        assert!(should_automount(
            &json!({"spec": {"automountServiceAccountToken": true}}),
            Some(&sa_off)
        ));
        assert!(!should_automount(
            &json!({"spec": {"automountServiceAccountToken": false}}),
            None
        ));
    }

    #[test]
    fn token_request_parsing() {
        let r = parse_token_request(&json!({"spec": {}}), "default").unwrap();
        assert_eq!(
            (r.audiences, r.expiration_seconds, r.bound),
            (vec![ISSUER.to_string()], 3600, None)
        );
        let e = parse_token_request(&json!({"spec": {"expirationSeconds": 10}}), "default").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains("may not specify a duration less than 10 minutes"),
            "{}",
            e.message
        );
        let r = parse_token_request(
            &json!({"kind": "TokenRequest", "spec": {"audiences": ["a"], "expirationSeconds": 600, "boundObjectRef": {"kind": "Pod", "name": "p", "uid": "u"}}}),
            "default",
        )
        .unwrap();
        assert_eq!(r.bound, Some(("Pod".into(), "p".into(), "u".into())));
        assert_eq!(r.audiences, vec!["a".to_string()]);
        assert_eq!(
            parse_token_request(&json!({"spec": {"boundObjectRef": {"kind": "Secret"}}}), "d")
                .unwrap_err()
                .code,
            422
        );
    }
}
