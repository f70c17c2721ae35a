//! Peapod's Pod network (DESIGN §6), built in: the node bridge (`peapod0`), one veth pair and one IP per Pod from
//! the node's Pod CIDR (node-local IPAM on disk), loopback and the default route inside the Pod, masquerade for
//! traffic leaving the cluster range, the `--pod-egress=false` drop rule and `hostPort` DNAT (nftables, one table
//! of our own). Links are made over netlink; no process is spawned on the Pod start path unless it has hostPorts.

mod cidr;
mod error;
mod hostport;
mod ipam;
mod link;
mod netns;
mod nft;
mod pod_network;

pub use cidr::Ipv4Net;
pub use error::NetworkError;
pub use hostport::{HostPort, Protocol};
pub use link::host_veth_name;
pub use nft::table_name;
pub use pod_network::{validate_uid, NetworkConfig, PodAddress, PodNetwork};
