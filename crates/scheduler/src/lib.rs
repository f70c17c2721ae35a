//! Peapod's scheduler: watches Pods without a node, filters nodes as kube-scheduler's default plugins do, binds
//! each Pod through `pods/binding`, and records `FailedScheduling` with Kubernetes' message when none fits.
