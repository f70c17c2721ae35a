//! `hostPort`s: the types a caller passes, the resolved mapping (node address/port → Pod address/port) the firewall
//! needs, and the per-Pod record on disk (`<state_dir>/hostports/<uid>`) that lets `detach` and a restarted agent
//! remove or restore exactly the rules a Pod was given without asking the kernel. Rendering rules is `nft.rs`'s job.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NetworkError;

/// The directory under the state dir holding one record per Pod that has hostPorts.
const RECORD_DIR: &str = "hostports";

/// A transport protocol, as in a container port's `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    /// nft's spelling (`tcp`, `udp`, `sctp`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// A container port published on the node (`ports[].hostPort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The node port; 0 means "not published" and is skipped, as Kubernetes does.
    pub host_port: u16,
    /// The port inside the Pod.
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only connections to this node address are forwarded; `None` (or `0.0.0.0`) means any local address.
    pub host_ip: Option<Ipv4Addr>,
}

/// One forwarding rule: traffic to `host_ip:host_port/protocol` goes to `pod_ip:container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub host_port: u16,
    /// `None`: any address of the node.
    pub host_ip: Option<Ipv4Addr>,
    pub pod_ip: Ipv4Addr,
    pub container_port: u16,
}

/// Turns a Pod's hostPorts into mappings to `pod_ip`: drops unpublished ports (hostPort 0), treats `0.0.0.0` as any
/// address, removes duplicates. Rejects a container port of 0.
pub fn resolve_mappings(uid: &str, pod_ip: Ipv4Addr, ports: &[HostPort]) -> Result<Vec<PortMapping>, NetworkError> {
    let mut out = Vec::new();
    for port in ports.iter().filter(|p| p.host_port != 0) {
        if port.container_port == 0 {
            return Err(NetworkError::InvalidConfig(format!(
                "pod {uid}: hostPort {} maps to container port 0",
                port.host_port
            )));
        }
        out.push(PortMapping {
            protocol: port.protocol,
            host_port: port.host_port,
            host_ip: port.host_ip.filter(|ip| !ip.is_unspecified()),
            pod_ip,
            container_port: port.container_port,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The per-Pod hostPort records under one state directory.
#[derive(Debug, Clone)]
pub struct HostPortRecords {
    dir: PathBuf,
}

impl HostPortRecords {
    /// Creates the record directory if needed.
    pub fn open(state_dir: &Path) -> Result<Self, NetworkError> {
        let dir = state_dir.join(RECORD_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| NetworkError::State {
                path: dir.clone(),
                op: "create directory",
                source,
            })?;
        Ok(HostPortRecords { dir })
    }

    /// The record's path. `uid` was validated by the caller (no `/`, not `.`/`..`), so it stays inside `dir`.
    fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(uid)
    }

    /// Writes (replacing) the record of `uid`, durably: it must exist before the rules it describes do.
    pub fn write(&self, uid: &str, mappings: &[PortMapping]) -> Result<(), NetworkError> {
        let path = self.path(uid);
        let tmp = self.dir.join(format!(".{uid}.tmp"));
        let state_err = |op, source| NetworkError::State {
            path: path.clone(),
            op,
            source,
        };
        let json = serde_json::to_vec(mappings)
            .map_err(|e| state_err("encode", io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|source| state_err("create", source))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|source| state_err("write", source))?;
        fs::rename(&tmp, &path).map_err(|source| state_err("rename", source))
    }

    /// The record of `uid`; empty when there is none.
    pub fn read(&self, uid: &str) -> Result<Vec<PortMapping>, NetworkError> {
        let path = self.path(uid);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NetworkError::State {
                path,
                op: "decode",
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(NetworkError::State {
                path,
                op: "read",
                source,
            }),
        }
    }

    /// Removes the record of `uid`. Idempotent.
    pub fn remove(&self, uid: &str) -> Result<(), NetworkError> {
        let path = self.path(uid);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetworkError::State {
                path,
                op: "remove",
                source,
            }),
        }
    }

    /// The UIDs that have a record.
    pub fn uids(&self) -> Result<Vec<String>, NetworkError> {
        let read_err = |source| NetworkError::State {
            path: self.dir.clone(),
            op: "read directory",
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            if let Some(name) = entry.file_name().to_str().filter(|n| !n.starts_with('.')) {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 7);

    fn hp(host_port: u16, container_port: u16, protocol: Protocol, host_ip: Option<Ipv4Addr>) -> HostPort {
        HostPort {
            host_port,
            container_port,
            protocol,
            host_ip,
        }
    }

    #[test]
    fn resolves_skips_unpublished_and_normalises_any_address() {
        let ports = [
            hp(8080, 80, Protocol::Tcp, None),
            hp(0, 81, Protocol::Tcp, None),
            hp(5353, 53, Protocol::Udp, Some(Ipv4Addr::UNSPECIFIED)),
            hp(8080, 80, Protocol::Tcp, None),
            hp(9000, 9000, Protocol::Sctp, Some(Ipv4Addr::new(192, 0, 2, 9))),
        ];
        let m = resolve_mappings("u", POD, &ports).unwrap();
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(|m| m.pod_ip == POD));
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert_eq!(m[1].host_ip, None);
        assert_eq!(m[2].host_ip, Some(Ipv4Addr::new(192, 0, 2, 9)));
        assert!(resolve_mappings("u", POD, &[hp(80, 0, Protocol::Tcp, None)]).is_err());
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let records = HostPortRecords::open(dir.path()).unwrap();
        assert!(records.read("pod-a").unwrap().is_empty());
        let m = resolve_mappings("pod-a", POD, &[hp(8080, 80, Protocol::Tcp, None)]).unwrap();
        records.write("pod-a", &m).unwrap();
        assert_eq!(records.read("pod-a").unwrap(), m);
        assert_eq!(records.uids().unwrap(), vec!["pod-a"]);
        records.remove("pod-a").unwrap();
        records.remove("pod-a").unwrap();
        assert!(records.uids().unwrap().is_empty());
    }
}
