//! A Pod's sandbox on this node: its directories, its shim (which holds the namespaces), its network, and the
//! files the kubelet manages for every container (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, the
//! shared `/dev/shm`). Tearing down removes all of it, from what is on disk, so it also works for a Pod the agent
//! only finds after a restart.

use crate::AgentContext;
use peapod_runtime::ShimClient;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// containerd's per-sandbox `/dev/shm` size (`defaultShmSize`, 64 MiB).
pub const SHM_SIZE: &str = "size=65536k";

/// Where a Pod's things live on the node.
#[derive(Debug, Clone)]
pub struct PodPaths {
    /// `/run/peapod/pods/<uid>`: the shim's socket, namespaces and bundles.
    pub run: PathBuf,
    /// `<data-dir>/pods/<uid>`: container roots, volumes, managed files.
    pub data: PathBuf,
    /// `/var/log/pods/<ns>_<name>_<uid>`.
    pub logs: PathBuf,
}

impl PodPaths {
    pub fn new(ctx: &AgentContext, namespace: &str, name: &str, uid: &str) -> Self {
        PodPaths {
            run: ctx.config.run_dir.join("pods").join(uid),
            data: ctx.config.data_dir.join("pods").join(uid),
            logs: ctx.config.pod_log_dir.join(format!("{namespace}_{name}_{uid}")),
        }
    }

    pub fn netns(&self) -> PathBuf {
        peapod_runtime::shim::ns_path(&self.run, "net")
    }

    pub fn shm(&self) -> PathBuf {
        self.data.join("shm")
    }

    pub fn etc_hosts(&self) -> PathBuf {
        self.data.join("etc-hosts")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.data.join("resolv.conf")
    }

    pub fn hostname_file(&self) -> PathBuf {
        self.data.join("hostname")
    }

    pub fn container_dir(&self, name: &str, attempt: u32) -> PathBuf {
        self.data.join("containers").join(format!("{name}-{attempt}"))
    }
}

/// The hostname of a Pod: `spec.hostname` or its name, at most 63 characters.
pub fn pod_hostname(name: &str, hostname: Option<&str>) -> String {
    let h = hostname.filter(|h| !h.is_empty()).unwrap_or(name);
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The kubelet's managed `/etc/hosts` (`managedHostsFileContent`).
pub fn hosts_file(
    ip: Option<Ipv4Addr>,
    hostname: &str,
    subdomain: Option<&str>,
    namespace: &str,
    domain: &str,
) -> String {
    let mut s = String::from("# Kubernetes-managed hosts file.\n");
    s.push_str("127.0.0.1\tlocalhost\n");
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str("fe00::0\tip6-localnet\n");
    s.push_str("fe00::0\tip6-mcastprefix\n");
    s.push_str("fe00::1\tip6-allnodes\n");
    s.push_str("fe00::2\tip6-allrouters\n");
    if let Some(ip) = ip {
        match subdomain.filter(|s| !s.is_empty()) {
            Some(sub) => s.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{namespace}.svc.{domain}\t{hostname}\n"
            )),
            None => s.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    s
}

/// `resolv.conf` for `dnsPolicy: ClusterFirst` (containerd's order: search, nameserver, options). The name server is
/// the cluster DNS address; the host's resolver is never used for cluster-first Pods, so no Pod lookup leaves
/// the node unless a cluster DNS forwards it.
pub fn resolv_conf(namespace: &str, domain: &str, nameserver: Ipv4Addr) -> String {
    format!("search {namespace}.svc.{domain} svc.{domain} {domain}\nnameserver {nameserver}\noptions ndots:5\n")
}

/// Creates the Pod's directories, shim (namespaces), network and managed files. Returns the shim and the IP.
pub async fn create(
    ctx: &AgentContext,
    paths: &PodPaths,
    pod: &k8s_openapi::api::core::v1::Pod,
    host_ports: &[peapod_network::HostPort],
) -> Result<(ShimClient, Ipv4Addr), String> {
    let meta = &pod.metadata;
    let name = meta.name.as_deref().unwrap_or("");
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let uid = meta.uid.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let hostname = pod_hostname(name, spec.and_then(|s| s.hostname.as_deref()));
    for d in [&paths.run, &paths.data, &paths.logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    let shim = if paths.run.join(peapod_runtime::shim::SOCKET).exists() {
        ShimClient::new(&paths.run)
    } else {
        let args = peapod_runtime::ShimArgs {
            dir: paths.run.clone(),
            runtime: ctx.config.oci_runtime.clone(),
            runtime_root: ctx.config.run_dir.join("runc").display().to_string(),
            hostname: hostname.clone(),
        };
        ShimClient::spawn(&ctx.config.exe, &args)
            .await
            .map_err(|e| e.to_string())?
    };
    let addr = ctx
        .network
        .attach(uid, &paths.netns(), host_ports)
        .await
        .map_err(|e| format!("failed to set up sandbox container network for pod \"{name}\": {e}"))?;
    let domain = &ctx.config.cluster_domain;
    let subdomain = spec.and_then(|s| s.subdomain.as_deref());
    let files = [
        (
            paths.etc_hosts(),
            hosts_file(Some(addr.ip), &hostname, subdomain, ns, domain),
        ),
        (paths.resolv_conf(), resolv_conf(ns, domain, ctx.config.cluster_dns)),
        (paths.hostname_file(), format!("{hostname}\n")),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    mount_shm(&paths.shm())?;
    Ok((shim, addr.ip))
}

/// The Pod's shared `/dev/shm`: a tmpfs every container bind-mounts (`MS_NOEXEC|MS_NOSUID|MS_NODEV`, 1777, 64 MiB).
fn mount_shm(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    use rustix::mount::MountFlags;
    let data = std::ffi::CString::new(format!("mode=1777,{SHM_SIZE}")).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "shm",
        dir,
        "tmpfs",
        MountFlags::NOEXEC | MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )
    .map_err(|e| format!("mount shm on {}: {e}", dir.display()))
}

/// True when `dir` is a mount point (its device differs from its parent's).
pub fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(Ok(b))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    a.dev() != b.dev()
}

/// Removes everything of a Pod but its logs: containers (through the shim, or by the runtime if the shim is gone),
/// namespaces, network, volumes, container roots, cgroups and directories. Idempotent.
pub async fn destroy(ctx: &AgentContext, paths: &PodPaths, uid: &str) -> Result<(), String> {
    let shim = ShimClient::new(&paths.run);
    let mut errors = Vec::new();
    if shim.shutdown().await.is_err() {
        // No shim answers: kill what the runtime still has of this Pod's bundles, then release the namespaces.
        kill_leftovers(ctx, paths).await;
    }
    if let Err(e) = ctx.network.detach(uid).await {
        errors.push(e.to_string());
    }
    let data = paths.data.clone();
    let images = ctx.images.clone();
    let run = paths.run.clone();
    let cgroups = ctx.cgroups.clone();
    let cgroup = format!("/{}/pod{uid}", ctx.config.cgroup_parent);
    let more = tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        for ns in peapod_runtime::shim::NAMESPACES {
            let p = peapod_runtime::shim::ns_path(&run, ns);
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
        if let Ok(rd) = std::fs::read_dir(data.join("containers")) {
            for e in rd.flatten() {
                let dir = e.path();
                let root = peapod_image::rootfs::Rootfs {
                    rootfs: dir.join("rootfs"),
                    lease: lease_of(&dir),
                    dir,
                };
                if let Err(e) = peapod_image::rootfs::remove(&images, &root) {
                    errors.push(e.to_string());
                }
            }
        }
        if let Err(e) = crate::volumes::teardown(&data) {
            errors.push(e.to_string());
        }
        let shm = data.join("shm");
        if is_mount_point(&shm) {
            let _ = rustix::mount::unmount(&shm, rustix::mount::UnmountFlags::DETACH);
        }
        if let Err(e) = cgroups.remove(&cgroup) {
            errors.push(e.to_string());
        }
        for d in [&data, &run] {
            if let Err(e) = std::fs::remove_dir_all(d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!("remove {}: {e}", d.display()));
                }
            }
        }
        errors
    })
    .await
    .unwrap_or_else(|e| vec![format!("teardown task: {e}")]);
    errors.extend(more);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The image lease of a container directory (written beside its root when it was prepared).
pub fn lease_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("lease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Without a shim: `runc delete --force` every container whose bundle is under the Pod's run directory, and kill the
/// shim process if its PID file is still there.
async fn kill_leftovers(ctx: &AgentContext, paths: &PodPaths) {
    if let Ok(pid) = std::fs::read_to_string(paths.run.join("shim.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                // The PID file is ours; a recycled PID is possible only if the shim died long ago, and its
                // cmdline is checked before killing.
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&paths.run.display().to_string()) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(paths.run.join("containers")) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = tokio::process::Command::new(&ctx.config.oci_runtime)
                .arg("--root")
                .arg(ctx.config.run_dir.join("runc"))
                .args(["delete", "--force", &id])
                .stderr(std::process::Stdio::null())
                .status()
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_files_read_as_the_kubelet_writes_them() {
        let h = hosts_file(
            Some(Ipv4Addr::new(10, 244, 0, 5)),
            "nginx-pod",
            None,
            "default",
            "cluster.local",
        );
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("fe00::2\tip6-allrouters\n10.244.0.5\tnginx-pod\n"));
        let h = hosts_file(
            Some(Ipv4Addr::new(10, 244, 0, 5)),
            "web",
            Some("sub"),
            "ns",
            "cluster.local",
        );
        assert!(h.ends_with("10.244.0.5\tweb.sub.ns.svc.cluster.local\tweb\n"));
        assert_eq!(
            resolv_conf("default", "cluster.local", Ipv4Addr::new(10, 96, 0, 10)),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(pod_hostname("nginx-pod", None), "nginx-pod");
        assert_eq!(pod_hostname(&"a".repeat(70), None).len(), 63);
        assert_eq!(pod_hostname("x", Some("custom")), "custom");
    }
}
