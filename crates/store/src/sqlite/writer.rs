//! The writer thread of the SQLite backend: group commit.
//!
//! It owns the only writing connection. It takes every write waiting in its queue (up to [`MAX_BATCH`]), checks
//! and applies them in order in ONE transaction (each gets its own revision and its own compare-and-swap check,
//! against the index plus the earlier writes of the batch), commits (one fsync), then updates the in-memory index,
//! publishes the events to watchers and answers each caller. If any statement or the commit fails, the transaction
//! rolls back and every write of the batch fails with the same [`StoreError::Backend`]: nothing was applied, the
//! index is untouched and the revisions are reused by the next batch. Compactions run here too, between batches of
//! writes, so they never race a write.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};

use super::log::{self, backend};
use super::Shared;
use crate::{Event, EventKind, KeyValue, Revision, StoreError};

/// The most writes one transaction takes: bounds the latency a write adds to the others of its batch.
const MAX_BATCH: usize = 1024;

/// A request to the writer thread.
pub(crate) enum Command {
    Write {
        op: WriteOp,
        reply: SyncSender<Result<Applied, StoreError>>,
    },
    Compact {
        revision: Revision,
        reply: SyncSender<Result<(), StoreError>>,
    },
    /// Finish the queued commands before this one, then stop.
    Shutdown,
    /// Sets a pragma on the writing connection (tests use `max_page_count` to make the disk "full").
    #[cfg(test)]
    Pragma {
        name: &'static str,
        value: i64,
        reply: SyncSender<Result<(), StoreError>>,
    },
}

/// One write, as the `Store` methods ask for it.
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl WriteOp {
    fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. } | WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// What a successful write did.
#[derive(Debug)]
pub(crate) struct Applied {
    pub revision: Revision,
    /// The value before the write (the deleted value for a delete).
    pub prev: Option<KeyValue>,
}

type WriteReply = SyncSender<Result<Applied, StoreError>>;

/// The writer thread's loop; returns on [`Command::Shutdown`] or when every sender is gone.
pub(crate) fn run(mut conn: Connection, shared: Arc<Shared>, commands: Receiver<Command>) {
    let mut writes: Vec<(WriteOp, WriteReply)> = Vec::new();
    while let Ok(first) = commands.recv() {
        let mut next = Some(first);
        let mut shutdown = false;
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write { op, reply } => writes.push((op, reply)),
                Command::Compact { revision, reply } => {
                    apply_writes(&mut conn, &shared, &mut writes);
                    let _ = reply.send(compact(&mut conn, &shared, revision));
                }
                Command::Shutdown => {
                    shutdown = true;
                    break;
                }
                #[cfg(test)]
                Command::Pragma { name, value, reply } => {
                    apply_writes(&mut conn, &shared, &mut writes);
                    let _ = reply.send(conn.pragma_update(None, name, value).map_err(|e| backend(name, e)));
                }
            }
            if writes.len() < MAX_BATCH {
                next = commands.try_recv().ok();
            }
        }
        apply_writes(&mut conn, &shared, &mut writes);
        if shutdown {
            break;
        }
    }
    shared.lock_hub().close();
    if let Err((_, e)) = conn.close() {
        tracing::warn!(path = %shared.path.display(), error = %e, "closing the store's database");
    }
    tracing::debug!(path = %shared.path.display(), "store writer stopped");
}

/// What the batch decided for one write before the commit.
enum Outcome {
    Rejected(StoreError),
    Accepted(Event),
}

/// Applies `writes` (emptying it) in one transaction and answers every caller.
fn apply_writes(conn: &mut Connection, shared: &Shared, writes: &mut Vec<(WriteOp, WriteReply)>) {
    if writes.is_empty() {
        return;
    }
    let batch = std::mem::take(writes);
    let base = shared.read_index().current;
    match commit_batch(conn, shared, base, &batch) {
        Ok(outcomes) => {
            let events: Vec<Event> = outcomes
                .iter()
                .filter_map(|o| {
                    if let Outcome::Accepted(ev) = o {
                        Some(ev.clone())
                    } else {
                        None
                    }
                })
                .collect();
            if let Some(last) = events.last().map(Event::revision) {
                {
                    let mut index = shared.write_index();
                    for ev in &events {
                        match ev.kind {
                            EventKind::Deleted => index.live.remove(&ev.kv.key),
                            EventKind::Created | EventKind::Updated => {
                                index.live.insert(ev.kv.key.clone(), ev.kv.clone())
                            }
                        };
                    }
                    index.current = last;
                }
                shared.lock_hub().publish(&events, last);
            }
            tracing::trace!(writes = batch.len(), committed = events.len(), "store batch committed");
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let answer = match outcome {
                    Outcome::Rejected(err) => Err(err),
                    Outcome::Accepted(ev) => Ok(Applied {
                        revision: ev.revision(),
                        prev: ev.prev,
                    }),
                };
                let _ = reply.send(answer);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, writes = batch.len(), "store batch failed and was rolled back");
            let (context, message) = match err {
                StoreError::Backend { context, message } => (context, message),
                other => ("write batch".to_owned(), other.to_string()),
            };
            for (op, reply) in batch {
                let context = format!("write {} (batch rolled back: {context})", op.key());
                let _ = reply.send(Err(StoreError::Backend {
                    context,
                    message: message.clone(),
                }));
            }
        }
    }
}

/// Checks and appends every write of the batch in one transaction and commits it. Nothing outside the database is
/// touched, so an error leaves no trace (the transaction rolls back when dropped).
fn commit_batch(
    conn: &mut Connection,
    shared: &Shared,
    base: Revision,
    batch: &[(WriteOp, WriteReply)],
) -> Result<Vec<Outcome>, StoreError> {
    let mut revision = base;
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| backend(format!("begin a write transaction after revision {base}"), e))?;
    // The current value of each key this batch has written so far (None: deleted).
    let mut overlay: HashMap<&str, Option<KeyValue>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let index = shared.read_index();
        for (op, _) in batch {
            let key = op.key();
            let current = match overlay.get(key) {
                Some(v) => v.clone(),
                None => index.live.get(key).cloned(),
            };
            let next = revision + 1;
            let event = match (op, current) {
                (WriteOp::Create { key, .. }, Some(_)) => Err(StoreError::AlreadyExists { key: key.clone() }),
                (WriteOp::Create { key, value }, None) => Ok(Event {
                    kind: EventKind::Created,
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: next,
                        mod_revision: next,
                    },
                    prev: None,
                }),
                (WriteOp::Update { key, .. } | WriteOp::Delete { key, .. }, None) => {
                    Err(StoreError::NotFound { key: key.clone() })
                }
                (WriteOp::Update { key, expected, .. }, Some(cur)) if cur.mod_revision != *expected => {
                    Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Some(Box::new(cur)),
                    })
                }
                (
                    WriteOp::Delete {
                        key,
                        expected: Some(expected),
                    },
                    Some(cur),
                ) if cur.mod_revision != *expected => Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    current: Some(Box::new(cur)),
                }),
                (WriteOp::Update { key, value, .. }, Some(cur)) => Ok(Event {
                    kind: EventKind::Updated,
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: cur.create_revision,
                        mod_revision: next,
                    },
                    prev: Some(cur),
                }),
                (WriteOp::Delete { .. }, Some(cur)) => Ok(Event {
                    kind: EventKind::Deleted,
                    kv: KeyValue {
                        mod_revision: next,
                        ..cur.clone()
                    },
                    prev: Some(cur),
                }),
            };
            match event {
                Err(err) => outcomes.push(Outcome::Rejected(err)),
                Ok(ev) => {
                    log::append(
                        &txn,
                        &log::Row {
                            revision: next,
                            key,
                            create_revision: ev.kv.create_revision,
                            prev_revision: ev.prev.as_ref().map_or(0, |p| p.mod_revision),
                            deleted: ev.kind == EventKind::Deleted,
                            value: &ev.kv.value,
                        },
                    )?;
                    revision = next;
                    overlay.insert(
                        key,
                        if ev.kind == EventKind::Deleted {
                            None
                        } else {
                            Some(ev.kv.clone())
                        },
                    );
                    outcomes.push(Outcome::Accepted(ev));
                }
            }
        }
    }
    if revision > base {
        txn.commit()
            .map_err(|e| backend(format!("commit revisions {}..={revision}", base + 1), e))?;
    } else {
        // Every write was rejected: nothing to make durable.
        txn.rollback()
            .map_err(|e| backend(format!("end an empty transaction after revision {base}"), e))?;
    }
    Ok(outcomes)
}

/// Compacts the log up to `revision` in one transaction, then records the new compaction point in memory.
fn compact(conn: &mut Connection, shared: &Shared, revision: Revision) -> Result<(), StoreError> {
    let (previous, current) = {
        let index = shared.read_index();
        (index.compacted, index.current)
    };
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision <= previous {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| backend(format!("begin compaction to revision {revision}"), e))?;
    let removed = log::compact(&txn, previous, revision)?;
    txn.commit()
        .map_err(|e| backend(format!("commit compaction to revision {revision}"), e))?;
    shared.write_index().compacted = revision;
    tracing::info!(
        revision,
        removed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store compacted"
    );
    Ok(())
}
