//! A container's root filesystem: an overlayfs mount of its image's snapshots (read-only lower layers, shared by
//! every container of that image) with the container's own `upper/` and `work/` directories, under a directory the
//! caller owns (`<data-dir>/pods/<uid>/containers/<name>/`). A lease in the image store keeps the snapshots from
//! garbage collection while the root exists.
//!
//! Layer directories are passed to the mount as `/proc/self/fd/N` of `O_PATH` descriptors, so the mount option
//! string stays short (one page at most) however many layers an image has and however deep the data dir is.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::store::{remove_tree, Image, ImageStore};
use crate::ImageError;

/// A prepared (mounted) container root.
#[derive(Clone, Debug)]
pub struct Rootfs {
    /// The container's directory holding `rootfs/`, `upper/`, `work/`.
    pub dir: PathBuf,
    /// The mounted root.
    pub rootfs: PathBuf,
    pub lease: String,
}

fn errno_at(path: &Path) -> impl FnOnce(rustix::io::Errno) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn open_path(p: &Path) -> Result<OwnedFd, ImageError> {
    rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(errno_at(p))
}

/// Mounts a root for `image` at `dir/rootfs`; `lease` names it in the store (e.g. `<pod-uid>_<container>`).
pub fn prepare(store: &ImageStore, image: &Image, dir: &Path, lease: &str) -> Result<Rootfs, ImageError> {
    let lowers = store.ensure_unpacked(image)?;
    let chains: Vec<_> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
    store.add_lease(lease, &chains)?;
    let result = mount_overlay(&lowers, dir);
    match result {
        Ok(rootfs) => Ok(Rootfs {
            dir: dir.to_path_buf(),
            rootfs,
            lease: lease.to_string(),
        }),
        Err(e) => {
            let _ = store.remove_lease(lease);
            Err(e)
        }
    }
}

fn mount_overlay(lowers_bottom_first: &[PathBuf], dir: &Path) -> Result<PathBuf, ImageError> {
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).map_err(|source| ImageError::Io {
            path: d.clone(),
            source,
        })?;
    }
    let mut lowers: Vec<PathBuf> = lowers_bottom_first.iter().rev().cloned().collect();
    if lowers.is_empty() {
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).map_err(|source| ImageError::Io {
            path: empty.clone(),
            source,
        })?;
        lowers.push(empty);
    }
    let mut fds = Vec::with_capacity(lowers.len() + 2);
    for l in &lowers {
        fds.push(open_path(l)?);
    }
    let upper_fd = open_path(&upper)?;
    let work_fd = open_path(&work)?;
    let lowerdir: Vec<String> = fds.iter().map(|f| format!("/proc/self/fd/{}", f.as_raw_fd())).collect();
    let data = format!(
        "lowerdir={},upperdir=/proc/self/fd/{},workdir=/proc/self/fd/{}",
        lowerdir.join(":"),
        upper_fd.as_raw_fd(),
        work_fd.as_raw_fd()
    );
    let data = std::ffi::CString::new(data).map_err(|_| ImageError::Invalid("NUL byte in a layer path".into()))?;
    rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| ImageError::Io {
        path: rootfs.clone(),
        source: std::io::Error::new(std::io::Error::from(e).kind(), format!("mounting overlay: {e}")),
    })?;
    Ok(rootfs)
}

/// Unmounts and removes a container root and its writable layer, and drops its lease.
pub fn remove(store: &ImageStore, root: &Rootfs) -> Result<(), ImageError> {
    unmount(&root.rootfs)?;
    remove_tree(&root.dir);
    store.remove_lease(&root.lease)
}

/// Unmounts `path` if it is a mount point (lazily if it is busy).
pub fn unmount(path: &Path) -> Result<(), ImageError> {
    match rustix::mount::unmount(path, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()), // not mounted
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(errno_at(path)),
        Err(e) => Err(errno_at(path)(e)),
    }
}
