//! Reading CRI container log files for `kubectl logs` (pod-behaviour.md §9.3): parsing records, `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, and `follow` driven by inotify.
//!
//! A log file holds one record per line, `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <content>\n`; `P` records are
//! pieces of a longer line and are joined until the next `F`. Legacy Docker JSON lines
//! (`{"log":"..","stream":"stdout","time":".."}`) are read too. Only the file given is read: rotated files are not
//! part of `kubectl logs`, but a follow carries on into the new file when the current one is rotated.
//!
//! This module only reads; the shim writes the files. It owns no knowledge of Pods: the caller picks the path
//! (`/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`) and says whether the container still runs.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use peapod_api::errors::{aggregate, FieldError};
use rustix::fs::inotify;
use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

/// How much is read from the file at a time, and how much output is gathered before it is sent.
const CHUNK: usize = 64 * 1024;
/// Block size for reading backwards when looking for the start of the last N lines.
const TAIL_BLOCK: u64 = 64 * 1024;
/// The fixed-width timestamp the CRI writes and `--timestamps` prints (Go's `2006-01-02T15:04:05.000000000Z07:00`
/// in UTC).
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.%9fZ";
/// Go's `time.RFC3339` layout, named in `sinceTime` parse errors as Kubernetes does.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// Errors reading a container log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file does not exist (the container never started, or the file was removed).
    #[error("log file {path} does not exist")]
    NotFound { path: PathBuf },
    /// Reading, opening or seeking the file failed.
    #[error("failed to {op} log file {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Setting up or reading the inotify watch for `follow` failed.
    #[error("failed to watch log file {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line that is not a CRI or Docker JSON log record.
    #[error("malformed log record: {reason}")]
    Malformed { reason: String },
}

impl LogError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            LogError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            LogError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    fn malformed(reason: impl Into<String>) -> Self {
        LogError::Malformed { reason: reason.into() }
    }
}

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn parse(s: &[u8]) -> Result<Self, LogError> {
        match s {
            b"stdout" => Ok(Stream::Stdout),
            b"stderr" => Ok(Stream::Stderr),
            other => Err(LogError::malformed(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the runtime read the bytes from the container.
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// A piece of a longer line: the next record continues it.
    pub partial: bool,
    /// The content, without the line's end-of-line.
    pub content: Vec<u8>,
}

/// What `kubectl logs` asked for (`PodLogOptions` less the container selection, which the caller resolves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading as the file grows until the container stops.
    pub follow: bool,
    /// Only the last N records (`--tail`); `None` for all.
    pub tail_lines: Option<i64>,
    /// Only records at or after this time (`--since`, `--since-time`).
    pub since: Option<Timestamp>,
    /// Prefix each line with its record's timestamp (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes of output (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
}

/// Reads `PodLogOptions` from the query of a `pods/log` (or the node's `containerLogs`) request as Kubernetes'
/// query conversion and `ValidatePodLogOptions` do: the first value of each key counts, booleans are true unless
/// `0`/`false`, `sinceSeconds` counts back from `now`. Keys it does not own (`container`, `previous`, …) are
/// ignored. The error is Kubernetes' text: a conversion error, or the validation errors (the caller wraps them as
/// `PodLogOptions "<pod>" is invalid: <text>`).
pub fn parse_query<I, K, V>(pairs: I, now: Timestamp) -> Result<LogOptions, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let (mut follow, mut tail, mut since_seconds, mut since_time, mut timestamps, mut limit) =
        (None, None, None, None, None, None);
    for (k, v) in pairs {
        let v = v.as_ref();
        let slot = match k.as_ref() {
            "follow" => &mut follow,
            "tailLines" => &mut tail,
            "sinceSeconds" => &mut since_seconds,
            "sinceTime" => &mut since_time,
            "timestamps" => &mut timestamps,
            "limitBytes" => &mut limit,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.to_string());
        }
    }

    let tail = tail.as_deref().map(parse_int).transpose()?;
    let since_seconds = since_seconds.as_deref().map(parse_int).transpose()?;
    let limit = limit.as_deref().map(parse_int).transpose()?;
    let since_time = since_time
        .as_deref()
        .map(|s| {
            s.parse::<Timestamp>()
                .map_err(|e| format!("parsing time {s:?} as {RFC3339_LAYOUT:?}: {e}"))
        })
        .transpose()?;

    let mut errs = Vec::new();
    if let Some(t) = tail.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "tailLines",
            t.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(l) = limit.filter(|l| *l < 1) {
        errs.push(FieldError::invalid(
            "limitBytes",
            l.to_string(),
            "must be greater than 0",
        ));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(s), None) if s < 1 => {
            errs.push(FieldError::invalid(
                "sinceSeconds",
                s.to_string(),
                "must be greater than 0",
            ));
        }
        _ => {}
    }
    if !errs.is_empty() {
        return Err(aggregate(&errs));
    }

    let since = match (since_seconds, since_time) {
        (Some(s), _) => Some(now.checked_sub(SignedDuration::from_secs(s)).unwrap_or(Timestamp::MIN)),
        (None, t) => t,
    };
    Ok(LogOptions {
        follow: follow.as_deref().is_some_and(parse_bool),
        tail_lines: tail,
        since,
        timestamps: timestamps.as_deref().is_some_and(parse_bool),
        limit_bytes: limit.and_then(|l| u64::try_from(l).ok()),
    })
}

/// apimachinery's query boolean: anything but `0` and `false` (any case) is true, an empty value included.
fn parse_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

fn parse_int(v: &str) -> Result<i64, String> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {v:?}: {why}")
    })
}

/// Legacy Docker `json-file` record.
#[derive(Deserialize)]
struct JsonRecord {
    log: String,
    stream: String,
    time: String,
}

/// Parses one line of a log file (with or without its trailing `\n`): a CRI record, or a Docker JSON record when
/// the line starts with `{`. Timestamps are parsed leniently (any RFC 3339 with or without fraction or offset).
pub fn parse_record(line: &[u8]) -> Result<Record, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.first() == Some(&b'{') {
        return parse_json_record(line);
    }
    let (ts, rest) = split_field(line).ok_or_else(|| LogError::malformed("timestamp is not found"))?;
    let timestamp = parse_timestamp(ts)?;
    let (stream, rest) = split_field(rest).ok_or_else(|| LogError::malformed("stream type is not found"))?;
    let stream = Stream::parse(stream)?;
    // Lenient: a record with no content may lack the space after its tags.
    let (tags, content) = split_field(rest).unwrap_or((rest, &[]));
    if tags.is_empty() {
        return Err(LogError::malformed("log tag is not found"));
    }
    // Only the first tag means something today; later ones are kept for forward compatibility and ignored.
    let partial = tags.split(|b| *b == b':').next() == Some(b"P");
    Ok(Record {
        timestamp,
        stream,
        partial,
        content: content.to_vec(),
    })
}

fn split_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|b| *b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

fn parse_timestamp(ts: &[u8]) -> Result<Timestamp, LogError> {
    std::str::from_utf8(ts)
        .ok()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .ok_or_else(|| LogError::malformed(format!("unexpected timestamp format {:?}", String::from_utf8_lossy(ts))))
}

fn parse_json_record(line: &[u8]) -> Result<Record, LogError> {
    let r: JsonRecord =
        serde_json::from_slice(line).map_err(|e| LogError::malformed(format!("invalid JSON log line: {e}")))?;
    let timestamp = parse_timestamp(r.time.as_bytes())?;
    let stream = Stream::parse(r.stream.as_bytes())?;
    let mut content = r.log.into_bytes();
    // Docker keeps the newline in `log`; a record without one is a piece of a longer line.
    let partial = content.last() != Some(&b'\n');
    if !partial {
        content.pop();
    }
    Ok(Record {
        timestamp,
        stream,
        partial,
        content,
    })
}

/// `ts` as the CRI writes it and `--timestamps` shows it: `2016-10-06T00:17:09.669794202Z`.
pub fn format_timestamp(ts: Timestamp) -> String {
    jiff::fmt::strtime::format(TIMESTAMP_FORMAT, ts).unwrap_or_else(|_| ts.to_string())
}

/// Whether output may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// `limitBytes` or the non-follow `tailLines` count was reached: nothing more is written.
    Done,
}

/// Turns file bytes into `kubectl logs` output: splits lines, parses records, joins partial records, applies
/// `since`, `timestamps`, `limitBytes` and (when not following) the record count of `tailLines`. Pure; the
/// caller feeds it bytes and takes the output.
struct LogRenderer {
    since: Option<Timestamp>,
    timestamps: bool,
    /// Bytes that may still be written, if limited.
    remaining: Option<u64>,
    /// Records that may still be read, if limited (`tailLines` without `follow`).
    records_left: Option<u64>,
    /// The previous record ended a line, so the next one starts a new line (gets the timestamp prefix).
    at_line_start: bool,
    /// The start of a line whose end-of-line has not been read yet.
    pending: Vec<u8>,
    /// Output not yet sent.
    out: Vec<u8>,
    done: bool,
}

impl LogRenderer {
    fn new(opts: &LogOptions) -> Self {
        let records_left = match opts.tail_lines {
            Some(n) if !opts.follow => Some(u64::try_from(n).unwrap_or(0)),
            _ => None,
        };
        Self {
            since: opts.since,
            timestamps: opts.timestamps,
            remaining: opts.limit_bytes,
            done: records_left == Some(0) || opts.limit_bytes == Some(0),
            records_left,
            at_line_start: true,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Consumes `data`; complete lines are rendered, an unfinished last line is kept for the next call.
    fn feed(&mut self, mut data: &[u8]) -> Flow {
        while !self.done {
            let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                self.pending.extend_from_slice(data);
                break;
            };
            let (line, rest) = data.split_at(nl + 1);
            data = rest;
            if self.pending.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole);
            }
        }
        self.flow()
    }

    /// The file will not grow (or was replaced): an unfinished last line is rendered as it is.
    fn finish(&mut self) -> Flow {
        if !self.pending.is_empty() && !self.done {
            let line = std::mem::take(&mut self.pending);
            tracing::debug!(len = line.len(), "incomplete last line in log file");
            self.line(&line);
        }
        self.pending.clear();
        self.flow()
    }

    fn flow(&self) -> Flow {
        if self.done {
            Flow::Done
        } else {
            Flow::Continue
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn line(&mut self, line: &[u8]) {
        let record = match parse_record(line) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "skipping unparsable line in log file");
                return;
            }
        };
        if let Some(left) = self.records_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.done = true;
            }
        }
        let starts_line = self.at_line_start;
        self.at_line_start = !record.partial;
        if self.since.is_some_and(|since| record.timestamp < since) {
            return;
        }
        let start = self.out.len();
        if self.timestamps && starts_line {
            self.out
                .extend_from_slice(format_timestamp(record.timestamp).as_bytes());
            self.out.push(b' ');
        }
        self.out.extend_from_slice(&record.content);
        if !record.partial {
            self.out.push(b'\n');
        }
        if let Some(remaining) = self.remaining.as_mut() {
            let written = (self.out.len() - start) as u64;
            if written >= *remaining {
                // `remaining` is smaller than what was just written, so it fits in usize.
                self.out.truncate(start + usize::try_from(*remaining).unwrap_or(0));
                *remaining = 0;
                self.done = true;
            } else {
                *remaining -= written;
            }
        }
    }
}

/// The offset where the last `n` complete lines start; an unfinished last line (no `\n` yet) is not counted.
/// Reads backwards from the end in blocks, so only about as much as the lines themselves is read.
fn tail_start<R: Read + Seek>(r: &mut R, n: u64) -> io::Result<u64> {
    let size = r.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; TAIL_BLOCK as usize];
    let mut end = size;
    // The newline that ends the last complete line is the first one met; the line before the N-th line from
    // the end ends at newline N+1.
    let mut newlines = 0;
    while end > 0 {
        let start = end.saturating_sub(TAIL_BLOCK);
        let len = (end - start) as usize;
        r.seek(SeekFrom::Start(start))?;
        r.read_exact(&mut buf[..len])?;
        for (i, b) in buf[..len].iter().enumerate().rev() {
            if *b == b'\n' {
                newlines += 1;
                if newlines == n + 1 {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// An inotify instance watching a log file and its directory, registered with tokio's reactor.
struct Watcher {
    fd: AsyncFd<OwnedFd>,
}

impl Watcher {
    /// Watches `path` for writes and for being renamed or removed, and its directory for writes and for a file
    /// created or moved in (a rotation's new file). Fails with `NotFound` if the file does not exist.
    fn new(path: &Path) -> Result<Self, LogError> {
        let watch_err = |e: rustix::io::Errno| LogError::Watch {
            path: path.to_path_buf(),
            source: e.into(),
        };
        // CLOEXEC: the agent forks helpers; a watch fd must not leak into them.
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).map_err(watch_err)?;
        let file_events = inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVE_SELF
            | inotify::WatchFlags::DELETE_SELF
            | inotify::WatchFlags::ATTRIB;
        match inotify::add_watch(&fd, path, file_events) {
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {
                return Err(LogError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(watch_err(e)),
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // The directory watch reports writes to any file in it, so after a rotation the new file is covered
        // without adding a watch for it; CREATE/MOVED_TO announce the new file itself.
        let dir_events = inotify::WatchFlags::CREATE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::CLOSE_WRITE;
        inotify::add_watch(&fd, dir, dir_events).map_err(watch_err)?;
        // SAFETY: `fd` is an open inotify descriptor that the `AsyncFd` takes ownership of; an `OwnedFd` always
        // returns the same descriptor and nothing else can close it while the `AsyncFd` holds it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| LogError::Watch {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Self { fd })
    }

    /// Waits until at least one event arrived and drains them all. Which event it was does not matter: the caller
    /// reads the file to its end and checks for rotation after every wake-up.
    async fn changed(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = drain(guard.get_inner().as_fd())?;
            // Drained up to EAGAIN, so the readiness tokio cached is stale.
            guard.clear_ready();
            if got {
                return Ok(());
            }
        }
    }
}

/// Reads every pending inotify event; true if there was any.
fn drain(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    let mut got = false;
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Ok(got),
            Ok(_) => got = true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(got),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Device and inode of a file, to tell whether a path still names the file being read.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Opens `path` and positions it at the start of the last `tail` lines (or at 0). Blocking; run off the reactor.
fn open_at_tail(path: &Path, tail: Option<i64>) -> Result<(std::fs::File, (u64, u64)), LogError> {
    let mut f = std::fs::File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let meta = f.metadata().map_err(|e| LogError::io("stat", path, e))?;
    let start = match tail {
        Some(n) => tail_start(&mut f, u64::try_from(n).unwrap_or(0)).map_err(|e| LogError::io("read", path, e))?,
        None => 0,
    };
    f.seek(SeekFrom::Start(start))
        .map_err(|e| LogError::io("seek", path, e))?;
    Ok((f, identity(&meta)))
}

/// Sends what the renderer produced; false when the receiver is gone (the client went away).
async fn send(out: &mpsc::Sender<Bytes>, renderer: &mut LogRenderer) -> bool {
    let chunk = renderer.take_output();
    chunk.is_empty() || out.send(Bytes::from(chunk)).await.is_ok()
}

/// What reading to the end of the file ended with.
enum ReadEnd {
    /// At EOF; more may come.
    Eof,
    /// Output is complete (limit reached) or the client went away.
    Stop,
}

async fn read_to_end(
    file: &mut tokio::fs::File,
    path: &Path,
    renderer: &mut LogRenderer,
    out: &mpsc::Sender<Bytes>,
) -> Result<ReadEnd, LogError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| LogError::io("read", path, e))?;
        if n == 0 {
            return Ok(if send(out, renderer).await {
                ReadEnd::Eof
            } else {
                ReadEnd::Stop
            });
        }
        let flow = renderer.feed(&buf[..n]);
        if flow == Flow::Done {
            // Output is complete (limit reached): send the rest and stop.
            send(out, renderer).await;
            return Ok(ReadEnd::Stop);
        }
        if renderer.out.len() >= CHUNK && !send(out, renderer).await {
            return Ok(ReadEnd::Stop);
        }
    }
}

/// Streams the container log at `path` into `out` as `opts` asks (pod-behaviour.md §9.3), in chunks.
///
/// Without `follow` it reads what is there and returns. With `follow` it keeps reading as the file grows, woken by
/// inotify (no polling), carries on into a new file at `path` after a rotation, and returns once `running` is
/// false (or its sender is gone) and the file has been read to its end. It returns `Ok` early when `out` is
/// closed (the client went away) or `limit_bytes` is reached. A missing file is [`LogError::NotFound`].
pub async fn stream_log(
    path: &Path,
    opts: &LogOptions,
    out: mpsc::Sender<Bytes>,
    mut running: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let mut renderer = LogRenderer::new(opts);
    if renderer.done {
        return Ok(());
    }
    // The watch is set up before the first read so no write between the two is missed.
    let watcher = if opts.follow { Some(Watcher::new(path)?) } else { None };

    let owned = path.to_path_buf();
    let tail = opts.tail_lines;
    let (file, mut current) = tokio::task::spawn_blocking(move || open_at_tail(&owned, tail))
        .await
        .map_err(|e| LogError::io("open", path, io::Error::other(e)))??;
    let mut file = tokio::fs::File::from_std(file);

    let Some(watcher) = watcher else {
        if let ReadEnd::Stop = read_to_end(&mut file, path, &mut renderer, &out).await? {
            return Ok(());
        }
        renderer.finish();
        send(&out, &mut renderer).await;
        return Ok(());
    };

    let mut stopping = !*running.borrow_and_update();
    loop {
        if let ReadEnd::Stop = read_to_end(&mut file, path, &mut renderer, &out).await? {
            return Ok(());
        }
        if stopping {
            renderer.finish();
            send(&out, &mut renderer).await;
            return Ok(());
        }
        // Rotated: the path now names another file. Whatever was still written to the old one before the writer
        // switched has been read above; carry on at the start of the new one.
        match tokio::fs::metadata(path).await {
            Ok(meta) if identity(&meta) != current => {
                if let ReadEnd::Stop = read_to_end(&mut file, path, &mut renderer, &out).await? {
                    return Ok(());
                }
                if renderer.finish() == Flow::Done || !send(&out, &mut renderer).await {
                    return Ok(());
                }
                tracing::debug!(path = %path.display(), "log file rotated, following the new one");
                match tokio::fs::File::open(path).await {
                    Ok(next) => {
                        let meta = next.metadata().await.map_err(|e| LogError::io("stat", path, e))?;
                        current = identity(&meta);
                        file = next;
                        continue;
                    }
                    // Rotated again before it could be opened: the next event names the newest file.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io("open", path, e)),
                }
            }
            // Same file, or renamed away with no new file yet: wait for the next event.
            _ => {}
        }
        tokio::select! {
            changed = watcher.changed() => {
                changed.map_err(|source| LogError::Watch { path: path.to_path_buf(), source })?;
            }
            still = running.changed() => {
                // A dropped sender means nobody will say the container runs: treat it as stopped.
                stopping = still.is_err() || !*running.borrow_and_update();
            }
            () = out.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::io::Write as _;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn render(data: &[u8], opts: &LogOptions) -> String {
        let mut r = LogRenderer::new(opts);
        if !r.done {
            r.feed(data);
            r.finish();
        }
        String::from_utf8(r.take_output()).unwrap()
    }

    /// Renders as `stream_log` does without follow: tail offset first, then the renderer.
    fn render_file(data: &[u8], opts: &LogOptions) -> String {
        let start = match opts.tail_lines {
            Some(n) => tail_start(&mut Cursor::new(data), n as u64).unwrap() as usize,
            None => 0,
        };
        render(&data[start..], opts)
    }

    const LOG: &str = "\
2016-10-06T00:17:09.669794202Z stdout F line one
2016-10-06T00:17:10.000000000Z stderr P part a,
2016-10-06T00:17:10.100000000Z stderr P  part b,
2016-10-06T00:17:10.200000000Z stderr F  part c
2016-10-06T00:17:11.000000000Z stdout F line three
";

    #[test]
    fn parses_cri_records() {
        let r = parse_record(b"2016-10-06T00:17:09.669794202Z stdout P log content 1\n").unwrap();
        assert_eq!(r.timestamp, t("2016-10-06T00:17:09.669794202Z"));
        assert_eq!(r.stream, Stream::Stdout);
        assert!(r.partial);
        assert_eq!(r.content, b"log content 1");
        let r = parse_record(b"2016-10-06T00:17:09.669794203Z stderr F:x:y log content 2").unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(!r.partial);
        assert_eq!(r.content, b"log content 2");
        // Lenient timestamps and empty content.
        let r = parse_record(b"2016-10-06T02:17:09+02:00 stdout F \n").unwrap();
        assert_eq!(r.timestamp, t("2016-10-06T00:17:09Z"));
        assert_eq!(r.content, b"");
        let r = parse_record(b"2016-10-06T00:17:09Z stdout F\n").unwrap();
        assert_eq!(r.content, b"");
        // Content keeps its own spaces and bytes that are not UTF-8.
        let r = parse_record(b"2016-10-06T00:17:09Z stdout F  two  spaces \xff\n").unwrap();
        assert_eq!(r.content, b" two  spaces \xff");
    }

    #[test]
    fn rejects_malformed_records() {
        let reason = |l: &[u8]| match parse_record(l) {
            Err(LogError::Malformed { reason }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert_eq!(reason(b"garbage"), "timestamp is not found");
        assert_eq!(
            reason(b"yesterday stdout F x"),
            "unexpected timestamp format \"yesterday\""
        );
        assert_eq!(reason(b"2016-10-06T00:17:09Z stdout"), "stream type is not found");
        assert_eq!(
            reason(b"2016-10-06T00:17:09Z stdin F x"),
            "unexpected stream type \"stdin\""
        );
        assert_eq!(reason(b"2016-10-06T00:17:09Z stdout  x"), "log tag is not found");
        assert!(reason(b"{\"log\":1}").starts_with("invalid JSON log line"));
    }

    #[test]
    fn parses_docker_json_records() {
        let r = parse_record(br#"{"log":"hello \"you\"\n","stream":"stderr","time":"2016-10-06T00:17:09.6697942Z"}"#)
            .unwrap();
        assert_eq!(r.timestamp, t("2016-10-06T00:17:09.6697942Z"));
        assert_eq!(r.stream, Stream::Stderr);
        assert!(!r.partial);
        assert_eq!(r.content, b"hello \"you\"");
        let r = parse_record(br#"{"log":"piece","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#).unwrap();
        assert!(r.partial);
        assert_eq!(r.content, b"piece");
    }

    #[test]
    fn renders_and_joins_partial_records() {
        let out = render(LOG.as_bytes(), &LogOptions::default());
        assert_eq!(out, "line one\npart a, part b, part c\nline three\n");
    }

    #[test]
    fn timestamps_prefix_only_logical_lines() {
        let opts = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            render(LOG.as_bytes(), &opts),
            "2016-10-06T00:17:09.669794202Z line one\n\
             2016-10-06T00:17:10.000000000Z part a, part b, part c\n\
             2016-10-06T00:17:11.000000000Z line three\n"
        );
        // Docker JSON's variable-width time is printed fixed-width.
        let json = br#"{"log":"x\n","stream":"stdout","time":"2016-10-06T00:17:09.5Z"}"#;
        assert_eq!(
            render(&[json.as_slice(), b"\n"].concat(), &opts),
            "2016-10-06T00:17:09.500000000Z x\n"
        );
    }

    #[test]
    fn since_filters_by_record_time() {
        let opts = LogOptions {
            since: Some(t("2016-10-06T00:17:10.1Z")),
            ..LogOptions::default()
        };
        // The first piece of the joined line is older and dropped; the rest of that line stays.
        assert_eq!(render(LOG.as_bytes(), &opts), " part b, part c\nline three\n");
        let opts = LogOptions {
            since: Some(t("2016-10-06T00:17:11Z")),
            ..LogOptions::default()
        };
        assert_eq!(render(LOG.as_bytes(), &opts), "line three\n");
    }

    #[test]
    fn limit_bytes_truncates() {
        let opts = |n| LogOptions {
            limit_bytes: Some(n),
            ..LogOptions::default()
        };
        assert_eq!(render(LOG.as_bytes(), &opts(4)), "line");
        assert_eq!(render(LOG.as_bytes(), &opts(9)), "line one\n");
        assert_eq!(render(LOG.as_bytes(), &opts(12)), "line one\npar");
        assert_eq!(
            render(LOG.as_bytes(), &opts(1000)),
            "line one\npart a, part b, part c\nline three\n"
        );
    }

    #[test]
    fn unparsable_lines_are_skipped() {
        let data = "junk\n2016-10-06T00:17:09Z stdout F ok\n";
        assert_eq!(render(data.as_bytes(), &LogOptions::default()), "ok\n");
    }

    #[test]
    fn incomplete_last_line_is_rendered_at_the_end() {
        let data = "2016-10-06T00:17:09Z stdout F one\n2016-10-06T00:17:10Z stdout F tw";
        assert_eq!(render(data.as_bytes(), &LogOptions::default()), "one\ntw\n");
        // Fed in arbitrary pieces the result is the same.
        let mut r = LogRenderer::new(&LogOptions::default());
        for piece in data.as_bytes().chunks(7) {
            r.feed(piece);
        }
        assert_eq!(r.take_output(), b"one\n");
        r.finish();
        assert_eq!(r.take_output(), b"tw\n");
    }

    #[test]
    fn tail_counts_records_from_the_end() {
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        };
        assert_eq!(render_file(LOG.as_bytes(), &tail(1)), "line three\n");
        assert_eq!(render_file(LOG.as_bytes(), &tail(2)), " part c\nline three\n");
        assert_eq!(render_file(LOG.as_bytes(), &tail(0)), "");
        assert_eq!(
            render_file(LOG.as_bytes(), &tail(5)),
            "line one\npart a, part b, part c\nline three\n"
        );
        assert_eq!(
            render_file(LOG.as_bytes(), &tail(100)),
            "line one\npart a, part b, part c\nline three\n"
        );
        // An unfinished last line is not one of the N.
        let data = format!("{LOG}2016-10-06T00:17:12Z stdout F unfinished");
        assert_eq!(render_file(data.as_bytes(), &tail(1)), "line three\n");
    }

    #[test]
    fn tail_start_reads_backwards_across_blocks() {
        // Lines of varying length around the block size.
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for i in 0..3000 {
            starts.push(data.len() as u64);
            writeln!(data, "2016-10-06T00:17:09Z stdout F {i} {}", "x".repeat(i % 97)).unwrap();
        }
        let total = starts.len();
        for n in [1usize, 2, 10, 999, 1500, 2999, 3000, 5000] {
            let expect = if n >= total { 0 } else { starts[total - n] };
            assert_eq!(tail_start(&mut Cursor::new(&data), n as u64).unwrap(), expect, "n={n}");
        }
        assert_eq!(tail_start(&mut Cursor::new(&data), 0).unwrap(), data.len() as u64);
        assert_eq!(tail_start(&mut Cursor::new(Vec::<u8>::new()), 3).unwrap(), 0);
    }

    #[test]
    fn tail_and_since_together() {
        let opts = LogOptions {
            tail_lines: Some(3),
            since: Some(t("2016-10-06T00:17:10.2Z")),
            ..LogOptions::default()
        };
        assert_eq!(render_file(LOG.as_bytes(), &opts), " part c\nline three\n");
    }

    #[test]
    fn query_parsing() {
        let now = t("2024-01-01T00:01:00Z");
        let q = |s: &str| parse_query(form_pairs(s), now);
        assert_eq!(q("").unwrap(), LogOptions::default());
        let o = q("follow=true&tailLines=10&timestamps=1&limitBytes=500&sinceSeconds=60&container=app").unwrap();
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                tail_lines: Some(10),
                since: Some(t("2024-01-01T00:00:00Z")),
                timestamps: true,
                limit_bytes: Some(500),
            }
        );
        assert!(!q("follow=false").unwrap().follow);
        assert!(!q("follow=0").unwrap().follow);
        assert!(q("follow=").unwrap().follow);
        assert!(!q("follow=FALSE&follow=true").unwrap().follow, "first value counts");
        assert_eq!(q("tailLines=0").unwrap().tail_lines, Some(0));
        assert_eq!(
            q("sinceTime=2024-01-01T00:00:30Z").unwrap().since,
            Some(t("2024-01-01T00:00:30Z"))
        );
    }

    #[test]
    fn query_errors_in_kubernetes_words() {
        let now = t("2024-01-01T00:01:00Z");
        let q = |s: &str| parse_query(form_pairs(s), now).unwrap_err();
        assert_eq!(
            q("tailLines=-2"),
            "tailLines: Invalid value: -2: must be greater than or equal to 0"
        );
        assert_eq!(
            q("limitBytes=0"),
            "limitBytes: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(
            q("sinceSeconds=0"),
            "sinceSeconds: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(
            q("sinceSeconds=5&sinceTime=2024-01-01T00:00:30Z"),
            ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
        assert_eq!(
            q("tailLines=-1&limitBytes=-5"),
            "[tailLines: Invalid value: -1: must be greater than or equal to 0, \
             limitBytes: Invalid value: -5: must be greater than 0]"
        );
        assert_eq!(q("tailLines=ten"), "strconv.ParseInt: parsing \"ten\": invalid syntax");
        assert_eq!(
            q("limitBytes=99999999999999999999"),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert!(q("sinceTime=yesterday").starts_with("parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\""));
    }

    fn form_pairs(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn record(i: usize) -> String {
        format!("2024-01-01T00:00:{:02}.000000000Z stdout F line {i}\n", i % 60)
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> String {
        let mut all = Vec::new();
        while let Some(b) = rx.recv().await {
            all.extend_from_slice(&b);
        }
        String::from_utf8(all).unwrap()
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let (tx, _rx) = mpsc::channel(4);
        let (_run_tx, run_rx) = watch::channel(true);
        for follow in [false, true] {
            let opts = LogOptions {
                follow,
                ..LogOptions::default()
            };
            let err = stream_log(&path, &opts, tx.clone(), run_rx.clone()).await.unwrap_err();
            assert!(matches!(err, LogError::NotFound { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn reads_a_file_without_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let (_run_tx, run_rx) = watch::channel(true);
        let opts = LogOptions {
            tail_lines: Some(2),
            timestamps: true,
            ..LogOptions::default()
        };
        stream_log(&path, &opts, tx, run_rx).await.unwrap();
        assert_eq!(
            collect(rx).await,
            "2016-10-06T00:17:10.200000000Z  part c\n2016-10-06T00:17:11.000000000Z line three\n"
        );
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, format!("{}{}", record(0), record(1))).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (run_tx, run_rx) = watch::channel(true);
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        let reader = {
            let path = path.clone();
            tokio::spawn(async move { stream_log(&path, &opts, tx, run_rx).await })
        };
        // The tail comes first.
        let first = rx.recv().await.unwrap();
        assert_eq!(&first[..], b"line 1\n");

        // A writer appends, sometimes splitting a record across writes; the reader sees each line as it lands.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut got = String::new();
        for i in 2..40 {
            let line = record(i);
            let (a, b) = line.split_at(line.len() / 2);
            f.write_all(a.as_bytes()).unwrap();
            f.flush().unwrap();
            tokio::task::yield_now().await;
            f.write_all(b.as_bytes()).unwrap();
            f.flush().unwrap();
            let want = format!("line {i}\n");
            while !got.ends_with(&want) {
                let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                    .await
                    .expect("follow stalled")
                    .expect("stream ended early");
                got.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        }
        // Last lines written just before the container stops, then running flips: everything arrives, then the end.
        f.write_all(record(40).as_bytes()).unwrap();
        f.write_all(b"2024-01-01T00:00:41.000000000Z stdout F no newline")
            .unwrap();
        run_tx.send(false).unwrap();
        got.push_str(&collect(rx).await);
        reader.await.unwrap().unwrap();
        let want: String = (2..=40).map(|i| format!("line {i}\n")).collect::<String>() + "no newline\n";
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn follow_of_a_stopped_container_returns_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let (_run_tx, run_rx) = watch::channel(false);
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        stream_log(&path, &opts, tx, run_rx).await.unwrap();
        assert_eq!(collect(rx).await, "line one\npart a, part b, part c\nline three\n");
    }

    #[tokio::test]
    async fn follow_ends_when_the_client_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, record(0)).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (_run_tx, run_rx) = watch::channel(true);
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let reader = tokio::spawn(async move { stream_log(&path, &opts, tx, run_rx).await });
        assert_eq!(&rx.recv().await.unwrap()[..], b"line 0\n");
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("reader did not notice the client left")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn follow_carries_on_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, record(0)).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (run_tx, run_rx) = watch::channel(true);
        let opts = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let reader = {
            let path = path.clone();
            tokio::spawn(async move { stream_log(&path, &opts, tx, run_rx).await })
        };
        assert_eq!(&rx.recv().await.unwrap()[..], b"line 0\n");
        // Rotate as the kubelet does: rename, then the writer reopens a fresh file at the same path.
        std::fs::rename(&path, dir.path().join("0.log.20240101-000000")).unwrap();
        std::fs::write(&path, record(1)).unwrap();
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("rotation not followed")
            .unwrap();
        assert_eq!(&chunk[..], b"line 1\n");
        run_tx.send(false).unwrap();
        assert_eq!(collect(rx).await, "");
        reader.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn limit_bytes_ends_a_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, format!("{}{}", record(0), record(1))).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let (_run_tx, run_rx) = watch::channel(true);
        let opts = LogOptions {
            follow: true,
            limit_bytes: Some(10),
            ..LogOptions::default()
        };
        stream_log(&path, &opts, tx, run_rx).await.unwrap();
        assert_eq!(collect(rx).await, "line 0\nlin");
    }
}
