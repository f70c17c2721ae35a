//! Kubelet's atomic writer (`pkg/volume/util/atomic_writer.go`) in our words: projects a set of files into a
//! volume directory so that readers always see one complete version.
//!
//! Layout of a target directory:
//! ```text
//! ..2024_05_01_10_00_00.1234567/   the real files of one version (0755)
//! ..data -> ..2024_05_01_10_00_00.1234567
//! key    -> ..data/key             one symlink per top-level user path
//! ```
//! An update writes a new timestamped directory, points `..data_tmp` at it and renames that over `..data` (rename
//! is atomic), then prunes user symlinks no longer in the payload and the old directory. Names starting with `..`
//! are reserved for this scheme. Owns only this directory; the caller serialises writers of one volume.

use rustix::fs::{Gid, Mode, OFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
/// Path limits of kubelet's `validatePath` (`maxFileNameLength`, `maxPathLength`).
const MAX_NAME_LEN: usize = 255;
const MAX_PATH_LEN: usize = 4096;
/// Permissions of the timestamped directory and its subdirectories, so that any container user can traverse.
const DIR_MODE: u32 = 0o755;

/// One file of a payload: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A payload path is not allowed (kubelet's `invalid path: …` messages).
    #[error("{0}")]
    InvalidPath(String),
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { op, path, source }
}

/// Checks one payload path as kubelet does and returns it cleaned (`.` and empty components dropped).
pub(crate) fn validate_path(path: &str) -> Result<String, WriteError> {
    if path.is_empty() {
        return Err(WriteError::InvalidPath(format!(
            "invalid path: must not be empty: {path:?}"
        )));
    }
    if path.starts_with('/') {
        return Err(WriteError::InvalidPath(format!(
            "invalid path: must be relative path: {path}"
        )));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(WriteError::InvalidPath(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LEN} characters"
        )));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(WriteError::InvalidPath(format!(
                "invalid path: must not contain '..': {path}"
            )));
        }
        if item.len() > MAX_NAME_LEN {
            return Err(WriteError::InvalidPath(format!(
                "invalid path: filenames must be less than or equal to {MAX_NAME_LEN} characters"
            )));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(WriteError::InvalidPath(format!(
            "invalid path: must not start with '..': {path}"
        )));
    }
    let clean: Vec<&str> = items.into_iter().filter(|i| !i.is_empty() && *i != ".").collect();
    if clean.is_empty() {
        return Err(WriteError::InvalidPath(format!(
            "invalid path: must not be empty: {path:?}"
        )));
    }
    Ok(clean.join("/"))
}

/// Writes `payload` into `target` (which must exist) atomically. Returns whether anything changed. With
/// `fs_group`, files and directories get that group and group read (directories also setgid and group search), as
/// kubelet's `SetVolumeOwnership` does for read-only volumes.
pub(crate) fn write(
    target: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> Result<bool, WriteError> {
    let mut clean = BTreeMap::new();
    for (path, file) in payload {
        let mut file = file.clone();
        if fs_group.is_some() {
            file.mode |= 0o440;
        }
        clean.insert(validate_path(path)?, file);
    }

    let data_link = target.join(DATA_DIR);
    let old_ts = match std::fs::read_link(&data_link) {
        Ok(name) => {
            // Only a plain `..`-name inside target is ours; anything else is treated as no previous version.
            let name = name.to_string_lossy().into_owned();
            (name.starts_with("..") && !name.contains('/') && name != "..").then_some(name)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read link", &data_link)(e)),
    };

    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_ts {
        let old_dir = target.join(old);
        to_remove = stale_paths(&clean, &old_dir)?;
        if !needs_write(&clean, &old_dir, fs_group)? && to_remove.is_empty() {
            create_user_links(target, &clean)?;
            return Ok(false);
        }
    }

    let (ts_name, ts_dir) = new_timestamp_dir(target)?;
    let result = write_payload(&ts_dir, &clean, fs_group)
        .and_then(|()| create_user_links(target, &clean))
        .and_then(|()| swap_data_link(target, &ts_name));
    if let Err(e) = result {
        let _ = super::mounts::remove_tree(&ts_dir);
        return Err(e);
    }

    for path in to_remove.iter().filter(|p| !p.contains('/')) {
        let visible = target.join(path);
        match std::fs::remove_file(&visible) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove old path", &visible)(e)),
        }
    }
    if let Some(old) = old_ts {
        let old_dir = target.join(old);
        super::mounts::remove_tree(&old_dir).map_err(io_err("remove old data directory", &old_dir))?;
    }
    Ok(true)
}

/// Paths of the previous version (files and directories, relative) that the new payload no longer has.
fn stale_paths(payload: &BTreeMap<String, FileProjection>, old_dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    let mut old = BTreeSet::new();
    walk(old_dir, "", &mut old)?;
    let mut keep = BTreeSet::new();
    for path in payload.keys() {
        let mut prefix = path.as_str();
        loop {
            keep.insert(prefix.to_string());
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
    }
    Ok(old.difference(&keep).cloned().collect())
}

fn walk(dir: &Path, rel: &str, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let file_type = entry.file_type().map_err(io_err("stat", &entry.path()))?;
        if file_type.is_dir() {
            walk(&entry.path(), &child_rel, out)?;
        }
        out.insert(child_rel);
    }
    Ok(())
}

/// Whether any file of the payload is missing from the previous version or differs in content, mode or group.
fn needs_write(
    payload: &BTreeMap<String, FileProjection>,
    old_dir: &Path,
    fs_group: Option<u32>,
) -> Result<bool, WriteError> {
    for (path, file) in payload {
        let on_disk = old_dir.join(path);
        let meta = match std::fs::symlink_metadata(&on_disk) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err("stat", &on_disk)(e)),
        };
        if !meta.is_file() || meta.permissions().mode() & 0o7777 != file.mode & 0o7777 {
            return Ok(true);
        }
        if fs_group.is_some_and(|g| g != meta.gid()) {
            return Ok(true);
        }
        let content = std::fs::read(&on_disk).map_err(io_err("read", &on_disk))?;
        if content != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates `..<UTC timestamp>.<random>` in `target` with mode 0755.
fn new_timestamp_dir(target: &Path) -> Result<(String, PathBuf), WriteError> {
    let stamp = jiff::Timestamp::now().strftime("..%Y_%m_%d_%H_%M_%S.").to_string();
    loop {
        let name = format!("{stamp}{}", rand::random::<u32>());
        let dir = target.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                // Chmod because create_dir's mode is filtered by the umask.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io_err("chmod", &dir))?;
                return Ok((name, dir));
            }
            // A random suffix collided: draw again (no sleep; collisions are vanishingly rare).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create data directory", &dir)(e)),
        }
    }
}

fn write_payload(
    dir: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> Result<(), WriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent().filter(|p| *p != dir) {
            // Create each missing directory of the path with 0755 (and the fsGroup bits).
            let mut cur = dir.to_path_buf();
            for part in parent.strip_prefix(dir).unwrap_or(Path::new("")).components() {
                cur.push(part);
                match std::fs::create_dir(&cur) {
                    Ok(()) => {
                        let mut mode = DIR_MODE;
                        if let Some(gid) = fs_group {
                            chown_group(&cur, gid)?;
                            mode |= 0o2000 | 0o550;
                        }
                        std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(mode))
                            .map_err(io_err("chmod", &cur))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err("create directory", &cur)(e)),
                }
            }
        }
        // Security: O_EXCL|O_NOFOLLOW inside a directory we just created; nothing can be there yet, and nothing
        // there may redirect the write.
        let fd = rustix::fs::open(
            &full,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err("create", &full)(e.into()))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(&file.data).map_err(io_err("write", &full))?;
        if let Some(gid) = fs_group {
            rustix::fs::fchown(&f, None, Some(Gid::from_raw(gid))).map_err(|e| io_err("chown", &full)(e.into()))?;
        }
        // fchmod after writing: the create mode is filtered by the umask, the payload's mode must not be.
        rustix::fs::fchmod(&f, Mode::from_raw_mode(file.mode & 0o7777))
            .map_err(|e| io_err("chmod", &full)(e.into()))?;
    }
    if let Some(gid) = fs_group {
        chown_group(dir, gid)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE | 0o2000 | 0o550))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(())
}

fn chown_group(path: &Path, gid: u32) -> Result<(), WriteError> {
    rustix::fs::chown(path, None, Some(Gid::from_raw(gid))).map_err(|e| io_err("chown", path)(e.into()))
}

/// `key -> ..data/key` for the first component of every payload path that has no entry in `target` yet.
fn create_user_links(target: &Path, payload: &BTreeMap<String, FileProjection>) -> Result<(), WriteError> {
    let firsts: BTreeSet<&str> = payload.keys().map(|p| p.split('/').next().unwrap_or(p)).collect();
    for first in firsts {
        let visible = target.join(first);
        match std::fs::symlink_metadata(&visible) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &visible)(e)),
        }
        std::os::unix::fs::symlink(Path::new(DATA_DIR).join(first), &visible).map_err(io_err("symlink", &visible))?;
    }
    Ok(())
}

/// Points `..data` at `ts_name` in one atomic rename.
fn swap_data_link(target: &Path, ts_name: &str) -> Result<(), WriteError> {
    let tmp = target.join(NEW_DATA_DIR);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove stale link", &tmp)(e)),
    }
    std::os::unix::fs::symlink(ts_name, &tmp).map_err(io_err("symlink", &tmp))?;
    let data = target.join(DATA_DIR);
    if let Err(e) = std::fs::rename(&tmp, &data) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("rename", &data)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn paths_are_validated_like_kubelet() {
        assert_eq!(validate_path("a/./b//c").unwrap(), "a/b/c");
        let err = |p: &str| validate_path(p).unwrap_err().to_string();
        assert_eq!(err("/etc/x"), "invalid path: must be relative path: /etc/x");
        assert_eq!(err("a/../b"), "invalid path: must not contain '..': a/../b");
        assert_eq!(err("..data"), "invalid path: must not start with '..': ..data");
        assert_eq!(err(""), "invalid path: must not be empty: \"\"");
        assert!(validate_path(&"x".repeat(256)).is_err());
    }

    #[test]
    fn writes_then_updates_atomically_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let mut payload = BTreeMap::from([
            ("a".to_string(), file("one", 0o644)),
            ("sub/b".to_string(), file("two", 0o400)),
        ]);
        assert!(write(t, &payload, None).unwrap());
        let first = std::fs::read_link(t.join("..data")).unwrap();
        assert!(first.to_string_lossy().starts_with("..20"));
        assert_eq!(std::fs::read_link(t.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(std::fs::read_link(t.join("sub")).unwrap(), Path::new("..data/sub"));
        assert_eq!(std::fs::read_to_string(t.join("sub/b")).unwrap(), "two");
        let mode = std::fs::metadata(t.join("sub/b")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o400);
        let ts_mode = std::fs::metadata(t.join(&first)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(ts_mode, 0o755);

        // Same payload: nothing is rewritten.
        assert!(!write(t, &payload, None).unwrap());
        assert_eq!(std::fs::read_link(t.join("..data")).unwrap(), first);

        // New content and a removed key: a new version, the old directory and link are gone.
        payload.remove("sub/b");
        payload.insert("a".into(), file("uno", 0o644));
        assert!(write(t, &payload, None).unwrap());
        let second = std::fs::read_link(t.join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!t.join(&first).exists());
        assert!(std::fs::symlink_metadata(t.join("sub")).is_err());
        assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "uno");
        assert!(std::fs::symlink_metadata(t.join("..data_tmp")).is_err());

        // A mode change alone is an update too.
        payload.insert("a".into(), file("uno", 0o600));
        assert!(write(t, &payload, None).unwrap());
    }
}
