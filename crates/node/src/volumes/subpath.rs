//! Safe `subPath` mounts (kubelet's `pkg/volume/util/subpath/subpath_linux.go`, the fix for CVE-2017-1002101 and
//! CVE-2021-25741).
//!
//! A container can write into its volumes, so any path below a volume root is hostile: a component may be a
//! symlink to `/etc`, and may be swapped for one between a check and a use. We therefore never hand a resolved
//! path string to the runtime. Instead we resolve the subPath with one `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` call relative to the volume root (the kernel refuses any resolution that leaves the
//! root, atomically), bind-mount the opened file through `/proc/self/fd/N` onto an agent-owned path
//! (`<pod>/volume-subpaths/<volume>/<container>/<index>`), and give that path to the runtime. Symlinks that stay
//! inside the volume (a configMap key is one) keep working, as in kubelet.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why a subPath could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    /// The subPath resolves (through `..` or a symlink) outside its volume.
    #[error("subpath {sub_path:?} not within volume path {volume:?}")]
    Escapes { sub_path: String, volume: PathBuf },
    #[error("subPath {0:?} must be a relative path without '..'")]
    Invalid(String),
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> SubPathError {
    let path = path.to_path_buf();
    move |e| SubPathError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// Resolution rules for every open below a volume root: stay beneath it, no `/proc` magic links.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// Opens `rel` below `root` with the kernel enforcing containment (an escape fails with `EXDEV`).
fn open_beneath(root: &OwnedFd, rel: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), beneath())
}

fn escape_or_io(e: Errno, volume: &Path, sub_path: &str, op: &'static str) -> SubPathError {
    match e {
        // EXDEV: resolution left the root; ELOOP: a magic link or a symlink loop.
        Errno::XDEV | Errno::LOOP => SubPathError::Escapes {
            sub_path: sub_path.to_string(),
            volume: volume.to_path_buf(),
        },
        e => io_err(op, &volume.join(sub_path))(e),
    }
}

/// Makes `sub_path` available below `volume` as the bind mount `bind_target`, creating the subPath as a directory
/// with `dir_mode` when it does not exist (kubelet's `SafeMakeDir`). Idempotent: a target already mounted from the
/// same file is reused. Returns the path to give the runtime.
pub fn prepare(volume: &Path, sub_path: &str, bind_target: &Path, dir_mode: u32) -> Result<PathBuf, SubPathError> {
    let parts: Vec<&str> = sub_path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if sub_path.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return Err(SubPathError::Invalid(sub_path.to_string()));
    }
    // The volume root itself is agent-made (or the hostPath the user named), so it is opened normally.
    let root = rustix::fs::open(
        volume,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open volume", volume))?;

    // Create what is missing, one component at a time, each step resolved beneath the root.
    for i in 0..parts.len() {
        let prefix = parts[..=i].join("/");
        match open_beneath(&root, &prefix, OFlags::PATH) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(escape_or_io(e, volume, sub_path, "open")),
        }
        let parent = if i == 0 {
            rustix::io::dup(&root).map_err(io_err("dup", volume))?
        } else {
            open_beneath(&root, &parts[..i].join("/"), OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| escape_or_io(e, volume, sub_path, "open"))?
        };
        // mkdirat never follows a symlink in the last component: if one appeared meanwhile we get EEXIST and the
        // final openat2 below judges it.
        match rustix::fs::mkdirat(&parent, parts[i], Mode::from_raw_mode(dir_mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io_err("create subPath directory", &volume.join(&prefix))(e)),
        }
        if let Ok(made) = rustix::fs::openat2(
            &parent,
            parts[i],
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            beneath(),
        ) {
            // Set the mode exactly (mkdirat's is filtered by the umask). If the directory cannot be reopened (it
            // was swapped for a symlink), the final resolution below decides; there is nothing to chmod.
            rustix::fs::fchmod(&made, Mode::from_raw_mode(dir_mode)).map_err(io_err("chmod", &volume.join(&prefix)))?;
        }
    }

    let fd =
        open_beneath(&root, &parts.join("/"), OFlags::PATH).map_err(|e| escape_or_io(e, volume, sub_path, "open"))?;
    let st = rustix::fs::fstat(&fd).map_err(io_err("stat", &volume.join(sub_path)))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;

    if super::mounts::mounts_under(bind_target)
        .map_err(|e| SubPathError::Io {
            op: "read mountinfo for",
            path: bind_target.to_path_buf(),
            source: e,
        })?
        .iter()
        .any(|m| m == bind_target)
    {
        if let Ok(existing) = rustix::fs::stat(bind_target) {
            if existing.st_dev == st.st_dev && existing.st_ino == st.st_ino {
                return Ok(bind_target.to_path_buf());
            }
        }
        // Mounted from something else (the volume changed under it): replace it.
        rustix::mount::unmount(
            bind_target,
            rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW,
        )
        .map_err(io_err("unmount stale subPath", bind_target))?;
    }

    prepare_target(bind_target, is_dir)?;
    // The kernel follows /proc/self/fd/N to exactly the inode we opened and checked; no path is resolved again.
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::mount::mount_bind(source.as_str(), bind_target).map_err(io_err("bind-mount subPath onto", bind_target))?;
    tracing::debug!(volume = %volume.display(), sub_path, target = %bind_target.display(), "subPath mounted");
    Ok(bind_target.to_path_buf())
}

/// Creates the agent-owned bind target as an empty directory or file, matching the source.
fn prepare_target(target: &Path, is_dir: bool) -> Result<(), SubPathError> {
    let wrap = |op| {
        let target = target.to_path_buf();
        move |source| SubPathError::Io {
            op,
            path: target,
            source,
        }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(wrap("create"))?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && (is_dir || m.is_file()) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir(target).map_err(wrap("remove"))?,
        Ok(_) => std::fs::remove_file(target).map_err(wrap("remove"))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(wrap("stat")(e)),
    }
    if is_dir {
        std::fs::create_dir(target).map_err(wrap("create"))
    } else {
        std::fs::File::create(target).map(drop).map_err(wrap("create"))
    }
}
