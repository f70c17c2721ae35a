//! The node's content store, in OCI image layout under `<data-dir>/images/`:
//!
//! ```text
//! images/oci-layout             {"imageLayoutVersion":"1.0.0"}
//! images/index.json             one descriptor per image name (annotation io.containerd.image.name)
//! images/blobs/sha256/<hex>     manifests, indexes, configs, layers — each verified before it gets this name
//! images/ingest/                blobs being written (temp files; never read as content)
//! images/snapshots/<chain>/fs   one unpacked layer per chain ID, read-only once renamed into place
//! images/leases/<id>            chain IDs a container root is using, so garbage collection keeps them
//! images/lock, index.lock       flock(2) files: pulls/loads hold `lock` shared, garbage collection exclusive
//! ```
//!
//! # Reliability
//! Nothing is ever written under its final name: blobs are written to `ingest/`, hashed as they are written,
//! fsynced and renamed into `blobs/` only when digest and size match; snapshots are unpacked into
//! `snapshots/.tmp-*` and renamed into place only after the layer's diff ID matched the image config; `index.json`
//! is replaced by rename. A crash leaves at most temp files, which the next garbage collection removes. Several
//! processes (the server's node agent and `peapod image` commands) can share one store through the flock files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::digest::{Digest, HashReader, HashWriter};
use crate::oci::{self, Descriptor, Document, ImageConfig, Manifest};
use crate::reference::ImageRef;
use crate::unpack;
use crate::ImageError;

/// One image of the store, resolved for this machine's platform.
#[derive(Clone, Debug)]
pub struct Image {
    /// The full name, `docker.io/library/nginx:1.21`.
    pub name: String,
    /// What the name points at: an index (multi-platform) or a manifest.
    pub target: Descriptor,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    /// The image ID: the config's digest.
    pub id: Digest,
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Bytes of content in the store: manifest, config and (compressed) layers, as containerd counts it.
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub desc: Descriptor,
    pub digest: Digest,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

impl Image {
    /// `repo@digest` of what was pulled or loaded (the name's target), as `RepoDigests` shows it.
    pub fn repo_digest(&self) -> String {
        match ImageRef::parse(&self.name) {
            Ok(r) => format!("{}@{}", r.name(), self.target.digest),
            Err(_) => self.target.digest.clone(),
        }
    }
}

/// Image names whose content no longer resolves, with why.
pub type Unusable = Vec<(String, ImageError)>;

/// What garbage collection removed.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    pub blobs: usize,
    pub snapshots: usize,
    pub bytes: u64,
}

/// A held flock; released on drop.
pub struct StoreLock(#[allow(dead_code)] OwnedFd);

/// The content store rooted at `<data-dir>/images`.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    unpack: unpack::Options,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn errno_at(path: &Path) -> impl FnOnce(rustix::io::Errno) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

impl ImageStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        for d in ["blobs/sha256", "ingest", "snapshots", "leases"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            write_atomic(&index, &index_bytes(&[])?)?;
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
            unpack: unpack::Options::for_current_user(),
        })
    }

    /// Replaces the unpack options (limits, device nodes, ownership).
    pub fn with_unpack_options(mut self, opts: unpack::Options) -> Self {
        self.unpack = opts;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn snapshot_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain.hex())
    }

    /// The directory a snapshot's files are in (an overlay lower layer).
    pub fn snapshot_fs(&self, chain: &Digest) -> PathBuf {
        self.snapshot_dir(chain).join("fs")
    }

    fn flock(&self, file: &str, op: FlockOperation) -> Result<StoreLock, ImageError> {
        let p = self.root.join(file);
        let fd = rustix::fs::open(
            &p,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno_at(&p))?;
        rustix::fs::flock(&fd, op).map_err(errno_at(&p))?;
        Ok(StoreLock(fd))
    }

    /// Held while adding content (pull, load, import, unpack) so garbage collection waits.
    pub fn lock_shared(&self) -> Result<StoreLock, ImageError> {
        self.flock("lock", FlockOperation::LockShared)
    }

    fn lock_exclusive(&self) -> Result<StoreLock, ImageError> {
        self.flock("lock", FlockOperation::LockExclusive)
    }

    /// Starts writing a blob under `ingest/`.
    pub fn blob_writer(&self) -> Result<BlobWriter, ImageError> {
        let (path, file) = self.temp_file()?;
        Ok(BlobWriter {
            out: Some(HashWriter {
                inner: file,
                hasher: Default::default(),
            }),
            tmp: path,
            store: self.clone(),
        })
    }

    /// A fresh temp file under `ingest/`.
    pub fn temp_file(&self) -> Result<(PathBuf, File), ImageError> {
        for _ in 0..16 {
            let p = self
                .root
                .join("ingest")
                .join(format!("tmp-{:016x}", rand::random::<u64>()));
            match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ImageError::Io { path: p, source: e }),
            }
        }
        Err(ImageError::Invalid(
            "could not create a temporary file in the image store".into(),
        ))
    }

    /// Moves a fully written and verified temp file into `blobs/` under `digest`.
    pub fn commit_temp(
        &self,
        tmp: &Path,
        actual: &Digest,
        actual_size: u64,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<(), ImageError> {
        let result = (|| {
            if actual != expected {
                return Err(ImageError::Blob {
                    digest: expected.to_string(),
                    reason: format!("content has digest {actual}"),
                });
            }
            if let Some(want) = expected_size {
                if want != actual_size {
                    return Err(ImageError::Blob {
                        digest: expected.to_string(),
                        reason: format!("size is {actual_size} bytes, the descriptor says {want}"),
                    });
                }
            }
            let f = File::open(tmp).map_err(io_at(tmp))?;
            f.sync_all().map_err(io_at(tmp))?;
            let dest = self.blob_path(expected);
            fs::rename(tmp, &dest).map_err(io_at(&dest))?;
            sync_dir(dest.parent().unwrap_or(&self.root));
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(io_at(&w.tmp.clone()))?;
        w.commit(&d, Some(bytes.len() as u64))?;
        Ok(d)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ImageError> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::Blob {
                digest: d.to_string(),
                reason: "missing from the store".into(),
            },
            _ => ImageError::Io {
                path: p.clone(),
                source: e,
            },
        })
    }

    /// Reads a small document blob (manifest, index, config), checking size bound and digest.
    pub fn read_document(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        let f = self.open_blob(d)?;
        let mut buf = Vec::new();
        f.take(oci::MAX_DOCUMENT + 1)
            .read_to_end(&mut buf)
            .map_err(io_at(&self.blob_path(d)))?;
        if buf.len() as u64 > oci::MAX_DOCUMENT {
            return Err(ImageError::Blob {
                digest: d.to_string(),
                reason: "document larger than 8 MiB".into(),
            });
        }
        if Digest::of(&buf) != *d {
            return Err(ImageError::Blob {
                digest: d.to_string(),
                reason: "stored content does not match its digest".into(),
            });
        }
        Ok(buf)
    }

    fn read_index(&self) -> Result<Vec<Descriptor>, ImageError> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).map_err(io_at(&p))?;
        let idx: oci::Index =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid(format!("{}: {e}", p.display())))?;
        Ok(idx.manifests)
    }

    fn update_index(&self, f: impl FnOnce(&mut Vec<Descriptor>)) -> Result<(), ImageError> {
        let _guard = self.flock("index.lock", FlockOperation::LockExclusive)?;
        let mut entries = self.read_index()?;
        f(&mut entries);
        write_atomic(&self.root.join("index.json"), &index_bytes(&entries)?)
    }

    /// Points `name` (a full reference) at `target`, replacing what it pointed at.
    pub fn tag(&self, name: &str, target: &Descriptor) -> Result<(), ImageError> {
        let mut d = target.clone();
        d.platform = None;
        d.annotations = BTreeMap::new();
        d.annotations
            .insert(oci::ANNOTATION_IMAGE_NAME.into(), name.to_string());
        if let Ok(r) = ImageRef::parse(name) {
            if let Some(t) = r.tag {
                d.annotations.insert(oci::ANNOTATION_REF_NAME.into(), t);
            }
        }
        self.update_index(|entries| {
            entries.retain(|e| e.annotations.get(oci::ANNOTATION_IMAGE_NAME).map(String::as_str) != Some(name));
            entries.push(d);
            entries.sort_by(|a, b| {
                a.annotations
                    .get(oci::ANNOTATION_IMAGE_NAME)
                    .cmp(&b.annotations.get(oci::ANNOTATION_IMAGE_NAME))
            });
        })
    }

    /// Resolves a descriptor (index or manifest) to this platform's image.
    pub fn resolve(&self, name: &str, target: &Descriptor) -> Result<Image, ImageError> {
        let top = parse_digest(&target.digest)?;
        let bytes = self.read_document(&top)?;
        let mut docs_size = bytes.len() as u64;
        let (manifest_digest, manifest) =
            match Document::parse(&bytes).map_err(|e| ImageError::Invalid(format!("{top}: {e}")))? {
                Document::Manifest(m) => (top, m),
                Document::Index(idx) => {
                    let want = oci::host_platform();
                    let d = oci::select_platform(&idx, &want).ok_or_else(|| {
                        ImageError::Invalid(format!(
                            "no match for platform in manifest: {}/{}: not found",
                            want.os, want.architecture
                        ))
                    })?;
                    let md = parse_digest(&d.digest)?;
                    let mb = self.read_document(&md)?;
                    docs_size += mb.len() as u64;
                    match Document::parse(&mb).map_err(|e| ImageError::Invalid(format!("{md}: {e}")))? {
                        Document::Manifest(m) => (md, m),
                        Document::Index(_) => return Err(ImageError::Invalid(format!("{md}: nested image index"))),
                    }
                }
            };
        let id = parse_digest(&manifest.config.digest)?;
        let config_bytes = self.read_document(&id)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::Invalid(format!("image config {id}: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid(format!(
                "image config {id} lists {} layers, the manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        let mut parent: Option<Digest> = None;
        for (desc, diff) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let diff_id = parse_digest(diff)?;
            let chain_id = Digest::chain(parent.as_ref(), &diff_id);
            parent = Some(chain_id.clone());
            layers.push(Layer {
                desc: desc.clone(),
                digest: parse_digest(&desc.digest)?,
                diff_id,
                chain_id,
            });
        }
        let size = docs_size + manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(Image {
            name: name.to_string(),
            target: target.clone(),
            manifest_digest,
            manifest,
            id,
            config,
            layers,
            size,
        })
    }

    /// Every image, by name. Entries that no longer resolve are reported as errors in the second list.
    pub fn list(&self) -> Result<(Vec<Image>, Unusable), ImageError> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for d in self.read_index()? {
            let Some(name) = d.annotations.get(oci::ANNOTATION_IMAGE_NAME).cloned() else {
                continue;
            };
            match self.resolve(&name, &d) {
                Ok(img) => ok.push(img),
                Err(e) => bad.push((name, e)),
            }
        }
        Ok((ok, bad))
    }

    /// Finds an image by reference (`nginx:1.21`, `docker.io/library/nginx:1.21`) or image ID (or a unique prefix).
    pub fn get(&self, name_or_id: &str) -> Result<Image, ImageError> {
        let index = self.read_index()?;
        if let Ok(r) = ImageRef::parse(name_or_id) {
            let full = r.full();
            if let Some(d) = index
                .iter()
                .find(|d| d.annotations.get(oci::ANNOTATION_IMAGE_NAME) == Some(&full))
            {
                return self.resolve(&full, d);
            }
        }
        let want = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if !want.is_empty() && want.bytes().all(|b| b.is_ascii_hexdigit()) {
            let (images, _) = self.list()?;
            let mut found: Vec<Image> = images.into_iter().filter(|i| i.id.hex().starts_with(want)).collect();
            if found.len() == 1 || found.windows(2).all(|w| w[0].id == w[1].id) {
                if let Some(img) = found.pop() {
                    return Ok(img);
                }
            } else {
                return Err(ImageError::Invalid(format!("image ID prefix {want:?} is ambiguous")));
            }
        }
        Err(ImageError::NotFound(name_or_id.to_string()))
    }

    /// Makes sure every layer of `image` is unpacked; returns the snapshot `fs` dirs, bottom layer first.
    pub fn ensure_unpacked(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let _guard = self.lock_shared()?;
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let dir = self.snapshot_dir(&layer.chain_id);
            if !dir.join("fs").is_dir() {
                self.unpack_one(layer, &dirs)?;
            }
            dirs.push(dir.join("fs"));
        }
        Ok(dirs)
    }

    fn unpack_one(&self, layer: &Layer, lowers_bottom_first: &[PathBuf]) -> Result<(), ImageError> {
        let snaps = self.root.join("snapshots");
        let tmp = snaps.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let fsdir = tmp.join("fs");
        fs::create_dir_all(&fsdir).map_err(io_at(&fsdir))?;
        let result = (|| {
            let blob = self.open_blob(&layer.digest)?;
            let mut reader = HashReader::new(io::BufReader::with_capacity(1 << 20, blob));
            let lowers: Vec<&Path> = lowers_bottom_first.iter().rev().map(PathBuf::as_path).collect();
            let stats = unpack::unpack_layer(&mut reader, &fsdir, &lowers, &self.unpack)?;
            io::copy(&mut reader, &mut io::sink()).map_err(io_at(&self.blob_path(&layer.digest)))?;
            let blob_digest = reader.hasher.clone().finish();
            if blob_digest != layer.digest {
                return Err(ImageError::Blob {
                    digest: layer.digest.to_string(),
                    reason: format!("stored content has digest {blob_digest}"),
                });
            }
            if stats.diff_id != layer.diff_id.as_str() {
                return Err(ImageError::Blob {
                    digest: layer.digest.to_string(),
                    reason: format!(
                        "uncompressed layer has digest {}, the image config's diff ID is {}",
                        stats.diff_id, layer.diff_id
                    ),
                });
            }
            let meta = serde_json::json!({"diffID": layer.diff_id.as_str(), "size": stats.file_bytes, "entries": stats.entries});
            fs::write(tmp.join("meta.json"), meta.to_string()).map_err(io_at(&tmp))?;
            let dest = self.snapshot_dir(&layer.chain_id);
            match fs::rename(&tmp, &dest) {
                Ok(()) => {
                    sync_dir(&snaps);
                    Ok(())
                }
                // Another process unpacked the same chain first: theirs is as good as ours.
                Err(_) if dest.join("fs").is_dir() => {
                    remove_tree(&tmp);
                    Ok(())
                }
                Err(e) => Err(ImageError::Io {
                    path: dest.clone(),
                    source: e,
                }),
            }
        })();
        if result.is_err() {
            remove_tree(&tmp);
        }
        result
    }

    /// Removes names (a reference removes that name; an image ID removes every name of that image), then collects
    /// garbage. Returns the names removed.
    pub fn remove(&self, name_or_id: &str) -> Result<Vec<String>, ImageError> {
        let img = self.get(name_or_id)?;
        let by_name = ImageRef::parse(name_or_id).map(|r| r.full()).ok() == Some(img.name.clone());
        let mut removed = Vec::new();
        let id = img.id.clone();
        let names: BTreeSet<String> = if by_name {
            [img.name.clone()].into()
        } else {
            self.list()?
                .0
                .into_iter()
                .filter(|i| i.id == id)
                .map(|i| i.name)
                .collect()
        };
        self.update_index(|entries| {
            entries.retain(|e| match e.annotations.get(oci::ANNOTATION_IMAGE_NAME) {
                Some(n) if names.contains(n) => {
                    removed.push(n.clone());
                    false
                }
                _ => true,
            })
        })?;
        self.gc()?;
        Ok(removed)
    }

    /// Records that a container root uses `chains`, so garbage collection keeps those snapshots.
    pub fn add_lease(&self, id: &str, chains: &[Digest]) -> Result<(), ImageError> {
        check_lease_id(id)?;
        let body: Vec<&str> = chains.iter().map(|c| c.as_str()).collect();
        write_atomic(&self.root.join("leases").join(id), body.join("\n").as_bytes())
    }

    pub fn remove_lease(&self, id: &str) -> Result<(), ImageError> {
        check_lease_id(id)?;
        let p = self.root.join("leases").join(id);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::Io { path: p, source: e }),
            _ => Ok(()),
        }
    }

    /// Removes every blob and snapshot no image name or lease needs, and every leftover temp file.
    pub fn gc(&self) -> Result<GcReport, ImageError> {
        let _guard = self.lock_exclusive()?;
        let mut keep_blobs: BTreeSet<String> = BTreeSet::new();
        let mut keep_snaps: BTreeSet<String> = BTreeSet::new();
        for d in self.read_index()? {
            keep_blobs.insert(d.digest.clone());
            let Some(name) = d.annotations.get(oci::ANNOTATION_IMAGE_NAME) else {
                continue;
            };
            // Keep every present child of an index (other platforms' manifests, if any were stored).
            if let Ok(top) = parse_digest(&d.digest) {
                if let Ok(bytes) = self.read_document(&top) {
                    if let Ok(Document::Index(idx)) = Document::parse(&bytes) {
                        keep_blobs.extend(idx.manifests.iter().map(|m| m.digest.clone()));
                    }
                }
            }
            if let Ok(img) = self.resolve(name, &d) {
                keep_blobs.insert(img.manifest_digest.to_string());
                keep_blobs.insert(img.id.to_string());
                for l in &img.layers {
                    keep_blobs.insert(l.digest.to_string());
                    keep_snaps.insert(l.chain_id.hex().to_string());
                }
            }
        }
        let leases = self.root.join("leases");
        for e in fs::read_dir(&leases).map_err(io_at(&leases))?.flatten() {
            if let Ok(s) = fs::read_to_string(e.path()) {
                keep_snaps.extend(s.lines().filter_map(|l| l.strip_prefix("sha256:")).map(str::to_string));
            }
        }
        let mut report = GcReport::default();
        let blobs = self.root.join("blobs/sha256");
        for e in fs::read_dir(&blobs).map_err(io_at(&blobs))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&format!("sha256:{name}")) {
                report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                if fs::remove_file(e.path()).is_ok() {
                    report.blobs += 1;
                }
            }
        }
        let snaps = self.root.join("snapshots");
        for e in fs::read_dir(&snaps).map_err(io_at(&snaps))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_snaps.contains(&name) {
                remove_tree(&e.path());
                if !name.starts_with(".tmp-") {
                    report.snapshots += 1;
                }
            }
        }
        let ingest = self.root.join("ingest");
        for e in fs::read_dir(&ingest).map_err(io_at(&ingest))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        Ok(report)
    }
}

fn check_lease_id(id: &str) -> Result<(), ImageError> {
    if id.is_empty()
        || id.len() > 200
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || id.starts_with('.')
    {
        return Err(ImageError::Invalid(format!("invalid lease id {id:?}")));
    }
    Ok(())
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, ImageError> {
    Digest::parse(s).map_err(|e| ImageError::Invalid(e.to_string()))
}

fn index_bytes(entries: &[Descriptor]) -> Result<Vec<u8>, ImageError> {
    let idx = oci::Index {
        schema_version: 2,
        media_type: Some(oci::OCI_INDEX.into()),
        manifests: entries.to_vec(),
    };
    serde_json::to_vec_pretty(&idx).map_err(|e| ImageError::Invalid(e.to_string()))
}

/// Writes `path` by temp file, fsync and rename, so readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{:016x}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(bytes).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, path).map_err(io_at(path))?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Removes a directory tree without following symlinks (snapshots hold image-controlled names and links).
pub(crate) fn remove_tree(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if let Ok(dir) = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = unpack::remove_at(&dir, &name.to_string_lossy());
    }
}

/// Writes a blob to `ingest/` while hashing it; `commit` verifies and moves it into place, drop discards it.
pub struct BlobWriter {
    out: Option<HashWriter<File>>,
    tmp: PathBuf,
    store: ImageStore,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Verifies the content against `expected` (and `size`) and gives it its final name.
    pub fn commit(mut self, expected: &Digest, size: Option<u64>) -> Result<(), ImageError> {
        let Some(mut w) = self.out.take() else {
            return Err(ImageError::Invalid("blob writer already committed".into()));
        };
        w.flush().map_err(io_at(&self.tmp))?;
        let len = w.hasher.len;
        let actual = w.hasher.clone().finish();
        drop(w.inner);
        let tmp = std::mem::take(&mut self.tmp);
        self.store.commit_temp(&tmp, &actual, len, expected, size)
    }

    /// The digest and length of what was written so far.
    pub fn written(&self) -> Option<(Digest, u64)> {
        self.out.as_ref().map(|w| (w.hasher.clone().finish(), w.hasher.len))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.out.is_some() && !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
