//! `Value` is OpenTelemetry's `AnyValue`: the type of a body and of every attribute value.

pub use crate::map::Map;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use std::fmt;

/// The string of keys and string values: up to 24 bytes inline, so the short keys and
/// values most log records hold cost no allocation.
pub type Text = compact_str::CompactString;

/// OpenTelemetry's AnyValue. `Null` is the empty value (an unset body).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Text),
    // Bytes, arrays and maps are boxed so that a `Value` is a `Text`'s 24 bytes (the other
    // variants live in the niche of its last byte): an attribute slot is 48 bytes, and a
    // string value is moved without re-packing. They are rare in log records.
    Bytes(Box<[u8]>),
    Array(Box<Vec<Value>>),
    Map(Box<Map>),
}

// The layout the hot path counts on (see above), on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// The longest string a [`Text`] holds inline.
pub(crate) const INLINE_MAX: usize = 24;

/// The [`Text`] of `window[..len]`, built in registers from three word loads.
/// `Text::from` copied the bytes into a buffer on the stack with `memcpy`, then read the
/// buffer back a word at a time while the copy's stores were still in flight: a
/// store-forwarding stall for every short string (`perf annotate`: half of
/// `compact_str`'s constructor).
///
/// The bytes are compact_str's inline layout: the string, zeros, and in the last byte
/// `0xC0 | len` (a 24-byte string fills all 24 bytes; its last byte is below 0xC0, as the
/// last byte of UTF-8 text is). `inline_text_is_compact_strs_own` checks every length
/// byte for byte against `Text::from`.
///
/// `len <= INLINE_MAX`, and `window[..len]` is valid UTF-8.
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
#[inline(always)]
pub(crate) fn inline_text(window: &[u8; INLINE_MAX], len: usize) -> Text {
    debug_assert!(len <= INLINE_MAX && std::str::from_utf8(&window[..len]).is_ok());
    let word = |i: usize| {
        let bytes: [u8; 8] = window[8 * i..8 * i + 8].try_into().expect("8 bytes");
        let kept = len.saturating_sub(8 * i).min(8);
        let mask = if kept == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * kept)) - 1
        };
        u64::from_le_bytes(bytes) & mask
    };
    let mut words = [word(0), word(1), word(2)];
    if len < INLINE_MAX {
        words[2] |= (0xC0 | len as u64) << 56;
    }
    // SAFETY: `Text` is 24 bytes on 64-bit targets and, little-endian, `words` holds the
    // bytes compact_str stores for the inline string `window[..len]`, which is valid
    // UTF-8 (see above). An inline string owns nothing.
    unsafe { std::mem::transmute::<[u64; 3], Text>(words) }
}

/// [`inline_text`] where its layout does not apply: built by compact_str.
#[cfg(not(all(target_pointer_width = "64", target_endian = "little")))]
pub(crate) fn inline_text(window: &[u8; INLINE_MAX], len: usize) -> Text {
    Text::from(std::str::from_utf8(&window[..len]).unwrap_or_default())
}

/// The smallest buffer compact_str allocates for a string: its inline size and a word.
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
const HEAP_MIN: usize = INLINE_MAX + 8;

/// The last byte of a heap [`Text`]'s third word (compact_str's `LastByte::Heap`); the
/// other seven bytes hold the capacity.
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
const HEAP_TAG: u64 = 0xD8 << 56;

/// A [`Text`] of `s`. Longer strings than [`INLINE_MAX`] are built in registers, as
/// [`inline_text`] builds short ones: `Text::from`, out of line, wrote the new string to
/// the stack in pieces and its caller read it back whole while the stores were in flight,
/// a stall at every long value (a message, a trace id) and at every line's body.
///
/// The words are compact_str's heap layout: the buffer, the length, and the capacity
/// tagged with [`HEAP_TAG`]. The buffer is allocated as compact_str allocates it (at least
/// [`HEAP_MIN`] bytes, alignment 1), so that compact_str frees and grows it.
/// `texts_are_compact_strs_own` checks lengths, capacities and growth against
/// `Text::from`.
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
#[inline(always)]
pub fn text(s: &str) -> Text {
    if s.len() <= INLINE_MAX {
        return Text::from(s);
    }
    let capacity = s.len().max(HEAP_MIN);
    // A `str` is at most `isize::MAX` bytes, and so is this.
    let layout = std::alloc::Layout::from_size_align(capacity, 1).expect("a str's length");
    // SAFETY: the layout's size is not zero.
    let buffer = unsafe { std::alloc::alloc(layout) };
    if buffer.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `buffer` is a new allocation of at least `s.len()` bytes.
    unsafe { buffer.copy_from_nonoverlapping(s.as_ptr(), s.len()) };
    // compact_str keeps capacities up to 2^56 - 2 beside the tag (no `str` comes near).
    debug_assert!(capacity < (1 << 56) - 1);
    let heap = HeapText {
        buffer,
        len: s.len(),
        tagged_capacity: capacity | HEAP_TAG as usize,
    };
    // SAFETY: these are the words compact_str 0.9.1 (pinned) keeps for a heap string, the
    // buffer a pointer (so it keeps its provenance): `buffer` allocated with the layout it
    // frees with (size `capacity`, alignment 1), holding `s.len()` bytes of valid UTF-8,
    // and the capacity (below 2^56 - 1) in the third word under the tag. The `Text` owns
    // the buffer from here.
    unsafe { std::mem::transmute::<HeapText, Text>(heap) }
}

/// compact_str's heap string, as [`text`] builds it.
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
#[repr(C)]
struct HeapText {
    buffer: *mut u8,
    len: usize,
    tagged_capacity: usize,
}

/// [`text`] where compact_str's layout is not the one [`text`] builds.
#[cfg(not(all(target_pointer_width = "64", target_endian = "little")))]
pub fn text(s: &str) -> Text {
    Text::from(s)
}

/// Writes a clone of `text` to `out` with one copy from `text` to `out`: a clone returned
/// and then stored was assembled on the stack and read back mid-write (a stall in
/// `perf annotate`). An inline or static string owns nothing, so its bytes are its clone.
///
/// # Safety
/// `out` is valid for writes and holds nothing that needs dropping.
#[inline(always)]
pub(crate) unsafe fn clone_text_into(text: &Text, out: *mut Text) {
    if text.is_heap_allocated() {
        // SAFETY: as the caller vouches.
        unsafe { out.write(text.clone()) };
    } else {
        // SAFETY: as the caller vouches for `out`; `text` owns no memory (see above), so
        // both copies may be dropped.
        unsafe { out.copy_from_nonoverlapping(text, 1) };
    }
}

impl Value {
    /// The name Stanza's error messages use for this value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int64",
            Value::Double(_) => "float64",
            Value::Str(_) => "string",
            Value::Bytes(_) => "[]uint8",
            Value::Array(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as text, the way Go's `fmt.Sprint` prints scalars (used where Stanza formats
    /// a value "as a string", e.g. severity text and trace ids).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_go_float(*d),
            Value::Str(s) => s.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Array(_) | Value::Map(_) => serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// Parses JSON text into a `Value`. With `NumberMode::AllDouble` every number becomes a
    /// double (Stanza's `json_parser` default); with `IntsWhenIntegral` numbers written
    /// without a fraction or exponent that fit an int64 become `Int`.
    ///
    /// Most text takes a direct reader (`json.rs`); whatever it does not handle exactly as
    /// serde_json would (errors included) is parsed by serde_json.
    pub fn from_json_str(text: &str, numbers: NumberMode) -> Result<Value, serde_json::Error> {
        if let Some(value) = crate::json::parse(text, numbers) {
            return Ok(value);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = ValueSeed { numbers }.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

/// Why [`Map::merge_json_object`] merged nothing.
#[derive(Debug, thiserror::Error)]
pub enum JsonObjectError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but not an object: the name of the value's type.
    #[error("expected a JSON object, got {0}")]
    NotObject(&'static str),
}

impl Map {
    /// Parses `text`, a JSON object, and inserts its keys as [`Map::merge`] would insert
    /// those of the parsed map, without building that map (a parser writing into an
    /// entry's attributes). On error nothing is inserted.
    pub fn merge_json_object(
        &mut self,
        text: &str,
        numbers: NumberMode,
    ) -> Result<(), JsonObjectError> {
        if crate::json::merge_object(text, numbers, self).is_some() {
            return Ok(());
        }
        match Value::from_json_str(text, numbers)? {
            Value::Map(m) => {
                self.merge(*m);
                Ok(())
            }
            other => Err(JsonObjectError::NotObject(other.type_name())),
        }
    }
}

/// Formats a double as Go's `strconv.FormatFloat(f, 'f', -1, 64)` would for whole numbers
/// and as the shortest round-trip form otherwise.
fn format_go_float(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e21 {
        format!("{d:.0}")
    } else {
        d.to_string()
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}
impl From<Text> for Value {
    fn from(s: Text) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(Box::new(m))
    }
}

/// How JSON numbers map onto `Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberMode {
    /// Every number is a double.
    AllDouble,
    /// Integral numbers (no fraction, no exponent, within i64) are ints, the rest doubles.
    IntsWhenIntegral,
}

/// Deserializes straight into `Value` without an intermediate `serde_json::Value`.
#[derive(Clone, Copy)]
pub struct ValueSeed {
    pub numbers: NumberMode,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(match self.numbers {
            NumberMode::AllDouble => Value::Double(v as f64),
            NumberMode::IntsWhenIntegral => Value::Int(v),
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(match (self.numbers, i64::try_from(v)) {
            (NumberMode::IntsWhenIntegral, Ok(i)) => Value::Int(i),
            _ => Value::Double(v as f64),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.into()))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(Box::new(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // JSON does not tell how many keys an object has: inserting into a growing map
        // would allocate and rehash it several times per object. The entries are collected
        // on a per-thread stack instead (nested maps above their parent's), then the map is
        // built once at its final size.
        let start = PENDING.with_borrow(Vec::len);
        let _unwind = Truncate(start);
        while let Some(key) = access.next_key::<Text>()? {
            let v = access.next_value_seed(self)?;
            PENDING.with_borrow_mut(|p| p.push((key, v)));
        }
        let map = PENDING.with_borrow_mut(|p| {
            // An outermost object is usually a parser's result, merged next into an
            // entry's attributes, which typically hold a key or two already (the file
            // name): room for those saves growing the map again.
            let room = if start == 0 { TOP_LEVEL_ROOM } else { 0 };
            let mut map = Map::with_capacity(p.len() - start + room);
            map.extend(p.drain(start..));
            map
        });
        Ok(Value::Map(Box::new(map)))
    }
}

thread_local! {
    /// The entries of the maps being deserialized on this thread, innermost last.
    static PENDING: std::cell::RefCell<Vec<(Text, Value)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare room in an outermost map (see `visit_map`).
pub(crate) const TOP_LEVEL_ROOM: usize = 2;

/// Drops what a map left on [`PENDING`] when its deserialization failed, and gives back
/// the memory of an exceptionally large object.
struct Truncate(usize);

impl Drop for Truncate {
    fn drop(&mut self) {
        PENDING.with_borrow_mut(|p| {
            p.truncate(self.0);
            if p.is_empty() && p.capacity() > 1024 {
                *p = Vec::new();
            }
        });
    }
}

/// Config files and the `process` transport read values with ints kept as ints.
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed {
            numbers: NumberMode::IntsWhenIntegral,
        }
        .deserialize(d)
    }
}

/// JSON form: ints as integers, doubles always with a decimal point or exponent (serde_json
/// writes `1.0`), bytes as standard base64 (as Go's encoding/json does for `[]byte`).
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Double(d) => s.serialize_f64(*d),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => {
                use base64::Engine;
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items.iter() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => m.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    #[test]
    fn inline_text_is_compact_strs_own() {
        // Every length, one- to four-byte characters, and what follows in the window.
        let samples = "héllo wörld €uro 😀 ascii-only-text-of-some-length ÿ";
        for (from, _) in samples.char_indices() {
            for len in 0..=INLINE_MAX {
                let rest = &samples[from..];
                if len > rest.len() || !rest.is_char_boundary(len) {
                    continue;
                }
                let mut window = [0xA5u8; INLINE_MAX];
                let n = rest.len().min(INLINE_MAX);
                window[..n].copy_from_slice(&rest.as_bytes()[..n]);
                let built = inline_text(&window, len);
                let want = Text::from(&rest[..len]);
                assert_eq!(built, want);
                assert!(!built.is_heap_allocated());
                // SAFETY: both are 24 plain bytes here.
                let (a, b) = unsafe {
                    (
                        std::mem::transmute::<Text, [u8; 24]>(built),
                        std::mem::transmute::<Text, [u8; 24]>(want),
                    )
                };
                assert_eq!(a, b, "layout of {:?}", &rest[..len]);
            }
        }
    }

    #[test]
    fn texts_are_compact_strs_own() {
        let samples = "héllo wörld €uro 😀 ascii-only-text-of-some-length ÿ, and a longer tail \
                       past the smallest heap buffer, to see growth and capacity";
        for (from, _) in samples.char_indices() {
            for (to, _) in samples[from..].char_indices() {
                let s = &samples[from..from + to];
                let mut built = text(s);
                let want = Text::from(s);
                assert_eq!(built, want);
                assert_eq!(built.len(), want.len());
                assert_eq!(built.capacity(), want.capacity(), "capacity of {s:?}");
                assert_eq!(built.is_heap_allocated(), want.is_heap_allocated());
                // The buffer is compact_str's to grow, shrink, clone and free.
                let copy = built.clone();
                built.push_str(" and more, to grow the buffer past where it was");
                assert_eq!(
                    built,
                    format!("{s} and more, to grow the buffer past where it was")
                );
                built.truncate(s.len());
                built.shrink_to_fit();
                assert_eq!(built, copy);
                drop(copy);
            }
        }
    }

    #[test]
    fn clones_written_in_place_are_clones() {
        for s in [
            "",
            "short",
            "a key of exactly 24 bytes",
            "a string too long to be inline",
        ] {
            for original in [Text::from(s), Text::const_new("a static str that is long")] {
                let mut slot = std::mem::MaybeUninit::<Text>::uninit();
                // SAFETY: the slot is valid for writes and holds nothing.
                let cloned = unsafe {
                    clone_text_into(&original, slot.as_mut_ptr());
                    slot.assume_init()
                };
                assert_eq!(cloned, original);
                drop(original);
                assert!(cloned.len() <= 30);
            }
        }
    }

    #[test]
    fn json_numbers_follow_the_mode() {
        let text = r#"{"i":1,"f":1.0,"e":1e2,"big":18446744073709551615,"a":[1,2.5]}"#;
        let v = Value::from_json_str(text, NumberMode::IntsWhenIntegral).unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m["i"], Value::Int(1));
        assert_eq!(m["f"], Value::Double(1.0));
        assert_eq!(m["e"], Value::Double(100.0));
        assert_eq!(m["big"], Value::Double(18446744073709551615.0));
        assert_eq!(
            m["a"],
            Value::Array(Box::new(vec![Value::Int(1), Value::Double(2.5)]))
        );
        let v = Value::from_json_str(text, NumberMode::AllDouble).unwrap();
        assert_eq!(v.as_map().unwrap()["i"], Value::Double(1.0));
    }

    #[test]
    fn map_order_is_kept_and_doubles_keep_their_point() {
        let v = Value::from_json_str(r#"{"z":1,"a":2.0}"#, NumberMode::IntsWhenIntegral).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"z":1,"a":2.0}"#);
    }

    #[test]
    fn nested_maps_and_duplicate_keys() {
        let text = r#"{"a":{"x":1,"y":{"z":[{"q":1},{}]}},"b":2,"a":3,"c":{}}"#;
        let v = Value::from_json_str(text, NumberMode::IntsWhenIntegral).unwrap();
        // A repeated key keeps its first place and takes the last value.
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":3,"b":2,"c":{}}"#
        );
        let v = Value::from_json_str(
            r#"{"a":{"x":1,"y":{"z":[{"q":1},{}]}}}"#,
            NumberMode::IntsWhenIntegral,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":{"x":1,"y":{"z":[{"q":1},{}]}}}"#
        );
    }

    #[test]
    fn a_failed_object_leaves_nothing_behind() {
        assert!(Value::from_json_str(r#"{"a":{"b":1,"c":"#, NumberMode::AllDouble).is_err());
        assert!(Value::from_json_str(r#"{"a":{"b":1,"c":2}} x"#, NumberMode::AllDouble).is_err());
        PENDING.with_borrow(|p| assert!(p.is_empty()));
        let v = Value::from_json_str(r#"{"k":1}"#, NumberMode::IntsWhenIntegral).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"k":1}"#);
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(Value::from_json_str("{} x", NumberMode::AllDouble).is_err());
        assert!(Value::from_json_str("{\"a\":", NumberMode::AllDouble).is_err());
    }

    #[test]
    fn text_of_whole_doubles_has_no_fraction() {
        assert_eq!(Value::Double(6.0).to_text(), "6");
        assert_eq!(Value::Double(6.5).to_text(), "6.5");
        assert_eq!(Value::Int(-3).to_text(), "-3");
    }
}
