//! [`PodNetwork`]: the node's Pod network end to end. `setup` prepares the node (bridge, forwarding, the firewall
//! table); `attach` gives one Pod an address and wires its namespace; `detach` undoes that from what is on disk and
//! in the kernel (never from memory, so it works after an agent restart); `teardown` removes the node part.
//! The pieces live beside it: `ipam.rs` (addresses), `link.rs` (netlink), `netns.rs` (entering a namespace),
//! `nft.rs` (rules), `hostport.rs` (hostPort records).

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cidr::Ipv4Net;
use crate::error::NetworkError;
use crate::hostport::{resolve_mappings, HostPort, HostPortRecords, PortMapping};
use crate::ipam::Ipam;
use crate::link::{self, MAX_IFNAME_LEN};
use crate::netns::{open_netns, NetlinkConnection};
use crate::nft::{self, FirewallSpec};

/// The sysctl that lets the node route Pod traffic.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Longest accepted Pod UID. Kubernetes UIDs are 36-character UUIDs; the bound keeps file names sane.
const MAX_UID_LEN: usize = 128;

/// How the node's Pod network is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge's name, e.g. `peapod0`; also names the firewall table (`ip peapod-<bridge>`).
    pub bridge: String,
    /// This node's Pod range; the first host address is the gateway, on the bridge.
    pub pod_cidr: Ipv4Net,
    /// Every Pod of the cluster; traffic to it is never masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// The Service range; reachable even when egress is off.
    pub service_cidr: Ipv4Net,
    /// `false`: Pods may reach only Pods, Services and the node itself.
    pub egress: bool,
    /// IPAM state: one file per allocated IP, plus hostPort records.
    pub state_dir: PathBuf,
}

impl NetworkConfig {
    /// Rejects a layout that cannot work. Pure.
    pub fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |msg: String| Err(NetworkError::InvalidConfig(msg));
        let b = &self.bridge;
        // The bridge name is spliced into nft rule text and used as an interface name: only a plain identifier.
        if b.is_empty() || b.len() > MAX_IFNAME_LEN {
            return invalid(format!("bridge name {b:?} must be 1 to {MAX_IFNAME_LEN} characters"));
        }
        if !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return invalid(format!("bridge name {b:?} may only hold letters, digits, '-' and '_'"));
        }
        if self.pod_cidr.prefix > 30 {
            return invalid(format!("pod CIDR {} is too small (at most /30)", self.pod_cidr));
        }
        if !self.cluster_cidr.contains_net(&self.pod_cidr) {
            return invalid(format!(
                "pod CIDR {} is not inside cluster CIDR {}",
                self.pod_cidr, self.cluster_cidr
            ));
        }
        if self.service_cidr.contains_net(&self.pod_cidr) || self.pod_cidr.contains_net(&self.service_cidr) {
            return invalid(format!(
                "pod CIDR {} overlaps service CIDR {}",
                self.pod_cidr, self.service_cidr
            ));
        }
        Ok(())
    }

    /// The bridge's address: the first host of the Pod range.
    pub fn gateway(&self) -> Ipv4Addr {
        // validate() guarantees at least a /30, so offset 1 exists; fall back to the network address otherwise.
        self.pod_cidr.nth(1).unwrap_or(self.pod_cidr.addr)
    }

    fn firewall(&self) -> FirewallSpec {
        FirewallSpec {
            table: nft::table_name(&self.bridge),
            pod_cidr: self.pod_cidr,
            cluster_cidr: self.cluster_cidr,
            service_cidr: self.service_cidr,
            egress: self.egress,
        }
    }
}

/// A Pod's address as wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddress {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// A Pod UID becomes a file name (hostPort record) and seeds an interface name; only a plain token is accepted so
/// it can never climb out of the state directory (`/`, `.`, `..`) or hide as a dot-file.
pub fn validate_uid(uid: &str) -> Result<(), NetworkError> {
    let invalid = |reason| {
        Err(NetworkError::InvalidUid {
            uid: uid.to_string(),
            reason,
        })
    };
    if uid.is_empty() || uid.len() > MAX_UID_LEN {
        return invalid("must be 1 to 128 characters");
    }
    if uid.starts_with('.') {
        return invalid("must not start with '.'");
    }
    if !uid
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return invalid("may only hold letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// The node's Pod network. One per bridge; it owns its state directory.
#[derive(Debug)]
pub struct PodNetwork {
    config: NetworkConfig,
    /// The bridge's address, every Pod's default gateway.
    gateway: Ipv4Addr,
    ipam: Arc<Ipam>,
    records: HostPortRecords,
    /// Netlink in the node's own namespace.
    netlink: NetlinkConnection,
}

impl PodNetwork {
    /// Idempotent node setup: the bridge up with the gateway address, IPv4 forwarding on, and the firewall table
    /// rebuilt from `config` plus the hostPorts of Pods still allocated on disk (so an agent restart, or a change
    /// of `egress`, keeps running Pods' hostPorts).
    pub async fn setup(config: NetworkConfig) -> Result<Self, NetworkError> {
        config.validate()?;
        let gateway = config.gateway();
        let netlink = NetlinkConnection::current()?;
        link::ensure_bridge(&netlink.handle, &config.bridge, gateway, config.pod_cidr.prefix).await?;
        fs::write(IP_FORWARD, "1").map_err(|source| NetworkError::Sysctl {
            path: IP_FORWARD.into(),
            source,
        })?;

        let ipam = Arc::new(Ipam::open(&config.state_dir, config.pod_cidr, gateway)?);
        let records = HostPortRecords::open(&config.state_dir)?;
        let mut mappings = Vec::new();
        for uid in records.uids()? {
            match ipam.lookup(&uid)? {
                Some(ip) => mappings.extend(records.read(&uid)?.into_iter().filter(|m| m.pod_ip == ip)),
                // The Pod's address is gone, so are its rules.
                None => records.remove(&uid)?,
            }
        }
        let spec = config.firewall();
        nft::apply(
            &format!("set up table {}", spec.table),
            &nft::render_table(&spec, &mappings),
        )
        .await?;
        tracing::info!(
            bridge = %config.bridge,
            pod_cidr = %config.pod_cidr,
            %gateway,
            egress = config.egress,
            "pod network ready"
        );
        Ok(PodNetwork {
            config,
            gateway,
            ipam,
            records,
            netlink,
        })
    }

    /// The configuration this network was set up with.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The bridge's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Gives Pod `uid` an address and wires the namespace at `netns`: a veth pair (host end named from the UID, on
    /// the bridge; Pod end `eth0`), the address, `lo` up, the default route, and DNAT for `host_ports`. Repeating
    /// it for the same UID keeps the address and rewires (a recreated sandbox gets a fresh link). On error nothing
    /// is left behind: no link, no rule, no allocation.
    pub async fn attach(&self, uid: &str, netns: &Path, host_ports: &[HostPort]) -> Result<PodAddress, NetworkError> {
        validate_uid(uid)?;
        let allocation = self.ipam.allocate(uid)?;
        let ip = allocation.ip;
        let address = PodAddress {
            ip,
            prefix: self.config.pod_cidr.prefix,
            gateway: self.gateway,
        };
        match self.wire(uid, netns, address, allocation.new, host_ports).await {
            Ok(()) => {
                tracing::info!(pod.uid = uid, %ip, netns = %netns.display(), "pod network attached");
                Ok(address)
            }
            Err(e) => {
                if let Err(undo) = self.detach(uid).await {
                    tracing::warn!(pod.uid = uid, error = %undo, "undoing a failed attach failed too");
                }
                Err(e)
            }
        }
    }

    async fn wire(
        &self,
        uid: &str,
        netns: &Path,
        address: PodAddress,
        new_allocation: bool,
        host_ports: &[HostPort],
    ) -> Result<(), NetworkError> {
        let mappings = resolve_mappings(uid, address.ip, host_ports)?;
        // The allocation's fsync (milliseconds on a real disk) runs while the links are made.
        let persist = async {
            if !new_allocation {
                return Ok(());
            }
            let ipam = Arc::clone(&self.ipam);
            let ip = address.ip;
            tokio::task::spawn_blocking(move || ipam.persist(ip))
                .await
                .map_err(|e| NetworkError::Task {
                    what: format!("fsync of {ip}"),
                    detail: e.to_string(),
                })?
        };
        let (persisted, linked) = futures::join!(persist, self.wire_links(uid, netns, address));
        persisted?;
        linked?;

        let previous = self.records.read(uid)?;
        if previous.is_empty() && mappings.is_empty() {
            return Ok(());
        }
        // The record lists every mapping that may be in the kernel at any moment, so it is widened before the
        // rules change and narrowed after: a crash in between still leaves enough to remove them.
        let mut all = [previous.as_slice(), mappings.as_slice()].concat();
        all.sort();
        all.dedup();
        self.write_record(uid, &previous, &all)?;
        let table = nft::table_name(&self.config.bridge);
        let script = nft::render_remove_mappings(&table, &previous) + &nft::render_add_mappings(&table, &mappings);
        if let Err(e) = nft::apply(&format!("hostPorts of pod {uid}"), &script).await {
            // The transaction was all-or-nothing: the kernel still holds exactly `previous`, and so must the record
            // (a mapping we never added may belong to another Pod; removing it on undo would break that Pod).
            self.write_record(uid, &all, &previous)?;
            return Err(e);
        }
        self.write_record(uid, &all, &mappings)
    }

    /// Replaces the hostPort record of `uid` (currently `old`) with `new`, skipping the write (an fsync) when equal.
    fn write_record(&self, uid: &str, old: &[PortMapping], new: &[PortMapping]) -> Result<(), NetworkError> {
        match new {
            _ if old == new => Ok(()),
            [] => self.records.remove(uid),
            _ => self.records.write(uid, new),
        }
    }

    async fn wire_links(&self, uid: &str, netns_path: &Path, address: PodAddress) -> Result<(), NetworkError> {
        let handle = &self.netlink.handle;
        let host_name = link::host_veth_name(uid);
        let netns = open_netns(netns_path)?;
        let (in_pod, bridge, stale) = futures::join!(
            NetlinkConnection::in_namespace(&netns, netns_path),
            link::link_index(handle, &self.config.bridge),
            // A link left from an earlier attach of this UID (a repeat, or a recreated sandbox) is replaced.
            link::delete_link(handle, &host_name),
        );
        let in_pod = in_pod?;
        let bridge = bridge?.ok_or_else(|| NetworkError::LinkNotFound {
            name: self.config.bridge.clone(),
            context: format!(" (attaching pod {uid}; was the network torn down?)"),
        })?;
        stale?;
        let create = || link::create_pod_veth(handle, &host_name, bridge, netns.as_raw_fd());
        match create().await {
            Ok(()) => {}
            Err(e) if link::errno(&e) == Some(libc::EEXIST) => {
                // The namespace already has an eth0 (not ours any more: our host end is gone). Replace it once.
                tracing::debug!(pod.uid = uid, "replacing an existing eth0 in the pod namespace");
                link::delete_link(&in_pod.handle, link::POD_IFNAME).await?;
                create().await.map_err(|source| NetworkError::Netlink {
                    op: format!("create veth {host_name} for pod {uid}"),
                    source,
                })?;
            }
            Err(source) => {
                return Err(NetworkError::Netlink {
                    op: format!("create veth {host_name} for pod {uid}"),
                    source,
                })
            }
        }
        link::configure_pod_interfaces(&in_pod.handle, address.ip, address.prefix, address.gateway).await
    }

    /// Undoes [`PodNetwork::attach`]: deletes the host veth (which takes the Pod's eth0 with it), the Pod's hostPort
    /// rules and record, and its address. Idempotent; works from disk and kernel state alone.
    pub async fn detach(&self, uid: &str) -> Result<(), NetworkError> {
        validate_uid(uid)?;
        let host_name = link::host_veth_name(uid);
        link::delete_link(&self.netlink.handle, &host_name).await?;
        let mappings: Vec<PortMapping> = self.records.read(uid)?;
        if !mappings.is_empty() {
            let table = nft::table_name(&self.config.bridge);
            remove_mappings(&table, uid, &mappings).await?;
        }
        self.records.remove(uid)?;
        let freed = self.ipam.release(uid)?;
        tracing::info!(pod.uid = uid, ips = ?freed, "pod network detached");
        Ok(())
    }

    /// Current allocations read from disk: (ip, pod uid), sorted by address.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
        self.ipam.allocations()
    }

    /// Removes the bridge and the firewall table. Allocations on disk are kept (they belong to the state dir).
    pub async fn teardown(&self) -> Result<(), NetworkError> {
        link::delete_link(&self.netlink.handle, &self.config.bridge).await?;
        let table = nft::table_name(&self.config.bridge);
        nft::apply(&format!("delete table {table}"), &nft::render_delete_table(&table)).await?;
        tracing::info!(bridge = %self.config.bridge, "pod network torn down");
        Ok(())
    }
}

/// Removes a Pod's hostPort mappings: in one transaction normally; element by element if that fails, skipping any
/// element that now maps to another Pod (the record can list a mapping that never made it into the kernel, after a
/// crash between writing the record and applying the rules). Any other failure is returned: releasing the address
/// while its DNAT rules remain would hand the next Pod this Pod's hostPorts.
async fn remove_mappings(table: &str, uid: &str, mappings: &[PortMapping]) -> Result<(), NetworkError> {
    let what = format!("remove hostPorts of pod {uid}");
    if nft::apply(&what, &nft::render_remove_mappings(table, mappings))
        .await
        .is_ok()
    {
        return Ok(());
    }
    for mapping in mappings {
        match nft::apply(
            &what,
            &nft::render_remove_mappings(table, std::slice::from_ref(mapping)),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if nft::is_conflict(&e) => {
                tracing::warn!(
                    pod.uid = uid,
                    ?mapping,
                    "hostPort now belongs to another pod; left in place"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NetworkConfig {
        NetworkConfig {
            bridge: "peapod0".into(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            egress: true,
            state_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn config_checks() {
        assert!(config().validate().is_ok());
        assert_eq!(config().gateway(), Ipv4Addr::new(10, 244, 1, 1));
        let with = |f: fn(&mut NetworkConfig)| {
            let mut c = config();
            f(&mut c);
            c.validate()
        };
        assert!(with(|c| c.bridge = "a-very-long-bridge".into()).is_err());
        assert!(with(|c| c.bridge = "br;flush".into()).is_err());
        assert!(with(|c| c.bridge = String::new()).is_err());
        assert!(with(|c| c.pod_cidr = "10.244.1.0/31".parse().unwrap()).is_err());
        assert!(with(|c| c.pod_cidr = "10.245.1.0/24".parse().unwrap()).is_err());
        assert!(with(|c| c.service_cidr = "10.240.0.0/12".parse().unwrap()).is_err());
    }

    #[test]
    fn uid_checks() {
        assert!(validate_uid("6f1c2a1e-0000-4000-8000-000000000001").is_ok());
        assert!(validate_uid("pod_a.1").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", &"x".repeat(129)] {
            assert!(validate_uid(bad).is_err(), "{bad:?}");
        }
    }
}
