//! Kubernetes' error vocabulary: field errors (`field.Error` in apimachinery) and `metav1.Status` replies.
//!
//! Owns the exact wording and JSON shape of every error a client can see, so that `kubectl` prints what it
//! prints against Kubernetes. Builders here are pure; the apiserver only picks one and sends it.

use serde_json::{json, Value};
use std::fmt;

/// The kind of a field error, as `field.ErrorType` in apimachinery's `pkg/util/validation/field/errors.go`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl FieldErrorKind {
    /// The body text Kubernetes prints for this kind (`ErrorType.String()`).
    pub fn text(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// The `causes[].reason` Kubernetes sends for this kind (`metav1.CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// Kinds whose body never shows the bad value (`Required`, `Forbidden`, `TooLong`, `Internal`).
    fn omits_value(self) -> bool {
        matches!(self, Self::Required | Self::Forbidden | Self::TooLong | Self::Internal)
    }
}

/// One validation failure at a field path, e.g. `spec.containers[0].image: Required value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field path as Kubernetes writes it: `spec.containers[0].ports[1].containerPort`.
    pub field: String,
    /// The offending value, already rendered as Go's `%v`/`%q` would render it (strings quoted), or `None`
    /// when the error carries no value.
    pub value: Option<String>,
    /// Extra explanation appended after `": "`.
    pub detail: String,
}

/// A list of field errors; empty means valid.
pub type ErrorList = Vec<FieldError>;

impl FieldError {
    fn new(kind: FieldErrorKind, field: impl Into<String>, value: Option<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(
            FieldErrorKind::TooLong,
            field,
            None,
            format!("must have at most {max} bytes"),
        )
    }
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Internal, field, None, detail)
    }
    /// An invalid value; `value` is the rendered value (use [`quote`] for strings).
    pub fn invalid(field: impl Into<String>, value: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.into()), detail)
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.into()), "")
    }
    pub fn not_found(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(value.into()), "")
    }
    pub fn too_many(field: impl Into<String>, value: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::TooMany, field, Some(value.into()), detail)
    }
    /// An unsupported value with the list of supported ones, rendered as Kubernetes does:
    /// `Unsupported value: "X": supported values: "Always", "OnFailure", "Never"`.
    pub fn not_supported(field: impl Into<String>, value: impl Into<String>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let detail = if list.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", list.join(", "))
        };
        Self::new(FieldErrorKind::NotSupported, field, Some(value.into()), detail)
    }

    /// The message without the field path (`ErrorBody()`), used as `causes[].message`.
    pub fn body(&self) -> String {
        let mut s = match (&self.value, self.kind.omits_value()) {
            (Some(v), false) => format!("{}: {}", self.kind.text(), v),
            _ => self.kind.text().to_string(),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Renders a string as Go's `%q` does (double quotes, escapes), the way Kubernetes shows string values.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Joins field errors as apimachinery's aggregate error does: one error as is, several as `[a, b]`.
pub fn aggregate(errs: &[FieldError]) -> String {
    match errs {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// An API error ready to be sent as a `metav1.Status` body: HTTP code, reason and message, plus details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `metav1.StatusReason`: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, …
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status, if any (`{name, group, kind, causes}`).
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `kind` in a Status' details is the resource (`pods`), qualified by group when not core (`leases.coordination.k8s.io`
/// is sent as kind `leases` with group `coordination.k8s.io`).
fn resource_details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": resource });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// `pods "x" not found` (404).
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} {} not found", qualified(group, resource), quote(name)),
            details: Some(resource_details(group, resource, name)),
        }
    }

    /// `the server could not find the requested resource` (404 for an unknown path).
    pub fn path_not_found() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// `pods "x" already exists` (409).
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} {} already exists", qualified(group, resource), quote(name)),
            details: Some(resource_details(group, resource, name)),
        }
    }

    /// A resourceVersion mismatch (409): `Operation cannot be fulfilled on pods "x": the object has been modified; …`.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {}: {}",
                qualified(group, resource),
                quote(name),
                why
            ),
            details: Some(resource_details(group, resource, name)),
        }
    }

    /// The standard optimistic-concurrency conflict text.
    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `Pod "x" is invalid: <aggregate>`, with one cause per field error. `kind` is the Kind (`Pod`).
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({ "reason": e.kind.reason(), "message": e.body(), "field": e.field }))
            .collect();
        let mut details = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} {} is invalid: {}", kind, quote(name), aggregate(errs)),
            details: Some(details),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: `pods is forbidden: <why>` or `pods "x" is forbidden: <why>`.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let what = if name.is_empty() {
            qualified(group, resource)
        } else {
            format!("{} {}", qualified(group, resource), quote(name))
        };
        Self {
            code: 403,
            reason: "Forbidden",
            message: format!("{what} is forbidden: {why}"),
            details: Some(resource_details(group, resource, name)),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// A watch from a compacted revision: `too old resource version: 5 (1000)` (410 Expired).
    pub fn expired(requested: i64, oldest: i64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The continue token's revision was compacted (410 Expired).
    pub fn continue_expired() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        )
    }

    /// 413 for bodies over the limit, in kube-apiserver's words.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                if accepted.is_empty() {
                    content_type.to_string()
                } else {
                    accepted.join(", ")
                }
            ),
        )
    }

    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 507 when the store cannot write (disk full, read-only data dir).
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Self::new(507, "InternalError", message)
    }

    /// The `metav1.Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// A `metav1.Status` of success, as sent for a delete that removed the object at once (when kubectl asked for a
/// Status) and for `deletecollection`.
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut details = resource_details(group, resource, name);
    details["uid"] = json!(uid);
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_body_and_display() {
        let e = FieldError::required("spec.containers[0].image", "");
        assert_eq!(e.to_string(), "spec.containers[0].image: Required value");
        assert_eq!(e.kind.reason(), "FieldValueRequired");
    }

    #[test]
    fn not_supported_lists_values() {
        let e = FieldError::not_supported("spec.restartPolicy", quote("X"), &["Always", "OnFailure", "Never"]);
        assert_eq!(
            e.to_string(),
            r#"spec.restartPolicy: Unsupported value: "X": supported values: "Always", "OnFailure", "Never""#
        );
    }

    #[test]
    fn invalid_status_shape() {
        let errs = vec![FieldError::required("spec.containers[0].image", "")];
        let s = ApiError::invalid("", "Pod", "x", &errs).to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["message"],
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(s["details"]["kind"], "Pod");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers[0].image");
        assert_eq!(s["details"]["causes"][0]["message"], "Required value");
    }

    #[test]
    fn aggregate_many() {
        let errs = vec![FieldError::required("a", ""), FieldError::forbidden("b", "no")];
        assert_eq!(aggregate(&errs), "[a: Required value, b: Forbidden: no]");
    }

    #[test]
    fn not_found_text() {
        assert_eq!(ApiError::not_found("", "pods", "x").message, "pods \"x\" not found");
        assert_eq!(
            ApiError::not_found("coordination.k8s.io", "leases", "n").message,
            "leases.coordination.k8s.io \"n\" not found"
        );
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
