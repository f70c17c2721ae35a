//! The scheduler's cache of Nodes and Pods and its queue of Pods to place, as one pure state machine: watch events
//! go in, a scheduling pass comes out as actions (bind this Pod there, report that one unschedulable), and the
//! outcome of each bind comes back. No IO; time is a parameter.
//!
//! The queue follows kube-scheduler's: Pods waiting for a node are tried once; those that fit nowhere wait in the
//! unschedulable set until something that could change the answer happens (a node added or changed in a way the
//! filters read, a Pod on a node deleted or finished, a bind given up) or until the periodic flush
//! ([`UNSCHEDULABLE_FLUSH`]). Pods whose bind failed come back after a back-off (1 s doubling to 10 s). Pods being
//! bound, and bound Pods not yet seen bound in the watch ("assumed"), count against their node.

use crate::fit::str_at;
use crate::fit::{self, NodeInfo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// The name Pods use to ask for this scheduler (`spec.schedulerName`, defaulted by the API server).
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// kube-scheduler's `podInitialBackoffDuration`.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// kube-scheduler's `podMaxBackoffDuration`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// kube-scheduler's `podMaxInUnschedulablePodsDuration`: unschedulable Pods are retried at least this often.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(5 * 60);

/// `namespace/name` of a Pod.
pub type PodKey = String;

/// The two resources the scheduler watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node,
    Pod,
}

/// A change seen by a list or a watch.
#[derive(Debug, Clone)]
pub enum ClusterEvent {
    /// A full list: the complete current set of objects of that kind.
    Listed {
        kind: Kind,
        items: Vec<Value>,
    },
    /// An object added or modified.
    Applied {
        kind: Kind,
        object: Value,
    },
    Deleted {
        kind: Kind,
        object: Value,
    },
}

/// What a scheduling pass asks the effects side to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST `pods/binding` for this Pod to this node and record `Scheduled`.
    Bind { pod: Value, node: String },
    /// Record `FailedScheduling` with `message` and, when `status_patch` is set, PATCH `pods/status` with it.
    Unschedulable {
        pod: Value,
        message: String,
        status_patch: Option<Value>,
    },
}

/// How a bind ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    Bound,
    /// The Pod is gone or already bound: nothing to retry.
    Moot,
    /// Anything else: retry after a back-off.
    Failed,
}

/// `namespace/name` of an object.
pub fn pod_key(pod: &Value) -> PodKey {
    format!(
        "{}/{}",
        str_at(pod, "/metadata/namespace"),
        str_at(pod, "/metadata/name")
    )
}

fn is_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Whether this scheduler should place the Pod: no node yet, ours, not being deleted, not finished, not gated.
pub fn needs_scheduling(pod: &Value) -> bool {
    str_at(pod, "/spec/nodeName").is_empty()
        && matches!(str_at(pod, "/spec/schedulerName"), "" | SCHEDULER_NAME)
        && pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
        && !is_terminal(pod)
        && pod
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// Whether the Pod takes room on its node (bound and not finished; Pods being deleted still hold their room).
fn holds_node_room(pod: &Value) -> bool {
    !str_at(pod, "/spec/nodeName").is_empty() && !is_terminal(pod)
}

/// The parts of a Node the filters read; a change elsewhere (heartbeats, images) does not retry Pods.
fn node_projection(node: &Value) -> Value {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == "Ready"))
        .map(|c| str_at(c, "/status").to_string());
    json!({
        "labels": node.pointer("/metadata/labels"),
        "spec": node.get("spec"),
        "allocatable": node.pointer("/status/allocatable"),
        "capacity": node.pointer("/status/capacity"),
        "ready": ready,
    })
}

/// The `pods/status` patch that sets `PodScheduled=False/Unschedulable` with `message`, or `None` when the Pod
/// already says exactly that. `lastTransitionTime` moves only when the condition's status changes.
pub fn unschedulable_status_patch(pod: &Value, message: &str, now: &str) -> Option<Value> {
    let existing = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == "PodScheduled"));
    let mut since = now.to_string();
    if let Some(c) = existing {
        if str_at(c, "/status") == "False" {
            if str_at(c, "/reason") == "Unschedulable" && str_at(c, "/message") == message {
                return None;
            }
            let t = str_at(c, "/lastTransitionTime");
            if !t.is_empty() {
                since = t.to_string();
            }
        }
    }
    Some(json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": since,
    }]}}))
}

/// A Pod being bound or bound but not yet seen so in the watch.
#[derive(Debug, Clone)]
struct Assumed {
    node: String,
    uid: String,
    /// The bind request has not answered yet.
    in_flight: bool,
}

/// The scheduler's cache and queue.
#[derive(Debug, Default)]
pub struct SchedulerState {
    nodes: BTreeMap<String, Value>,
    pods: HashMap<PodKey, Value>,
    nodes_listed: bool,
    pods_listed: bool,
    assumed: HashMap<PodKey, Assumed>,
    /// Pods to try in the next pass.
    active: HashSet<PodKey>,
    /// Pods that fit nowhere, waiting for a change.
    unschedulable: HashSet<PodKey>,
    /// Pods waiting out a bind failure, and when they may be retried.
    backoff: HashMap<PodKey, Instant>,
    /// Bind failures in a row, per Pod.
    failures: HashMap<PodKey, u32>,
}

impl SchedulerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves every unschedulable Pod back to the active queue.
    pub fn flush_unschedulable(&mut self) {
        self.active.extend(self.unschedulable.drain());
    }

    fn forget_pod(&mut self, key: &str) {
        self.active.remove(key);
        self.unschedulable.remove(key);
        self.backoff.remove(key);
        self.failures.remove(key);
    }

    /// Takes in a list or watch event.
    pub fn apply(&mut self, ev: ClusterEvent) {
        match ev {
            ClusterEvent::Listed {
                kind: Kind::Node,
                items,
            } => {
                self.nodes = items
                    .into_iter()
                    .map(|n| (str_at(&n, "/metadata/name").to_string(), n))
                    .collect();
                self.nodes_listed = true;
                self.flush_unschedulable();
            }
            ClusterEvent::Applied {
                kind: Kind::Node,
                object,
            } => {
                let name = str_at(&object, "/metadata/name").to_string();
                let changed = self
                    .nodes
                    .get(&name)
                    .is_none_or(|old| node_projection(old) != node_projection(&object));
                self.nodes.insert(name, object);
                if changed {
                    self.flush_unschedulable();
                }
            }
            ClusterEvent::Deleted {
                kind: Kind::Node,
                object,
            } => {
                self.nodes.remove(str_at(&object, "/metadata/name"));
            }
            ClusterEvent::Listed { kind: Kind::Pod, items } => {
                self.pods = items.into_iter().map(|p| (pod_key(&p), p)).collect();
                self.pods_listed = true;
                let pods = &self.pods;
                self.assumed
                    .retain(|k, a| a.in_flight || pods.get(k).is_some_and(|p| str_at(p, "/spec/nodeName").is_empty()));
                self.unschedulable.clear();
                self.active.retain(|k| pods.contains_key(k));
                self.backoff.retain(|k, _| pods.contains_key(k));
                self.failures.retain(|k, _| pods.contains_key(k));
                for (k, p) in &self.pods {
                    if needs_scheduling(p) && !self.assumed.contains_key(k) && !self.backoff.contains_key(k) {
                        self.active.insert(k.clone());
                    }
                }
            }
            ClusterEvent::Applied {
                kind: Kind::Pod,
                object,
            } => {
                let key = pod_key(&object);
                let bound = !str_at(&object, "/spec/nodeName").is_empty();
                let pending = needs_scheduling(&object);
                let holds_room = holds_node_room(&object);
                let old = self.pods.get(&key);
                let fresh = old.is_none_or(|o| !needs_scheduling(o) || o.get("spec") != object.get("spec"));
                let freed_room = old.is_some_and(holds_node_room) && !holds_room;
                self.pods.insert(key.clone(), object);
                if bound {
                    self.assumed.remove(&key);
                }
                if pending {
                    if fresh && !self.assumed.contains_key(&key) {
                        self.unschedulable.remove(&key);
                        self.backoff.remove(&key);
                        self.active.insert(key);
                    }
                } else {
                    self.forget_pod(&key);
                    // A Pod that finished frees its node's room.
                    if freed_room {
                        self.flush_unschedulable();
                    }
                }
            }
            ClusterEvent::Deleted {
                kind: Kind::Pod,
                object,
            } => {
                let key = pod_key(&object);
                let old = self.pods.remove(&key);
                self.forget_pod(&key);
                let assumed = self.assumed.remove(&key).is_some();
                if assumed || old.as_ref().is_some_and(holds_node_room) {
                    self.flush_unschedulable();
                }
            }
        }
    }

    /// The earliest time a backed-off Pod may be retried.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.values().min().copied()
    }

    /// Moves Pods whose back-off has passed to the active queue.
    pub fn expire_backoffs(&mut self, now: Instant) {
        let active = &mut self.active;
        self.backoff.retain(|k, t| {
            if *t <= now {
                active.insert(k.clone());
                false
            } else {
                true
            }
        });
    }

    /// The nodes with the Pods that hold room on them, bound or assumed.
    fn node_infos(&self) -> Vec<NodeInfo> {
        let mut infos: Vec<NodeInfo> = self.nodes.values().cloned().map(NodeInfo::new).collect();
        let index: HashMap<String, usize> = infos.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        for (k, p) in &self.pods {
            let node = match self.assumed.get(k) {
                Some(a) if str_at(p, "/spec/nodeName").is_empty() && !is_terminal(p) => a.node.as_str(),
                _ if holds_node_room(p) => str_at(p, "/spec/nodeName"),
                _ => continue,
            };
            if let Some(&i) = index.get(node) {
                infos[i].add_pod(p);
            }
        }
        infos
    }

    /// Tries every active Pod (highest priority first, then oldest) and says what to do. `now` is the RFC 3339
    /// time written into new conditions; `at` is the monotonic time for back-offs.
    pub fn schedule_pass(&mut self, now: &str, at: Instant) -> Vec<Action> {
        if !self.nodes_listed || !self.pods_listed || self.active.is_empty() {
            return Vec::new();
        }
        let mut queue: Vec<PodKey> = self
            .active
            .drain()
            .filter(|k| self.backoff.get(k).is_none_or(|t| *t <= at))
            .collect();
        let order = |k: &PodKey| {
            let p = self.pods.get(k);
            let prio = p
                .and_then(|p| p.pointer("/spec/priority"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let created = p
                .map(|p| str_at(p, "/metadata/creationTimestamp"))
                .unwrap_or("")
                .to_string();
            (std::cmp::Reverse(prio), created, k.clone())
        };
        queue.sort_by_cached_key(order);
        let mut infos = self.node_infos();
        let mut actions = Vec::new();
        for key in queue {
            let Some(pod) = self.pods.get(&key) else { continue };
            if !needs_scheduling(pod) || self.assumed.contains_key(&key) {
                continue;
            }
            match fit::schedule(pod, &infos) {
                Ok(i) => {
                    infos[i].add_pod(pod);
                    let node = infos[i].name.clone();
                    self.assumed.insert(
                        key.clone(),
                        Assumed {
                            node: node.clone(),
                            uid: str_at(pod, "/metadata/uid").to_string(),
                            in_flight: true,
                        },
                    );
                    self.unschedulable.remove(&key);
                    actions.push(Action::Bind { pod: pod.clone(), node });
                }
                Err(e) => {
                    let message = e.to_string();
                    let status_patch = unschedulable_status_patch(pod, &message, now);
                    self.unschedulable.insert(key.clone());
                    actions.push(Action::Unschedulable {
                        pod: pod.clone(),
                        message,
                        status_patch,
                    });
                }
            }
        }
        actions
    }

    /// Takes in how the bind of `key` (whose uid was `uid`) ended.
    pub fn bind_done(&mut self, key: &str, uid: &str, outcome: BindOutcome, at: Instant) {
        let Some(a) = self.assumed.get_mut(key) else { return };
        if a.uid != uid {
            return;
        }
        match outcome {
            BindOutcome::Bound => {
                a.in_flight = false;
                // The watch may already have shown the Pod bound.
                if self
                    .pods
                    .get(key)
                    .is_none_or(|p| !str_at(p, "/spec/nodeName").is_empty())
                {
                    self.assumed.remove(key);
                }
                self.failures.remove(key);
            }
            BindOutcome::Moot => {
                self.assumed.remove(key);
                self.failures.remove(key);
                self.flush_unschedulable();
            }
            BindOutcome::Failed => {
                self.assumed.remove(key);
                let failures = self.failures.get(key).copied().unwrap_or(0) + 1;
                self.failures.insert(key.to_string(), failures);
                let delay = INITIAL_BACKOFF
                    .saturating_mul(1u32 << (failures - 1).min(10))
                    .min(MAX_BACKOFF);
                self.backoff.insert(key.to_string(), at + delay);
                self.flush_unschedulable();
            }
        }
    }

    /// Pods waiting in the unschedulable set (for tests and logs).
    pub fn unschedulable_count(&self) -> usize {
        self.unschedulable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, memory: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {}}, "spec": {},
               "status": {"allocatable": {"cpu": "4", "memory": memory, "pods": "110"},
                          "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t0"}]}})
    }

    fn pod(name: &str, memory: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                            "creationTimestamp": format!("2024-01-01T00:00:0{}Z", name.len() % 10)},
               "spec": {"schedulerName": "default-scheduler",
                        "containers": [{"name": "c", "resources": {"requests": {"memory": memory}}}]},
               "status": {"phase": "Pending"}})
    }

    #[test]
    fn a_node_that_registers_then_turns_ready_takes_the_waiting_pod() {
        let mut s = synced(vec![], vec![]);
        let at = Instant::now();
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: pod("web", "64Mi"),
        });
        assert!(matches!(s.schedule_pass("T0", at)[..], [Action::Unschedulable { .. }]));
        let mut fresh_node = node("n", "1Gi");
        fresh_node["status"] = json!({});
        s.apply(ClusterEvent::Applied {
            kind: Kind::Node,
            object: fresh_node,
        });
        assert!(matches!(s.schedule_pass("T1", at)[..], [Action::Unschedulable { .. }]));
        let mut p = pod("web", "64Mi");
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]);
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: p,
        });
        s.apply(ClusterEvent::Applied {
            kind: Kind::Node,
            object: node("n", "1Gi"),
        });
        let actions = s.schedule_pass("T2", at);
        assert!(matches!(actions[..], [Action::Bind { .. }]), "{actions:?}");
    }

    fn bound(mut p: Value, node: &str) -> Value {
        p["spec"]["nodeName"] = json!(node);
        p
    }

    fn synced(nodes: Vec<Value>, pods: Vec<Value>) -> SchedulerState {
        let mut s = SchedulerState::new();
        s.apply(ClusterEvent::Listed {
            kind: Kind::Node,
            items: nodes,
        });
        s.apply(ClusterEvent::Listed {
            kind: Kind::Pod,
            items: pods,
        });
        s
    }

    fn binds(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Bind { pod, node } => Some((pod_key(pod), node.clone())),
                _ => None,
            })
            .collect()
    }

    fn messages(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Unschedulable { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    const NOW: &str = "2024-01-01T00:00:00Z";

    #[test]
    fn nothing_happens_before_both_lists() {
        let mut s = SchedulerState::new();
        s.apply(ClusterEvent::Listed {
            kind: Kind::Pod,
            items: vec![pod("a", "1Gi")],
        });
        assert!(s.schedule_pass(NOW, Instant::now()).is_empty());
        s.apply(ClusterEvent::Listed {
            kind: Kind::Node,
            items: vec![node("n1", "4Gi")],
        });
        assert_eq!(
            binds(&s.schedule_pass(NOW, Instant::now())),
            [("default/a".into(), "n1".into())]
        );
    }

    #[test]
    fn no_nodes_is_reported() {
        let mut s = synced(vec![], vec![pod("a", "1Gi")]);
        let acts = s.schedule_pass(NOW, Instant::now());
        assert_eq!(messages(&acts), ["no nodes available to schedule pods"]);
    }

    #[test]
    fn pods_not_for_this_scheduler_are_left_alone() {
        let mut other = pod("other", "1Gi");
        other["spec"]["schedulerName"] = json!("my-scheduler");
        let mut gated = pod("gated", "1Gi");
        gated["spec"]["schedulingGates"] = json!([{"name": "wait"}]);
        let mut deleting = pod("deleting", "1Gi");
        deleting["metadata"]["deletionTimestamp"] = json!(NOW);
        let mut done = pod("done", "1Gi");
        done["status"]["phase"] = json!("Succeeded");
        let mut s = synced(
            vec![node("n1", "4Gi")],
            vec![other, gated, deleting, done, bound(pod("b", "1Gi"), "n1")],
        );
        assert!(s.schedule_pass(NOW, Instant::now()).is_empty());
    }

    #[test]
    fn bound_and_assumed_pods_take_room_and_finished_ones_do_not() {
        let mut finished = bound(pod("f", "3Gi"), "n1");
        finished["status"]["phase"] = json!("Failed");
        let mut s = synced(vec![node("n1", "4Gi")], vec![bound(pod("b", "2Gi"), "n1"), finished]);
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: pod("x", "1Gi"),
        });
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: pod("yy", "1Gi"),
        });
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: pod("zzz", "1Gi"),
        });
        let acts = s.schedule_pass(NOW, Instant::now());
        // 2Gi bound + x and yy assumed in the same pass: zzz no longer fits.
        assert_eq!(binds(&acts).len(), 2);
        assert_eq!(
            messages(&acts),
            [
                "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption \
              victims found for incoming pod."
            ]
        );
    }

    #[test]
    fn a_new_node_retries_unschedulable_pods() {
        let mut s = synced(vec![node("n1", "1Gi")], vec![pod("big", "2Gi")]);
        assert_eq!(messages(&s.schedule_pass(NOW, Instant::now())).len(), 1);
        assert_eq!(s.unschedulable_count(), 1);
        // Nothing changed: nothing to do.
        assert!(s.schedule_pass(NOW, Instant::now()).is_empty());
        s.apply(ClusterEvent::Applied {
            kind: Kind::Node,
            object: node("n2", "8Gi"),
        });
        assert_eq!(
            binds(&s.schedule_pass(NOW, Instant::now())),
            [("default/big".into(), "n2".into())]
        );
    }

    #[test]
    fn heartbeats_do_not_retry_but_allocatable_changes_do() {
        let mut s = synced(vec![node("n1", "1Gi")], vec![pod("big", "2Gi")]);
        s.schedule_pass(NOW, Instant::now());
        let mut beat = node("n1", "1Gi");
        beat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("t1");
        s.apply(ClusterEvent::Applied {
            kind: Kind::Node,
            object: beat,
        });
        assert!(s.schedule_pass(NOW, Instant::now()).is_empty());
        s.apply(ClusterEvent::Applied {
            kind: Kind::Node,
            object: node("n1", "4Gi"),
        });
        assert_eq!(binds(&s.schedule_pass(NOW, Instant::now())).len(), 1);
    }

    #[test]
    fn a_deleted_or_finished_bound_pod_retries_unschedulable_pods() {
        let mut s = synced(
            vec![node("n1", "4Gi")],
            vec![bound(pod("old", "3Gi"), "n1"), pod("new", "2Gi")],
        );
        assert_eq!(messages(&s.schedule_pass(NOW, Instant::now())).len(), 1);
        let mut finished = bound(pod("old", "3Gi"), "n1");
        finished["status"]["phase"] = json!("Succeeded");
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: finished,
        });
        assert_eq!(binds(&s.schedule_pass(NOW, Instant::now())).len(), 1);

        let mut s = synced(
            vec![node("n1", "4Gi")],
            vec![bound(pod("old", "3Gi"), "n1"), pod("new", "2Gi")],
        );
        s.schedule_pass(NOW, Instant::now());
        s.apply(ClusterEvent::Deleted {
            kind: Kind::Pod,
            object: bound(pod("old", "3Gi"), "n1"),
        });
        assert_eq!(binds(&s.schedule_pass(NOW, Instant::now())).len(), 1);
    }

    #[test]
    fn our_own_status_patch_does_not_retry_the_pod() {
        let mut s = synced(vec![node("n1", "1Gi")], vec![pod("big", "2Gi")]);
        let acts = s.schedule_pass(NOW, Instant::now());
        let Action::Unschedulable {
            status_patch: Some(patch),
            ..
        } = &acts[0]
        else {
            panic!("{acts:?}")
        };
        let mut updated = pod("big", "2Gi");
        updated["status"]["conditions"] = patch["status"]["conditions"].clone();
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: updated.clone(),
        });
        assert!(s.schedule_pass(NOW, Instant::now()).is_empty());
        // A periodic flush retries it; the condition is already there, so no second patch.
        s.flush_unschedulable();
        let acts = s.schedule_pass("2024-01-01T00:05:00Z", Instant::now());
        assert!(
            matches!(&acts[..], [Action::Unschedulable { status_patch: None, .. }]),
            "{acts:?}"
        );
        // A spec change (here: a toleration) retries it.
        updated["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: updated,
        });
        assert_eq!(messages(&s.schedule_pass(NOW, Instant::now())).len(), 1);
    }

    #[test]
    fn status_patch_keeps_the_transition_time_while_still_unschedulable() {
        let mut p = pod("a", "1Gi");
        let patch = unschedulable_status_patch(&p, "m1", "T1").unwrap();
        assert_eq!(
            patch,
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                              "message": "m1", "lastProbeTime": null, "lastTransitionTime": "T1"}]}})
        );
        p["status"]["conditions"] = patch["status"]["conditions"].clone();
        assert_eq!(unschedulable_status_patch(&p, "m1", "T2"), None);
        let again = unschedulable_status_patch(&p, "m2", "T2").unwrap();
        assert_eq!(again["status"]["conditions"][0]["lastTransitionTime"], "T1");
        assert_eq!(again["status"]["conditions"][0]["message"], "m2");
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"}]);
        let flipped = unschedulable_status_patch(&p, "m1", "T3").unwrap();
        assert_eq!(flipped["status"]["conditions"][0]["lastTransitionTime"], "T3");
    }

    #[test]
    fn binds_in_flight_are_not_repeated_and_failures_back_off() {
        let t0 = Instant::now();
        let mut s = synced(vec![node("n1", "4Gi")], vec![pod("a", "1Gi")]);
        assert_eq!(binds(&s.schedule_pass(NOW, t0)).len(), 1);
        // An update of the Pod while its bind is in flight does not schedule it twice.
        let mut touched = pod("a", "1Gi");
        touched["metadata"]["labels"] = json!({"x": "y"});
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: touched,
        });
        assert!(s.schedule_pass(NOW, t0).is_empty());

        s.bind_done("default/a", "uid-a", BindOutcome::Failed, t0);
        assert_eq!(s.next_backoff(), Some(t0 + INITIAL_BACKOFF));
        assert!(s.schedule_pass(NOW, t0).is_empty());
        s.expire_backoffs(t0 + INITIAL_BACKOFF);
        assert_eq!(binds(&s.schedule_pass(NOW, t0 + INITIAL_BACKOFF)).len(), 1);
        s.bind_done("default/a", "uid-a", BindOutcome::Failed, t0);
        assert_eq!(s.next_backoff(), Some(t0 + 2 * INITIAL_BACKOFF));
        for _ in 0..10 {
            s.expire_backoffs(t0 + MAX_BACKOFF);
            s.schedule_pass(NOW, t0 + MAX_BACKOFF);
            s.bind_done("default/a", "uid-a", BindOutcome::Failed, t0);
        }
        assert_eq!(s.next_backoff(), Some(t0 + MAX_BACKOFF));
    }

    #[test]
    fn a_bound_pod_keeps_its_room_until_the_watch_shows_it() {
        let t0 = Instant::now();
        let mut s = synced(vec![node("n1", "4Gi")], vec![pod("a", "3Gi")]);
        s.schedule_pass(NOW, t0);
        s.bind_done("default/a", "uid-a", BindOutcome::Bound, t0);
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: pod("b", "2Gi"),
        });
        assert_eq!(messages(&s.schedule_pass(NOW, t0)).len(), 1);
        s.apply(ClusterEvent::Applied {
            kind: Kind::Pod,
            object: bound(pod("a", "3Gi"), "n1"),
        });
        // Still counted, now as a bound Pod.
        s.flush_unschedulable();
        assert_eq!(messages(&s.schedule_pass(NOW, t0)).len(), 1);
        // Deleting it frees the room and retries b.
        s.apply(ClusterEvent::Deleted {
            kind: Kind::Pod,
            object: bound(pod("a", "3Gi"), "n1"),
        });
        assert_eq!(binds(&s.schedule_pass(NOW, t0)), [("default/b".into(), "n1".into())]);
    }

    #[test]
    fn higher_priority_then_older_pods_go_first() {
        let mut low = pod("low", "3Gi");
        low["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        let mut high = pod("high", "3Gi");
        high["spec"]["priority"] = json!(1000);
        high["metadata"]["creationTimestamp"] = json!("2024-01-02T00:00:00Z");
        let mut s = synced(vec![node("n1", "4Gi")], vec![low, high]);
        assert_eq!(
            binds(&s.schedule_pass(NOW, Instant::now())),
            [("default/high".into(), "n1".into())]
        );

        let mut old = pod("old", "3Gi");
        old["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        let mut young = pod("young", "3Gi");
        young["metadata"]["creationTimestamp"] = json!("2024-01-02T00:00:00Z");
        let mut s = synced(vec![node("n1", "4Gi")], vec![young, old]);
        assert_eq!(
            binds(&s.schedule_pass(NOW, Instant::now())),
            [("default/old".into(), "n1".into())]
        );
    }
}
