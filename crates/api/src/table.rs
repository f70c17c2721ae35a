//! Server-side Table conversion for `kubectl get`. (skeleton: owned by the tables helper)
use serde_json::Value;

/// Column definitions (`meta.k8s.io/v1` TableColumnDefinition JSON) for a resource (by group and plural).
pub fn columns(_group: &str, _plural: &str) -> Vec<Value> {
    Vec::new()
}

/// The cells of one row for `obj`, every column including priority-1 ones, at time `now`.
pub fn cells(_group: &str, _plural: &str, _obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    Vec::new()
}
