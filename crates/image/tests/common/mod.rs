//! Builders for hand-made tars and image archives (raw headers, so hostile names are possible) and a leak checker.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// One raw tar entry.
#[derive(Clone)]
pub struct E {
    pub name: Vec<u8>,
    pub kind: u8,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub size_override: Option<u64>,
    pub dev: (u32, u32),
}

pub fn file(name: &str, data: &[u8]) -> E {
    E {
        name: name.into(),
        kind: b'0',
        link: vec![],
        data: data.to_vec(),
        mode: 0o644,
        size_override: None,
        dev: (0, 0),
    }
}
pub fn dir(name: &str) -> E {
    E {
        kind: b'5',
        mode: 0o755,
        ..file(name, b"")
    }
}
pub fn symlink(name: &str, target: &str) -> E {
    E {
        kind: b'2',
        link: target.into(),
        mode: 0o777,
        ..file(name, b"")
    }
}
pub fn hardlink(name: &str, target: &str) -> E {
    E {
        kind: b'1',
        link: target.into(),
        ..file(name, b"")
    }
}
pub fn chardev(name: &str, major: u32, minor: u32) -> E {
    E {
        kind: b'3',
        dev: (major, minor),
        mode: 0o600,
        ..file(name, b"")
    }
}
/// A PAX extended header carrying `records` (key, value), for the next entry.
pub fn pax(records: &[(&str, &[u8])]) -> E {
    let mut data = Vec::new();
    for (k, v) in records {
        let body_len = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    E {
        kind: b'x',
        ..file("PaxHeaders/x", &data)
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// Writes entries as a ustar archive with raw names (names over 100 bytes are truncated: use a PAX path).
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        let n = e.name.len().min(100);
        h[..n].copy_from_slice(&e.name[..n]);
        octal(&mut h[100..108], e.mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], e.size_override.unwrap_or(e.data.len() as u64));
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = e.kind;
        let l = e.link.len().min(100);
        h[157..157 + l].copy_from_slice(&e.link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], e.dev.0 as u64);
        octal(&mut h[337..345], e.dev.1 as u64);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

/// A `docker save` archive with one image of `layers` (each a layer tar, possibly compressed), tagged `tag`.
/// `diff_ids` defaults to the digests of the layers as given (right for uncompressed layers).
pub fn docker_archive(tag: &str, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) -> Vec<u8> {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha(l)).collect());
    let config = serde_json::json!({
        "architecture": peapod_image::oci::host_platform().architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", &sha(&config)[7..]);
    let mut entries = vec![file(&config_name, &config)];
    let mut layer_names = Vec::new();
    for l in layers {
        let n = format!("{}/layer.tar", &sha(l)[7..]);
        entries.push(dir(&sha(l)[7..]));
        entries.push(file(&n, l));
        layer_names.push(n);
    }
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]);
    entries.push(file("manifest.json", &serde_json::to_vec(&manifest).unwrap()));
    tar(&entries)
}

/// A snapshot of a directory tree: path → (kind, size, mode, mtime, content digest), never following symlinks.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(md) = std::fs::symlink_metadata(p) else { return };
        let content = if md.is_file() {
            std::fs::read(p).map(|b| sha(&b)).unwrap_or_default()
        } else {
            String::new()
        };
        let link = std::fs::read_link(p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.insert(
            p.to_path_buf(),
            format!(
                "{:o} {} {} {} {content} {link}",
                md.mode(),
                md.size(),
                md.mtime(),
                md.nlink()
            ),
        );
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), out);
                }
            }
        }
    }
    walk(root, &mut out);
    out
}

/// Entries of `dir` (names), empty if it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
