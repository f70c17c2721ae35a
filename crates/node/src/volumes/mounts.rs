//! The kernel side of Pod volumes: mounting tmpfs for memory-backed volumes, finding and removing the mounts under
//! a Pod's directory (from `/proc/self/mountinfo`, so it works after an agent restart), and removing a volume tree
//! without ever following a symlink or descending into another filesystem.

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `TMPFS_MAGIC` from `linux/magic.h`: the `f_type` statfs reports for tmpfs.
pub(crate) const TMPFS_MAGIC: i64 = 0x0102_1994;

/// How many rounds of unmounting teardown tries: each round removes the top mount of every stack, so this bounds
/// how deeply mounts may be stacked on one path before we give up and report it.
const MAX_UNMOUNT_ROUNDS: usize = 16;

/// Whether `dir` is the root of a tmpfs mount: it is on tmpfs and on another device than its parent.
pub(crate) fn is_tmpfs_mount(dir: &Path) -> io::Result<bool> {
    let fs = match rustix::fs::statfs(dir) {
        Ok(fs) => fs,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    // `f_type`'s integer type differs between architectures; widen it for the comparison.
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as i64 != TMPFS_MAGIC {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let here = rustix::fs::stat(dir)?;
    let above = rustix::fs::stat(parent)?;
    Ok(here.st_dev != above.st_dev)
}

/// Mounts a fresh tmpfs on `dir` with `nosuid,nodev` and, when given, `size=<bytes>`. `noswap` (Linux 6.4+, what
/// kubelet asks for when the kernel has it) is tried first so secrets never reach swap, then dropped if refused.
pub(crate) fn mount_tmpfs(dir: &Path, size: Option<i64>) -> io::Result<()> {
    let mut options = Vec::new();
    if let Some(size) = size.filter(|s| *s > 0) {
        options.push(format!("size={size}"));
    }
    // Security: nothing in a memory-backed volume needs setuid or device nodes; both are refused at the mount.
    let flags = MountFlags::NOSUID | MountFlags::NODEV;
    let with_noswap = [options.clone(), vec!["noswap".to_string()]].concat().join(",");
    let data = CString::new(with_noswap).map_err(io::Error::other)?;
    match rustix::mount::mount("tmpfs", dir, "tmpfs", flags, data.as_c_str()) {
        Ok(()) => return Ok(()),
        Err(Errno::INVAL) => {}
        Err(e) => return Err(e.into()),
    }
    let data = CString::new(options.join(",")).map_err(io::Error::other)?;
    rustix::mount::mount("tmpfs", dir, "tmpfs", flags, data.as_c_str())?;
    Ok(())
}

/// The mount points listed in `/proc/self/mountinfo` that are `root` or lie below it, deepest first.
pub(crate) fn mounts_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = parse_mountinfo_points(&text)
        .into_iter()
        .filter(|p| p.starts_with(root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(found)
}

/// The mount point field (the fifth) of every mountinfo line, with the kernel's octal escapes decoded.
fn parse_mountinfo_points(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(
                unescape(field),
            ))
        })
        .collect()
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Unmounts every mount at or below `root`, deepest first, until none is left. A busy mount is detached lazily
/// (the kernel drops it when its last user goes), which is what kubelet's cleanup amounts to for a dead Pod.
pub(crate) fn unmount_all_under(root: &Path) -> io::Result<()> {
    for _ in 0..MAX_UNMOUNT_ROUNDS {
        let mounts = mounts_under(root)?;
        if mounts.is_empty() {
            return Ok(());
        }
        for target in mounts {
            // Security: NOFOLLOW so a symlink swapped in at the mount point's place cannot redirect the unmount.
            match rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW) {
                Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
                Err(Errno::BUSY) => {
                    match rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH) {
                        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(annotate(e, "unmount", &target)),
                    }
                }
                Err(e) => return Err(annotate(e, "unmount", &target)),
            }
            tracing::debug!(path = %target.display(), "unmounted volume");
        }
    }
    let left = mounts_under(root)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "mounts remain after {MAX_UNMOUNT_ROUNDS} rounds: {left:?}"
        )))
    }
}

fn annotate(e: Errno, op: &str, path: &Path) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Removes `path` and everything below it. Symlinks are removed, never followed; a directory on another device
/// than `path` (a mount that is still there) stops the removal with an error instead of being emptied, so neither
/// a hostPath nor anything else mounted below can lose files.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dev = rustix::fs::fstat(&dir)?.st_dev;
    empty_dir(&dir, dev, path)?;
    std::fs::remove_dir(path)
}

/// Empties the directory open at `dir`, which lives on device `dev`; `shown` names it in errors.
fn empty_dir(dir: &OwnedFd, dev: u64, shown: &Path) -> io::Result<()> {
    let names: Vec<CString> = {
        let mut entries = rustix::fs::Dir::read_from(dir)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            names.push(name.to_owned());
        }
        names
    };
    for name in names {
        let st = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let child_shown = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            #[allow(clippy::useless_conversion)]
            if u64::from(st.st_dev) != dev {
                return Err(io::Error::other(format!(
                    "refusing to remove {}: another filesystem is mounted there",
                    child_shown.display()
                )));
            }
            let child = rustix::fs::openat(
                dir,
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            empty_dir(&child, dev, &child_shown)?;
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)
                .map_err(|e| annotate(e, "remove", &child_shown))?;
        } else {
            rustix::fs::unlinkat(dir.as_fd(), name.as_c_str(), AtFlags::empty())
                .map_err(|e| annotate(e, "remove", &child_shown))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    90 22 0:50 / /var/lib/x\\040y rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mountinfo_points(text),
            vec![PathBuf::from("/"), PathBuf::from("/var/lib/x y")]
        );
    }
}
