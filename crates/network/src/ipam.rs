//! Node-local IP address management: one file per allocated Pod IP under the state directory (`<dir>/<ip>`, content
//! the owner's Pod UID), created with `O_CREAT|O_EXCL` so two allocations can never take the same address, even
//! across processes. Candidates are scanned round-robin from the address after the last one handed out (as the CNI
//! `host-local` plugin does), so a just-released IP is not reused at once; an address whose file is still on disk is
//! never reused. This module owns those files and nothing else (no links, no rules).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::cidr::Ipv4Net;
use crate::error::NetworkError;

/// The file remembering the last address handed out. A hint only: if it is lost or garbled the scan starts at the
/// beginning of the range, which is still correct (allocation files decide what is taken).
const CURSOR_FILE: &str = "last_reserved_ip";

/// Allocation files are private to the agent: they name which Pod owns which address.
const STATE_FILE_MODE: u32 = 0o600;
const STATE_DIR_MODE: u32 = 0o700;

/// The outcome of [`Ipam::allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    /// `false` when the Pod already held this address (an idempotent repeat).
    pub new: bool,
}

/// The allocator for one Pod range, backed by one directory.
#[derive(Debug)]
pub struct Ipam {
    /// Where the allocation files live.
    dir: PathBuf,
    /// The Pod range addresses come from.
    range: Ipv4Net,
    /// The bridge's address, never handed to a Pod.
    gateway: Ipv4Addr,
    /// In-memory view: the round-robin cursor and a UID → IP index loaded from disk at open (so the idempotency check
    /// on the Pod start path is a map lookup, not a directory scan). The disk stays the truth: release scans it.
    state: Mutex<IpamState>,
}

#[derive(Debug, Default)]
struct IpamState {
    last: Option<Ipv4Addr>,
    by_uid: HashMap<String, Ipv4Addr>,
}

/// The addresses to try, in order: every host of `range` except `gateway`, starting after `last` and wrapping around.
pub fn candidate_order(range: Ipv4Net, gateway: Ipv4Addr, last: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let hosts: Vec<Ipv4Addr> = range.hosts().filter(|ip| *ip != gateway).collect();
    let start = last
        .and_then(|last| hosts.iter().position(|ip| *ip == last))
        .map_or(0, |i| i + 1);
    let (before, after) = hosts.split_at(start.min(hosts.len()));
    after.iter().chain(before).copied().collect()
}

impl Ipam {
    /// Opens (creating if needed) the state directory and loads the existing allocations and cursor.
    pub fn open(dir: &Path, range: Ipv4Net, gateway: Ipv4Addr) -> Result<Self, NetworkError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(STATE_DIR_MODE)
            .create(dir)
            .map_err(|source| NetworkError::State {
                path: dir.to_path_buf(),
                op: "create directory",
                source,
            })?;
        let mut state = IpamState::default();
        for (ip, uid) in read_allocations(dir)? {
            state.by_uid.insert(uid, ip);
        }
        let cursor_path = dir.join(CURSOR_FILE);
        state.last = match fs::read_to_string(&cursor_path) {
            Ok(text) => text.trim().parse().ok().filter(|ip| range.contains(*ip)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(NetworkError::State {
                    path: cursor_path,
                    op: "read",
                    source,
                })
            }
        };
        Ok(Ipam {
            dir: dir.to_path_buf(),
            range,
            gateway,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, IpamState> {
        // A panic while holding the lock cannot leave the state half-written in a way that matters: the map is a
        // cache of the disk and the cursor a hint. So a poisoned lock is taken over, not propagated.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives `uid` an address: the one it already holds, or the next free one after the cursor. Only cheap
    /// syscalls (no fsync): the caller makes a new allocation durable with [`Ipam::persist`], which it can run in
    /// parallel with wiring the Pod, before reporting the address to anyone.
    pub fn allocate(&self, uid: &str) -> Result<Allocation, NetworkError> {
        let mut state = self.lock();
        if let Some(ip) = state.by_uid.get(uid) {
            return Ok(Allocation { ip: *ip, new: false });
        }
        for ip in candidate_order(self.range, self.gateway, state.last) {
            let path = self.dir.join(ip.to_string());
            if create_allocation_file(&path, uid)? {
                state.last = Some(ip);
                state.by_uid.insert(uid.to_string(), ip);
                self.write_cursor(ip);
                tracing::debug!(pod.uid = uid, %ip, "allocated pod IP");
                return Ok(Allocation { ip, new: true });
            }
        }
        Err(NetworkError::RangeExhausted {
            range: self.range.to_string(),
            uid: uid.to_string(),
        })
    }

    /// Makes the allocation file of `ip` durable (fsync). Blocking: call it from a blocking task. On ext4/xfs the
    /// fsync of a new file also commits the journal entry that created its name, so no directory fsync is needed.
    pub fn persist(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let path = self.dir.join(ip.to_string());
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| NetworkError::State {
                path,
                op: "fsync",
                source,
            })
    }

    /// Records the cursor; failure is logged, not fatal (see [`CURSOR_FILE`]).
    fn write_cursor(&self, ip: Ipv4Addr) {
        let path = self.dir.join(CURSOR_FILE);
        if let Err(e) = fs::write(&path, ip.to_string()) {
            tracing::warn!(path = %path.display(), error = %e, "could not record the IPAM cursor");
        }
    }

    /// The address `uid` holds according to the disk, if any.
    pub fn lookup(&self, uid: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        Ok(read_allocations(&self.dir)?
            .into_iter()
            .find(|(_, owner)| owner == uid)
            .map(|(ip, _)| ip))
    }

    /// Frees every address `uid` holds on disk (normally one). Returns the freed addresses. Idempotent.
    pub fn release(&self, uid: &str) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let mut state = self.lock();
        let mut freed = Vec::new();
        for (ip, owner) in read_allocations(&self.dir)? {
            if owner != uid {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => freed.push(ip),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(NetworkError::State {
                        path,
                        op: "remove",
                        source,
                    })
                }
            }
        }
        state.by_uid.remove(uid);
        if !freed.is_empty() {
            tracing::debug!(pod.uid = uid, ips = ?freed, "released pod IP");
        }
        Ok(freed)
    }

    /// Current allocations on disk, sorted by address.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
        read_allocations(&self.dir)
    }
}

/// Creates the allocation file for `path` exclusively. `Ok(false)` when the address is taken.
fn create_allocation_file(path: &Path, uid: &str) -> Result<bool, NetworkError> {
    let state_err = |op, source| NetworkError::State {
        path: path.to_path_buf(),
        op,
        source,
    };
    // O_EXCL is the allocation: the kernel guarantees only one creator wins, whoever else is scanning.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(STATE_FILE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => return Err(state_err("create", source)),
    };
    if let Err(source) = file.write_all(uid.as_bytes()) {
        // Never leave a half-written allocation behind: an empty file would block the address forever.
        let _ = fs::remove_file(path);
        return Err(state_err("write", source));
    }
    Ok(true)
}

/// Reads every `<ip>` file of `dir` (other names are ignored: the cursor, the hostPort records).
fn read_allocations(dir: &Path) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
    let entries = fs::read_dir(dir).map_err(|source| NetworkError::State {
        path: dir.to_path_buf(),
        op: "read directory",
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetworkError::State {
            path: dir.to_path_buf(),
            op: "read directory",
            source,
        })?;
        let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let mut uid = String::new();
        match File::open(&path).and_then(|mut f| f.read_to_string(&mut uid)) {
            Ok(_) => out.push((ip, uid.trim().to_string())),
            // Released between readdir and open.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NetworkError::State {
                    path,
                    op: "read",
                    source,
                })
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Ipv4Net {
        "10.9.8.0/29".parse().unwrap()
    }
    const GW: Ipv4Addr = Ipv4Addr::new(10, 9, 8, 1);

    #[test]
    fn order_skips_network_gateway_broadcast_and_wraps() {
        let all = candidate_order(range(), GW, None);
        let last_octets: Vec<u8> = all.iter().map(|ip| ip.octets()[3]).collect();
        assert_eq!(last_octets, vec![2, 3, 4, 5, 6]);
        let after4: Vec<u8> = candidate_order(range(), GW, Some(Ipv4Addr::new(10, 9, 8, 4)))
            .iter()
            .map(|ip| ip.octets()[3])
            .collect();
        assert_eq!(after4, vec![5, 6, 2, 3, 4]);
        // A cursor outside the candidates (gateway, foreign address) starts from the beginning.
        assert_eq!(candidate_order(range(), GW, Some(GW)), all);
        assert_eq!(candidate_order(range(), GW, Some(Ipv4Addr::new(1, 2, 3, 4))), all);
    }

    #[test]
    fn allocates_round_robin_and_never_reuses_a_held_ip() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), range(), GW).unwrap();
        let a = ipam.allocate("a").unwrap();
        assert_eq!(
            a,
            Allocation {
                ip: Ipv4Addr::new(10, 9, 8, 2),
                new: true
            }
        );
        ipam.persist(a.ip).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), Allocation { ip: a.ip, new: false });
        let b = ipam.allocate("b").unwrap();
        assert_eq!(b.ip, Ipv4Addr::new(10, 9, 8, 3));
        assert_eq!(ipam.release("a").unwrap(), vec![a.ip]);
        assert_eq!(ipam.release("a").unwrap(), Vec::<Ipv4Addr>::new());
        // The released .2 is not handed out next.
        assert_eq!(ipam.allocate("c").unwrap().ip, Ipv4Addr::new(10, 9, 8, 4));
        assert_eq!(fs::read_to_string(dir.path().join("10.9.8.4")).unwrap(), "c");

        // A reopened allocator continues after the cursor and knows the existing owners.
        drop(ipam);
        let ipam = Ipam::open(dir.path(), range(), GW).unwrap();
        assert_eq!(ipam.allocate("b").unwrap(), Allocation { ip: b.ip, new: false });
        assert_eq!(ipam.allocate("d").unwrap().ip, Ipv4Addr::new(10, 9, 8, 5));
        assert_eq!(ipam.allocate("e").unwrap().ip, Ipv4Addr::new(10, 9, 8, 6));
        // Wraps to the freed .2; .3/.4 are still held.
        assert_eq!(ipam.allocate("f").unwrap().ip, Ipv4Addr::new(10, 9, 8, 2));
        let err = ipam.allocate("g").unwrap_err();
        assert!(matches!(err, NetworkError::RangeExhausted { .. }), "{err}");
        assert_eq!(ipam.lookup("d").unwrap(), Some(Ipv4Addr::new(10, 9, 8, 5)));
        let owners: Vec<String> = ipam.allocations().unwrap().into_iter().map(|(_, uid)| uid).collect();
        assert_eq!(owners, vec!["f", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_file_created_by_someone_else_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), range(), GW).unwrap();
        fs::write(dir.path().join("10.9.8.2"), "other").unwrap();
        assert_eq!(ipam.allocate("a").unwrap().ip, Ipv4Addr::new(10, 9, 8, 3));
        // release only removes the caller's own files.
        ipam.release("a").unwrap();
        assert!(dir.path().join("10.9.8.2").exists());
    }
}
