//! Decoding with unknown-field detection (`fieldValidation=Strict|Warn`).
//!
//! Owns the list of fields a typed decode would drop, written as Kubernetes' strict decoder writes them
//! (`spec.containers[0].imagee`, `metadata.labelz`). It does not decide what to do with them: the apiserver turns them
//! into a 400 (`strict decoding error: unknown field "…"`) or into warnings.

use crate::k8s::api::{coordination, core::v1 as core, events};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Returns the paths of fields in `obj` that `kind` does not have, written as Kubernetes writes them
/// (`spec.containers[0].imagee`), in the order the decoder meets them. `Err` carries the decode error when `obj` is
/// not a valid `kind` at all (a string where a number belongs, a wrong `apiVersion`). Unknown kinds have no unknown
/// fields.
pub fn unknown_fields(kind: &str, obj: &Value) -> Result<Vec<String>, String> {
    match kind {
        "Pod" => ignored_fields::<core::Pod>(obj),
        "Namespace" => ignored_fields::<core::Namespace>(obj),
        "ConfigMap" => ignored_fields::<core::ConfigMap>(obj),
        "Secret" => ignored_fields::<core::Secret>(obj),
        "ServiceAccount" => ignored_fields::<core::ServiceAccount>(obj),
        "Node" => ignored_fields::<core::Node>(obj),
        "Event" if is_events_api(obj) => ignored_fields::<events::v1::Event>(obj),
        "Event" => ignored_fields::<core::Event>(obj),
        "Lease" => ignored_fields::<coordination::v1::Lease>(obj),
        _ => Ok(Vec::new()),
    }
}

/// Whether an Event is the `events.k8s.io/v1` flavour rather than core `v1`.
pub(crate) fn is_events_api(obj: &Value) -> bool {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("events.k8s.io/"))
}

/// Decodes `obj` as `T`, collecting the path of every field the decoder skipped.
fn ignored_fields<T: DeserializeOwned>(obj: &Value) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    serde_ignored::deserialize::<_, _, T>(obj, |path| unknown.push(render_path(&path))).map_err(|e| e.to_string())?;
    Ok(unknown)
}

/// Writes a serde_ignored path as Kubernetes does: map keys joined by dots, sequence indexes in brackets.
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        Path::Map { parent, key } => {
            let head = render_path(parent);
            if head.is_empty() {
                key.to_string()
            } else {
                format!("{head}.{key}")
            }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => render_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_misspelled_container_field() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "labelz": {"a": "b"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "imagee": "nginx"}]}
        });
        assert_eq!(
            unknown_fields("Pod", &pod).unwrap(),
            ["metadata.labelz", "spec.containers[1].imagee"]
        );
    }

    #[test]
    fn known_objects_have_no_unknown_fields() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                     "resources": {"limits": {"cpu": "1"}}}]},
            "status": {"phase": "Pending"}
        });
        assert_eq!(unknown_fields("Pod", &pod).unwrap(), Vec::<String>::new());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(unknown_fields("ConfigMap", &cm).unwrap().is_empty());
    }

    #[test]
    fn nested_and_top_level_unknowns() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "bogus": 1,
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "a", "image": "i",
                "ports": [{"containerPort": 80, "protocoll": "TCP"}],
                "livenessProbe": {"httpGet": {"port": 80, "pathh": "/"}}}]}
        });
        assert_eq!(
            unknown_fields("Pod", &pod).unwrap(),
            [
                "bogus",
                "spec.containers[0].livenessProbe.httpGet.pathh",
                "spec.containers[0].ports[0].protocoll"
            ]
        );
    }

    #[test]
    fn other_kinds() {
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizerz": []}});
        assert_eq!(unknown_fields("Namespace", &ns).unwrap(), ["spec.finalizerz"]);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n"},
                           "spec": {"holderIdentity": "a", "x": 1}});
        assert_eq!(unknown_fields("Lease", &lease).unwrap(), ["spec.x"]);
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                        "eventTime": "2024-01-01T00:00:00.000000Z", "note": "n", "message": "core only"});
        assert_eq!(unknown_fields("Event", &ev).unwrap(), ["message"]);
        let core_ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                             "involvedObject": {"kind": "Pod"}, "message": "m", "note": "events only"});
        assert_eq!(unknown_fields("Event", &core_ev).unwrap(), ["note"]);
        assert!(unknown_fields("Widget", &json!({"x": 1})).unwrap().is_empty());
    }

    #[test]
    fn decode_errors_are_reported() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                         "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "eighty"}]}]}});
        let err = unknown_fields("Pod", &pod).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let wrong = json!({"apiVersion": "v2", "kind": "Pod"});
        assert!(unknown_fields("Pod", &wrong).is_err());
    }
}
