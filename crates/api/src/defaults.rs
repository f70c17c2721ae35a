//! Defaulting of objects on create, as kube-apiserver's defaulters (`pkg/apis/core/v1/defaults.go`), the create
//! strategies (`pkg/registry/core/*/strategy.go`) and the admission plugins of a fresh kubeadm cluster
//! (`ServiceAccount`, `Priority`, `DefaultTolerationSeconds`) apply them.
//!
//! Works on the JSON itself so that every field the user set survives untouched; only fields Kubernetes would add
//! are added, and quantities in resource lists are rewritten in their canonical form as Kubernetes stores them.
//! Also owns the QoS class computation ([`qos_class`]). Validation is not done here.

use crate::quantity::Quantity;
use serde_json::{json, Map, Value};

/// `DefaultTerminationGracePeriodSeconds` in `k8s.io/api/core/v1/types.go`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `DefaultSchedulerName` in `k8s.io/api/core/v1/types.go`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `TerminationMessagePathDefault` in `k8s.io/api/core/v1/types.go`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Mode of projected files when none is given: 0644 (`SecretVolumeSourceDefaultMode`, `ConfigMapVolumeSourceDefaultMode`,
/// `DownwardAPIVolumeSourceDefaultMode`, `ProjectedVolumeSourceDefaultMode` in `k8s.io/api/core/v1/types.go`).
pub const DEFAULT_VOLUME_MODE: i64 = 0o644;
/// Probe defaults (`SetDefaults_Probe` in `pkg/apis/core/v1/defaults.go`).
pub const DEFAULT_PROBE_TIMEOUT_SECONDS: i64 = 1;
pub const DEFAULT_PROBE_PERIOD_SECONDS: i64 = 10;
pub const DEFAULT_PROBE_SUCCESS_THRESHOLD: i64 = 1;
pub const DEFAULT_PROBE_FAILURE_THRESHOLD: i64 = 3;
/// Seconds a Pod tolerates a not-ready or unreachable node (`--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds` of the `DefaultTolerationSeconds` admission plugin,
/// `plugin/pkg/admission/defaulttolerationseconds/admission.go`).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
/// Taint keys the default tolerations cover (`TaintNodeNotReady`, `TaintNodeUnreachable` in
/// `k8s.io/api/core/v1/well_known_taints.go`).
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The service account a Pod runs as when it names none (`DefaultServiceAccountName` in
/// `plugin/pkg/admission/serviceaccount/admission.go`).
pub const DEFAULT_SERVICE_ACCOUNT_NAME: &str = "default";
/// Label the apiserver puts on every namespace (`LabelMetadataName` in `k8s.io/api/core/v1/well_known_labels.go`).
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";
/// The finalizer every new namespace gets (`FinalizerKubernetes` in `k8s.io/api/core/v1/types.go`).
pub const FINALIZER_KUBERNETES: &str = "kubernetes";
/// Priorities of the two built-in priority classes (`SystemCriticalPriority` in `pkg/apis/scheduling/types.go`).
const SYSTEM_CLUSTER_CRITICAL_PRIORITY: i64 = 2_000_000_000;
const SYSTEM_NODE_CRITICAL_PRIORITY: i64 = 2_000_001_000;

/// Applies Kubernetes' defaults for `kind` to a freshly decoded object (before validation).
///
/// Create-only strategy steps (Pod `status.phase`/`qosClass`, the namespace finalizer) only fill what is absent, so
/// calling this again on an updated object does not undo later changes.
pub fn default_object(kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match kind {
        "Pod" => default_pod(obj),
        "Namespace" => default_namespace(obj),
        "Secret" => default_secret(obj),
        "Node" => default_node(obj),
        _ => {}
    }
}

/// The Pod's QoS class computed from its spec (`ComputePodQOS` in `pkg/apis/core/helper/qos/qos.go`): cpu and
/// memory only, over regular and init containers, or from pod-level `spec.resources` when that is set.
/// Expects a defaulted Pod (requests already copied from limits).
pub fn qos_class(pod: &Value) -> &'static str {
    let spec = &pod["spec"];
    let mut resources: Vec<&Value> = Vec::new();
    if spec.get("resources").is_some_and(|r| r.is_object()) {
        resources.push(&spec["resources"]);
    } else {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec[list].as_array() {
                resources.extend(cs.iter().map(|c| &c["resources"]));
            }
        }
    }
    let mut requests: Vec<(&str, Quantity)> = Vec::new();
    let mut limits: Vec<(&str, Quantity)> = Vec::new();
    let mut guaranteed = true;
    let accumulate = |acc: &mut Vec<(&'static str, Quantity)>, name: &'static str, q: Quantity| match acc
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some((_, sum)) => *sum = sum.add(&q),
        None => acc.push((name, q)),
    };
    for r in resources {
        for name in ["cpu", "memory"] {
            if let Some(q) = positive_quantity(&r["requests"][name]) {
                accumulate(&mut requests, name, q);
            }
        }
        let mut found = 0;
        for name in ["cpu", "memory"] {
            if let Some(q) = positive_quantity(&r["limits"][name]) {
                found += 1;
                accumulate(&mut limits, name, q);
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        guaranteed = requests
            .iter()
            .all(|(n, req)| limits.iter().any(|(m, lim)| m == n && lim == req));
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A quantity greater than zero, or `None` (absent, unparsable, zero or negative).
fn positive_quantity(v: &Value) -> Option<Quantity> {
    let q = Quantity::parse(v.as_str()?).ok()?;
    (q.sign() > 0).then_some(q)
}

/// The object map at `obj[key]`, created empty when absent or null.
fn child<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = obj.entry(key.to_string()).or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// Sets `obj[key] = value` when the key is absent, null or an empty string (Go's zero value).
fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let missing = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if missing {
        obj.insert(key.to_string(), value);
    }
}

/// Sets a numeric field when absent or zero (Go's zero value, as `SetDefaults_Probe` checks it).
fn set_default_nonzero(obj: &mut Map<String, Value>, key: &str, value: i64) {
    let missing = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(v) => v.as_i64() == Some(0),
    };
    if missing {
        obj.insert(key.to_string(), json!(value));
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn default_pod(obj: &mut Value) {
    let Some(pod) = obj.as_object_mut() else {
        return;
    };
    let Some(spec) = child(pod, "spec") else {
        return;
    };
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool).unwrap_or(false);

    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                if list != "ephemeralContainers" {
                    default_requests_from_limits(c);
                    if host_network {
                        default_host_network_ports(c);
                    }
                }
                default_container(c);
            }
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(default_volume);
    }
    for key in ["overhead"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_object_mut) {
            canonicalize_resource_list(list);
        }
    }
    if let Some(r) = spec.get_mut("resources").and_then(Value::as_object_mut) {
        canonicalize_requirements(r);
    }

    // SetDefaults_PodSpec and SetDefaults_Pod.
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS),
    );
    set_default(spec, "schedulerName", json!(DEFAULT_SCHEDULER_NAME));
    set_default(spec, "enableServiceLinks", json!(true));

    // `serviceAccount` is the deprecated alias of `serviceAccountName`: the new field wins, the old one mirrors it.
    if str_field(spec, "serviceAccountName").is_empty() {
        let alias = str_field(spec, "serviceAccount").to_string();
        let name = if alias.is_empty() {
            DEFAULT_SERVICE_ACCOUNT_NAME.to_string()
        } else {
            alias
        };
        spec.insert("serviceAccountName".into(), json!(name));
    }
    let sa = spec.get("serviceAccountName").cloned().unwrap_or(Value::Null);
    spec.insert("serviceAccount".into(), sa);

    // Priority admission: the built-in classes, else the global default of 0.
    if spec.get("priority").is_none_or(Value::is_null) {
        let priority = match str_field(spec, "priorityClassName") {
            "system-node-critical" => SYSTEM_NODE_CRITICAL_PRIORITY,
            "system-cluster-critical" => SYSTEM_CLUSTER_CRITICAL_PRIORITY,
            _ => 0,
        };
        spec.insert("priority".into(), json!(priority));
    }
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));

    default_tolerations(spec);

    let qos = qos_class(obj);
    let Some(pod) = obj.as_object_mut() else {
        return;
    };
    if let Some(status) = child(pod, "status") {
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!(qos));
    }
}

/// `DefaultTolerationSeconds` admission: tolerate a not-ready and an unreachable node for 300 s, unless the Pod
/// already tolerates that taint with `NoExecute` (or with any effect, or any key).
fn default_tolerations(spec: &mut Map<String, Value>) {
    let existing: Vec<(String, String)> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(Value::as_object)
                .map(|t| (str_field(t, "key").to_string(), str_field(t, "effect").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let tolerates = |taint: &str| {
        existing
            .iter()
            .any(|(k, e)| (k == taint || k.is_empty()) && (e == "NoExecute" || e.is_empty()))
    };
    let mut added = Vec::new();
    for taint in [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE] {
        if !tolerates(taint) {
            added.push(json!({
                "key": taint, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
    if added.is_empty() {
        return;
    }
    let slot = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    if let Some(list) = slot.as_array_mut() {
        list.extend(added);
    }
}

/// `SetDefaults_Pod`: a resource with a limit but no request gets the limit as its request.
fn default_requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(resources, "requests") else {
        return;
    };
    for (name, value) in limits {
        requests.entry(name).or_insert(value);
    }
}

/// With `hostNetwork`, a container port's `hostPort` defaults to its `containerPort` (`defaultHostNetworkPorts`).
fn default_host_network_ports(c: &mut Map<String, Value>) {
    let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
        if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
            if let Some(cp) = p.get("containerPort").cloned() {
                p.insert("hostPort".into(), cp);
            }
        }
    }
}

/// `SetDefaults_Container` and the defaults of everything a container holds.
fn default_container(c: &mut Map<String, Value>) {
    if str_field(c, "imagePullPolicy").is_empty() {
        let policy = image_pull_policy_for(str_field(c, "image"));
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    set_default(c, "terminationMessagePath", json!(DEFAULT_TERMINATION_MESSAGE_PATH));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) {
        canonicalize_requirements(r);
    }
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(field_ref) = e
                .get_mut("valueFrom")
                .and_then(|v| v.get_mut("fieldRef"))
                .and_then(Value::as_object_mut)
            {
                set_default(field_ref, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set_default_nonzero(p, "timeoutSeconds", DEFAULT_PROBE_TIMEOUT_SECONDS);
            set_default_nonzero(p, "periodSeconds", DEFAULT_PROBE_PERIOD_SECONDS);
            set_default_nonzero(p, "successThreshold", DEFAULT_PROBE_SUCCESS_THRESHOLD);
            set_default_nonzero(p, "failureThreshold", DEFAULT_PROBE_FAILURE_THRESHOLD);
            default_http_get(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                default_http_get(h);
            }
        }
    }
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme `HTTP`.
fn default_http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "path", json!("/"));
        set_default(h, "scheme", json!("HTTP"));
    }
}

/// `Always` for images tagged `latest` or not tagged at all, else `IfNotPresent` (`SetDefaults_Container`, which
/// looks only at the tag: a digest without a tag is `IfNotPresent`).
pub fn image_pull_policy_for(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Resource lists are stored rounded up to milli precision and in canonical form (`SetDefaults_ResourceList`).
fn canonicalize_resource_list(list: &mut Map<String, Value>) {
    for value in list.values_mut() {
        let Some(text) = value.as_str() else { continue };
        if let Ok(mut q) = Quantity::parse(text) {
            q.round_up(-3);
            *value = json!(q.to_string());
        }
    }
}

fn canonicalize_requirements(r: &mut Map<String, Value>) {
    for key in ["limits", "requests"] {
        if let Some(list) = r.get_mut(key).and_then(Value::as_object_mut) {
            canonicalize_resource_list(list);
        }
    }
}

/// Volume source keys of `v1.VolumeSource`; a volume with none of them becomes an `emptyDir` (`SetDefaults_Volume`).
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|k| v.get(*k).is_some_and(|s| !s.is_null())) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(items) = v
        .get_mut("downwardAPI")
        .and_then(|d| d.get_mut("items"))
        .and_then(Value::as_array_mut)
    {
        default_downward_items(items);
    }
    if let Some(sources) = v
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
    {
        for s in sources.iter_mut() {
            if let Some(items) = s
                .get_mut("downwardAPI")
                .and_then(|d| d.get_mut("items"))
                .and_then(Value::as_array_mut)
            {
                default_downward_items(items);
            }
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        if h.get("type").is_none_or(Value::is_null) {
            h.insert("type".into(), json!(""));
        }
    }
    if let Some(e) = v.get_mut("emptyDir").and_then(Value::as_object_mut) {
        if let Some(limit) = e.get_mut("sizeLimit") {
            if let Some(q) = limit.as_str().and_then(|s| Quantity::parse(s).ok()) {
                *limit = json!(q.to_string());
            }
        }
    }
}

fn default_downward_items(items: &mut [Value]) {
    for item in items.iter_mut() {
        if let Some(f) = item.get_mut("fieldRef").and_then(Value::as_object_mut) {
            set_default(f, "apiVersion", json!("v1"));
        }
    }
}

/// `SetDefaults_Namespace` (the name label), `SetDefaults_NamespaceStatus` (phase `Active`) and the create strategy's
/// `kubernetes` finalizer (added only when `spec.finalizers` is absent, so the finalize step can empty it).
fn default_namespace(obj: &mut Value) {
    let Some(ns) = obj.as_object_mut() else {
        return;
    };
    let name = ns
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(labels) = child(ns, "metadata").and_then(|m| child(m, "labels")) {
            labels.insert(LABEL_METADATA_NAME.into(), json!(name));
        }
    }
    if let Some(spec) = child(ns, "spec") {
        if spec.get("finalizers").is_none_or(Value::is_null) {
            spec.insert("finalizers".into(), json!([FINALIZER_KUBERNETES]));
        }
    }
    if let Some(status) = child(ns, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

/// `SetDefaults_Secret` (type `Opaque`) and the v1 conversion that folds `stringData` into `data`.
fn default_secret(obj: &mut Value) {
    let Some(secret) = obj.as_object_mut() else {
        return;
    };
    set_default(secret, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = secret.remove("stringData") else {
        return;
    };
    if let Some(data) = child(secret, "data") {
        for (key, value) in string_data {
            if let Some(text) = value.as_str() {
                data.insert(key, json!(base64_encode(text.as_bytes())));
            }
        }
    }
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity; both stored canonical.
fn default_node(obj: &mut Value) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null) {
        if let Some(capacity) = status.get("capacity").cloned() {
            status.insert("allocatable".into(), capacity);
        }
    }
    for key in ["capacity", "allocatable"] {
        if let Some(list) = status.get_mut(key).and_then(Value::as_object_mut) {
            canonicalize_resource_list(list);
        }
    }
}

/// Standard base64 with padding, as Go's `[]byte` fields are written in JSON.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(kind: &str, mut v: Value) -> Value {
        default_object(kind, &mut v);
        v
    }

    #[test]
    fn minimal_pod_gets_kubernetes_defaults() {
        let pod = defaulted(
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
                   "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}),
        );
        let expected = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "serviceAccount": "default",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [
                    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
                ]
            },
            "status": {"phase": "Pending", "qosClass": "BestEffort"}
        });
        assert_eq!(pod, expected);
    }

    #[test]
    fn user_values_are_kept() {
        let pod = defaulted(
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "dnsPolicy": "Default",
                "schedulerName": "mine", "securityContext": {"runAsUser": 1000}, "enableServiceLinks": false,
                "serviceAccountName": "builder", "priority": 7, "preemptionPolicy": "Never",
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
                "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                                "terminationMessagePolicy": "FallbackToLogsOnError", "extra": {"kept": true}}]}}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["schedulerName"], "mine");
        assert_eq!(spec["securityContext"], json!({"runAsUser": 1000}));
        assert_eq!(spec["enableServiceLinks"], false);
        assert_eq!(spec["serviceAccountName"], "builder");
        assert_eq!(spec["serviceAccount"], "builder");
        assert_eq!(spec["priority"], 7);
        assert_eq!(spec["preemptionPolicy"], "Never");
        // Only the unreachable toleration is added.
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(spec["tolerations"][1]["key"], "node.kubernetes.io/unreachable");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Never");
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(c["extra"], json!({"kept": true}));
    }

    #[test]
    fn wildcard_toleration_suppresses_defaults() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {"tolerations": [{"operator": "Exists"}], "containers": []}}),
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    }

    #[test]
    fn image_pull_policy_by_tag() {
        assert_eq!(image_pull_policy_for("nginx"), "Always");
        assert_eq!(image_pull_policy_for("nginx:latest"), "Always");
        assert_eq!(image_pull_policy_for("registry:5000/team/app"), "Always");
        assert_eq!(image_pull_policy_for("registry:5000/team/app:v1"), "IfNotPresent");
        assert_eq!(image_pull_policy_for("nginx:1.25"), "IfNotPresent");
        assert_eq!(image_pull_policy_for("nginx@sha256:abcd"), "IfNotPresent");
        assert_eq!(image_pull_policy_for("nginx:latest@sha256:abcd"), "Always");
    }

    #[test]
    fn init_containers_probes_env_and_lifecycle() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {
                "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "containers": [{"name": "c", "image": "app:latest",
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "livenessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 5},
                    "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready"}, "timeoutSeconds": 0},
                    "startupProbe": {"exec": {"command": ["true"]}},
                    "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}]}}),
        );
        let init = &pod["spec"]["initContainers"][0];
        assert_eq!(init["imagePullPolicy"], "IfNotPresent");
        assert_eq!(init["terminationMessagePath"], "/dev/termination-log");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "periodSeconds": 5,
                   "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(c["readinessProbe"]["timeoutSeconds"], 1);
        assert_eq!(c["startupProbe"]["failureThreshold"], 3);
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
    }

    #[test]
    fn volumes_defaults() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {"containers": [], "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "bare"},
                {"name": "host", "hostPath": {"path": "/tmp"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}},
                {"name": "dapi", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}
            ]}}),
        );
        let v = &pod["spec"]["volumes"];
        assert_eq!(v[0]["configMap"], json!({"name": "c", "defaultMode": 420}));
        assert_eq!(v[1]["secret"], json!({"secretName": "s", "defaultMode": 256}));
        assert_eq!(v[2], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(v[3], json!({"name": "bare", "emptyDir": {}}));
        assert_eq!(v[4]["hostPath"], json!({"path": "/tmp", "type": ""}));
        assert_eq!(v[5]["emptyDir"]["sizeLimit"], "1Gi");
        assert_eq!(v[6]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(v[6]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn requests_default_to_limits_and_qos() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}}}]}}),
        );
        let r = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(r["requests"], json!({"cpu": "500m", "memory": "128Mi"}));
        assert_eq!(r["limits"], json!({"cpu": "500m", "memory": "128Mi"}));
        assert_eq!(pod["status"]["qosClass"], "Guaranteed");

        let burstable = defaulted(
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "1Gi"}}}]}}),
        );
        assert_eq!(
            burstable["spec"]["containers"][0]["resources"]["requests"]["memory"],
            "1Gi"
        );
        assert_eq!(burstable["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn qos_classes() {
        let pod = |containers: Value| json!({"spec": {"containers": containers}});
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!([{"resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                 "limits": {"cpu": "1000m", "memory": "1024Mi"}}}]))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!([{"resources": {"requests": {"memory": "1Gi"}}}]))),
            "Burstable"
        );
        // A container without limits makes the pod Burstable even if another is fully specified.
        assert_eq!(
            qos_class(&pod(json!([
                {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                {"resources": {}}
            ]))),
            "Burstable"
        );
        // Zero requests do not count; other resources are ignored.
        assert_eq!(
            qos_class(&pod(
                json!([{"resources": {"requests": {"cpu": "0", "ephemeral-storage": "1Gi"}}}])
            )),
            "BestEffort"
        );
        // Pod-level resources decide alone.
        let pl = json!({"spec": {"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                               "requests": {"cpu": "1", "memory": "1Gi"}},
                                 "containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&pl), "Guaranteed");
    }

    #[test]
    fn existing_status_is_kept() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {"containers": []}, "status": {"phase": "Running", "qosClass": "Burstable"}}),
        );
        assert_eq!(pod["status"], json!({"phase": "Running", "qosClass": "Burstable"}));
    }

    #[test]
    fn host_network_copies_container_port() {
        let pod = defaulted(
            "Pod",
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "i",
                "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80, "hostPort": 8080}]}]}}),
        );
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert_eq!(
            ports[0],
            json!({"containerPort": 53, "hostPort": 53, "protocol": "UDP"})
        );
        assert_eq!(ports[1]["hostPort"], 8080);
    }

    #[test]
    fn deprecated_service_account_alias() {
        let pod = defaulted("Pod", json!({"spec": {"serviceAccount": "old", "containers": []}}));
        assert_eq!(pod["spec"]["serviceAccountName"], "old");
        assert_eq!(pod["spec"]["serviceAccount"], "old");
        let crit = defaulted(
            "Pod",
            json!({"spec": {"priorityClassName": "system-node-critical", "containers": []}}),
        );
        assert_eq!(crit["spec"]["priority"], 2_000_001_000);
    }

    #[test]
    fn namespace_defaults() {
        let ns = defaulted(
            "Namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}),
        );
        assert_eq!(
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        // The label is forced to the name; an emptied finalizer list stays empty.
        let ns = defaulted(
            "Namespace",
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "x", "team": "a"}},
                   "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "dev", "team": "a"})
        );
        assert_eq!(ns["spec"]["finalizers"], json!([]));
        assert_eq!(ns["status"]["phase"], "Terminating");
    }

    #[test]
    fn secret_defaults() {
        let s = defaulted(
            "Secret",
            json!({"metadata": {"name": "s"}, "stringData": {"user": "admin", "k": "ab"}}),
        );
        assert_eq!(
            s,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"user": "YWRtaW4=", "k": "YWI="}})
        );
        let tls = defaulted("Secret", json!({"type": "kubernetes.io/tls"}));
        assert_eq!(tls["type"], "kubernetes.io/tls");
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_encode(b"a"), "YQ==");
    }

    #[test]
    fn other_kinds_untouched_and_node_allocatable() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "b"}});
        assert_eq!(defaulted("ConfigMap", cm.clone()), cm);
        let ev = json!({"metadata": {"name": "e"}, "reason": "Pulled"});
        assert_eq!(defaulted("Event", ev.clone()), ev);
        let node = defaulted(
            "Node",
            json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2", "memory": "2048Mi"}}}),
        );
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "2", "memory": "2Gi"}));
        assert_eq!(
            defaulted("Node", json!({"metadata": {"name": "n"}})),
            json!({"metadata": {"name": "n"}})
        );
    }
}
