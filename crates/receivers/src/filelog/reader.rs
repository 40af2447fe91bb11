//! Reading one file from an offset: split into lines with memchr, cut over-long lines into
//! `max_log_size` pieces, hold an unterminated last line until it is finished or has been
//! quiet for `force_flush_period`.
//!
//! Invariant: `offset` is always at a token boundary — the byte after the last token handed
//! out. An unterminated tail is never consumed unless it is force-flushed, so a restart
//! re-reads it whole.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const READ_CHUNK: usize = 64 * 1024;

/// How tokens are cut and cleaned; the same for every file of a receiver.
#[derive(Debug, Clone)]
pub(crate) struct SplitOptions {
    pub max_log_size: usize,
    pub force_flush_period: Duration,
    pub preserve_leading_whitespaces: bool,
    pub preserve_trailing_whitespaces: bool,
}

/// A line ready to become an entry.
#[derive(Debug, PartialEq)]
pub(crate) struct Line {
    pub text: String,
}

/// Where a file's reading stands.
#[derive(Debug, Default)]
pub(crate) struct ReadPosition {
    /// The byte after the last token handed out.
    pub offset: u64,
    /// Tokens handed out so far, empty ones included (Stanza's record number).
    pub record_num: u64,
    /// Where the unterminated tail started and how long it was last time, and since when
    /// it has been like that.
    tail: Option<(u64, usize, Instant)>,
}

impl ReadPosition {
    pub fn at(offset: u64, record_num: u64) -> Self {
        ReadPosition {
            offset,
            record_num,
            tail: None,
        }
    }
}

/// Why a read stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// Reached the end of the file (an unterminated tail may be held back).
    Eof,
    /// `max_lines` lines are ready; call again for more.
    Full,
}

/// Reads lines from `pos.offset` until EOF or until `max_lines` more lines were appended to
/// `lines`.
/// `scratch` is a buffer reused across files to avoid per-read allocation.
pub(crate) fn read_lines(
    file: &File,
    pos: &mut ReadPosition,
    opts: &SplitOptions,
    max_lines: usize,
    scratch: &mut Vec<u8>,
    lines: &mut Vec<Line>,
) -> std::io::Result<ReadEnd> {
    scratch.clear();
    let limit = lines.len() + max_lines;
    // scratch[0] is at file offset pos.offset; `start` is the first unconsumed byte and
    // `scanned` how far we already looked for a newline.
    let mut start = 0usize;
    let mut scanned = 0usize;
    loop {
        let filled = scratch.len();
        scratch.resize(filled + READ_CHUNK, 0);
        let n = loop {
            match file.read_at(&mut scratch[filled..], pos.offset + filled as u64) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                scratch.truncate(filled);
                consume(pos, scratch, &mut start, &mut scanned);
                return Err(e);
            }
        };
        scratch.truncate(filled + n);
        while let Some(i) = memchr::memchr(b'\n', &scratch[scanned..]) {
            let end = scanned + i;
            emit_token(&scratch[start..end], opts, pos, lines);
            start = end + 1;
            scanned = start;
            if lines.len() >= limit {
                consume(pos, scratch, &mut start, &mut scanned);
                return Ok(ReadEnd::Full);
            }
        }
        scanned = scratch.len();
        // A line longer than max_log_size is cut into pieces; the rest continues as the
        // next token.
        while scratch.len() - start >= opts.max_log_size {
            emit_piece(&scratch[start..start + opts.max_log_size], opts, pos, lines);
            start += opts.max_log_size;
        }
        if n == 0 {
            let tail = scratch.len() - start;
            let tail_at = pos.offset + start as u64;
            if tail > 0 && tail_is_due(pos, tail_at, tail, opts.force_flush_period) {
                emit_token(&scratch[start..], opts, pos, lines);
                start = scratch.len();
            } else if tail == 0 {
                pos.tail = None;
            }
            consume(pos, scratch, &mut start, &mut scanned);
            return Ok(ReadEnd::Eof);
        }
        if lines.len() >= limit {
            consume(pos, scratch, &mut start, &mut scanned);
            return Ok(ReadEnd::Full);
        }
        consume(pos, scratch, &mut start, &mut scanned);
    }
}

/// Drops consumed bytes from the front of `scratch` and advances the offset past them.
fn consume(pos: &mut ReadPosition, scratch: &mut Vec<u8>, start: &mut usize, scanned: &mut usize) {
    if *start > 0 {
        scratch.drain(..*start);
        pos.offset += *start as u64;
        *scanned -= *start;
        *start = 0;
    }
}

/// True when the unterminated tail at `at` of `len` bytes has been unchanged for the flush
/// period.
fn tail_is_due(pos: &mut ReadPosition, at: u64, len: usize, period: Duration) -> bool {
    if period.is_zero() {
        return false;
    }
    match pos.tail {
        Some((seen_at, seen_len, since)) if seen_at == at && seen_len == len => {
            since.elapsed() >= period
        }
        _ => {
            pos.tail = Some((at, len, Instant::now()));
            false
        }
    }
}

/// A newline-terminated token: drop the `\r` of a CRLF ending, then cut it to size.
fn emit_token(token: &[u8], opts: &SplitOptions, pos: &mut ReadPosition, lines: &mut Vec<Line>) {
    let token = token.strip_suffix(b"\r").unwrap_or(token);
    if token.len() <= opts.max_log_size {
        emit_piece(token, opts, pos, lines);
    } else {
        for piece in token.chunks(opts.max_log_size) {
            emit_piece(piece, opts, pos, lines);
        }
    }
}

/// One token: trimmed of surrounding whitespace (unless preserved), counted, and kept if
/// anything is left. Invalid UTF-8 becomes U+FFFD, as Stanza's default decoder does.
fn emit_piece(piece: &[u8], opts: &SplitOptions, pos: &mut ReadPosition, lines: &mut Vec<Line>) {
    pos.record_num += 1;
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut text = piece;
    if !opts.preserve_leading_whitespaces {
        let skip = text.iter().take_while(|b| is_space(b)).count();
        text = &text[skip..];
    }
    if !opts.preserve_trailing_whitespaces {
        let keep = text.len() - text.iter().rev().take_while(|b| is_space(b)).count();
        text = &text[..keep];
    }
    if text.is_empty() {
        return;
    }
    let text = match std::str::from_utf8(text) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(text).into_owned(),
    };
    lines.push(Line { text });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn opts(max: usize) -> SplitOptions {
        SplitOptions {
            max_log_size: max,
            force_flush_period: Duration::ZERO,
            preserve_leading_whitespaces: false,
            preserve_trailing_whitespaces: false,
        }
    }

    fn read_all(content: &[u8], o: &SplitOptions) -> (Vec<String>, ReadPosition) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let mut pos = ReadPosition::default();
        let mut lines = Vec::new();
        let mut scratch = Vec::new();
        while read_lines(&f, &mut pos, o, 3, &mut scratch, &mut lines).unwrap() == ReadEnd::Full {}
        (lines.into_iter().map(|l| l.text).collect(), pos)
    }

    #[test]
    fn splits_lines_and_holds_the_tail() {
        let (lines, pos) = read_all(b"a\r\nb\n\n  c  \nd\ntail", &opts(100));
        assert_eq!(lines, ["a", "b", "c", "d"]);
        assert_eq!(pos.offset, 14, "offset stops before the unterminated tail");
        assert_eq!(pos.record_num, 5, "the empty line still counts");
    }

    #[test]
    fn cuts_long_lines() {
        let (lines, _) = read_all(b"abcdefghij\nxy\n", &opts(4));
        assert_eq!(lines, ["abcd", "efgh", "ij", "xy"]);
        let (lines, pos) = read_all(b"abcdefghij", &opts(4));
        assert_eq!(lines, ["abcd", "efgh"], "an unterminated long line too");
        assert_eq!(pos.offset, 8);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let (lines, _) = read_all(b"ok\n\xff\xfebad\n", &opts(100));
        assert_eq!(lines, ["ok", "\u{FFFD}\u{FFFD}bad"]);
    }

    #[test]
    fn flushes_a_quiet_tail() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"one\npartial").unwrap();
        let o = SplitOptions {
            force_flush_period: Duration::from_millis(30),
            ..opts(100)
        };
        let (mut pos, mut scratch, mut lines) = (ReadPosition::default(), Vec::new(), Vec::new());
        read_lines(&f, &mut pos, &o, 100, &mut scratch, &mut lines).unwrap();
        assert_eq!(lines.len(), 1);
        std::thread::sleep(Duration::from_millis(40));
        read_lines(&f, &mut pos, &o, 100, &mut scratch, &mut lines).unwrap();
        assert_eq!(lines[1].text, "partial");
        assert_eq!(pos.offset, 11);
    }

    proptest! {
        /// Reading in any batch size yields exactly the non-blank trimmed lines, and the
        /// offset ends after the last newline.
        #[test]
        fn matches_a_simple_model(content in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b' '), Just(b'a'), Just(b'b')], 0..300)) {
            let (lines, pos) = read_all(&content, &opts(1 << 20));
            let last_newline = content.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let want: Vec<String> = content[..last_newline]
                .split(|b| *b == b'\n')
                .take(content[..last_newline].iter().filter(|b| **b == b'\n').count())
                .map(|l| String::from_utf8(l.to_vec()).unwrap().trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            prop_assert_eq!(lines, want);
            prop_assert_eq!(pos.offset, last_newline as u64);
        }
    }
}
