//! The host's cgroup layout and the Pod-level cgroups: where `runc` puts containers (`linux.cgroupsPath`), how to
//! read a container's OOM kills, and removing a Pod's cgroups in every hierarchy when the Pod goes.
//!
//! Detection follows youki's `libcgroups`: `/sys/fs/cgroup` is `cgroup2` (unified), `tmpfs` with v1 controllers
//! and maybe a `unified` v2 mount (legacy or hybrid — these machines). The root is a parameter so tests can use a
//! fake tree. runc creates and limits the per-container cgroups itself; Peapod only names them and removes the Pod's
//! parent directories afterwards.

use std::io;
use std::path::{Path, PathBuf};

/// The default root of cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupSetup {
    /// Pure cgroup v2.
    Unified,
    /// v1 controllers, possibly with a v2 hierarchy beside them (`unified/`).
    Legacy,
}

/// The host's cgroup layout under a root.
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
    setup: CgroupSetup,
}

impl Cgroups {
    /// Detects the layout under `root` (normally [`CGROUP_ROOT`]).
    pub fn detect(root: &Path) -> Cgroups {
        let setup = if root.join("cgroup.controllers").exists() {
            CgroupSetup::Unified
        } else {
            CgroupSetup::Legacy
        };
        Cgroups {
            root: root.to_path_buf(),
            setup,
        }
    }

    pub fn setup(&self) -> CgroupSetup {
        self.setup
    }

    /// The directory whose `memory.*` files describe the cgroup at `path` (relative, e.g. `/peapod/podX/ID`).
    pub fn memory_dir(&self, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        match self.setup {
            CgroupSetup::Unified => self.root.join(rel),
            CgroupSetup::Legacy => self.root.join("memory").join(rel),
        }
    }

    /// Every hierarchy directory a cgroup path exists in (v1: one per controller mount, plus `unified`).
    pub fn dirs_of(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self.setup {
            CgroupSetup::Unified => vec![self.root.join(rel)],
            CgroupSetup::Legacy => {
                let mut out = Vec::new();
                if let Ok(rd) = std::fs::read_dir(&self.root) {
                    for e in rd.flatten() {
                        // Symlinks like `cpu -> cpu,cpuacct` name the same hierarchy twice.
                        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                        if is_dir {
                            out.push(e.path().join(rel));
                        }
                    }
                }
                out.sort();
                out
            }
        }
    }

    /// Removes the cgroup `path` (and the empty children runc may have left) in every hierarchy. Processes still
    /// in it are killed first; a cgroup that stays busy is an error naming it.
    pub fn remove(&self, path: &str) -> Result<(), CgroupError> {
        for dir in self.dirs_of(path) {
            remove_tree(&dir)?;
        }
        Ok(())
    }
}

/// Removes a cgroup directory bottom-up. cgroupfs directories are removed with `rmdir` (their files cannot be
/// unlinked); processes left inside are sent SIGKILL and the removal is retried a few times while they exit.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io(dir, e)),
    };
    if !meta.is_dir() {
        return Ok(());
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    // Back-off for processes that are dying: 10 tries, 5 ms doubling (≈ 5 s in all).
    let mut wait = std::time::Duration::from_millis(5);
    for attempt in 0..10 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 9 => {
                kill_all(dir);
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(CgroupError::io(dir, e)),
        }
    }
    Ok(())
}

/// SIGKILLs every process listed in a cgroup directory.
fn kill_all(dir: &Path) {
    for file in ["cgroup.procs", "tasks"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            return;
        }
    }
}

/// How many times the OOM killer killed a process in the memory cgroup directory `dir` (v2 `memory.events`,
/// v1 `memory.oom_control`'s `oom_kill` line, kernel ≥ 4.13). Unknown → 0.
pub fn oom_kills(dir: &Path) -> u64 {
    let parse = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    };
    for file in ["memory.events", "memory.oom_control"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            if let Some(n) = parse(&text) {
                return n;
            }
        }
    }
    0
}

/// Errors of cgroup handling, naming the directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl CgroupError {
    fn io(path: &Path, source: io::Error) -> Self {
        CgroupError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_layouts_on_fake_trees() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("memory")).unwrap();
        std::fs::create_dir_all(d.path().join("pids")).unwrap();
        let c = Cgroups::detect(d.path());
        assert_eq!(c.setup(), CgroupSetup::Legacy);
        assert_eq!(c.memory_dir("/peapod/podx/c"), d.path().join("memory/peapod/podx/c"));
        assert_eq!(c.dirs_of("/a").len(), 2);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let c = Cgroups::detect(d.path());
        assert_eq!(c.setup(), CgroupSetup::Unified);
        assert_eq!(c.dirs_of("/a"), vec![d.path().join("a")]);
    }

    #[test]
    fn reads_oom_kills_v1_and_v2() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(oom_kills(d.path()), 0);
        std::fs::write(
            d.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), 2);
        std::fs::write(
            d.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), 1);
    }

    #[test]
    fn remove_of_plain_dirs_and_missing_is_ok() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("memory/peapod/podx/c1")).unwrap();
        let c = Cgroups::detect(d.path());
        c.remove("/peapod/podx").unwrap();
        assert!(!d.path().join("memory/peapod/podx").exists());
        c.remove("/peapod/podx").unwrap();
    }
}
