//! The crate's one error type. Every variant says what failed and on what (which Pod, path, link or rule set);
//! a log line is never the only place that names the object.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while wiring the node's Pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CIDR string or value that is not a valid IPv4 network.
    #[error("invalid IPv4 CIDR {input:?}: {reason}")]
    InvalidCidr { input: String, reason: &'static str },

    /// A [`crate::NetworkConfig`] that cannot work (bad bridge name, Pod range outside the cluster range, ...).
    #[error("invalid network config: {0}")]
    InvalidConfig(String),

    /// A Pod UID that cannot be used as a file name or interface name seed.
    #[error("invalid pod uid {uid:?}: {reason}")]
    InvalidUid { uid: String, reason: &'static str },

    /// Every host address of the node's Pod range is taken.
    #[error("no free IP in {range} for pod {uid}")]
    RangeExhausted { range: String, uid: String },

    /// Reading or writing the on-disk state (IPAM files, hostPort records) failed.
    #[error("network state {path}: {op}: {source}")]
    State {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },

    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink { op: String, source: rtnetlink::Error },

    /// Opening or entering a Pod's network namespace failed.
    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },

    /// A link that must exist does not.
    #[error("link {name} not found{context}")]
    LinkNotFound { name: String, context: String },

    /// Writing a sysctl failed.
    #[error("sysctl {path}: {source}")]
    Sysctl { path: PathBuf, source: io::Error },

    /// Running `nft` failed (spawn error or non-zero exit with its stderr).
    #[error("nft ({what}): {detail}")]
    Nft { what: String, detail: String },

    /// A blocking task (disk IO or the netns thread) died before answering.
    #[error("internal task for {what} failed: {detail}")]
    Task { what: String, detail: String },
}
