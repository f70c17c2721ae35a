//! This node's API objects: the Node (capacity and allocatable from the host, addresses, `nodeInfo`, the four
//! kubelet conditions, the node server's port) and its Lease in `kube-node-lease`, renewed every
//! [`LEASE_RENEW_INTERVAL`] as the kubelet does.

use crate::{AgentConfig, NodeError};
use jiff::Timestamp;
use peapod_client::{Client, PatchType};
use serde_json::{json, Value};
use std::time::Duration;

/// The kubelet renews its Lease every 10 s (`nodeLeaseRenewIntervalFraction` 0.25 of the 40 s duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// `leaseDurationSeconds` of the kubelet's Lease.
pub const LEASE_DURATION_SECONDS: i64 = 40;
/// The kubelet posts its full status at least this often even when nothing changed (`nodeStatusReportFrequency`).
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The kubelet's default hard eviction threshold for memory (`memory.available<100Mi`), kept out of allocatable.
pub const EVICTION_MEMORY_BYTES: i64 = 100 << 20;

/// What the host has.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_bytes: i64,
    pub ephemeral_bytes: i64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub arch: &'static str,
}

impl HostFacts {
    /// Reads the host: CPUs, `/proc/meminfo`, the data dir's filesystem, kernel release, `/etc/os-release`.
    pub fn read(config: &AgentConfig) -> HostFacts {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let ephemeral_bytes = rustix::fs::statvfs(&config.data_dir)
            .map(|s| (s.f_blocks as i64).saturating_mul(s.f_frsize as i64))
            .unwrap_or(0);
        let uname = rustix::system::uname();
        let kernel = uname.release().to_string_lossy().into_owned();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        HostFacts {
            cpus,
            memory_bytes,
            ephemeral_bytes,
            kernel,
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            arch: go_arch(),
        }
    }
}

/// Go's name for this machine's architecture, as Kubernetes labels use it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// (capacity, allocatable) as the kubelet reports them.
pub fn resources(h: &HostFacts, max_pods: u32) -> (Value, Value) {
    let capacity = json!({
        "cpu": h.cpus.to_string(),
        "memory": format!("{}Ki", h.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", h.ephemeral_bytes / 1024),
        "pods": max_pods.to_string(),
        "hugepages-2Mi": "0",
    });
    let allocatable = json!({
        "cpu": h.cpus.to_string(),
        "memory": format!("{}Ki", (h.memory_bytes - EVICTION_MEMORY_BYTES).max(0) / 1024),
        // The kubelet keeps 10% of the node filesystem for its hard eviction threshold (nodefs.available<10%).
        "ephemeral-storage": (h.ephemeral_bytes / 10 * 9).to_string(),
        "pods": max_pods.to_string(),
        "hugepages-2Mi": "0",
    });
    (capacity, allocatable)
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The Node's status: conditions with the kubelet's reasons and messages, addresses, nodeInfo, endpoint.
pub fn node_status(config: &AgentConfig, h: &HostFacts, server_port: u16, since: &str) -> Value {
    let ts = now();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "lastHeartbeatTime": ts, "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    let (capacity, allocatable) = resources(h, config.max_pods);
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server_port}},
        "nodeInfo": {
            "machineID": h.machine_id,
            "systemUUID": h.machine_id,
            "bootID": h.boot_id,
            "kernelVersion": h.kernel,
            "osImage": h.os_image,
            "containerRuntimeVersion": format!("peapod://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": format!("v1.32.0-peapod.{}", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": h.arch,
        },
    })
}

/// Creates the Node (or adopts an existing one of the same name) and writes its status.
pub async fn register(client: &Client, config: &AgentConfig, h: &HostFacts, server_port: u16) -> Result<(), NodeError> {
    let err = |m: String| NodeError::Register {
        node: config.node_name.clone(),
        message: m,
    };
    let name = &config.node_name;
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": h.arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": h.arch,
            },
        },
        "spec": {
            "podCIDR": config.network.pod_cidr.to_string(),
            "podCIDRs": [config.network.pod_cidr.to_string()],
        },
    });
    match client.create("/api/v1/nodes", &node).await {
        Ok(_) => {}
        Err(peapod_client::ClientError::Status { code: 409, .. }) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let status = node_status(config, h, server_port, &now());
    client
        .patch(
            &format!("/api/v1/nodes/{name}/status"),
            PatchType::Merge,
            &json!({ "status": status }),
        )
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Renews the Lease every [`LEASE_RENEW_INTERVAL`] and re-posts the status every [`STATUS_REPORT_INTERVAL`], for
/// as long as the agent runs. Errors are logged and retried on the next tick.
pub async fn heartbeat(client: Client, config: AgentConfig, h: HostFacts, server_port: u16) {
    let name = config.node_name.clone();
    let since = now();
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    let mut last_status = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(LEASE_RENEW_INTERVAL);
    loop {
        tick.tick().await;
        let renew = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": renew}});
        if let Err(e) = client.patch(&lease_path, PatchType::Merge, &patch).await {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": patch["spec"],
            });
            if let Err(e2) = client
                .create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", &lease)
                .await
            {
                tracing::warn!(node = %name, error = %e, create_error = %e2, "renew node lease");
            }
        }
        if last_status.elapsed() >= STATUS_REPORT_INTERVAL {
            last_status = tokio::time::Instant::now();
            let status = node_status(&config, &h, server_port, &since);
            if let Err(e) = client
                .patch(
                    &format!("/api/v1/nodes/{name}/status"),
                    PatchType::Merge,
                    &json!({ "status": status }),
                )
                .await
            {
                tracing::warn!(node = %name, error = %e, "post node status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_keeps_the_eviction_reserve() {
        let h = HostFacts {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_bytes: 100 << 30,
            kernel: "6.1".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            arch: "amd64",
        };
        let (cap, alloc) = resources(&h, 110);
        assert_eq!(cap["memory"], "4194304Ki");
        assert_eq!(alloc["memory"], "4091904Ki");
        assert_eq!(alloc["pods"], "110");
        assert_eq!(cap["cpu"], "2");
    }
}
