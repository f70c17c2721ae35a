//! Patches: strategic merge patch (Kubernetes' list merge keys and `$patch`, `$setElementOrder`, `$retainKeys`,
//! `$deleteFromPrimitiveList` directives), JSON merge patch (RFC 7396), JSON patch (RFC 6902), and the merge used
//! for server-side apply.
//!
//! The merge keys come from the `patchStrategy`/`patchMergeKey` tags of k8s.io/api for the kinds Peapod serves;
//! a list without a tag is atomic (replaced whole), as in apimachinery's `strategicpatch`.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Invalid(String),
}

/// How a list at some path merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Elements are maps merged by this key.
    MergeKey(&'static str),
    /// A list of scalars merged as a set (union, original order first).
    MergePrimitive,
    /// Replaced whole.
    Atomic,
}

/// The strategy of the list at `path` (map keys from the object's root; list indices left out) in `kind`.
fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    let last = path.last().copied().unwrap_or("");
    let parent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
    // ObjectMeta, in every kind.
    if path.len() == 2 && path[0] == "metadata" {
        return match last {
            "finalizers" => MergePrimitive,
            "ownerReferences" => MergeKey("uid"),
            _ => Atomic,
        };
    }
    let in_container = matches!(parent, "containers" | "initContainers" | "ephemeralContainers");
    match kind {
        "Pod" => match (path.first().copied().unwrap_or(""), last) {
            ("spec", "containers" | "initContainers" | "ephemeralContainers") if path.len() == 2 => MergeKey("name"),
            ("spec", "ports") if in_container => MergeKey("containerPort"),
            ("spec", "env") if in_container => MergeKey("name"),
            ("spec", "volumeMounts") if in_container => MergeKey("mountPath"),
            ("spec", "volumeDevices") if in_container => MergeKey("devicePath"),
            ("spec", "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") if path.len() == 2 => {
                MergeKey("name")
            }
            ("spec", "hostAliases") if path.len() == 2 => MergeKey("ip"),
            ("spec", "topologySpreadConstraints") if path.len() == 2 => MergeKey("topologyKey"),
            ("status", "conditions") if path.len() == 2 => MergeKey("type"),
            ("status", "podIPs" | "hostIPs") if path.len() == 2 => MergeKey("ip"),
            _ => Atomic,
        },
        "Node" => match path {
            ["status", "conditions"] | ["status", "addresses"] => MergeKey("type"),
            _ => Atomic,
        },
        "Namespace" => match path {
            ["status", "conditions"] => MergeKey("type"),
            _ => Atomic,
        },
        "ServiceAccount" => match path {
            ["secrets"] => MergeKey("name"),
            _ => Atomic,
        },
        _ => Atomic,
    }
}

fn is_directive(k: &str) -> bool {
    k.starts_with('$')
}

/// Removes every `$…` directive from a value that is inserted as new.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `original` (an object of `kind`).
pub fn strategic_merge(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let mut out = original.clone();
    let Value::Object(o) = &mut out else {
        return Err(PatchError::Invalid("the object to patch is not a JSON object".into()));
    };
    merge_map(kind, &mut Vec::new(), o, p, true)?;
    Ok(out)
}

/// What happened to a map after merging: kept, or deleted by `$patch: delete`.
enum MapOutcome {
    Keep,
    Delete,
}

fn merge_map(
    kind: &str,
    path: &mut Vec<String>,
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    deletions: bool,
) -> Result<MapOutcome, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return Ok(MapOutcome::Keep);
        }
        Some("delete") if deletions => return Ok(MapOutcome::Delete),
        // An apply configuration deletes nothing; a stray delete directive is ignored there.
        Some("merge" | "delete") | None => {}
        Some(other) => return Err(PatchError::Invalid(format!("Unknown patch type: {other} in map"))),
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (orig.get_mut(list), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if is_directive(k) {
            continue;
        }
        path.push(k.clone());
        match v {
            Value::Null if deletions => {
                orig.remove(k);
            }
            Value::Object(pm) => match orig.get_mut(k) {
                Some(Value::Object(om)) => {
                    if let MapOutcome::Delete = merge_map(kind, path, om, pm, deletions)? {
                        orig.remove(k);
                    }
                }
                _ => {
                    if !(deletions && pm.get("$patch").and_then(Value::as_str) == Some("delete")) {
                        orig.insert(k.clone(), strip_directives(v));
                    }
                }
            },
            Value::Array(pa) => {
                let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                let strategy = list_strategy(kind, &segs);
                let merged = match (strategy, orig.get(k)) {
                    (ListStrategy::MergeKey(key), Some(Value::Array(oa))) => {
                        Value::Array(merge_keyed_list(kind, path, oa, pa, key, deletions)?)
                    }
                    (ListStrategy::MergePrimitive, Some(Value::Array(oa))) => {
                        let mut out = oa.clone();
                        for x in pa {
                            if !out.contains(x) {
                                out.push(x.clone());
                            }
                        }
                        Value::Array(out)
                    }
                    _ => strip_directives(v),
                };
                orig.insert(k.clone(), merged);
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
        path.pop();
    }
    // `$setElementOrder/<list>`: the order the client wants; unlisted elements keep their place after them.
    for (k, order) in patch {
        let Some(list) = k.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let (Some(Value::Array(cur)), Value::Array(order)) = (orig.get_mut(list), order) else {
            continue;
        };
        path.push(list.to_string());
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        let strategy = list_strategy(kind, &segs);
        path.pop();
        let key_of = |e: &Value| -> Value {
            match strategy {
                ListStrategy::MergeKey(key) => e.get(key).cloned().unwrap_or(Value::Null),
                _ => e.clone(),
            }
        };
        let mut rest: Vec<Value> = std::mem::take(cur);
        let mut sorted = Vec::with_capacity(rest.len());
        for o in order {
            let want = key_of(o);
            if let Some(i) = rest.iter().position(|e| key_of(e) == want) {
                sorted.push(rest.remove(i));
            }
        }
        sorted.extend(rest);
        *cur = sorted;
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(MapOutcome::Keep)
}

fn merge_keyed_list(
    kind: &str,
    path: &mut Vec<String>,
    orig: &[Value],
    patch: &[Value],
    key: &str,
    deletions: bool,
) -> Result<Vec<Value>, PatchError> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .map(strip_directives)
            .collect());
    }
    let mut out: Vec<Value> = orig.to_vec();
    for p in patch {
        let Value::Object(pm) = p else {
            return Err(PatchError::Invalid(format!(
                "a list merged by {key:?} must hold objects, got {p}"
            )));
        };
        let Some(kv) = pm.get(key) else {
            return Err(PatchError::Invalid(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|e| e.get(key) == Some(kv));
        let deleting = pm.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, deleting) {
            (Some(i), true) if deletions => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), _) => {
                if let Value::Object(om) = &mut out[i] {
                    if let MapOutcome::Delete = merge_map(kind, path, om, pm, deletions)? {
                        out.remove(i);
                    }
                }
            }
            (None, false) => out.push(strip_directives(p)),
        }
    }
    Ok(out)
}

/// RFC 7396 JSON merge patch.
pub fn json_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// RFC 6902 JSON patch.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Invalid(format!("invalid JSON patch: {e}")))?;
    let mut out = original.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::Invalid(e.to_string()))?;
    Ok(out)
}

/// The merge of server-side apply, simplified: the applied configuration is merged into the live object like a
/// strategic merge (maps merge, keyed lists merge by key, other lists are replaced) but nothing is deleted.
/// Field ownership (removing fields a manager stopped applying, conflicts between managers) is not tracked yet.
pub fn apply_patch_merge(kind: &str, original: &Value, applied: &Value) -> Result<Value, PatchError> {
    let Value::Object(p) = applied else {
        return Err(PatchError::Invalid("an apply configuration must be an object".into()));
    };
    let mut out = original.clone();
    let Value::Object(o) = &mut out else {
        return Err(PatchError::Invalid("the object to patch is not a JSON object".into()));
    };
    merge_map(kind, &mut Vec::new(), o, p, false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1.35"}],
                "containers": [
                    {"name": "nginx", "image": "nginx:1.21", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "side", "image": "busybox:1.35"}
                ],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "t"}]
            }
        })
    }

    #[test]
    fn kubectl_apply_image_change() {
        let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
            "spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                     "containers": [{"image": "nginx:1.22", "name": "nginx"}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.22");
        assert_eq!(out["spec"]["containers"][0]["env"][1]["value"], "2");
        assert_eq!(out["spec"]["containers"][1]["name"], "side");
        assert_eq!(out["spec"]["initContainers"][0]["name"], "init");
        assert_eq!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{}\n"
        );
        assert!(out["metadata"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn delete_directive_null_and_order() {
        let patch = json!({"metadata": {"labels": {"a": null, "b": "2"}},
            "spec": {"containers": [{"name": "side", "$patch": "delete"},
                                    {"name": "nginx", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
        );
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
    }

    #[test]
    fn atomic_and_primitive_lists() {
        let patch = json!({"metadata": {"finalizers": ["y"]}, "spec": {"tolerations": [{"key": "u"}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let patch = json!({"spec": {"containers": [{"name": "only", "image": "i"}, {"$patch": "replace"}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "only", "image": "i"}]));
        let patch = json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v", "hostPath": {"path": "/x"}}])
        );
    }

    #[test]
    fn replace_map_and_errors() {
        let patch = json!({"spec": {"$patch": "replace", "containers": []}});
        let out = strategic_merge("Pod", &pod(), &patch).unwrap();
        assert_eq!(out["spec"], json!({"containers": []}));
        let bad = json!({"spec": {"containers": [{"image": "x"}]}});
        assert!(strategic_merge("Pod", &pod(), &bad)
            .unwrap_err()
            .to_string()
            .contains("merge key: name"));
        assert!(strategic_merge("Pod", &pod(), &json!([1])).is_err());
    }

    #[test]
    fn node_conditions_merge_by_type() {
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let out = strategic_merge("Node", &node, &patch).unwrap();
        assert_eq!(out["status"]["conditions"][0]["status"], "True");
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn merge_and_json_patch() {
        let out = json_merge(&pod(), &json!({"metadata": {"labels": {"a": null, "c": "3"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        let out = json_patch(
            &pod(),
            &json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "x"}]),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert!(json_patch(&pod(), &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&pod(), &json!({"op": "x"})).is_err());
    }

    #[test]
    fn apply_merges_without_deleting() {
        let applied = json!({"metadata": {"labels": {"b": "2"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.22"}]}});
        let out = apply_patch_merge("Pod", &pod(), &applied).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.22");
        assert_eq!(out["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 2);
    }
}
