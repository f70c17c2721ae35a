//! `peapod bench image`: the image store's figures beside Podman's, measured in the same run on the same files.
//!
//! - load of the nginx test archive (`peapod image load` vs `podman load`, each a fresh store, CLI processes both);
//! - unpack throughput (uncompressed layer MB/s, in process);
//! - pull of nginx from a loopback `docker-registry` (`peapod image pull` vs `podman pull`, fresh stores);
//! - preparing a container root from an already-unpacked image (overlay mount + lease), in process; and its removal.
//!
//! Prints medians (and ratios to Podman); no assertions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn podman(root: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args(["--storage-driver", "overlay"]);
    c
}

fn remove_podman_store(root: &Path) {
    // Podman's overlay store may hold mounts; `podman system reset` would also do.
    let _ = podman(root)
        .args(["system", "reset", "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(root);
}

struct RegistryProc(std::process::Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for RegistryProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry() -> Result<(RegistryProc, String)> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start docker-registry")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((RegistryProc(child, dir), format!("127.0.0.1:{port}")))
}

pub fn image(archive: Option<PathBuf>, runs: usize, root_runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let work = tempfile::tempdir()?;
    let archive = match archive {
        Some(a) => a,
        None => {
            let out = work.path().join("images");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/build.sh");
            run(Command::new("bash").arg(&script).arg(&out))?;
            out.join("nginx-1.21.tar")
        }
    };
    let size = std::fs::metadata(&archive)?.len();
    let have_podman = Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    println!(
        "archive: {} ({:.1} MB), runs: {runs}",
        archive.display(),
        size as f64 / 1e6
    );

    // Load.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let data = work.path().join(format!("load-{i}"));
        let t = Instant::now();
        run(Command::new(&exe)
            .args(["image", "--data-dir"])
            .arg(&data)
            .arg("load")
            .arg(&archive))?;
        ours.push(ms(t.elapsed()));
        if have_podman {
            let p = work.path().join(format!("podman-load-{i}"));
            let t = Instant::now();
            run(podman(&p).arg("load").arg("-q").arg("-i").arg(&archive))?;
            theirs.push(ms(t.elapsed()));
            remove_podman_store(&p);
        }
    }
    report("load nginx archive", &ours, &theirs);

    // Unpack throughput, in process: a loaded store with its snapshots removed, unpacked again.
    let data = work.path().join("load-0/images");
    let store = peapod_image::ImageStore::open(&data)?;
    let img = store.get("nginx:1.21")?;
    let tar_bytes: u64 = {
        let mut n = 0;
        for l in &img.layers {
            let f = store.open_blob(&l.digest)?;
            n += std::io::copy(
                &mut peapod_image::unpack::decompress(std::io::BufReader::new(f))?,
                &mut std::io::sink(),
            )?;
        }
        n
    };
    let mut mbs = Vec::new();
    for _ in 0..runs {
        for l in &img.layers {
            let _ = std::fs::remove_dir_all(store.snapshot_dir(&l.chain_id));
        }
        let t = Instant::now();
        store.ensure_unpacked(&img)?;
        mbs.push(tar_bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    println!(
        "unpack: {:.0} MB/s median ({:.1} MB of layer tars)",
        median(mbs),
        tar_bytes as f64 / 1e6
    );

    // Prepare a root from the unpacked image.
    let (mut prep, mut rm) = (Vec::new(), Vec::new());
    for i in 0..root_runs {
        let dir = work.path().join(format!("ctr-{i}"));
        let t = Instant::now();
        let root = peapod_image::rootfs::prepare(&store, &img, &dir, &format!("bench-{i}"))?;
        prep.push(ms(t.elapsed()));
        let t = Instant::now();
        peapod_image::rootfs::remove(&store, &root)?;
        rm.push(ms(t.elapsed()));
    }
    println!(
        "prepare container root: {:.2} ms median (target ≤ 5 ms); remove: {:.2} ms median; {root_runs} runs",
        median(prep),
        median(rm)
    );

    // Pull from a loopback registry.
    let (reg, host) = start_registry()?;
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{host}/library/nginx:1.21")))?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let reference = format!("{host}/library/nginx:1.21");
    for i in 0..runs {
        let data = work.path().join(format!("pull-{i}"));
        let t = Instant::now();
        run(Command::new(&exe).args(["image", "--data-dir"]).arg(&data).args([
            "pull",
            "-q",
            "--insecure-registry",
            &host,
            &reference,
        ]))?;
        ours.push(ms(t.elapsed()));
        if have_podman {
            let p = work.path().join(format!("podman-pull-{i}"));
            let t = Instant::now();
            run(podman(&p).args(["pull", "-q", "--tls-verify=false", &reference]))?;
            theirs.push(ms(t.elapsed()));
            remove_podman_store(&p);
        }
    }
    drop(reg);
    report("pull nginx from loopback registry", &ours, &theirs);
    if !have_podman {
        return Err(anyhow!(
            "podman is not installed: no peer figures (apt-get install podman)"
        ));
    }
    Ok(())
}

fn report(what: &str, ours: &[f64], theirs: &[f64]) {
    let o = median(ours.to_vec());
    if theirs.is_empty() {
        println!("{what}: peapod {o:.1} ms median");
    } else {
        let t = median(theirs.to_vec());
        println!(
            "{what}: peapod {o:.1} ms, podman {t:.1} ms (medians); peapod takes {:.2}× podman's time",
            o / t
        );
    }
}
