//! Test support shared by Peapod's integration tests: start a real `peapod server` on a free loopback port with
//! its own data dir, run the real `kubectl` against it (isolated HOME and discovery cache), kill and restart it.
//!
//! Panics are the error reporting here: this crate only runs inside tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod node;
pub mod registry;

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Out {
    fn from(o: Output) -> Self {
        Self {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().unwrap_or(-1),
        }
    }

    /// Panics with both streams unless the command exited 0.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A path under `tests/fixtures/` of the workspace.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A free TCP port on loopback (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `peapod server` child process.
pub struct Server {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    data: tempfile::TempDir,
    home: tempfile::TempDir,
    extra_args: Vec<String>,
    /// Set for servers that run their node agent (see [`node`]).
    pub node: Option<node::NodeSlot>,
}

impl Server {
    /// Starts `bin server --disable-agent` on a free port with a fresh data dir and waits until it is ready.
    pub fn start(bin: &Path) -> Self {
        Self::start_with(bin, &[])
    }

    /// Like [`Server::start`] with extra `server` arguments.
    pub fn start_with(bin: &Path, extra: &[&str]) -> Self {
        let mut s = Self {
            bin: bin.to_path_buf(),
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("data dir"),
            home: tempfile::tempdir().expect("home dir"),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            node: None,
        };
        s.spawn();
        s
    }

    /// Starts a server with its node agent, isolated from other test servers on this machine (its own bridge,
    /// Pod range, run, log and cgroup directories), Pod egress off, every registry pointed at a closed loopback
    /// port, and the test images (`nginx:1.21`, `busybox:1.35`) loaded.
    pub fn start_node(bin: &Path, extra: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("data dir");
        let slot = node::NodeSlot::claim(data.path());
        let images = crate::registry::test_images();
        for archive in [images.join("busybox-1.35.tar"), images.join("nginx-1.21.tar")] {
            let out = Command::new(bin)
                .args(["image", "--data-dir"])
                .arg(data.path())
                .args(["load", "-i"])
                .arg(&archive)
                .output()
                .expect("run peapod image load");
            assert!(
                out.status.success(),
                "load {}: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut s = Self {
            bin: bin.to_path_buf(),
            child: None,
            port: free_port(),
            data,
            home: tempfile::tempdir().expect("home dir"),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            node: Some(slot),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let node_args = match &self.node {
            Some(n) => n.server_args(),
            None => vec!["--disable-agent".to_string()],
        };
        let mut child = Command::new(&self.bin)
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port), "--data-dir"])
            .arg(self.data.path())
            .args(&node_args)
            .args(&self.extra_args)
            .env(
                "PEAPOD_LOG",
                std::env::var("PEAPOD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn peapod server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("Peapod API server ready") => break,
                Some(Ok(_)) => {}
                _ => panic!("peapod server exited before it was ready"),
            }
            assert!(Instant::now() < deadline, "server not ready in time");
        }
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("server running")
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.path().join("pki/admin.token"))
            .expect("token")
            .trim()
            .to_string()
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.home.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    /// Runs the real kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        Out::from(self.kubectl_cmd(args).output().expect("run kubectl"))
    }

    /// Runs kubectl with `input` on its stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Out {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        Out::from(child.wait_with_output().expect("kubectl output"))
    }

    /// Starts kubectl without waiting (for `--watch`); its stdout is piped.
    pub fn kubectl_spawn(&self, args: &[&str]) -> Child {
        self.kubectl_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl")
    }

    /// SIGKILLs the server (no shutdown of any kind).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on a child pid we own; no memory is involved.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Polls `f` until it returns true or `timeout` passes (tests wait for asynchronous effects).
    pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(n) = &self.node {
            n.force_clean(self.data.path());
        }
    }
}
