//! Peapod's node image store (DESIGN §5): turns `image: nginx:1.21` into a ready container root.
//!
//! - [`reference`]: image names normalised exactly as Kubernetes and containerd do (pure).
//! - [`oci`]: the manifest, index and config documents (pure).
//! - [`digest`]: content digests and hashing readers/writers.
//! - [`store`]: the OCI-layout content store under `<data-dir>/images/`, snapshots, leases, garbage collection.
//! - [`unpack`]: the safe layer unpacker — the security boundary against hostile images.
//! - [`archive`]: `docker save` / OCI archive loads and plain rootfs imports.
//! - [`registry`]: where and how to reach registries (k3s `registries.yaml`, docker `config.json`,
//!   `imagePullSecrets`) (pure).
//! - [`pull`]: streamed, deduplicated, parallel pulls with `oci-client`.
//! - [`rootfs`]: a container's root as an overlayfs mount of its image's snapshots.

pub mod archive;
pub mod digest;
pub mod oci;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod unpack;

use std::path::PathBuf;

pub use digest::Digest;
pub use reference::{ImageRef, ReferenceError};
pub use store::{Image, ImageStore};

/// Errors of the local store, loads and unpacks. Pull errors are [`pull::PullError`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
    #[error("image {0:?}: not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}
