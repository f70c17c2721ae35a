//! `peapod shim`: one small process per Pod (DESIGN §4). It owns the Pod's namespaces and its container
//! processes, copies their output into CRI log files, records every exit, and serves the agent on a Unix socket,
//! so containers outlive an agent restart.
//!
//! Shape: re-executed from the agent's own binary, it forks once (the parent reports readiness to the agent and
//! exits, the child starts a new session), becomes a child subreaper so container processes are re-parented to it
//! when `runc run --detach` exits, and then runs one single-threaded epoll loop over: the listening socket, agent
//! connections, a signalfd for SIGCHLD, and the stdout/stderr pipes of every container. Stop deadlines are the
//! loop's timeout. Nothing here joins a container's namespaces or opens a path inside a container's root:
//! containers are created, started and deleted only through the OCI runtime CLI (CVE-2019-5736, CVE-2024-21626).

mod cri_log;
mod sandbox;

pub use cri_log::{timestamp, LineBuffer, Stream, MAX_LINE};
pub use sandbox::{ns_path, NAMESPACES};

use crate::protocol::{ContainerRecord, Event, ExitRecord, Request, Response, StartContainer};
use rustix::event::epoll;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shim's socket, in the Pod's run directory.
pub const SOCKET: &str = "shim.sock";

/// What `peapod shim` is started with.
#[derive(Debug, Clone)]
pub struct ShimArgs {
    /// The Pod's run directory (`/run/peapod/pods/<uid>`): socket, namespaces, bundles.
    pub dir: PathBuf,
    /// The OCI runtime binary (`runc`, `crun`).
    pub runtime: String,
    /// The runtime's state directory (`--root`).
    pub runtime_root: String,
    /// The Pod's hostname.
    pub hostname: String,
}

impl ShimArgs {
    /// Parses `--dir D --runtime R --runtime-root P --hostname H` (what [`crate::ShimClient::spawn`] passes).
    pub fn parse(args: impl Iterator<Item = std::ffi::OsString>) -> Result<ShimArgs, String> {
        let mut out = ShimArgs {
            dir: PathBuf::new(),
            runtime: "runc".into(),
            runtime_root: "/run/peapod/runc".into(),
            hostname: String::new(),
        };
        let mut args = args;
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))?;
            let text = || value.to_str().map(str::to_string).ok_or("arguments must be UTF-8");
            match flag.to_str() {
                Some("--dir") => out.dir = PathBuf::from(&value),
                Some("--runtime") => out.runtime = text()?,
                Some("--runtime-root") => out.runtime_root = text()?,
                Some("--hostname") => out.hostname = text()?,
                _ => return Err(format!("unknown argument {}", flag.to_string_lossy())),
            }
        }
        if out.dir.as_os_str().is_empty() || out.hostname.is_empty() {
            return Err("--dir and --hostname are required".into());
        }
        Ok(out)
    }
}

const LISTENER: u64 = 0;
const SIGNALS: u64 = 1;
/// Bytes read from a pipe or connection at once.
const READ_CHUNK: usize = 64 * 1024;

/// Runs the shim: forks, reports readiness on stdout from the parent, serves from the child. Returns the process
/// exit code. Must be called before any thread exists in the process.
pub fn main(args: ShimArgs) -> i32 {
    let (ready_r, ready_w) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("peapod shim: pipe: {e}");
            return 1;
        }
    };
    // SAFETY: the process is single-threaded (this runs before the agent's binary starts any runtime), so the child
    // may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("peapod shim: fork: {}", std::io::Error::last_os_error());
        return 1;
    }
    if pid > 0 {
        drop(ready_w);
        let mut msg = String::new();
        let _ = File::from(ready_r).read_to_string(&mut msg);
        if msg.trim() == "ok" {
            println!("ok {pid}");
            return 0;
        }
        eprintln!(
            "peapod shim: {}",
            if msg.is_empty() {
                "exited before it was ready"
            } else {
                msg.trim()
            }
        );
        return 1;
    }
    drop(ready_r);
    let mut ready = File::from(ready_w);
    match setup(args) {
        Ok(mut shim) => {
            // Readiness is the end of the pipe: "ok" then EOF, so the waiting parent returns at once.
            let _ = ready.write_all(b"ok");
            drop(ready);
            shim.run();
            0
        }
        Err(e) => {
            let _ = ready.write_all(e.as_bytes());
            eprintln!("peapod shim: {e}");
            1
        }
    }
}

/// One running or exited container.
struct Container {
    record: ContainerRecord,
    memory_cgroup: Option<String>,
    log: Option<File>,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
    /// When the stop signal's grace ends and SIGKILL follows.
    kill_at: Option<Instant>,
}

struct Pipe {
    fd: OwnedFd,
    token: u64,
    lines: LineBuffer,
}

struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    subscribed: bool,
}

struct Shim {
    args: ShimArgs,
    epoll: OwnedFd,
    listener: UnixListener,
    signals: OwnedFd,
    conns: HashMap<u64, Conn>,
    containers: BTreeMap<String, Container>,
    /// Pipe token → (container ID, stream).
    pipes: HashMap<u64, (String, Stream)>,
    next_token: u64,
    exit_requested: bool,
}

/// Detaches, creates the sandbox, binds the socket: everything before the loop can fail with a message.
fn setup(args: ShimArgs) -> Result<Shim, String> {
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    std::fs::create_dir_all(args.dir.join("containers")).map_err(|e| format!("create {}: {e}", args.dir.display()))?;
    redirect_stdio(&args.dir.join("shim.log"))?;
    sandbox::create(&args.dir, &args.hostname)?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(|e| format!("subreaper: {e}"))?;
    let signals = signalfd_for_sigchld()?;
    let sock = args.dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
    listener.set_nonblocking(true).map_err(|e| format!("socket: {e}"))?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
    epoll::add(
        &ep,
        &listener,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )
    .map_err(|e| format!("epoll: {e}"))?;
    epoll::add(&ep, &signals, epoll::EventData::new_u64(SIGNALS), epoll::EventFlags::IN)
        .map_err(|e| format!("epoll: {e}"))?;
    std::fs::write(
        args.dir.join("shim.pid"),
        rustix::process::getpid().as_raw_nonzero().to_string(),
    )
    .map_err(|e| format!("write shim.pid: {e}"))?;
    Ok(Shim {
        args,
        epoll: ep,
        listener,
        signals,
        conns: HashMap::new(),
        containers: BTreeMap::new(),
        pipes: HashMap::new(),
        next_token: 2,
        exit_requested: false,
    })
}

/// The shim has no terminal: stdin is /dev/null and its own diagnostics go to `shim.log` in the Pod's directory.
fn redirect_stdio(log: &Path) -> Result<(), String> {
    let null = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    // SAFETY: dup2 onto the standard descriptors of this single-threaded process; the sources are valid open fds.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    Ok(())
}

/// Blocks SIGCHLD and returns a signalfd that becomes readable when a child changes state. Children started with
/// `std::process::Command` get an empty signal mask again, so containers do not inherit the block.
fn signalfd_for_sigchld() -> Result<OwnedFd, String> {
    // SAFETY: plain libc calls on a zeroed sigset_t owned by this frame; the returned fd is checked before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(format!("sigprocmask: {}", std::io::Error::last_os_error()));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn now_string() -> String {
    timestamp(jiff::Timestamp::now())
}

impl Shim {
    fn run(&mut self) {
        let mut events = Vec::with_capacity(32);
        while !self.exit_requested {
            let timeout = self.next_deadline().map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                rustix::event::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                }
            });
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("epoll_wait: {e}");
                    return;
                }
            }
            let ready: Vec<u64> = events.iter().map(|e| e.data.u64()).collect();
            for token in ready {
                match token {
                    LISTENER => self.accept(),
                    SIGNALS => self.reap(),
                    t if self.pipes.contains_key(&t) => self.read_pipe(t),
                    t => self.serve_conn(t),
                }
            }
            self.kill_overdue();
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.containers.values().filter_map(|c| c.kill_at).min()
    }

    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for c in self.containers.values_mut() {
            if c.kill_at.is_some_and(|d| d <= now) {
                c.kill_at = None;
                signal(c.record.pid, libc::SIGKILL);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let t = self.token();
                    let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
                    if epoll::add(&self.epoll, &stream, epoll::EventData::new_u64(t), flags).is_ok() {
                        self.conns.insert(
                            t,
                            Conn {
                                stream,
                                inbuf: Vec::new(),
                                outbuf: Vec::new(),
                                subscribed: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn serve_conn(&mut self, t: u64) {
        let Some(conn) = self.conns.get_mut(&t) else { return };
        let mut closed = false;
        let mut buf = [0u8; 4096];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut requests = Vec::new();
        while let Some(pos) = conn.inbuf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = conn.inbuf.drain(..=pos).collect();
            requests.push(serde_json::from_slice::<Request>(&line));
        }
        for req in requests {
            let resp = match req {
                Ok(Request::Subscribe) => {
                    if let Some(c) = self.conns.get_mut(&t) {
                        c.subscribed = true;
                    }
                    Response::Ok
                }
                Ok(r) => self.handle(r),
                Err(e) => Response::Error {
                    message: format!("bad request: {e}"),
                },
            };
            self.send(t, &resp);
        }
        if closed {
            self.drop_conn(t);
        } else {
            self.flush(t);
        }
    }

    fn send<T: serde::Serialize>(&mut self, t: u64, msg: &T) {
        let Some(conn) = self.conns.get_mut(&t) else { return };
        if let Ok(mut line) = serde_json::to_vec(msg) {
            line.push(b'\n');
            conn.outbuf.extend_from_slice(&line);
        }
        self.flush(t);
    }

    /// Writes what a connection has pending. A peer that stops reading is dropped rather than blocking the loop
    /// (bounded by 1 MiB of pending replies).
    fn flush(&mut self, t: u64) {
        let Some(conn) = self.conns.get_mut(&t) else { return };
        let mut dead = false;
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(0) => {
                    dead = true;
                    break;
                }
                Ok(n) => {
                    conn.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    dead = conn.outbuf.len() > (1 << 20);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    dead = true;
                    break;
                }
            }
        }
        if dead {
            self.drop_conn(t);
        }
    }

    fn drop_conn(&mut self, t: u64) {
        if let Some(conn) = self.conns.remove(&t) {
            let _ = epoll::delete(&self.epoll, &conn.stream);
        }
    }

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status {
                shim_pid: rustix::process::getpid().as_raw_nonzero().get(),
                containers: self.containers.values().map(|c| c.record.clone()).collect(),
            },
            Request::Start(s) => self.start(s),
            Request::Stop {
                id,
                signal: sig,
                timeout_seconds,
            } => match self.containers.get_mut(&id) {
                Some(c) if c.record.exit.is_none() => {
                    if timeout_seconds == 0 {
                        signal(c.record.pid, libc::SIGKILL);
                    } else {
                        signal(c.record.pid, sig);
                        c.kill_at = Some(Instant::now() + Duration::from_secs(timeout_seconds));
                    }
                    Response::Ok
                }
                Some(_) => Response::Ok,
                None => Response::Error {
                    message: format!("container {id} not found"),
                },
            },
            Request::Remove { id } => match self.containers.get(&id) {
                Some(c) if c.record.exit.is_none() => Response::Error {
                    message: format!("container {id} is running"),
                },
                Some(_) => {
                    self.containers.remove(&id);
                    let _ = std::fs::remove_dir_all(self.bundle(&id));
                    Response::Ok
                }
                None => Response::Ok,
            },
            Request::Subscribe => Response::Ok,
            Request::Shutdown => {
                self.shutdown();
                Response::Ok
            }
        }
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.args.dir.join("containers").join(id)
    }

    fn runtime(&self) -> Command {
        let mut c = Command::new(&self.args.runtime);
        c.arg("--root").arg(&self.args.runtime_root);
        c
    }

    /// Creates and starts a container with `runc run --detach`, its stdout/stderr on pipes the shim reads.
    fn start(&mut self, s: StartContainer) -> Response {
        if !valid_id(&s.id) {
            return Response::Error {
                message: format!("invalid container ID {:?}", s.id),
            };
        }
        if self.containers.contains_key(&s.id) {
            return Response::Error {
                message: format!("container {} already exists", s.id),
            };
        }
        match self.try_start(&s) {
            Ok(c) => {
                let record = c.record.clone();
                self.containers.insert(s.id.clone(), c);
                self.persist(&s.id);
                Response::Started { record }
            }
            Err(message) => {
                // The runtime's partial state goes; the failure stays on record as Kubernetes' StartError.
                let _ = self
                    .runtime()
                    .args(["delete", "--force", &s.id])
                    .stderr(Stdio::null())
                    .status();
                let record = ContainerRecord {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    attempt: s.attempt,
                    pid: 0,
                    started_at: now_string(),
                    log_path: s.log_path.clone(),
                    labels: s.labels.clone(),
                    exit: Some(ExitRecord {
                        code: 128,
                        signal: None,
                        oom_killed: false,
                        finished_at: now_string(),
                        start_error: Some(message),
                    }),
                };
                self.containers.insert(
                    s.id.clone(),
                    Container {
                        record: record.clone(),
                        memory_cgroup: None,
                        log: None,
                        stdout: None,
                        stderr: None,
                        kill_at: None,
                    },
                );
                self.persist(&s.id);
                Response::Started { record }
            }
        }
    }

    fn try_start(&mut self, s: &StartContainer) -> Result<Container, String> {
        let bundle = self.bundle(&s.id);
        std::fs::create_dir_all(&bundle).map_err(|e| format!("create {}: {e}", bundle.display()))?;
        let config = serde_json::to_vec(&s.spec).map_err(|e| format!("encode config.json: {e}"))?;
        std::fs::write(bundle.join("config.json"), config).map_err(|e| format!("write config.json: {e}"))?;
        let log_path = Path::new(&s.log_path);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| format!("open log {}: {e}", log_path.display()))?;
        let (out_r, out_w) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let pid_file = bundle.join("pid");
        let status = {
            let mut cmd = self.runtime();
            cmd.arg("run")
                .arg("--detach")
                .arg("--bundle")
                .arg(&bundle)
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(&s.id)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out_w))
                .stderr(Stdio::from(err_w));
            cmd.status()
        };
        for fd in [&out_r, &err_r] {
            let _ = rustix::io::ioctl_fionbio(fd, true);
        }
        let status = status.map_err(|e| format!("run {}: {e}", self.args.runtime))?;
        if !status.success() {
            // In pass-through mode the runtime's own error went to the container's stderr pipe.
            let mut msg = String::new();
            let _ = File::from(err_r).read_to_string(&mut msg);
            let msg = runtime_error_message(&msg);
            return Err(format!(
                "OCI runtime create failed: {}: unknown",
                if msg.is_empty() {
                    format!("{} exited with {status}", self.args.runtime)
                } else {
                    msg
                }
            ));
        }
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("read {}: {e}", pid_file.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("pid file {}: {e}", pid_file.display()))?;
        let mut c = Container {
            record: ContainerRecord {
                id: s.id.clone(),
                name: s.name.clone(),
                attempt: s.attempt,
                pid,
                started_at: now_string(),
                log_path: s.log_path.clone(),
                labels: s.labels.clone(),
                exit: None,
            },
            memory_cgroup: s.memory_cgroup.clone(),
            log: Some(log),
            stdout: None,
            stderr: None,
            kill_at: None,
        };
        for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
            let t = self.token();
            let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
            epoll::add(&self.epoll, &fd, epoll::EventData::new_u64(t), flags).map_err(|e| format!("epoll: {e}"))?;
            self.pipes.insert(t, (s.id.clone(), stream));
            let p = Pipe {
                fd,
                token: t,
                lines: LineBuffer::new(stream),
            };
            match stream {
                Stream::Stdout => c.stdout = Some(p),
                Stream::Stderr => c.stderr = Some(p),
            }
        }
        Ok(c)
    }

    /// Copies what a container wrote into its log; closes the pipe at end of stream.
    fn read_pipe(&mut self, t: u64) {
        let Some((id, stream)) = self.pipes.get(&t).cloned() else {
            return;
        };
        let Some(c) = self.containers.get_mut(&id) else { return };
        let eof = drain_pipe(c, stream);
        if eof {
            self.close_pipe(&id, stream);
        }
    }

    fn close_pipe(&mut self, id: &str, stream: Stream) {
        let Some(c) = self.containers.get_mut(id) else { return };
        let pipe = match stream {
            Stream::Stdout => c.stdout.take(),
            Stream::Stderr => c.stderr.take(),
        };
        if let Some(mut p) = pipe {
            if let Some(log) = c.log.as_mut() {
                let _ = p.lines.finish(jiff::Timestamp::now(), log);
            }
            let _ = epoll::delete(&self.epoll, &p.fd);
            self.pipes.remove(&p.token);
        }
    }

    /// Collects every child that changed state: container exits are recorded; the runtime's own processes are
    /// just reaped.
    fn reap(&mut self) {
        let mut info = [0u8; 128];
        while rustix::io::read(&self.signals, &mut info).is_ok() {}
        // `wait` is waitpid(-1): any child, whatever its process group (container inits have their own session).
        while let Ok(Some((pid, status))) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            let pid = pid.as_raw_nonzero().get();
            let id = self
                .containers
                .iter()
                .find(|(_, c)| c.record.pid == pid && c.record.exit.is_none())
                .map(|(id, _)| id.clone());
            if let Some(id) = id {
                let (code, sig) = match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => (code, None),
                    (None, Some(sig)) => (128 + sig, Some(sig)),
                    _ => (255, None),
                };
                self.exited(&id, code, sig);
            }
        }
    }

    /// A container's init process ended: read the rest of its output, check for an OOM kill, delete it from the
    /// runtime (which removes its cgroup), persist the record and tell subscribers.
    fn exited(&mut self, id: &str, code: i32, sig: Option<i32>) {
        let finished_at = now_string();
        let oom = self
            .containers
            .get(id)
            .and_then(|c| c.memory_cgroup.as_ref())
            .map(|dir| crate::cgroup::oom_kills(Path::new(dir)) > 0)
            .unwrap_or(false);
        let _ = self
            .runtime()
            .args(["delete", "--force", id])
            .stderr(Stdio::null())
            .status();
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(c) = self.containers.get_mut(id) {
                drain_pipe(c, stream);
            }
            self.close_pipe(id, stream);
        }
        let Some(c) = self.containers.get_mut(id) else { return };
        c.kill_at = None;
        if let Some(log) = c.log.take() {
            let _ = log.sync_data();
        }
        c.record.exit = Some(ExitRecord {
            code,
            signal: sig,
            oom_killed: oom,
            finished_at,
            start_error: None,
        });
        let record = c.record.clone();
        self.persist(id);
        let event = Event::Exited { record };
        let subs: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.subscribed)
            .map(|(t, _)| *t)
            .collect();
        for t in subs {
            self.send(t, &event);
        }
    }

    /// Writes a container's record beside its bundle (`record.json`), durably: written, fsynced, renamed.
    fn persist(&self, id: &str) {
        let Some(c) = self.containers.get(id) else { return };
        let dir = self.bundle(id);
        let tmp = dir.join("record.json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&c.record).unwrap_or_default())?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join("record.json"))
        };
        if let Err(e) = write() {
            eprintln!("persist record of {id}: {e}");
        }
    }

    /// Kills every container, waits for them, deletes them from the runtime and releases the namespaces.
    fn shutdown(&mut self) {
        let running: Vec<(String, i32)> = self
            .containers
            .iter()
            .filter(|(_, c)| c.record.exit.is_none())
            .map(|(id, c)| (id.clone(), c.record.pid))
            .collect();
        for (_, pid) in &running {
            signal(*pid, libc::SIGKILL);
        }
        for (id, pid) in running {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            self.exited(&id, 137, Some(libc::SIGKILL));
        }
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        for id in ids {
            let _ = std::fs::remove_dir_all(self.bundle(&id));
        }
        self.containers.clear();
        sandbox::release(&self.args.dir);
        let _ = std::fs::remove_dir(self.args.dir.join("containers"));
        let _ = std::fs::remove_file(self.args.dir.join(SOCKET));
        let _ = std::fs::remove_file(self.args.dir.join("shim.pid"));
        self.exit_requested = true;
    }
}

/// Reads a pipe until it would block; true at end of stream.
fn drain_pipe(c: &mut Container, stream: Stream) -> bool {
    let pipe = match stream {
        Stream::Stdout => c.stdout.as_mut(),
        Stream::Stderr => c.stderr.as_mut(),
    };
    let Some(pipe) = pipe else { return true };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match rustix::io::read(&pipe.fd, &mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                if let Some(log) = c.log.as_mut() {
                    if let Err(e) = pipe.lines.push(&buf[..n], jiff::Timestamp::now(), log) {
                        eprintln!("write log of {}: {e}", c.record.id);
                    }
                }
            }
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Sends a signal to a container's init process. Safe from PID reuse: the shim is its reaper, so the PID cannot
/// be recycled before the shim has collected it.
fn signal(pid: i32, sig: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a positive PID the shim owns; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The runtime's error from its logrus line (`time=… level=error msg="runc run failed: …"`), worded as containerd
/// reports it (`runc create failed: unable to start container process: …`).
pub fn runtime_error_message(output: &str) -> String {
    let line = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let msg = match line.find("msg=\"") {
        Some(i) => {
            let rest = &line[i + 5..];
            let end = rest.rfind('"').unwrap_or(rest.len());
            rest[..end].replace("\\\"", "\"")
        }
        None => line.to_string(),
    };
    match msg.strip_prefix("runc run failed: ") {
        Some(rest) => format!("runc create failed: {rest}"),
        None => msg,
    }
}

/// Container IDs are hex (as the agent makes them): nothing that could walk out of the bundles directory.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_read_as_containerd_reports_them() {
        let out = r#"time="2026-11-25T09:06:23Z" level=error msg="runc run failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH""#;
        assert_eq!(
            runtime_error_message(out),
            r#"runc create failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH"#
        );
        assert_eq!(runtime_error_message("plain failure\n"), "plain failure");
    }

    #[test]
    fn arguments_parse_as_the_client_passes_them() {
        let a = |v: &[&str]| ShimArgs::parse(v.iter().map(std::ffi::OsString::from));
        let ok = a(&[
            "--dir",
            "/run/p/u",
            "--runtime",
            "crun",
            "--runtime-root",
            "/r",
            "--hostname",
            "web",
        ])
        .unwrap();
        assert_eq!(
            (ok.dir.to_str(), ok.runtime.as_str(), ok.hostname.as_str()),
            (Some("/run/p/u"), "crun", "web")
        );
        assert!(a(&["--dir"]).is_err());
        assert!(a(&["--hostname", "x"]).is_err());
        assert!(a(&["--bogus", "1", "--dir", "/d", "--hostname", "h"]).is_err());
    }

    #[test]
    fn container_ids_cannot_leave_the_bundle_dir() {
        assert!(valid_id("0123abcdef"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(65)));
    }
}
