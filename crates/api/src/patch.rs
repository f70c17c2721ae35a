//! Patches: strategic merge (with Kubernetes' patch strategies and merge keys), JSON merge (RFC 7396) and JSON
//! patch (RFC 6902). (skeleton: owned by the selectors/patch helper)
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Invalid(String),
}

pub fn strategic_merge(_kind: &str, original: &Value, _patch: &Value) -> Result<Value, PatchError> {
    Ok(original.clone())
}

pub fn json_merge(original: &Value, _patch: &Value) -> Result<Value, PatchError> {
    Ok(original.clone())
}

pub fn json_patch(original: &Value, _patch: &Value) -> Result<Value, PatchError> {
    Ok(original.clone())
}
