//! A real registry for tests: Debian's `docker-registry` (distribution) on a free loopback port with its own
//! storage, optionally behind htpasswd basic auth; images pushed into it with `skopeo`. And the offline test images
//! (`busybox:1.35`, `nginx:1.21`) built once per workspace by `tests/images/build.sh`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running `docker-registry`.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    /// Every line the registry logged (access log included), for counting requests.
    pub log: Arc<Mutex<Vec<String>>>,
    pub auth: Option<(String, String)>,
}

impl Registry {
    /// `host:port` of the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a registry; with `auth`, every request needs that user and password (htpasswd, bcrypt).
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: peapod-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write registry config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry (Debian package docker-registry)");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {:?}",
                log.lock().map(|l| l.clone())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
            log,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    /// Pushes a docker-archive file to `repo:tag` in this registry with skopeo.
    pub fn push(&self, archive: &Path, repo_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some((u, p)) = &self.auth {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(format!("docker-archive:{}", archive.display()));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().expect("skopeo (Debian package skopeo)");
        assert!(
            out.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many logged requests contain `needle` (e.g. `"GET /v2/library/busybox/blobs/"`).
    pub fn requests(&self, needle: &str) -> usize {
        self.log
            .lock()
            .map(|l| l.iter().filter(|x| x.contains(needle)).count())
            .unwrap_or(0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory with `busybox-1.35.tar` and `nginx-1.21.tar` (docker-archive), built once by
/// `tests/images/build.sh` into `<target>/test-images` (concurrent test processes wait on a lock file).
pub fn test_images() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("test-images");
    std::fs::create_dir_all(&out).expect("create test-images dir");
    let lock = std::fs::File::create(out.join(".lock")).expect("lock file");
    // SAFETY: flock(2) on a valid open descriptor has no memory-safety preconditions; released when `lock` drops.
    use std::os::fd::AsRawFd;
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let script = root.join("tests/images/build.sh");
    let stamp = out.join(".built");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&script)) {
        (Ok(s), Ok(b)) => s.modified().ok() >= b.modified().ok(),
        _ => false,
    };
    if !fresh || !out.join("busybox-1.35.tar").exists() || !out.join("nginx-1.21.tar").exists() {
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run tests/images/build.sh");
        assert!(st.success(), "tests/images/build.sh failed");
        std::fs::write(&stamp, b"").expect("stamp");
    }
    drop(lock);
    out
}
