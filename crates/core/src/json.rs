//! A direct JSON reader for the common case of [`Value::from_json_str`]: a log line that
//! holds a JSON object.
//!
//! It reads the bytes straight into [`Value`]s (keys and short strings inline in [`Text`],
//! a map built once at its final size from entries kept on a local stack) without serde's
//! visitor machinery and thread-local state. It gives up (`None`) on anything it does not
//! handle exactly as serde_json does: syntax errors, nesting deeper than serde_json allows,
//! numbers whose mapping has corner cases (`-0`, integers beyond 64 bits, out-of-range
//! doubles) and lone surrogate escapes. The caller then parses with serde_json, which stays
//! the reference for results and error messages; `tests` check the two agree.

use crate::value::{
    INLINE_MAX, Map, NumberMode, TOP_LEVEL_ROOM, Text, Value, clone_text_into, inline_text, text,
};
use std::cell::Cell;

/// serde_json refuses deeper nesting (its recursion limit); giving up first lets it report.
const MAX_DEPTH: usize = 127;

thread_local! {
    /// The map-entry stack, kept between parses so it is allocated once per thread.
    static STACK: Cell<Vec<(Text, Value)>> = const { Cell::new(Vec::new()) };
    /// The key layout of recent top-level objects on this thread (see [`Shape`]).
    static SHAPE: Cell<Shape> = const { Cell::new(Shape::NONE) };
}

/// Log lines of one source mostly carry the same keys in the same order. The last such
/// layout's keys are kept; a top-level object with exactly these keys in this order has no
/// duplicates, so its map is built without comparing its keys with each other.
///
/// `score` keeps one odd line from replacing a layout that keeps matching: hits raise it
/// (up to a cap), misses lower it, and the layout is replaced only once it fell below
/// zero, so alternating layouts cost a rebuild every few lines at most.
#[derive(Default)]
struct Shape {
    /// Distinct keys, or none.
    keys: Vec<LayoutKey>,
    score: i8,
    /// Keys an object of this layout was last merged after (a file's attributes), none of
    /// which is one of the layout's: the next object merged after the same keys is known to
    /// add only new ones without comparing each of its keys with each of them.
    beside: Vec<Text>,
}

/// A key of a [`Shape`]. It holds no byte a JSON string must escape (`"`, `\`, control
/// characters), so the input holds this key exactly when it holds its bytes then a quote.
struct LayoutKey {
    text: Text,
    /// A key shorter than 8 bytes, then its closing quote, as the low bytes of a
    /// little-endian word; `mask` keeps those bytes (0 for longer keys).
    word: u64,
    mask: u64,
}

impl LayoutKey {
    /// `None` for a key that would need escapes in JSON.
    fn new(text: &Text) -> Option<LayoutKey> {
        let bytes = text.as_bytes();
        if bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
            return None;
        }
        let (mut word, mut mask) = (0, 0);
        if bytes.len() < 8 {
            let mut quoted = [0u8; 8];
            quoted[..bytes.len()].copy_from_slice(bytes);
            quoted[bytes.len()] = b'"';
            word = u64::from_le_bytes(quoted);
            mask = u64::MAX >> (8 * (7 - bytes.len()));
        }
        Some(LayoutKey {
            text: text.clone(),
            word,
            mask,
        })
    }

    /// Whether `input` starts with this key and its closing quote.
    #[inline]
    fn starts(&self, input: &[u8]) -> bool {
        if let Some(window) = input.first_chunk::<8>()
            && self.mask != 0
        {
            return u64::from_le_bytes(*window) & self.mask == self.word;
        }
        let key = self.text.as_bytes();
        input.get(..key.len()) == Some(key) && input.get(key.len()) == Some(&b'"')
    }
}

/// An object's key as read: the layout's key at an index (see [`Reader::push_entry`]), or
/// one made from the input.
enum Key {
    Layout(usize),
    Read(Text),
}

impl Shape {
    /// No layout yet; a constant, so that the thread-local holding it needs no lazy
    /// initialisation (whose check was a call per line).
    const NONE: Shape = Shape {
        keys: Vec::new(),
        score: 0,
        beside: Vec::new(),
    };

    /// Whether no key of `new` (an object of this layout, just read) is among those of
    /// `old`, the entries it is merged after; see [`Shape::beside`].
    fn is_fresh_beside(&mut self, old: &[(Text, Value)], new: &[(Text, Value)]) -> bool {
        if self.beside.len() == old.len() && self.beside.iter().zip(old).all(|(a, (k, _))| a == k) {
            return true;
        }
        let fresh = new.iter().all(|(key, _)| old.iter().all(|(k, _)| k != key));
        if fresh {
            self.beside.clear();
            self.beside.extend(old.iter().map(|(k, _)| k.clone()));
        }
        fresh
    }
}

const SHAPE_SCORE_MAX: i8 = 8;

/// Objects with more keys than this are not kept as a layout.
const SHAPE_KEYS_MAX: usize = 64;

/// 10^0 to 10^22: the powers of ten a double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A stack this large after an exceptional object is given back rather than kept.
const STACK_KEPT: usize = 1024;

/// Parses `text` as one JSON value, or `None` when serde_json must decide.
pub(crate) fn parse(text: &str, numbers: NumberMode) -> Option<Value> {
    with_reader(text, numbers, |r| {
        let value = match r.peek()? {
            b'{' => {
                let start = r.object_entries(0)?;
                Value::Map(Box::new(r.top_level_map(start)))
            }
            _ => r.value(0)?,
        };
        r.at_end().then_some(value)
    })
}

/// Reads `text`, a JSON object, and inserts its keys into `into` as [`Map::merge`] would
/// insert those of the map [`parse`] gives, without building that map. `None`, with `into`
/// untouched, when serde_json must decide (errors included) or `text` is not an object.
pub(crate) fn merge_object(text: &str, numbers: NumberMode, into: &mut Map) -> Option<()> {
    with_reader(text, numbers, |r| {
        if !r.shape.keys.is_empty()
            && let Some(entries) = into.lend_entries()
        {
            return r.merge_in_place(into, entries);
        }
        if r.peek()? != b'{' {
            return None;
        }
        let start = r.object_entries(0)?;
        if !r.at_end() {
            return None;
        }
        // The stack held nothing before this object: its entries are all of it.
        debug_assert_eq!(start, 0);
        if r.layout_is_known(start) {
            into.merge_unique_append(&mut r.pending);
        } else {
            into.extend(r.pending.drain(..));
        }
        Some(())
    })
}

/// Runs `read` with this thread's entry stack and layout, from the first non-blank byte.
fn with_reader<T>(
    text: &str,
    numbers: NumberMode,
    read: impl FnOnce(&mut Reader<'_>) -> Option<T>,
) -> Option<T> {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
        numbers,
        pending: STACK.with(Cell::take),
        shape: SHAPE.with(Cell::take),
        layout_hits: 0,
    };
    r.skip_ws();
    let result = read(&mut r);
    SHAPE.with(|shape| shape.set(r.shape));
    let mut stack = r.pending;
    if stack.capacity() <= STACK_KEPT {
        // Entries left by a parse that gave up are dropped here.
        stack.clear();
        STACK.with(|kept| kept.set(stack));
    }
    result
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    numbers: NumberMode,
    /// Entries of the maps being read, innermost last.
    pending: Vec<(Text, Value)>,
    shape: Shape,
    /// How many keys of the top-level object being read were the layout's key at their
    /// place (see [`Reader::top_level_key`]).
    layout_hits: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Whether only whitespace is left.
    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.at == self.bytes.len()
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<Value> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string(),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        let start = self.object_entries(depth)?;
        // Built as the serde path builds it (later duplicates replacing earlier values in
        // the first one's place), so both give equal maps.
        let mut map = Map::with_capacity(self.pending.len() - start);
        map.extend(self.pending.drain(start..));
        Some(Value::Map(Box::new(map)))
    }

    /// Reads an object's entries onto the stack; gives where they start.
    fn object_entries(&mut self, depth: usize) -> Option<usize> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let start = self.pending.len();
        if depth == 0 {
            self.layout_hits = 0;
        }
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(start);
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = if depth == 0 {
                self.top_level_key(self.pending.len() - start)?
            } else {
                Key::Read(self.string::<Text>()?)
            };
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_ws();
            self.push_entry(key, depth + 1)?;
            self.skip_ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.skip_ws();
                }
                b'}' => {
                    self.at += 1;
                    return Some(start);
                }
                _ => return None,
            }
        }
    }

    /// Reads the value at `at` and pushes it with `key` onto the stack. A scalar is written
    /// straight into the stack's next slot: returned and then moved there, its bytes were
    /// read back right after being written in other pieces, which stalled the CPU (store
    /// forwarding fails) at every field.
    #[inline(always)]
    fn push_entry(&mut self, key: Key, depth: usize) -> Option<()> {
        if let b'{' | b'[' = self.peek()? {
            let value = self.value(depth)?;
            let key = match key {
                Key::Layout(i) => self.shape.keys[i].text.clone(),
                Key::Read(text) => text,
            };
            self.pending.push((key, value));
            return Some(());
        }
        self.pending.reserve(1);
        let len = self.pending.len();
        // SAFETY: the room at `len` was reserved above and reading a scalar does not touch
        // `pending`, so the slot stays where it is; its value is written before its key and
        // the length grows only once both are there (if cloning a long layout key failed
        // to allocate, the value written would leak, never be dropped twice).
        unsafe {
            let slot = self.pending.as_mut_ptr().add(len);
            self.scalar_into(&raw mut (*slot).1)?;
            match key {
                Key::Layout(i) => clone_text_into(&self.shape.keys[i].text, &raw mut (*slot).0),
                Key::Read(text) => (&raw mut (*slot).0).write(text),
            }
            self.pending.set_len(len + 1);
        }
        Some(())
    }

    /// A string, number or literal at `at`, written to `out` (left untouched on `None`).
    ///
    /// # Safety
    /// `out` is valid for writes and not inside `pending`'s initialised entries.
    #[inline(always)]
    unsafe fn scalar_into(&mut self, out: *mut Value) -> Option<()> {
        let value = match self.peek()? {
            b'"' => {
                let start = self.at + 1;
                let end = self.plain_run(start)?;
                if self.bytes[end] == b'"' {
                    self.at = end + 1;
                    // Built in place (see `push_entry`).
                    // SAFETY: as the caller vouches.
                    unsafe { out.write(Value::Str(self.text_of(start, end))) };
                    return Some(());
                }
                Value::Str(self.escaped_string(start, end)?)
            }
            b't' => self.literal(b"true", Value::Bool(true))?,
            b'f' => self.literal(b"false", Value::Bool(false))?,
            b'n' => self.literal(b"null", Value::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        };
        // SAFETY: as the caller vouches.
        unsafe { out.write(value) };
        Some(())
    }

    /// [`merge_object`] while lines keep one layout: the object is read straight into
    /// `entries`, the vector `into` lent, after the keys already there (the file name).
    /// Read onto the stack, its entries were copied once more, and the copy read back while
    /// still being written.
    fn merge_in_place(&mut self, into: &mut Map, mut entries: Vec<(Text, Value)>) -> Option<()> {
        let before = entries.len();
        // Exactly the layout's keys: these are a record's attributes, whose room the
        // receiver learns from their capacity, and a doubling vector would double it.
        entries.reserve_exact(self.shape.keys.len());
        std::mem::swap(&mut self.pending, &mut entries);
        let read = self.peek() == Some(b'{') && self.object_entries(0).is_some() && self.at_end();
        let known = read && self.layout_is_known(before);
        std::mem::swap(&mut self.pending, &mut entries);
        if known {
            let (old, new) = entries.split_at(before);
            if self.shape.is_fresh_beside(old, new) {
                into.settle_fresh(entries);
            } else {
                into.settle_merged(entries, before);
            }
            return Some(());
        }
        // Another layout, whose keys may repeat, is merged from the stack; what was read of
        // a line that is not an object is left there, to be dropped.
        self.pending.extend(entries.drain(before..));
        into.settle_appended(entries, before);
        if !read {
            return None;
        }
        into.extend(self.pending.drain(..));
        Some(())
    }

    /// The map of the top-level object whose entries start at `start`, with room for the
    /// keys it is usually merged with (see [`TOP_LEVEL_ROOM`]).
    fn top_level_map(&mut self, start: usize) -> Map {
        let room = self.pending.len() - start + TOP_LEVEL_ROOM;
        if self.layout_is_known(start) {
            let mut unique = Vec::with_capacity(room);
            unique.extend(self.pending.drain(start..));
            return Map::from_unique(unique);
        }
        let mut map = Map::with_capacity(room);
        map.extend(self.pending.drain(start..));
        map
    }

    /// Whether the keys of the entries from `start` are, in order, those of the layout
    /// kept (so they are distinct). A miss counts against the layout, and replaces it
    /// once it has missed more than it matched.
    fn layout_is_known(&mut self, start: usize) -> bool {
        let entries = &self.pending[start..];
        let shape = &mut self.shape;
        // Every key was the layout's at its place (checked as it was read).
        if shape.keys.len() == entries.len() && self.layout_hits == entries.len() {
            shape.score = (shape.score + 1).min(SHAPE_SCORE_MAX);
            return true;
        }
        shape.score -= 2;
        if shape.score < 0 {
            shape.score = 0;
            shape.keys.clear();
            shape.beside.clear();
            let distinct = || {
                entries
                    .iter()
                    .enumerate()
                    .all(|(i, (k, _))| entries[..i].iter().all(|(o, _)| o != k))
            };
            // An object with repeated keys leaves no layout to reuse; nor does a large one
            // (checking its keys are distinct costs their number squared), nor one with a
            // key that needs escapes.
            if entries.len() <= SHAPE_KEYS_MAX && distinct() {
                shape
                    .keys
                    .extend(entries.iter().map_while(|(k, _)| LayoutKey::new(k)));
                if shape.keys.len() < entries.len() {
                    shape.keys.clear();
                }
            }
        }
        false
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Value::Array(Box::new(items)));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.skip_ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(Value::Array(Box::new(items)));
                }
                _ => return None,
            }
        }
    }

    /// The key of entry `i` of a top-level object: when it is the layout's key `i`, that
    /// key, to be copied into place (cheaper than making a new one from the text).
    fn top_level_key(&mut self, i: usize) -> Option<Key> {
        let start = self.at + 1;
        if let Some(known) = self.shape.keys.get(i)
            && known.starts(&self.bytes[start..])
        {
            self.layout_hits += 1;
            self.at = start + known.text.len() + 1;
            return Some(Key::Layout(i));
        }
        self.string::<Text>().map(Key::Read)
    }

    /// A string at the opening quote, as a key (`Text`) or a value. Unescaped runs are
    /// sliced from the input, which is valid UTF-8 and split only at ASCII bytes, so no
    /// check is needed. A value is built where it is returned: wrapping a returned `Text`
    /// copied it through the stack, and reading it back stalled.
    fn string<T: From<Text>>(&mut self) -> Option<T> {
        self.at += 1;
        let start = self.at;
        let end = self.plain_run(start)?;
        if self.bytes[end] == b'"' {
            self.at = end + 1;
            return Some(T::from(self.text_of(start, end)));
        }
        self.escaped_string(start, end).map(T::from)
    }

    /// The unescaped run `text[start..end]`, ending at a quote: short ones are built in
    /// registers (see [`inline_text`]) when the line has a whole window of bytes there.
    #[inline(always)]
    fn text_of(&self, start: usize, end: usize) -> Text {
        let len = end - start;
        if len <= INLINE_MAX
            && let Some(window) = self.bytes.get(start..start + INLINE_MAX)
        {
            let window: &[u8; INLINE_MAX] = window.try_into().expect("a whole window");
            return inline_text(window, len);
        }
        text(&self.text[start..end])
    }

    /// The rest of a string from `start` whose first escape is at `end`.
    fn escaped_string(&mut self, start: usize, end: usize) -> Option<Text> {
        let mut out = String::from(&self.text[start..end]);
        self.at = end;
        loop {
            // At a backslash.
            self.at += 1;
            match *self.bytes.get(self.at)? {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => out.push(self.unicode_escape()?),
                _ => return None,
            }
            self.at += 1;
            let run_start = self.at;
            let end = self.plain_run(run_start)?;
            out.push_str(&self.text[run_start..end]);
            self.at = end;
            if self.bytes[end] == b'"' {
                self.at = end + 1;
                return Some(Text::from(out));
            }
        }
    }

    /// The end of the run of plain string bytes from `from`: the index of the next `"` or
    /// `\`. `None` at a control character (not allowed in JSON strings) or the input's end.
    fn plain_run(&self, from: usize) -> Option<usize> {
        let mut at = from;
        // Sixteen bytes at a time where SSE2 is there (always, on x86-64): most strings
        // of a log line (levels, hosts, timestamps, ids) end within one or two loads.
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
                _mm_set1_epi8,
            };
            // SAFETY: SSE2 is part of every x86-64 CPU; each load reads the 16 bytes of
            // `chunk`, unaligned.
            unsafe {
                let quote = _mm_set1_epi8(b'"' as i8);
                let backslash = _mm_set1_epi8(b'\\' as i8);
                let control_max = _mm_set1_epi8(0x1F);
                while let Some(chunk) = self.bytes.get(at..at + 16) {
                    let v = _mm_loadu_si128(chunk.as_ptr().cast());
                    // A control character is its own unsigned minimum with 0x1F.
                    let control = _mm_cmpeq_epi8(_mm_min_epu8(v, control_max), v);
                    let special =
                        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                    let hits = _mm_movemask_epi8(_mm_or_si128(special, control)) as u32;
                    if hits != 0 {
                        return self.stop_at(at + hits.trailing_zeros() as usize);
                    }
                    at += 16;
                }
            }
        }
        // Eight bytes at a time: a byte that is `"`, `\` or below 0x20 sets its high bit
        // in `hits`. Borrows can only mark bytes after a real hit, so the lowest mark is
        // the first such byte.
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        while let Some(chunk) = self.bytes.get(at..at + 8) {
            let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let hits = zero_byte(v ^ (ONES * u64::from(b'"')))
                | zero_byte(v ^ (ONES * u64::from(b'\\')))
                | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
            if hits != 0 {
                at += (hits.trailing_zeros() / 8) as usize;
                return self.stop_at(at);
            }
            at += 8;
        }
        while let Some(b) = self.bytes.get(at) {
            if matches!(b, b'"' | b'\\') || *b < 0x20 {
                return self.stop_at(at);
            }
            at += 1;
        }
        None
    }

    /// `at` holds `"`, `\` or a control character; the last is not allowed in a string.
    fn stop_at(&self, at: usize) -> Option<usize> {
        (self.bytes[at] >= 0x20).then_some(at)
    }

    /// `\uXXXX` (with `at` on the `u`), a surrogate pair taking a second escape; leaves
    /// `at` on the last hex digit.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4(self.at + 1)?;
        self.at += 4;
        let code = match high {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at + 1..self.at + 3)? != b"\\u" {
                    return None;
                }
                let low = self.hex4(self.at + 3)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                self.at += 6;
                0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            other => u32::from(other),
        };
        char::from_u32(code)
    }

    fn hex4(&self, at: usize) -> Option<u16> {
        let digits = self.bytes.get(at..at + 4)?;
        let mut v = 0u16;
        for d in digits {
            v = v * 16 + (*d as char).to_digit(16)? as u16;
        }
        Some(v)
    }

    /// A number per the JSON grammar, mapped as serde_json maps it: integers to `u64`/`i64`
    /// (then `Int` or `Double` by `numbers`), anything with a fraction or exponent to a
    /// double (serde_json with `float_roundtrip` rounds as `f64::from_str` does).
    #[inline(always)]
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        // The digits (integer and fraction) as one integer, exact while there are at most
        // 19 of them.
        let mut mantissa = 0u64;
        let mut digits = 0usize;
        let mut take_digits = |r: &mut Self| {
            let (end, m) = digit_run(r.bytes, r.at, mantissa);
            let n = end - r.at;
            (r.at, mantissa) = (end, m);
            digits += n;
            n
        };
        let int_start = self.at;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                take_digits(self);
            }
            _ => return None,
        }
        let int_end = self.at;
        let mut fraction = None;
        if self.peek() == Some(b'.') {
            self.at += 1;
            match take_digits(self) {
                0 => return None,
                n => fraction = Some(n),
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            exponent = true;
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
        }
        if fraction.is_some() || exponent {
            // Clinger's fast path: an integer below 2^53 and a power of ten up to 10^22 are
            // both exact doubles, so one division rounds correctly, as `parse` would.
            if let Some(n) = fraction
                && !exponent
                && digits <= 19
                && mantissa < 1 << 53
                && n < EXACT_POWERS_OF_TEN.len()
            {
                let d = mantissa as f64 / EXACT_POWERS_OF_TEN[n];
                return Some(Value::Double(if negative { -d } else { d }));
            }
            let d: f64 = self.text[start..self.at].parse().ok()?;
            return d.is_finite().then_some(Value::Double(d));
        }
        let magnitude: u64 = if digits <= 19 {
            mantissa
        } else {
            self.text[int_start..int_end].parse().ok()?
        };
        if negative {
            // `-0` becomes a double -0.0 and beyond i64 a double too: left to serde_json.
            let m = i64::try_from(magnitude).ok().filter(|m| *m > 0)?;
            return Some(match self.numbers {
                NumberMode::AllDouble => Value::Double(-m as f64),
                NumberMode::IntsWhenIntegral => Value::Int(-m),
            });
        }
        Some(match (self.numbers, i64::try_from(magnitude)) {
            (NumberMode::IntsWhenIntegral, Ok(i)) => Value::Int(i),
            _ => Value::Double(magnitude as f64),
        })
    }

    fn digits(&mut self) -> Option<()> {
        let from = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        (self.at > from).then_some(())
    }
}

/// Where the run of ASCII digits from `at` ends, and `mantissa` with those digits appended
/// (wrapping). Kept in registers: a loop that updated the reader's position and the
/// mantissa in place stored and reloaded both at every digit.
#[inline(always)]
fn digit_run(bytes: &[u8], mut at: usize, mut mantissa: u64) -> (usize, u64) {
    while let Some(&d) = bytes.get(at)
        && d.is_ascii_digit()
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        at += 1;
    }
    (at, mantissa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The serde_json path alone.
    fn reference(text: &str, numbers: NumberMode) -> Option<Value> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_str(text);
        let v = crate::value::ValueSeed { numbers }
            .deserialize(&mut de)
            .ok()?;
        de.end().ok()?;
        Some(v)
    }

    fn same(text: &str) {
        for numbers in [NumberMode::AllDouble, NumberMode::IntsWhenIntegral] {
            let fast = parse(text, numbers);
            let slow = reference(text, numbers);
            match (&fast, &slow) {
                // Giving up is always allowed; accepting must agree, bit for bit.
                (None, _) => {}
                (Some(f), Some(s)) => assert!(
                    identical(f, s),
                    "{text:?} {numbers:?}: fast {f:?} serde {s:?}"
                ),
                (Some(f), None) => panic!("{text:?}: fast accepted {f:?}, serde refused"),
            }
        }
    }

    /// Equality that tells -0.0 from 0.0 and compares maps in order.
    fn identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| identical(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
            }
            _ => a == b,
        }
    }

    #[test]
    fn log_lines_are_read_by_the_fast_path() {
        let line = r#"{"ts":"2024-05-01T12:00:00.000Z","level":"info","seq":0,"dur_ms":53.344,"ok":true,"n":null,"a":[1,-2,3.5e2],"m":{"k":"v\n\u00e9\ud83d\ude00"}}"#;
        for numbers in [NumberMode::AllDouble, NumberMode::IntsWhenIntegral] {
            let fast = parse(line, numbers).expect("the fast path reads a log line");
            assert!(identical(&fast, &reference(line, numbers).unwrap()));
        }
    }

    #[test]
    fn a_known_layout_is_merged_after_whatever_keys_are_there() {
        // One layout, read again and again after keys that change: new to it, one of its
        // own, none, several. Each merge must be what merging the parsed map gives.
        let text = r#"{"a":1,"b":2,"c":3}"#;
        for before in [
            &["z"][..],
            &["a"],
            &["z"],
            &[],
            &["b", "z"],
            &["z"],
            &["x", "c"],
        ] {
            for _ in 0..3 {
                let mut base = Map::new();
                for k in before {
                    base.insert((*k).into(), Value::Int(0));
                }
                let mut fast = base.clone();
                merge_object(text, NumberMode::IntsWhenIntegral, &mut fast).unwrap();
                let mut want = base;
                match reference(text, NumberMode::IntsWhenIntegral) {
                    Some(Value::Map(parsed)) => want.merge(*parsed),
                    other => panic!("serde gives {other:?}"),
                }
                let (fast, want) = (Value::Map(Box::new(fast)), Value::Map(Box::new(want)));
                assert!(
                    identical(&fast, &want),
                    "after {before:?}: {fast:?} want {want:?}"
                );
            }
        }
    }

    #[test]
    fn objects_of_a_known_layout_are_complete_maps() {
        let a = r#"{"ts":"t1","level":"info","n":1,"m":{"x":1}}"#;
        let b = r#"{"level":"warn","ts":"t2","extra":true}"#;
        let dup = r#"{"ts":"t3","level":"x","ts":"t4","n":2}"#;
        let fewer = r#"{"ts":"t5","level":"y"}"#;
        let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let big = format!("{{{}}}", keys.join(","));
        let big = big.as_str();
        for text in [
            a, a, a, b, a, b, b, b, b, a, dup, a, fewer, a, a, "{}", a, big, big, a,
        ] {
            for numbers in [NumberMode::AllDouble, NumberMode::IntsWhenIntegral] {
                let fast = parse(text, numbers).expect("read by the fast path");
                let slow = reference(text, numbers).unwrap();
                assert!(identical(&fast, &slow), "{text}: {fast:?} vs {slow:?}");
                let Value::Map(mut map) = fast else {
                    panic!("an object")
                };
                // A map of a known layout finds every key, and grows normally.
                for (k, v) in slow.as_map().unwrap() {
                    assert_eq!(map.get(k.as_str()), Some(v), "{text}: {k}");
                }
                assert_eq!(map.get("absent"), None);
                map.insert("log.file.name".into(), Value::from("f"));
                map.insert("level".into(), Value::from("changed"));
                assert_eq!(map.get("log.file.name"), Some(&Value::from("f")));
                assert_eq!(map.get("level"), Some(&Value::from("changed")));
            }
        }
    }

    #[test]
    fn layout_keys_match_only_whole_unescaped_keys() {
        // Keys of every length around the 8-byte word, keys that need escapes (never
        // kept as a layout), and inputs that end inside or right after a key.
        let lines = [
            r#"{"":0,"a":1,"abcdefg":2,"abcdefgh":3,"abcdefghijklmnop":4}"#,
            r#"{"":0,"a":1,"abcdefg":2,"abcdefgh":3,"abcdefghijklmnop":4}"#,
            r#"{"":0,"ab":1,"abcdef":2,"abcdefghi":3,"abcdefghijklmno":4}"#,
            r#"{"a\"b":1,"c\\d":2,"e\u0041":3}"#,
            r#"{"a\"b":1,"c\\d":2,"e\u0041":3}"#,
            r#"{"a\"b":1,"c\\d":2,"eA":3}"#,
            r#"{"ts":1}"#,
            r#"{"ts":1}"#,
            r#"{"ts\"":1}"#,
            r#"{"t":1}"#,
            r#"{"ts"#,
            r#"{"ts""#,
            r#"{"ts":"#,
        ];
        for _ in 0..3 {
            for text in lines {
                for numbers in [NumberMode::AllDouble, NumberMode::IntsWhenIntegral] {
                    let fast = parse(text, numbers);
                    let slow = reference(text, numbers);
                    match (&fast, &slow) {
                        (Some(f), Some(s)) => assert!(identical(f, s), "{text}: {f:?} vs {s:?}"),
                        (Some(f), None) => panic!("{text}: read as {f:?}, serde_json refuses it"),
                        (None, _) => {}
                    }
                }
            }
        }
    }

    #[test]
    fn strings_are_scanned_many_bytes_at_a_time() {
        // A quote, an escape, a control character or a non-ASCII character at every place
        // of the sixteen- and eight-byte windows and of the tail after them.
        for stop in ["\"", "\\n", "\u{1f}", "\u{0}", "é", "\u{7f}", "😀"] {
            for before in 0..48 {
                for after in [0, 1, 7, 15, 16, 40] {
                    let text = format!("\"{}{stop}{}\"", "a".repeat(before), "b".repeat(after));
                    assert_eq!(
                        parse(&text, NumberMode::AllDouble),
                        reference(&text, NumberMode::AllDouble),
                        "{text:?}"
                    );
                }
            }
        }

        for (text, want) in [
            ("\"abcdefgh\"", Some("abcdefgh")),
            (
                "\"abcdefghijklmnop\\\\qrstuvwxyz0123456789é\\\"\"",
                Some("abcdefghijklmnop\\qrstuvwxyz0123456789é\""),
            ),
            ("\"0123456789abcdef\"", Some("0123456789abcdef")),
            ("\"abcdefghij\u{1f}klmnopq\"", None),
            ("\"abcdefghijklmnopq", None),
        ] {
            let got = parse(text, NumberMode::AllDouble);
            assert_eq!(got, want.map(Value::from), "{text:?}");
        }
    }

    #[test]
    fn corner_cases_agree_or_fall_back() {
        for text in [
            "",
            " ",
            "{",
            "}",
            "{}",
            "[]",
            " { } ",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1}x",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}b\"",
            "\"abcdefghij\u{1f}klmnopq\"",
            "\"abcdefghijklmnop\\\\qrstuvwxyz0123456789é\\\"\"",
            "\"abcdefgh\"",
            "\"tab\there\"",
            "01",
            "-",
            "-0",
            "-0.0",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1E-2",
            "1e400",
            "-1e400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "9223372036854775807",
            "9223372036854775808",
            "123456789012345678901234567890",
            "0.1",
            "2.5e-324",
            "1.7976931348623157e308",
            "tru",
            "nul",
            "falsey",
            "{\"a\":1,\"a\":2,\"b\":3}",
            "[[[[[]]]]]",
            "\"é ünïcødé\"",
            "\"\\/\\b\\f\\r\"",
        ] {
            same(text);
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(
            parse(&deep, NumberMode::AllDouble),
            None,
            "left to serde_json"
        );
        same(&deep);
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|d| format!("{d:e}")),
            any::<f64>().prop_map(|d| d.to_string()),
            "-?[0-9]{1,25}(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            "\"([a-z \\\\\"/]|\\\\[nrtbf\"\\\\/]|\\\\u[0-9a-fA-F]{4})*\"",
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-z]{0,3}", inner), 0..6).prop_map(|kv| {
                    let body: Vec<String> =
                        kv.iter().map(|(k, v)| format!(" \"{k}\" : {v} ")).collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(text in json_text()) {
            same(&text);
        }

        /// Decimals as logs write them, where the fast path for short fractions applies
        /// and around where it stops (19 digits, 2^53, 10^22).
        #[test]
        fn decimals_agree_with_serde_json(
            text in "-?(0|[1-9][0-9]{0,12})\\.[0-9]{1,24}",
            digits in proptest::collection::vec(0u8..10, 1..22),
            point in 0usize..22,
        ) {
            same(&text);
            let mut long: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            if long.len() > 1 && long.starts_with('0') {
                long.replace_range(..1, "1");
            }
            let point = point.min(long.len());
            long.insert_str(point, if point == 0 { "0." } else { "." });
            if !long.ends_with('.') {
                same(&long);
                same(&format!("{{\"d\":{long}}}"));
            }
        }

        #[test]
        fn agrees_on_mangled_json(text in json_text(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = text.into_bytes();
            let i = cut.index(bytes.len() + 1);
            bytes.insert(i, byte);
            if let Ok(text) = String::from_utf8(bytes) {
                same(&text);
            }
        }

        /// Lines of a few layouts in a row (so that some are read in place, once a layout
        /// repeats), some cut short, merged into maps that hold keys already (one among
        /// them, or enough for a hash index): a merged line leaves what merging the map
        /// serde_json reads leaves, in the same order; a line given up on leaves the map as
        /// it was.
        #[test]
        fn merging_agrees_with_merging_the_parsed_map(
            lines in proptest::collection::vec(
                (0usize..4, proptest::collection::vec(json_text(), 3), 0usize..40),
                1..12,
            ),
            present in proptest::collection::vec(("[a-e]", any::<i8>()), 0..3),
            indexed in any::<bool>(),
        ) {
            const LAYOUTS: [&[&str]; 4] = [&["a", "b", "c"], &["a", "b"], &["x", "a", "y"], &["e"]];
            let mut base = Map::new();
            for (k, v) in &present {
                base.insert(k.as_str().into(), Value::Int(i64::from(*v)));
            }
            if indexed {
                for i in 0..crate::map::LINEAR_MAX {
                    base.insert(format!("k{i}").into(), Value::Null);
                }
            }
            for (layout, values, cut) in &lines {
                let body: Vec<String> = LAYOUTS[*layout]
                    .iter()
                    .zip(values)
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                let mut text = format!("{{{}}}", body.join(","));
                if *cut < text.len() && text.is_char_boundary(*cut) {
                    text.truncate(*cut);
                }
                for numbers in [NumberMode::AllDouble, NumberMode::IntsWhenIntegral] {
                    let mut fast = base.clone();
                    let merged = merge_object(&text, numbers, &mut fast);
                    let mut want = base.clone();
                    match (merged, reference(&text, numbers)) {
                        (Some(()), Some(Value::Map(parsed))) => want.merge(*parsed),
                        (Some(()), other) => panic!("{text:?}: merged, serde gives {other:?}"),
                        (None, _) => {}
                    }
                    prop_assert!(
                        identical(&Value::Map(Box::new(fast.clone())), &Value::Map(Box::new(want.clone()))),
                        "{text:?} {numbers:?}: {fast:?} want {want:?}"
                    );
                    if let Some(k) = fast.keys().next() {
                        prop_assert!(fast.get(k).is_some(), "the map's index holds its keys");
                    }
                }
            }
        }

        #[test]
        fn never_panics(text in ".*") {
            let _ = parse(&text, NumberMode::IntsWhenIntegral);
        }
    }
}
