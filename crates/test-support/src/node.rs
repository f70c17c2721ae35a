//! Test servers that run their node agent, isolated from each other on one machine: each claims a slot `k`
//! (an flock'ed file) and gets its own bridge `ppt<k>`, Pod range `10.244.<k>.0/24`, node name, run, log and cgroup
//! directories. Also the host-side leak check every node test ends with, and a forced cleanup for tests that fail
//! half-way.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where slot lock files live.
const SLOTS: &str = "/tmp/peapod-test-slots";

/// One isolated node's settings.
pub struct NodeSlot {
    pub k: u16,
    _lock: File,
    pub bridge: String,
    pub node_name: String,
    pub pod_cidr: String,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cgroup_parent: String,
    /// A registries.yaml sending docker.io and the seed's registries to a closed loopback port.
    pub registry_config: PathBuf,
}

impl NodeSlot {
    /// Claims a free slot (held until drop) with directories under `data`.
    pub fn claim(data: &Path) -> NodeSlot {
        std::fs::create_dir_all(SLOTS).expect("slots dir");
        for k in 1..=250u16 {
            let f = File::create(Path::new(SLOTS).join(k.to_string())).expect("slot file");
            // SAFETY: flock(2) on a valid descriptor; held for the life of the slot.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let closed = crate::free_port();
            let registry_config = data.join("registries.yaml");
            let unreachable = format!("http://127.0.0.1:{closed}");
            std::fs::write(
                &registry_config,
                format!(
                    "mirrors:\n  docker.io:\n    endpoint: [\"{unreachable}\"]\n  my-company:\n    endpoint: [\"{unreachable}\"]\n  registry.k8s.io:\n    endpoint: [\"{unreachable}\"]\n  quay.io:\n    endpoint: [\"{unreachable}\"]\n  ghcr.io:\n    endpoint: [\"{unreachable}\"]\n"
                ),
            )
            .expect("registries.yaml");
            return NodeSlot {
                k,
                _lock: f,
                bridge: format!("ppt{k}"),
                node_name: format!("node-{k}"),
                pod_cidr: format!("10.244.{k}.0/24"),
                run_dir: data.join("run"),
                log_dir: data.join("pod-logs"),
                cgroup_parent: format!("peapod-test-{k}"),
                registry_config,
            };
        }
        panic!("no free node slot in {SLOTS}");
    }

    /// The `peapod server` flags of this node.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--node-name",
            &self.node_name,
            "--bridge",
            &self.bridge,
            "--pod-cidr",
            &self.pod_cidr,
            "--pod-egress=false",
            "--node-port",
            "0",
            "--cgroup-parent",
            &self.cgroup_parent,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--run-dir".to_string(),
            self.run_dir.display().to_string(),
            "--pod-log-dir".to_string(),
            self.log_dir.display().to_string(),
            "--registry-config".to_string(),
            self.registry_config.display().to_string(),
        ])
        .collect()
    }

    /// What of this node's Pods is still on the host, looked up on the host itself (mounts, processes, links,
    /// runtime state, cgroups, files), not in Peapod's bookkeeping. Empty when nothing leaked.
    pub fn leaks(&self, data: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let run = self.run_dir.display().to_string();
        let pods_data = data.join("pods").display().to_string();
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in m.lines() {
                let mp = l.split(' ').nth(4).unwrap_or("");
                if mp.starts_with(&run) || mp.starts_with(&pods_data) {
                    out.push(format!("mount {mp}"));
                }
            }
        }
        for p in processes() {
            if p.1.contains("shim") && p.1.contains(&run) {
                out.push(format!("shim process {} {}", p.0, p.1));
            }
        }
        let list = Command::new("runc")
            .arg("--root")
            .arg(self.run_dir.join("runc"))
            .args(["list", "-q"])
            .output();
        if let Ok(o) = list {
            for id in String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()) {
                out.push(format!("runc container {id}"));
            }
        }
        let veths = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output();
        if let Ok(o) = veths {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                out.push(format!("veth {}", l.split(':').nth(1).unwrap_or("").trim()));
            }
        }
        for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let dir = ctrl.path().join(&self.cgroup_parent);
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
        for dir in [self.run_dir.join("pods"), data.join("pods"), self.log_dir.clone()] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                out.push(format!("file {}", e.path().display()));
            }
        }
        for e in std::fs::read_dir(data.join("network")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push(format!("IP allocation {name}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains(&self.node_name) {
                    out.push(format!("netns {}", e.path().display()));
                }
            }
        }
        out
    }

    /// Panics with the list unless nothing of this node's Pods is left on the host.
    pub fn assert_no_leaks(&self, data: &Path) {
        let leaks = self.leaks(data);
        assert!(leaks.is_empty(), "left on the host:\n{}", leaks.join("\n"));
    }

    /// Kills and removes everything of this node, whatever state a failed test left it in.
    pub fn force_clean(&self, data: &Path) {
        for (pid, cmd) in processes() {
            if cmd.contains("shim") && cmd.contains(&self.run_dir.display().to_string()) {
                // SAFETY: kill(2) on a pid read from /proc whose command line names this test's run dir.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let root = self.run_dir.join("runc");
        if let Ok(o) = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()) {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|mp| mp.starts_with(&data.display().to_string()))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let dir = ctrl.path().join(&self.cgroup_parent);
            let _ = Command::new("find")
                .arg(&dir)
                .args(["-depth", "-type", "d", "-delete"])
                .output();
        }
        if let Ok(o) = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
        {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                let name = l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let _ = Command::new("ip").args(["link", "del", &name]).output();
            }
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("peapod-{}", self.bridge)])
            .output();
    }
}

/// (pid, command line) of every process.
fn processes() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        out.push((pid, cmd));
    }
    out
}
