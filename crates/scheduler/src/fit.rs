//! Where a Pod fits: kube-scheduler's default filter plugins over JSON Pods and Nodes, the least-allocated score
//! among the nodes that pass, and the `FitError` message users read in `FailedScheduling` events and in the
//! `PodScheduled` condition. Pure: no IO, no clock.
//!
//! Filters run per node in kube-scheduler's default order and stop at the first that fails (as its framework
//! does): NodeUnschedulable, NodeName, TaintToleration, NodeAffinity (nodeSelector and required node affinity),
//! NodePorts, NodeResourcesFit. The reasons are kube-scheduler's words as of v1.34+/1.35: notably
//! `node(s) had untolerated taint(s)` without the taint (kubernetes#134740, values may be sensitive) and a request
//! larger than a node's whole allocatable counting as unresolvable by preemption (kubernetes#131345).
//!
//! Node readiness is seen as kube-scheduler sees it: through taints. Kubernetes' node lifecycle controller taints a
//! node `node.kubernetes.io/not-ready:NoSchedule` (Ready False or absent) or `node.kubernetes.io/unreachable:NoSchedule`
//! (Ready Unknown); Peapod has no such controller yet, so the same taints are derived here from the Ready condition
//! when the node does not already carry them.

use peapod_api::quantity::Quantity;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// `ErrReasonUnschedulable` of the NodeUnschedulable plugin.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// `ErrReason` of the NodeName plugin.
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// The TaintToleration plugin's reason (v1.35, cherry-picked to 1.34: no taint key or value).
pub const REASON_TAINT: &str = "node(s) had untolerated taint(s)";
/// `ErrReasonPod` of the NodeAffinity plugin.
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `ErrReason` of the NodePorts plugin.
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// NodeResourcesFit's reason when the node has no room for one more Pod.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// `ErrNoNodesAvailable` of the scheduler.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";
/// DefaultPreemption's reason for nodes failed by a filter whose failure no eviction can fix.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// DefaultPreemption's reason for nodes where evicting lower-priority Pods could help but there are none.
pub const NO_PREEMPTION_VICTIMS: &str = "No preemption victims found for incoming pod";
/// DefaultPreemption's message for a Pod with `preemptionPolicy: Never`.
pub const PREEMPTION_NEVER: &str = "not eligible due to preemptionPolicy=Never.";

/// The taint kube-scheduler's NodeUnschedulable plugin asks the Pod to tolerate on a cordoned node.
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The node lifecycle controller's taint for a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node lifecycle controller's taint for a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// kube-scheduler's non-zero defaults (`DefaultMilliCPURequest`, `DefaultMemoryRequest`): used for scoring only,
/// so that Pods without requests still spread.
const SCORE_DEFAULT_MILLI_CPU: i64 = 100;
const SCORE_DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// The string at a JSON pointer of an object, `""` when absent (shared by the scheduler's modules).
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Resource amounts: CPU in millicores, the others in their integer unit (bytes, counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources, hugepages and anything else, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList` (`{"cpu": "500m", "memory": "1Gi"}`); unparsable quantities count as zero (the API
    /// server validated them).
    pub fn from_list(list: Option<&Value>) -> Self {
        let mut r = Self::default();
        let Some(map) = list.and_then(Value::as_object) else {
            return r;
        };
        for (name, q) in map {
            let q = q.as_str().and_then(|s| Quantity::parse(s).ok());
            let Some(q) = q else { continue };
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => {}
                other => {
                    r.scalar.insert(other.to_string(), q.value());
                }
            }
        }
        r
    }

    /// A container's requests; a resource with a limit and no request counts its limit, as API defaulting does.
    fn of_container(c: &Value) -> Self {
        let mut r = Self::from_list(c.pointer("/resources/requests"));
        let limits = Self::from_list(c.pointer("/resources/limits"));
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let has = |name: &str| requests.is_some_and(|m| m.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = limits.milli_cpu;
        }
        if !has("memory") {
            r.memory = limits.memory;
        }
        if !has("ephemeral-storage") {
            r.ephemeral_storage = limits.ephemeral_storage;
        }
        for (k, v) in limits.scalar {
            if !has(&k) {
                r.scalar.insert(k, v);
            }
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// What a Pod asks of a node (`resource.PodRequests`): the sum of its app containers and sidecars, or the largest
/// init container step if that is more (init containers run one at a time, each beside the sidecars started
/// before it), plus `spec.overhead`.
pub fn pod_requests(pod: &Value) -> Resources {
    let mut reqs = Resources::default();
    for c in array_at(pod, "/spec/containers") {
        reqs.add(&Resources::of_container(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in array_at(pod, "/spec/initContainers") {
        let r = Resources::of_container(c);
        let step = if str_at(c, "/restartPolicy") == "Always" {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_peak.max_with(&step);
    }
    reqs.max_with(&init_peak);
    reqs.add(&Resources::from_list(pod.pointer("/spec/overhead")));
    reqs
}

/// A Pod's requests for scoring: CPU and memory of each container default to 100m and 200Mi when unset.
fn pod_score_requests(pod: &Value) -> (i64, i64) {
    let mut cpu = 0i64;
    let mut mem = 0i64;
    for c in array_at(pod, "/spec/containers") {
        let r = Resources::of_container(c);
        cpu = cpu.saturating_add(if r.milli_cpu == 0 {
            SCORE_DEFAULT_MILLI_CPU
        } else {
            r.milli_cpu
        });
        mem = mem.saturating_add(if r.memory == 0 { SCORE_DEFAULT_MEMORY } else { r.memory });
    }
    let o = Resources::from_list(pod.pointer("/spec/overhead"));
    (cpu.saturating_add(o.milli_cpu), mem.saturating_add(o.memory))
}

/// One host port a Pod uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HostPort {
    ip: String,
    protocol: String,
    port: i64,
}

impl HostPort {
    /// Two uses conflict on the same protocol and port when their IPs are equal or either is the wildcard.
    fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// The host ports of a Pod's containers (and sidecars, which keep running beside them).
fn host_ports(pod: &Value) -> Vec<HostPort> {
    let sidecars = array_at(pod, "/spec/initContainers")
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always");
    let mut out = Vec::new();
    for c in array_at(pod, "/spec/containers").iter().chain(sidecars) {
        for p in array_at(c, "/ports") {
            let port = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if port <= 0 {
                continue;
            }
            let ip = match str_at(p, "/hostIP") {
                "" => "0.0.0.0",
                ip => ip,
            };
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            out.push(HostPort {
                ip: ip.to_string(),
                protocol: protocol.to_string(),
                port,
            });
        }
    }
    out
}

/// A node as the filters see it: the Node and what the Pods on it (bound or being bound) already take.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub node: Value,
    /// `status.allocatable` (the API defaults it to `capacity` when absent).
    pub allocatable: Resources,
    pub allowed_pods: i64,
    /// The sum of the requests of the Pods on the node.
    pub requested: Resources,
    /// The same with scoring's non-zero defaults (CPU, memory).
    pub score_requested: (i64, i64),
    pub pod_count: i64,
    used_ports: Vec<HostPort>,
}

impl NodeInfo {
    /// A node with no Pods yet.
    pub fn new(node: Value) -> Self {
        let name = str_at(&node, "/metadata/name").to_string();
        let list = node
            .pointer("/status/allocatable")
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            .or_else(|| node.pointer("/status/capacity"));
        let allocatable = Resources::from_list(list);
        let allowed_pods = list
            .and_then(|l| l.get("pods"))
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok())
            .map(|q| q.value())
            .unwrap_or(0);
        Self {
            name,
            node,
            allocatable,
            allowed_pods,
            requested: Resources::default(),
            score_requested: (0, 0),
            pod_count: 0,
            used_ports: Vec::new(),
        }
    }

    /// Accounts a Pod that runs (or is being bound) here.
    pub fn add_pod(&mut self, pod: &Value) {
        self.requested.add(&pod_requests(pod));
        let (c, m) = pod_score_requests(pod);
        self.score_requested.0 = self.score_requested.0.saturating_add(c);
        self.score_requested.1 = self.score_requested.1.saturating_add(m);
        self.pod_count += 1;
        self.used_ports.extend(host_ports(pod));
    }

    /// The node's NoSchedule/NoExecute taints, with the readiness taint derived from the Ready condition when the
    /// node does not carry one (see the module doc).
    fn scheduling_taints(&self) -> Vec<Taint> {
        let mut taints: Vec<Taint> = array_at(&self.node, "/spec/taints")
            .iter()
            .map(Taint::from_json)
            .collect();
        let ready = array_at(&self.node, "/status/conditions")
            .iter()
            .find(|c| str_at(c, "/type") == "Ready")
            .map(|c| str_at(c, "/status"));
        let derived = match ready {
            Some("True") => None,
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        if let Some(key) = derived {
            if !taints
                .iter()
                .any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
            {
                taints.push(Taint {
                    key: key.into(),
                    value: String::new(),
                    effect: "NoSchedule".into(),
                });
            }
        }
        taints.retain(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
        taints
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Taint {
    key: String,
    value: String,
    effect: String,
}

impl Taint {
    fn from_json(t: &Value) -> Self {
        Self {
            key: str_at(t, "/key").into(),
            value: str_at(t, "/value").into(),
            effect: str_at(t, "/effect").into(),
        }
    }
}

/// `ToleratesTaint`: an empty effect matches every effect, an empty key with `Exists` every key.
fn tolerates(toleration: &Value, taint: &Taint) -> bool {
    let effect = str_at(toleration, "/effect");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = str_at(toleration, "/key");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match str_at(toleration, "/operator") {
        "" | "Equal" => str_at(toleration, "/value") == taint.value,
        "Exists" => true,
        _ => false,
    }
}

fn pod_tolerates(pod: &Value, taint: &Taint) -> bool {
    array_at(pod, "/spec/tolerations").iter().any(|t| tolerates(t, taint))
}

/// One `NodeSelectorRequirement` against a set of values (`labels` or `metadata.name` for matchFields).
fn requirement_matches(req: &Value, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let key = str_at(req, "/key");
    let values: Vec<&str> = array_at(req, "/values").iter().filter_map(Value::as_str).collect();
    let actual = get(key);
    let as_int = |s: &str| s.parse::<i64>().ok();
    match str_at(req, "/operator") {
        "In" => actual.is_some_and(|a| values.contains(&a.as_str())),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a.as_str())),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(a), [v]) = (actual.as_deref().and_then(as_int), values.as_slice()) else {
                return false;
            };
            let Some(v) = as_int(v) else { return false };
            if op == "Gt" {
                a > v
            } else {
                a < v
            }
        }
        _ => false,
    }
}

/// A `NodeSelectorTerm`: all its requirements hold; a term with none matches no node.
fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = array_at(term, "/matchExpressions");
    let fields = array_at(term, "/matchFields");
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let label = |k: &str| {
        node.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let field = |k: &str| (k == "metadata.name").then(|| str_at(node, "/metadata/name").to_string());
    exprs.iter().all(|r| requirement_matches(r, &label)) && fields.iter().all(|r| requirement_matches(r, &field))
}

/// `nodeSelector` and required node affinity (`GetRequiredNodeAffinity().Match`).
fn matches_node_affinity(pod: &Value, node: &Value) -> bool {
    if let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) {
        let labels = node.pointer("/metadata/labels");
        for (k, v) in sel {
            if labels.and_then(|l| l.get(k)) != Some(v) {
                return false;
            }
        }
    }
    match pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    {
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// Why one node cannot take the Pod: the reasons of the first filter that failed, and whether evicting Pods could
/// ever change that (kube-scheduler's `Unschedulable` vs `UnschedulableAndUnresolvable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub reasons: Vec<String>,
    pub resolvable_by_preemption: bool,
}

impl NodeStatus {
    fn unresolvable(reason: &str) -> Self {
        Self {
            reasons: vec![reason.to_string()],
            resolvable_by_preemption: false,
        }
    }
}

/// NodeResourcesFit's check (`fitsRequest`).
fn fits_resources(req: &Resources, n: &NodeInfo) -> Option<NodeStatus> {
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if n.pod_count + 1 > n.allowed_pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
        if want > 0 && want > alloc.saturating_sub(used) {
            reasons.push(format!("Insufficient {name}"));
            unresolvable |= want > alloc;
        }
    };
    check("cpu", req.milli_cpu, n.allocatable.milli_cpu, n.requested.milli_cpu);
    check("memory", req.memory, n.allocatable.memory, n.requested.memory);
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        n.allocatable.ephemeral_storage,
        n.requested.ephemeral_storage,
    );
    for (name, want) in &req.scalar {
        let alloc = n.allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = n.requested.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, alloc, used);
    }
    if reasons.is_empty() {
        None
    } else {
        Some(NodeStatus {
            reasons,
            resolvable_by_preemption: !unresolvable,
        })
    }
}

/// Runs the filters for one node; `None` when the Pod fits.
pub fn filter(pod: &Value, req: &Resources, n: &NodeInfo) -> Option<NodeStatus> {
    // NodeUnschedulable
    if n.node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        let cordon = Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        };
        if !pod_tolerates(pod, &cordon) {
            return Some(NodeStatus::unresolvable(REASON_UNSCHEDULABLE));
        }
    }
    // NodeName
    let wanted = str_at(pod, "/spec/nodeName");
    if !wanted.is_empty() && wanted != n.name {
        return Some(NodeStatus::unresolvable(REASON_NODE_NAME));
    }
    // TaintToleration
    if n.scheduling_taints().iter().any(|t| !pod_tolerates(pod, t)) {
        return Some(NodeStatus::unresolvable(REASON_TAINT));
    }
    // NodeAffinity
    if !matches_node_affinity(pod, &n.node) {
        return Some(NodeStatus::unresolvable(REASON_AFFINITY));
    }
    // NodePorts
    let wanted_ports = host_ports(pod);
    if wanted_ports.iter().any(|w| n.used_ports.iter().any(|u| u.conflicts(w))) {
        return Some(NodeStatus {
            reasons: vec![REASON_PORTS.to_string()],
            resolvable_by_preemption: true,
        });
    }
    // NodeResourcesFit
    fits_resources(req, n)
}

/// Least-allocated score (0–100) of a node once the Pod is on it: the mean free share of CPU and memory.
fn least_allocated_score(pod: &Value, n: &NodeInfo) -> i64 {
    let (c, m) = pod_score_requests(pod);
    let free_share = |alloc: i64, used: i64| {
        if alloc <= 0 || used > alloc {
            0
        } else {
            (alloc - used).saturating_mul(100) / alloc
        }
    };
    let cpu = free_share(n.allocatable.milli_cpu, n.score_requested.0.saturating_add(c));
    let mem = free_share(n.allocatable.memory, n.score_requested.1.saturating_add(m));
    (cpu + mem) / 2
}

/// Why a Pod fits no node: `FitError` (kube-scheduler's `framework.FitError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Each failing node's status, by node name.
    pub node_statuses: BTreeMap<String, NodeStatus>,
    /// The PostFilter (preemption) part, already prefixed with `preemption: `.
    pub post_filter_msg: String,
}

/// `0/N nodes are available: <count> <reason>, ….` with the reasons counted over nodes and sorted as strings.
fn histogram_message(num_all_nodes: usize, reasons: impl Iterator<Item = String>) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in reasons {
        *counts.entry(r).or_insert(0) += 1;
    }
    let mut parts: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !parts.is_empty() {
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons = self.node_statuses.values().flat_map(|s| s.reasons.iter().cloned());
        let mut msg = histogram_message(self.num_all_nodes, reasons);
        if !self.post_filter_msg.is_empty() {
            msg.push(' ');
            msg.push_str(&self.post_filter_msg);
        }
        f.write_str(&msg)
    }
}

/// DefaultPreemption's PostFilter message when no preemption is carried out: Peapod evicts nothing, so every node
/// where eviction could help in principle reports no victims.
fn preemption_message(pod: &Value, num_all_nodes: usize, statuses: &BTreeMap<String, NodeStatus>) -> String {
    if str_at(pod, "/spec/preemptionPolicy") == "Never" {
        return format!("preemption: {PREEMPTION_NEVER}");
    }
    let reasons = statuses.values().map(|s| {
        if s.resolvable_by_preemption {
            NO_PREEMPTION_VICTIMS.to_string()
        } else {
            PREEMPTION_NOT_HELPFUL.to_string()
        }
    });
    format!("preemption: {}", histogram_message(num_all_nodes, reasons))
}

/// Why scheduling a Pod failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// There are no nodes at all.
    NoNodes,
    /// No node passed the filters.
    Unfit(FitError),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::NoNodes => f.write_str(NO_NODES_AVAILABLE),
            ScheduleError::Unfit(e) => e.fmt(f),
        }
    }
}

/// Picks the node for `pod` among `nodes`: filter, then the highest least-allocated score (ties go to the first
/// node by name, so the choice is reproducible). Returns the index into `nodes`.
pub fn schedule(pod: &Value, nodes: &[NodeInfo]) -> Result<usize, ScheduleError> {
    if nodes.is_empty() {
        return Err(ScheduleError::NoNodes);
    }
    let req = pod_requests(pod);
    let mut statuses = BTreeMap::new();
    let mut best: Option<(i64, &str, usize)> = None;
    for (i, n) in nodes.iter().enumerate() {
        match filter(pod, &req, n) {
            Some(s) => {
                statuses.insert(n.name.clone(), s);
            }
            None => {
                let score = least_allocated_score(pod, n);
                let better = match best {
                    None => true,
                    Some((bs, bn, _)) => score > bs || (score == bs && n.name.as_str() < bn),
                };
                if better {
                    best = Some((score, &n.name, i));
                }
            }
        }
    }
    if let Some((_, _, i)) = best {
        return Ok(i);
    }
    let post_filter_msg = preemption_message(pod, nodes.len(), &statuses);
    Err(ScheduleError::Unfit(FitError {
        num_all_nodes: nodes.len(),
        node_statuses: statuses,
        post_filter_msg,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, memory: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        })
    }

    fn pod(cpu: &str, memory: &str) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
        })
    }

    fn infos(nodes: Vec<Value>) -> Vec<NodeInfo> {
        nodes.into_iter().map(NodeInfo::new).collect()
    }

    fn message(pod: &Value, nodes: &[NodeInfo]) -> String {
        match schedule(pod, nodes) {
            Ok(i) => panic!("fits on {}", nodes[i].name),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn no_nodes() {
        assert_eq!(message(&pod("1", "1Gi"), &[]), "no nodes available to schedule pods");
    }

    #[test]
    fn a_pod_that_fits_is_placed() {
        let nodes = infos(vec![node("n1", "2", "4Gi")]);
        assert_eq!(schedule(&pod("1", "1Gi"), &nodes), Ok(0));
    }

    #[test]
    fn memory_larger_than_the_node_is_not_helped_by_preemption() {
        let nodes = infos(vec![node("n1", "2", "4Gi")]);
        assert_eq!(
            message(&pod("1", "8Gi"), &nodes),
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 Preemption is \
             not helpful for scheduling."
        );
    }

    #[test]
    fn memory_taken_by_other_pods_finds_no_victims() {
        let mut nodes = infos(vec![node("n1", "2", "4Gi")]);
        nodes[0].add_pod(&pod("100m", "3Gi"));
        assert_eq!(
            message(&pod("100m", "2Gi"), &nodes),
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption \
             victims found for incoming pod."
        );
    }

    #[test]
    fn cpu_shortage_reads_as_in_kubernetes_docs() {
        let mut nodes = infos(vec![node("n1", "2", "4Gi")]);
        nodes[0].add_pod(&pod("1500m", "1Gi"));
        assert_eq!(
            message(&pod("1", "1Gi"), &nodes),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption \
             victims found for incoming pod."
        );
    }

    #[test]
    fn every_insufficient_resource_is_counted_and_sorted() {
        let mut nodes = infos(vec![
            node("a", "1", "1Gi"),
            node("b", "4", "1Gi"),
            node("c", "1", "8Gi"),
        ]);
        for n in &mut nodes {
            n.add_pod(&pod("500m", "512Mi"));
        }
        // a: cpu+memory, b: memory, c: cpu.
        assert_eq!(
            message(&pod("1", "1Gi"), &nodes),
            "0/3 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. preemption: 0/3 nodes are \
             available: 3 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn too_many_pods() {
        let mut n = node("n1", "2", "4Gi");
        n["status"]["allocatable"]["pods"] = json!("1");
        let mut nodes = infos(vec![n]);
        nodes[0].add_pod(&pod("0", "0"));
        assert_eq!(
            message(&pod("0", "0"), &nodes),
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims \
             found for incoming pod."
        );
    }

    #[test]
    fn extended_resources_and_ephemeral_storage() {
        let mut p = pod("100m", "10Mi");
        p["spec"]["containers"][0]["resources"]["limits"] = json!({"example.com/gpu": "1"});
        p["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!("10Gi");
        let mut n = node("n1", "2", "4Gi");
        n["status"]["allocatable"]["ephemeral-storage"] = json!("1Gi");
        assert_eq!(
            message(&p, &infos(vec![n])),
            "0/1 nodes are available: 1 Insufficient ephemeral-storage, 1 Insufficient example.com/gpu. preemption: \
             0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn allocatable_defaults_to_capacity() {
        let mut n = node("n1", "2", "4Gi");
        n["status"].as_object_mut().unwrap().remove("allocatable");
        assert_eq!(schedule(&pod("1", "1Gi"), &infos(vec![n])), Ok(0));
    }

    #[test]
    fn init_containers_take_the_max_and_sidecars_add_up() {
        let p = json!({"spec": {
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}
            ],
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}
            ],
            "overhead": {"cpu": "250m", "memory": "10M"}
        }});
        let r = pod_requests(&p);
        assert_eq!(r.milli_cpu, 3250);
        assert_eq!(r.memory, 3_010_000_000);

        // A sidecar runs beside the later init containers and the app containers.
        let p = json!({"spec": {
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                {"name": "init", "resources": {"requests": {"cpu": "3"}}}
            ],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]
        }});
        assert_eq!(pod_requests(&p).milli_cpu, 4000);
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let p = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                                         "requests": {"cpu": "500m"}}}]}});
        let r = pod_requests(&p);
        assert_eq!((r.milli_cpu, r.memory), (500, 1 << 30));
    }

    #[test]
    fn cordoned_nodes() {
        let mut n = node("n1", "2", "4Gi");
        n["spec"]["unschedulable"] = json!(true);
        let nodes = infos(vec![n]);
        assert_eq!(
            message(&pod("1", "1Gi"), &nodes),
            "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 \
             Preemption is not helpful for scheduling."
        );
        let mut p = pod("1", "1Gi");
        p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                           "effect": "NoSchedule"}]);
        assert_eq!(schedule(&p, &nodes), Ok(0));
    }

    #[test]
    fn taints_and_tolerations() {
        let mut n = node("n1", "2", "4Gi");
        n["spec"]["taints"] = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let nodes = infos(vec![n, node("n2", "1", "1Gi")]);
        // n2 is too small, n1 tainted.
        assert_eq!(
            message(&pod("1500m", "1Gi"), &nodes),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s). preemption: 0/2 nodes \
             are available: 2 Preemption is not helpful for scheduling."
        );
        let with = |tol: Value| {
            let mut p = pod("1500m", "1Gi");
            p["spec"]["tolerations"] = tol;
            schedule(&p, &nodes).is_ok()
        };
        assert!(with(
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
        ));
        assert!(with(json!([{"key": "dedicated", "value": "gpu"}])));
        assert!(with(json!([{"key": "dedicated", "operator": "Exists"}])));
        assert!(with(json!([{"operator": "Exists"}])));
        assert!(!with(
            json!([{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}])
        ));
        assert!(!with(
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])
        ));
        assert!(!with(json!([{"key": "other", "operator": "Exists"}])));
    }

    #[test]
    fn prefer_no_schedule_taints_do_not_filter() {
        let mut n = node("n1", "2", "4Gi");
        n["spec"]["taints"] = json!([{"key": "soft", "effect": "PreferNoSchedule"}]);
        assert_eq!(schedule(&pod("1", "1Gi"), &infos(vec![n])), Ok(0));
    }

    #[test]
    fn no_execute_taints_filter() {
        let mut n = node("n1", "2", "4Gi");
        n["spec"]["taints"] = json!([{"key": "evict", "value": "now", "effect": "NoExecute"}]);
        assert_eq!(
            message(&pod("1", "1Gi"), &infos(vec![n])),
            "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 \
             Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn readiness_is_seen_through_taints() {
        let mut not_ready = node("a", "2", "4Gi");
        not_ready["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        let mut unknown = node("b", "2", "4Gi");
        unknown["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
        let mut missing = node("c", "2", "4Gi");
        missing["status"].as_object_mut().unwrap().remove("conditions");
        let nodes = infos(vec![not_ready, unknown, missing]);
        assert_eq!(
            message(&pod("1", "1Gi"), &nodes),
            "0/3 nodes are available: 3 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 \
             Preemption is not helpful for scheduling."
        );
        // The default NoExecute tolerations every Pod gets do not tolerate the NoSchedule taints.
        let mut p = pod("1", "1Gi");
        p["spec"]["tolerations"] = json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]);
        assert!(schedule(&p, &nodes).is_err());
        // Tolerating not-ready lets a Pod onto the not-ready nodes (a and c), unreachable onto b.
        p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]);
        assert_eq!(schedule(&p, &nodes), Ok(0));
        p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]);
        assert_eq!(schedule(&p, &nodes), Ok(1));
    }

    #[test]
    fn node_selector() {
        let mut n = node("n1", "2", "4Gi");
        n["metadata"]["labels"]["disk"] = json!("ssd");
        let nodes = infos(vec![n]);
        let mut p = pod("1", "1Gi");
        p["spec"]["nodeSelector"] = json!({"disk": "hdd"});
        assert_eq!(
            message(&p, &nodes),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are \
             available: 1 Preemption is not helpful for scheduling."
        );
        p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_eq!(schedule(&p, &nodes), Ok(0));
    }

    fn affinity(terms: Value) -> Value {
        let mut p = pod("100m", "10Mi");
        p["spec"]["affinity"] =
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        p
    }

    #[test]
    fn required_node_affinity_operators() {
        let mut n = node("n1", "2", "4Gi");
        n["metadata"]["labels"]["zone"] = json!("a");
        n["metadata"]["labels"]["cores"] = json!("8");
        let nodes = infos(vec![n]);
        let fits = |exprs: Value| schedule(&affinity(json!([{"matchExpressions": exprs}])), &nodes).is_ok();
        assert!(fits(json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])));
        assert!(!fits(json!([{"key": "zone", "operator": "In", "values": ["b"]}])));
        assert!(fits(json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])));
        assert!(fits(json!([{"key": "absent", "operator": "NotIn", "values": ["b"]}])));
        assert!(!fits(json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])));
        assert!(fits(json!([{"key": "zone", "operator": "Exists"}])));
        assert!(!fits(json!([{"key": "absent", "operator": "Exists"}])));
        assert!(fits(json!([{"key": "absent", "operator": "DoesNotExist"}])));
        assert!(!fits(json!([{"key": "zone", "operator": "DoesNotExist"}])));
        assert!(fits(json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])));
        assert!(!fits(json!([{"key": "cores", "operator": "Gt", "values": ["8"]}])));
        assert!(fits(json!([{"key": "cores", "operator": "Lt", "values": ["9"]}])));
        assert!(!fits(json!([{"key": "zone", "operator": "Lt", "values": ["9"]}])));
        assert!(!fits(json!([{"key": "absent", "operator": "Gt", "values": ["1"]}])));
        // All requirements of a term must hold.
        assert!(!fits(json!([{"key": "zone", "operator": "In", "values": ["a"]},
                              {"key": "cores", "operator": "Lt", "values": ["2"]}])));
        // Terms are ORed; an empty term matches nothing.
        let p = affinity(
            json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
        );
        assert!(schedule(&p, &nodes).is_ok());
        let p = affinity(json!([{}]));
        assert_eq!(
            message(&p, &nodes),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are \
             available: 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn host_ports() {
        let with_port = |ip: &str, proto: &str, port: i64| {
            let mut p = pod("100m", "10Mi");
            p["spec"]["containers"][0]["ports"] =
                json!([{"containerPort": 80, "hostPort": port, "hostIP": ip, "protocol": proto}]);
            p
        };
        let mut nodes = infos(vec![node("n1", "2", "4Gi")]);
        nodes[0].add_pod(&with_port("", "TCP", 8080));
        assert_eq!(
            message(&with_port("", "", 8080), &nodes),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 \
             nodes are available: 1 No preemption victims found for incoming pod."
        );
        assert!(schedule(&with_port("10.0.0.1", "TCP", 8080), &nodes).is_err());
        assert!(schedule(&with_port("", "UDP", 8080), &nodes).is_ok());
        assert!(schedule(&with_port("", "TCP", 8081), &nodes).is_ok());
        let mut nodes = infos(vec![node("n1", "2", "4Gi")]);
        nodes[0].add_pod(&with_port("10.0.0.1", "TCP", 8080));
        assert!(schedule(&with_port("10.0.0.2", "TCP", 8080), &nodes).is_ok());
        assert!(schedule(&with_port("0.0.0.0", "TCP", 8080), &nodes).is_err());
    }

    #[test]
    fn the_first_failing_filter_speaks_for_the_node() {
        // Tainted and too small: only the taint is reported, as kube-scheduler stops at the first failure.
        let mut n = node("n1", "1", "1Gi");
        n["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
        assert_eq!(
            message(&pod("2", "2Gi"), &infos(vec![n])),
            "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 \
             Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn mixed_reasons_with_preemption_split() {
        let mut tainted = node("a", "8", "8Gi");
        tainted["spec"]["taints"] = json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]);
        let mut full = node("b", "2", "4Gi");
        full["status"]["allocatable"]["pods"] = json!("0");
        let mut labelled = node("c", "8", "8Gi");
        labelled["metadata"]["labels"]["x"] = json!("y");
        let mut cordoned = node("d", "8", "8Gi");
        cordoned["spec"]["unschedulable"] = json!(true);
        let mut p = pod("1", "1Gi");
        p["spec"]["nodeSelector"] = json!({"x": "z"});
        let nodes = infos(vec![tainted, full, labelled, cordoned]);
        // b fails NodeAffinity before resources too, so use a Pod without a selector for b's view below.
        assert_eq!(
            message(&p, &nodes),
            "0/4 nodes are available: 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable, 2 node(s) \
             didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not \
             helpful for scheduling."
        );
        let p = pod("1", "1Gi");
        let nodes: Vec<NodeInfo> = nodes.into_iter().filter(|n| n.name != "c").collect();
        assert_eq!(
            message(&p, &nodes),
            "0/3 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint(s), 1 node(s) were \
             unschedulable. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 \
             Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn preemption_policy_never() {
        let mut p = pod("1", "8Gi");
        p["spec"]["preemptionPolicy"] = json!("Never");
        assert_eq!(
            message(&p, &infos(vec![node("n1", "2", "4Gi")])),
            "0/1 nodes are available: 1 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn least_allocated_wins_and_ties_go_by_name() {
        let mut nodes = infos(vec![
            node("b", "4", "8Gi"),
            node("a", "4", "8Gi"),
            node("c", "4", "8Gi"),
        ]);
        assert_eq!(nodes[schedule(&pod("1", "1Gi"), &nodes).unwrap()].name, "a");
        nodes[1].add_pod(&pod("2", "4Gi"));
        assert_eq!(nodes[schedule(&pod("1", "1Gi"), &nodes).unwrap()].name, "b");
        // Pods without requests still count for spreading (100m / 200Mi).
        nodes[0].add_pod(&pod("0", "0"));
        assert_eq!(nodes[schedule(&pod("1", "1Gi"), &nodes).unwrap()].name, "c");
    }

    #[test]
    fn fit_error_without_filter_reasons_keeps_kubernetes_punctuation() {
        let e = FitError {
            num_all_nodes: 2,
            node_statuses: BTreeMap::new(),
            post_filter_msg: String::new(),
        };
        assert_eq!(e.to_string(), "0/2 nodes are available:");
    }
}
