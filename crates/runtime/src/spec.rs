//! Builds the OCI runtime spec (`config.json`) a container runs with, from what the agent resolved out of the Pod
//! and its image. Pure: no IO.
//!
//! The defaults are containerd's CRI defaults as the kubelet drives them (reference/security-reliability.md §1):
//! the 14 default capabilities in bounding/effective/permitted with inheritable and ambient empty (CVE-2022-24769:
//! a non-empty inheritable set let setuid-less binaries regain capabilities), the kubelet's masked and read-only
//! paths, `no_new_privs` only when `allowPrivilegeEscalation: false`, `/sys` and the cgroup filesystem read-only,
//! and new PID, mount and cgroup namespaces per container while net, IPC and UTS are the Pod's (joined by path).

use serde_json::{json, Value};

/// containerd's default capability set (`pkg/oci/spec.go` `defaultUnixCaps`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The kubelet's masked paths (`pkg/securitycontext/util.go`, with kubernetes#131018's `/proc/interrupts`).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's read-only paths.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The user a container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Limits for the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    /// `memory.limit_in_bytes` / `memory.max`.
    pub memory_limit: Option<i64>,
    /// CPU weight from requests (`cpu.shares`; runc converts to `cpu.weight` on v2).
    pub cpu_shares: Option<u64>,
    /// CFS quota from limits, with [`CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// The CFS period the kubelet uses (`quotaPeriod = 100000` µs).
pub const CPU_PERIOD: u64 = 100_000;
/// The smallest `cpu.shares` the kernel accepts (`MinShares` in the kubelet's cm helpers).
pub const MIN_SHARES: u64 = 2;

/// CPU shares for a request in millicores (`MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    ((milli as u64) * 1024 / 1000).max(MIN_SHARES)
}

/// CFS quota for a limit in millicores (`MilliCPUToQuota`, minimum 1000 µs).
pub fn milli_cpu_to_quota(milli: i64) -> i64 {
    if milli <= 0 {
        return 0;
    }
    (milli * CPU_PERIOD as i64 / 1000).max(1000)
}

/// A bind or special mount, in OCI form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    /// A recursive private bind mount, read-only when asked, with `nosuid,nodev` as containerd gives volumes.
    pub fn bind(source: impl Into<String>, destination: impl Into<String>, read_only: bool) -> Mount {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if read_only { "ro" } else { "rw" }.to_string());
        Mount {
            destination: destination.into(),
            kind: "bind".into(),
            source: source.into(),
            options,
        }
    }

    fn to_json(&self) -> Value {
        json!({"destination": self.destination, "type": self.kind, "source": self.source, "options": self.options})
    }
}

/// The Pod's shared namespaces, as bind-mounted files the shim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: String,
    pub ipc: String,
    pub uts: String,
}

/// Everything a container's spec is built from.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    pub args: Vec<String>,
    /// `KEY=value`, in order.
    pub env: Vec<String>,
    pub cwd: String,
    pub user: ProcessUser,
    pub rootfs: String,
    pub readonly_rootfs: bool,
    pub hostname: String,
    /// Volumes and the Pod's managed files (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, `/dev/shm`,
    /// `/dev/termination-log`), added after the defaults.
    pub mounts: Vec<Mount>,
    pub namespaces: Option<PodNamespaces>,
    /// Relative to the cgroup root, e.g. `/peapod/pod<uid>/<id>`.
    pub cgroups_path: String,
    pub resources: Resources,
    /// Capabilities after `securityContext.capabilities` add/drop were applied.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub privileged: bool,
    /// A cgroup namespace (containerd adds one on cgroup v2 for unprivileged containers).
    pub cgroup_namespace: bool,
    pub annotations: Vec<(String, String)>,
    /// The kubelet's per-QoS OOM score (`-997` Guaranteed, `1000` BestEffort, computed for Burstable).
    pub oom_score_adj: i32,
}

/// Applies `securityContext.capabilities` to the default set, `ALL` first (containerd's `WithCapabilities`).
pub fn apply_capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let norm = |c: &str| {
        let up = c.to_ascii_uppercase();
        if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if add.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    }
    if drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    }
    for c in add.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        let c = norm(c);
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in drop.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        let c = norm(c);
        caps.retain(|x| *x != c);
    }
    caps
}

/// Every capability Linux 6.x knows, for `add: [ALL]` and privileged containers.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The default mounts of a CRI container (containerd's `defaultMounts` without `/run`, plus the cgroup filesystem).
fn default_mounts(privileged: bool) -> Vec<Mount> {
    let m = |dest: &str, kind: &str, source: &str, opts: &[&str]| Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    };
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        ),
    ]
}

/// The OCI runtime spec for one container.
pub fn build_spec(c: &ContainerConfig) -> Value {
    let caps = if c.privileged {
        ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    } else {
        c.capabilities.clone()
    };
    // Volumes sorted by depth so a parent never shadows a child mounted before it (containerd sorts the same way).
    let mut extra = c.mounts.clone();
    extra.sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());
    let mounts: Vec<Value> = default_mounts(c.privileged)
        .iter()
        .chain(extra.iter())
        .map(Mount::to_json)
        .collect();
    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
    if c.cgroup_namespace && !c.privileged {
        namespaces.push(json!({"type": "cgroup"}));
    }
    match &c.namespaces {
        Some(ns) => {
            namespaces.push(json!({"type": "network", "path": ns.net}));
            namespaces.push(json!({"type": "ipc", "path": ns.ipc}));
            namespaces.push(json!({"type": "uts", "path": ns.uts}));
        }
        None => {
            namespaces.push(json!({"type": "network"}));
            namespaces.push(json!({"type": "ipc"}));
            namespaces.push(json!({"type": "uts"}));
        }
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if c.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    if let Some(limit) = c.resources.memory_limit {
        resources["memory"] = json!({"limit": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = c.resources.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = c.resources.cpu_quota {
        cpu.insert("quota".into(), json!(q));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = c.resources.pids_limit {
        resources["pids"] = json!({"limit": p});
    }
    let annotations: serde_json::Map<String, Value> = c
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": c.cgroups_path,
        "resources": resources,
    });
    if !c.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let mut process = json!({
        "terminal": false,
        "user": {"uid": c.user.uid, "gid": c.user.gid},
        "args": c.args,
        "env": c.env,
        "cwd": if c.cwd.is_empty() { "/" } else { c.cwd.as_str() },
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        // No rlimits: the CRI path strips containerd's default RLIMIT_NOFILE, so containers inherit the limits
        // the runtime (here the shim) runs with.
        "noNewPrivileges": c.no_new_privileges,
        "oomScoreAdj": c.oom_score_adj,
    });
    if !c.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(c.user.additional_gids);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": c.rootfs, "readonly": c.readonly_rootfs},
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    });
    if !c.hostname.is_empty() {
        spec["hostname"] = json!(c.hostname);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ContainerConfig {
        ContainerConfig {
            args: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["PATH=/usr/bin".into()],
            rootfs: "/r".into(),
            capabilities: apply_capabilities(&[], &[]),
            namespaces: Some(PodNamespaces {
                net: "/run/p/ns/net".into(),
                ipc: "/run/p/ns/ipc".into(),
                uts: "/run/p/ns/uts".into(),
            }),
            cgroups_path: "/peapod/podu/c1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_containerds_cri_defaults() {
        let s = build_spec(&base());
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(s["process"]["capabilities"].get("inheritable").is_none());
        assert!(s["process"]["capabilities"].get("ambient").is_none());
        assert_eq!(s["process"]["noNewPrivileges"], false);
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["linux"]["maskedPaths"].as_array().unwrap().len(), 12);
        let ns: Vec<&Value> = s["linux"]["namespaces"].as_array().unwrap().iter().collect();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/p/ns/net"));
        assert!(ns.iter().any(|n| n["type"] == "pid" && n.get("path").is_none()));
        let sys = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(sys["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn capabilities_apply_all_first_then_entries() {
        let caps = apply_capabilities(&["ALL".into()], &["chown".into()]);
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        let caps = apply_capabilities(&["NET_ADMIN".into()], &["ALL".into()]);
        assert_eq!(caps, vec!["CAP_NET_ADMIN".to_string()]);
        let caps = apply_capabilities(&[], &["NET_RAW".into()]);
        assert_eq!(caps.len(), 13);
    }

    #[test]
    fn resources_and_cpu_conversion() {
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_quota(500), 50_000);
        assert_eq!(milli_cpu_to_quota(1), 1000);
        let mut c = base();
        c.resources = Resources {
            memory_limit: Some(64 << 20),
            cpu_shares: Some(102),
            cpu_quota: Some(50_000),
            pids_limit: Some(4096),
        };
        let s = build_spec(&c);
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 4096);
    }

    #[test]
    fn mounts_sorted_by_depth_after_defaults() {
        let mut c = base();
        c.mounts = vec![Mount::bind("/a", "/data/sub", false), Mount::bind("/b", "/data", true)];
        let s = build_spec(&c);
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        let i = dests.iter().position(|d| *d == "/data").unwrap();
        let j = dests.iter().position(|d| *d == "/data/sub").unwrap();
        assert!(i < j);
        assert_eq!(dests[0], "/proc");
    }
}
