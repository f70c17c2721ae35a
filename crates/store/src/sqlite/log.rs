//! The revision log on disk: the schema, the connection settings, and every SQL statement the SQLite backend runs.
//!
//! One append-only table, `log`, holds a row per write; its `revision` (the rowid) is the global revision. A delete
//! appends a tombstone row (`deleted = 1`) that carries the last value, so a delete event needs no other row. Each
//! row's `prev_revision` points at the key's previous row (0 for a create), which gives watch events their previous
//! value and lets compaction find superseded rows without scanning the whole table. A `meta` table records the
//! compaction point. This module only reads and writes rows; it knows nothing of locks, threads or watchers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::{Event, EventKind, KeyValue, Revision, StoreError};

/// How long a connection waits for another connection's lock before failing. Only compaction and the writer take
/// write locks, and both run on the writer thread, so this only matters for readers during a WAL checkpoint.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The size (bytes) the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// The schema. `revision INTEGER PRIMARY KEY` makes the revision the rowid, so revision scans are primary-key range
/// scans; `log_key_revision` serves key lookups and "latest row per key at a revision".
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    key             TEXT    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    value           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Builds a [`StoreError::Backend`] from what was being done and the underlying error.
pub(crate) fn backend(context: impl Into<String>, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        context: context.into(),
        message: err.to_string(),
    }
}

/// Opens the connection that writes: creates the file and schema, switches to WAL with `synchronous=FULL` (a
/// committed transaction is fsynced before `COMMIT` returns, so it survives `kill -9` and power loss).
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let ctx = || format!("open {}", path.display());
    let conn = Connection::open(path).map_err(|e| backend(ctx(), e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| backend(ctx(), e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| backend(format!("set journal_mode=WAL on {}", path.display()), e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(backend(ctx(), format!("journal_mode is {mode}, WAL is required")));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| backend(format!("set synchronous=FULL on {}", path.display()), e))?;
    // After a burst of writes the WAL file would otherwise stay at its largest size; checkpoints truncate it to this.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(|e| backend(format!("set journal_size_limit on {}", path.display()), e))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| backend(format!("create the schema in {}", path.display()), e))?;
    Ok(conn)
}

/// Opens a connection for history reads (lists at a revision, watch replays). `query_only` makes any write on it
/// an error, so a bug cannot bypass the writer thread.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let ctx = || format!("open {} for reading", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| backend(ctx(), e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| backend(ctx(), e))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| backend(ctx(), e))?;
    Ok(conn)
}

/// What the log holds when the store opens.
pub(crate) struct Loaded {
    /// The latest value of every live key.
    pub live: Vec<KeyValue>,
    /// The revision of the last write (never below the compaction point).
    pub current: Revision,
    pub compacted: Revision,
}

/// Reads the latest row of every key, the last revision and the compaction point.
pub(crate) fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let compacted = read_compacted(conn)?;
    let max: Option<Revision> = conn
        .query_row("SELECT MAX(revision) FROM log", [], |row| row.get(0))
        .map_err(|e| backend("read the last revision", e))?;
    // SQLite takes a bare column's value from the row holding the MAX() (documented for min/max aggregates).
    let mut stmt = conn
        .prepare("SELECT key, MAX(revision), create_revision, deleted, value FROM log GROUP BY key")
        .map_err(|e| backend("load the latest value of every key", e))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                KeyValue {
                    key: row.get(0)?,
                    mod_revision: row.get(1)?,
                    create_revision: row.get(2)?,
                    value: row.get(4)?,
                },
                row.get::<_, bool>(3)?,
            ))
        })
        .map_err(|e| backend("load the latest value of every key", e))?;
    let mut live = Vec::new();
    for row in rows {
        let (kv, deleted) = row.map_err(|e| backend("load the latest value of every key", e))?;
        if !deleted {
            live.push(kv);
        }
    }
    Ok(Loaded {
        live,
        current: max.unwrap_or(0).max(compacted),
        compacted,
    })
}

/// The compaction point recorded in `meta` (0 if never compacted).
pub(crate) fn read_compacted(conn: &Connection) -> Result<Revision, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |row| row.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(|e| backend("read the compaction point", e))
}

/// One row to append.
pub(crate) struct Row<'a> {
    pub revision: Revision,
    pub key: &'a str,
    pub create_revision: Revision,
    /// The key's previous row, 0 for a create.
    pub prev_revision: Revision,
    pub deleted: bool,
    pub value: &'a [u8],
}

/// Appends one row (inside the writer's transaction).
pub(crate) fn append(conn: &Connection, row: &Row<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO log (revision, key, create_revision, prev_revision, deleted, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![row.revision, row.key, row.create_revision, row.prev_revision, row.deleted, row.value])
    })
    .map(drop)
    .map_err(|e| backend(format!("insert revision {} for {}", row.revision, row.key), e))
}

/// Drops history up to `revision` (inside the writer's transaction): every row superseded by a row at or below
/// `revision`, and every tombstone at or below it. The latest row of each live key at `revision` stays, so a list
/// at `revision` still reads correctly, and every row above it stays, so watches after it still replay.
///
/// Rows superseded before `previous` were deleted by the compaction that set `previous`, so only rows written in
/// `(previous, revision]` need looking at: their `prev_revision` names exactly the rows they superseded.
pub(crate) fn compact(conn: &Connection, previous: Revision, revision: Revision) -> Result<usize, StoreError> {
    let ctx = || format!("compact revisions {previous}..={revision}");
    let superseded = conn
        .execute(
            "DELETE FROM log WHERE revision IN (
                 SELECT prev_revision FROM log WHERE revision > ?1 AND revision <= ?2 AND prev_revision > 0)",
            params![previous, revision],
        )
        .map_err(|e| backend(ctx(), e))?;
    let tombstones = conn
        .execute(
            "DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND deleted = 1",
            params![previous, revision],
        )
        .map_err(|e| backend(ctx(), e))?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('compacted', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![revision],
    )
    .map_err(|e| backend(ctx(), e))?;
    Ok(superseded + tombstones)
}

/// The live keys under `prefix` as they were at `revision`, in key order, starting after `start_after`. Returns at
/// most `limit` items (0: all) and how many more keys follow.
pub(crate) fn list_at(
    conn: &Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: Revision,
) -> Result<(Vec<KeyValue>, u64), StoreError> {
    let ctx = || format!("list {prefix} at revision {revision}");
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, MAX(revision), create_revision, deleted, value FROM log
             WHERE key >= ?1 AND (?2 IS NULL OR key > ?2) AND revision <= ?3
             GROUP BY key ORDER BY key",
        )
        .map_err(|e| backend(ctx(), e))?;
    let mut rows = stmt
        .query(params![prefix, start_after, revision])
        .map_err(|e| backend(ctx(), e))?;
    let mut items = Vec::new();
    let mut remaining = 0u64;
    while let Some(row) = rows.next().map_err(|e| backend(ctx(), e))? {
        let key: String = row.get(0).map_err(|e| backend(ctx(), e))?;
        if !key.starts_with(prefix) {
            // Keys sharing the prefix are contiguous in key order, and the scan started at the prefix.
            break;
        }
        let deleted: bool = row.get(3).map_err(|e| backend(ctx(), e))?;
        if deleted {
            continue;
        }
        if limit != 0 && items.len() >= limit {
            remaining += 1;
            continue;
        }
        items.push(KeyValue {
            key,
            mod_revision: row.get(1).map_err(|e| backend(ctx(), e))?,
            create_revision: row.get(2).map_err(|e| backend(ctx(), e))?,
            value: row.get(4).map_err(|e| backend(ctx(), e))?,
        });
    }
    Ok((items, remaining))
}

/// One page of a watch replay, read in one read transaction (one snapshot).
pub(crate) struct ReplayPage {
    /// The compaction point in the same snapshot: if it passed the page's start, rows may be missing.
    pub compacted: Revision,
    pub events: Vec<Event>,
}

/// Up to `page` events under `prefix` with revisions in `(after, upto]`, in revision order, with previous values.
pub(crate) fn read_events(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
    upto: Revision,
    page: usize,
) -> Result<ReplayPage, StoreError> {
    let ctx = || format!("replay events under {prefix} in revisions {after}..={upto}");
    let txn = conn.transaction().map_err(|e| backend(ctx(), e))?;
    let compacted = read_compacted(&txn)?;
    let mut events = Vec::new();
    {
        let mut stmt = txn
            .prepare_cached(
                "SELECT l.revision, l.key, l.create_revision, l.prev_revision, l.deleted, l.value,
                        p.create_revision, p.value
                 FROM log l LEFT JOIN log p ON p.revision = l.prev_revision AND l.prev_revision > 0
                 WHERE l.revision > ?1 AND l.revision <= ?2 AND substr(l.key, 1, length(?3)) = ?3
                 ORDER BY l.revision LIMIT ?4",
            )
            .map_err(|e| backend(ctx(), e))?;
        let page = i64::try_from(page).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![after, upto, prefix, page])
            .map_err(|e| backend(ctx(), e))?;
        while let Some(row) = rows.next().map_err(|e| backend(ctx(), e))? {
            events.push(event_from_row(row).map_err(|e| backend(ctx(), e))?);
        }
    }
    txn.finish().map_err(|e| backend(ctx(), e))?;
    Ok(ReplayPage { compacted, events })
}

/// Builds the event a log row (joined with its previous row) stands for.
fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let revision: Revision = row.get(0)?;
    let key: String = row.get(1)?;
    let create_revision: Revision = row.get(2)?;
    let prev_revision: Revision = row.get(3)?;
    let deleted: bool = row.get(4)?;
    let value: Vec<u8> = row.get(5)?;
    let prev_create: Option<Revision> = row.get(6)?;
    let prev_value: Option<Vec<u8>> = row.get(7)?;
    let prev = match (prev_create, prev_value) {
        (Some(create_revision), Some(value)) if prev_revision > 0 => Some(KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision: prev_revision,
        }),
        _ => None,
    };
    let kind = if deleted {
        EventKind::Deleted
    } else if prev_revision == 0 {
        EventKind::Created
    } else {
        EventKind::Updated
    };
    Ok(Event {
        kind,
        kv: KeyValue {
            key,
            value,
            create_revision,
            mod_revision: revision,
        },
        prev,
    })
}
