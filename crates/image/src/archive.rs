//! Loading images from archives: `docker save` archives (`manifest.json` + config + layer tars, old and new
//! layouts) and OCI image layouts in a tar (`oci-layout`, `index.json`, `blobs/sha256/…`), plain or compressed,
//! from a file or stdin; and importing a plain root filesystem tarball as a one-layer image.
//!
//! One streaming pass: every file of the archive goes into the store's `ingest/` while being hashed (a file named
//! `blobs/sha256/<hex>` must hash to that name), only the small JSON documents are kept in memory (8 MiB each at
//! most). Nothing is named until the whole image checked out: every blob a manifest names is present, layers unpack
//! and match their diff IDs. On any error the content this load added is collected again.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::Deserialize;

use crate::digest::{Digest, HashReader};
use crate::oci::{self, Descriptor, ImageConfig, Manifest};
use crate::reference::ImageRef;
use crate::store::ImageStore;
use crate::{unpack, ImageError};

/// docker save's `manifest.json` entries.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

const DOC_NAMES: [&str; 4] = ["manifest.json", "index.json", "oci-layout", "repositories"];

/// The images an archive held, by name (`sha256:<id>` for untagged ones).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub names: Vec<String>,
    pub ids: Vec<Digest>,
}

/// Loads a `docker save` or OCI archive (optionally gzip/zstd compressed) into `store`.
pub fn load(store: &ImageStore, reader: impl Read) -> Result<Loaded, ImageError> {
    let result = {
        let _guard = store.lock_shared()?;
        load_locked(store, reader)
    };
    if result.is_err() {
        // Take back the blobs and snapshots this load wrote; anything another image uses is kept.
        let _ = store.gc();
    }
    result
}

fn load_locked(store: &ImageStore, reader: impl Read) -> Result<Loaded, ImageError> {
    let stream = unpack::decompress(reader).map_err(archive_err)?;
    let mut archive = tar::Archive::new(stream);
    let mut docs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // Archive path → (digest, size) of the file's content.
    let mut files: BTreeMap<String, (Digest, u64)> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Ok(Some(target)) = entry.link_name() {
                    let target = target.to_string_lossy().into_owned();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        clean(&format!("{dir}/{target}"))
                    } else {
                        clean(&target)
                    };
                    links.insert(path, resolved);
                }
                continue;
            }
            _ => continue,
        }
        if DOC_NAMES.contains(&path.as_str()) {
            let mut buf = Vec::new();
            (&mut entry)
                .take(oci::MAX_DOCUMENT + 1)
                .read_to_end(&mut buf)
                .map_err(archive_err)?;
            if buf.len() as u64 > oci::MAX_DOCUMENT {
                return Err(ImageError::Invalid(format!(
                    "archive member {path} is larger than 8 MiB"
                )));
            }
            docs.insert(path, buf);
            continue;
        }
        let expected = path
            .strip_prefix("blobs/sha256/")
            .map(|h| Digest::parse(&format!("sha256:{h}")));
        let expected = match expected {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => return Err(ImageError::Invalid(format!("archive member {path}: {e}"))),
            None => None,
        };
        if let Some(d) = &expected {
            if store.has_blob(d) {
                // Already stored (verified when it was); skip the bytes.
                let n = io::copy(&mut entry, &mut io::sink()).map_err(archive_err)?;
                files.insert(path, (d.clone(), n));
                continue;
            }
        }
        let mut w = store.blob_writer()?;
        io::copy(&mut entry, &mut w).map_err(archive_err)?;
        w.flush().map_err(archive_err)?;
        let (actual, n) = w
            .written()
            .ok_or_else(|| ImageError::Invalid("blob writer closed".into()))?;
        let want = expected.clone().unwrap_or_else(|| actual.clone());
        if store.has_blob(&want) && want == actual {
            drop(w);
        } else {
            w.commit(&want, None).map_err(|e| match e {
                ImageError::Blob { reason, .. } => {
                    ImageError::Invalid(format!("archive member {path}: digest mismatch: {reason}"))
                }
                other => other,
            })?;
        }
        files.insert(path, (actual, n));
    }
    let lookup = |p: &str| -> Result<(Digest, u64), ImageError> {
        let mut p = clean(p);
        for _ in 0..8 {
            if let Some(f) = files.get(&p) {
                return Ok(f.clone());
            }
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(ImageError::Invalid(format!(
            "archive does not contain {p:?}, which its manifest names"
        )))
    };

    let mut todo: Vec<(String, Descriptor)> = Vec::new();
    if let Some(m) = docs.get("manifest.json") {
        let entries: Vec<DockerArchiveEntry> =
            serde_json::from_slice(m).map_err(|e| ImageError::Invalid(format!("archive manifest.json: {e}")))?;
        for e in entries {
            let (config_digest, config_size) = lookup(&e.config)?;
            let config_bytes = store.read_document(&config_digest)?;
            let _: ImageConfig = serde_json::from_slice(&config_bytes)
                .map_err(|err| ImageError::Invalid(format!("image config {}: {err}", e.config)))?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let (d, size) = lookup(l)?;
                layers.push(Descriptor {
                    media_type: layer_media_type(store, &d)?,
                    digest: d.to_string(),
                    size,
                    ..Default::default()
                });
            }
            let config = Descriptor {
                media_type: oci::OCI_CONFIG.into(),
                digest: config_digest.to_string(),
                size: config_size,
                ..Default::default()
            };
            let desc = write_manifest(store, config, layers)?;
            let tags = e.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                todo.push((config_digest.to_string(), desc.clone()));
            }
            for t in tags {
                todo.push((ImageRef::parse(&t)?.full(), desc.clone()));
            }
        }
    } else if let Some(idx) = docs.get("index.json") {
        let index: oci::Index =
            serde_json::from_slice(idx).map_err(|e| ImageError::Invalid(format!("archive index.json: {e}")))?;
        for d in index.manifests {
            let digest = Digest::parse(&d.digest).map_err(|e| ImageError::Invalid(e.to_string()))?;
            if !store.has_blob(&digest) {
                return Err(ImageError::Invalid(format!(
                    "archive does not contain blob {digest}, which index.json names"
                )));
            }
            let name = d
                .annotations
                .get(oci::ANNOTATION_IMAGE_NAME)
                .or_else(|| {
                    d.annotations
                        .get(oci::ANNOTATION_REF_NAME)
                        .filter(|n| n.contains(['/', ':']))
                })
                .map(|n| ImageRef::parse(n).map(|r| r.full()))
                .transpose()?;
            let desc = Descriptor {
                media_type: d.media_type.clone(),
                digest: d.digest.clone(),
                size: d.size,
                ..Default::default()
            };
            let name = match name {
                Some(n) => n,
                None => {
                    let img = store.resolve(&d.digest, &desc)?;
                    img.id.to_string()
                }
            };
            todo.push((name, desc));
        }
    } else {
        return Err(ImageError::Invalid(
            "archive has neither manifest.json (docker save) nor index.json (OCI layout)".into(),
        ));
    }
    if todo.is_empty() {
        return Err(ImageError::Invalid("archive holds no images".into()));
    }
    let mut loaded = Loaded {
        names: Vec::new(),
        ids: Vec::new(),
    };
    // Check and unpack everything before naming anything.
    let mut ready = Vec::new();
    for (name, desc) in todo {
        let img = store.resolve(&name, &desc)?;
        for l in &img.layers {
            if !store.has_blob(&l.digest) {
                return Err(ImageError::Invalid(format!(
                    "archive does not contain layer {}, which the manifest names",
                    l.digest
                )));
            }
        }
        store.ensure_unpacked(&img)?;
        ready.push((name, desc, img.id));
    }
    for (name, desc, id) in ready {
        store.tag(&name, &desc)?;
        loaded.names.push(name);
        if !loaded.ids.contains(&id) {
            loaded.ids.push(id);
        }
    }
    Ok(loaded)
}

/// Imports a plain root filesystem tarball (plain, gzip or zstd) as a one-layer image named `name`.
pub fn import(store: &ImageStore, reader: impl Read, name: &str) -> Result<Loaded, ImageError> {
    let full = ImageRef::parse(name)?.full();
    let result = {
        let _guard = store.lock_shared()?;
        import_locked(store, reader, &full)
    };
    if result.is_err() {
        let _ = store.gc();
    }
    result
}

fn import_locked(store: &ImageStore, reader: impl Read, name: &str) -> Result<Loaded, ImageError> {
    let mut w = store.blob_writer()?;
    io::copy(&mut { reader }, &mut w).map_err(archive_err)?;
    let (layer, size) = w
        .written()
        .ok_or_else(|| ImageError::Invalid("blob writer closed".into()))?;
    w.commit(&layer, Some(size))?;
    // The diff ID: the digest of the uncompressed stream.
    let blob = store.open_blob(&layer)?;
    let mut hr = HashReader::new(unpack::decompress(io::BufReader::new(blob)).map_err(archive_err)?);
    io::copy(&mut hr, &mut io::sink()).map_err(archive_err)?;
    let diff_id = hr.hasher.finish();
    let platform = oci::host_platform();
    let config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": jiff::Timestamp::now().to_string(),
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
        "history": [{"created_by": "peapod image import"}],
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let config_digest = store.write_blob(&config_bytes)?;
    let config = Descriptor {
        media_type: oci::OCI_CONFIG.into(),
        digest: config_digest.to_string(),
        size: config_bytes.len() as u64,
        ..Default::default()
    };
    let layer = Descriptor {
        media_type: layer_media_type(store, &layer)?,
        digest: layer.to_string(),
        size,
        ..Default::default()
    };
    let desc = write_manifest(store, config, vec![layer])?;
    let img = store.resolve(name, &desc)?;
    store.ensure_unpacked(&img)?;
    store.tag(name, &desc)?;
    Ok(Loaded {
        names: vec![name.to_string()],
        ids: vec![img.id],
    })
}

/// Stores an OCI manifest of `config` and `layers`; returns its descriptor.
fn write_manifest(store: &ImageStore, config: Descriptor, layers: Vec<Descriptor>) -> Result<Descriptor, ImageError> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.into()),
        config,
        layers,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let digest = store.write_blob(&bytes)?;
    Ok(Descriptor {
        media_type: oci::OCI_MANIFEST.into(),
        digest: digest.to_string(),
        size: bytes.len() as u64,
        ..Default::default()
    })
}

fn layer_media_type(store: &ImageStore, d: &Digest) -> Result<String, ImageError> {
    let mut f = store.open_blob(d)?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(archive_err)?;
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        oci::OCI_LAYER_GZIP
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        oci::OCI_LAYER_ZSTD
    } else {
        oci::OCI_LAYER
    }
    .to_string())
}

fn archive_err(e: io::Error) -> ImageError {
    ImageError::Invalid(format!("reading archive: {e}"))
}

/// Lexically cleans an archive path: no leading `./` or `/`, `..` resolved within the archive.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}
