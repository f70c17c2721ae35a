//! Hostile archives and layers (containerd's TestBreakouts list, the attack list of
//! shared/reference/security-reliability.md §2.3, and store-level corruption). Each case goes through the real
//! `peapod_image::archive::load` path into a fresh store and must
//! - fail with a clear error naming what was wrong,
//! - leave every file outside the store unchanged (a sentinel tree the archive aims at, and /etc/passwd, /etc/shadow),
//! - leave nothing half-written in the store: no temp files, no snapshot, no blob, no name.
//!
//! A second group of cases is not an error but must be handled safely (device nodes, setuid bits, overlay xattrs,
//! symlinks replaced by files); they check where the content ended up.

mod common;

use common::*;
use peapod_image::store::ImageStore;
use std::path::Path;

struct Env {
    _tmp: tempfile::TempDir,
    outside: std::path::PathBuf,
    store: ImageStore,
    images: std::path::PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("victim"), b"unbroken").unwrap();
    std::fs::write(outside.join("dir/victim"), b"unbroken").unwrap();
    let images = tmp.path().join("data/images");
    let store = ImageStore::open(&images).unwrap();
    Env {
        outside,
        store,
        images,
        _tmp: tmp,
    }
}

fn host_files() -> Vec<(String, String)> {
    ["/etc/passwd", "/etc/shadow", "/etc/hostname"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                tree(Path::new(p)).into_values().collect::<Vec<_>>().join(""),
            )
        })
        .collect()
}

fn assert_store_clean(images: &Path) {
    assert!(
        names(&images.join("ingest")).is_empty(),
        "ingest left: {:?}",
        names(&images.join("ingest"))
    );
    assert!(
        names(&images.join("snapshots")).is_empty(),
        "snapshots left: {:?}",
        names(&images.join("snapshots"))
    );
    assert!(
        names(&images.join("blobs/sha256")).is_empty(),
        "blobs left: {:?}",
        names(&images.join("blobs/sha256"))
    );
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(images.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));
    let stray: Vec<String> = names(images).into_iter().filter(|n| n.contains(".tmp-")).collect();
    assert!(stray.is_empty(), "temp files left: {stray:?}");
}

/// Runs one hostile case: `build(outside)` makes the archive; the error must contain `want`.
fn refused(case: &str, want: &str, build: impl Fn(&str) -> Vec<u8>) {
    let e = env();
    let before = tree(&e.outside);
    let host_before = host_files();
    let archive = build(&e.outside.display().to_string());
    let err = match peapod_image::archive::load(&e.store, std::io::Cursor::new(archive)) {
        Ok(l) => panic!("{case}: hostile archive was loaded: {:?}", l.names),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(want), "{case}: error {err:?} does not contain {want:?}");
    assert_eq!(tree(&e.outside), before, "{case}: files outside the store changed");
    assert_eq!(host_files(), host_before, "{case}: host files changed");
    assert_store_clean(&e.images);
}

fn one_layer(entries: Vec<E>) -> Vec<u8> {
    docker_archive("hostile:1", &[tar(&entries)], None)
}

fn layers(ls: Vec<Vec<E>>) -> Vec<u8> {
    let ls: Vec<Vec<u8>> = ls.iter().map(|l| tar(l)).collect();
    docker_archive("hostile:1", &ls, None)
}

#[test]
fn path_traversal_is_refused() {
    refused("dotdot", "escapes the layer root", |_| {
        one_layer(vec![file("../escape", b"x")])
    });
    refused("dotdot nested", "escapes the layer root", |_| {
        one_layer(vec![file("a/../../escape", b"x")])
    });
    refused("dotdot at the end", "escapes the layer root", |_| {
        one_layer(vec![dir("a/b/..")])
    });
    refused("absolute path", "absolute path", |o| {
        one_layer(vec![file(&format!("{o}/abs"), b"x")])
    });
    refused("absolute /etc", "absolute path", |_| {
        one_layer(vec![file("/etc/passwd", b"root::0:0::/:/bin/sh\n")])
    });
}

#[test]
fn writing_through_symlinks_is_refused() {
    refused("SymlinkAbsolute", "through a symlink", |o| {
        one_layer(vec![symlink("evil", o), file("evil/victim", b"pwned")])
    });
    refused("SymlinkUpAndOut", "through a symlink", |o| {
        one_layer(vec![
            symlink("evil", &format!("../../../../../../..{o}")),
            file("evil/victim", b"pwned"),
        ])
    });
    refused("SymlinkChain", "through a symlink", |o| {
        one_layer(vec![symlink("b", o), symlink("a", "b"), file("a/victim", b"pwned")])
    });
    refused("SymlinkDirectory", "through a symlink", |o| {
        one_layer(vec![symlink("evil", o), dir("evil/newdir/")])
    });
    refused("SymlinkSlashEnded", "through a symlink", |o| {
        one_layer(vec![
            symlink("evil", &format!("{o}/")),
            file("evil/dir/victim", b"pwned"),
        ])
    });
    refused("SymlinkParentDirectory", "through a symlink", |o| {
        one_layer(vec![
            dir("a/"),
            symlink("a/up", &format!("{o}/dir")),
            file("a/up/victim", b"pwned"),
        ])
    });
    refused("DirectoryReplacedBySymlinkToRoot", "through a symlink", |_| {
        layers(vec![
            vec![dir("etc/"), file("etc/passwd", b"x")],
            vec![symlink("etc", "/"), file("etc/pwned", b"x")],
        ])
    });
    refused("SymlinkFromEarlierLayer", "symlink of an earlier layer", |o| {
        layers(vec![vec![symlink("etc", o)], vec![file("etc/victim", b"pwned")]])
    });
    refused("SymlinkToRootFromEarlierLayer", "symlink of an earlier layer", |_| {
        layers(vec![
            vec![dir("etc/")],
            vec![symlink("etc", "/")],
            vec![file("etc/shadow", b"pwned")],
        ])
    });
}

#[test]
fn hardlinks_outside_the_layer_are_refused() {
    refused("HardlinkAbsolute", "outside the layer root", |_| {
        one_layer(vec![hardlink("shadow", "/etc/shadow")])
    });
    refused("HardlinkRelativeUpAndOut", "outside the layer root", |_| {
        one_layer(vec![hardlink("passwd", "../../../../etc/passwd")])
    });
    refused("HardlinkSymlinkParent", "goes through a symlink", |_| {
        one_layer(vec![symlink("etc", "/etc"), hardlink("shadow", "etc/shadow")])
    });
    refused("HardlinkMissingTarget", "is not in this layer", |_| {
        one_layer(vec![hardlink("x", "etc/shadow")])
    });
    refused("HardlinkToDirectory", "is a directory", |_| {
        one_layer(vec![dir("d/"), hardlink("x", "d")])
    });
}

#[test]
fn whiteouts_outside_the_layer_are_refused() {
    refused("WhiteoutParent", "escapes the layer root", |_| {
        one_layer(vec![file("../.wh.victim", b"")])
    });
    refused("WhiteoutRootParent", "whiteout names no entry", |_| {
        one_layer(vec![file(".wh..", b"")])
    });
    refused("WhiteoutCurrentDirectory", "whiteout names no entry", |_| {
        one_layer(vec![file("a/.wh..", b"")])
    });
    refused("WhiteoutSymlink", "through a symlink", |o| {
        one_layer(vec![symlink("s", o), file("s/.wh.victim", b"")])
    });
    refused("WhiteoutOpaqueThroughSymlink", "through a symlink", |o| {
        one_layer(vec![symlink("s", o), file("s/.wh..wh..opq", b"")])
    });
}

#[test]
fn malformed_and_oversized_headers_are_refused() {
    refused("HugePaxHeader", "extended header of 1073741824 bytes", |_| {
        let mut p = pax(&[("path", b"x")]);
        p.size_override = Some(1 << 30);
        p.data.truncate(0);
        one_layer(vec![p, file("x", b"")])
    });
    refused("HugeGnuLongName", "extended header of 8589934591 bytes", |_| {
        let mut l = file("././@LongLink", b"");
        l.kind = b'L';
        l.size_override = Some(0o77777777777);
        one_layer(vec![l])
    });
    refused("PathTooLong", "path longer than 4096 bytes", |_| {
        let long = "a/".repeat(3000);
        one_layer(vec![pax(&[("path", long.as_bytes())]), file("placeholder", b"x")])
    });
    refused("PaxSizeMismatch", "PAX size differs", |_| {
        one_layer(vec![pax(&[("size", b"99999")]), file("f", b"abc")])
    });
    refused("PaxPathTraversal", "escapes the layer root", |_| {
        one_layer(vec![pax(&[("path", b"../../pax-escape")]), file("innocent", b"x")])
    });
    refused("PaxLinkpathAbsolute", "outside the layer root", |_| {
        one_layer(vec![pax(&[("linkpath", b"/etc/shadow")]), hardlink("x", "innocent")])
    });
    refused("SparseFile", "sparse files are not supported", |_| {
        let mut s = file("sparse", b"");
        s.kind = b'S';
        one_layer(vec![s])
    });
    refused("NulInName", "NUL byte", |_| {
        one_layer(vec![pax(&[("path", b"a\0b")]), file("x", b"")])
    });
}

#[test]
fn corrupt_content_is_refused() {
    refused("TruncatedGzip", "incomplete deflate stream", |_| {
        let layer = tar(&[file("a", &[7u8; 200_000]), file("b", b"x")]);
        let gz = gzip(&layer);
        let cut = gz[..gz.len() / 2].to_vec();
        docker_archive("hostile:1", &[cut], Some(vec![sha(&layer)]))
    });
    refused("DiffIdMismatch", "diff ID", |_| {
        let layer = tar(&[file("a", b"x")]);
        docker_archive("hostile:1", &[layer], Some(vec![sha(b"something else")]))
    });
    refused("LayerMissingFromArchive", "which its manifest names", |_| {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let cname = format!("{}.json", &sha(config)[7..]);
        let manifest = format!(r#"[{{"Config":"{cname}","RepoTags":["hostile:1"],"Layers":["nothere/layer.tar"]}}]"#);
        tar(&[file(&cname, config), file("manifest.json", manifest.as_bytes())])
    });
    refused("OciBlobDigestMismatch", "digest mismatch", |_| {
        let fake = format!("blobs/sha256/{}", "ab".repeat(32));
        tar(&[
            file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            file(&fake, b"not what the name says"),
        ])
    });
    refused("OciIndexNamesMissingManifest", "which index.json names", |_| {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":10}}]}}"#,
            "cd".repeat(32)
        );
        tar(&[
            file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            file("index.json", idx.as_bytes()),
        ])
    });
    refused("OciManifestNamesMissingLayer", "which the manifest names", |_| {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{}","size":5}}]}}"#,
            sha(config),
            config.len(),
            "ef".repeat(32)
        );
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/hostile:1"}}}}]}}"#,
            sha(manifest.as_bytes()),
            manifest.len()
        );
        tar(&[
            file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            file(&format!("blobs/sha256/{}", &sha(config)[7..]), config),
            file(
                &format!("blobs/sha256/{}", &sha(manifest.as_bytes())[7..]),
                manifest.as_bytes(),
            ),
            file("index.json", idx.as_bytes()),
        ])
    });
    refused("NotAnArchive", "neither manifest.json", |_| {
        tar(&[file("hello.txt", b"hi")])
    });
    refused("GarbageManifest", "archive manifest.json", |_| {
        tar(&[file("manifest.json", b"{not json")])
    });
    refused("InvalidRepoTag", "invalid reference format", |_| {
        docker_archive("UPPER/Case:1", &[tar(&[file("a", b"x")])], None)
    });
}

#[test]
fn decompression_bomb_hits_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("fs");
    std::fs::create_dir(&dest).unwrap();
    let layer = gzip(&tar(&[file("zeros", &vec![0u8; 4 << 20])]));
    assert!(layer.len() < 64 << 10, "a bomb compresses well: {}", layer.len());
    let mut opts = peapod_image::unpack::Options::for_current_user();
    opts.limits.max_bytes = 1 << 20;
    let err = peapod_image::unpack::unpack_layer(std::io::Cursor::new(layer), &dest, &[], &opts).unwrap_err();
    assert!(err.to_string().contains("larger than 1048576 bytes"), "{err}");
    let mut opts = peapod_image::unpack::Options::for_current_user();
    opts.limits.max_entries = 10;
    let many: Vec<E> = (0..20).map(|i| file(&format!("f{i}"), b"")).collect();
    let dest2 = tmp.path().join("fs2");
    std::fs::create_dir(&dest2).unwrap();
    let err = peapod_image::unpack::unpack_layer(std::io::Cursor::new(tar(&many)), &dest2, &[], &opts).unwrap_err();
    assert_eq!(err.to_string(), "layer has more than 10 entries");
}

/// Loads an archive that must succeed and returns the store and the bottom..top snapshot dirs.
fn loaded(archive: Vec<u8>) -> (Env, Vec<std::path::PathBuf>) {
    let e = env();
    let before = tree(&e.outside);
    let l = peapod_image::archive::load(&e.store, std::io::Cursor::new(archive)).expect("load");
    assert_eq!(tree(&e.outside), before);
    let img = e.store.get(&l.names[0]).unwrap();
    let dirs = img.layers.iter().map(|l| e.store.snapshot_fs(&l.chain_id)).collect();
    (e, dirs)
}

#[test]
fn safe_cases_land_inside_the_snapshot() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    // A symlink replaced by a regular file: the file replaces the link, the link's target is untouched.
    let o = env().outside; // only for a path string that does not exist afterwards
    let (e, dirs) = loaded(one_layer(vec![
        symlink("evil", &format!("{}/victim", o.display())),
        file("evil", b"replaced"),
        E {
            mode: 0o4755,
            ..file("bin/su", b"#!")
        },
        chardev("dev/mem", 1, 1),
        pax(&[
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.user.note", b"kept"),
            ("uid", b"1234"),
            ("gid", b"5678"),
        ]),
        file("xattrs", b"x"),
        symlink("lib", "/usr/lib"),
        dir("usr/lib/"),
        file("usr/lib/libc.so", b"elf"),
        hardlink("usr/lib/libc.so.6", "usr/lib/libc.so"),
    ]));
    let fs = &dirs[0];
    assert_eq!(std::fs::read(fs.join("evil")).unwrap(), b"replaced");
    assert!(std::fs::symlink_metadata(fs.join("evil")).unwrap().is_file());
    assert_eq!(
        std::fs::metadata(fs.join("bin/su")).unwrap().permissions().mode() & 0o7777,
        0o4755,
        "setuid kept"
    );
    let mem = std::fs::symlink_metadata(fs.join("dev/mem")).unwrap();
    if rustix::process::geteuid().is_root() {
        assert!(mem.file_type().is_char_device());
        assert_eq!(mem.rdev(), rustix::fs::makedev(1, 1));
    }
    let mut buf = [0u8; 16];
    assert!(
        rustix::fs::lgetxattr(fs.join("xattrs"), "trusted.overlay.redirect", &mut buf).is_err(),
        "trusted.* dropped"
    );
    if rustix::process::geteuid().is_root() {
        let md = std::fs::metadata(fs.join("xattrs")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678), "ownership from the archive");
    }
    let n = rustix::fs::lgetxattr(fs.join("xattrs"), "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
    assert_eq!(
        std::fs::read_link(fs.join("lib")).unwrap(),
        Path::new("/usr/lib"),
        "absolute symlinks kept verbatim"
    );
    assert_eq!(
        std::fs::metadata(fs.join("usr/lib/libc.so.6")).unwrap().ino(),
        std::fs::metadata(fs.join("usr/lib/libc.so")).unwrap().ino()
    );
    drop(e);
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (_e, dirs) = loaded(layers(vec![
        vec![
            dir("etc/"),
            file("etc/a", b"1"),
            file("etc/b", b"2"),
            dir("var/"),
            file("var/x", b"3"),
        ],
        vec![
            file("etc/.wh.a", b""),
            file("var/.wh..wh..opq", b""),
            file("var/y", b"4"),
        ],
    ]));
    let top = &dirs[1];
    let wh = std::fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    assert!(!top.join("etc/.wh.a").exists());
    if rustix::process::geteuid().is_root() {
        assert!(
            peapod_image::unpack::has_opaque_xattr(&top.join("var")),
            "opaque directory marked"
        );
    }
    assert_eq!(std::fs::read(top.join("var/y")).unwrap(), b"4");
    assert!(!top.join("var/.wh..wh..opq").exists());
}
