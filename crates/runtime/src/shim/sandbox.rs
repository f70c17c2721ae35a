//! The Pod sandbox the shim holds: new network, IPC and UTS namespaces, kept alive by bind-mounting them on files
//! under the Pod's run directory (no pause container), the Pod's hostname, and the per-netns sysctls containerd sets
//! for every Pod (unprivileged ports and ICMP, so non-root containers can bind :80 and ping).

use std::path::{Path, PathBuf};

/// The namespaces a Pod's containers join, and how to find their files.
pub const NAMESPACES: [&str; 3] = ["net", "ipc", "uts"];

/// The file a namespace of the Pod is bind-mounted on.
pub fn ns_path(dir: &Path, ns: &str) -> PathBuf {
    dir.join("ns").join(ns)
}

/// Moves the (single-threaded) shim into fresh net/IPC/UTS namespaces and pins them on files under `dir/ns/`.
pub fn create(dir: &Path, hostname: &str) -> Result<(), String> {
    use rustix::thread::UnshareFlags;
    // SAFETY: the shim is single-threaded here (it forked from the agent's re-exec before any thread started), so
    // unsharing cannot leave other threads of this process in different namespaces.
    unsafe {
        rustix::thread::unshare_unsafe(UnshareFlags::NEWNET | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS)
            .map_err(|e| format!("unshare net/ipc/uts: {e}"))?;
    }
    rustix::system::sethostname(hostname.as_bytes()).map_err(|e| format!("sethostname {hostname:?}: {e}"))?;
    let ns_dir = dir.join("ns");
    std::fs::create_dir_all(&ns_dir).map_err(|e| format!("create {}: {e}", ns_dir.display()))?;
    for ns in NAMESPACES {
        let target = ns_path(dir, ns);
        std::fs::File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        rustix::mount::mount_bind(format!("/proc/self/ns/{ns}").as_str(), &target)
            .map_err(|e| format!("bind-mount the {ns} namespace on {}: {e}", target.display()))?;
    }
    // containerd's defaults for Pod sandboxes (enable_unprivileged_ports / enable_unprivileged_icmp). These are
    // per network namespace, and /proc/sys/net shows the writer's namespace.
    for (key, value) in [
        ("net/ipv4/ip_unprivileged_port_start", "0"),
        ("net/ipv4/ping_group_range", "0 2147483647"),
    ] {
        let path = Path::new("/proc/sys").join(key);
        std::fs::write(&path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Unmounts and removes the namespace files. Idempotent.
pub fn release(dir: &Path) {
    for ns in NAMESPACES {
        let target = ns_path(dir, ns);
        let _ = rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_file(&target);
    }
    let _ = std::fs::remove_dir(dir.join("ns"));
}
