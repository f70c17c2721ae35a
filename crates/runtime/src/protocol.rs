//! The wire protocol between the node agent and a Pod's shim: one JSON object per line over the shim's Unix socket.
//!
//! A connection carries requests and their replies in order; a `Subscribe` request turns the connection into a
//! stream of [`Event`]s. Records carry everything the agent needs to rebuild a container's status after it restarts
//! (attempt, start and exit times, exit code, signal, OOM), so nothing about a container lives only in the agent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request from the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Every container the shim knows, running or exited.
    Status,
    /// Create and start a container (`runc run --detach`).
    Start(StartContainer),
    /// Send `signal` to a container's init process and SIGKILL it after `timeout_seconds` if it still runs.
    Stop {
        id: String,
        signal: i32,
        timeout_seconds: u64,
    },
    /// Forget an exited container: `runc delete`, remove its bundle. Its log file stays (the agent owns logs).
    Remove { id: String },
    /// Stream [`Event`]s on this connection from now on.
    Subscribe,
    /// Kill every container, release the namespaces and exit.
    Shutdown,
}

/// What the agent asks the shim to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartContainer {
    /// The runtime's container ID (unique on the node, 64 hex digits).
    pub id: String,
    /// The Pod's container name.
    pub name: String,
    /// 0 for the first run, then the restart count.
    pub attempt: u32,
    /// The OCI runtime spec (`config.json`).
    pub spec: serde_json::Value,
    /// Where the container's output goes, in CRI log format.
    pub log_path: String,
    /// The cgroup memory controller directory of the container (for OOM detection), if the host has one.
    #[serde(default)]
    pub memory_cgroup: Option<String>,
    /// Opaque labels the agent keeps with the container (the spec it was built from, its hash).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A reply from the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Status {
        shim_pid: i32,
        containers: Vec<ContainerRecord>,
    },
    Started {
        record: ContainerRecord,
    },
    Error {
        message: String,
    },
}

/// A change the shim tells subscribers about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Exited { record: ContainerRecord },
}

/// One container as the shim knows it; written to disk (`record.json` in its bundle) at start and at exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    /// The init process (host PID namespace); 0 once it exited.
    pub pid: i32,
    /// RFC 3339 with nanoseconds.
    pub started_at: String,
    pub log_path: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exit: Option<ExitRecord>,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code as Kubernetes shows it: the status, or 128 + signal.
    pub code: i32,
    /// The signal that killed it, if any.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
    pub finished_at: String,
    /// Set when the container never started (the runtime's error); Kubernetes shows `StartError`, exit code 128.
    #[serde(default)]
    pub start_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_line() {
        let r = Request::Stop {
            id: "abc".into(),
            signal: 15,
            timeout_seconds: 30,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(line, r#"{"op":"stop","id":"abc","signal":15,"timeout_seconds":30}"#);
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Request::Stop { signal: 15, .. }));
    }
}
