//! The watch hub: the subscribers of the SQLite backend and how each is fed, first from the log, then live.
//!
//! The writer thread publishes each committed (durable) batch of events here, under the hub's lock, and records
//! the batch's last revision as the hub's revision. A new watcher registers under the same lock and notes that
//! revision `R`: every event up to `R` is in the log, every event after `R` will be published to it. A replay thread
//! then reads `(after, R]` from the log and sends it, while the writer buffers the watcher's live events; when the
//! replay is done the thread drains the buffer and, finding it empty under the lock, flips the watcher to live.
//! So there is no gap and no duplicate at the switch-over, and the writer never waits on a watcher.
//!
//! A watcher whose channel is (nearly) full when a live event arrives, or whose buffer overflows during a replay,
//! is ended with [`StoreError::Compacted`] (`requested`: the first revision it missed, `compacted`: the current
//! revision): the apiserver answers that with `410 Gone` and the client re-lists, the same recovery as for a watcher
//! that fell behind a compaction. Ending it, rather than blocking the writer or buffering without bound, is the
//! choice kube-apiserver's watch cache makes for slow watchers too.

use std::sync::Arc;

use tokio::sync::mpsc::Sender;

use super::log::{self, backend};
use super::Shared;
use crate::{Event, Revision, StoreError};

/// Capacity of a watcher's channel. kube-apiserver's watch cache gives each watcher a buffer of a few hundred events;
/// a little more here costs only memory for slow watchers.
pub(crate) const WATCH_CHANNEL_CAPACITY: usize = 1024;

/// How many live events a watcher may accumulate while its backlog is still replaying before it is ended as lagged.
const MAX_PENDING_DURING_REPLAY: usize = 16 * 1024;

/// How many log rows a replay reads per read transaction (short snapshots keep WAL checkpoints possible).
const REPLAY_PAGE: usize = 512;

type EventSender = Sender<Result<Event, StoreError>>;

/// The subscribers and the last revision published to them.
#[derive(Default)]
pub(crate) struct Hub {
    /// The revision of the last event published (every event up to it is durable and in the log).
    pub revision: Revision,
    next_id: u64,
    subscribers: Vec<Subscriber>,
    /// Set when the store closes: no more subscribers.
    closed: bool,
}

/// One watcher.
struct Subscriber {
    id: u64,
    /// Only keys starting with this are delivered.
    prefix: String,
    /// Only revisions above this are delivered (a watch may start after the current revision).
    after: Revision,
    tx: EventSender,
    phase: Phase,
}

/// Where a watcher is in its life.
enum Phase {
    /// Its replay thread is sending the backlog; live events wait here.
    CatchingUp(Vec<Event>),
    /// It fell too far behind during its replay; the replay thread sends this error and removes it.
    Failed(StoreError),
    /// The writer sends to it directly.
    Live,
}

/// The error that ends a watcher that could not keep up.
fn lagged(missed: Revision, current: Revision) -> StoreError {
    StoreError::Compacted {
        requested: missed,
        compacted: current,
    }
}

impl Hub {
    /// A hub with no watchers whose last published revision is `revision`.
    pub(crate) fn new(revision: Revision) -> Self {
        Self {
            revision,
            ..Self::default()
        }
    }

    /// Registers a watcher. It is live at once when there is no backlog (`after` ≥ the hub's revision); otherwise
    /// the caller must run [`replay`] with the returned id up to [`Hub::revision`].
    pub(crate) fn subscribe(&mut self, prefix: &str, after: Revision, tx: EventSender) -> Result<u64, StoreError> {
        if self.closed {
            return Err(StoreError::Closed);
        }
        let id = self.next_id;
        self.next_id += 1;
        let phase = if after >= self.revision {
            Phase::Live
        } else {
            Phase::CatchingUp(Vec::new())
        };
        self.subscribers.push(Subscriber {
            id,
            prefix: prefix.to_owned(),
            after,
            tx,
            phase,
        });
        Ok(id)
    }

    /// Removes a watcher (its replay failed or its receiver is gone).
    pub(crate) fn unsubscribe(&mut self, id: u64) {
        self.subscribers.retain(|s| s.id != id);
    }

    /// Hands a committed batch to every watcher; `revision` is the batch's last revision. Never blocks.
    pub(crate) fn publish(&mut self, events: &[Event], revision: Revision) {
        self.revision = revision;
        self.subscribers.retain_mut(|s| s.deliver(events, revision));
    }

    /// Ends every watch (their receivers then see the end of the stream).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.subscribers.clear();
    }

    /// How many watchers are registered (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.subscribers.len()
    }
}

impl Subscriber {
    /// Delivers the events this watcher wants; false when it must be removed.
    fn deliver(&mut self, events: &[Event], current: Revision) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        for ev in events {
            if ev.revision() <= self.after || !ev.kv.key.starts_with(&self.prefix) {
                continue;
            }
            match &mut self.phase {
                Phase::Live => {
                    // Only the writer sends to a live watcher, so the capacity seen here cannot shrink before the
                    // send. One slot is kept for the error that ends a lagging watcher.
                    if self.tx.capacity() > 1 {
                        if self.tx.try_send(Ok(ev.clone())).is_err() {
                            return false;
                        }
                    } else {
                        tracing::warn!(prefix = %self.prefix, revision = ev.revision(), "watcher lagged; ending it");
                        let _ = self.tx.try_send(Err(lagged(ev.revision(), current)));
                        return false;
                    }
                }
                Phase::CatchingUp(pending) => {
                    pending.push(ev.clone());
                    if pending.len() > MAX_PENDING_DURING_REPLAY {
                        tracing::warn!(prefix = %self.prefix, "watcher lagged during its replay; ending it");
                        let missed = pending.first().map(Event::revision).unwrap_or(current);
                        self.phase = Phase::Failed(lagged(missed, current));
                    }
                }
                Phase::Failed(_) => {}
            }
        }
        true
    }
}

/// Runs on the watcher's own thread: sends every event under `prefix` in `(after, upto]` from the log, then the
/// live events buffered meanwhile, then makes the watcher live. Blocking sends only ever block this thread.
pub(crate) fn replay(shared: Arc<Shared>, id: u64, prefix: String, after: Revision, upto: Revision, tx: EventSender) {
    let fail = |err: StoreError| {
        shared.lock_hub().unsubscribe(id);
        let _ = tx.blocking_send(Err(err));
    };
    let mut cursor = after;
    loop {
        let page = shared.with_reader(|conn| log::read_events(conn, &prefix, cursor, upto, REPLAY_PAGE));
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(%prefix, after, error = %err, "watch replay failed");
                return fail(err);
            }
        };
        if page.compacted > cursor {
            // Rows after `cursor` may already be gone: this watcher fell behind a compaction.
            return fail(StoreError::Compacted {
                requested: cursor,
                compacted: page.compacted,
            });
        }
        let full = page.events.len() == REPLAY_PAGE;
        for ev in page.events {
            cursor = ev.revision();
            if tx.blocking_send(Ok(ev)).is_err() {
                shared.lock_hub().unsubscribe(id);
                return;
            }
        }
        if !full {
            break;
        }
    }
    loop {
        let pending = {
            let mut hub = shared.lock_hub();
            let Some(sub) = hub.subscribers.iter_mut().find(|s| s.id == id) else {
                return;
            };
            match std::mem::replace(&mut sub.phase, Phase::Live) {
                Phase::CatchingUp(pending) if pending.is_empty() => return,
                Phase::CatchingUp(pending) => {
                    sub.phase = Phase::CatchingUp(Vec::new());
                    pending
                }
                Phase::Failed(err) => {
                    hub.unsubscribe(id);
                    drop(hub);
                    let _ = tx.blocking_send(Err(err));
                    return;
                }
                Phase::Live => return,
            }
        };
        for ev in pending {
            if tx.blocking_send(Ok(ev)).is_err() {
                shared.lock_hub().unsubscribe(id);
                return;
            }
        }
    }
}

/// Starts the replay thread of watcher `id`; on failure the watcher is removed.
pub(crate) fn spawn_replay(
    shared: &Arc<Shared>,
    id: u64,
    prefix: &str,
    after: Revision,
    upto: Revision,
    tx: EventSender,
) -> Result<(), StoreError> {
    let thread_shared = shared.clone();
    let thread_prefix = prefix.to_owned();
    std::thread::Builder::new()
        .name("peapod-store-watch".into())
        .spawn(move || replay(thread_shared, id, thread_prefix, after, upto, tx))
        .map(drop)
        .map_err(|e| {
            shared.lock_hub().unsubscribe(id);
            backend(
                format!("start the replay of a watch on {prefix} after revision {after}"),
                e,
            )
        })
}
