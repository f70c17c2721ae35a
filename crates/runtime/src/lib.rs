//! Peapod's container runtime (DESIGN §4): the OCI runtime spec a container runs with, the host's cgroups, and the
//! per-Pod shim that owns the Pod's namespaces and container processes, with the client the agent talks to it by.
//!
//! - [`spec`]: the OCI `config.json` from a resolved container (pure).
//! - [`cgroup`]: cgroup v1/v2 layout, OOM counts, removing a Pod's cgroups.
//! - [`protocol`]: the agent ↔ shim messages.
//! - [`shim`]: the `peapod shim` process (single-threaded, epoll).
//! - [`client`]: the agent's async client of a shim.

pub mod cgroup;
pub mod client;
pub mod protocol;
pub mod shim;
pub mod spec;

pub use client::{EventStream, ShimClient};
pub use protocol::{ContainerRecord, Event, ExitRecord, StartContainer};
pub use shim::ShimArgs;

/// Errors of the runtime seam, naming the Pod directory or path involved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("shim {dir}: {message}")]
    Shim { dir: String, message: String },
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
}
