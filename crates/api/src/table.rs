//! Server-side Table conversion for `kubectl get`: the `meta.k8s.io/v1` column definitions and row cells that
//! kube-apiserver's printers (`pkg/printers/internalversion/printers.go`) produce for each resource Peapod serves,
//! and the default convertor (`Name`, `Created At`) for anything else.
//!
//! This module owns what kubectl shows in its columns: a pod's STATUS/READY/RESTARTS (`printPod`, also exported as
//! [`summarize_pod`] / [`pod_status_text`] for the CLI), a node's STATUS and ROLES, an event's LAST SEEN/OBJECT/SOURCE.
//! It reads the stored JSON leniently, as Kubernetes' zero values would: a missing field gives an empty string,
//! `0`, `<none>` or `<unknown>`, never a panic or an error. Cells always include the priority-1 (`-o wide`) columns,
//! as the apiserver's convertor always runs wide; kubectl hides them. Pure: `now` is a parameter.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::duration::{is_go_zero_time, translate_timestamp_since};
use crate::k8s::api::core::v1::Pod;

/// Field documentation served as column descriptions, exactly as Kubernetes 1.32 serves it (the `SwaggerDoc()` of
/// the Go types, `k8s.io/api` and `k8s.io/apimachinery` at v0.32).
mod doc {
    pub const NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although \
        some resources may allow a client to request the generation of an appropriate name automatically. Name is \
        primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: \
        https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this \
        object was created. It is not guaranteed to be set in happens-before order across separate operations. \
        Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. \
        Read-only. Null for lists. More info: \
        https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

    pub const POD_READY: &str = "The aggregate readiness state of this pod for accepting traffic.";
    pub const POD_STATUS: &str = "The aggregate status of the containers in this pod.";
    pub const POD_RESTARTS: &str = "The number of times the containers in this pod have been restarted and when the \
        last container in this pod has restarted.";
    pub const POD_IP: &str =
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
    pub const POD_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a \
        candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for \
        this node becomes responsible for the lifecycle of this pod. This field should not be used to express a \
        desire for the pod to be scheduled on a specific node. \
        https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
    pub const POD_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on \
        the node, but it cannot be scheduled right away as preemption victims receive their graceful termination \
        periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to \
        place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the \
        resources on this node to a higher priority pod that is created after preemption. As a result, this field \
        may be different than PodSpec.nodeName when the pod is scheduled.";
    pub const POD_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A \
        pod is ready when all its containers are ready AND all conditions specified in the readiness gates have \
        status equal to \"True\" More info: \
        https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";

    pub const NODE_STATUS: &str = "The status of the node";
    pub const NODE_ROLES: &str = "The roles of the node";
    pub const NODE_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
    pub const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if \
        available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is \
        declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it \
        is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. \
        Consumers should assume that addresses can change during the lifetime of a Node. However, there are some \
        exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or \
        consumers of the downward API (status.hostIP).";
    pub const NODE_OS_IMAGE: &str =
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
    pub const NODE_KERNEL_VERSION: &str =
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
    pub const NODE_CONTAINER_RUNTIME: &str =
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";

    pub const EVENT_LAST_TIMESTAMP: &str = "The time at which the most recent occurrence of this event was recorded.";
    pub const EVENT_TYPE: &str = "Type of this event (Normal, Warning), new types could be added in the future";
    pub const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for \
        the transition into the object's current status.";
    pub const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
    pub const EVENT_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this \
        string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. \
        For example, if the object reference is to a container within a pod, this would take on a value like: \
        \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or \
        if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax \
        is chosen only to have some well-defined way of referencing a part of an object.";
    pub const EVENT_SOURCE: &str =
        "The component reporting this event. Should be a short machine understandable string.";
    pub const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
    pub const EVENT_FIRST_TIMESTAMP: &str =
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
    pub const EVENT_COUNT: &str = "The number of times this event has occurred.";

    pub const NAMESPACE_STATUS: &str = "The status of the namespace";

    pub const CONFIGMAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric \
        characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys \
        stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation \
        process.";
    pub const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: \
        https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
    pub const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, \
        '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the \
        arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
    pub const SERVICE_ACCOUNT_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods \
        running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service \
        account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \
        \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces \
        to isolate access to mounted secrets. This field should not be used to find auto-generated service account \
        token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, \
        or service account token secrets can be manually created. More info: \
        https://kubernetes.io/docs/concepts/configuration/secret";
    pub const LEASE_HOLDER_IDENTITY: &str = "holderIdentity contains the identity of the holder of a current lease. \
        If Coordinated Leader Election is used, the holder identity must be equal to the elected \
        LeaseCandidate.metadata.name field.";
}

/// One `meta.k8s.io/v1` TableColumnDefinition.
struct Column {
    name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `date`, ….
    kind: &'static str,
    /// OpenAPI format hint: `name` for the column kubectl treats as the object name, else empty.
    format: &'static str,
    description: &'static str,
    /// 0 for default columns, 1 for those kubectl shows only with `-o wide`.
    priority: u8,
}

/// A default-priority string column.
const fn text(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// A wide-only (priority 1) string column.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 1,
    }
}

/// The object-name column every printer starts with.
const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: doc::NAME,
    priority: 0,
};
/// The AGE column, computed from `metadata.creationTimestamp`.
const AGE: Column = text("Age", doc::CREATION_TIMESTAMP);

const POD_COLUMNS: &[Column] = &[
    NAME,
    text("Ready", doc::POD_READY),
    text("Status", doc::POD_STATUS),
    text("Restarts", doc::POD_RESTARTS),
    AGE,
    wide("IP", doc::POD_IP),
    wide("Node", doc::POD_NODE_NAME),
    wide("Nominated Node", doc::POD_NOMINATED_NODE_NAME),
    wide("Readiness Gates", doc::POD_READINESS_GATES),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    text("Status", doc::NODE_STATUS),
    text("Roles", doc::NODE_ROLES),
    AGE,
    text("Version", doc::NODE_KUBELET_VERSION),
    wide("Internal-IP", doc::NODE_ADDRESSES),
    wide("External-IP", doc::NODE_ADDRESSES),
    wide("OS-Image", doc::NODE_OS_IMAGE),
    wide("Kernel-Version", doc::NODE_KERNEL_VERSION),
    wide("Container-Runtime", doc::NODE_CONTAINER_RUNTIME),
];

const NAMESPACE_COLUMNS: &[Column] = &[NAME, text("Status", doc::NAMESPACE_STATUS), AGE];

/// Events put the name last and wide; the COUNT column is declared `string` though its cells are integers, as in
/// Kubernetes.
const EVENT_COLUMNS: &[Column] = &[
    text("Last Seen", doc::EVENT_LAST_TIMESTAMP),
    text("Type", doc::EVENT_TYPE),
    text("Reason", doc::EVENT_REASON),
    text("Object", doc::EVENT_INVOLVED_OBJECT),
    wide("Subobject", doc::EVENT_FIELD_PATH),
    wide("Source", doc::EVENT_SOURCE),
    text("Message", doc::EVENT_MESSAGE),
    wide("First Seen", doc::EVENT_FIRST_TIMESTAMP),
    wide("Count", doc::EVENT_COUNT),
    Column { priority: 1, ..NAME },
];

const CONFIGMAP_COLUMNS: &[Column] = &[NAME, text("Data", doc::CONFIGMAP_DATA), AGE];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    text("Type", doc::SECRET_TYPE),
    text("Data", doc::SECRET_DATA),
    AGE,
];

/// Kubernetes ≤ 1.34 prints the SECRETS count (removed upstream in 1.35, kubernetes#117160); Peapod serves 1.32.
const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[NAME, text("Secrets", doc::SERVICE_ACCOUNT_SECRETS), AGE];

const LEASE_COLUMNS: &[Column] = &[NAME, text("Holder", doc::LEASE_HOLDER_IDENTITY), AGE];

/// The apiserver's default table convertor (`k8s.io/apiserver/pkg/registry/rest/table.go`), used for resources
/// without a printer: the name and the creation time as an RFC 3339 `date` cell.
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: doc::CREATION_TIMESTAMP,
        priority: 0,
    },
];

/// Which printer renders a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Node,
    Namespace,
    /// Core `v1` events (`involvedObject`, `message`, …).
    CoreEvent,
    /// `events.k8s.io/v1` events (`regarding`, `note`, `deprecated*`, …), printed by the same printer.
    EventsV1Event,
    ConfigMap,
    Secret,
    ServiceAccount,
    Lease,
    Default,
}

impl Printer {
    fn of(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "pods") => Self::Pod,
            ("", "nodes") => Self::Node,
            ("", "namespaces") => Self::Namespace,
            ("", "events") => Self::CoreEvent,
            ("events.k8s.io", "events") => Self::EventsV1Event,
            ("", "configmaps") => Self::ConfigMap,
            ("", "secrets") => Self::Secret,
            ("", "serviceaccounts") => Self::ServiceAccount,
            ("coordination.k8s.io", "leases") => Self::Lease,
            _ => Self::Default,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Self::Pod => POD_COLUMNS,
            Self::Node => NODE_COLUMNS,
            Self::Namespace => NAMESPACE_COLUMNS,
            Self::CoreEvent | Self::EventsV1Event => EVENT_COLUMNS,
            Self::ConfigMap => CONFIGMAP_COLUMNS,
            Self::Secret => SECRET_COLUMNS,
            Self::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
            Self::Lease => LEASE_COLUMNS,
            Self::Default => DEFAULT_COLUMNS,
        }
    }
}

/// Column definitions (`meta.k8s.io/v1` TableColumnDefinition JSON) for a resource (by group and plural).
pub fn columns(group: &str, plural: &str) -> Vec<Value> {
    Printer::of(group, plural)
        .columns()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// The cells of one row for `obj`, every column including priority-1 ones, at time `now`.
pub fn cells(group: &str, plural: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match Printer::of(group, plural) {
        Printer::Pod => pod_cells(obj, now),
        Printer::Node => node_cells(obj, now),
        Printer::Namespace => {
            vec![
                name_cell(obj),
                str_at(obj, &["status", "phase"]).into(),
                age_cell(obj, now),
            ]
        }
        Printer::CoreEvent => EventFacts::from_core(obj).cells(now),
        Printer::EventsV1Event => EventFacts::from_events_v1(obj).cells(now),
        Printer::ConfigMap => {
            let data = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
            vec![name_cell(obj), data.into(), age_cell(obj, now)]
        }
        Printer::Secret => {
            vec![
                name_cell(obj),
                str_at(obj, &["type"]).into(),
                len_at(obj, &["data"]).into(),
                age_cell(obj, now),
            ]
        }
        Printer::ServiceAccount => vec![name_cell(obj), len_at(obj, &["secrets"]).into(), age_cell(obj, now)],
        Printer::Lease => vec![
            name_cell(obj),
            str_at(obj, &["spec", "holderIdentity"]).into(),
            age_cell(obj, now),
        ],
        Printer::Default => vec![name_cell(obj), created_at_cell(obj)],
    }
}

/// The row's `conditions` (`meta.k8s.io/v1` TableRowCondition JSON array), which only pods carry: a terminal pod's
/// row is marked `Completed` so that `kubectl get --watch` clients can tell finished rows apart.
pub fn row_conditions(group: &str, plural: &str, obj: &Value) -> Option<Value> {
    if Printer::of(group, plural) != Printer::Pod {
        return None;
    }
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

// ---------------------------------------------------------------------------------------------------------------
// Lenient JSON access: a missing or mistyped field reads as Go's zero value.

/// The value at `path` under `v`, if every step is an object holding the key.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

/// The string at `path`, or `""`.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, or 0.
fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

/// The boolean at `path`, or false.
fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The number of entries of the map or list at `path` (Go's `len`), or 0.
fn len_at(v: &Value, path: &[&str]) -> i64 {
    let len = match at(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// The RFC 3339 timestamp at `path`; `None` when absent, unparsable or Go's zero time (which `IsZero` reports unset).
fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let ts: Timestamp = str_at(v, path).parse().ok()?;
    (!is_go_zero_time(ts)).then_some(ts)
}

fn name_cell(obj: &Value) -> Value {
    str_at(obj, &["metadata", "name"]).into()
}

fn age_cell(obj: &Value, now: Timestamp) -> Value {
    translate_timestamp_since(time_at(obj, &["metadata", "creationTimestamp"]), now).into()
}

/// The default convertor's `Created At` cell: Go's `Time.UTC().Format(time.RFC3339)`, whole seconds, `Z` suffix;
/// an unset time formats as Go's zero time.
fn created_at_cell(obj: &Value) -> Value {
    match time_at(obj, &["metadata", "creationTimestamp"]) {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

/// `"<none>"` for an empty string, as the wide printers show unset fields.
fn or_none(s: &str) -> Value {
    if s.is_empty() { "<none>" } else { s }.into()
}

// ---------------------------------------------------------------------------------------------------------------
// Pods: printPod.

/// What `kubectl get pods` shows for one pod, before formatting: `printPod`'s READY, STATUS and RESTARTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// Ready regular containers plus ready started sidecars (counted only once initialisation is over).
    pub ready: usize,
    /// Regular containers plus restartable (sidecar) init containers.
    pub total: usize,
    /// The STATUS column: `Running`, `Init:0/1`, `CrashLoopBackOff`, `Completed`, `Terminating`, ….
    pub status: String,
    /// Restarts of the containers that count: init containers while initialising, else sidecars and regular ones.
    pub restarts: i64,
    /// The newest `lastState.terminated.finishedAt` among the counted containers.
    pub last_restart: Option<Timestamp>,
}

impl PodSummary {
    /// The READY column: `ready/total`.
    pub fn ready_text(&self) -> String {
        format!("{}/{}", self.ready, self.total)
    }

    /// The RESTARTS column at `now`: `0`, `3`, or `3 (5m ago)` when the last restart time is known.
    pub fn restarts_text(&self, now: Timestamp) -> String {
        match self.last_restart {
            Some(last) if self.restarts != 0 => {
                format!("{} ({} ago)", self.restarts, translate_timestamp_since(Some(last), now))
            }
            _ => self.restarts.to_string(),
        }
    }
}

/// A container's state (`state` or `lastState`), reduced to what the printer reads. Kubernetes allows at most one
/// of the three, but each is read independently, as Go's nil checks do.
struct StateFacts<'a> {
    /// `waiting.reason` when `waiting` is set (possibly empty).
    waiting: Option<&'a str>,
    running: bool,
    terminated: Option<Terminated<'a>>,
}

struct Terminated<'a> {
    reason: &'a str,
    exit_code: i64,
    signal: i64,
}

impl Terminated<'_> {
    /// The terminated container's reason, else `Signal:N` or `ExitCode:N`, with `prefix` (`Init:` or empty).
    fn describe(&self, prefix: &str) -> String {
        if !self.reason.is_empty() {
            format!("{prefix}{}", self.reason)
        } else if self.signal != 0 {
            format!("{prefix}Signal:{}", self.signal)
        } else {
            format!("{prefix}ExitCode:{}", self.exit_code)
        }
    }
}

/// A container status reduced to what `printPod` reads.
struct ContainerFacts<'a> {
    name: &'a str,
    restart_count: i64,
    started: bool,
    ready: bool,
    state: StateFacts<'a>,
    /// `lastState.terminated.finishedAt`.
    last_finished: Option<Timestamp>,
}

impl<'a> ContainerFacts<'a> {
    fn from_json(cs: &'a Value) -> Self {
        let terminated = at(cs, &["state", "terminated"])
            .filter(|t| t.is_object())
            .map(|t| Terminated {
                reason: str_at(t, &["reason"]),
                exit_code: int_at(t, &["exitCode"]),
                signal: int_at(t, &["signal"]),
            });
        ContainerFacts {
            name: str_at(cs, &["name"]),
            restart_count: int_at(cs, &["restartCount"]),
            started: bool_at(cs, &["started"]),
            ready: bool_at(cs, &["ready"]),
            state: StateFacts {
                waiting: at(cs, &["state", "waiting"])
                    .filter(|w| w.is_object())
                    .map(|w| str_at(w, &["reason"])),
                running: at(cs, &["state", "running"]).is_some_and(Value::is_object),
                terminated,
            },
            last_finished: time_at(cs, &["lastState", "terminated", "finishedAt"]),
        }
    }
}

/// Restart bookkeeping: a count and the newest termination time.
#[derive(Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, c: &ContainerFacts<'_>) {
        self.count += c.restart_count;
        if let Some(finished) = c.last_finished {
            if self.last.is_none_or(|last| last < finished) {
                self.last = Some(finished);
            }
        }
    }
}

/// Whether the pod has a condition of type `kind` with status `True`.
fn has_true_condition(conditions: &[Value], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// `printPod`'s READY, STATUS and RESTARTS for a pod given as JSON (as stored or served).
///
/// The algorithm is Kubernetes' (pod-behaviour.md §1.3), including the newer refinement (kubernetes#124766) that a
/// pod whose last-examined container `Completed` shows another container's error reason instead.
pub fn summarize_pod(pod: &Value) -> PodSummary {
    let phase = str_at(pod, &["status", "phase"]);
    let status_reason = str_at(pod, &["status", "reason"]);
    let conditions = arr_at(pod, &["status", "conditions"]);
    let init_specs = arr_at(pod, &["spec", "initContainers"]);

    let mut reason = if status_reason.is_empty() { phase } else { status_reason }.to_string();
    if conditions
        .iter()
        .any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    // Init containers by name (a later duplicate wins, as in Go's map); sidecars count toward the total.
    let mut sidecar_by_name: BTreeMap<&str, bool> = BTreeMap::new();
    let mut total = arr_at(pod, &["spec", "containers"]).len();
    for ic in init_specs {
        let sidecar = str_at(ic, &["restartPolicy"]) == "Always";
        sidecar_by_name.insert(str_at(ic, &["name"]), sidecar);
        if sidecar {
            total += 1;
        }
    }
    let is_sidecar = |name: &str| sidecar_by_name.get(name).copied().unwrap_or(false);

    let mut ready = 0;
    let mut all_restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    for (i, raw) in arr_at(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let c = ContainerFacts::from_json(raw);
        let sidecar = is_sidecar(c.name);
        all_restarts.add(&c);
        if sidecar {
            sidecar_restarts.add(&c);
        }
        match (&c.state.terminated, c.state.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            _ if sidecar && c.started => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => reason = t.describe("Init:"),
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => reason = format!("Init:{w}"),
            _ => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    let mut restarts = all_restarts;
    if !initializing || has_true_condition(conditions, "Initialized") {
        // Finished (non-sidecar) init containers' restarts no longer count.
        restarts = sidecar_restarts;
        let mut has_running = false;
        let mut error_reason = None;
        for raw in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            let c = ContainerFacts::from_json(raw);
            restarts.add(&c);
            match (c.state.waiting, &c.state.terminated) {
                (Some(w), _) if !w.is_empty() => reason = w.to_string(),
                (_, Some(t)) => {
                    reason = t.describe("");
                    if t.exit_code != 0 {
                        error_reason = Some(reason.clone());
                    }
                }
                _ if c.ready && c.state.running => {
                    has_running = true;
                    ready += 1;
                }
                _ => {}
            }
        }
        // A completed container next to a running one does not make the pod Completed.
        if reason == "Completed" {
            if has_running && has_true_condition(conditions, "Ready") {
                reason = "Running".to_string();
            } else if let Some(error) = error_reason {
                reason = error;
            } else if has_running {
                reason = "NotReady".to_string();
            }
        }
    }

    if at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null()) {
        if status_reason == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    PodSummary {
        ready,
        total,
        status: reason,
        restarts: restarts.count,
        last_restart: restarts.last,
    }
}

/// [`summarize_pod`] for a typed pod.
pub fn summarize_typed_pod(pod: &Pod) -> PodSummary {
    // Serialising a k8s-openapi type cannot fail (every map key is a string); Null would read as an empty pod.
    summarize_pod(&serde_json::to_value(pod).unwrap_or(Value::Null))
}

/// The STATUS column `kubectl get pods` shows for `pod`.
pub fn pod_status_text(pod: &Pod) -> String {
    summarize_typed_pod(pod).status
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let summary = summarize_pod(pod);

    // The apiserver converts v1 to its internal type before printing, and that conversion makes `podIP`
    // authoritative: it replaces `podIPs` when they disagree and fills it when `podIPs` is empty.
    let mut ip = str_at(pod, &["status", "podIP"]);
    if ip.is_empty() {
        ip = arr_at(pod, &["status", "podIPs"])
            .first()
            .map(|p| str_at(p, &["ip"]))
            .unwrap_or("");
    }

    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(pod, &["status", "conditions"]);
        let passed = gates
            .iter()
            .filter(|gate| {
                let kind = str_at(gate, &["conditionType"]);
                // The first condition of the gate's type decides.
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == kind)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    vec![
        name_cell(pod),
        summary.ready_text().into(),
        summary.status.clone().into(),
        summary.restarts_text(now).into(),
        age_cell(pod, now),
        or_none(ip),
        or_none(str_at(pod, &["spec", "nodeName"])),
        or_none(str_at(pod, &["status", "nominatedNodeName"])),
        readiness_gates.into(),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Nodes: printNode.

/// Label prefix whose suffix names a node role (`node-role.kubernetes.io/control-plane`).
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// Older label whose value names a node role.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

/// The node's STATUS: `Ready`, `NotReady` or `Unknown` from its Ready condition, plus `SchedulingDisabled` when
/// cordoned, joined by commas.
fn node_status(node: &Value) -> String {
    // The last Ready condition wins, as Go's map of conditions keeps it.
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// The node's ROLES: sorted, de-duplicated, comma-joined; `<none>` when it has none.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == NODE_ROLE_LABEL && !value.is_empty() {
                roles.insert(value);
            }
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The first node address of `kind` (`InternalIP`, `ExternalIP`), or `<none>`.
fn node_address(node: &Value, kind: &str) -> Value {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]))
        .unwrap_or("<none>")
        .into()
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let info = |field: &str| -> Value {
        let s = str_at(node, &["status", "nodeInfo", field]);
        if s.is_empty() { "<unknown>" } else { s }.into()
    };
    vec![
        name_cell(node),
        node_status(node).into(),
        node_roles(node).into(),
        age_cell(node, now),
        str_at(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Events: printEvent, for both core/v1 and events.k8s.io/v1 shapes.

/// An event's printed fields in core/v1 terms (the apiserver prints both APIs from its internal core type).
struct EventFacts<'a> {
    name: &'a str,
    kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    type_: &'a str,
    reason: &'a str,
    message: &'a str,
    component: &'a str,
    host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    first_timestamp: Option<Timestamp>,
    last_timestamp: Option<Timestamp>,
    event_time: Option<Timestamp>,
    count: i64,
    /// `(series.count, series.lastObservedTime)` when the event is a series.
    series: Option<(i64, Option<Timestamp>)>,
}

impl<'a> EventFacts<'a> {
    fn series(obj: &Value) -> Option<(i64, Option<Timestamp>)> {
        at(obj, &["series"])
            .filter(|s| s.is_object())
            .map(|s| (int_at(s, &["count"]), time_at(s, &["lastObservedTime"])))
    }

    fn from_core(obj: &'a Value) -> Self {
        EventFacts {
            name: str_at(obj, &["metadata", "name"]),
            kind: str_at(obj, &["involvedObject", "kind"]),
            object_name: str_at(obj, &["involvedObject", "name"]),
            field_path: str_at(obj, &["involvedObject", "fieldPath"]),
            type_: str_at(obj, &["type"]),
            reason: str_at(obj, &["reason"]),
            message: str_at(obj, &["message"]),
            component: str_at(obj, &["source", "component"]),
            host: str_at(obj, &["source", "host"]),
            reporting_controller: str_at(obj, &["reportingComponent"]),
            reporting_instance: str_at(obj, &["reportingInstance"]),
            first_timestamp: time_at(obj, &["firstTimestamp"]),
            last_timestamp: time_at(obj, &["lastTimestamp"]),
            event_time: time_at(obj, &["eventTime"]),
            count: int_at(obj, &["count"]),
            series: Self::series(obj),
        }
    }

    /// The `events.k8s.io/v1` field names, mapped as Kubernetes' conversion to the core type maps them.
    fn from_events_v1(obj: &'a Value) -> Self {
        EventFacts {
            name: str_at(obj, &["metadata", "name"]),
            kind: str_at(obj, &["regarding", "kind"]),
            object_name: str_at(obj, &["regarding", "name"]),
            field_path: str_at(obj, &["regarding", "fieldPath"]),
            type_: str_at(obj, &["type"]),
            reason: str_at(obj, &["reason"]),
            message: str_at(obj, &["note"]),
            component: str_at(obj, &["deprecatedSource", "component"]),
            host: str_at(obj, &["deprecatedSource", "host"]),
            reporting_controller: str_at(obj, &["reportingController"]),
            reporting_instance: str_at(obj, &["reportingInstance"]),
            first_timestamp: time_at(obj, &["deprecatedFirstTimestamp"]),
            last_timestamp: time_at(obj, &["deprecatedLastTimestamp"]),
            event_time: time_at(obj, &["eventTime"]),
            count: int_at(obj, &["deprecatedCount"]),
            series: Self::series(obj),
        }
    }

    /// SOURCE: `component, host`, each falling back to the reporting controller/instance; no comma without a host.
    fn source(&self) -> String {
        let component = if self.component.is_empty() {
            self.reporting_controller
        } else {
            self.component
        };
        let host = if self.host.is_empty() {
            self.reporting_instance
        } else {
            self.host
        };
        if host.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {host}")
        }
    }

    /// OBJECT: `kind/name` with the kind lower-cased, or the kind alone when the name is empty.
    fn object(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.object_name.is_empty() {
            kind
        } else {
            format!("{kind}/{}", self.object_name)
        }
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let first_seen = translate_timestamp_since(self.first_timestamp.or(self.event_time), now);
        let mut last_seen = match self.last_timestamp {
            Some(last) => translate_timestamp_since(Some(last), now),
            None => first_seen.clone(),
        };
        let count = match self.series {
            Some((series_count, last_observed)) => {
                last_seen = translate_timestamp_since(last_observed, now);
                series_count
            }
            // Singleton events of the new API carry no count.
            None if self.count == 0 => 1,
            None => self.count,
        };
        vec![
            last_seen.into(),
            self.type_.into(),
            self.reason.into(),
            self.object().into(),
            self.field_path.into(),
            self.source().into(),
            self.message.trim().into(),
            first_seen.into(),
            count.into(),
            self.name.into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    /// Every resource with a printer, plus one served by the default convertor.
    const RESOURCES: &[(&str, &str)] = &[
        ("", "pods"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("coordination.k8s.io", "leases"),
        ("apps", "deployments"),
    ];

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    /// RFC 3339 text of `now - secs`.
    fn ago(secs: i64) -> String {
        (now() - SignedDuration::from_secs(secs)).to_string()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(20)},
            "spec": spec,
            "status": status,
        })
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "app", "image": "nginx"}]})
    }

    fn two_init_containers() -> Value {
        json!({
            "initContainers": [{"name": "init-a", "image": "busybox"}, {"name": "init-b", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx"}],
        })
    }

    fn waiting(name: &str, reason: &str) -> Value {
        json!({"name": name, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
               "state": {"waiting": {"reason": reason}}})
    }

    fn running(name: &str, ready: bool) -> Value {
        json!({"name": name, "ready": ready, "started": true, "restartCount": 0, "image": "i", "imageID": "",
               "state": {"running": {"startedAt": ago(10)}}})
    }

    fn terminated(name: &str, reason: &str, exit_code: i64) -> Value {
        json!({"name": name, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
               "state": {"terminated": {"reason": reason, "exitCode": exit_code, "finishedAt": ago(5)}}})
    }

    fn status_of(pod: &Value) -> String {
        summarize_pod(pod).status
    }

    fn app_pod(phase: &str, statuses: Vec<Value>) -> Value {
        pod(one_container(), json!({"phase": phase, "containerStatuses": statuses}))
    }

    fn init_pod(init_statuses: Vec<Value>, statuses: Vec<Value>) -> Value {
        pod(
            two_init_containers(),
            json!({"phase": "Pending", "initContainerStatuses": init_statuses, "containerStatuses": statuses}),
        )
    }

    // --- STATUS: every value of pod-behaviour.md §1.3 -------------------------------------------------------

    #[test]
    fn status_pending_and_scheduling_gated() {
        assert_eq!(status_of(&pod(one_container(), json!({"phase": "Pending"}))), "Pending");
        let gated = pod(
            one_container(),
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(status_of(&gated), "SchedulingGated");
        let unschedulable = pod(
            one_container(),
            json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
        );
        assert_eq!(status_of(&unschedulable), "Pending");
    }

    #[test]
    fn status_init_progress() {
        let first = init_pod(
            vec![running("init-a", false), waiting("init-b", "PodInitializing")],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(status_of(&first), "Init:0/2");
        let second = init_pod(
            vec![terminated("init-a", "Completed", 0), running("init-b", false)],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(status_of(&second), "Init:1/2");
        // A waiting container without a reason is still "i/n".
        let no_reason = init_pod(vec![json!({"name": "init-a", "state": {"waiting": {}}})], vec![]);
        assert_eq!(status_of(&no_reason), "Init:0/2");
        // No state at all: also "i/n".
        let no_state = init_pod(vec![json!({"name": "init-a"})], vec![]);
        assert_eq!(status_of(&no_state), "Init:0/2");
    }

    #[test]
    fn status_init_waiting_reasons() {
        for reason in [
            "ErrImagePull",
            "ImagePullBackOff",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
        ] {
            let p = init_pod(vec![waiting("init-a", reason)], vec![waiting("app", "PodInitializing")]);
            assert_eq!(status_of(&p), format!("Init:{reason}"));
            assert_eq!(summarize_pod(&p).ready_text(), "0/1");
        }
    }

    #[test]
    fn status_init_failures() {
        let error = init_pod(vec![terminated("init-a", "Error", 1)], vec![]);
        assert_eq!(status_of(&error), "Init:Error");
        let oom = init_pod(vec![terminated("init-a", "OOMKilled", 137)], vec![]);
        assert_eq!(status_of(&oom), "Init:OOMKilled");
        let exit = init_pod(
            vec![json!({"name": "init-a", "state": {"terminated": {"exitCode": 3}}})],
            vec![],
        );
        assert_eq!(status_of(&exit), "Init:ExitCode:3");
        let signal = init_pod(
            vec![json!({"name": "init-a", "state": {"terminated": {"exitCode": 137, "signal": 9}}})],
            vec![],
        );
        assert_eq!(status_of(&signal), "Init:Signal:9");
        // The first unfinished init container decides; later ones are not looked at.
        let first_wins = init_pod(
            vec![terminated("init-a", "Completed", 0), terminated("init-b", "Error", 2)],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(status_of(&first_wins), "Init:Error");
    }

    #[test]
    fn status_pod_initializing_and_container_creating() {
        let initializing = init_pod(
            vec![
                terminated("init-a", "Completed", 0),
                terminated("init-b", "Completed", 0),
            ],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(status_of(&initializing), "PodInitializing");
        let creating = app_pod("Pending", vec![waiting("app", "ContainerCreating")]);
        assert_eq!(status_of(&creating), "ContainerCreating");
        assert_eq!(summarize_pod(&creating).ready_text(), "0/1");
    }

    #[test]
    fn status_running() {
        let p = app_pod("Running", vec![running("app", true)]);
        let s = summarize_pod(&p);
        assert_eq!(s.status, "Running");
        assert_eq!(s.ready_text(), "1/1");
        // Running but not ready: still Running, 0/1.
        let not_ready = app_pod("Running", vec![running("app", false)]);
        assert_eq!(status_of(&not_ready), "Running");
        assert_eq!(summarize_pod(&not_ready).ready_text(), "0/1");
    }

    #[test]
    fn status_terminated_reasons() {
        let completed = app_pod("Succeeded", vec![terminated("app", "Completed", 0)]);
        assert_eq!(status_of(&completed), "Completed");
        let error = app_pod("Failed", vec![terminated("app", "Error", 1)]);
        assert_eq!(status_of(&error), "Error");
        let oom = app_pod("Failed", vec![terminated("app", "OOMKilled", 137)]);
        assert_eq!(status_of(&oom), "OOMKilled");
        let unknown = app_pod("Failed", vec![terminated("app", "ContainerStatusUnknown", 137)]);
        assert_eq!(status_of(&unknown), "ContainerStatusUnknown");
        let signal = app_pod(
            "Failed",
            vec![json!({"name": "app", "state": {"terminated": {"exitCode": 0, "signal": 15}}})],
        );
        assert_eq!(status_of(&signal), "Signal:15");
        let exit = app_pod(
            "Failed",
            vec![json!({"name": "app", "state": {"terminated": {"exitCode": 2}}})],
        );
        assert_eq!(status_of(&exit), "ExitCode:2");
    }

    #[test]
    fn status_waiting_reasons_copied_verbatim() {
        for reason in [
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "CreateContainerConfigError",
            "RunContainerError",
            "ErrImageNeverPull",
            "InvalidImageName",
        ] {
            assert_eq!(status_of(&app_pod("Running", vec![waiting("app", reason)])), reason);
        }
        // A waiting container without a reason leaves the phase.
        let bare = app_pod("Running", vec![json!({"name": "app", "state": {"waiting": {}}})]);
        assert_eq!(status_of(&bare), "Running");
    }

    fn two_containers(statuses: Vec<Value>, ready_condition: &str) -> Value {
        pod(
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}),
            json!({"phase": "Running", "containerStatuses": statuses,
                   "conditions": [{"type": "Ready", "status": ready_condition}]}),
        )
    }

    #[test]
    fn status_completed_next_to_running() {
        // Statuses are sorted by name and walked in reverse: "b" first, then "a" decides.
        let not_ready = two_containers(vec![terminated("a", "Completed", 0), running("b", true)], "False");
        assert_eq!(status_of(&not_ready), "NotReady");
        assert_eq!(summarize_pod(&not_ready).ready_text(), "1/2");
        let ready = two_containers(vec![terminated("a", "Completed", 0), running("b", true)], "True");
        assert_eq!(status_of(&ready), "Running");
        // The other order: the running container is seen last and does not change the reason.
        let other = two_containers(vec![running("a", true), terminated("b", "Completed", 0)], "False");
        assert_eq!(status_of(&other), "NotReady");
    }

    #[test]
    fn status_error_reason_refinement() {
        // "a" Completed is examined last, but "b" failed: the pod shows the failure.
        let p = two_containers(
            vec![terminated("a", "Completed", 0), terminated("b", "Error", 1)],
            "False",
        );
        assert_eq!(status_of(&p), "Error");
        let oom = two_containers(
            vec![terminated("a", "Completed", 0), terminated("b", "OOMKilled", 137)],
            "False",
        );
        assert_eq!(status_of(&oom), "OOMKilled");
        // Running and ready still wins over an error.
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [terminated("a", "Completed", 0), running("b", true), terminated("c", "Error", 1)]}),
        );
        assert_eq!(status_of(&p), "Running");
        // Both completed: Completed.
        let both = two_containers(
            vec![terminated("a", "Completed", 0), terminated("b", "Completed", 0)],
            "False",
        );
        assert_eq!(status_of(&both), "Completed");
    }

    #[test]
    fn status_terminating_and_unknown() {
        let mut p = app_pod("Running", vec![running("app", true)]);
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status_of(&p), "Terminating");
        // A terminal pod being deleted keeps its status.
        let mut done = app_pod("Succeeded", vec![terminated("app", "Completed", 0)]);
        done["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status_of(&done), "Completed");
        let mut failed = app_pod("Failed", vec![terminated("app", "Error", 1)]);
        failed["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status_of(&failed), "Error");
        // NodeLost while deleting: Unknown.
        let mut lost = app_pod("Running", vec![running("app", true)]);
        lost["status"]["reason"] = json!("NodeLost");
        lost["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status_of(&lost), "Unknown");
        // Phase Unknown.
        assert_eq!(status_of(&pod(one_container(), json!({"phase": "Unknown"}))), "Unknown");
        // A null deletionTimestamp is no deletion.
        let mut null = app_pod("Running", vec![running("app", true)]);
        null["metadata"]["deletionTimestamp"] = Value::Null;
        assert_eq!(status_of(&null), "Running");
    }

    #[test]
    fn status_pod_reason() {
        let evicted = pod(one_container(), json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(status_of(&evicted), "Evicted");
        let deadline = pod(
            one_container(),
            json!({"phase": "Failed", "reason": "DeadlineExceeded"}),
        );
        assert_eq!(status_of(&deadline), "DeadlineExceeded");
        // A container status overrides it.
        let overridden = pod(
            one_container(),
            json!({"phase": "Failed", "reason": "Evicted", "containerStatuses": [terminated("app", "Error", 137)]}),
        );
        assert_eq!(status_of(&overridden), "Error");
    }

    // --- READY and RESTARTS ---------------------------------------------------------------------------------

    fn sidecar_pod(sidecar_status: Value, app_status: Value) -> Value {
        pod(
            json!({
                "initContainers": [
                    {"name": "setup", "image": "busybox"},
                    {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
                ],
                "containers": [{"name": "app", "image": "nginx"}],
            }),
            json!({
                "phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "setup", "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3600)}}},
                    sidecar_status,
                ],
                "containerStatuses": [app_status],
            }),
        )
    }

    #[test]
    fn ready_counts_sidecars() {
        let mut proxy = running("proxy", true);
        proxy["restartCount"] = json!(2);
        proxy["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": ago(300)}});
        let mut app = running("app", true);
        app["restartCount"] = json!(1);
        app["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": ago(600)}});
        let s = summarize_pod(&sidecar_pod(proxy, app));
        assert_eq!(s.status, "Running");
        assert_eq!(s.ready_text(), "2/2");
        // The regular init container's restart is dropped once initialised: 2 (sidecar) + 1 (app).
        assert_eq!(s.restarts, 3);
        assert_eq!(s.restarts_text(now()), "3 (5m ago)");

        // A started sidecar that is not ready: counted in the total only.
        let s = summarize_pod(&sidecar_pod(running("proxy", false), running("app", true)));
        assert_eq!(s.ready_text(), "1/2");
        assert_eq!(s.restarts_text(now()), "0");
    }

    #[test]
    fn sidecar_not_started_blocks_initialisation() {
        let mut proxy = running("proxy", false);
        proxy["started"] = json!(false);
        let p = pod(
            json!({
                "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}],
            }),
            json!({"phase": "Pending", "initContainerStatuses": [proxy],
                   "containerStatuses": [waiting("app", "PodInitializing")]}),
        );
        let s = summarize_pod(&p);
        assert_eq!(s.status, "Init:0/1");
        assert_eq!(s.ready_text(), "0/2");
    }

    #[test]
    fn restarts_while_initialising_count_init_containers() {
        let mut crashing = waiting("init-a", "CrashLoopBackOff");
        crashing["restartCount"] = json!(4);
        crashing["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(134)}});
        let p = init_pod(vec![crashing], vec![waiting("app", "PodInitializing")]);
        let s = summarize_pod(&p);
        assert_eq!(s.status, "Init:CrashLoopBackOff");
        assert_eq!(s.restarts_text(now()), "4 (2m14s ago)");
        assert_eq!(pod_cells(&p, now())[3], json!("4 (2m14s ago)"));
    }

    #[test]
    fn restarts_suffix() {
        let mut crashing = waiting("app", "CrashLoopBackOff");
        crashing["restartCount"] = json!(3);
        crashing["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}});
        let p = app_pod("Running", vec![crashing]);
        assert_eq!(status_of(&p), "CrashLoopBackOff");
        assert_eq!(cells("", "pods", &p, now())[3], json!("3 (5m ago)"));

        // The newest finish time among all counted containers.
        let mut a = running("a", true);
        a["restartCount"] = json!(1);
        a["lastState"] = json!({"terminated": {"finishedAt": ago(7200)}});
        let mut b = running("b", true);
        b["restartCount"] = json!(2);
        b["lastState"] = json!({"terminated": {"finishedAt": ago(90)}});
        assert_eq!(
            summarize_pod(&two_containers(vec![a, b], "True")).restarts_text(now()),
            "3 (90s ago)"
        );

        // Restarts without a recorded finish time: the bare count.
        let mut c = running("app", true);
        c["restartCount"] = json!(2);
        assert_eq!(cells("", "pods", &app_pod("Running", vec![c]), now())[3], json!("2"));
        // No restarts: "0" even with a last state.
        let mut d = running("app", true);
        d["lastState"] = json!({"terminated": {"finishedAt": ago(90)}});
        assert_eq!(cells("", "pods", &app_pod("Running", vec![d]), now())[3], json!("0"));
    }

    // --- Pod cells ------------------------------------------------------------------------------------------

    #[test]
    fn pod_row() {
        let mut p = app_pod("Running", vec![running("app", true)]);
        p["spec"]["nodeName"] = json!("peapod-node-1");
        p["status"]["podIPs"] = json!([{"ip": "10.88.0.7"}, {"ip": "fd00::7"}]);
        assert_eq!(
            cells("", "pods", &p, now()),
            vec![
                json!("web"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("20s"),
                json!("10.88.0.7"),
                json!("peapod-node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_ip_prefers_pod_ip() {
        let mut p = app_pod("Running", vec![]);
        p["status"]["podIP"] = json!("10.0.0.1");
        p["status"]["podIPs"] = json!([{"ip": "10.0.0.2"}]);
        assert_eq!(pod_cells(&p, now())[5], json!("10.0.0.1"));
        p["status"]["podIPs"] = json!([]);
        assert_eq!(pod_cells(&p, now())[5], json!("10.0.0.1"));
        p["status"]["podIP"] = json!("");
        assert_eq!(pod_cells(&p, now())[5], json!("<none>"));
    }

    #[test]
    fn pod_nominated_node_and_readiness_gates() {
        let mut p = pod(
            json!({"containers": [{"name": "app"}],
                   "readinessGates": [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"},
                                      {"conditionType": "example.com/missing"}]}),
            json!({"phase": "Pending", "nominatedNodeName": "node-2", "conditions": [
                {"type": "example.com/a", "status": "True"},
                {"type": "example.com/b", "status": "False"},
                {"type": "example.com/b", "status": "True"},
            ]}),
        );
        let row = pod_cells(&p, now());
        assert_eq!(row[6], json!("<none>"));
        assert_eq!(row[7], json!("node-2"));
        // Only the first condition of a type counts.
        assert_eq!(row[8], json!("1/3"));
        p["spec"]["readinessGates"] = json!([]);
        assert_eq!(pod_cells(&p, now())[8], json!("<none>"));
    }

    #[test]
    fn pod_conditions() {
        let done = app_pod("Succeeded", vec![]);
        assert_eq!(
            row_conditions("", "pods", &done),
            Some(json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                         "message": "The pod has completed successfully."}]))
        );
        let failed = app_pod("Failed", vec![]);
        assert_eq!(
            row_conditions("", "pods", &failed),
            Some(json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]))
        );
        assert_eq!(row_conditions("", "pods", &app_pod("Running", vec![])), None);
        assert_eq!(row_conditions("", "configmaps", &done), None);
    }

    #[test]
    fn typed_pod_status() {
        let mut crashing = waiting("app", "CrashLoopBackOff");
        crashing["restartCount"] = json!(1);
        crashing["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": ago(60)}});
        let typed: Pod = serde_json::from_value(app_pod("Running", vec![crashing])).unwrap();
        assert_eq!(pod_status_text(&typed), "CrashLoopBackOff");
        let s = summarize_typed_pod(&typed);
        assert_eq!(s.restarts_text(now()), "1 (60s ago)");
        assert_eq!(pod_status_text(&Pod::default()), "");
    }

    #[test]
    fn odd_pods_never_panic() {
        let odd = [
            json!(null),
            json!("pod"),
            json!([]),
            json!({}),
            json!({"metadata": "x", "spec": 3, "status": []}),
            json!({"status": {"containerStatuses": "no", "initContainerStatuses": {"a": 1}}}),
            json!({"status": {"containerStatuses": [null, 1, {"state": "x", "restartCount": "3", "ready": "yes"}]}}),
            json!({"metadata": {"creationTimestamp": "yesterday"}, "status": {"initContainerStatuses": [
                {"state": {"terminated": null, "waiting": 7}, "lastState": {"terminated": {"finishedAt": 5}}}]}}),
            json!({"spec": {"initContainers": [7, {"restartPolicy": "Always"}], "readinessGates": [1]}}),
        ];
        for obj in &odd {
            let row = cells("", "pods", obj, now());
            assert_eq!(row.len(), POD_COLUMNS.len(), "{obj}");
        }
        assert_eq!(
            cells("", "pods", &json!({}), now()),
            vec![
                json!(""),
                json!("0/0"),
                json!(""),
                json!("0"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    // --- Nodes ----------------------------------------------------------------------------------------------

    fn node(ready: Option<&str>, unschedulable: bool, labels: Value) -> Value {
        let conditions = match ready {
            Some(status) => json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": status}]),
            None => json!([]),
        };
        json!({
            "metadata": {"name": "peapod-node-1", "creationTimestamp": ago(3 * 86400 + 3600), "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "peapod-node-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "InternalIP", "address": "192.168.1.11"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-peapod", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "peapod://0.1.0"},
            },
        })
    }

    #[test]
    fn node_row() {
        let n = node(Some("True"), false, json!({"kubernetes.io/hostname": "peapod-node-1"}));
        assert_eq!(
            cells("", "nodes", &n, now()),
            vec![
                json!("peapod-node-1"),
                json!("Ready"),
                json!("<none>"),
                json!("3d1h"),
                json!("v1.32.0-peapod"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("peapod://0.1.0"),
            ]
        );
    }

    #[test]
    fn node_status_values() {
        let status = |ready, unschedulable| node_cells(&node(ready, unschedulable, json!({})), now())[1].clone();
        assert_eq!(status(Some("True"), false), json!("Ready"));
        assert_eq!(status(Some("False"), false), json!("NotReady"));
        assert_eq!(status(Some("Unknown"), false), json!("NotReady"));
        assert_eq!(status(None, false), json!("Unknown"));
        assert_eq!(status(Some("True"), true), json!("Ready,SchedulingDisabled"));
        assert_eq!(status(None, true), json!("Unknown,SchedulingDisabled"));
    }

    #[test]
    fn node_roles_sorted_and_unique() {
        let n = node(
            Some("True"),
            false,
            json!({
                "node-role.kubernetes.io/worker": "",
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "",
                "kubernetes.io/role": "worker",
                "node-role.kubernetes.io/etcd": "true",
            }),
        );
        assert_eq!(node_cells(&n, now())[2], json!("control-plane,etcd,worker"));
        let legacy = node(Some("True"), false, json!({"kubernetes.io/role": "master"}));
        assert_eq!(node_cells(&legacy, now())[2], json!("master"));
        let empty_legacy = node(Some("True"), false, json!({"kubernetes.io/role": ""}));
        assert_eq!(node_cells(&empty_legacy, now())[2], json!("<none>"));
    }

    #[test]
    fn node_missing_fields() {
        let row = cells("", "nodes", &json!({"metadata": {"name": "n"}}), now());
        assert_eq!(
            row,
            vec![
                json!("n"),
                json!("Unknown"),
                json!("<none>"),
                json!("<unknown>"),
                json!(""),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
    }

    // --- Events ---------------------------------------------------------------------------------------------

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.1873a8b2c4d5e6f7", "namespace": "default", "creationTimestamp": ago(300)},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                               "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled",
            "message": "  Successfully pulled image \"nginx:1.21\" in 1.2s\n",
            "source": {"component": "kubelet", "host": "peapod-node-1"},
            "firstTimestamp": ago(300),
            "lastTimestamp": ago(62),
            "count": 4,
            "type": "Normal",
        })
    }

    #[test]
    fn core_event_row() {
        assert_eq!(
            cells("", "events", &core_event(), now()),
            vec![
                json!("62s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{nginx}"),
                json!("kubelet, peapod-node-1"),
                json!("Successfully pulled image \"nginx:1.21\" in 1.2s"),
                json!("5m"),
                json!(4),
                json!("web.1873a8b2c4d5e6f7"),
            ]
        );
    }

    #[test]
    fn event_fallbacks() {
        // Last seen falls back to first seen; count defaults to 1; no host, no comma.
        let mut e = core_event();
        let obj = e.as_object_mut().unwrap();
        obj.remove("lastTimestamp");
        obj.remove("count");
        obj.insert("source".into(), json!({"component": "default-scheduler"}));
        let row = cells("", "events", &e, now());
        assert_eq!(row[0], json!("5m"));
        assert_eq!(row[5], json!("default-scheduler"));
        assert_eq!(row[7], json!("5m"));
        assert_eq!(row[8], json!(1));

        // Without first/last timestamps, eventTime is used for both.
        let e = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node", "name": ""},
            "eventTime": "2026-11-24T11:58:59.123456Z",
            "reportingComponent": "peapod-controller",
            "reportingInstance": "peapod-0",
            "count": 0,
        });
        let row = cells("", "events", &e, now());
        assert_eq!(row[0], json!("60s"));
        assert_eq!(row[3], json!("node"));
        assert_eq!(row[5], json!("peapod-controller, peapod-0"));
        assert_eq!(row[7], json!("60s"));
        assert_eq!(row[8], json!(1));

        // No time at all.
        let row = cells("", "events", &json!({}), now());
        assert_eq!(row[0], json!("<unknown>"));
        assert_eq!(row[3], json!(""));
        assert_eq!(row[5], json!(""));
        assert_eq!(row[7], json!("<unknown>"));
    }

    #[test]
    fn event_series() {
        let mut e = core_event();
        e["series"] = json!({"count": 7, "lastObservedTime": ago(10)});
        let row = cells("", "events", &e, now());
        assert_eq!(row[0], json!("10s"));
        assert_eq!(row[8], json!(7));
    }

    #[test]
    fn events_v1_row() {
        let e = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.1873a8b2c4d5e6f7"},
            "eventTime": ago(400),
            "regarding": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "note": "Created container app",
            "reason": "Created",
            "type": "Normal",
            "reportingController": "kubelet",
            "reportingInstance": "peapod-node-1",
            "deprecatedFirstTimestamp": ago(130),
            "deprecatedLastTimestamp": ago(125),
            "deprecatedCount": 2,
        });
        assert_eq!(
            cells("events.k8s.io", "events", &e, now()),
            vec![
                json!("2m5s"),
                json!("Normal"),
                json!("Created"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, peapod-node-1"),
                json!("Created container app"),
                json!("2m10s"),
                json!(2),
                json!("web.1873a8b2c4d5e6f7"),
            ]
        );
    }

    // --- Other printers -------------------------------------------------------------------------------------

    #[test]
    fn namespace_row() {
        let ns = json!({"metadata": {"name": "team-a", "creationTimestamp": ago(3 * 3600 + 300)},
                        "status": {"phase": "Active"}});
        assert_eq!(
            cells("", "namespaces", &ns, now()),
            vec![json!("team-a"), json!("Active"), json!("3h5m")]
        );
    }

    #[test]
    fn configmap_row() {
        let cm = json!({"metadata": {"name": "settings", "creationTimestamp": ago(45)},
                        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            cells("", "configmaps", &cm, now()),
            vec![json!("settings"), json!(3), json!("45s")]
        );
        let empty = json!({"metadata": {"name": "empty"}});
        assert_eq!(
            cells("", "configmaps", &empty, now()),
            vec![json!("empty"), json!(0), json!("<unknown>")]
        );
    }

    #[test]
    fn secret_row() {
        let s = json!({"metadata": {"name": "creds", "creationTimestamp": ago(9 * 86400)},
                       "type": "Opaque", "data": {"user": "YQ==", "pass": "Yg=="}});
        assert_eq!(
            cells("", "secrets", &s, now()),
            vec![json!("creds"), json!("Opaque"), json!(2), json!("9d")]
        );
    }

    #[test]
    fn service_account_row() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(600)}});
        assert_eq!(
            cells("", "serviceaccounts", &sa, now()),
            vec![json!("default"), json!(0), json!("10m")]
        );
        let with = json!({"metadata": {"name": "builder"}, "secrets": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(cells("", "serviceaccounts", &with, now())[1], json!(2));
    }

    #[test]
    fn lease_row() {
        let l = json!({"metadata": {"name": "peapod-node-1", "creationTimestamp": ago(3 * 365 * 86400)},
                       "spec": {"holderIdentity": "peapod-node-1", "leaseDurationSeconds": 40}});
        assert_eq!(
            cells("coordination.k8s.io", "leases", &l, now()),
            vec![json!("peapod-node-1"), json!("peapod-node-1"), json!("3y")]
        );
        let free = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(cells("coordination.k8s.io", "leases", &free, now())[1], json!(""));
        // Leases of another group are not this printer's.
        assert_eq!(columns("example.com", "leases").len(), DEFAULT_COLUMNS.len());
    }

    #[test]
    fn default_convertor() {
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-24T21:27:01.123Z"}});
        assert_eq!(
            cells("apps", "deployments", &obj, now()),
            vec![json!("web"), json!("2026-11-24T21:27:01Z")]
        );
        let offset = json!({"metadata": {"name": "x", "creationTimestamp": "2026-11-24T23:27:01+02:00"}});
        assert_eq!(
            cells("apps", "deployments", &offset, now())[1],
            json!("2026-11-24T21:27:01Z")
        );
        assert_eq!(
            cells("x.io", "things", &json!({}), now()),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
        let cols = columns("apps", "deployments");
        assert_eq!(cols[0]["name"], json!("Name"));
        assert_eq!(cols[0]["format"], json!("name"));
        assert_eq!(
            cols[1],
            json!({"name": "Created At", "type": "date", "format": "",
                                   "description": doc::CREATION_TIMESTAMP, "priority": 0})
        );
        // Pods of another group are not core pods.
        assert_eq!(columns("metrics.k8s.io", "pods").len(), 2);
    }

    // --- Columns --------------------------------------------------------------------------------------------

    fn names_and_priorities(group: &str, plural: &str) -> Vec<(String, u64)> {
        columns(group, plural)
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["priority"].as_u64().unwrap()))
            .collect()
    }

    fn expect(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn column_names_and_priorities() {
        assert_eq!(
            names_and_priorities("", "pods"),
            expect(&[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ])
        );
        assert_eq!(
            names_and_priorities("", "nodes"),
            expect(&[
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ])
        );
        let events = expect(&[
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ]);
        assert_eq!(names_and_priorities("", "events"), events);
        assert_eq!(names_and_priorities("events.k8s.io", "events"), events);
        assert_eq!(
            names_and_priorities("", "namespaces"),
            expect(&[("Name", 0), ("Status", 0), ("Age", 0)])
        );
        assert_eq!(
            names_and_priorities("", "configmaps"),
            expect(&[("Name", 0), ("Data", 0), ("Age", 0)])
        );
        assert_eq!(
            names_and_priorities("", "secrets"),
            expect(&[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)])
        );
        assert_eq!(
            names_and_priorities("", "serviceaccounts"),
            expect(&[("Name", 0), ("Secrets", 0), ("Age", 0)])
        );
        assert_eq!(
            names_and_priorities("coordination.k8s.io", "leases"),
            expect(&[("Name", 0), ("Holder", 0), ("Age", 0)])
        );
        assert_eq!(
            names_and_priorities("apps", "deployments"),
            expect(&[("Name", 0), ("Created At", 0)])
        );
    }

    #[test]
    fn column_definitions_are_well_formed() {
        for (group, plural) in RESOURCES {
            let cols = columns(group, plural);
            let name_columns: Vec<_> = cols.iter().filter(|c| c["format"] == "name").collect();
            assert_eq!(name_columns.len(), 1, "{group}/{plural}: exactly one name column");
            assert_eq!(name_columns[0]["name"], "Name");
            for c in &cols {
                let obj = c.as_object().unwrap();
                let keys: Vec<_> = obj.keys().map(String::as_str).collect();
                assert_eq!(keys.len(), 5, "{c}");
                for key in ["name", "type", "format", "description", "priority"] {
                    assert!(obj.contains_key(key), "{group}/{plural}: {key} missing in {c}");
                }
                assert!(!c["description"].as_str().unwrap().is_empty(), "{c}");
            }
        }
        let pod = columns("", "pods");
        assert_eq!(
            pod[1]["description"],
            json!("The aggregate readiness state of this pod for accepting traffic.")
        );
        assert!(pod[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("Name must be unique within a namespace."));
        assert!(pod[4]["description"]
            .as_str()
            .unwrap()
            .contains("\n\nPopulated by the system."));
        assert_eq!(columns("", "nodes")[1]["description"], json!("The status of the node"));
    }

    #[test]
    fn cells_match_columns_for_every_resource() {
        let samples = [
            app_pod("Running", vec![running("app", true)]),
            node(Some("True"), false, json!({})),
            core_event(),
            json!({}),
            json!(null),
            json!({"metadata": {"name": "x", "creationTimestamp": ago(5)}}),
        ];
        for (group, plural) in RESOURCES {
            let width = columns(group, plural).len();
            for sample in &samples {
                assert_eq!(
                    cells(group, plural, sample, now()).len(),
                    width,
                    "{group}/{plural}: {sample}"
                );
            }
        }
    }

    #[test]
    fn integer_cells_are_integers() {
        let cm = json!({"data": {"a": "b"}});
        assert!(cells("", "configmaps", &cm, now())[1].is_i64());
        assert!(cells("", "secrets", &cm, now())[2].is_i64());
        assert!(cells("", "serviceaccounts", &cm, now())[1].is_i64());
        assert!(cells("", "events", &cm, now())[8].is_i64());
        // Restarts is a string column.
        assert!(cells("", "pods", &cm, now())[3].is_string());
    }
}
