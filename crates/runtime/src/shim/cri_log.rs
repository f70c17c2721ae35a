//! The CRI log writer: turns a container's stdout/stderr bytes into Kubernetes' log records,
//! `<RFC3339Nano> <stream> <P|F> <content>\n` (reference/pod-behaviour.md §9.3), the format `kubectl logs` reads.
//!
//! Lines longer than [`MAX_LINE`] are split into partial (`P`) records as containerd does; output without a final
//! newline is kept until the newline arrives or the stream ends.

use std::io::Write;

/// containerd's default maximum line size before a record is split (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One stream's pending bytes (the tail of the last read that had no newline yet).
#[derive(Debug)]
pub struct LineBuffer {
    stream: Stream,
    pending: Vec<u8>,
}

/// A fixed-width RFC 3339 timestamp with nanoseconds in UTC, as the CRI writes them.
pub fn timestamp(ts: jiff::Timestamp) -> String {
    let dt = jiff::tz::Offset::UTC.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    )
}

impl LineBuffer {
    pub fn new(stream: Stream) -> Self {
        LineBuffer {
            stream,
            pending: Vec::new(),
        }
    }

    /// Appends `data` and writes every complete record to `out`.
    pub fn push(&mut self, data: &[u8], now: jiff::Timestamp, out: &mut impl Write) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        let ts = timestamp(now);
        let mut start = 0;
        let mut records = Vec::new();
        loop {
            let rest = &self.pending[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) if i <= MAX_LINE => {
                    record(&mut records, &ts, self.stream, 'F', &rest[..i]);
                    start += i + 1;
                }
                _ if rest.len() > MAX_LINE => {
                    record(&mut records, &ts, self.stream, 'P', &rest[..MAX_LINE]);
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        self.pending.drain(..start);
        if !records.is_empty() {
            out.write_all(&records)?;
        }
        Ok(())
    }

    /// Writes what is left when the stream ended (a last line without newline) as a full record.
    pub fn finish(&mut self, now: jiff::Timestamp, out: &mut impl Write) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        record(&mut records, &timestamp(now), self.stream, 'F', &self.pending);
        self.pending.clear();
        out.write_all(&records)
    }
}

fn record(out: &mut Vec<u8>, ts: &str, stream: Stream, tag: char, content: &[u8]) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.push(b' ');
    out.push(tag as u8);
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> jiff::Timestamp {
        jiff::Timestamp::new(1_475_713_029, 669_794_202).unwrap()
    }

    #[test]
    fn timestamps_are_fixed_width() {
        assert_eq!(timestamp(ts()), "2016-10-06T00:17:09.669794202Z");
        assert_eq!(
            timestamp(jiff::Timestamp::new(0, 0).unwrap()),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn full_lines_partial_tails_and_long_lines() {
        let mut b = LineBuffer::new(Stream::Stdout);
        let mut out = Vec::new();
        b.push(b"one\ntw", ts(), &mut out).unwrap();
        assert_eq!(out, b"2016-10-06T00:17:09.669794202Z stdout F one\n");
        out.clear();
        b.push(b"o\n", ts(), &mut out).unwrap();
        assert_eq!(out, b"2016-10-06T00:17:09.669794202Z stdout F two\n");
        out.clear();
        let long = vec![b'x'; MAX_LINE + 10];
        b.push(&long, ts(), &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(" stdout P "));
        assert_eq!(text.lines().count(), 1);
        out.clear();
        b.finish(ts(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim_end().len(), 31 + 9 + 10);
        let mut e = LineBuffer::new(Stream::Stderr);
        let mut out = Vec::new();
        e.push(b"oops\n", ts(), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(" stderr F oops"));
    }
}
