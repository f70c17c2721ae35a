//! Scheduling through the real kubectl against a real `peapod server --disable-agent`: the test makes its own Node
//! objects (capacity, Ready, labels, taints), creates Pods, and reads what kube-scheduler users read: the Pod's node,
//! its `PodScheduled` condition, and the `Scheduled` / `FailedScheduling` events in `kubectl describe pod`.

use peapod_test_support::Server;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn server() -> Server {
    Server::start(Path::new(env!("CARGO_BIN_EXE_peapod")))
}

/// A Ready node with `cpu`/`memory` allocatable, extra labels and taints (YAML flow lists).
fn node_yaml(name: &str, cpu: &str, memory: &str, labels: &str, taints: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}{labels}}}
spec:
  taints: {taints}
status:
  capacity: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: kubelet is posting ready status
    lastHeartbeatTime: "2025-01-01T00:00:00Z"
    lastTransitionTime: "2025-01-01T00:00:00Z"
"#
    )
}

fn pod_yaml(name: &str, cpu: &str, memory: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{extra_spec}  containers:
  - name: app
    image: nginx:1.21
    resources:
      requests: {{cpu: "{cpu}", memory: {memory}}}
"#
    )
}

fn create(s: &Server, yaml: &str) {
    s.kubectl_stdin(&["create", "-f", "-"], yaml).ok();
}

fn pod_field(s: &Server, pod: &str, jsonpath: &str) -> String {
    s.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={jsonpath}")])
        .ok()
        .stdout
}

fn node_of(s: &Server, pod: &str) -> String {
    pod_field(s, pod, "{.spec.nodeName}")
}

fn scheduled_condition(s: &Server, pod: &str) -> String {
    pod_field(
        s,
        pod,
        r#"{.status.conditions[?(@.type=="PodScheduled")].status}/{.status.conditions[?(@.type=="PodScheduled")].reason}/{.status.conditions[?(@.type=="PodScheduled")].message}"#,
    )
}

fn wait_for_node(s: &Server, pod: &str, node: &str) {
    let ok = Server::eventually(WAIT, || node_of(s, pod) == node);
    assert!(ok, "{pod} not bound to {node}: {:?}", node_of(s, pod));
}

fn wait_unschedulable(s: &Server, pod: &str, message: &str) {
    let want = format!("False/Unschedulable/{message}");
    let ok = Server::eventually(WAIT, || scheduled_condition(s, pod) == want);
    assert!(
        ok,
        "{pod}: PodScheduled is {:?}, want {want:?}",
        scheduled_condition(s, pod)
    );
}

/// Waits until `kubectl describe pod` shows an event line with all of `parts`; returns that line.
fn wait_event_line(s: &Server, pod: &str, parts: &[&str]) -> String {
    let mut found = String::new();
    let ok = Server::eventually(WAIT, || {
        let out = s.kubectl(&["describe", "pod", pod]).ok().stdout;
        match out.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            Some(l) => {
                found = l.to_string();
                true
            }
            None => {
                found = out;
                false
            }
        }
    });
    assert!(ok, "no event with {parts:?} for {pod}:\n{found}");
    found
}

#[test]
fn pods_go_where_they_fit_and_wait_for_room() {
    let s = server();
    create(&s, &node_yaml("small", "2", "2Gi", "", "[]"));

    // A Pod that fits is bound, with kube-scheduler's event.
    create(&s, &pod_yaml("fits", "500m", "512Mi", ""));
    wait_for_node(&s, "fits", "small");
    assert_eq!(scheduled_condition(&s, "fits"), "True//");
    let line = wait_event_line(&s, "fits", &["Scheduled", "default-scheduler"]);
    assert!(line.contains("Normal"), "{line}");
    assert!(line.ends_with("Successfully assigned default/fits to small"), "{line}");

    // More memory than the node has at all: preemption could not help (kube-scheduler ≥ 1.34).
    create(&s, &pod_yaml("big", "100m", "4Gi", ""));
    let too_big = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 \
                   Preemption is not helpful for scheduling.";
    wait_unschedulable(&s, "big", too_big);
    assert_eq!(pod_field(&s, "big", "{.status.phase}"), "Pending");
    assert_eq!(node_of(&s, "big"), "");
    let line = wait_event_line(&s, "big", &["FailedScheduling"]);
    assert!(line.contains("Warning") && line.contains("default-scheduler"), "{line}");
    assert!(line.ends_with(too_big), "{line}");

    // Room taken by another Pod: evicting could help in principle, but there are no victims.
    create(&s, &pod_yaml("squeezed", "100m", "1800Mi", ""));
    let no_room = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 \
                   No preemption victims found for incoming pod.";
    wait_unschedulable(&s, "squeezed", no_room);
    wait_event_line(&s, "squeezed", &["FailedScheduling", no_room]);

    // A node change the filters read retries them; the same failure again counts up the same event.
    s.kubectl(&["label", "node", "small", "tier=one"]).ok();
    wait_event_line(&s, "big", &["FailedScheduling", "(x2 over", too_big]);
    let counts = s
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=big,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].count}",
        ])
        .ok()
        .stdout;
    assert_eq!(counts, "2");

    // A bigger node: both waiting Pods are placed on it.
    create(&s, &node_yaml("large", "8", "16Gi", "", "[]"));
    wait_for_node(&s, "big", "large");
    wait_for_node(&s, "squeezed", "large");
    assert_eq!(scheduled_condition(&s, "big"), "True//");
    wait_event_line(&s, "big", &["Scheduled", "Successfully assigned default/big to large"]);

    // Deleting a Pod frees its room for one that was waiting for it.
    create(&s, &pod_yaml("after", "100m", "14Gi", ""));
    wait_unschedulable(
        &s,
        "after",
        "0/2 nodes are available: 2 Insufficient memory. preemption: 0/2 nodes are available: 1 No preemption \
         victims found for incoming pod, 1 Preemption is not helpful for scheduling.",
    );
    // No agent runs to finish a graceful deletion, so force it.
    s.kubectl(&["delete", "pod", "big", "--grace-period=0", "--force"]).ok();
    wait_for_node(&s, "after", "large");
}

#[test]
fn selectors_taints_and_cordons_are_explained() {
    let s = server();
    create(
        &s,
        &node_yaml(
            "gpu",
            "4",
            "8Gi",
            ", disk: ssd",
            "[{key: dedicated, value: gpu, effect: NoSchedule}]",
        ),
    );
    create(&s, &node_yaml("plain", "4", "8Gi", ", disk: hdd", "[]"));

    create(
        &s,
        &pod_yaml("wants-ssd", "100m", "64Mi", "  nodeSelector: {disk: ssd}\n"),
    );
    let msg = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had \
               untolerated taint(s). preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    wait_unschedulable(&s, "wants-ssd", msg);
    wait_event_line(
        &s,
        "wants-ssd",
        &["Warning", "FailedScheduling", "default-scheduler", msg],
    );

    // A toleration lets a Pod onto the tainted node.
    create(
        &s,
        &pod_yaml(
            "tolerant",
            "100m",
            "64Mi",
            "  nodeSelector: {disk: ssd}\n  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n",
        ),
    );
    wait_for_node(&s, "tolerant", "gpu");

    s.kubectl(&["cordon", "plain"]).ok();
    create(&s, &pod_yaml("anywhere", "100m", "64Mi", ""));
    let msg = "0/2 nodes are available: 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable. \
               preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    wait_unschedulable(&s, "anywhere", msg);

    // Removing the taint is a node change: both waiting Pods go to the node they can now use.
    s.kubectl(&["taint", "nodes", "gpu", "dedicated-"]).ok();
    wait_for_node(&s, "wants-ssd", "gpu");
    wait_for_node(&s, "anywhere", "gpu");

    // Uncordoning brings the other node back; required node affinity picks it by name.
    s.kubectl(&["uncordon", "plain"]).ok();
    let affinity = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        \
                    nodeSelectorTerms:\n        - matchExpressions:\n          - {key: disk, operator: NotIn, values: [ssd]}\n";
    create(&s, &pod_yaml("not-ssd", "100m", "64Mi", affinity));
    wait_for_node(&s, "not-ssd", "plain");
}

#[test]
fn a_node_that_is_not_ready_is_avoided() {
    let s = server();
    let yaml = node_yaml("sick", "4", "8Gi", "", "[]").replace("status: \"True\"", "status: \"False\"");
    create(&s, &yaml);
    create(&s, &pod_yaml("p", "100m", "64Mi", ""));
    wait_unschedulable(
        &s,
        "p",
        "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: 1 \
         Preemption is not helpful for scheduling.",
    );
    create(&s, &node_yaml("well", "4", "8Gi", "", "[]"));
    wait_for_node(&s, "p", "well");
}
