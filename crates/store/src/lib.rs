//! Peapod's revisioned key-value store: the only place cluster state lives.
//!
//! Every write gets the next global revision (Kubernetes' `resourceVersion`), creates and updates are
//! compare-and-swap, lists can be read at a revision, watches replay from any revision not yet compacted and then
//! follow live, and compaction trims history (older revisions then answer [`StoreError::Compacted`], which the
//! apiserver turns into `410 Gone`). Values are opaque bytes: the store knows nothing of Kubernetes.
//!
//! [`Store`] is the seam between backends: [`sqlite::SqliteStore`] (embedded, the default) and, later, etcd. One
//! test suite runs against every backend.

pub mod sqlite;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

use std::fmt;

/// A global, strictly increasing revision. Revision 0 means "nothing written yet".
pub type Revision = i64;

/// One key at one revision.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision that created this key (unchanged by updates).
    pub create_revision: Revision,
    /// The revision of the last write to this key (for a delete event: the revision of the delete).
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created (no previous value).
    Created,
    /// The key existed and was replaced.
    Updated,
    /// The key was removed; the event's `kv` holds the last value, with `mod_revision` = the delete's revision.
    Deleted,
}

/// One change, as watches deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value before this change (`None` for creates).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Options of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Return only keys strictly greater than this one (for paging with `continue`).
    pub start_after: Option<String>,
    /// At most this many items; 0 means no limit.
    pub limit: usize,
    /// Read the state as it was at this revision (must not be compacted); `None` means the latest.
    pub revision: Option<Revision>,
}

/// The result of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (for `metadata.resourceVersion` and continue tokens).
    pub revision: Revision,
    /// How many more keys under the prefix follow the last returned item (0 when the list is complete).
    pub remaining: u64,
}

/// Errors of every backend. Each carries the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The compare-and-swap failed: the key's current revision is not the expected one. `current` is the key's
    /// current value (`None` if it was deleted meanwhile).
    #[error("key {key}: expected revision {expected}, found {}", current.as_ref().map(|c| c.mod_revision).unwrap_or(0))]
    Conflict {
        key: String,
        expected: Revision,
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision is older than the compaction point.
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },
    /// The backend could not read or write (disk full, read-only, corrupt file, connection lost). `context` says
    /// what was being done and where.
    #[error("{context}: {message}")]
    Backend { context: String, message: String },
    /// The store was closed.
    #[error("store closed")]
    Closed,
}

/// A live watch: events in revision order, starting after the revision it was opened at.
pub struct Watch {
    rx: tokio::sync::mpsc::Receiver<Result<Event, StoreError>>,
}

impl Watch {
    /// Wraps a channel fed by a backend. The backend sends events in strictly increasing revision order; an error
    /// ends the watch (e.g. [`StoreError::Compacted`] when the watcher fell behind a compaction).
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<Event, StoreError>>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` when the store closed the watch.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        self.rx.recv().await
    }
}

/// The store seam. Methods are synchronous and cheap to call from async code through `spawn_blocking` (writes
/// wait for durability); `watch` returns at once and delivers events asynchronously.
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists. Returns the new revision once the write
    /// is durable.
    fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError>;

    /// Replaces `key` if its current `mod_revision` is `expected` (compare-and-swap). Fails with
    /// [`StoreError::NotFound`] or [`StoreError::Conflict`].
    fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision, StoreError>;

    /// Deletes `key`, if `expected` is given only when its `mod_revision` matches. Returns the delete's revision
    /// and the last value.
    fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue), StoreError>;

    /// The latest value of `key`.
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// The keys under `prefix`, in key order, as [`ListOptions`] says.
    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError>;

    /// Every change under `prefix` with a revision greater than `after`, in order, then live changes. Fails with
    /// [`StoreError::Compacted`] when `after` is older than the compaction point.
    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError>;

    /// The revision of the last write.
    fn current_revision(&self) -> Result<Revision, StoreError>;

    /// Drops history older than `revision` (the latest value of every live key is kept).
    fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The oldest revision still available for watches and lists (0 if never compacted).
    fn compacted_revision(&self) -> Result<Revision, StoreError>;
}
