//! Keeps the scheduler's view of one resource (all Nodes, or all Pods) current: list, then watch from the list's
//! resourceVersion, and send each change to the scheduling loop. A watch that ends is resumed from the last
//! resourceVersion seen; one that answers 410 Gone (history compacted) is replaced by a fresh list.
//!
//! Back-off: after a failed list or watch, or a watch that ended without delivering anything, wait
//! [`INITIAL_RETRY`] doubling up to [`MAX_RETRY`]; any delivered event resets it. This is the only sleep here.

use crate::queue::{ClusterEvent, Kind};
use crate::SchedulerError;
use peapod_client::{Client, ClientError};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

/// First wait after a failure.
pub const INITIAL_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// The retry schedule: [`INITIAL_RETRY`] doubling to [`MAX_RETRY`].
#[derive(Debug)]
struct Retry {
    next: Duration,
}

impl Retry {
    fn new() -> Self {
        Self { next: INITIAL_RETRY }
    }

    fn reset(&mut self) {
        self.next = INITIAL_RETRY;
    }

    /// The wait before the next attempt; doubles the one after.
    fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        d
    }
}

fn collection_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Node => "/api/v1/nodes",
        Kind::Pod => "/api/v1/pods",
    }
}

fn resource_version(v: &Value) -> Option<String> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// How one watch ended.
enum WatchEnd {
    /// The stream closed; `delivered` says whether it carried any event.
    Closed { delivered: bool },
    /// The scheduling loop is gone: stop.
    LoopGone,
}

/// Lists `kind`, returning its items and resourceVersion.
async fn list(client: &Client, kind: Kind) -> Result<(Vec<Value>, String), SchedulerError> {
    let path = collection_path(kind);
    let list = client.get(path).await.map_err(|source| SchedulerError::List {
        path: path.to_string(),
        source: Box::new(source),
    })?;
    let rv = resource_version(&list).unwrap_or_else(|| "0".into());
    let items = match list.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    Ok((items, rv))
}

/// Watches `kind` from `rv`, forwarding events and advancing `rv`, until the stream ends.
async fn watch_once(
    client: &Client,
    kind: Kind,
    rv: &mut String,
    tx: &mpsc::Sender<ClusterEvent>,
    retry: &mut Retry,
) -> Result<WatchEnd, SchedulerError> {
    let base = collection_path(kind);
    let path = format!("{base}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true");
    let werr = |source: ClientError| SchedulerError::Watch {
        path: base.to_string(),
        source: Box::new(source),
    };
    let mut stream = match client.watch(&path).await {
        Ok(s) => s,
        Err(ClientError::Status { code: 410, .. }) => return Err(SchedulerError::Expired { path: base.into() }),
        Err(e) => return Err(werr(e)),
    };
    let mut delivered = false;
    while let Some(item) = stream.next().await {
        let ev = item.map_err(werr)?;
        let object = ev.get("object").cloned().unwrap_or(Value::Null);
        let event = match ev.get("type").and_then(Value::as_str) {
            Some("ADDED" | "MODIFIED") => ClusterEvent::Applied { kind, object },
            Some("DELETED") => ClusterEvent::Deleted { kind, object },
            Some("BOOKMARK") => {
                if let Some(v) = resource_version(&object) {
                    *rv = v;
                }
                continue;
            }
            Some("ERROR") => {
                let code = object.get("code").and_then(Value::as_i64);
                if code == Some(410) {
                    return Err(SchedulerError::Expired { path: base.into() });
                }
                return Err(SchedulerError::WatchError {
                    path: base.into(),
                    status: object,
                });
            }
            other => {
                return Err(SchedulerError::WatchError {
                    path: base.into(),
                    status: Value::String(format!("unknown event type {other:?}")),
                })
            }
        };
        let new_rv = match &event {
            ClusterEvent::Applied { object, .. } | ClusterEvent::Deleted { object, .. } => resource_version(object),
            ClusterEvent::Listed { .. } => None,
        };
        if let Some(v) = new_rv {
            *rv = v;
        }
        if tx.send(event).await.is_err() {
            return Ok(WatchEnd::LoopGone);
        }
        delivered = true;
        retry.reset();
    }
    Ok(WatchEnd::Closed { delivered })
}

/// Lists and watches `kind` for as long as the scheduling loop listens; never gives up on the API server.
pub async fn list_and_watch(client: Client, kind: Kind, tx: mpsc::Sender<ClusterEvent>) {
    let mut retry = Retry::new();
    loop {
        let (items, mut rv) = match list(&client, kind).await {
            Ok(l) => l,
            Err(e) => {
                let wait = retry.delay();
                tracing::warn!(error = %e, retry_in = ?wait, "scheduler list failed");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        retry.reset();
        if tx.send(ClusterEvent::Listed { kind, items }).await.is_err() {
            return;
        }
        loop {
            match watch_once(&client, kind, &mut rv, &tx, &mut retry).await {
                Ok(WatchEnd::LoopGone) => return,
                Ok(WatchEnd::Closed { delivered: true }) => {}
                Ok(WatchEnd::Closed { delivered: false }) => tokio::time::sleep(retry.delay()).await,
                Err(SchedulerError::Expired { path }) => {
                    tracing::info!(%path, "watch history expired; listing again");
                    break;
                }
                Err(e) => {
                    let wait = retry.delay();
                    tracing::warn!(error = %e, retry_in = ?wait, "scheduler watch failed; listing again");
                    tokio::time::sleep(wait).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_doubles_to_its_cap_and_resets() {
        let mut r = Retry::new();
        let waits: Vec<u128> = (0..10).map(|_| r.delay().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        r.reset();
        assert_eq!(r.delay(), INITIAL_RETRY);
    }

    #[test]
    fn paths_and_versions() {
        assert_eq!(collection_path(Kind::Node), "/api/v1/nodes");
        assert_eq!(collection_path(Kind::Pod), "/api/v1/pods");
        assert_eq!(
            resource_version(&serde_json::json!({"metadata": {"resourceVersion": "12"}})),
            Some("12".into())
        );
        assert_eq!(
            resource_version(&serde_json::json!({"metadata": {"resourceVersion": ""}})),
            None
        );
    }
}
