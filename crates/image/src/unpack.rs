//! Safe layer unpack: one image layer (a tar, plain, gzip or zstd) written into one fresh snapshot directory, laid
//! out as an overlayfs lower layer.
//!
//! # Security
//! A layer is hostile input: it may try to write outside the snapshot (`../x`, `/etc/x`), to write through a
//! symlink it or an earlier layer planted (`a -> /etc`, then `a/shadow`), to hard-link host files into the image,
//! to smuggle huge extended headers, or to whiteout paths outside its root. The `tar` crate is used only to *read*
//! headers (in raw mode, so extended headers are bounded here and not slurped whole); every filesystem effect is
//! ours and goes through file descriptors:
//! - entry names are split into components; absolute names and any `..` component are refused outright, so
//!   nothing is resolved by path against the host;
//! - each parent directory is reached one component at a time with `openat(O_NOFOLLOW|O_DIRECTORY)` from the
//!   snapshot's own fd, so a symlink anywhere on the way is refused (`ELOOP`/`ENOTDIR`) instead of followed;
//! - an implicit parent directory is refused when an earlier layer has a symlink at that path (in the merged view
//!   that write would go through the symlink);
//! - the final component is created with `O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat` without
//!   `AT_SYMLINK_FOLLOW`, after any existing entry there was removed (never written through); metadata is set on
//!   the new fd (`fchown`, `fchmod`, `fsetxattr`) or with `AT_SYMLINK_NOFOLLOW`;
//! - hard-link targets must be earlier entries of the same layer, reached the same way;
//! - `trusted.*` extended attributes (overlayfs' own control plane) are never taken from a layer;
//! - whiteouts become overlayfs whiteouts (`.wh.x` → char device 0:0 `x`, `.wh..wh..opq` →
//!   `trusted.overlay.opaque=y`) and their names are checked like any other entry.
//!
//! The uncompressed stream is hashed as it is read, so the caller can check it against the image config's diff
//! ID; the caller unpacks into a temporary directory and renames it into place only on success.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::digest::HashReader;
use rustix::fs::{AtFlags, Mode, OFlags};

/// Limits on what one layer may hold; the defaults are far above any real image.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Entries (files, directories, links) in one layer.
    pub max_entries: u64,
    /// One PAX or GNU long-name extended header.
    pub max_extended_header: u64,
    /// Uncompressed bytes of the layer tar.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            max_extended_header: 1 << 20,
            max_bytes: 1 << 40,
        }
    }
}

/// How to unpack.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// Create device nodes (needs CAP_MKNOD); otherwise they are skipped, as containerd does without privilege.
    pub mknod: bool,
    /// Set ownership from the archive (needs CAP_CHOWN).
    pub chown: bool,
}

impl Options {
    /// What this process may do: device nodes and ownership when running as root.
    pub fn for_current_user() -> Options {
        let root = rustix::process::geteuid().is_root();
        Options {
            limits: Limits::default(),
            mknod: root,
            chown: root,
        }
    }
}

/// What an unpack did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// `sha256:<hex>` of the uncompressed tar stream: the layer's diff ID.
    pub diff_id: String,
    /// Uncompressed bytes read.
    pub tar_bytes: u64,
    /// Entries applied.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub file_bytes: u64,
}

/// Why a layer could not be unpacked. Entry errors name the entry as it appears in the archive.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {path:?}: {reason}")]
    Refused { path: String, reason: String },
    #[error("layer entry {path:?}: {source}")]
    Io { path: String, source: io::Error },
    #[error("reading layer: {0}")]
    Read(io::Error),
    #[error("layer has more than {0} entries")]
    TooManyEntries(u64),
    #[error("layer is larger than {0} bytes uncompressed")]
    TooLarge(u64),
    #[error("opening snapshot directory {path}: {source}")]
    Root { path: String, source: io::Error },
}

fn refused(path: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn io_err(path: &str) -> impl FnOnce(rustix::io::Errno) -> UnpackError + '_ {
    move |e| UnpackError::Io {
        path: path.to_string(),
        source: e.into(),
    }
}

/// Fails the read that takes the uncompressed stream past the size limit.
struct Limit<R> {
    inner: R,
    n: u64,
    max: u64,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        if self.n > self.max {
            return Err(io::Error::other(TooLargeMarker));
        }
        Ok(k)
    }
}

#[derive(Debug)]
struct TooLargeMarker;
impl std::fmt::Display for TooLargeMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("layer too large")
    }
}
impl std::error::Error for TooLargeMarker {}

/// Opens the decompressor the stream's magic bytes call for: gzip, zstd or none.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(buf)?))
    } else {
        Ok(Box::new(buf))
    }
}

/// Unpacks one layer from `reader` into the empty directory `dest`. `lowers` are the snapshot directories of the
/// layers below, topmost first (used only to refuse writes through their symlinks).
pub fn unpack_layer(reader: impl Read, dest: &Path, lowers: &[&Path], opts: &Options) -> Result<Stats, UnpackError> {
    let root =
        rustix::fs::open(dest, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
            UnpackError::Root {
                path: dest.display().to_string(),
                source: e.into(),
            }
        })?;
    let mut lower_fds = Vec::with_capacity(lowers.len());
    for l in lowers {
        let fd =
            rustix::fs::open(*l, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
                UnpackError::Root {
                    path: l.display().to_string(),
                    source: e.into(),
                }
            })?;
        lower_fds.push(fd);
    }
    let stream = decompress(reader).map_err(UnpackError::Read)?;
    let mut hashing = HashReader::new(Limit {
        inner: stream,
        n: 0,
        max: opts.limits.max_bytes,
    });
    let mut stats = Stats::default();
    {
        let mut unpacker = Unpacker {
            root: &root,
            lowers: &lower_fds,
            opts,
            dirs: Vec::new(),
        };
        let mut archive = tar::Archive::new(&mut hashing);
        unpacker
            .run(&mut archive, &mut stats)
            .map_err(|e| map_too_large(e, opts))?;
        unpacker.finish_dirs();
    }
    // The end-of-archive blocks and any padding belong to the diff ID too.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| map_too_large(UnpackError::Read(e), opts))?;
    stats.tar_bytes = hashing.hasher.len;
    stats.diff_id = hashing.hasher.finish().to_string();
    Ok(stats)
}

fn map_too_large(e: UnpackError, opts: &Options) -> UnpackError {
    let is_marker = |err: &io::Error| err.get_ref().is_some_and(|inner| inner.is::<TooLargeMarker>());
    match &e {
        UnpackError::Read(err) | UnpackError::Io { source: err, .. } if is_marker(err) => {
            UnpackError::TooLarge(opts.limits.max_bytes)
        }
        _ => e,
    }
}

/// Extended-header values pending for the next entry.
#[derive(Default)]
struct Pending {
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

struct Unpacker<'a> {
    root: &'a OwnedFd,
    lowers: &'a [OwnedFd],
    opts: &'a Options,
    /// Directories whose times are set once every entry is in (creating children changes a directory's mtime).
    dirs: Vec<(Vec<String>, i64)>,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const MAX_PATH: usize = 4096;

impl Unpacker<'_> {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>, stats: &mut Stats) -> Result<(), UnpackError> {
        let mut pending = Pending::default();
        let entries = archive.entries().map_err(UnpackError::Read)?.raw(true);
        for entry in entries {
            let mut entry = entry.map_err(UnpackError::Read)?;
            stats.entries += 1;
            if stats.entries > self.opts.limits.max_entries {
                return Err(UnpackError::TooManyEntries(self.opts.limits.max_entries));
            }
            let kind = entry.header().entry_type();
            let raw_name = String::from_utf8_lossy(&entry.header().path_bytes()).into_owned();
            match kind {
                tar::EntryType::XHeader => {
                    pending.pax = Some(self.read_extended(&mut entry, &raw_name)?);
                    continue;
                }
                tar::EntryType::XGlobalHeader => {
                    self.read_extended(&mut entry, &raw_name)?;
                    continue;
                }
                tar::EntryType::GNULongName => {
                    pending.long_name = Some(trim_nul(self.read_extended(&mut entry, &raw_name)?));
                    continue;
                }
                tar::EntryType::GNULongLink => {
                    pending.long_link = Some(trim_nul(self.read_extended(&mut entry, &raw_name)?));
                    continue;
                }
                _ => {}
            }
            let pending_now = std::mem::take(&mut pending);
            let meta = EntryMeta::from_entry(&entry, &pending_now)?;
            if kind == tar::EntryType::GNUSparse {
                return Err(refused(&meta.name, "sparse files are not supported in image layers"));
            }
            let n = self.apply(&mut entry, kind, &meta)?;
            stats.file_bytes += n;
        }
        Ok(())
    }

    fn read_extended<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, UnpackError> {
        let size = entry.header().entry_size().map_err(UnpackError::Read)?;
        let max = self.opts.limits.max_extended_header;
        if size > max {
            return Err(refused(
                name,
                format!("extended header of {size} bytes is larger than the {max}-byte limit"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        entry.take(max + 1).read_to_end(&mut buf).map_err(UnpackError::Read)?;
        Ok(buf)
    }

    fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        meta: &EntryMeta,
    ) -> Result<u64, UnpackError> {
        let name = meta.name.as_str();
        let comps = clean_components(name)?;
        let Some((base, parent)) = comps.split_last() else {
            // The layer's root directory itself ("./"): its metadata stays the snapshot's.
            return Ok(0);
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(name, parent, base).map(|_| 0);
        }
        let dir = self.open_parent(name, parent)?;
        let dir = dir.as_ref().unwrap_or(self.root);
        let mut written = 0;
        match kind {
            tar::EntryType::Directory => {
                let existing = rustix::fs::statat(dir, base.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
                let is_dir = existing
                    .as_ref()
                    .is_some_and(|st| file_type(st) == rustix::fs::FileType::Directory);
                if !is_dir {
                    if existing.is_some() {
                        remove_at(dir, base).map_err(io_err(name))?;
                    }
                    rustix::fs::mkdirat(dir, base.as_str(), Mode::from_raw_mode(0o700)).map_err(io_err(name))?;
                }
                let fd = rustix::fs::openat(
                    dir,
                    base.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err(name))?;
                self.set_meta_fd(&fd, meta)?;
                let mut path = parent.to_vec();
                path.push(base.clone());
                self.dirs.push((path, meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(dir, base, name)?;
                let fd = rustix::fs::openat(
                    dir,
                    base.as_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err(name))?;
                let mut file = std::fs::File::from(fd);
                written = io::copy(entry, &mut file).map_err(|e| UnpackError::Io {
                    path: name.to_string(),
                    source: e,
                })?;
                let fd = OwnedFd::from(file);
                self.set_meta_fd(&fd, meta)?;
                set_times_fd(&fd, meta.mtime).map_err(io_err(name))?;
            }
            tar::EntryType::Symlink => {
                let target = meta
                    .link
                    .as_deref()
                    .ok_or_else(|| refused(name, "symlink without a target"))?;
                if target.is_empty() {
                    return Err(refused(name, "symlink with an empty target"));
                }
                self.clear(dir, base, name)?;
                rustix::fs::symlinkat(target, dir, base.as_str()).map_err(io_err(name))?;
                self.set_meta_at(dir, base, meta)?;
            }
            tar::EntryType::Link => {
                let target = meta
                    .link
                    .as_deref()
                    .ok_or_else(|| refused(name, "hard link without a target"))?;
                let tcomps = clean_components(target)
                    .map_err(|_| refused(name, format!("hard link target {target:?} is outside the layer root")))?;
                let Some((tbase, tparent)) = tcomps.split_last() else {
                    return Err(refused(name, "hard link to the layer root"));
                };
                let tdir = self.walk(tparent, false).map_err(|e| match e {
                    Walk::Missing => refused(name, format!("hard link target {target:?} is not in this layer")),
                    Walk::Symlink => refused(name, format!("hard link target {target:?} goes through a symlink")),
                    Walk::NotDir => refused(
                        name,
                        format!("hard link target {target:?} goes through a non-directory"),
                    ),
                    Walk::LowerSymlink => refused(name, "hard link target goes through a symlink"),
                    Walk::Io(e) => UnpackError::Io {
                        path: name.to_string(),
                        source: e.into(),
                    },
                })?;
                let tdir = tdir.as_ref().unwrap_or(self.root);
                let tst = rustix::fs::statat(tdir, tbase.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|_| refused(name, format!("hard link target {target:?} is not in this layer")))?;
                if file_type(&tst) == rustix::fs::FileType::Directory {
                    return Err(refused(name, format!("hard link target {target:?} is a directory")));
                }
                if tparent == parent && tbase == base {
                    return Ok(0);
                }
                self.clear(dir, base, name)?;
                rustix::fs::linkat(tdir, tbase.as_str(), dir, base.as_str(), AtFlags::empty()).map_err(io_err(name))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                if ft != rustix::fs::FileType::Fifo && !self.opts.mknod {
                    tracing::debug!(entry = name, "skipping device node: not privileged");
                    return Ok(0);
                }
                self.clear(dir, base, name)?;
                let dev = rustix::fs::makedev(meta.dev_major, meta.dev_minor);
                match rustix::fs::mknodat(dir, base.as_str(), ft, Mode::from_raw_mode(meta.mode & 0o777), dev) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::PERM) => {
                        tracing::debug!(entry = name, "skipping device node: mknod not permitted");
                        return Ok(0);
                    }
                    Err(e) => return Err(io_err(name)(e)),
                }
                self.set_meta_at(dir, base, meta)?;
            }
            other => {
                tracing::debug!(entry = name, kind = ?other, "skipping unsupported tar entry type");
            }
        }
        Ok(written)
    }

    /// Removes whatever is at `dir/base` unless it is a directory an incoming non-directory must replace too.
    fn clear(&self, dir: &OwnedFd, base: &str, name: &str) -> Result<(), UnpackError> {
        match rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => remove_at(dir, base).map_err(io_err(name)),
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(name)(e)),
        }
    }

    fn whiteout(&mut self, name: &str, parent: &[String], base: &str) -> Result<(), UnpackError> {
        let dir = self.open_parent(name, parent)?;
        let dir = dir.as_ref().unwrap_or(self.root);
        if base == WHITEOUT_OPAQUE {
            let fd = rustix::fs::openat(
                dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(name))?;
            rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
                .map_err(io_err(name))?;
            return Ok(());
        }
        if base.starts_with(".wh..wh.") {
            // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): nothing to do for overlayfs.
            return Ok(());
        }
        let target = &base[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == "." || target == ".." || target.contains('/') {
            return Err(refused(name, "whiteout names no entry inside the layer"));
        }
        self.clear(dir, target, name)?;
        rustix::fs::mknodat(
            dir,
            target,
            rustix::fs::FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(io_err(name))?;
        Ok(())
    }

    /// Opens (creating missing directories) the parent directory `comps` inside the snapshot, refusing symlinks.
    /// `None` is the snapshot root.
    fn open_parent(&self, name: &str, comps: &[String]) -> Result<Option<OwnedFd>, UnpackError> {
        self.walk(comps, true).map_err(|e| match e {
            Walk::Missing => refused(name, "parent directory is missing"),
            Walk::Symlink => refused(name, "refusing to write through a symlink"),
            Walk::LowerSymlink => refused(name, "refusing to write through a symlink of an earlier layer"),
            Walk::NotDir => refused(name, "a parent path is not a directory"),
            Walk::Io(e) => UnpackError::Io {
                path: name.to_string(),
                source: e.into(),
            },
        })
    }

    fn walk(&self, comps: &[String], create: bool) -> Result<Option<OwnedFd>, Walk> {
        let mut cur: Option<OwnedFd> = None;
        for (i, c) in comps.iter().enumerate() {
            let dir = cur.as_ref().unwrap_or(self.root);
            let next = match open_dir_nofollow(dir, c) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) if create => {
                    if lower_is_symlink(self.lowers, &comps[..=i]) {
                        return Err(Walk::LowerSymlink);
                    }
                    rustix::fs::mkdirat(dir, c.as_str(), Mode::from_raw_mode(0o755)).map_err(Walk::Io)?;
                    open_dir_nofollow(dir, c).map_err(Walk::Io)?
                }
                Err(rustix::io::Errno::NOENT) => return Err(Walk::Missing),
                Err(rustix::io::Errno::LOOP) => return Err(Walk::Symlink),
                Err(rustix::io::Errno::NOTDIR) => {
                    return match rustix::fs::statat(dir, c.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if file_type(&st) == rustix::fs::FileType::Symlink => Err(Walk::Symlink),
                        _ => Err(Walk::NotDir),
                    };
                }
                Err(e) => return Err(Walk::Io(e)),
            };
            cur = Some(next);
        }
        Ok(cur)
    }

    /// Ownership and times of an entry that cannot be opened (symlink, device node), never following it.
    fn set_meta_at(&self, dir: &OwnedFd, base: &str, meta: &EntryMeta) -> Result<(), UnpackError> {
        let name = meta.name.as_str();
        if self.opts.chown {
            rustix::fs::chownat(
                dir,
                base,
                Some(uid(meta.uid)),
                Some(gid(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err(name))?;
        }
        set_times_at(dir, base, meta.mtime).map_err(io_err(name))
    }

    fn set_meta_fd(&self, fd: &OwnedFd, meta: &EntryMeta) -> Result<(), UnpackError> {
        let name = meta.name.as_str();
        if self.opts.chown {
            rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid))).map_err(io_err(name))?;
        }
        // After chown, which clears set-id bits: the image's setuid/setgid/sticky bits are kept.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(io_err(name))?;
        for (key, value) in &meta.xattrs {
            if !xattr_allowed(key) {
                tracing::debug!(entry = name, xattr = key.as_str(), "dropping extended attribute");
                continue;
            }
            rustix::fs::fsetxattr(fd, key.as_str(), value, rustix::fs::XattrFlags::empty()).map_err(io_err(name))?;
        }
        Ok(())
    }

    fn finish_dirs(&mut self) {
        for (path, mtime) in std::mem::take(&mut self.dirs).into_iter().rev() {
            if let Ok(Some(fd)) = self.walk(&path, false) {
                let _ = set_times_fd(&fd, mtime);
            }
        }
    }
}

enum Walk {
    Missing,
    Symlink,
    LowerSymlink,
    NotDir,
    Io(rustix::io::Errno),
}

/// The metadata of one entry with its extended headers applied.
struct EntryMeta {
    name: String,
    link: Option<String>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    dev_major: u32,
    dev_minor: u32,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryMeta {
    fn from_entry<R: Read>(entry: &tar::Entry<'_, R>, pending: &Pending) -> Result<EntryMeta, UnpackError> {
        let h = entry.header();
        let mut name = match &pending.long_name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => String::from_utf8_lossy(&h.path_bytes()).into_owned(),
        };
        let mut link = match &pending.long_link {
            Some(l) => Some(String::from_utf8_lossy(l).into_owned()),
            None => h.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()),
        };
        let bad = |what: &str, e: io::Error| UnpackError::Refused {
            path: String::from_utf8_lossy(&h.path_bytes()).into_owned(),
            reason: format!("bad {what} field: {e}"),
        };
        let mut uid = h.uid().map_err(|e| bad("uid", e))?;
        let mut gid = h.gid().map_err(|e| bad("gid", e))?;
        let mut mtime = h.mtime().map_err(|e| bad("mtime", e))? as i64;
        let mut xattrs = Vec::new();
        if let Some(pax) = &pending.pax {
            for ext in tar::PaxExtensions::new(pax) {
                let ext = ext.map_err(|e| bad("PAX header", e))?;
                let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                let text = || String::from_utf8_lossy(value).into_owned();
                match key {
                    "path" => name = text(),
                    "linkpath" => link = Some(text()),
                    "uid" => uid = text().parse().map_err(|_| refused(&name, "bad PAX uid"))?,
                    "gid" => gid = text().parse().map_err(|_| refused(&name, "bad PAX gid"))?,
                    "mtime" => {
                        let t = text();
                        let secs = t.split('.').next().unwrap_or_default();
                        mtime = secs.parse().map_err(|_| refused(&name, "bad PAX mtime"))?;
                    }
                    "size" => {
                        let size: u64 = text().parse().map_err(|_| refused(&name, "bad PAX size"))?;
                        if Some(size) != h.entry_size().ok() {
                            return Err(refused(&name, "PAX size differs from the header's size"));
                        }
                    }
                    k if k.starts_with("SCHILY.xattr.") => {
                        xattrs.push((k["SCHILY.xattr.".len()..].to_string(), value.to_vec()));
                    }
                    _ => {}
                }
            }
        }
        let uid = u32::try_from(uid).map_err(|_| refused(&name, "uid out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| refused(&name, "gid out of range"))?;
        Ok(EntryMeta {
            mode: h.mode().map_err(|e| bad("mode", e))?,
            dev_major: h.device_major().ok().flatten().unwrap_or(0),
            dev_minor: h.device_minor().ok().flatten().unwrap_or(0),
            name,
            link,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Splits an entry name into components, refusing absolute names, `..`, NUL bytes and over-long paths.
pub fn clean_components(name: &str) -> Result<Vec<String>, UnpackError> {
    if name.len() > MAX_PATH {
        let head: String = name.chars().take(64).collect();
        return Err(refused(
            &format!("{head}…"),
            format!("path longer than {MAX_PATH} bytes"),
        ));
    }
    if name.contains('\0') {
        return Err(refused(name, "path contains a NUL byte"));
    }
    if name.starts_with('/') {
        return Err(refused(name, "absolute path in a layer"));
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(refused(name, "path escapes the layer root (\"..\")")),
            c if c.len() > 255 => return Err(refused(name, "path component longer than 255 bytes")),
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

fn xattr_allowed(key: &str) -> bool {
    // trusted.* is overlayfs' control plane (opaque, redirect, metacopy) and must come only from Peapod.
    key.starts_with("user.") || key == "security.capability"
}

fn open_dir_nofollow(dir: impl AsFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn file_type(st: &rustix::fs::Stat) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.st_mode)
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw_unchecked(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw_unchecked(g)
}

fn timestamps(mtime: i64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_times_fd(fd: &OwnedFd, mtime: i64) -> rustix::io::Result<()> {
    // O_PATH fds cannot be used with futimens; go through the fd's /proc link without following anything else.
    match rustix::fs::futimens(fd, &timestamps(mtime)) {
        Err(rustix::io::Errno::BADF) => {
            rustix::fs::utimensat(fd, "", &timestamps(mtime), AtFlags::EMPTY_PATH).or(Ok(()))
        }
        other => other,
    }
}

fn set_times_at(dir: &OwnedFd, name: &str, mtime: i64) -> rustix::io::Result<()> {
    rustix::fs::utimensat(dir, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
}

/// Removes `dir/name` and, if it is a directory, everything under it, never following symlinks.
pub fn remove_at(dir: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    clear_dir(&sub)?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Removes everything inside the directory `dir`.
pub fn clear_dir(dir: &OwnedFd) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    for n in names {
        remove_at(dir, &n)?;
    }
    Ok(())
}

/// Whether the merged view of `lowers` (topmost first) has a symlink at `comps`.
fn lower_is_symlink(lowers: &[OwnedFd], comps: &[String]) -> bool {
    'layers: for lower in lowers {
        let mut cur: Option<OwnedFd> = None;
        for (i, c) in comps.iter().enumerate() {
            let dir = cur.as_ref().unwrap_or(lower);
            let Ok(st) = rustix::fs::statat(dir, c.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
                continue 'layers;
            };
            let ft = file_type(&st);
            let last = i + 1 == comps.len();
            if ft == rustix::fs::FileType::CharacterDevice && st.st_rdev == 0 {
                return false; // a whiteout hides everything below
            }
            if last {
                return ft == rustix::fs::FileType::Symlink;
            }
            match ft {
                rustix::fs::FileType::Directory => match open_dir_nofollow(dir, c) {
                    Ok(fd) => cur = Some(fd),
                    Err(_) => continue 'layers,
                },
                // A symlink on the way: the path itself is reached through it, which the walk of the shallower
                // prefix has already refused; anything else means the path cannot exist below.
                _ => return ft == rustix::fs::FileType::Symlink,
            }
        }
    }
    false
}

/// Reads an extended attribute of an fd; for tests and `image inspect`.
pub fn has_opaque_xattr(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}
