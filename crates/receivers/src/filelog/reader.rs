//! Reading one file from an offset: cut it into tokens (see `split`), cut over-long tokens
//! at `max_log_size`, hold an unterminated last token until it is finished or has been
//! quiet for `force_flush_period`.
//!
//! Invariant: `offset` is always at a token boundary — the byte after the last token handed
//! out. An unterminated tail is never consumed unless it is force-flushed, so a restart
//! re-reads it whole.

use super::split::{Decode, Split, Trim};
use centimane_core::value::{self, Value};
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

/// Bytes read from a file and not yet cut into tokens, kept between [`read_lines`] calls
/// so that a batch ending mid-chunk does not read the rest of the chunk again.
///
/// Invariants: `bytes[start..filled]` are the file's bytes from the reading position's
/// `offset` on, and the source read from stands right after them. Whoever moves the
/// source or the position otherwise (a seek, another file) must [`ReadBuffer::forget`]
/// them first. `bytes[..valid_to]` is valid UTF-8 (`valid_to <= filled`).
#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    bytes: Vec<u8>,
    start: usize,
    filled: usize,
    valid_to: usize,
}

impl ReadBuffer {
    /// Drops the pending bytes: the next read starts where the source stands.
    pub fn forget(&mut self) {
        self.start = 0;
        self.filled = 0;
        self.valid_to = 0;
    }

    /// The bytes known to be valid UTF-8, as text; byte `i` of the buffer is byte `i` of
    /// the text.
    fn valid_text(&self) -> &str {
        // SAFETY: `bytes[..valid_to]` was validated (see `read_lines`) and has not been
        // written since: a read writes from `filled` (>= `valid_to`) on, a compaction
        // moves validated bytes to the front with `valid_to` (only from a character
        // boundary), and `forget` resets it.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..self.valid_to]) }
    }
}

/// Reads tokens from `source` until its end or until `max_lines` more lines were appended
/// to `lines`. `buf`'s pending bytes come first (see [`ReadBuffer`]); with none pending,
/// `source` must stand at `pos.offset`. With `finish`, an unterminated tail at the end is
/// emitted at once (a gzip member is complete when it decodes).
pub(crate) fn read_lines(
    source: &mut dyn Read,
    pos: &mut ReadPosition,
    opts: &SplitOptions,
    max_lines: usize,
    buf: &mut ReadBuffer,
    lines: &mut Vec<Line>,
    finish: bool,
) -> std::io::Result<ReadEnd> {
    let limit = lines.len() + max_lines;
    let mut eof = false;
    loop {
        // Cut what is pending; `start` is where the next token begins, at `pos.offset`.
        let mut start = buf.start;
        let filled = buf.filled;
        let valid = buf.valid_text();
        while lines.len() < limit {
            let data = &buf.bytes[start..filled];
            let at = pos.offset + (start - buf.start) as u64;
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
                let from = start + found.token.start;
                let text = valid.get(from..from + token.len());
                emit(token, text, at, opts, pos, lines);
                start += found.next;
                continue;
            }
            if data.len() >= opts.max_log_size {
                // No delimiter within max_log_size: cut a piece; the rest continues.
                let text = valid.get(start..start + opts.max_log_size);
                emit(&data[..opts.max_log_size], text, at, opts, pos, lines);
                start += opts.max_log_size;
                pos.skipping = opts.truncate;
                continue;
            }
            if eof
                && !data.is_empty()
                && (finish || tail_is_due(pos, at, data.len(), opts.force_flush_period))
            {
                let range = opts.split.flush_range(data);
                let text = valid.get(start + range.start..start + range.end);
                emit(&data[range], text, at, opts, pos, lines);
                start = filled;
            }
            break;
        }
        pos.offset += (start - buf.start) as u64;
        buf.start = start;
        if lines.len() >= limit {
            return Ok(ReadEnd::Full);
        }
        if eof {
            if buf.start == buf.filled {
                pos.tail = None;
            }
            return Ok(ReadEnd::Eof);
        }
        // No complete token is pending: move the pending bytes to the front (they are
        // less than a token) and read more after them; what of them was validated stays
        // so if they start at a character boundary. A long line being gathered stays at
        // the front, moved and validated once. The buffer keeps its length between calls,
        // so its bytes are zeroed once, when it grows, not before every read.
        if buf.start > 0 {
            let boundary = buf.start == buf.valid_to
                || buf
                    .bytes
                    .get(buf.start)
                    .is_some_and(|b| (*b as i8) >= -0x40);
            buf.valid_to = if buf.start <= buf.valid_to && boundary {
                buf.valid_to - buf.start
            } else {
                0
            };
            buf.bytes.copy_within(buf.start..buf.filled, 0);
            buf.filled -= buf.start;
            buf.start = 0;
        }
        if buf.bytes.len() < buf.filled + READ_CHUNK {
            buf.bytes.resize(buf.filled + READ_CHUNK, 0);
        }
        let n = loop {
            match source.read(&mut buf.bytes[buf.filled..buf.filled + READ_CHUNK]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        buf.filled += n;
        eof = n == 0;
        if opts.decode.is_utf8() {
            // One validation per read instead of one per line, from where the last one
            // ended (a character boundary). What follows an invalid or cut sequence is
            // validated line by line, as before, until the next read.
            let from = buf.valid_to;
            buf.valid_to += match simdutf8::compat::from_utf8(&buf.bytes[from..buf.filled]) {
                Ok(_) => buf.filled - from,
                Err(e) => e.valid_up_to(),
            };
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
/// anything is left after trimming. `text` is the token as text when it is known to be
/// valid UTF-8.
fn emit(
    token: &[u8],
    text: Option<&str>,
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
        let offset = offset + from as u64;
        match text.and_then(|t| t.get(from..from + piece.len())) {
            Some(piece) => {
                if let Some(body) = opts.decode.body_text(piece, trim) {
                    push_text_line(lines, body, offset, pos.record_num);
                }
            }
            None => {
                if let Some(body) = opts.decode.body(piece, trim) {
                    lines.push(Line {
                        body,
                        offset,
                        record_num: pos.record_num,
                    });
                }
            }
        }
    }
}

/// Pushes the line of body `text` with its string made straight in the new slot: a `Line`
/// assembled on the stack was copied with wider loads than the stores that had just built
/// its body, a store-forwarding stall at every line (a third of `emit` in `perf annotate`).
#[inline(always)]
fn push_text_line(lines: &mut Vec<Line>, text: &str, offset: u64, record_num: u64) {
    lines.reserve(1);
    let len = lines.len();
    // SAFETY: the slot at `len` was reserved above; all its fields are written before the
    // length grows to include it.
    unsafe {
        let slot = lines.as_mut_ptr().add(len);
        (&raw mut (*slot).body).write(Value::Str(value::text(text)));
        (&raw mut (*slot).offset).write(offset);
        (&raw mut (*slot).record_num).write(record_num);
        lines.set_len(len + 1);
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
        read_in_batches(content, o, &[3], &[false], usize::MAX)
    }

    /// A source that hands out at most `most` bytes per read, so tokens span reads.
    struct Trickle<'a> {
        data: &'a [u8],
        most: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.len().min(out.len()).min(self.most);
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Reads `content` to its end in batches of `sizes[i % len]` lines, at most `most`
    /// bytes per read; before batch `i`, with `restart[i % len]`, the pending bytes are
    /// forgotten and the source reopened at the position's offset (as a new poll does),
    /// otherwise reading carries on.
    fn read_in_batches(
        content: &[u8],
        o: &SplitOptions,
        sizes: &[usize],
        restart: &[bool],
        most: usize,
    ) -> (Vec<String>, ReadPosition) {
        let mut pos = ReadPosition::default();
        let mut lines = Vec::new();
        let mut buf = ReadBuffer::default();
        let mut src = Trickle {
            data: content,
            most,
        };
        for i in 0.. {
            if restart[i % restart.len()] {
                buf.forget();
                src.data = &content[pos.offset as usize..];
            }
            let size = sizes[i % sizes.len()];
            if read_lines(&mut src, &mut pos, o, size, &mut buf, &mut lines, false).unwrap()
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
        let (mut lines, mut scratch) = (Vec::new(), ReadBuffer::default());
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
        let (mut pos, mut scratch, mut lines) =
            (ReadPosition::default(), ReadBuffer::default(), Vec::new());
        let mut src = &content[..];
        read_lines(&mut src, &mut pos, &o, 100, &mut scratch, &mut lines, false).unwrap();
        assert_eq!(lines.len(), 1);
        scratch.forget();
        let mut src = &content[pos.offset as usize..];
        read_lines(&mut src, &mut pos, &o, 100, &mut scratch, &mut lines, false).unwrap();
        assert_eq!(lines.len(), 1, "not before the flush period");
        std::thread::sleep(Duration::from_millis(40));
        scratch.forget();
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

        /// Carrying pending bytes from batch to batch, or forgetting them and reading
        /// again from the offset, in any mix, batch sizes and read sizes, reads what one
        /// pass does, with long lines cut and truncated alike.
        #[test]
        fn carrying_over_or_rereading_agree(
            // 0xC3 0xA9 is "é"; alone, or 0xFF, they are invalid UTF-8.
            content in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'a'), Just(b'b'), Just(0xC3), Just(0xA9), Just(0xFF)], 0..400),
            sizes in proptest::collection::vec(1usize..8, 1..5),
            restart in proptest::collection::vec(any::<bool>(), 1..5),
            max in prop_oneof![Just(1usize << 20), 1usize..12],
            truncate in any::<bool>(),
            most in prop_oneof![Just(usize::MAX), 1usize..16],
        ) {
            let o = SplitOptions { truncate, ..opts(max) };
            let once = read_in_batches(&content, &o, &[usize::MAX], &[false], usize::MAX);
            let batched = read_in_batches(&content, &o, &sizes, &restart, most);
            prop_assert_eq!(&batched.0, &once.0);
            prop_assert_eq!(batched.1.offset, once.1.offset);
            // A piece of exactly `max` bytes whose delimiter (or CR LF) is not read yet is
            // cut there, and the delimiter after it ends an empty record of its own (not
            // kept, but counted); read together, the delimiter ends the piece. Only the
            // record count can tell, and only when lines can be cut.
            if max > content.len() {
                prop_assert_eq!(batched.1.record_num, once.1.record_num);
            }
            if max > content.len() {
                // Uncut lines: each is decoded as its bytes alone would be.
                let ended = &content[..once.1.offset as usize];
                let want: Vec<String> = ended
                    .split(|b| *b == b'\n')
                    .take(ended.iter().filter(|b| **b == b'\n').count())
                    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                    .map(|l| l.trim_ascii_start().trim_ascii_end())
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .filter(|l| !l.is_empty())
                    .collect();
                prop_assert_eq!(&once.0, &want);
            }
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
