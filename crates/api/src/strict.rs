//! Decoding with unknown-field detection (`fieldValidation=Strict|Warn`).
//! (skeleton: owned by the validation helper)
use serde_json::Value;

/// Returns the paths of fields in `obj` that `kind` does not have, written as Kubernetes writes them
/// (`spec.containers[0].imagee`), sorted in document order.
pub fn unknown_fields(_kind: &str, _obj: &Value) -> Result<Vec<String>, String> {
    Ok(Vec::new())
}
