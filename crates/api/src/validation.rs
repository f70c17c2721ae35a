//! Validation of objects on create and update, with Kubernetes' field paths and messages.
//! (skeleton: owned by the validation helper)
use crate::errors::ErrorList;
use serde_json::Value;

/// Validates a new object of `kind`.
pub fn validate_create(_kind: &str, _obj: &Value) -> ErrorList {
    Vec::new()
}

/// Validates an update of an object of `kind` from `old` to `new` (spec writes).
pub fn validate_update(_kind: &str, _new: &Value, _old: &Value) -> ErrorList {
    Vec::new()
}

/// Validates a write to the `status` subresource.
pub fn validate_status_update(_kind: &str, _new: &Value, _old: &Value) -> ErrorList {
    Vec::new()
}
