//! Reading one file from an offset: cut it into tokens (see `split`), cut over-long tokens
//! at `max_log_size`, hold an unterminated last token until it is finished or has been
//! quiet for `force_flush_period`.
//!
//! Invariant: `offset` is always at a token boundary — the byte after the last token handed
//! out. An unterminated tail is never consumed unless it is force-flushed, so a restart
//! re-reads it whole.

use super::split::{Decode, Split, Trim};
use centimane_core::Value;
use std::io::Read;
use std::time::{Duration, Instant};

const READ_CHUNK: usize = 64 * 1024;

/// How tokens are cut and turned into bodies; the same for every file of a receiver.
#[derive(Debug, Clone)]
pub(crate) struct SplitOptions {
    pub split: Split,
    pub decode: Decode,
    pub trim: Trim,
    pub max_log_size: usize,
    /// `max_log_size_behavior: truncate`: keep the first piece of an over-long token and
    /// drop the rest up to the next delimiter.
    pub truncate: bool,
    pub force_flush_period: Duration,
}

/// A token ready to become an entry.
#[derive(Debug, PartialEq)]
pub(crate) struct Line {
    pub body: Value,
    /// Byte offset of the token in the file.
    pub offset: u64,
    /// 1-based position of the token in the file, empty tokens included.
    pub record_num: u64,
}

/// Where a file's reading stands.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadPosition {
    /// The byte after the last token handed out.
    pub offset: u64,
    /// Tokens handed out so far, empty ones included (Stanza's record number).
    pub record_num: u64,
    /// Truncate mode: the rest of an over-long token is being skipped.
    skipping: bool,
    /// Where the unterminated tail started, how long it was, and since when it has been
    /// like that.
    tail: Option<(u64, usize, Instant)>,
}

impl ReadPosition {
    pub fn at(offset: u64, record_num: u64) -> Self {
        ReadPosition {
            offset,
            record_num,
            ..ReadPosition::default()
        }
    }
}

/// Why a read stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// Reached the end of the data (an unterminated tail may be held back).
    Eof,
    /// `max_lines` lines are ready; call again for more.
    Full,
}

/// Reads tokens from `source` (positioned at `pos.offset`) until its end or until
/// `max_lines` more lines were appended to `lines`. `scratch` is a buffer reused across
/// files. With `finish`, an unterminated tail at the end is emitted at once (a gzip member
/// is complete when it decodes).
pub(crate) fn read_lines(
    source: &mut dyn Read,
    pos: &mut ReadPosition,
    opts: &SplitOptions,
    max_lines: usize,
    scratch: &mut Vec<u8>,
    lines: &mut Vec<Line>,
    finish: bool,
) -> std::io::Result<ReadEnd> {
    let limit = lines.len() + max_lines;
    let mut eof = false;
    // scratch[..filled] is the data read, scratch[0] at pos.offset (uncompressed files);
    // consumed bytes are moved out. The buffer keeps its length between calls, so its
    // bytes are zeroed once, when it grows, not before every read.
    let mut filled = 0usize;
    loop {
        if !eof {
            if scratch.len() < filled + READ_CHUNK {
                scratch.resize(filled + READ_CHUNK, 0);
            }
            let n = loop {
                match source.read(&mut scratch[filled..filled + READ_CHUNK]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match n {
                Ok(n) => {
                    filled += n;
                    eof = n == 0;
                }
                Err(e) => return Err(e),
            }
        }
        let mut start = 0usize;
        while lines.len() < limit {
            let data = &scratch[start..filled];
            if pos.skipping {
                // Truncate mode: drop the rest of an over-long token up to its delimiter.
                match opts.split.find(data, opts.max_log_size) {
                    Some(found) => {
                        start += found.next;
                        pos.skipping = false;
                        continue;
                    }
                    None => {
                        start = filled;
                        break;
                    }
                }
            }
            if let Some(found) = opts.split.find(data, opts.max_log_size) {
                let token = &data[found.token.clone()];
                let token = if matches!(opts.split, Split::Newline { unit: 1, .. }) {
                    token.strip_suffix(b"\r").unwrap_or(token)
                } else {
                    token
                };
                emit(token, pos.offset + start as u64, opts, pos, lines);
                start += found.next;
                continue;
            }
            if data.len() >= opts.max_log_size {
                // No delimiter within max_log_size: cut a piece; the rest continues.
                emit(
                    &data[..opts.max_log_size],
                    pos.offset + start as u64,
                    opts,
                    pos,
                    lines,
                );
                start += opts.max_log_size;
                pos.skipping = opts.truncate;
                continue;
            }
            if eof && !data.is_empty() {
                let tail_at = pos.offset + start as u64;
                if finish || tail_is_due(pos, tail_at, data.len(), opts.force_flush_period) {
                    let range = opts.split.flush_range(data);
                    emit(&data[range], tail_at, opts, pos, lines);
                    start = filled;
                }
            }
            break;
        }
        if start > 0 {
            scratch.copy_within(start..filled, 0);
            filled -= start;
            pos.offset += start as u64;
        }
        if lines.len() >= limit {
            return Ok(ReadEnd::Full);
        }
        if eof {
            if filled == 0 {
                pos.tail = None;
            }
            return Ok(ReadEnd::Eof);
        }
    }
}

/// True when the unterminated tail at `at` of `len` bytes has been unchanged for the flush
/// period (the timer restarts whenever the tail moves or grows).
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

/// One token: cut to `max_log_size` pieces (or truncated), counted, decoded, and kept if
/// anything is left after trimming.
fn emit(
    token: &[u8],
    offset: u64,
    opts: &SplitOptions,
    pos: &mut ReadPosition,
    lines: &mut Vec<Line>,
) {
    let pieces = token.len().div_ceil(opts.max_log_size).max(1);
    let pieces = if opts.truncate { 1 } else { pieces };
    for i in 0..pieces {
        let from = i * opts.max_log_size;
        let piece = &token[from..token.len().min(from + opts.max_log_size)];
        pos.record_num += 1;
        let trim = if opts.split.trims() {
            opts.trim
        } else {
            Trim {
                leading: false,
                trailing: false,
            }
        };
        if let Some(body) = opts.decode.body(piece, trim) {
            lines.push(Line {
                body,
                offset: offset + from as u64,
                record_num: pos.record_num,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts(max: usize) -> SplitOptions {
        SplitOptions {
            split: Split::Newline {
                newline: vec![b'\n'],
                unit: 1,
            },
            decode: Decode::Utf8,
            trim: Trim {
                leading: true,
                trailing: true,
            },
            max_log_size: max,
            truncate: false,
            force_flush_period: Duration::ZERO,
        }
    }

    fn read_all(content: &[u8], o: &SplitOptions) -> (Vec<String>, ReadPosition) {
        let mut pos = ReadPosition::default();
        let mut lines = Vec::new();
        let mut scratch = Vec::new();
        loop {
            let mut src = &content[pos.offset as usize..];
            if read_lines(&mut src, &mut pos, o, 3, &mut scratch, &mut lines, false).unwrap()
                == ReadEnd::Eof
            {
                break;
            }
        }
        (lines.into_iter().map(|l| l.body.to_text()).collect(), pos)
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
    fn truncates_long_lines() {
        let o = SplitOptions {
            truncate: true,
            ..opts(4)
        };
        let (lines, _) = read_all(b"abcdefghij\nxy\nlonglonglong\nz\n", &o);
        assert_eq!(lines, ["abcd", "xy", "long", "z"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let (lines, _) = read_all(b"ok\n\xff\xfebad\n", &opts(100));
        assert_eq!(lines, ["ok", "\u{FFFD}\u{FFFD}bad"]);
    }

    #[test]
    fn records_offsets_and_numbers() {
        let mut pos = ReadPosition::default();
        let (mut lines, mut scratch) = (Vec::new(), Vec::new());
        let mut src: &[u8] = b"a\n\nbb\n";
        read_lines(
            &mut src,
            &mut pos,
            &opts(100),
            10,
            &mut scratch,
            &mut lines,
            false,
        )
        .unwrap();
        let got: Vec<(u64, u64)> = lines.iter().map(|l| (l.offset, l.record_num)).collect();
        assert_eq!(got, [(0, 1), (3, 3)]);
    }

    #[test]
    fn flushes_a_quiet_tail() {
        let content = b"one\npartial";
        let o = SplitOptions {
            force_flush_period: Duration::from_millis(30),
            ..opts(100)
        };
        let (mut pos, mut scratch, mut lines) = (ReadPosition::default(), Vec::new(), Vec::new());
        let mut src = &content[..];
        read_lines(&mut src, &mut pos, &o, 100, &mut scratch, &mut lines, false).unwrap();
        assert_eq!(lines.len(), 1);
        let mut src = &content[pos.offset as usize..];
        read_lines(&mut src, &mut pos, &o, 100, &mut scratch, &mut lines, false).unwrap();
        assert_eq!(lines.len(), 1, "not before the flush period");
        std::thread::sleep(Duration::from_millis(40));
        let mut src = &content[pos.offset as usize..];
        read_lines(&mut src, &mut pos, &o, 100, &mut scratch, &mut lines, false).unwrap();
        assert_eq!(lines[1].body, Value::from("partial"));
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

        /// Long lines are cut, never lost: the pieces concatenate to the line.
        #[test]
        fn long_lines_lose_nothing(line in "[a-z]{0,50}", max in 1usize..20) {
            let content = format!("{line}\n");
            let (lines, _) = read_all(content.as_bytes(), &opts(max));
            prop_assert_eq!(lines.concat(), line);
        }
    }
}
