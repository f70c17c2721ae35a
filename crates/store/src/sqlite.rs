//! The embedded SQLite backend: an append-only revision log on disk, the latest value of every key in memory.
//!
//! - [`log`]: the schema and every SQL statement (the only place that knows the table layout).
//! - [`writer`]: the writer thread; group commit of queued writes, one fsync per batch, compaction.
//! - [`hub`]: watchers; replay from the log, then live events published by the writer after each commit.
//!
//! Reads of the latest state (`get`, `list` without a revision) are served from the in-memory index without SQL.
//! Lists at an older revision and watch replays read the log through a small pool of read-only connections; WAL
//! mode lets them run beside the writer. The index and the watchers only ever see committed (durable) writes.

mod hub;
mod log;
mod writer;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use self::hub::Hub;
use self::log::backend;
use self::writer::{Applied, Command, WriteOp};
use crate::{KeyValue, ListOptions, ListResult, Revision, Store, StoreError, Watch};

/// How many idle read connections are kept for history reads.
const READER_POOL: usize = 4;

/// Peapod's default store: SQLite in WAL mode with `synchronous=FULL`, a single writer thread doing group commit,
/// and watches fed from the log and then live. See the module documentation.
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// The writer thread's queue.
    commands: mpsc::Sender<Command>,
    /// The writer thread, joined on [`SqliteStore::close`].
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the store's handle, its writer thread and its watch replay threads.
pub(crate) struct Shared {
    /// The database file, for contexts in errors and logs.
    path: PathBuf,
    /// The latest state; written only by the writer thread, after a commit.
    index: RwLock<Index>,
    /// The watchers, fed by the writer thread.
    hub: Mutex<Hub>,
    /// Idle read-only connections for lists at a revision and watch replays.
    readers: Mutex<Vec<Connection>>,
    /// Set by [`SqliteStore::close`]; reads then fail with [`StoreError::Closed`].
    closed: AtomicBool,
}

/// The latest value of every live key, and the revisions that frame the log.
pub(crate) struct Index {
    live: BTreeMap<String, KeyValue>,
    /// The revision of the last committed write.
    current: Revision,
    /// The oldest revision lists and watches may ask for.
    compacted: Revision,
}

impl Shared {
    // The locks below recover from poisoning instead of failing: every critical section only moves plain data
    // (map inserts and removals, revision numbers, channel sends) and is never left half-done by a panic, since
    // a panic inside one could only come from allocation failure, which aborts the process.

    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on an idle read connection (opening one if none is idle) and returns it to the pool.
    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => log::open_reader(&self.path)?,
        };
        let result = f(&mut conn);
        if !self.closed.load(Ordering::Acquire) {
            let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < READER_POOL {
                pool.push(conn);
            }
        }
        result
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

impl SqliteStore {
    /// Opens (or creates, with its directory) the database at `path`, loads the latest state into memory and starts
    /// the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("create directory {}", dir.display()), e))?;
        }
        let conn = log::open_writer(path)?;
        let loaded = log::load(&conn).map_err(|e| match e {
            StoreError::Backend { context, message } => {
                StoreError::Backend { context: format!("{context} from {}", path.display()), message }
            }
            other => other,
        })?;
        tracing::info!(
            path = %path.display(),
            revision = loaded.current,
            compacted = loaded.compacted,
            keys = loaded.live.len(),
            "store opened"
        );
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            index: RwLock::new(Index {
                live: loaded.live.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
                current: loaded.current,
                compacted: loaded.compacted,
            }),
            hub: Mutex::new(Hub::new(loaded.current)),
            readers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let (commands, queue) = mpsc::channel();
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("peapod-store-writer".into())
            .spawn(move || writer::run(conn, thread_shared, queue))
            .map_err(|e| backend(format!("start the writer thread of {}", path.display()), e))?;
        Ok(Self { shared, commands, writer: Mutex::new(Some(writer)) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Finishes the queued writes, stops the writer thread, ends every watch and closes the database. Later calls
    /// fail with [`StoreError::Closed`]. Also done on drop.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let _ = self.commands.send(Command::Shutdown);
        let handle = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(path = %self.shared.path.display(), "the store's writer thread panicked");
            }
        }
        self.shared.lock_hub().close();
        self.shared.readers.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How many watches are registered (ended watches are removed at the next write).
    pub fn watcher_count(&self) -> usize {
        self.shared.lock_hub().len()
    }

    /// Compacts every `every`, keeping the last `keep` revisions of history (kube-apiserver compacts etcd every 5
    /// minutes). The thread holds only a weak reference: it stops when the store is dropped or the returned handle
    /// is dropped.
    pub fn spawn_auto_compaction(self: &Arc<Self>, keep: i64, every: Duration) -> Result<AutoCompaction, StoreError> {
        let store: Weak<Self> = Arc::downgrade(self);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("peapod-store-compaction".into())
            .spawn(move || {
                // Wakes every `every` (the schedule), or at once when the handle is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(store) = store.upgrade() else { return };
                    if let Err(e) = store.compact_keeping(keep) {
                        tracing::warn!(path = %store.shared.path.display(), error = %e, "automatic compaction failed");
                    }
                }
            })
            .map_err(|e| backend(format!("start the compaction thread of {}", self.shared.path.display()), e))?;
        Ok(AutoCompaction { stop: Some(stop), thread: Some(thread) })
    }

    /// Compacts to `current - keep` if that is past the compaction point.
    pub fn compact_keeping(&self, keep: i64) -> Result<(), StoreError> {
        let (current, compacted) = {
            let index = self.shared.read_index();
            (index.current, index.compacted)
        };
        let target = current - keep.max(0);
        if target > compacted {
            self.compact(target)?;
        }
        Ok(())
    }

    /// Queues a write for the writer thread and waits until it is durable (or rejected).
    fn submit(&self, op: WriteOp) -> Result<Applied, StoreError> {
        self.shared.check_open()?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands.send(Command::Write { op, reply }).map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The automatic compaction started by [`SqliteStore::spawn_auto_compaction`]; dropping it stops the thread.
pub struct AutoCompaction {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for AutoCompaction {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store for SqliteStore {
    fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        Ok(self.submit(WriteOp::Create { key: key.to_owned(), value })?.revision)
    }

    fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision, StoreError> {
        Ok(self.submit(WriteOp::Update { key: key.to_owned(), value, expected })?.revision)
    }

    fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue), StoreError> {
        let applied = self.submit(WriteOp::Delete { key: key.to_owned(), expected })?;
        let prev = applied.prev.ok_or_else(|| backend(format!("delete {key}"), "the writer returned no previous value"))?;
        Ok((applied.revision, prev))
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.shared.check_open()?;
        Ok(self.shared.read_index().live.get(key).cloned())
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError> {
        self.shared.check_open()?;
        let start_after = opts.start_after.as_deref().filter(|s| *s >= prefix);
        {
            let index = self.shared.read_index();
            match opts.revision {
                Some(r) if r < index.compacted => {
                    return Err(StoreError::Compacted { requested: r, compacted: index.compacted })
                }
                Some(r) if r > index.current => {
                    return Err(StoreError::FutureRevision { requested: r, current: index.current })
                }
                Some(r) if r < index.current => {}
                _ => {
                    let lower = match start_after {
                        Some(after) => Bound::Excluded(after),
                        None => Bound::Included(prefix),
                    };
                    let mut matching =
                        index.live.range::<str, _>((lower, Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix));
                    let items: Vec<KeyValue> = match opts.limit {
                        0 => matching.by_ref().map(|(_, kv)| kv.clone()).collect(),
                        n => matching.by_ref().take(n).map(|(_, kv)| kv.clone()).collect(),
                    };
                    let remaining = matching.count() as u64;
                    return Ok(ListResult { items, revision: index.current, remaining });
                }
            }
        }
        // An older revision: read the log. Rows at or below `revision` are never rewritten, and compaction keeps
        // the state at every revision at or above the compaction point, which was checked above.
        let revision = opts.revision.unwrap_or(0);
        let (items, remaining) =
            self.shared.with_reader(|conn| log::list_at(conn, prefix, start_after, opts.limit, revision))?;
        // A compaction may have run between the check and the read; if it passed `revision`, the read may be wrong.
        let compacted = self.shared.read_index().compacted;
        if revision < compacted {
            return Err(StoreError::Compacted { requested: revision, compacted });
        }
        Ok(ListResult { items, revision, remaining })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        self.shared.check_open()?;
        let compacted = self.shared.read_index().compacted;
        if after < compacted {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(hub::WATCH_CHANNEL_CAPACITY);
        let (id, upto) = {
            let mut hub = self.shared.lock_hub();
            let id = hub.subscribe(prefix, after, tx.clone())?;
            (id, hub.revision)
        };
        if after < upto {
            hub::spawn_replay(&self.shared, id, prefix, after, upto, tx)?;
        }
        Ok(Watch::new(rx))
    }

    fn current_revision(&self) -> Result<Revision, StoreError> {
        self.shared.check_open()?;
        Ok(self.shared.read_index().current)
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.shared.check_open()?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands.send(Command::Compact { revision, reply }).map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.shared.check_open()?;
        Ok(self.shared.read_index().compacted)
    }
}
