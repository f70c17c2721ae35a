//! Links over netlink (rtnetlink): the node bridge, a Pod's veth pair, addresses and routes. Also the pure naming
//! rules for the links we create (host veth name from the Pod UID, the bridge's fixed MAC). No firewall, no IPAM.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use sha2::{Digest, Sha256};

use crate::error::NetworkError;

/// Linux interface names hold at most 15 bytes (IFNAMSIZ 16 with the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// The Pod end's name inside its namespace, as in Kubernetes.
pub const POD_IFNAME: &str = "eth0";

/// Prefix of host-side veth names; the rest is derived from the UID.
const HOST_VETH_PREFIX: &str = "veth";

/// The host end of a Pod's veth: `veth` + the first 11 hex digits of SHA-256(uid). A hash, not a UID prefix, so any
/// UID (and two UIDs sharing a prefix) gives a distinct, valid name; 44 bits make a collision on one node
/// negligible. Deterministic, so `detach` after a restart finds the link from the UID alone.
pub fn host_veth_name(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let len = MAX_IFNAME_LEN - HOST_VETH_PREFIX.len();
    format!("{HOST_VETH_PREFIX}{}", &hex[..len])
}

/// A fixed, locally administered unicast MAC for the bridge, derived from its name. Without an explicit address a
/// Linux bridge takes the lowest MAC among its ports and changes it as Pods come and go, which leaves every Pod's
/// ARP entry for the gateway stale; a set address stays put.
pub fn bridge_mac(bridge: &str) -> [u8; 6] {
    let digest = Sha256::digest(format!("peapod-bridge:{bridge}").as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    // Locally administered (bit 1 set), unicast (bit 0 clear).
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The errno of a netlink error reply, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

fn netlink_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// The index of link `name`, or `None` if there is none.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(netlink_err(format!("look up link {name}"))(e)),
    }
}

/// Makes sure bridge `name` exists, is up and has `gateway/prefix`. Returns its index.
pub async fn ensure_bridge(handle: &Handle, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<u32, NetworkError> {
    if link_index(handle, name).await?.is_none() {
        let msg = LinkBridge::new(name).address(bridge_mac(name).to_vec()).build();
        match handle.link().add(msg).execute().await {
            Ok(()) => tracing::info!(bridge = name, "created bridge"),
            // Someone created it in between; fine, it is configured below.
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(netlink_err(format!("create bridge {name}"))(e)),
        }
    }
    let index = link_index(handle, name)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound {
            name: name.to_string(),
            context: " after creating it".into(),
        })?;
    set_up(handle, index, name).await?;
    handle
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .replace()
        .execute()
        .await
        .map_err(netlink_err(format!("add {gateway}/{prefix} to {name}")))?;
    Ok(index)
}

/// Sets link `index` (called `name` in messages) up.
pub async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetworkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink_err(format!("set {name} up")))
}

/// Deletes link `name`. `Ok(false)` if it did not exist.
pub async fn delete_link(handle: &Handle, name: &str) -> Result<bool, NetworkError> {
    let Some(index) = link_index(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(netlink_err(format!("delete link {name}"))(e)),
    }
}

/// Creates the veth pair in one request: `host_name` in the caller's namespace, enslaved to `bridge_index` and up;
/// its peer created directly inside the namespace `netns_fd` as `eth0` (down). Creating the peer in place (rather than
/// creating it here and moving it) means no temporary name in the host namespace and one request fewer.
pub async fn create_pod_veth(
    handle: &Handle,
    host_name: &str,
    bridge_index: u32,
    netns_fd: RawFd,
) -> Result<(), rtnetlink::Error> {
    // The peer is not set up here: the kernel (6.x) answers ENOTCONN to an up flag on a peer created in another
    // namespace. `configure_pod_interfaces` brings it up from inside.
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(POD_IFNAME.to_string())
        .setns_by_fd(netns_fd)
        .build();
    let msg = LinkVeth::new(host_name, POD_IFNAME)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(bridge_index)
        .up()
        .build();
    handle.link().add(msg).execute().await
}

/// Inside a Pod's namespace (through a handle bound there): eth0 up with `ip/prefix`, `lo` up, default route via
/// `gateway`.
pub async fn configure_pod_interfaces(
    handle: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetworkError> {
    let eth0 = link_index(handle, POD_IFNAME)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound {
            name: POD_IFNAME.to_string(),
            context: " in the pod's network namespace".into(),
        })?;
    let lo = async {
        let index = link_index(handle, "lo")
            .await?
            .ok_or_else(|| NetworkError::LinkNotFound {
                name: "lo".into(),
                context: " in the pod's network namespace".into(),
            })?;
        set_up(handle, index, "lo").await
    };
    let eth0_up = set_up(handle, eth0, POD_IFNAME);
    let address = async {
        handle
            .address()
            .add(eth0, IpAddr::V4(ip), prefix)
            .replace()
            .execute()
            .await
            .map_err(netlink_err(format!("add {ip}/{prefix} to {POD_IFNAME}")))
    };
    // Independent requests, pipelined on the one socket.
    let (lo, eth0_up, address) = futures::join!(lo, eth0_up, address);
    lo?;
    eth0_up?;
    address?;
    // The gateway is reachable once the address (and with it the connected route) exists.
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(eth0)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(netlink_err(format!("add default route via {gateway}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ() {
        let a = host_veth_name("6f1c2a1e-0000-4000-8000-000000000001");
        let b = host_veth_name("6f1c2a1e-0000-4000-8000-000000000002");
        assert_eq!(a.len(), MAX_IFNAME_LEN);
        assert!(a.starts_with("veth"));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(a, host_veth_name("6f1c2a1e-0000-4000-8000-000000000001"));
        // Pinned: a restarted agent must derive the same name for an existing Pod (SHA-256("pod-a") = 9bb860b4a6e...).
        assert_eq!(host_veth_name("pod-a"), "veth9bb860b4a6e");
    }

    #[test]
    fn bridge_mac_is_local_unicast_and_stable() {
        let mac = bridge_mac("peapod0");
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
        assert_eq!(mac, bridge_mac("peapod0"));
        assert_ne!(mac, bridge_mac("peapod1"));
    }
}
