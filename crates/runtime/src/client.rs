//! The agent's side of the shim protocol: starting a Pod's shim, and asking it to start, stop and remove
//! containers, report their records, and stream their exits. Async (tokio); one short connection per request, one
//! long-lived connection per event subscription.

use crate::protocol::{ContainerRecord, Event, Request, Response, StartContainer};
use crate::shim::{ShimArgs, SOCKET};
use crate::RuntimeError;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A handle on one Pod's shim, by its run directory.
#[derive(Debug, Clone)]
pub struct ShimClient {
    dir: PathBuf,
}

impl ShimClient {
    /// A client for the shim whose run directory is `dir` (it may or may not be running).
    pub fn new(dir: &Path) -> ShimClient {
        ShimClient { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `exe shim …` for a Pod and waits until it serves its socket. The shim detaches itself (new session,
    /// re-parented away from the agent), so it survives the agent.
    pub async fn spawn(exe: &Path, args: &ShimArgs) -> Result<ShimClient, RuntimeError> {
        let out = tokio::process::Command::new(exe)
            .arg("shim")
            .arg("--dir")
            .arg(&args.dir)
            .arg("--runtime")
            .arg(&args.runtime)
            .arg("--runtime-root")
            .arg(&args.runtime_root)
            .arg("--hostname")
            .arg(&args.hostname)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::Shim {
                dir: args.dir.display().to_string(),
                message: format!("start {}: {e}", exe.display()),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.starts_with("ok") {
            return Err(RuntimeError::Shim {
                dir: args.dir.display().to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(ShimClient::new(&args.dir))
    }

    fn err(&self, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Shim {
            dir: self.dir.display().to_string(),
            message: message.into(),
        }
    }

    async fn connect(&self) -> Result<UnixStream, RuntimeError> {
        UnixStream::connect(self.dir.join(SOCKET))
            .await
            .map_err(|e| self.err(format!("connect: {e}")))
    }

    /// Sends one request and reads its reply.
    pub async fn request(&self, req: &Request) -> Result<Response, RuntimeError> {
        let stream = self.connect().await?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_vec(req).map_err(|e| self.err(e.to_string()))?;
        line.push(b'\n');
        w.write_all(&line).await.map_err(|e| self.err(format!("send: {e}")))?;
        let mut reply = String::new();
        BufReader::new(r)
            .read_line(&mut reply)
            .await
            .map_err(|e| self.err(format!("receive: {e}")))?;
        if reply.is_empty() {
            return Err(self.err("the shim closed the connection"));
        }
        let resp: Response = serde_json::from_str(&reply).map_err(|e| self.err(format!("bad reply: {e}")))?;
        if let Response::Error { message } = resp {
            return Err(self.err(message));
        }
        Ok(resp)
    }

    /// The shim's PID and every container record it holds.
    pub async fn status(&self) -> Result<(i32, Vec<ContainerRecord>), RuntimeError> {
        match self.request(&Request::Status).await? {
            Response::Status { shim_pid, containers } => Ok((shim_pid, containers)),
            other => Err(self.err(format!("unexpected reply {other:?}"))),
        }
    }

    /// Creates and starts a container; a failed start comes back as a record with `exit.start_error`.
    pub async fn start(&self, s: StartContainer) -> Result<ContainerRecord, RuntimeError> {
        match self.request(&Request::Start(s)).await? {
            Response::Started { record } => Ok(record),
            other => Err(self.err(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends the stop signal now and SIGKILL after `timeout_seconds` (0: SIGKILL at once).
    pub async fn stop(&self, id: &str, signal: i32, timeout_seconds: u64) -> Result<(), RuntimeError> {
        self.request(&Request::Stop {
            id: id.to_string(),
            signal,
            timeout_seconds,
        })
        .await
        .map(|_| ())
    }

    /// Forgets an exited container.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.request(&Request::Remove { id: id.to_string() }).await.map(|_| ())
    }

    /// Kills everything, releases the namespaces; the shim exits.
    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        self.request(&Request::Shutdown).await.map(|_| ())
    }

    /// Streams the shim's events from now on.
    pub async fn subscribe(&self) -> Result<EventStream, RuntimeError> {
        let stream = self.connect().await?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_vec(&Request::Subscribe).map_err(|e| self.err(e.to_string()))?;
        line.push(b'\n');
        w.write_all(&line).await.map_err(|e| self.err(format!("send: {e}")))?;
        let mut lines = BufReader::new(r).lines();
        match lines.next_line().await {
            Ok(Some(l)) if l.contains("\"ok\"") => {}
            Ok(other) => return Err(self.err(format!("subscribe refused: {other:?}"))),
            Err(e) => return Err(self.err(format!("subscribe: {e}"))),
        }
        Ok(EventStream { lines, _w: w })
    }
}

/// A stream of a shim's events.
pub struct EventStream {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    _w: tokio::net::unix::OwnedWriteHalf,
}

impl EventStream {
    /// The next event; `None` when the shim went away.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(l)) => {
                    if let Ok(ev) = serde_json::from_str::<Event>(&l) {
                        return Some(ev);
                    }
                }
                _ => return None,
            }
        }
    }
}
