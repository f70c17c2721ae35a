//! `peapod image …` end to end: the offline test images loaded from archives, pushed with skopeo to a real
//! `docker-registry` on loopback (with and without htpasswd auth), pulled back by `peapod image pull`, mounted as
//! overlay roots and run (`chroot … ls`), and the errors a user sees for a wrong password, a missing tag and an
//! unreachable registry. Every test checks that no mount is left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use peapod_test_support::registry::{test_images, Registry};
use peapod_test_support::Out;

fn peapod(data: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("image")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("HOME", data)
        .output()
        .expect("run peapod");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    info.lines().filter(|l| l.contains(&d)).map(str::to_string).collect()
}

fn image(name: &str) -> PathBuf {
    test_images().join(name)
}

/// Mounts `img`, runs `sh -c script` chrooted in it, unmounts; returns stdout.
fn run_in(data: &Path, img: &str, script: &str) -> String {
    let dir = data.join(format!("mnt-{}", img.replace(['/', ':', '@'], "_")));
    let root = peapod(data, &["mount", img, dir.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = Command::new("chroot")
        .args([&root, "/bin/sh", "-c", script])
        .output()
        .expect("chroot");
    let unmount = peapod(data, &["unmount", dir.to_str().unwrap()]);
    assert_eq!(unmount.code, 0, "unmount: {}", unmount.stderr);
    assert!(
        mounts_under(&dir).is_empty(),
        "mount left behind: {:?}",
        mounts_under(&dir)
    );
    assert!(!dir.exists(), "container dir left behind");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn load_list_inspect_mount_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let out = peapod(data, &["load", image("busybox-1.35.tar").to_str().unwrap()]).ok();
    assert_eq!(out.stdout.trim(), "Loaded image: docker.io/library/busybox:1.35");
    // stdin, as `docker save | peapod image load -` pipes it.
    let nginx = std::fs::File::open(image("nginx-1.21.tar")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .args(["image", "--data-dir", data.to_str().unwrap(), "load", "-"])
        .stdin(nginx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "Loaded image: docker.io/library/nginx:1.21"
    );

    let ls = peapod(data, &["ls"]).ok().stdout;
    let lines: Vec<&str> = ls.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("TAG")
            && lines[0].contains("IMAGE ID")
            && lines[0].ends_with("SIZE"),
        "{ls}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("docker.io/library/busybox") && l.contains(" 1.35 ")),
        "{ls}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("docker.io/library/nginx") && l.contains(" 1.21 ")),
        "{ls}"
    );
    // Columns line up: IMAGE ID starts at the same offset in every row.
    let col = lines[0].find("IMAGE ID").unwrap();
    for l in &lines[1..] {
        assert!(l[col..].chars().take(12).all(|c| c.is_ascii_hexdigit()), "{l}");
    }

    let inspect: serde_json::Value =
        serde_json::from_str(&peapod(data, &["inspect", "nginx:1.21"]).ok().stdout).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["nginx", "-g", "daemon off;"])
    );
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        inspect[0]["RepoTags"],
        serde_json::json!(["docker.io/library/nginx:1.21"])
    );

    // The roots are real: busybox's applets and nginx's binary with its libraries run inside.
    let listing = run_in(data, "busybox:1.35", "ls /bin");
    assert!(
        listing.lines().any(|l| l == "sh") && listing.lines().any(|l| l == "ls"),
        "{listing}"
    );
    let v = run_in(
        data,
        "nginx:1.21",
        "nginx -v 2>&1; ls /var/log/nginx; touch /written-in-upper && echo ok",
    );
    assert!(v.contains("nginx version"), "{v}");
    // The write went to the container's upper dir, not into the shared snapshot.
    let again = run_in(data, "nginx:1.21", "ls /written-in-upper 2>&1 || true");
    assert!(again.contains("No such file"), "{again}");

    // Layers are shared: nginx's first layer is busybox's, unpacked once.
    let snaps = std::fs::read_dir(data.join("images/snapshots")).unwrap().count();
    assert_eq!(snaps, 2, "busybox layer + nginx layer");

    let rm = peapod(data, &["rm", "busybox:1.35"]).ok().stdout;
    assert!(rm.contains("Untagged: docker.io/library/busybox:1.35"), "{rm}");
    // nginx still works: the shared layer was kept.
    assert!(run_in(data, "nginx:1.21", "ls /bin/sh").contains("/bin/sh"));
    peapod(data, &["rm", "nginx:1.21"]).ok();
    assert_eq!(std::fs::read_dir(data.join("images/snapshots")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(data.join("images/blobs/sha256")).unwrap().count(), 0);
    let missing = peapod(data, &["inspect", "nginx:1.21"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("image \"nginx:1.21\": not found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn import_a_plain_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let rootfs = tmp.path().join("root");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/cat")).unwrap();
    std::fs::write(rootfs.join("hello"), "imported\n").unwrap();
    let tarball = tmp.path().join("rootfs.tar.gz");
    let st = Command::new("tar")
        .args(["-czf", tarball.to_str().unwrap(), "-C", rootfs.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    let id = peapod(
        data,
        &["import", tarball.to_str().unwrap(), "example.com/team/rootfs:v1"],
    )
    .ok()
    .stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(run_in(data, "example.com/team/rootfs:v1", "cat /hello"), "imported\n");
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn pull_from_a_local_registry() {
    let reg = Registry::start(None);
    reg.push(&image("busybox-1.35.tar"), "library/busybox:1.35");
    reg.push(&image("nginx-1.21.tar"), "library/nginx:1.21");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let host = reg.host();

    // Directly, plain HTTP allowed for this registry only.
    let r = format!("{host}/library/busybox:1.35");
    let out = peapod(data, &["pull", "--insecure-registry", &host, &r]).ok();
    assert!(
        out.stdout.starts_with("Image is up to date for sha256:"),
        "{}",
        out.stdout
    );
    assert!(run_in(data, &r, "ls /").lines().any(|l| l == "bin"));
    // Without --insecure-registry Peapod speaks HTTPS, which a plain-HTTP registry cannot answer.
    let tls = peapod(tmp.path(), &["pull", &format!("{host}/library/busybox:1.35")]);
    assert_ne!(tls.code, 0);

    // Through a mirror for docker.io (k3s registries.yaml): the seed's `nginx:1.21` comes from loopback.
    let cfg = write(
        &tmp.path().join("registries.yaml"),
        &format!("mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{host}\"\n"),
    );
    let out = peapod(
        data,
        &["pull", "--registry-config", cfg.to_str().unwrap(), "nginx:1.21"],
    )
    .ok();
    assert!(out.stdout.contains("sha256:"), "{}", out.stdout);
    let ls = peapod(data, &["ls"]).ok().stdout;
    assert!(
        ls.lines()
            .any(|l| l.starts_with("docker.io/library/nginx") && l.contains("1.21")),
        "{ls}"
    );
    assert!(run_in(data, "nginx:1.21", "nginx -v 2>&1").contains("nginx version"));

    // By digest.
    let inspect: serde_json::Value =
        serde_json::from_str(&peapod(data, &["inspect", "nginx:1.21"]).ok().stdout).unwrap();
    let repo_digest = inspect[0]["RepoDigests"][0].as_str().unwrap().to_string();
    let digest = repo_digest.split('@').nth(1).unwrap();
    let by_digest = format!("{host}/library/nginx@{digest}");
    peapod(data, &["pull", "--insecure-registry", &host, &by_digest]).ok();
    assert!(peapod(data, &["ls"])
        .ok()
        .stdout
        .contains(&format!("{host}/library/nginx")));

    // A missing tag, in containerd's words.
    let missing = peapod(
        data,
        &["pull", "--registry-config", cfg.to_str().unwrap(), "nginx:9.99"],
    );
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains(
            "failed to pull and unpack image \"docker.io/library/nginx:9.99\": failed to resolve reference \"docker.io/library/nginx:9.99\": docker.io/library/nginx:9.99: not found"
        ),
        "{}",
        missing.stderr
    );

    // An unreachable registry (a closed loopback port): nothing leaves the machine, the error says why.
    let closed = peapod_test_support::free_port();
    let cfg2 = write(
        &tmp.path().join("closed.yaml"),
        &format!("mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:{closed}\"]\n"),
    );
    let down = peapod(
        data,
        &[
            "pull",
            "--registry-config",
            cfg2.to_str().unwrap(),
            "my-company/my-app:v1.0.0",
        ],
    );
    assert_ne!(down.code, 0);
    assert!(
        down.stderr
            .contains("failed to resolve reference \"docker.io/my-company/my-app:v1.0.0\""),
        "{}",
        down.stderr
    );
    assert!(
        down.stderr
            .contains(&format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")),
        "{}",
        down.stderr
    );

    // An invalid name, in the kubelet's words.
    let bad = peapod(data, &["pull", "Nginx:1.21"]);
    assert!(bad.stderr.contains("couldn't parse image name \"Nginx:1.21\": invalid reference format: repository name (library/Nginx) must be lowercase"), "{}", bad.stderr);
    // Nothing half-written after the failures.
    assert_eq!(std::fs::read_dir(data.join("images/ingest")).unwrap().count(), 0);
}

#[test]
fn pull_with_basic_auth() {
    let reg = Registry::start(Some(("peapod", "s3cret")));
    reg.push(&image("busybox-1.35.tar"), "team/busybox:1.35");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let host = reg.host();
    let r = format!("{host}/team/busybox:1.35");

    // No credentials.
    let anon = peapod(data, &["pull", "--insecure-registry", &host, &r]);
    assert_ne!(anon.code, 0);
    assert!(
        anon.stderr.contains("authorization failed: no basic auth credentials"),
        "{}",
        anon.stderr
    );

    // A wrong password in registries.yaml.
    let wrong = write(
        &tmp.path().join("wrong.yaml"),
        &format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\nconfigs:\n  \"{host}\":\n    auth:\n      username: peapod\n      password: nope\n"),
    );
    let w = peapod(data, &["pull", "--registry-config", wrong.to_str().unwrap(), &r]);
    assert_ne!(w.code, 0);
    assert!(
        w.stderr.contains(&format!("failed to resolve reference \"{r}\": unexpected status from HEAD request to http://{host}/v2/team/busybox/manifests/1.35: 401 Unauthorized")),
        "{}",
        w.stderr
    );

    // The right password, from registries.yaml …
    let right = write(
        &tmp.path().join("right.yaml"),
        &format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\nconfigs:\n  \"{host}\":\n    auth:\n      username: peapod\n      password: s3cret\n"),
    );
    peapod(data, &["pull", "--registry-config", right.to_str().unwrap(), &r]).ok();
    assert!(run_in(data, &r, "ls /bin").lines().any(|l| l == "sh"));

    // … and from a docker config.json (what `docker login` writes).
    let tmp2 = tempfile::tempdir().unwrap();
    let auth = write(
        &tmp2.path().join("auth.json"),
        &format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"cGVhcG9kOnMzY3JldA==\"}}}}}}"),
    );
    peapod(
        tmp2.path(),
        &[
            "pull",
            "--insecure-registry",
            &host,
            "--authfile",
            auth.to_str().unwrap(),
            &r,
        ],
    )
    .ok();
}

#[test]
fn load_oci_archives_with_gzip_and_zstd_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (format, tag) in [("gzip", "gz"), ("zstd", "zst")] {
        let oci = tmp.path().join(format!("busybox-{tag}.oci.tar"));
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-compress", "--dest-compress-format", format])
            .arg(format!("docker-archive:{}", image("busybox-1.35.tar").display()))
            .arg(format!("oci-archive:{}:example.com/tools/busybox:{tag}", oci.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
        let loaded = peapod(&data, &["load", oci.to_str().unwrap()]).ok().stdout;
        assert_eq!(loaded.trim(), format!("Loaded image: example.com/tools/busybox:{tag}"));
        let name = format!("example.com/tools/busybox:{tag}");
        let inspect: serde_json::Value = serde_json::from_str(&peapod(&data, &["inspect", &name]).ok().stdout).unwrap();
        // The same image content whatever the compression: the diff IDs (uncompressed digests) are busybox's.
        assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
        assert!(run_in(&data, &name, "ls /bin").lines().any(|l| l == "sh"));
    }
    // Both names share one snapshot: same diff ID, same chain ID.
    assert_eq!(std::fs::read_dir(data.join("images/snapshots")).unwrap().count(), 1);
}
