//! Defaulting of objects on create, as kube-apiserver's defaulters and admission plugins do it.
//! (skeleton: owned by the validation helper)
use serde_json::Value;

/// Applies Kubernetes' defaults for `kind` to a freshly decoded object (before validation).
pub fn default_object(_kind: &str, _obj: &mut Value) {}
