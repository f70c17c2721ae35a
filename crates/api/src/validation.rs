//! Validation of objects on create and update, with Kubernetes' field paths and messages.
//!
//! Mirrors `pkg/apis/core/validation/validation.go`, apimachinery's `pkg/api/validation/objectmeta.go` and
//! `pkg/util/validation/validation.go` for the kinds Peapod serves. Objects arrive as JSON (already defaulted), are
//! decoded into the `k8s-openapi` types and checked; the result is a list of [`FieldError`]s whose text is what
//! `kubectl` prints against Kubernetes. Pure: no IO, no clock.

use crate::defaults::VOLUME_SOURCES;
use crate::errors::{quote, ErrorList, FieldError, FieldErrorKind};
use crate::k8s::api::core::v1 as core;
use crate::k8s::api::{coordination, events};
use crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use crate::quantity::Quantity;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

// ---- Kubernetes' limits and messages (apimachinery `pkg/util/validation/validation.go` unless noted) ----

/// `DNS1123LabelMaxLength`.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// `DNS1123SubdomainMaxLength`.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// `qualifiedNameMaxLength` (name part of label keys and annotation keys).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// `LabelValueMaxLength`.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// `TotalAnnotationSizeLimitB` in apimachinery `pkg/api/validation/objectmeta.go`: 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * (1 << 10);
/// `MaxSecretSize` in `pkg/apis/core/types.go` (also the ConfigMap limit): 1 MiB.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// Port names are IANA service names of at most 15 characters (`IsValidPortName`).
const PORT_NAME_MAX_LENGTH: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_NAME_ERR: &str = "a valid HTTP header must consist of alphanumeric characters or '-'";

/// `apimachineryvalidation.FieldImmutableErrorMsg`.
const FIELD_IMMUTABLE: &str = "field is immutable";
/// `isNegativeErrorMsg` in `pkg/apis/core/validation/validation.go`.
const IS_NEGATIVE: &str = "must be greater than or equal to 0";
/// Text of `ConfigMap`/`Secret` data changes once `immutable: true` is set.
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
/// `fileModeErrorMsg` in `pkg/apis/core/validation/validation.go`.
const FILE_MODE_ERR: &str = "must be a number between 0 and 0777 (octal), both inclusive";
/// `MaxInt32` bound of `activeDeadlineSeconds`.
const MAX_INT32: i64 = i32::MAX as i64;

/// `updatablePodSpecFields` in `pkg/apis/core/validation/validation.go` (see pod-behaviour.md §8.4).
const UPDATABLE_POD_SPEC_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
/// `supportedPortProtocols`, sorted as `sets.List` returns them.
const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const PREEMPTION_POLICIES: &[&str] = &["Never", "PreemptLowerPriority"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
/// `validEnvDownwardAPIFieldPathExpressions`, sorted.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// Finalizers Kubernetes itself defines (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

// ---- Entry points ----

/// Validates a new object of `kind`.
pub fn validate_create(kind: &str, obj: &Value) -> ErrorList {
    let result = match kind {
        "Pod" => decode::<core::Pod>(kind, obj).map(|p| validate_pod_create(&p)),
        "Namespace" => decode::<core::Namespace>(kind, obj).map(|n| validate_namespace(&n)),
        "ConfigMap" => decode::<core::ConfigMap>(kind, obj).map(|c| validate_config_map(&c)),
        "Secret" => decode::<core::Secret>(kind, obj).map(|s| validate_secret(&s)),
        "ServiceAccount" => decode::<core::ServiceAccount>(kind, obj)
            .map(|s| validate_object_meta(&s.metadata, true, NameRule::Subdomain, "metadata")),
        "Node" => decode::<core::Node>(kind, obj)
            .map(|n| validate_object_meta(&n.metadata, false, NameRule::Subdomain, "metadata")),
        "Event" if crate::strict::is_events_api(obj) => {
            decode::<events::v1::Event>(kind, obj).map(|e| validate_events_v1_event(&e))
        }
        "Event" => decode::<core::Event>(kind, obj).map(|e| validate_core_event(&e)),
        "Lease" => decode::<coordination::v1::Lease>(kind, obj).map(|l| validate_lease(&l)),
        _ => Ok(match obj.get("metadata") {
            Some(m) => match serde_json::from_value::<ObjectMeta>(m.clone()) {
                Ok(meta) => validate_object_meta(&meta, meta.namespace.is_some(), NameRule::Subdomain, "metadata"),
                Err(e) => vec![decode_error(kind, &e)],
            },
            None => Vec::new(),
        }),
    };
    result.unwrap_or_else(|e| vec![e])
}

/// Validates an update of an object of `kind` from `old` to `new` (spec writes).
pub fn validate_update(kind: &str, new: &Value, old: &Value) -> ErrorList {
    let result = match kind {
        "Pod" => both::<core::Pod>(kind, new, old).map(|(n, o)| validate_pod_update(&n, &o)),
        "Namespace" => both::<core::Namespace>(kind, new, old).map(|(n, o)| {
            let mut errs = validate_object_meta_update(&n.metadata, &o.metadata, "metadata");
            errs.extend(validate_namespace(&n));
            errs
        }),
        "ConfigMap" => both::<core::ConfigMap>(kind, new, old).map(|(n, o)| validate_config_map_update(&n, &o)),
        "Secret" => both::<core::Secret>(kind, new, old).map(|(n, o)| validate_secret_update(&n, &o)),
        "Event" => {
            // Events may only change what the recorder changes; metadata must stay put.
            meta_pair(kind, new, old).map(|(n, o)| validate_object_meta_update(&n, &o, "metadata"))
        }
        "Lease" => both::<coordination::v1::Lease>(kind, new, old).map(|(n, o)| {
            let mut errs = validate_object_meta_update(&n.metadata, &o.metadata, "metadata");
            errs.extend(validate_lease(&n));
            errs
        }),
        _ => meta_pair(kind, new, old).map(|(n, o)| validate_object_meta_update(&n, &o, "metadata")),
    };
    result.unwrap_or_else(|e| vec![e])
}

/// Validates a write to the `status` subresource: metadata must not change identity.
pub fn validate_status_update(kind: &str, new: &Value, old: &Value) -> ErrorList {
    meta_pair(kind, new, old)
        .map(|(n, o)| validate_object_meta_update(&n, &o, "metadata"))
        .unwrap_or_else(|e| vec![e])
}

// ---- Decoding ----

fn decode<T: DeserializeOwned>(kind: &str, obj: &Value) -> Result<T, FieldError> {
    T::deserialize(obj).map_err(|e| decode_error(kind, &e))
}

fn both<T: DeserializeOwned>(kind: &str, new: &Value, old: &Value) -> Result<(T, T), FieldError> {
    Ok((decode(kind, new)?, decode(kind, old)?))
}

fn meta_pair(kind: &str, new: &Value, old: &Value) -> Result<(ObjectMeta, ObjectMeta), FieldError> {
    let meta = |v: &Value| decode::<ObjectMeta>(kind, v.get("metadata").unwrap_or(&Value::Null));
    Ok((meta(new)?, meta(old)?))
}

/// One error saying the object could not be decoded as `kind` at all.
fn decode_error(kind: &str, e: &serde_json::Error) -> FieldError {
    FieldError {
        kind: FieldErrorKind::TypeInvalid,
        field: "<root>".into(),
        value: None,
        detail: format!("cannot decode {kind}: {e}"),
    }
}

// ---- String checks (apimachinery `pkg/util/validation/validation.go`) ----

/// `RegexError`: the message, examples and the regex; the `", "` + `" or "` join gives Kubernetes' double space.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

fn matches_dns_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns_label(s) {
        if matches_dns_subdomain(s) {
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns_subdomain(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `hasChDirPrefix`.
fn chdir_prefix_errors(value: &str) -> Vec<String> {
    match value {
        "." => vec!["must not be '.'".into()],
        ".." => vec!["must not be '..'".into()],
        v if v.starts_with("..") => vec!["must not start with '..'".into()],
        _ => Vec::new(),
    }
}

pub fn is_env_var_name(value: &str) -> Vec<String> {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    let mut errs = Vec::new();
    if !ok {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            CONFIG_KEY_ERR,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// `IsValidPortName`: an IANA_SVC_NAME.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errs.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    if port.is_empty() || !port.bytes().all(|c| is_alnum_lower(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn is_http_header_name(value: &str) -> Vec<String> {
    if !value.is_empty() && value.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        Vec::new()
    } else {
        vec![regex_error(
            HTTP_HEADER_NAME_ERR,
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        )]
    }
}

// ---- Object metadata (apimachinery `pkg/api/validation/objectmeta.go`) ----

/// Which name rule a kind uses (`ValidateNameFunc`).
#[derive(Clone, Copy)]
enum NameRule {
    Subdomain,
    Label,
}

impl NameRule {
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        // `maskTrailingDash`: a generateName may end in '-'.
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 2]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(name),
            NameRule::Label => is_dns1123_label(name),
        }
    }
}

fn invalid_each(errs: &mut ErrorList, path: &str, value: &str, msgs: Vec<String>) {
    errs.extend(msgs.into_iter().map(|m| FieldError::invalid(path, quote(value), m)));
}

fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str, errs: &mut ErrorList) {
    for (k, v) in labels.into_iter().flatten() {
        invalid_each(errs, path, k, is_qualified_name(k));
        invalid_each(errs, path, v, is_valid_label_value(v));
    }
}

fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, path: &str, errs: &mut ErrorList) {
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        invalid_each(errs, path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES));
    }
}

fn validate_object_meta(meta: &ObjectMeta, namespaced: bool, rule: NameRule, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        invalid_each(
            &mut errs,
            &format!("{path}.generateName"),
            generate_name,
            rule.check(generate_name, true),
        );
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        // The apiserver fills the name from generateName before storing.
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.name"),
                "name or generateName is required",
            ));
        }
    } else {
        invalid_each(&mut errs, &format!("{path}.name"), name, rule.check(name, false));
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(format!("{path}.namespace"), ""));
        } else {
            invalid_each(
                &mut errs,
                &format!("{path}.namespace"),
                namespace,
                is_dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta.generation.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            format!("{path}.generation"),
            g.to_string(),
            IS_NEGATIVE,
        ));
    }
    validate_labels(meta.labels.as_ref(), &format!("{path}.labels"), &mut errs);
    validate_annotations(meta.annotations.as_ref(), &format!("{path}.annotations"), &mut errs);
    validate_owner_references(meta, &format!("{path}.ownerReferences"), &mut errs);
    for f in meta.finalizers.iter().flatten() {
        invalid_each(&mut errs, &format!("{path}.finalizers"), f, is_qualified_name(f));
    }
    errs
}

fn validate_owner_references(meta: &ObjectMeta, path: &str, errs: &mut ErrorList) {
    for r in meta.owner_references.iter().flatten() {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        let required = [
            (
                "apiVersion",
                &r.api_version,
                version.is_empty(),
                "version must not be empty",
            ),
            ("kind", &r.kind, r.kind.is_empty(), "must not be empty"),
            ("name", &r.name, r.name.is_empty(), "must not be empty"),
            ("uid", &r.uid, r.uid.is_empty(), "must not be empty"),
        ];
        for (field, value, missing, detail) in required {
            if missing {
                errs.push(FieldError::invalid(format!("{path}.{field}"), quote(value), detail));
            }
        }
    }
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable; labels and annotations stay valid.
fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    if new.generation.unwrap_or(0) < old.generation.unwrap_or(0) {
        errs.push(FieldError::invalid(
            format!("{path}.generation"),
            new.generation.unwrap_or(0).to_string(),
            "must not be decremented",
        ));
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let t = |v: &Option<crate::k8s::apimachinery::pkg::apis::meta::v1::Time>| v.as_ref().map(|t| t.0.to_string());
    let immutable = [
        ("name", s(&new.name), s(&old.name)),
        ("namespace", s(&new.namespace), s(&old.namespace)),
        ("uid", s(&new.uid), s(&old.uid)),
    ];
    for (field, n, o) in immutable {
        if n != o {
            errs.push(FieldError::invalid(
                format!("{path}.{field}"),
                quote(&n),
                FIELD_IMMUTABLE,
            ));
        }
    }
    for (field, n, o) in [
        (
            "creationTimestamp",
            t(&new.creation_timestamp),
            t(&old.creation_timestamp),
        ),
        (
            "deletionTimestamp",
            t(&new.deletion_timestamp),
            t(&old.deletion_timestamp),
        ),
    ] {
        if n != o {
            let shown = n.map(|v| quote(&v)).unwrap_or_else(|| "null".into());
            errs.push(FieldError::invalid(format!("{path}.{field}"), shown, FIELD_IMMUTABLE));
        }
    }
    if new.deletion_grace_period_seconds != old.deletion_grace_period_seconds {
        let shown = new
            .deletion_grace_period_seconds
            .map(|v| v.to_string())
            .unwrap_or_else(|| "null".into());
        errs.push(FieldError::invalid(
            format!("{path}.deletionGracePeriodSeconds"),
            shown,
            FIELD_IMMUTABLE,
        ));
    }
    validate_labels(new.labels.as_ref(), &format!("{path}.labels"), &mut errs);
    validate_annotations(new.annotations.as_ref(), &format!("{path}.annotations"), &mut errs);
    validate_owner_references(new, &format!("{path}.ownerReferences"), &mut errs);
    errs
}

// ---- Pods ----

fn validate_pod_create(pod: &core::Pod) -> ErrorList {
    let mut errs = validate_pod_metadata_and_spec(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    if spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) && !opt(&spec.node_name).is_empty() {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

fn validate_pod_metadata_and_spec(pod: &core::Pod) -> ErrorList {
    let mut errs = validate_object_meta(&pod.metadata, true, NameRule::Subdomain, "metadata");
    let spec = pod.spec.clone().unwrap_or_default();
    validate_pod_spec(&spec, "spec", &mut errs);
    errs
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn validate_pod_spec(spec: &core::PodSpec, path: &str, errs: &mut ErrorList) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &format!("{path}.volumes"),
        errs,
    );
    let grace = spec.termination_grace_period_seconds;
    validate_containers(&spec.containers, &volumes, grace, &format!("{path}.containers"), errs);
    validate_init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        grace,
        &format!("{path}.initContainers"),
        errs,
    );
    supported(
        errs,
        &format!("{path}.restartPolicy"),
        opt(&spec.restart_policy),
        RESTART_POLICIES,
    );
    supported(errs, &format!("{path}.dnsPolicy"), opt(&spec.dns_policy), DNS_POLICIES);
    validate_labels(spec.node_selector.as_ref(), &format!("{path}.nodeSelector"), errs);
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if s.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.imagePullSecrets[{i}].name"), ""));
        }
    }
    let sa = opt(&spec.service_account_name);
    if !sa.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.serviceAccountName"),
            sa,
            is_dns1123_subdomain(sa),
        );
    }
    let node = opt(&spec.node_name);
    if !node.is_empty() {
        invalid_each(errs, &format!("{path}.nodeName"), node, is_dns1123_subdomain(node));
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=MAX_INT32).contains(&ads) {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                ads.to_string(),
                inclusive_range_error(1, MAX_INT32),
            ));
        }
    }
    if let Some(g) = grace.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            g.to_string(),
            IS_NEGATIVE,
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        let v = opt(value);
        if !v.is_empty() {
            invalid_each(errs, &format!("{path}.{field}"), v, is_dns1123_label(v));
        }
    }
    validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &format!("{path}.tolerations"),
        errs,
    );
    if let Some(p) = &spec.preemption_policy {
        if !PREEMPTION_POLICIES.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.preemptionPolicy"),
                quote(p),
                PREEMPTION_POLICIES,
            ));
        }
    }
    let pcn = opt(&spec.priority_class_name);
    if !pcn.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.priorityClassName"),
            pcn,
            is_dns1123_subdomain(pcn),
        );
    }
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        invalid_each(
            errs,
            &format!("{path}.schedulingGates[{i}].name"),
            &g.name,
            is_qualified_name(&g.name),
        );
    }
}

/// Required when empty, else one of `allowed` (`Unsupported value: "X": supported values: …`).
fn supported(errs: &mut ErrorList, path: &str, value: &str, allowed: &[&str]) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !allowed.contains(&value) {
        errs.push(FieldError::not_supported(path, quote(value), allowed));
    }
}

/// Validates volumes and returns the names of those that are valid (mounts may only reference these).
fn validate_volumes(volumes: &[core::Volume], path: &str, errs: &mut ErrorList) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let mut el = Vec::new();
        validate_volume_source(v, &idx, &mut el);
        let name_path = format!("{idx}.name");
        if v.name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            invalid_each(&mut el, &name_path, &v.name, is_dns1123_label(&v.name));
        }
        if names.contains(&v.name) {
            el.push(FieldError::duplicate(&name_path, quote(&v.name)));
        }
        if el.is_empty() {
            names.insert(v.name.clone());
        } else {
            errs.extend(el);
        }
    }
    names
}

fn validate_volume_source(v: &core::Volume, path: &str, errs: &mut ErrorList) {
    let json = serde_json::to_value(v).unwrap_or(Value::Null);
    let mut count = 0;
    for key in VOLUME_SOURCES
        .iter()
        .filter(|k| json.get(**k).is_some_and(|s| !s.is_null()))
    {
        if count > 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.{key}"),
                "may not specify more than 1 volume type",
            ));
        }
        count += 1;
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
        return;
    }
    if let Some(h) = &v.host_path {
        let p = format!("{path}.hostPath");
        if h.path.is_empty() {
            errs.push(FieldError::required(format!("{p}.path"), ""));
        } else {
            validate_no_backsteps(&h.path, &format!("{p}.path"), errs);
        }
        if let Some(t) = &h.type_ {
            if !HOST_PATH_TYPES.contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("{p}.type"),
                    quote(t),
                    HOST_PATH_TYPES,
                ));
            }
        }
    }
    if let Some(e) = &v.empty_dir {
        if let Some(limit) = &e.size_limit {
            match Quantity::parse(&limit.0) {
                Ok(q) if q.sign() < 0 => errs.push(FieldError::forbidden(
                    format!("{path}.emptyDir.sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                )),
                Ok(_) => {}
                Err(err) => errs.push(FieldError::invalid(
                    format!("{path}.emptyDir.sizeLimit"),
                    quote(&limit.0),
                    err.to_string(),
                )),
            }
        }
    }
    if let Some(s) = &v.secret {
        let p = format!("{path}.secret");
        if opt(&s.secret_name).is_empty() {
            errs.push(FieldError::required(format!("{p}.secretName"), ""));
        }
        validate_mode(s.default_mode, &format!("{p}.defaultMode"), errs);
        validate_key_to_paths(s.items.as_deref().unwrap_or_default(), &format!("{p}.items"), errs);
    }
    if let Some(c) = &v.config_map {
        let p = format!("{path}.configMap");
        if c.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            invalid_each(errs, &format!("{p}.name"), &c.name, is_dns1123_subdomain(&c.name));
        }
        validate_mode(c.default_mode, &format!("{p}.defaultMode"), errs);
        validate_key_to_paths(c.items.as_deref().unwrap_or_default(), &format!("{p}.items"), errs);
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        if pvc.claim_name.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.persistentVolumeClaim.claimName"),
                "",
            ));
        }
    }
}

fn validate_mode(mode: Option<i32>, path: &str, errs: &mut ErrorList) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errs.push(FieldError::invalid(path, m.to_string(), FILE_MODE_ERR));
    }
}

fn validate_key_to_paths(items: &[core::KeyToPath], path: &str, errs: &mut ErrorList) {
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if item.key.is_empty() {
            errs.push(FieldError::required(format!("{p}.key"), ""));
        }
        if item.path.is_empty() {
            errs.push(FieldError::required(format!("{p}.path"), ""));
        } else {
            validate_local_descending_path(&item.path, &format!("{p}.path"), errs);
        }
        validate_mode(item.mode, &format!("{p}.mode"), errs);
    }
}

/// `validatePathNoBacksteps`: no `..` element.
fn validate_no_backsteps(target: &str, path: &str, errs: &mut ErrorList) {
    if target.split('/').any(|p| p == "..") {
        errs.push(FieldError::invalid(path, quote(target), "must not contain '..'"));
    }
}

/// `validateLocalDescendingPath`: relative, without `..`.
fn validate_local_descending_path(target: &str, path: &str, errs: &mut ErrorList) {
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, quote(target), "must be a relative path"));
    }
    validate_no_backsteps(target, path, errs);
}

fn validate_containers(
    containers: &[core::Container],
    volumes: &HashSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut ErrorList,
) {
    if containers.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let mut names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        validate_container_common(c, volumes, &idx, errs);
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{idx}.name"), quote(&c.name)));
        }
        validate_lifecycle(c.lifecycle.as_ref(), grace, &format!("{idx}.lifecycle"), errs);
        validate_probes(c, &idx, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                format!("{idx}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_port_conflicts(containers, 0, path, errs);
}

fn validate_init_containers(
    containers: &[core::Container],
    regular: &[core::Container],
    volumes: &HashSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut ErrorList,
) {
    let mut names: HashSet<String> = regular.iter().map(|c| c.name.clone()).collect();
    for (i, c) in containers.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        validate_container_common(c, volumes, &idx, errs);
        let mut restart_always = false;
        if let Some(p) = &c.restart_policy {
            if p != "Always" {
                errs.push(FieldError::not_supported(
                    format!("{idx}.restartPolicy"),
                    quote(p),
                    &["Always"],
                ));
            }
            restart_always = p == "Always";
        }
        if names.contains(&c.name) {
            errs.push(FieldError::duplicate(format!("{idx}.name"), quote(&c.name)));
        } else if !c.name.is_empty() {
            names.insert(c.name.clone());
        }
        // Init containers run one by one, so each is checked alone (and Kubernetes reports it at index 0).
        check_host_port_conflicts(std::slice::from_ref(c), 0, path, errs);
        if restart_always {
            validate_lifecycle(c.lifecycle.as_ref(), grace, &format!("{idx}.lifecycle"), errs);
            validate_probes(c, &idx, errs);
        } else {
            const WHY: &str = "may not be set for init containers without restartPolicy=Always";
            let set = [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            for (field, present) in set {
                if present {
                    errs.push(FieldError::forbidden(format!("{idx}.{field}"), WHY));
                }
            }
        }
    }
}

/// `validateContainerCommon`.
fn validate_container_common(c: &core::Container, volumes: &HashSet<String>, path: &str, errs: &mut ErrorList) {
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        invalid_each(errs, &name_path, &c.name, is_dns1123_label(&c.name));
    }
    if opt(&c.image).is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    supported(
        errs,
        &format!("{path}.terminationMessagePolicy"),
        opt(&c.termination_message_policy),
        TERMINATION_MESSAGE_POLICIES,
    );
    validate_container_ports(c.ports.as_deref().unwrap_or_default(), &format!("{path}.ports"), errs);
    validate_env(c.env.as_deref().unwrap_or_default(), &format!("{path}.env"), errs);
    validate_env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &format!("{path}.envFrom"),
        errs,
    );
    validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        &format!("{path}.volumeMounts"),
        errs,
    );
    supported(
        errs,
        &format!("{path}.imagePullPolicy"),
        opt(&c.image_pull_policy),
        PULL_POLICIES,
    );
    if let Some(r) = &c.resources {
        validate_resource_requirements(r, &format!("{path}.resources"), errs);
    }
}

fn validate_container_ports(ports: &[core::ContainerPort], path: &str, errs: &mut ErrorList) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = opt(&p.name);
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                invalid_each(errs, &format!("{idx}.name"), name, msgs);
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{idx}.name"), quote(name)));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(format!("{idx}.containerPort"), ""));
        } else {
            for m in is_valid_port_num(i64::from(p.container_port)) {
                errs.push(FieldError::invalid(
                    format!("{idx}.containerPort"),
                    p.container_port.to_string(),
                    m,
                ));
            }
        }
        if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
            for m in is_valid_port_num(i64::from(hp)) {
                errs.push(FieldError::invalid(format!("{idx}.hostPort"), hp.to_string(), m));
            }
        }
        supported(errs, &format!("{idx}.protocol"), opt(&p.protocol), PORT_PROTOCOLS);
    }
}

/// `AccumulateUniqueHostPorts`: `protocol/hostIP/port` must be unique.
fn check_host_port_conflicts(containers: &[core::Container], first_index: usize, path: &str, errs: &mut ErrorList) {
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, p) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = p.host_port.filter(|hp| *hp != 0) else {
                continue;
            };
            let key = format!("{}/{}/{}", opt(&p.protocol), opt(&p.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{}].ports[{pi}].hostPort", first_index + ci),
                    quote(&key),
                ));
            }
        }
    }
}

fn validate_env(vars: &[core::EnvVar], path: &str, errs: &mut ErrorList) {
    for (i, ev) in vars.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if ev.name.is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        }
        invalid_each(errs, &format!("{idx}.name"), &ev.name, is_env_var_name(&ev.name));
        let Some(from) = &ev.value_from else { continue };
        let vf = format!("{idx}.valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            let p = format!("{vf}.fieldRef");
            if opt(&f.api_version).is_empty() {
                errs.push(FieldError::required(format!("{p}.apiVersion"), ""));
            } else if f.field_path.is_empty() {
                errs.push(FieldError::required(format!("{p}.fieldPath"), ""));
            } else if let Some((base, subscript)) = split_subscript(&f.field_path) {
                match base {
                    "metadata.annotations" => invalid_each(
                        errs,
                        &p,
                        &subscript.to_lowercase(),
                        is_qualified_name(&subscript.to_lowercase()),
                    ),
                    "metadata.labels" => invalid_each(errs, &p, subscript, is_qualified_name(subscript)),
                    _ => errs.push(FieldError::invalid(&p, quote(base), "does not support subscript")),
                }
            } else if !ENV_FIELD_PATHS.contains(&f.field_path.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("{p}.fieldPath"),
                    quote(&f.field_path),
                    ENV_FIELD_PATHS,
                ));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            if r.resource.is_empty() {
                errs.push(FieldError::required(format!("{vf}.resourceFieldRef.resource"), ""));
            }
        }
        if let Some(s) = &from.config_map_key_ref {
            sources += 1;
            validate_key_selector(&s.name, &s.key, &format!("{vf}.configMapKeyRef"), errs);
        }
        if let Some(s) = &from.secret_key_ref {
            sources += 1;
            validate_key_selector(&s.name, &s.key, &format!("{vf}.secretKeyRef"), errs);
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &vf,
                quote(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !opt(&ev.value).is_empty() {
            errs.push(FieldError::invalid(
                &vf,
                quote(""),
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &vf,
                quote(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find("['")?;
    let inner = path.strip_suffix("']")?;
    Some((&path[..open], inner.get(open + 2..)?))
}

fn validate_key_selector(name: &str, key: &str, path: &str, errs: &mut ErrorList) {
    invalid_each(errs, &format!("{path}.name"), name, is_dns1123_subdomain(name));
    if key.is_empty() {
        errs.push(FieldError::required(format!("{path}.key"), ""));
    } else {
        invalid_each(errs, &format!("{path}.key"), key, is_config_map_key(key));
    }
}

fn validate_env_from(sources: &[core::EnvFromSource], path: &str, errs: &mut ErrorList) {
    for (i, s) in sources.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let prefix = opt(&s.prefix);
        if !prefix.is_empty() {
            invalid_each(errs, &format!("{idx}.prefix"), prefix, is_env_var_name(prefix));
        }
        let mut n = 0;
        for (field, name) in [
            ("configMapRef", s.config_map_ref.as_ref().map(|r| r.name.as_str())),
            ("secretRef", s.secret_ref.as_ref().map(|r| r.name.as_str())),
        ] {
            let Some(name) = name else { continue };
            n += 1;
            let p = format!("{idx}.{field}.name");
            if name.is_empty() {
                errs.push(FieldError::required(p, ""));
            } else {
                invalid_each(errs, &p, name, is_dns1123_subdomain(name));
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                path,
                quote(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                path,
                quote(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_volume_mounts(mounts: &[core::VolumeMount], volumes: &HashSet<String>, path: &str, errs: &mut ErrorList) {
    let mut mount_points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(format!("{idx}.name"), quote(&m.name)));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{idx}.mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                format!("{idx}.mountPath"),
                quote(&m.mount_path),
                "must be unique",
            ));
        }
        let sub = opt(&m.sub_path);
        if !sub.is_empty() {
            // Kubernetes reports subPath errors at `volumeMounts.subPath`, without the index.
            validate_local_descending_path(sub, &format!("{path}.subPath"), errs);
        }
        let expr = opt(&m.sub_path_expr);
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{idx}.subPathExpr"),
                    quote(expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            validate_local_descending_path(expr, &format!("{path}.subPathExpr"), errs);
        }
    }
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `ValidateResourceRequirements` for a container: names, non-negative quantities, requests ≤ limits.
fn validate_resource_requirements(r: &core::ResourceRequirements, path: &str, errs: &mut ErrorList) {
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (name, q) in limits {
        let p = format!("{lim_path}[{name}]");
        validate_container_resource_name(name, &p, errs);
        if let Some(q) = validate_quantity_value(name, &q.0, &p, errs) {
            parsed_limits.insert(name.as_str(), q);
        }
    }
    for (name, q) in requests {
        let p = format!("{req_path}[{name}]");
        validate_container_resource_name(name, &p, errs);
        let Some(request) = validate_quantity_value(name, &q.0, &p, errs) else {
            continue;
        };
        let overcommit = is_native_resource(name) && !is_hugepages(name);
        match parsed_limits.get(name.as_str()) {
            Some(limit) if request != *limit && !overcommit => errs.push(FieldError::invalid(
                &req_path,
                quote(&request.to_string()),
                format!("must be equal to {name} limit of {limit}"),
            )),
            Some(limit) if request > *limit => errs.push(FieldError::invalid(
                &req_path,
                quote(&request.to_string()),
                format!("must be less than or equal to {name} limit of {limit}"),
            )),
            Some(_) => {}
            None if !overcommit && !limits.contains_key(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}

fn validate_container_resource_name(name: &str, path: &str, errs: &mut ErrorList) {
    invalid_each(errs, path, name, is_qualified_name(name));
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                path,
                quote(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && name.starts_with("requests.") {
        errs.push(FieldError::invalid(
            path,
            quote(name),
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Parses a resource quantity, reporting unparsable, negative and (for extended resources) fractional values.
fn validate_quantity_value(name: &str, text: &str, path: &str, errs: &mut ErrorList) -> Option<Quantity> {
    let q = match Quantity::parse(text) {
        Ok(q) => q,
        Err(e) => {
            errs.push(FieldError::invalid(path, quote(text), e.to_string()));
            return None;
        }
    };
    if q.sign() < 0 {
        errs.push(FieldError::invalid(path, quote(&q.to_string()), IS_NEGATIVE));
    }
    if !is_native_resource(name) && q.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(path, quote(&q.to_string()), "must be an integer"));
    }
    Some(q)
}

/// The handler fields a probe or lifecycle hook may carry.
struct Handler<'a> {
    exec: Option<&'a core::ExecAction>,
    http_get: Option<&'a core::HTTPGetAction>,
    tcp_socket: Option<&'a core::TCPSocketAction>,
    grpc: Option<&'a core::GRPCAction>,
    sleep: Option<&'a core::SleepAction>,
}

/// `validateHandler`: exactly one handler type.
fn validate_handler(h: &Handler<'_>, grace: Option<i64>, path: &str, errs: &mut ErrorList) {
    let mut n = 0;
    let mut one = |field: &str, present: bool, errs: &mut ErrorList| -> bool {
        if !present {
            return false;
        }
        if n > 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.{field}"),
                "may not specify more than 1 handler type",
            ));
            return false;
        }
        n += 1;
        true
    };
    if one("exec", h.exec.is_some(), errs) {
        if let Some(e) = h.exec {
            if e.command.as_ref().is_none_or(|c| c.is_empty()) {
                errs.push(FieldError::required(format!("{path}.exec.command"), ""));
            }
        }
    }
    if one("httpGet", h.http_get.is_some(), errs) {
        if let Some(g) = h.http_get {
            let p = format!("{path}.httpGet");
            if opt(&g.path).is_empty() {
                errs.push(FieldError::required(format!("{p}.path"), ""));
            }
            validate_port_num_or_name(&g.port, &format!("{p}.port"), errs);
            let scheme = opt(&g.scheme);
            if !HTTP_SCHEMES.contains(&scheme) {
                errs.push(FieldError::not_supported(
                    format!("{p}.scheme"),
                    quote(scheme),
                    HTTP_SCHEMES,
                ));
            }
            for header in g.http_headers.iter().flatten() {
                invalid_each(
                    errs,
                    &format!("{p}.httpHeaders"),
                    &header.name,
                    is_http_header_name(&header.name),
                );
            }
        }
    }
    if one("tcpSocket", h.tcp_socket.is_some(), errs) {
        if let Some(t) = h.tcp_socket {
            validate_port_num_or_name(&t.port, &format!("{path}.tcpSocket.port"), errs);
        }
    }
    if one("grpc", h.grpc.is_some(), errs) {
        if let Some(g) = h.grpc {
            for m in is_valid_port_num(i64::from(g.port)) {
                errs.push(FieldError::invalid(format!("{path}.grpc.port"), g.port.to_string(), m));
            }
        }
    }
    if one("sleep", h.sleep.is_some(), errs) {
        if let Some(s) = h.sleep {
            let max = grace.unwrap_or(i64::from(i32::MAX));
            if s.seconds < 0 || s.seconds > max {
                errs.push(FieldError::invalid(
                    format!("{path}.sleep.seconds"),
                    s.seconds.to_string(),
                    format!("must be non-negative and less than terminationGracePeriodSeconds ({max})"),
                ));
            }
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

fn validate_port_num_or_name(port: &IntOrString, path: &str, errs: &mut ErrorList) {
    match port {
        IntOrString::Int(n) => {
            for m in is_valid_port_num(i64::from(*n)) {
                errs.push(FieldError::invalid(path, n.to_string(), m));
            }
        }
        IntOrString::String(s) => invalid_each(errs, path, s, is_valid_port_name(s)),
    }
}

fn validate_lifecycle(lifecycle: Option<&core::Lifecycle>, grace: Option<i64>, path: &str, errs: &mut ErrorList) {
    let Some(l) = lifecycle else { return };
    for (field, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        if let Some(h) = hook {
            let handler = Handler {
                exec: h.exec.as_ref(),
                http_get: h.http_get.as_ref(),
                tcp_socket: h.tcp_socket.as_ref(),
                grpc: None,
                sleep: h.sleep.as_ref(),
            };
            validate_handler(&handler, grace, &format!("{path}.{field}"), errs);
        }
    }
}

fn validate_probes(c: &core::Container, idx: &str, errs: &mut ErrorList) {
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(p) = probe else { continue };
        let path = format!("{idx}.{field}");
        validate_probe(p, &path, errs);
        let success = p.success_threshold.unwrap_or(0);
        if field != "readinessProbe" && success != 1 {
            errs.push(FieldError::invalid(
                format!("{path}.successThreshold"),
                success.to_string(),
                "must be 1",
            ));
        }
        if field == "readinessProbe" {
            if let Some(g) = p.termination_grace_period_seconds {
                errs.push(FieldError::invalid(
                    format!("{path}.terminationGracePeriodSeconds"),
                    g.to_string(),
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
}

fn validate_probe(p: &core::Probe, path: &str, errs: &mut ErrorList) {
    let handler = Handler {
        exec: p.exec.as_ref(),
        http_get: p.http_get.as_ref(),
        tcp_socket: p.tcp_socket.as_ref(),
        grpc: p.grpc.as_ref(),
        sleep: None,
    };
    validate_handler(&handler, None, path, errs);
    let fields = [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ];
    for (field, v) in fields {
        if let Some(v) = v.filter(|v| *v < 0) {
            errs.push(FieldError::invalid(
                format!("{path}.{field}"),
                v.to_string(),
                IS_NEGATIVE,
            ));
        }
    }
    if let Some(g) = p.termination_grace_period_seconds.filter(|g| *g <= 0) {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            g.to_string(),
            "must be greater than 0",
        ));
    }
}

/// `ValidateTolerations`.
fn validate_tolerations(tolerations: &[core::Toleration], path: &str, errs: &mut ErrorList) {
    for (i, t) in tolerations.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let key = opt(&t.key);
        let op = opt(&t.operator);
        let effect = opt(&t.effect);
        if !key.is_empty() {
            invalid_each(errs, &format!("{idx}.key"), key, is_qualified_name(key));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{idx}.operator"),
                quote(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{idx}.effect"),
                quote(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(opt(&t.value));
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{idx}.operator"),
                        quote(opt(&t.value)),
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !opt(&t.value).is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{idx}.operator"),
                        quote(opt(&t.value)),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{idx}.operator"),
                quote(other),
                TOLERATION_OPERATORS,
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{idx}.effect"),
                quote(effect),
                TAINT_EFFECTS,
            ));
        }
    }
}

/// `ValidatePodUpdate`: only the fields in [`UPDATABLE_POD_SPEC_FIELDS`] may change.
fn validate_pod_update(new: &core::Pod, old: &core::Pod) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_pod_metadata_and_spec(new));
    let new_spec = new.spec.clone().unwrap_or_default();
    let old_spec = old.spec.clone().unwrap_or_default();

    for (field, n, o) in [
        ("containers", &new_spec.containers, &old_spec.containers),
        (
            "initContainers",
            new_spec.init_containers.as_ref().unwrap_or(&Vec::new()),
            old_spec.init_containers.as_ref().unwrap_or(&Vec::new()),
        ),
    ] {
        let path = format!("spec.{field}");
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                path,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let image = opt(&c.image);
            if image.is_empty() {
                errs.push(FieldError::required(format!("{path}[{i}].image"), ""));
            }
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    format!("{path}[{i}].image"),
                    quote(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    match (new_spec.active_deadline_seconds, old_spec.active_deadline_seconds) {
        (Some(n), _) if !(0..=MAX_INT32).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n.to_string(),
                inclusive_range_error(0, MAX_INT32),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n.to_string(),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    let old_tolerations = old_spec.tolerations.clone().unwrap_or_default();
    let new_tolerations = new_spec.tolerations.clone().unwrap_or_default();
    for o in &old_tolerations {
        let kept = new_tolerations.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            same_toleration(&o, n)
        });
        if !kept {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }

    let old_gates: HashSet<&str> = old_spec
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in new_spec.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(FieldError::forbidden(
                format!("spec.schedulingGates[{i}].name"),
                format!("only deletion is allowed, but found new scheduling gate '{}'", g.name),
            ));
        }
    }

    if new_spec == old_spec {
        return errs;
    }
    // Copy the mutable fields from the old spec, then anything still different is forbidden.
    let mut munged = new_spec.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        c.image = o.image.clone();
    }
    if let (Some(cs), Some(os)) = (munged.init_containers.as_mut(), old_spec.init_containers.as_ref()) {
        for (c, o) in cs.iter_mut().zip(os) {
            c.image = o.image.clone();
        }
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.scheduling_gates = old_spec.scheduling_gates.clone();
    munged.tolerations = old_spec.tolerations.clone();
    if old_spec.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    if old_spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
        // Gated pods may gain node selectors and affinity.
        munged.node_selector = old_spec.node_selector.clone();
        munged.affinity = old_spec.affinity.clone();
    }
    if munged != old_spec {
        let diff = spec_diff(&old_spec, &munged);
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {}\n{diff}",
                UPDATABLE_POD_SPEC_FIELDS.join(",")
            ),
        ));
    }
    errs
}

/// Tolerations compare as Go structs do: an absent string is the same as an empty one.
fn same_toleration(a: &core::Toleration, b: &core::Toleration) -> bool {
    opt(&a.key) == opt(&b.key)
        && opt(&a.operator) == opt(&b.operator)
        && opt(&a.value) == opt(&b.value)
        && opt(&a.effect) == opt(&b.effect)
        && a.toleration_seconds == b.toleration_seconds
}

/// A simplified rendering of go-cmp's diff: one `-`/`+` pair per changed leaf, inside `core.PodSpec{ … }`.
fn spec_diff(old: &core::PodSpec, new: &core::PodSpec) -> String {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    let mut lines = vec!["  core.PodSpec{".to_string()];
    diff_values("", &old, &new, &mut lines);
    lines.push("  }".to_string());
    lines.join("\n") + "\n"
}

fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                diff_values(
                    &join(k),
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ => {
            out.push(format!("- \t{path}: {old}"));
            out.push(format!("+ \t{path}: {new}"));
        }
    }
}

// ---- Namespaces, ConfigMaps, Secrets, Events, Leases ----

fn validate_namespace(ns: &core::Namespace) -> ErrorList {
    let mut errs = validate_object_meta(&ns.metadata, false, NameRule::Label, "metadata");
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref());
    for f in finalizers.into_iter().flatten() {
        invalid_each(&mut errs, "spec.finalizers", f, is_qualified_name(f));
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                quote(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

fn validate_config_map(cm: &core::ConfigMap) -> ErrorList {
    let mut errs = validate_object_meta(&cm.metadata, true, NameRule::Subdomain, "metadata");
    let mut total = 0;
    let binary = cm.binary_data.clone().unwrap_or_default();
    for (k, v) in cm.data.iter().flatten() {
        invalid_each(&mut errs, &format!("data[{k}]"), k, is_config_map_key(k));
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                quote(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.len();
    }
    for (k, v) in &binary {
        invalid_each(&mut errs, &format!("binaryData[{k}]"), k, is_config_map_key(k));
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

fn validate_config_map_update(new: &core::ConfigMap, old: &core::ConfigMap) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(FieldError::forbidden("data", IMMUTABLE_WHEN_SET));
        }
        if new.binary_data.clone().unwrap_or_default() != old.binary_data.clone().unwrap_or_default() {
            errs.push(FieldError::forbidden("binaryData", IMMUTABLE_WHEN_SET));
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

fn validate_secret(s: &core::Secret) -> ErrorList {
    let mut errs = validate_object_meta(&s.metadata, true, NameRule::Subdomain, "metadata");
    let data = s.data.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &data {
        invalid_each(&mut errs, &format!("data[{k}]"), k, is_config_map_key(k));
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let required = |errs: &mut ErrorList, key: &str| errs.push(FieldError::required(format!("data[{key}]"), ""));
    match opt(&s.type_) {
        "kubernetes.io/service-account-token" => {
            let name = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(|n| n.is_empty()) {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !data.contains_key(".dockercfg") => required(&mut errs, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" if !data.contains_key(".dockerconfigjson") => {
            required(&mut errs, ".dockerconfigjson")
        }
        "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
            required(&mut errs, "username");
            required(&mut errs, "password");
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            required(&mut errs, "ssh-privatekey")
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    required(&mut errs, key);
                }
            }
        }
        _ => {}
    }
    errs
}

fn validate_secret_update(new: &core::Secret, old: &core::Secret) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    if opt(&new.type_) != opt(&old.type_) {
        errs.push(FieldError::invalid("type", quote(opt(&new.type_)), FIELD_IMMUTABLE));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(FieldError::forbidden("data", IMMUTABLE_WHEN_SET));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

/// `legacyValidateEvent` for core/v1 Events: the involved object's namespace must match the event's.
fn validate_core_event(e: &core::Event) -> ErrorList {
    let mut errs = Vec::new();
    let ns = opt(&e.metadata.namespace);
    let involved_ns = opt(&e.involved_object.namespace);
    if e.event_time.is_none() {
        let ok = if involved_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved_ns
        };
        if !ok {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                quote(involved_ns),
                "does not match event.namespace",
            ));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                quote(involved_ns),
                "does not match event.namespace",
            ));
        }
        let rc = opt(&e.reporting_component);
        if rc.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        }
        invalid_each(&mut errs, "reportingComponent", rc, is_qualified_name(rc));
        if opt(&e.reporting_instance).is_empty() {
            errs.push(FieldError::required("reportingInstance", ""));
        }
        if opt(&e.action).is_empty() {
            errs.push(FieldError::required("action", ""));
        }
        if opt(&e.reason).is_empty() {
            errs.push(FieldError::required("reason", ""));
        }
    }
    invalid_each(&mut errs, "namespace", ns, is_dns1123_subdomain(ns));
    errs
}

/// events.k8s.io/v1 Events: full object-meta checks plus the fields the new API requires.
fn validate_events_v1_event(e: &events::v1::Event) -> ErrorList {
    let mut errs = validate_object_meta(&e.metadata, true, NameRule::Subdomain, "metadata");
    let rc = opt(&e.reporting_controller);
    if rc.is_empty() {
        errs.push(FieldError::required("reportingController", ""));
    } else {
        invalid_each(&mut errs, "reportingController", rc, is_qualified_name(rc));
    }
    if opt(&e.reporting_instance).is_empty() {
        errs.push(FieldError::required("reportingInstance", ""));
    }
    if opt(&e.action).is_empty() {
        errs.push(FieldError::required("action", ""));
    }
    if opt(&e.reason).is_empty() {
        errs.push(FieldError::required("reason", ""));
    }
    let t = opt(&e.type_);
    if t != "Normal" && t != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            quote(""),
            format!("has invalid value: {t}"),
        ));
    }
    errs
}

fn validate_lease(l: &coordination::v1::Lease) -> ErrorList {
    let mut errs = validate_object_meta(&l.metadata, true, NameRule::Subdomain, "metadata");
    if let Some(spec) = &l.spec {
        if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d.to_string(),
                "must be greater than 0",
            ));
        }
        if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
            errs.push(FieldError::invalid("spec.leaseTransitions", t.to_string(), IS_NEGATIVE));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    /// A valid, defaulted pod with one container; tests edit it.
    fn pod() -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
        });
        crate::defaults::default_object("Pod", &mut p);
        p
    }

    fn create(p: &Value) -> Vec<String> {
        texts(&validate_create("Pod", p))
    }

    fn has(errs: &[String], want: &str) {
        assert!(errs.iter().any(|e| e == want), "missing {want:?} in {errs:#?}");
    }

    #[test]
    fn valid_pod_passes() {
        assert_eq!(create(&pod()), Vec::<String>::new());
    }

    #[test]
    fn pod_names() {
        let mut p = pod();
        p["metadata"]["name"] = json!("");
        assert_eq!(
            create(&p),
            ["metadata.name: Required value: name or generateName is required"]
        );
        p["metadata"]["generateName"] = json!("web-");
        assert_eq!(create(&p), Vec::<String>::new());
        p["metadata"]["name"] = json!("My_Pod");
        assert_eq!(
            create(&p),
            [
                r#"metadata.name: Invalid value: "My_Pod": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
            ]
        );
        p["metadata"]["name"] = json!("a".repeat(254));
        has(
            &create(&p),
            &format!(
                "metadata.name: Invalid value: \"{}\": must be no more than 253 characters",
                "a".repeat(254)
            ),
        );
        let mut p = pod();
        p["metadata"]["namespace"] = json!("");
        assert_eq!(create(&p), ["metadata.namespace: Required value"]);
    }

    #[test]
    fn labels_and_annotations() {
        let mut p = pod();
        p["metadata"]["labels"] = json!({"bad key!": "ok", "app": "-bad-"});
        let errs = create(&p);
        has(
            &errs,
            r#"metadata.labels: Invalid value: "-bad-": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
        );
        has(
            &errs,
            r#"metadata.labels: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
        );
        let mut p = pod();
        p["metadata"]["annotations"] = json!({"example.com/Note": "x", "/x": "y", "big": "z".repeat(256 * 1024)});
        let errs = create(&p);
        has(
            &errs,
            r#"metadata.annotations: Invalid value: "/x": prefix part must be non-empty"#,
        );
        has(&errs, "metadata.annotations: Too long: must have at most 262144 bytes");
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }

    #[test]
    fn containers_required_and_names() {
        let mut p = pod();
        p["spec"]["containers"] = json!([]);
        assert_eq!(create(&p), ["spec.containers: Required value"]);
        let mut p = pod();
        p["spec"]["containers"][0]["name"] = json!("App");
        p["spec"]["containers"][0]["image"] = json!("");
        let errs = create(&p);
        has(
            &errs,
            r#"spec.containers[0].name: Invalid value: "App": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#,
        );
        has(&errs, "spec.containers[0].image: Required value");
        p["spec"]["containers"][0]["name"] = json!("a.b");
        has(
            &create(&p),
            r#"spec.containers[0].name: Invalid value: "a.b": must not contain dots"#,
        );
        p["spec"]["containers"][0]["name"] = json!("");
        has(&create(&p), "spec.containers[0].name: Required value");
    }

    #[test]
    fn duplicate_container_names() {
        let mut p = pod();
        p["spec"]["containers"] = json!([{"name": "app", "image": "a"}, {"name": "app", "image": "b"}]);
        p["spec"]["initContainers"] = json!([{"name": "app", "image": "c"}]);
        crate::defaults::default_object("Pod", &mut p);
        let errs = create(&p);
        has(&errs, r#"spec.containers[1].name: Duplicate value: "app""#);
        has(&errs, r#"spec.initContainers[0].name: Duplicate value: "app""#);
    }

    #[test]
    fn ports() {
        let mut p = pod();
        p["spec"]["containers"] = json!([
            {"name": "a", "image": "i", "ports": [
                {"containerPort": 0}, {"containerPort": 70000}, {"containerPort": 80, "hostPort": 70000},
                {"containerPort": 81, "protocol": "HTTP"}, {"containerPort": 82, "name": "http"},
                {"containerPort": 83, "name": "http"}, {"containerPort": 84, "name": "Bad--"},
                {"containerPort": 85, "hostPort": 8080}]},
            {"name": "b", "image": "i", "ports": [{"containerPort": 86, "hostPort": 8080}]}
        ]);
        crate::defaults::default_object("Pod", &mut p);
        let errs = create(&p);
        has(&errs, "spec.containers[0].ports[0].containerPort: Required value");
        has(
            &errs,
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        );
        has(
            &errs,
            "spec.containers[0].ports[2].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        );
        has(
            &errs,
            r#"spec.containers[0].ports[3].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
        );
        has(&errs, r#"spec.containers[0].ports[5].name: Duplicate value: "http""#);
        has(
            &errs,
            r#"spec.containers[0].ports[6].name: Invalid value: "Bad--": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
        );
        has(
            &errs,
            r#"spec.containers[0].ports[6].name: Invalid value: "Bad--": must not contain consecutive hyphens"#,
        );
        has(
            &errs,
            r#"spec.containers[0].ports[6].name: Invalid value: "Bad--": must not begin or end with a hyphen"#,
        );
        has(
            &errs,
            r#"spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080""#,
        );
        assert_eq!(is_valid_port_name("1234"), ["must contain at least one letter (a-z)"]);
        assert_eq!(
            is_valid_port_name("abcdefghijklmnop"),
            ["must be no more than 15 characters"]
        );
    }

    #[test]
    fn env_vars() {
        let mut p = pod();
        p["spec"]["containers"][0]["env"] = json!([
            {"name": "1BAD", "value": "x"},
            {"name": "A", "valueFrom": {}},
            {"name": "B", "value": "v", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"},
                                         "secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "bad/key"}}},
            {"name": "E", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.bogus"}}},
            {"name": "..", "value": "x"}
        ]);
        let errs = create(&p);
        has(
            &errs,
            r#"spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[1].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[2].valueFrom: Invalid value: "": may not be specified when `value` is not empty"#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[3].valueFrom: Invalid value: "": may not have more than one field specified at a time"#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[4].valueFrom.configMapKeyRef.key: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[5].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.bogus": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs""#,
        );
        has(
            &errs,
            r#"spec.containers[0].env[6].name: Invalid value: "..": must not be '..'"#,
        );
        assert_eq!(errs.len(), 7, "{errs:#?}");
    }

    #[test]
    fn volumes_and_mounts() {
        let mut p = pod();
        p["spec"]["volumes"] = json!([
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": "Two", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "hp", "hostPath": {"path": ""}},
            {"name": "cm", "configMap": {"name": ""}},
            {"name": "sec", "secret": {}},
            {"name": "neg", "emptyDir": {"sizeLimit": "-1Gi"}},
            {"name": "none"}
        ]);
        p["spec"]["containers"][0]["volumeMounts"] = json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "x", "mountPath": "/data"},
            {"name": "data", "mountPath": ""},
            {"name": "data", "mountPath": "/sub", "subPath": "../etc"},
            {"name": "data", "mountPath": "/abs", "subPath": "/etc"}
        ]);
        let errs = create(&p);
        has(&errs, r#"spec.volumes[1].name: Duplicate value: "data""#);
        has(
            &errs,
            "spec.volumes[2].emptyDir: Forbidden: may not specify more than 1 volume type",
        );
        has(
            &errs,
            r#"spec.volumes[2].name: Invalid value: "Two": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#,
        );
        has(&errs, "spec.volumes[3].hostPath.path: Required value");
        has(&errs, "spec.volumes[4].configMap.name: Required value");
        has(&errs, "spec.volumes[5].secret.secretName: Required value");
        has(
            &errs,
            "spec.volumes[6].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity",
        );
        has(&errs, "spec.volumes[7]: Required value: must specify a volume type");
        has(&errs, r#"spec.containers[0].volumeMounts[1].name: Not found: "x""#);
        has(
            &errs,
            r#"spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique"#,
        );
        has(&errs, "spec.containers[0].volumeMounts[2].mountPath: Required value");
        has(
            &errs,
            r#"spec.containers[0].volumeMounts.subPath: Invalid value: "../etc": must not contain '..'"#,
        );
        has(
            &errs,
            r#"spec.containers[0].volumeMounts.subPath: Invalid value: "/etc": must be a relative path"#,
        );
    }

    #[test]
    fn policies() {
        let mut p = pod();
        p["spec"]["restartPolicy"] = json!("X");
        p["spec"]["dnsPolicy"] = json!("Y");
        p["spec"]["containers"][0]["imagePullPolicy"] = json!("Sometimes");
        p["spec"]["containers"][0]["terminationMessagePolicy"] = json!("Z");
        p["spec"]["containers"][0]["restartPolicy"] = json!("Always");
        p["spec"]["terminationGracePeriodSeconds"] = json!(-1);
        p["spec"]["activeDeadlineSeconds"] = json!(0);
        p["spec"]["nodeName"] = json!("Node_1");
        p["spec"]["hostname"] = json!("a.b");
        let errs = create(&p);
        has(
            &errs,
            r#"spec.restartPolicy: Unsupported value: "X": supported values: "Always", "OnFailure", "Never""#,
        );
        has(
            &errs,
            r#"spec.dnsPolicy: Unsupported value: "Y": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#,
        );
        has(
            &errs,
            r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
        );
        has(
            &errs,
            r#"spec.containers[0].terminationMessagePolicy: Unsupported value: "Z": supported values: "File", "FallbackToLogsOnError""#,
        );
        has(
            &errs,
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        );
        has(
            &errs,
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        );
        has(
            &errs,
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        );
        has(&errs, r#"spec.hostname: Invalid value: "a.b": must not contain dots"#);
        assert!(errs
            .iter()
            .any(|e| e.starts_with(r#"spec.nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain"#)));
        assert_eq!(errs.len(), 9, "{errs:#?}");
    }

    #[test]
    fn init_containers() {
        let mut p = pod();
        p["spec"]["initContainers"] = json!([
            {"name": "init", "image": "i", "livenessProbe": {"exec": {"command": ["true"]}},
             "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}},
            {"name": "sidecar", "image": "i", "restartPolicy": "Always",
             "readinessProbe": {"exec": {"command": ["true"]}}},
            {"name": "odd", "image": "i", "restartPolicy": "Never"}
        ]);
        crate::defaults::default_object("Pod", &mut p);
        let errs = create(&p);
        has(&errs, "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always");
        has(&errs, "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always");
        has(
            &errs,
            r#"spec.initContainers[2].restartPolicy: Unsupported value: "Never": supported values: "Always""#,
        );
        assert_eq!(errs.len(), 3, "{errs:#?}");
    }

    #[test]
    fn resources() {
        let mut p = pod();
        p["spec"]["containers"][0]["resources"] = json!({
            "requests": {"cpu": "1", "memory": "-1Gi", "gpu": "1"},
            "limits": {"cpu": "500m", "memory": "abc"}
        });
        let errs = create(&p);
        has(
            &errs,
            r#"spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m"#,
        );
        has(
            &errs,
            r#"spec.containers[0].resources.requests[memory]: Invalid value: "-1Gi": must be greater than or equal to 0"#,
        );
        has(
            &errs,
            r#"spec.containers[0].resources.limits[memory]: Invalid value: "abc": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"#,
        );
        has(
            &errs,
            r#"spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers"#,
        );
        let mut p = pod();
        p["spec"]["containers"][0]["resources"] =
            json!({"requests": {"example.com/dev": "1"}, "limits": {"example.com/dev": "2"}});
        has(
            &create(&p),
            r#"spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/dev limit of 2"#,
        );
    }

    #[test]
    fn probes() {
        let mut p = pod();
        let c = &mut p["spec"]["containers"][0];
        c["livenessProbe"] = json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}, "successThreshold": 2,
                                    "timeoutSeconds": 1, "periodSeconds": 10, "failureThreshold": 3});
        c["readinessProbe"] = json!({"periodSeconds": 10, "successThreshold": 3, "failureThreshold": -1});
        c["startupProbe"] = json!({"httpGet": {"port": 70000, "path": "/", "scheme": "FTP"}, "successThreshold": 1});
        let errs = create(&p);
        has(
            &errs,
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        );
        has(
            &errs,
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        );
        has(
            &errs,
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        );
        has(
            &errs,
            "spec.containers[0].readinessProbe.failureThreshold: Invalid value: -1: must be greater than or equal to 0",
        );
        has(&errs, "spec.containers[0].startupProbe.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive");
        has(
            &errs,
            r#"spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS""#,
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }

    #[test]
    fn tolerations_and_create_only_fields() {
        let mut p = pod();
        p["spec"]["tolerations"] = json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"},
                                          {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]);
        p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        let errs = create(&p);
        has(
            &errs,
            r#"spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys""#,
        );
        has(
            &errs,
            r#"spec.tolerations[1].operator: Invalid value: "v": value must be empty when `operator` is 'Exists'"#,
        );
        has(
            &errs,
            r#"spec.tolerations[2].effect: Invalid value: "NoSchedule": effect must be 'NoExecute' when `tolerationSeconds` is set"#,
        );
        has(&errs, "spec.ephemeralContainers: Forbidden: cannot be set on create");
    }

    #[test]
    fn decode_failure_is_one_error() {
        let p = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}});
        let errs = validate_create("Pod", &p);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, FieldErrorKind::TypeInvalid);
        assert!(
            errs[0].detail.starts_with("cannot decode Pod: invalid type"),
            "{}",
            errs[0].detail
        );
    }

    #[test]
    fn pod_update_image_only_is_allowed() {
        let old = pod();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        new["metadata"]["labels"] = json!({"a": "b"});
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        assert_eq!(texts(&validate_update("Pod", &new, &old)), Vec::<String>::new());
        new["spec"]["containers"][0]["image"] = json!("");
        has(
            &texts(&validate_update("Pod", &new, &old)),
            "spec.containers[0].image: Required value",
        );
    }

    #[test]
    fn pod_update_forbidden_change_prints_fields_and_diff() {
        let old = pod();
        let mut new = old.clone();
        new["spec"]["containers"][0]["command"] = json!(["sleep", "1"]);
        let errs = validate_update("Pod", &new, &old);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let want_prefix = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n";
        let text = errs[0].to_string();
        assert!(text.starts_with(want_prefix), "{text}");
        assert_eq!(
            &text[want_prefix.len()..],
            "  core.PodSpec{\n- \tcontainers[0].command: null\n+ \tcontainers[0].command: [\"sleep\",\"1\"]\n  }\n"
        );
    }

    #[test]
    fn pod_update_containers_added_or_removed() {
        let old = pod();
        let mut new = old.clone();
        new["spec"]["containers"] = json!([{"name": "app", "image": "nginx"}, {"name": "b", "image": "x"}]);
        crate::defaults::default_object("Pod", &mut new);
        assert_eq!(
            texts(&validate_update("Pod", &new, &old)),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
    }

    #[test]
    fn pod_update_tolerations_and_deadline() {
        let mut old = pod();
        old["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut new = old.clone();
        new["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_eq!(
            texts(&validate_update("Pod", &new, &old)),
            ["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]
        );
        let mut new = old.clone();
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(60);
        assert_eq!(texts(&validate_update("Pod", &new, &old)), Vec::<String>::new());
        new["spec"]["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "x", "operator": "Exists"}));
        assert_eq!(texts(&validate_update("Pod", &new, &old)), Vec::<String>::new());
        new["spec"]["tolerations"][0]["key"] = json!("other");
        has(
            &texts(&validate_update("Pod", &new, &old)),
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
        );
    }

    #[test]
    fn metadata_immutability() {
        let mut old = pod();
        old["metadata"]["uid"] = json!("u1");
        old["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        let mut new = old.clone();
        new["metadata"]["name"] = json!("other");
        new["metadata"]["namespace"] = json!("kube-system");
        new["metadata"]["uid"] = json!("u2");
        new["metadata"]["creationTimestamp"] = json!("2024-01-02T00:00:00Z");
        let errs = texts(&validate_status_update("Pod", &new, &old));
        assert_eq!(
            errs,
            [
                r#"metadata.name: Invalid value: "other": field is immutable"#,
                r#"metadata.namespace: Invalid value: "kube-system": field is immutable"#,
                r#"metadata.uid: Invalid value: "u2": field is immutable"#,
                r#"metadata.creationTimestamp: Invalid value: "2024-01-02T00:00:00Z": field is immutable"#,
            ]
        );
        has(
            &texts(&validate_update("Pod", &new, &old)),
            r#"metadata.name: Invalid value: "other": field is immutable"#,
        );
    }

    #[test]
    fn namespaces() {
        let ns = |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        assert!(validate_create("Namespace", &ns("dev")).is_empty());
        assert_eq!(
            texts(&validate_create("Namespace", &ns("a.b"))),
            [r#"metadata.name: Invalid value: "a.b": must not contain dots"#]
        );
        let mut bad = ns("dev");
        bad["metadata"]["namespace"] = json!("x");
        assert_eq!(
            texts(&validate_create("Namespace", &bad)),
            ["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn config_maps() {
        let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"ok.key": "v", "bad/key": "v"}});
        assert_eq!(
            texts(&validate_create("ConfigMap", &cm)),
            [
                r#"data[bad/key]: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#
            ]
        );
        let big =
            json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}});
        assert_eq!(
            texts(&validate_create("ConfigMap", &big)),
            [": Too long: must have at most 1048576 bytes"]
        );
        let old = json!({"metadata": {"name": "c", "namespace": "default"}, "immutable": true, "data": {"a": "1"}});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        assert_eq!(
            texts(&validate_update("ConfigMap", &new, &old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        new["immutable"] = json!(false);
        has(
            &texts(&validate_update("ConfigMap", &new, &old)),
            "immutable: Forbidden: field is immutable when `immutable` is set",
        );
    }

    #[test]
    fn secrets() {
        let s = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}});
        assert_eq!(texts(&validate_create("Secret", &s)), ["data[tls.key]: Required value"]);
        let old = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "immutable": true, "data": {"a": "YQ=="}});
        let mut new = old.clone();
        new["type"] = json!("kubernetes.io/basic-auth");
        new["data"] = json!({"username": "YQ=="});
        let errs = texts(&validate_update("Secret", &new, &old));
        has(
            &errs,
            r#"type: Invalid value: "kubernetes.io/basic-auth": field is immutable"#,
        );
        has(&errs, "data: Forbidden: field is immutable when `immutable` is set");
    }

    #[test]
    fn other_kinds_validate_metadata() {
        let sa = json!({"metadata": {"name": "Bad", "namespace": "default"}});
        assert_eq!(validate_create("ServiceAccount", &sa).len(), 1);
        let node = json!({"metadata": {"name": "node-1"}});
        assert!(validate_create("Node", &node).is_empty());
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0}});
        assert_eq!(
            texts(&validate_create("Lease", &lease)),
            ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
        );
        let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": "default"},
                        "involvedObject": {"kind": "Pod", "namespace": "other"}});
        assert_eq!(
            texts(&validate_create("Event", &ev)),
            [r#"involvedObject.namespace: Invalid value: "other": does not match event.namespace"#]
        );
        let ev2 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": "default"},
                         "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "peapod/kubelet",
                         "reportingInstance": "n1", "action": "Pulling", "reason": "Pulling", "type": "Normal"});
        assert!(validate_create("Event", &ev2).is_empty());
    }
}
