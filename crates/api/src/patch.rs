//! Patches: strategic merge patch (apimachinery's `strategicpatch` applied over `serde_json::Value`, driven by a
//! table of Kubernetes' `patchStrategy`/`patchMergeKey` struct tags for the kinds Peapod serves), JSON merge patch
//! (RFC 7396), JSON patch (RFC 6902), and the simplified merge Peapod uses for server-side apply.
//!
//! What a strategic merge patch does, as apimachinery applies it:
//! - maps merge key by key; `null` deletes a key; a value of another type replaces;
//! - a list tagged `patchStrategy:"merge"` with a `patchMergeKey` merges element by element on that key, a
//!   tagged list of scalars is a set union; every other list is atomic and replaced whole;
//! - directives: `$patch: replace|delete` in a map, `$patch: replace|delete` as a list element,
//!   `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`;
//! - the order of a merged list follows `$setElementOrder`, then the patch, then the live list, exactly as
//!   `normalizeElementOrder` computes it (so a patch without an order puts its new elements first).
//!
//! Errors carry Kubernetes' words and the HTTP status kube-apiserver answers them with ([`PatchError::code`]).
//! Pure: no IO. Which kind an object is comes from the caller; unknown kinds merge maps and replace lists.

use serde_json::{Map, Value};

/// Why a patch could not be applied. The message is Kubernetes' own; the variant is the status class
/// kube-apiserver answers with.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (400 BadRequest): `invalid patch format of retainKeys`, an undecodable
    /// JSON patch, a patch body that is not an object.
    #[error("{0}")]
    BadRequest(String),
    /// The patch cannot be applied to this object (422 Invalid): a failed JSON patch operation, lists of lists.
    #[error("{0}")]
    Invalid(String),
    /// apimachinery returns these as plain errors, which kube-apiserver answers with 500: a missing merge key,
    /// an unknown `$patch` directive, a `$setElementOrder` that contradicts the patch.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP status kube-apiserver answers this error with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Invalid(_) => 422,
            PatchError::Internal(_) => 500,
        }
    }

    /// The `Status.reason` that goes with [`PatchError::code`].
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Invalid(_) => "Invalid",
            PatchError::Internal(_) => "InternalError",
        }
    }
}

// mergepatch's sentinel errors, word for word.
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
const ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST: &str = "invalid patch format of setElementOrder list";

// The directive keys of a strategic merge patch.
const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";

// ---------------------------------------------------------------------------------------------------------------
// The patch strategies of the kinds Peapod serves
// ---------------------------------------------------------------------------------------------------------------

/// How a list field merges, from its `patchStrategy`/`patchMergeKey` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListMeta {
    /// `patchStrategy:"merge"`; without it the list is atomic.
    merge: bool,
    /// `patchMergeKey`, for lists of objects.
    key: Option<&'static str>,
}

const ATOMIC: ListMeta = ListMeta {
    merge: false,
    key: None,
};
const MERGE_SCALARS: ListMeta = ListMeta { merge: true, key: None };

const fn merge_by(key: &'static str) -> ListMeta {
    ListMeta {
        merge: true,
        key: Some(key),
    }
}

/// Kinds whose `spec.template` is a PodTemplateSpec.
const POD_TEMPLATE_OWNERS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
];

/// Kinds whose `status.conditions` merge by `type` (besides Pod, Node and Namespace).
const CONDITIONS_BY_TYPE: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
    "Service",
    "PersistentVolumeClaim",
];

/// The list strategy of the field at `path` (field names from the object's root, list indices left out) of an
/// object of `kind`, per the struct tags of k8s.io/api (core/v1, apps/v1, batch/v1) and apimachinery's ObjectMeta.
fn list_meta(kind: &str, path: &[String]) -> ListMeta {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(meta) = object_meta_list(&p) {
        return meta;
    }
    // A pod template inside a workload merges as a Pod does.
    let template = match (kind, p.as_slice()) {
        ("PodTemplate", ["template", rest @ ..]) => Some(rest),
        ("CronJob", ["spec", "jobTemplate", "spec", "template", rest @ ..]) => Some(rest),
        (k, ["spec", "template", rest @ ..]) if POD_TEMPLATE_OWNERS.contains(&k) => Some(rest),
        _ => None,
    };
    if let Some(rest) = template {
        return object_meta_list(rest).unwrap_or_else(|| pod_list(rest));
    }
    match (kind, p.as_slice()) {
        ("Pod", rest) => pod_list(rest),
        ("Node", ["spec", "podCIDRs"]) => MERGE_SCALARS,
        ("Node", ["status", "conditions" | "addresses"]) => merge_by("type"),
        ("Namespace", ["status", "conditions"]) => merge_by("type"),
        ("ServiceAccount", ["secrets"]) => merge_by("name"),
        ("Service", ["spec", "ports"]) => merge_by("port"),
        (k, ["status", "conditions"]) if CONDITIONS_BY_TYPE.contains(&k) => merge_by("type"),
        // Everything else (Node taints and images, Event, ConfigMap, Secret, Lease, …) is atomic.
        _ => ATOMIC,
    }
}

/// ObjectMeta's tagged lists: `finalizers` (a set) and `ownerReferences` (by `uid`); `managedFields` is atomic.
fn object_meta_list(p: &[&str]) -> Option<ListMeta> {
    match p {
        ["metadata", "finalizers"] => Some(MERGE_SCALARS),
        ["metadata", "ownerReferences"] => Some(merge_by("uid")),
        ["metadata", ..] => Some(ATOMIC),
        _ => None,
    }
}

/// PodSpec, Container and PodStatus tags, for a path relative to the Pod (or the pod template).
fn pod_list(p: &[&str]) -> ListMeta {
    const CONTAINERS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
    const STATUSES: [&str; 3] = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ];
    match p {
        ["spec", c] if CONTAINERS.contains(c) => merge_by("name"),
        // Kubernetes merges container ports on containerPort alone: the same port with two protocols
        // collapses into one entry, a known limitation kept for compatibility.
        ["spec", c, "ports"] if CONTAINERS.contains(c) => merge_by("containerPort"),
        ["spec", c, "env"] if CONTAINERS.contains(c) => merge_by("name"),
        ["spec", c, "volumeMounts"] if CONTAINERS.contains(c) => merge_by("mountPath"),
        ["spec", c, "volumeDevices"] if CONTAINERS.contains(c) => merge_by("devicePath"),
        // volumes and resourceClaims are `merge,retainKeys`: the retainKeys half only matters when a patch is
        // computed; applying one honours `$retainKeys` wherever it appears.
        ["spec", "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => merge_by("name"),
        ["spec", "hostAliases"] => merge_by("ip"),
        ["spec", "topologySpreadConstraints"] => merge_by("topologyKey"),
        ["status", "conditions"] => merge_by("type"),
        ["status", "podIPs" | "hostIPs"] => merge_by("ip"),
        ["status", "resourceClaimStatuses"] => merge_by("name"),
        ["status", s, "volumeMounts"] if STATUSES.contains(s) => merge_by("mountPath"),
        ["status", s, "allocatedResourcesStatus"] if STATUSES.contains(s) => merge_by("name"),
        // tolerations, containerStatuses, args, command, readinessGates, … are atomic.
        _ => ATOMIC,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Go-flavoured rendering for error messages
// ---------------------------------------------------------------------------------------------------------------

/// A decoded JSON value as Go's `%v` prints an `interface{}`: `map[k:v]`, `[a b]`, `<nil>`.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => go_fmt_map(m),
    }
}

fn go_fmt_map(m: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect();
    format!("map[{}]", parts.join(" "))
}

/// The Go type a decoded JSON value has, as `reflect.TypeOf` names it in `ErrBadArgType`.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn err_bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Internal(format!("expected a {expected}, but received a {}", go_type(actual)))
}

fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt_map(m)
    ))
}

fn err_bad_patch_type(directive: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::Internal(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt_map(m)
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------------------------

/// JSON equality as Go compares decoded values: every number is a float64.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether two values have the same JSON type (Go's `reflect.TypeOf` after decoding).
fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// A patch value that lands in the object as new content: null fields are dropped (they would decode as
/// unset), maps carrying `$patch` vanish, and no `$…` directive key is stored. `None` means "do not keep".
fn clean_new_value(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in m {
                if k.starts_with('$') || v.is_null() {
                    continue;
                }
                if let Some(v) = clean_new_value(v) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(clean_new_value).collect())),
        other => Some(other.clone()),
    }
}

/// The identity of a list element for ordering and lookup: its merge key's value for maps, itself otherwise.
fn identity<'a>(v: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

/// The position of `item` in `list` by identity (`index` in strategicpatch).
fn index_of(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let want = identity(item, key);
    list.iter().position(|v| match (identity(v, key), want) {
        (Some(a), Some(b)) => json_eq(a, b),
        (None, None) => true,
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------------------------------

/// Whether a merge may delete (strategic merge patch) or only add and change (server-side apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strategic,
    Apply,
}

/// One merge: the kind whose table applies, the mode, and the path of the map being merged.
struct Merger<'a> {
    kind: &'a str,
    mode: Mode,
    path: Vec<String>,
}

/// Applies a strategic merge patch to `original`, an object of `kind`, as kube-apiserver does for
/// `application/strategic-merge-patch+json` (`StrategicMergeMapPatch`). `original` is left untouched.
pub fn strategic_merge(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(p) => p.clone(),
        // `null` decodes to an empty patch.
        Value::Null => Map::new(),
        other => {
            let what = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {what} into Go value of type map[string]interface {{}}"
            )));
        }
    };
    let Value::Object(orig) = original else {
        return Err(PatchError::BadRequest("invalid JSON document".into()));
    };
    let mut merger = Merger {
        kind,
        mode: Mode::Strategic,
        path: Vec::new(),
    };
    Ok(Value::Object(merger.merge_map(orig.clone(), patch)?))
}

/// The merge of Peapod's server-side apply, a simplification of Kubernetes' field ownership: the applied
/// configuration is merged into the live object as a strategic merge would (maps merge, lists with a merge key
/// merge element by element on it, tagged scalar lists are unions, other lists are replaced), but nothing is
/// ever deleted: `null` and `$…` directives in the applied configuration are ignored, and fields the applier
/// stopped sending stay. Kept elements keep their place; new ones are appended in applied order. Conflicts
/// between field managers are not detected here (managedFields are recorded by the caller).
pub fn apply_patch_merge(kind: &str, original: &Value, applied: &Value) -> Result<Value, PatchError> {
    let Value::Object(applied) = applied else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_type(applied)
        )));
    };
    let Value::Object(orig) = original else {
        return Err(PatchError::BadRequest("invalid JSON document".into()));
    };
    let mut merger = Merger {
        kind,
        mode: Mode::Apply,
        path: Vec::new(),
    };
    Ok(Value::Object(merger.merge_map(orig.clone(), applied.clone())?))
}

impl Merger<'_> {
    fn list_meta_of(&self, field: &str) -> ListMeta {
        let mut path = self.path.clone();
        path.push(field.to_string());
        list_meta(self.kind, &path)
    }

    /// `mergeMap`: merges `patch` into `original` at the current path.
    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if self.mode == Mode::Apply {
            return self.apply_map(original, patch);
        }
        if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE_MARKER);
                    match clean_new_value(&Value::Object(patch)) {
                        Some(Value::Object(m)) => Ok(m),
                        _ => Ok(Map::new()),
                    }
                }
                // A map deleted by directive becomes empty; its key stays (as in apimachinery).
                Some("delete") => Ok(Map::new()),
                _ => Err(err_bad_patch_type(directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        let consumed = self.merge_ordered_lists(&mut original, &patch)?;

        for (key, patch_value) in patch {
            let (field, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                match key.split_once('/') {
                    Some((DELETE_FROM_PRIMITIVE_LIST_PREFIX, field)) => (field.to_string(), true),
                    _ => return Err(PatchError::BadRequest(ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST.into())),
                }
            } else if key.starts_with('$') || consumed.contains(&key) {
                continue;
            } else {
                (key, false)
            };
            if patch_value.is_null() {
                original.remove(&field);
                continue;
            }
            let Some(current) = original.get_mut(&field) else {
                if !delete_list {
                    if let Some(v) = clean_new_value(&patch_value) {
                        original.insert(field, v);
                    }
                }
                continue;
            };
            if !same_type(current, &patch_value) {
                if !delete_list {
                    match clean_new_value(&patch_value) {
                        Some(v) => *current = v,
                        None => {
                            original.remove(&field);
                        }
                    }
                }
                continue;
            }
            match (current, patch_value) {
                (Value::Object(current), Value::Object(p)) => {
                    self.path.push(field.clone());
                    let merged = self.merge_map(std::mem::take(current), p);
                    self.path.pop();
                    *current = merged?;
                }
                (Value::Array(current), Value::Array(p)) => {
                    let meta = self.list_meta_of(&field);
                    if meta.merge || delete_list {
                        self.path.push(field.clone());
                        let merged = self.merge_slice(std::mem::take(current), p, meta.key, delete_list);
                        self.path.pop();
                        *current = merged?;
                    } else if let Some(Value::Array(p)) = clean_new_value(&Value::Array(p)) {
                        *current = p;
                    }
                }
                (current, p) => *current = p,
            }
        }
        Ok(original)
    }

    /// `mergePatchIntoOriginal`: every `$setElementOrder/<list>` merges its list (when the patch has one) and
    /// orders the result. Returns the lists it merged, which the main loop then skips.
    fn merge_ordered_lists(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Vec<String>, PatchError> {
        let mut consumed = Vec::new();
        for (key, order) in patch {
            if !key.starts_with(SET_ELEMENT_ORDER_PREFIX) {
                continue;
            }
            let Value::Array(order) = order else {
                return Err(err_bad_arg_type("[]interface {}", order));
            };
            let field = match key.split_once('/') {
                Some((SET_ELEMENT_ORDER_PREFIX, field)) => field.to_string(),
                _ => {
                    return Err(PatchError::BadRequest(
                        ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST.into(),
                    ))
                }
            };
            let original_list = match original.get(&field) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(err_bad_arg_type("[]interface {}", other)),
                None => None,
            };
            let patch_list = match patch.get(&field) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(err_bad_arg_type("[]interface {}", other)),
                None => None,
            };
            let meta = self.list_meta_of(&field);
            validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or(&[]), order, meta.key)?;
            consumed.push(field.clone());
            let merged = match (original_list.clone(), patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => match clean_new_value(&Value::Array(p)) {
                    Some(Value::Array(p)) => p,
                    _ => continue,
                },
                (Some(o), Some(p)) if meta.merge => {
                    self.path.push(field.clone());
                    let merged = self.merge_slice(o, p, meta.key, false);
                    self.path.pop();
                    merged?
                }
                (Some(_), Some(p)) => match clean_new_value(&Value::Array(p)) {
                    Some(Value::Array(p)) => p,
                    _ => continue,
                },
                (None, None) => continue,
            };
            if merged.is_empty() {
                original.insert(field, Value::Array(merged));
                continue;
            }
            element_kind(&[&merged])?;
            let (in_order, server_only): (Vec<Value>, Vec<Value>) =
                merged.into_iter().partition(|v| index_of(order, v, meta.key).is_some());
            let ordered = normalize_element_order(
                in_order,
                server_only,
                order,
                original_list.as_deref().unwrap_or(&[]),
                meta.key,
            )?;
            original.insert(field, Value::Array(ordered));
        }
        Ok(consumed)
    }

    /// `mergeSlice`: merges a patch list into a list tagged `merge` (or applies a `$deleteFromPrimitiveList`).
    fn merge_slice(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: Option<&'static str>,
        delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let of_maps = element_kind(&[&original, &patch])?;
        if !of_maps {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.iter().any(|d| json_eq(v, d)))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !merged.iter().any(|m| json_eq(m, v)) {
                    merged.push(v.clone());
                }
            }
            let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
                merged.into_iter().partition(|v| index_of(&patch, v, None).is_some());
            return normalize_element_order(in_patch, server_only, &patch, &original, None);
        }
        let Some(key) = key else {
            return Err(PatchError::Internal(format!(
                "cannot merge lists without merge key for {}",
                self.path.last().map(String::as_str).unwrap_or("")
            )));
        };
        let (mut original, patch) = merge_slice_special_elements(original, patch, key)?;
        // The live order, before new elements are appended: they are unknown to it, as in apimachinery.
        let server_order = original.clone();
        // Elements of the live list merge with their patch element; new ones are appended, then ordered.
        for p in &patch {
            let Value::Object(pm) = p else {
                return Err(err_bad_arg_type("map[string]interface {}", p));
            };
            let Some(wanted) = pm.get(key) else {
                return Err(err_no_merge_key(pm, key));
            };
            let mut found = None;
            for (i, o) in original.iter().enumerate() {
                let Value::Object(om) = o else {
                    return Err(PatchError::Internal(format!("value for key {i} is not a map")));
                };
                if om.get(key).is_some_and(|v| json_eq(v, wanted)) {
                    found = Some(i);
                    break;
                }
            }
            match found {
                Some(i) => {
                    if let Value::Object(om) = &mut original[i] {
                        *om = self.merge_map(std::mem::take(om), pm.clone())?;
                    }
                }
                None => {
                    if let Some(v) = clean_new_value(p) {
                        original.push(v);
                    }
                }
            }
        }
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) = original
            .into_iter()
            .partition(|v| index_of(&patch, v, Some(key)).is_some());
        normalize_element_order(in_patch, server_only, &patch, &server_order, Some(key))
    }

    /// Server-side apply's merge of one map: no deletions, no directives.
    fn apply_map(
        &mut self,
        mut original: Map<String, Value>,
        applied: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        for (field, value) in applied {
            if field.starts_with('$') || value.is_null() {
                continue;
            }
            let current = match original.get_mut(&field) {
                Some(current) if same_type(current, &value) => current,
                _ => {
                    if let Some(v) = clean_new_value(&value) {
                        original.insert(field, v);
                    }
                    continue;
                }
            };
            match (current, value) {
                (Value::Object(current), Value::Object(v)) => {
                    self.path.push(field.clone());
                    let merged = self.apply_map(std::mem::take(current), v);
                    self.path.pop();
                    *current = merged?;
                }
                (Value::Array(current), Value::Array(v)) => {
                    let meta = self.list_meta_of(&field);
                    self.path.push(field.clone());
                    let merged = self.apply_list(std::mem::take(current), v, meta);
                    self.path.pop();
                    *current = merged?;
                }
                (current, v) => *current = v,
            }
        }
        Ok(original)
    }

    /// Server-side apply's merge of one list: by merge key, as a set, or replaced when atomic.
    fn apply_list(
        &mut self,
        mut original: Vec<Value>,
        applied: Vec<Value>,
        meta: ListMeta,
    ) -> Result<Vec<Value>, PatchError> {
        if !meta.merge {
            return match clean_new_value(&Value::Array(applied)) {
                Some(Value::Array(a)) => Ok(a),
                _ => Ok(Vec::new()),
            };
        }
        let Some(key) = meta.key else {
            for v in applied {
                if !original.iter().any(|o| json_eq(o, &v)) {
                    original.push(v);
                }
            }
            return Ok(original);
        };
        for (i, v) in applied.into_iter().enumerate() {
            let Value::Object(vm) = v else {
                return Err(PatchError::Invalid(format!(
                    ".{}: element {i}: expected an object in an associative list",
                    self.path.join(".")
                )));
            };
            let Some(wanted) = vm.get(key).filter(|k| !k.is_null()) else {
                return Err(PatchError::Invalid(format!(
                    ".{}: element {i}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)",
                    self.path.join(".")
                )));
            };
            match original
                .iter()
                .position(|o| o.get(key).is_some_and(|k| json_eq(k, wanted)))
            {
                Some(j) => {
                    if let Value::Object(om) = &mut original[j] {
                        *om = self.apply_map(std::mem::take(om), vm)?;
                    }
                }
                None => {
                    if let Some(v) = clean_new_value(&Value::Object(vm)) {
                        original.push(v);
                    }
                }
            }
        }
        Ok(original)
    }
}

/// `applyRetainKeysDirective`: every field the patch sets must be listed, and the original keeps only the listed
/// fields.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRequest(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.into()));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) || k.starts_with(SET_ELEMENT_ORDER_PREFIX) {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadRequest(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `sliceElementType` over several lists: all elements must share one JSON type, and none may be a list.
/// Returns whether the elements are maps (no elements at all counts as scalars).
fn element_kind(lists: &[&[Value]]) -> Result<bool, PatchError> {
    let mut first: Option<&Value> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        match first {
            None => {
                if v.is_array() {
                    return Err(PatchError::Invalid(ERR_NO_LIST_OF_LISTS.into()));
                }
                first = Some(v);
            }
            Some(f) if !same_type(f, v) => {
                let all: Vec<String> = lists.iter().map(|l| go_fmt(&Value::Array(l.to_vec()))).collect();
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: [{}]",
                    all.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(first.is_some_and(Value::is_object))
}

/// `mergeSliceWithSpecialElements`: applies `$patch: delete` elements to the original, and `$patch: replace`
/// (the patch's other elements become the list). Returns the original and the patch without special elements.
fn merge_slice_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for p in patch {
        let Value::Object(pm) = &p else {
            return Err(err_bad_arg_type("map[string]interface {}", &p));
        };
        let Some(directive) = pm.get(DIRECTIVE_MARKER) else {
            plain.push(p);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(wanted) = pm.get(key) else {
                    return Err(err_no_merge_key(pm, key));
                };
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, wanted)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => return Err(err_bad_patch_type(directive, pm)),
        }
    }
    if replace {
        let replacement = plain.iter().filter_map(clean_new_value).collect();
        return Ok((replacement, Vec::new()));
    }
    Ok((original, plain))
}

/// `validatePatchWithSetOrderList`: the patch's elements (deletions aside) must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order_list(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut kept: Vec<&Value> = Vec::with_capacity(patch.len());
    for p in patch {
        if key.is_some() {
            let Value::Object(pm) = p else {
                return Err(err_bad_arg_type("map[string]interface {}", p));
            };
            if pm.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        kept.push(p);
    }
    let (mut i, mut j) = (0, 0);
    while i < kept.len() && j < order.len() {
        if kept[i].get(DIRECTIVE_MARKER).is_some() {
            i += 1;
            continue;
        }
        let equal = match key {
            None => json_eq(kept[i], &order[j]),
            Some(k) => {
                let (Value::Object(l), Value::Object(r)) = (kept[i], &order[j]) else {
                    let bad = if kept[i].is_object() { &order[j] } else { kept[i] };
                    return Err(err_bad_arg_type("map[string]interface {}", bad));
                };
                let lv = l.get(k).ok_or_else(|| err_no_merge_key(l, k))?;
                let rv = r.get(k).ok_or_else(|| err_no_merge_key(r, k))?;
                json_eq(lv, rv)
            }
        };
        if equal {
            i += 1;
        }
        j += 1;
    }
    if i < kept.len() && j >= order.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// `normalizeElementOrder`: sorts the patched elements by `patch_order` and the live-only elements by
/// `server_order`, then interleaves them: a live-only element goes before a patched one only when both are in
/// the live list and it came first there.
fn normalize_element_order(
    patched: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if let Some(k) = key {
        for v in patched.iter().chain(server_only.iter()).chain(patch_order.iter()) {
            match v {
                Value::Object(m) if !m.contains_key(k) => return Err(err_no_merge_key(m, k)),
                Value::Object(_) => {}
                other => return Err(err_bad_arg_type("map[string]interface {}", other)),
            }
        }
    }
    let patched = sort_by_order(patched, patch_order, key);
    let server_only = sort_by_order(server_only, server_order, key);
    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patched.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (index_of(server_order, l, key), index_of(server_order, r, key)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// A stable sort of `items` by their position in `order`; items missing from `order` go last, in their order.
fn sort_by_order(items: Vec<Value>, order: &[Value], key: Option<&str>) -> Vec<Value> {
    let mut indexed: Vec<(usize, Value)> = items
        .into_iter()
        .map(|v| (index_of(order, &v, key).unwrap_or(usize::MAX), v))
        .collect();
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, v)| v).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// JSON merge patch and JSON patch
// ---------------------------------------------------------------------------------------------------------------

/// Applies an RFC 7396 JSON merge patch (`application/merge-patch+json`): maps merge, `null` deletes, anything
/// else (lists included) replaces. A patch that is not an object replaces the whole document; the caller rejects
/// a result that is not an object.
pub fn json_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies an RFC 6902 JSON patch (`application/json-patch+json`). An undecodable patch is a 400; an operation
/// that fails (a missing path, a failed `test`) is a 422 with the `json-patch` crate's message, as kube-apiserver
/// answers with evanphx/json-patch's.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let mut out = original.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::Invalid(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Value {
        strategic_merge(kind, &original, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
    }

    fn smp_err(kind: &str, original: Value, patch: Value) -> PatchError {
        match strategic_merge(kind, &original, &patch) {
            Ok(v) => panic!("{patch} applied: {v}"),
            Err(e) => e,
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "finalizers": ["x"],
                         "ownerReferences": [{"uid": "u1", "name": "rs", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1.35", "command": ["sh", "-c", "true"]}],
                "containers": [
                    {"name": "nginx", "image": "nginx:1.21",
                     "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                    {"name": "side", "image": "busybox:1.35", "args": ["sleep", "1d"]}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
                "tolerations": [{"key": "t", "operator": "Exists"}],
                "restartPolicy": "Always"
            },
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
        })
    }

    fn names(v: &Value) -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("name").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn kubectl_apply_changes_only_the_image() {
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Pod\"}\n"}},
            "spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                     "containers": [{"image": "nginx:1.22", "name": "nginx"}]}
        });
        let out = smp("Pod", pod(), patch);
        let mut want = pod();
        want["spec"]["containers"][0]["image"] = json!("nginx:1.22");
        want["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Pod\"}\n"});
        assert_eq!(out, want);
    }

    #[test]
    fn kubectl_apply_wire_example_single_container() {
        let live = json!({"metadata": {"name": "nginx"},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.21", "imagePullPolicy": "IfNotPresent"}]}});
        let patch = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
                           "spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                    "containers": [{"image": "nginx:1.22", "name": "nginx"}]}});
        let out = smp("Pod", live, patch);
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:1.22", "imagePullPolicy": "IfNotPresent"}])
        );
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            "Pod",
            pod(),
            json!({"metadata": {"labels": {"app": null, "tier": "web"}, "nope": null}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"tier": "web"}));
        assert!(out["metadata"].get("nope").is_none());
        // A scalar replaces a map and vice versa.
        let out = smp("ConfigMap", json!({"data": {"a": "1"}}), json!({"data": "x"}));
        assert_eq!(out["data"], "x");
        // New content has its nulls dropped.
        let out = smp("ConfigMap", json!({}), json!({"data": {"a": "1", "b": null}}));
        assert_eq!(out, json!({"data": {"a": "1"}}));
        // A whole field deleted.
        let out = smp("Pod", pod(), json!({"status": null}));
        assert!(out.get("status").is_none());
    }

    #[test]
    fn merge_by_key_keeps_other_elements_and_prepends_new_ones() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}),
        );
        let env = &out["spec"]["containers"][0]["env"];
        // Without $setElementOrder, apimachinery puts the patch's elements before the live-only ones unless the
        // live list orders them first.
        assert_eq!(
            env,
            &json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(names(&out["spec"]["containers"]), ["nginx", "side"]);
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "new", "image": "x"}]}}),
        );
        assert_eq!(names(&out["spec"]["containers"]), ["new", "nginx", "side"]);
        // Ports merge on containerPort alone, as Kubernetes does.
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 80, "protocol": "UDP"}]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "UDP"}])
        );
        // Merge keys compare as numbers, whatever their JSON spelling.
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["ports"].as_array().map(Vec::len), Some(1));
        assert_eq!(out["spec"]["containers"][0]["ports"][0]["name"], "http");
    }

    #[test]
    fn delete_directive_in_lists_and_maps() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"},
                                            {"name": "nginx", "env": [{"name": "A", "$patch": "delete"}]}]}}),
        );
        assert_eq!(names(&out["spec"]["containers"]), ["nginx"]);
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
        // Deleting an element that is not there is fine.
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"volumes": [{"name": "ghost", "$patch": "delete"}]}}),
        );
        assert_eq!(names(&out["spec"]["volumes"]), ["data", "cfg"]);
        // In a map, `$patch: delete` empties it (the key stays, as in apimachinery).
        let out = smp("Pod", pod(), json!({"metadata": {"labels": {"$patch": "delete"}}}));
        assert_eq!(out["metadata"]["labels"], json!({}));
        // … and a new map carrying a directive is not added.
        let out = smp("Pod", pod(), json!({"metadata": {"annotations": {"$patch": "delete"}}}));
        assert!(out["metadata"].get("annotations").is_none());
        // A delete without the merge key.
        let e = smp_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}),
        );
        assert_eq!(
            e.to_string(),
            "map: map[$patch:delete image:x] does not contain declared merge key: name"
        );
        assert_eq!(e.code(), 500);
    }

    #[test]
    fn replace_directive_in_maps_and_lists() {
        let out = smp(
            "Pod",
            pod(),
            json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "solo", "image": "i"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "solo", "image": "i"}]));
        let out = smp("Pod", pod(), json!({"spec": {"$patch": "replace", "containers": []}}));
        assert_eq!(out["spec"], json!({"containers": []}));
        // The whole object.
        let out = smp(
            "ConfigMap",
            json!({"data": {"a": "1"}, "x": 1}),
            json!({"$patch": "replace", "data": {}}),
        );
        assert_eq!(out, json!({"data": {}}));
    }

    #[test]
    fn unknown_directives_are_errors() {
        let e = smp_err("Pod", pod(), json!({"metadata": {"labels": {"$patch": "merge"}}}));
        assert_eq!(e.to_string(), "unknown patch type: merge in map: map[$patch:merge]");
        let e = smp_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
        );
        assert_eq!(e.to_string(), "merging lists cannot yet be specified in the patch");
        let e = smp_err(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}),
        );
        assert_eq!(
            e.to_string(),
            "unknown patch type: bogus in map: map[$patch:bogus name:a]"
        );
        let e = smp_err("Pod", pod(), json!({"spec": {"containers": [{"image": "x"}]}}));
        assert_eq!(
            e.to_string(),
            "map: map[image:x] does not contain declared merge key: name"
        );
        let e = smp_err("Pod", pod(), json!([1]));
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        let e = smp_err(
            "Pod",
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["a"]]}}),
        );
        assert_eq!(e.to_string(), "lists of lists are not supported");
        assert_eq!(e.code(), 422);
        let e = smp_err("Pod", pod(), json!({"metadata": {"finalizers": [1]}}));
        assert!(e.to_string().starts_with("list element types are not identical"), "{e}");
    }

    #[test]
    fn set_element_order_reorders() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}}),
        );
        assert_eq!(names(&out["spec"]["containers"]), ["side", "nginx"]);
        assert_eq!(out["spec"]["containers"][1], pod()["spec"]["containers"][0]);

        // apimachinery's "add an item in a list and preserve order" case, against a live list with an extra item.
        let live = json!({"spec": {"containers": [{"name": "1"}, {"name": "4"}, {"name": "2", "image": "2"}]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "1"}, {"name": "2"}],
                                    "containers": [{"name": "3", "image": "3"}]}});
        let out = smp("Pod", live, patch);
        assert_eq!(names(&out["spec"]["containers"]), ["3", "1", "4", "2"]);
        assert_eq!(out["spec"]["containers"][0]["image"], "3");

        // An order that contradicts the patch list.
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                                    "containers": [{"name": "side", "image": "a"}, {"name": "nginx", "image": "b"}]}});
        let e = smp_err("Pod", pod(), patch);
        assert!(e.to_string().starts_with("The order in patch list:\n"), "{e}");
        assert!(e.to_string().contains("doesn't match $setElementOrder list:"), "{e}");

        let e = smp_err("Pod", pod(), json!({"spec": {"$setElementOrder/containers": "x"}}));
        assert_eq!(e.to_string(), "expected a []interface {}, but received a string");
        let e = smp_err("Pod", pod(), json!({"spec": {"$setElementOrderX": []}}));
        assert_eq!(e.to_string(), "invalid patch format of setElementOrder list");
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn primitive_lists_merge_as_sets() {
        // finalizers are `patchStrategy:"merge"`: a union, the patch's new values first.
        let out = smp("Pod", pod(), json!({"metadata": {"finalizers": ["y", "x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
        let out = smp("Pod", pod(), json!({"metadata": {"finalizers": ["y"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
        let out = smp(
            "Pod",
            pod(),
            json!({"metadata": {"$setElementOrder/finalizers": ["x", "y"], "finalizers": ["y"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        // apimachinery's "add an item in a int list and preserve order".
        let node = json!({"spec": {"podCIDRs": ["1", "4", "2"]}});
        let out = smp(
            "Node",
            node,
            json!({"spec": {"$setElementOrder/podCIDRs": ["3", "1", "2"], "podCIDRs": ["3"]}}),
        );
        assert_eq!(out["spec"]["podCIDRs"], json!(["3", "1", "4", "2"]));
        // Atomic scalar lists are replaced.
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "side", "args": ["sleep", "2d"]}]}}),
        );
        assert_eq!(out["spec"]["containers"][1]["args"], json!(["sleep", "2d"]));
    }

    #[test]
    fn delete_from_primitive_list() {
        let live = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
        let out = smp(
            "Pod",
            live.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "z"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        // apimachinery's "delete an item in a list of primitives and preserve order".
        let out = smp(
            "Pod",
            live.clone(),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"], "$deleteFromPrimitiveList/finalizers": ["c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        // Nothing to delete from.
        let out = smp(
            "Pod",
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out, json!({"metadata": {}}));
        let e = smp_err(
            "Pod",
            live,
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        );
        assert_eq!(e.to_string(), "invalid patch format of primitive list");
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"volumes": [{"name": "cfg", "hostPath": {"path": "/x"}, "$retainKeys": ["hostPath", "name"]}]}}),
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "data", "emptyDir": {}}, {"name": "cfg", "hostPath": {"path": "/x"}}])
        );
        let e = smp_err(
            "Pod",
            pod(),
            json!({"spec": {"volumes": [{"name": "cfg", "hostPath": {"path": "/x"}, "$retainKeys": ["name"]}]}}),
        );
        assert_eq!(e.to_string(), "invalid patch format of retainKeys");
        assert_eq!(e.code(), 400);
        // apimachinery's "retainKeys map should clear defaulted field" and "retainKeys map deletes a field".
        let out = smp(
            "Widget",
            json!({"m": {"value": "foo"}}),
            json!({"m": {"$retainKeys": ["other"], "other": "bar"}}),
        );
        assert_eq!(out, json!({"m": {"other": "bar"}}));
        let out = smp(
            "Widget",
            json!({"m": {"name": "foo", "value": "bar"}}),
            json!({"m": {"$retainKeys": ["name"], "value": null}}),
        );
        assert_eq!(out, json!({"m": {"name": "foo"}}));
        let e = smp_err("Widget", json!({"m": {}}), json!({"m": {"$retainKeys": "name"}}));
        assert_eq!(e.to_string(), "invalid patch format of retainKeys");
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let out = smp("Pod", pod(), json!({"spec": {"tolerations": [{"key": "u"}]}}));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
                          "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "h"}],
                                     "conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}});
        let out = smp(
            "Node",
            node,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}],
                              "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
        );
        assert_eq!(out["spec"]["taints"], json!([{"key": "b", "effect": "NoExecute"}]));
        assert_eq!(
            out["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["status"]["conditions"].as_array().map(Vec::len), Some(2));
        assert_eq!(out["status"]["addresses"][0]["address"], "10.0.0.2");
        assert_eq!(out["status"]["addresses"][1]["address"], "h");
        // An unknown kind: maps merge, lists replace.
        let out = smp(
            "Widget",
            json!({"spec": {"items": [1, 2], "m": {"a": 1}}}),
            json!({"spec": {"items": [3], "m": {"b": 2}}}),
        );
        assert_eq!(out, json!({"spec": {"items": [3], "m": {"a": 1, "b": 2}}}));
    }

    #[test]
    fn object_meta_and_other_kinds() {
        let out = smp(
            "ConfigMap",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}, "data": {"k": "v"}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "B"}]}, "data": {"k": null, "k2": "v2"}}),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "B"}])
        );
        assert_eq!(out["data"], json!({"k2": "v2"}));
        let out = smp(
            "ServiceAccount",
            json!({"secrets": [{"name": "a"}]}),
            json!({"secrets": [{"name": "b"}]}),
        );
        assert_eq!(names(&out["secrets"]), ["b", "a"]);
        let out = smp(
            "Namespace",
            json!({"status": {"phase": "Active", "conditions": [{"type": "A", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "A", "status": "False"}]}}),
        );
        assert_eq!(out["status"]["conditions"], json!([{"type": "A", "status": "False"}]));
        let lease = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 40}});
        let out = smp(
            "Lease",
            lease,
            json!({"spec": {"holderIdentity": "b", "renewTime": "2026-01-01T00:00:00.000000Z"}}),
        );
        assert_eq!(out["spec"]["holderIdentity"], "b");
        assert_eq!(out["spec"]["leaseDurationSeconds"], 40);
        let out = smp(
            "Secret",
            json!({"data": {"a": "YQ=="}, "type": "Opaque"}),
            json!({"stringData": {"b": "c"}}),
        );
        assert_eq!(out["data"]["a"], "YQ==");
        assert_eq!(out["stringData"]["b"], "c");
        let out = smp("Event", json!({"count": 1, "reason": "Pulled"}), json!({"count": 2}));
        assert_eq!(out, json!({"count": 2, "reason": "Pulled"}));
        // A Deployment's pod template merges as a Pod.
        let dep = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let out = smp(
            "Deployment",
            dep,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])
        );
    }

    #[test]
    fn pod_with_init_containers_volumes_and_env() {
        let patch = json!({
            "spec": {
                "$setElementOrder/initContainers": [{"name": "init"}, {"name": "migrate"}],
                "initContainers": [{"name": "migrate", "image": "migrate:2"}],
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "cache"}],
                "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}, {"name": "cfg", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                "containers": [{"name": "nginx",
                                "$setElementOrder/env": [{"name": "B"}, {"name": "A"}, {"name": "C"}],
                                "env": [{"name": "A", "value": "10"}, {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                                "$setElementOrder/volumeMounts": [{"mountPath": "/data"}, {"mountPath": "/cache"}],
                                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]
            }
        });
        let out = smp("Pod", pod(), patch);
        assert_eq!(names(&out["spec"]["initContainers"]), ["init", "migrate"]);
        assert_eq!(out["spec"]["initContainers"][0], pod()["spec"]["initContainers"][0]);
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {"medium": "Memory"}}])
        );
        let nginx = &out["spec"]["containers"][0];
        assert_eq!(
            nginx["env"],
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "10"},
                   {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])
        );
        assert_eq!(
            nginx["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"}])
        );
        assert_eq!(nginx["image"], "nginx:1.21");
        assert!(nginx.get("$setElementOrder/env").is_none());
        assert_eq!(out["spec"]["containers"][1], pod()["spec"]["containers"][1]);
        // Nothing else moved.
        assert_eq!(out["status"], pod()["status"]);
        assert_eq!(out["metadata"], pod()["metadata"]);
    }

    #[test]
    fn status_conditions_merge_by_type() {
        let out = smp(
            "Pod",
            pod(),
            json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}, {"type": "PodScheduled"}, {"type": "Initialized"}],
                              "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}),
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"},
                   {"type": "Initialized", "status": "True"}])
        );
        // containerStatuses are atomic.
        let live = json!({"status": {"containerStatuses": [{"name": "a"}, {"name": "b"}]}});
        let out = smp(
            "Pod",
            live,
            json!({"status": {"containerStatuses": [{"name": "b", "ready": true}]}}),
        );
        assert_eq!(
            out["status"]["containerStatuses"],
            json!([{"name": "b", "ready": true}])
        );
    }

    #[test]
    fn json_merge_patch() {
        let out = json_merge(
            &pod(),
            &json!({"metadata": {"labels": {"app": null, "c": "3"}}, "spec": {"tolerations": null}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        assert!(out["spec"].get("tolerations").is_none());
        // Lists are replaced whole.
        let out = json_merge(&pod(), &json!({"spec": {"containers": [{"name": "x"}]}})).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "x"}]));
    }

    #[test]
    fn json_patch_operations_and_errors() {
        let out = json_patch(
            &pod(),
            &json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "x"},
                    {"op": "add", "path": "/metadata/labels/new", "value": "v"},
                    {"op": "remove", "path": "/spec/tolerations"},
                    {"op": "test", "path": "/spec/restartPolicy", "value": "Always"}]),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "x");
        assert_eq!(out["metadata"]["labels"]["new"], "v");
        assert!(out["spec"].get("tolerations").is_none());
        let e = json_patch(&pod(), &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert_eq!(e.code(), 422);
        assert!(!e.to_string().is_empty());
        let e = json_patch(
            &pod(),
            &json!([{"op": "test", "path": "/spec/restartPolicy", "value": "Never"}]),
        )
        .unwrap_err();
        assert_eq!(e.code(), 422);
        let e = json_patch(&pod(), &json!({"op": "add"})).unwrap_err();
        assert_eq!(e.code(), 400);
        let e = json_patch(&pod(), &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn apply_merges_without_deleting() {
        let applied = json!({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "web", "labels": {"tier": "front"}, "finalizers": ["y"]},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx:1.22", "env": [{"name": "C", "value": "3"}]},
                                                     {"name": "new", "image": "busybox:1.35"}],
                                      "tolerations": [{"key": "u"}],
                                      "restartPolicy": null}});
        let out = apply_patch_merge("Pod", &pod(), &applied).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(names(&out["spec"]["containers"]), ["nginx", "side", "new"]);
        let nginx = &out["spec"]["containers"][0];
        assert_eq!(nginx["image"], "nginx:1.22");
        assert_eq!(nginx["ports"][0]["containerPort"], 80);
        assert_eq!(names(&nginx["env"]), ["A", "B", "C"]);
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        assert_eq!(out["spec"]["restartPolicy"], "Always");
        // Directives are not honoured.
        let out = apply_patch_merge(
            "Pod",
            &pod(),
            &json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(names(&out["spec"]["containers"]), ["nginx", "side"]);
        let e = apply_patch_merge("Pod", &pod(), &json!({"spec": {"containers": [{"image": "x"}]}})).unwrap_err();
        assert_eq!(e.code(), 422);
        assert!(e.to_string().contains("omits key field \"name\""), "{e}");
        assert_eq!(apply_patch_merge("Pod", &pod(), &json!([])).unwrap_err().code(), 400);
    }

    /// Cases from apimachinery's strategic merge tests (`customStrategicMergePatchRawTestCases` and the
    /// "preserve order" three-way cases), with `mergingList` played by a Pod's containers (merge key `name`),
    /// `mergingIntList` by its finalizers (a merged scalar list) and `nonMergingIntList` by an atomic list.
    #[test]
    fn apimachinery_cases() {
        fn list(names_values: &[(&str, &[(&str, &str)])]) -> Value {
            Value::Array(
                names_values
                    .iter()
                    .map(|(n, fields)| {
                        let mut m = Map::new();
                        m.insert("name".into(), json!(n));
                        for (k, v) in fields.iter() {
                            m.insert(k.to_string(), json!(v));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            )
        }
        let containers = |l: Value| json!({"spec": {"containers": l}});
        let order = |names: &[&str]| Value::Array(names.iter().map(|n| json!({"name": n})).collect());

        // $setElementOrder contains an item that is not in the list.
        let out = smp(
            "Pod",
            containers(list(&[("1", &[]), ("3", &[])])),
            json!({"spec": {"$setElementOrder/containers": order(&["3", "2", "1"]),
                            "containers": list(&[("3", &[("value", "3")]), ("1", &[("value", "1")])])}}),
        );
        assert_eq!(
            out,
            containers(list(&[("3", &[("value", "3")]), ("1", &[("value", "1")])]))
        );
        let out = smp(
            "Pod",
            json!({"metadata": {"finalizers": ["1", "3"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["3", "1"]}}));
        // The order and the patch list must agree.
        let e = smp_err(
            "Pod",
            json!({"metadata": {"finalizers": ["1", "3", "2"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}}),
        );
        assert!(e.to_string().contains("doesn't match"), "{e}");
        // $deleteFromPrimitiveList of a missing item, on a null list, on a missing list, on an atomic list.
        let f = |v: Value| json!({"metadata": {"finalizers": v}});
        let del = |v: Value| json!({"metadata": {"$deleteFromPrimitiveList/finalizers": v}});
        assert_eq!(
            smp("Pod", f(json!(["1", "2"])), del(json!(["3"]))),
            f(json!(["1", "2"]))
        );
        assert_eq!(smp("Pod", f(Value::Null), del(json!(["3"]))), f(Value::Null));
        assert_eq!(
            smp("Pod", json!({"metadata": {}}), del(json!(["3"]))),
            json!({"metadata": {}})
        );
        assert_eq!(
            smp("Pod", f(json!(["1", "2", "3"])), del(json!(["2"]))),
            f(json!(["1", "3"]))
        );
        assert_eq!(
            smp(
                "Widget",
                json!({"nonMergingIntList": [1, 2, 3]}),
                json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]})
            ),
            json!({"nonMergingIntList": [1, 3]})
        );

        let current = list(&[
            ("1", &[("other", "a")]),
            ("2", &[("value", "2"), ("other", "b")]),
            ("3", &[("value", "3")]),
        ]);
        // "delete an item in a list and preserve order".
        let out = smp(
            "Pod",
            containers(current.clone()),
            json!({"spec": {"$setElementOrder/containers": order(&["2", "1"]),
                            "containers": [{"name": "3", "$patch": "delete"}]}}),
        );
        assert_eq!(
            out,
            containers(list(&[
                ("2", &[("value", "2"), ("other", "b")]),
                ("1", &[("other", "a")])
            ]))
        );
        // "change an item in a list and preserve order".
        let out = smp(
            "Pod",
            containers(current.clone()),
            json!({"spec": {"$setElementOrder/containers": order(&["2", "3", "1"]),
                            "containers": [{"name": "3", "value": "x"}]}}),
        );
        assert_eq!(
            out,
            containers(list(&[
                ("2", &[("value", "2"), ("other", "b")]),
                ("3", &[("value", "x")]),
                ("1", &[("other", "a")])
            ]))
        );
        // "add and delete an item in a list and preserve order".
        let out = smp(
            "Pod",
            containers(current),
            json!({"spec": {"$setElementOrder/containers": order(&["4", "2", "1"]),
                            "containers": [{"name": "4", "value": "4"}, {"name": "3", "$patch": "delete"}]}}),
        );
        assert_eq!(
            out,
            containers(list(&[
                ("4", &[("value", "4")]),
                ("2", &[("value", "2"), ("other", "b")]),
                ("1", &[("other", "a")])
            ]))
        );
    }

    #[test]
    fn go_rendering_of_values() {
        assert_eq!(
            go_fmt(&json!({"b": [1, "x"], "a": null, "c": {"d": true}})),
            "map[a:<nil> b:[1 x] c:map[d:true]]"
        );
        assert_eq!(go_type(&json!(1)), "float64");
    }
}
