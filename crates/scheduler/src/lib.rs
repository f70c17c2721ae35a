//! Peapod's scheduler: watches Pods without a node, filters nodes as kube-scheduler's default plugins do, binds
//! each Pod through `pods/binding`, and records `FailedScheduling` with Kubernetes' message when none fits.
//!
//! - [`fit`]: filters, score and the `FitError` message (pure).
//! - [`queue`]: the cache of Nodes and Pods and the scheduling queue (pure).
//! - [`watch`]: list + watch with resume and back-off.
//! - [`run()`]: the loop that ties them to the API.

pub mod fit;
pub mod queue;
mod run;
pub mod watch;

pub use run::run;

use peapod_client::ClientError;
use serde_json::Value;

/// Errors of the scheduler. Only [`SchedulerError::WatchesEnded`] leaves [`run()`]; the others are logged and
/// retried.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("list {path}: {source}")]
    List { path: String, source: Box<ClientError> },
    #[error("watch {path}: {source}")]
    Watch { path: String, source: Box<ClientError> },
    #[error("watch {path}: the resourceVersion is too old (410 Gone)")]
    Expired { path: String },
    #[error("watch {path}: the server sent an error: {status}")]
    WatchError { path: String, status: Value },
    #[error("the Node and Pod watches ended")]
    WatchesEnded,
}
