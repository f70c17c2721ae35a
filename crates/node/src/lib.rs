//! Peapod's node agent (our kubelet, DESIGN §2–§4): registers the Node and renews its Lease, watches the Pods bound
//! to it, and runs one pod worker per Pod that drives images, sandbox, volumes, init and app containers, restart
//! back-off and deletion, computing status in `peapod-api` and recording kubelet's events.

pub mod logs;
pub mod volumes;
