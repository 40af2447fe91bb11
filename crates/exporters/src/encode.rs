//! Entries → the protobuf bytes of an OTLP `ExportLogsServiceRequest`, written straight
//! from the entries into one buffer.
//!
//! Building the `opentelemetry-proto` structs first ([`crate::to_otlp_request`]) copies
//! every string of every record into a new allocation, walks the tree once more for
//! `encoded_len` and a third time to encode, then frees it all: about half of the agent's
//! CPU time in a json-ingest profile. Here each record's length is computed once from the
//! entry, then the bytes are written in one pass into a buffer of the exact final size.
//!
//! The output is byte for byte what prost writes for `to_otlp_request(entries)` (same
//! grouping, fields in tag order, proto3 defaults omitted, minimal varints); the tests
//! compare the two.

use bytes::Bytes;
use centimane_core::{EncodedLogs, Entry, Map, RecordEncoder, RecordGroup, Text, Timestamp, Value};
use std::sync::Arc;

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

const fn key(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

/// The least room a scope's buffer keeps for its next record.
const MIN_ROOM: usize = 4096;

/// The most a scope's buffer reserves ahead on an estimate (a request of 8192 records of
/// 1 KiB each).
const ESTIMATE_MAX: usize = 8 << 20;

/// Room kept for a length-delimited field's key and length, before its length is known
/// (one byte of key, up to five of length).
const HEADER_ROOM: usize = 6;

/// The encoded request for `entries`, grouped as [`crate::to_otlp_request`] groups them.
///
/// One pass over the entries: each record's length is computed and the record written
/// right away, while the entry is still in the cache (the entries were built on another
/// thread, and a second walk over a batch of thousands missed the cache all over again).
/// The records of a scope go into that scope's buffer; the keys and lengths that enclose
/// them are written once the sizes are known. In the usual batch, one resource and one
/// scope, they fill room kept at the front of that buffer, which then becomes the request
/// without a copy.
pub(crate) fn encode_request(entries: &[Entry]) -> Bytes {
    let mut groups: Vec<Group<'_>> = Vec::new();
    // As in `to_otlp_request`: try the previous entry's group and scope first.
    let mut last_group = 0;
    for (i, entry) in entries.iter().enumerate() {
        let found = if groups
            .get(last_group)
            .is_some_and(|g| *g.resource == entry.resource)
        {
            Some(last_group)
        } else {
            groups.iter().position(|g| *g.resource == entry.resource)
        };
        let gi = found.unwrap_or_else(|| {
            groups.push(Group {
                resource: &entry.resource,
                resource_len: kvs_len(&entry.resource),
                scopes: Vec::new(),
            });
            groups.len() - 1
        });
        last_group = gi;
        let g = &mut groups[gi];
        let si = match g.scopes.last() {
            Some(s) if s.name == entry.scope_name => g.scopes.len() - 1,
            _ => match g.scopes.iter().position(|s| s.name == entry.scope_name) {
                Some(si) => si,
                None => {
                    g.scopes.push(Scope::new(gi, g.resource_len, entry));
                    g.scopes.len() - 1
                }
            },
        };
        let scope = &mut g.scopes[si];
        if group_is_first(gi) && si == 0 {
            // Where (nearly) every record of a batch goes: grown by estimate.
            scope.make_room(entries.len() - i);
        }
        // ScopeLogs.log_records = 2
        put_record_field(&mut scope.bytes, 2, entry);
        scope.records += 1;
    }
    if let [g] = groups.as_mut_slice()
        && let [s] = g.scopes.as_mut_slice()
        && s.prefix > 0
    {
        let mut head = Vec::with_capacity(s.prefix);
        put_len_key(
            &mut head,
            1,
            group_len(g.resource_len, [(s.name, s.records_len())].into_iter()),
        );
        put_resource(&mut head, g.resource, g.resource_len);
        put_scope_logs_head(&mut head, s.name, s.records_len());
        let start = s.prefix - head.len();
        let mut bytes = std::mem::take(&mut s.bytes);
        bytes[start..s.prefix].copy_from_slice(&head);
        return Bytes::from(bytes).slice(start..);
    }
    // Several resources or scopes: put the pieces together.
    let scopes = |g: &Group<'_>| {
        let lens: Vec<(&str, usize)> = g.scopes.iter().map(|s| (s.name, s.records_len())).collect();
        group_len(g.resource_len, lens.into_iter())
    };
    let total: usize = groups.iter().map(|g| field_len(scopes(g))).sum();
    let mut out = Vec::with_capacity(total);
    for g in &groups {
        // ExportLogsServiceRequest.resource_logs = 1
        put_len_key(&mut out, 1, scopes(g));
        put_resource(&mut out, g.resource, g.resource_len);
        for s in &g.scopes {
            put_scope_logs_head(&mut out, s.name, s.records_len());
            out.extend_from_slice(&s.bytes[s.prefix..]);
        }
    }
    debug_assert_eq!(out.len(), total);
    Bytes::from(out)
}

/// Records encoded as a batch processor receives them (see [`EncodedLogs`]), exactly as
/// [`encode_request`] writes them.
pub struct OtlpRecords;

impl RecordEncoder for OtlpRecords {
    fn start(&self, resource: &Map, scope_name: &Text) -> RecordGroup {
        let prefix = HEADER_ROOM
            + field_len(kvs_len(resource))
            + HEADER_ROOM
            + field_len(string_field_len(scope_name));
        let mut bytes = Vec::with_capacity(prefix + MIN_ROOM);
        bytes.resize(prefix, 0);
        RecordGroup {
            resource: resource.clone(),
            scope_name: scope_name.clone(),
            bytes,
            prefix,
            count: 0,
        }
    }

    fn push(&self, group: &mut RecordGroup, entry: &Entry) {
        // Resources compared as printed too: one holding a NaN equals nothing, itself
        // included.
        debug_assert!(
            entry.scope_name == group.scope_name
                && (entry.resource == group.resource
                    || format!("{:?}", entry.resource) == format!("{:?}", group.resource))
        );
        // ScopeLogs.log_records = 2
        put_record_field(&mut group.bytes, 2, entry);
        group.count += 1;
    }
}

/// The encoded request for records encoded by [`OtlpRecords`], as [`encode_request`]
/// writes it for their entries. The usual lot, one group that nothing else holds (one
/// exporter), gets what encloses its records written into the room in front of them;
/// otherwise the pieces are copied together. Resources are read now, as they may have
/// changed since the records were encoded (a config-version stamp). A stamp that makes
/// two groups' resources equal leaves them two ScopeLogs under one ResourceLogs, where
/// [`encode_request`] would have merged their records: the same records, grouped
/// differently.
pub(crate) fn request_of_records(logs: Arc<EncodedLogs>) -> Bytes {
    match Arc::try_unwrap(logs) {
        Ok(mut logs) if logs.groups.len() == 1 => {
            let mut group = logs.groups.pop().expect("one group");
            let resource_len = kvs_len(&group.resource);
            let head = group_head(&group, resource_len);
            if head.len() > group.prefix {
                return assemble(std::slice::from_ref(&group));
            }
            let start = group.prefix - head.len();
            group.bytes[start..group.prefix].copy_from_slice(&head);
            // Room reserved for a full batch stays with the request (queued, perhaps for a
            // long outage) unless given back: a batch sent early by its timeout is small.
            if group.bytes.capacity() - group.bytes.len() > group.bytes.len() / 8 {
                group.bytes.shrink_to_fit();
            }
            Bytes::from(group.bytes).slice(start..)
        }
        Ok(logs) => assemble(&logs.groups),
        Err(shared) => assemble(&shared.groups),
    }
}

/// What encloses one group's records when it is a request's only group: the
/// ResourceLogs key and length, the resource, and the ScopeLogs head.
fn group_head(group: &RecordGroup, resource_len: usize) -> Vec<u8> {
    let scope = group.scope_name.as_str();
    let records_len = group.records().len();
    let mut head = Vec::with_capacity(2 * HEADER_ROOM + field_len(resource_len) + scope.len() + 8);
    put_len_key(
        &mut head,
        1,
        group_len(resource_len, [(scope, records_len)].into_iter()),
    );
    put_resource(&mut head, &group.resource, resource_len);
    put_scope_logs_head(&mut head, scope, records_len);
    head
}

/// The request of several groups, copied together: groups of equal resources go under one
/// ResourceLogs, in the order of their first records, as [`encode_request`] groups
/// entries.
fn assemble(groups: &[RecordGroup]) -> Bytes {
    // Per resource: its first group, its Resource message's length, and its groups.
    let mut resources: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        match resources
            .iter_mut()
            .find(|(first, _, _)| groups[*first].resource == g.resource)
        {
            Some((_, _, members)) => members.push(i),
            None => resources.push((i, kvs_len(&g.resource), vec![i])),
        }
    }
    let resource_logs_len = |(_, resource_len, members): &(usize, usize, Vec<usize>)| {
        let scopes = members
            .iter()
            .map(|&i| (groups[i].scope_name.as_str(), groups[i].records().len()));
        group_len(*resource_len, scopes)
    };
    let total: usize = resources
        .iter()
        .map(|r| field_len(resource_logs_len(r)))
        .sum();
    let mut out = Vec::with_capacity(total);
    for r in &resources {
        // ExportLogsServiceRequest.resource_logs = 1
        put_len_key(&mut out, 1, resource_logs_len(r));
        put_resource(&mut out, &groups[r.0].resource, r.1);
        for &i in &r.2 {
            let g = &groups[i];
            put_scope_logs_head(&mut out, &g.scope_name, g.records().len());
            out.extend_from_slice(g.records());
        }
    }
    debug_assert_eq!(out.len(), total);
    Bytes::from(out)
}

/// Entries sharing a resource (equal maps), in first-seen order.
struct Group<'a> {
    resource: &'a Map,
    /// The Resource message's length.
    resource_len: usize,
    scopes: Vec<Scope<'a>>,
}

/// The records of one group that share a scope name, in first-seen order, encoded after
/// `prefix` bytes kept free.
struct Scope<'a> {
    name: &'a str,
    prefix: usize,
    bytes: Vec<u8>,
    records: usize,
}

impl<'a> Scope<'a> {
    /// The scope of `first`, in group `group`.
    fn new(group: usize, resource_len: usize, first: &'a Entry) -> Self {
        let name = first.scope_name.as_str();
        let prefix = if group_is_first(group) {
            // Room for what encloses the records, written once their size is known.
            HEADER_ROOM + field_len(resource_len) + HEADER_ROOM + field_len(string_field_len(name))
        } else {
            0
        };
        let mut bytes = Vec::with_capacity(prefix + MIN_ROOM);
        bytes.resize(prefix, 0);
        Scope {
            name,
            prefix,
            bytes,
            records: 0,
        }
    }

    /// Keeps room for the next record, and when there is too little, reserves it for the
    /// `left` records to come if they are like those so far (an eighth more, at most
    /// [`ESTIMATE_MAX`]). Left to itself the buffer would double, and a batch's request
    /// take up to twice its size.
    fn make_room(&mut self, left: usize) {
        let average = self.records_len().checked_div(self.records).unwrap_or(0);
        let next = average.saturating_mul(2).max(MIN_ROOM);
        if self.bytes.capacity() - self.bytes.len() < next {
            // A huge first record must not make the estimate for thousands of small ones
            // huge: past the cap the buffer grows as vectors do.
            let estimate = average.saturating_mul(left).min(ESTIMATE_MAX);
            self.bytes.reserve_exact(estimate + estimate / 8 + next);
        }
    }

    fn records_len(&self) -> usize {
        self.bytes.len() - self.prefix
    }
}

/// A ResourceLogs message's length, from its scopes' names and record bytes.
fn group_len<'s>(resource_len: usize, scopes: impl Iterator<Item = (&'s str, usize)>) -> usize {
    field_len(resource_len)
        + scopes
            .map(|(name, records)| field_len(field_len(string_field_len(name)) + records))
            .sum::<usize>()
}

/// ResourceLogs.resource = 1: Resource.attributes = 1.
fn put_resource(out: &mut Vec<u8>, resource: &Map, resource_len: usize) {
    put_len_key(out, 1, resource_len);
    put_kvs(out, 1, resource);
}

/// ResourceLogs.scope_logs = 2, up to its records: ScopeLogs.scope = 1 holding
/// InstrumentationScope.name = 1.
fn put_scope_logs_head(out: &mut Vec<u8>, name: &str, records: usize) {
    let scope = string_field_len(name);
    put_len_key(out, 2, field_len(scope) + records);
    put_len_key(out, 1, scope);
    put_string_field(out, 1, name);
}

/// Nanoseconds since the Unix epoch, as `convert` computes them.
fn unix_nanos(ts: Timestamp) -> u64 {
    u64::try_from(ts.as_nanosecond().max(0)).unwrap_or(u64::MAX)
}

/// The bytes of a length-delimited field (key, length, content) with `len` bytes of
/// content. Every field number used here is below 16, so keys take one byte.
#[inline]
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A string field proto3 omits when empty.
#[inline]
fn string_field_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { field_len(s.len()) }
}

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A KeyValue message (key omitted when empty, value always present).
fn kv_len(k: &str, v: &Value) -> usize {
    string_field_len(k) + field_len(any_len(v))
}

/// The KeyValues of a map, each as a length-delimited field.
fn kvs_len(map: &Map) -> usize {
    map.iter().map(|(k, v)| field_len(kv_len(k, v))).sum()
}

/// An AnyValue message. A set oneof field is written even when it holds its default.
#[inline]
fn any_len(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Str(s) => field_len(s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(*i as u64),
        Value::Double(_) => 9,
        Value::Bytes(b) => field_len(b.len()),
        Value::Array(_) | Value::Map(_) => nested_len(v),
    }
}

/// [`any_len`] for arrays and maps. Out of line: records mostly hold scalars, and
/// `any_len` is inlined where they are encoded.
#[inline(never)]
fn nested_len(v: &Value) -> usize {
    match v {
        Value::Array(items) => field_len(array_len(items)),
        Value::Map(m) => field_len(kvs_len(m)),
        scalar => any_len(scalar),
    }
}

/// An ArrayValue message.
fn array_len(items: &[Value]) -> usize {
    items.iter().map(|i| field_len(any_len(i))).sum()
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn put_len_key(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push(key(field, LEN));
    put_varint(out, len as u64);
}

#[inline]
fn put_bytes_field(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    put_len_key(out, field, b.len());
    append(out, b);
}

/// `out.extend_from_slice(b)`, with slices of up to 32 bytes (keys and most values of a
/// log record) copied as two overlapping word-sized moves: a `memcpy` call for each key
/// and value of every record cost more than the copy itself.
#[inline(always)]
fn append(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n > 32 {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: `out` has room for `n` more bytes, which `copy_small` fills with `b`.
    unsafe {
        copy_small(b, out.as_mut_ptr().add(len));
        out.set_len(len + n);
    }
}

/// Copies `b`, at most 32 bytes, to `dst` with a few word-sized moves (see [`append`]).
///
/// # Safety
/// `b.len() <= 32`, and `dst` is valid for writing `b.len()` bytes that do not overlap `b`.
#[inline(always)]
unsafe fn copy_small(b: &[u8], dst: *mut u8) {
    let (n, src) = (b.len(), b.as_ptr());
    debug_assert!(n <= 32);
    // SAFETY: each move below reads only within `b` and writes only within
    // `dst[..n]` (the two moves of a size overlap when `n` is below twice that size), so
    // `dst[..n]` ends up holding `b`.
    unsafe {
        match n {
            16..=32 => copy_ends::<16>(src, dst, n),
            8..=15 => copy_ends::<8>(src, dst, n),
            4..=7 => copy_ends::<4>(src, dst, n),
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            _ => {}
        }
    }
}

/// Copies `n` bytes (`W <= n <= 2 * W`) as the first `W` and the last `W`.
///
/// # Safety
/// `src` is valid for reading and `dst` for writing `n` bytes.
#[inline(always)]
unsafe fn copy_ends<const W: usize>(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: as the caller vouches, and `W <= n`.
    unsafe {
        let head = std::ptr::read_unaligned(src.cast::<[u8; W]>());
        let tail = std::ptr::read_unaligned(src.add(n - W).cast::<[u8; W]>());
        std::ptr::write_unaligned(dst.cast::<[u8; W]>(), head);
        std::ptr::write_unaligned(dst.add(n - W).cast::<[u8; W]>(), tail);
    }
}

/// Omitted when empty (proto3 default).
fn put_string_field(out: &mut Vec<u8>, field: u8, s: &str) {
    if !s.is_empty() {
        put_bytes_field(out, field, s.as_bytes());
    }
}

#[inline]
fn put_fixed64(out: &mut Vec<u8>, field: u8, v: u64) {
    out.push(key(field, FIXED64));
    out.extend_from_slice(&v.to_le_bytes());
}

/// The first group is where a batch's records usually all go (one resource, one scope).
fn group_is_first(group: usize) -> bool {
    group == 0
}

/// Room kept for a record's length: two bytes hold lengths from 128 bytes to 16 KiB, which
/// is what log records are.
const RECORD_LEN_ROOM: usize = 2;

/// A LogRecord as length-delimited field `field`. Its length is not computed beforehand
/// (that walked every attribute twice): the record is written after room for a two-byte
/// length, and moved by a byte or more in the rare case its length needs another size.
fn put_record_field(out: &mut Vec<u8>, field: u8, e: &Entry) {
    out.push(key(field, LEN));
    let len_at = out.len();
    out.extend_from_slice(&[0; RECORD_LEN_ROOM]);
    put_record(out, e);
    let len = out.len() - len_at - RECORD_LEN_ROOM;
    let needed = varint_len(len as u64);
    if needed < RECORD_LEN_ROOM {
        out.drain(len_at..len_at + RECORD_LEN_ROOM - needed);
    } else if needed > RECORD_LEN_ROOM {
        out.splice(
            len_at..len_at,
            std::iter::repeat_n(0, needed - RECORD_LEN_ROOM),
        );
    }
    write_varint(&mut out[len_at..len_at + needed], len as u64);
}

/// `v` as a varint filling `into` exactly (`into.len()` is `varint_len(v)`).
fn write_varint(into: &mut [u8], mut v: u64) {
    let last = into.len() - 1;
    for b in &mut into[..last] {
        *b = (v as u8) | 0x80;
        v >>= 7;
    }
    into[last] = v as u8;
}

/// LogRecord, fields in tag order (as prost writes them).
fn put_record(out: &mut Vec<u8>, e: &Entry) {
    let time = e.timestamp.map_or(0, unix_nanos);
    if !put_short_head(out, time, e) {
        if time != 0 {
            put_fixed64(out, 1, time);
        }
        if e.severity != 0 {
            out.push(key(2, VARINT));
            put_varint(out, u64::from(e.severity));
        }
        put_string_field(out, 3, &e.severity_text);
        put_len_key(out, 5, any_len(&e.body));
        put_any(out, &e.body);
    }
    put_kvs(out, 6, &e.attributes);
    // 7 dropped_attributes_count: always 0.
    if let Some(&flags) = e.trace_flags.first().filter(|&&b| b != 0) {
        out.push(key(8, FIXED32));
        out.extend_from_slice(&u32::from(flags).to_le_bytes());
    }
    if !e.trace_id.is_empty() {
        put_bytes_field(out, 9, &e.trace_id);
    }
    if !e.span_id.is_empty() {
        put_bytes_field(out, 10, &e.span_id);
    }
    let observed = unix_nanos(e.observed_timestamp);
    if observed != 0 {
        put_fixed64(out, 11, observed);
    }
    // 12 event_name: always empty.
}

/// A LogRecord's fields before its attributes (time, severity number and text, body)
/// through a [`Cursor`], when the body is a string and it and the severity text are under
/// 126 bytes, so that every length is one byte: what most log records hold. False
/// (nothing written) otherwise.
#[inline(always)]
fn put_short_head(out: &mut Vec<u8>, time: u64, e: &Entry) -> bool {
    let Value::Str(body) = &e.body else {
        return false;
    };
    let (body, text) = (body.as_bytes(), e.severity_text.as_bytes());
    if body.len() >= 126 || text.len() >= 126 {
        return false;
    }
    let time_len = if time != 0 { 9 } else { 0 };
    let severity_len = if e.severity != 0 {
        1 + varint_len(u64::from(e.severity))
    } else {
        0
    };
    let text_len = if text.is_empty() { 0 } else { 2 + text.len() };
    // The body: its field's key and length, then the AnyValue's string field (key,
    // length, bytes).
    let body_len = 4 + body.len();
    let mut at = Cursor::reserve(out, time_len + severity_len + text_len + body_len);
    // SAFETY: exactly the bytes reserved are written: each part as counted above.
    unsafe {
        if time != 0 {
            at.byte(key(1, FIXED64));
            at.fixed64(time);
        }
        if e.severity != 0 {
            at.byte(key(2, VARINT));
            at.varint(u64::from(e.severity));
        }
        if !text.is_empty() {
            at.byte(key(3, LEN));
            at.byte(text.len() as u8);
            at.copy(text);
        }
        at.byte(key(5, LEN));
        at.byte((2 + body.len()) as u8);
        at.byte(key(1, LEN));
        at.byte(body.len() as u8);
        at.copy(body);
        at.finish(out);
    }
    true
}

/// Each entry of `map` as a KeyValue in field `field`.
fn put_kvs(out: &mut Vec<u8>, field: u8, map: &Map) {
    for (k, v) in map {
        if put_short_kv(out, field, k.as_bytes(), v) {
            continue;
        }
        let value = any_len(v);
        put_len_key(out, field, string_field_len(k) + field_len(value));
        put_string_field(out, 1, k);
        put_len_key(out, 2, value);
        put_any(out, v);
    }
}

/// A KeyValue of a non-empty key and a scalar value, under 128 bytes in all, so that
/// every length in it is one byte: what nearly every attribute of a log record is. Written
/// through a [`Cursor`]. False (nothing written) for any other KeyValue.
#[inline(always)]
fn put_short_kv(out: &mut Vec<u8>, field: u8, k: &[u8], v: &Value) -> bool {
    // The AnyValue's content: its one field's key and value.
    let content = match v {
        Value::Str(s) => 2 + s.len(),
        Value::Int(i) => 1 + varint_len(*i as u64),
        Value::Double(_) => 9,
        Value::Bool(_) => 2,
        _ => return false,
    };
    // Besides the key and the content: the KeyValue's own key and length, the key field's
    // key and length, the value field's key and length.
    let all = 6 + k.len() + content;
    if k.is_empty() || all >= 128 {
        return false;
    }
    let mut at = Cursor::reserve(out, all);
    // SAFETY: exactly `all` bytes are written: the five one-byte headers and lengths
    // (each length under 128), the key, the value field's header and the `content` bytes
    // counted above for each kind of value.
    unsafe {
        at.byte(key(field, LEN));
        at.byte((all - 2) as u8);
        at.byte(key(1, LEN));
        at.byte(k.len() as u8);
        at.copy(k);
        at.byte(key(2, LEN));
        at.byte(content as u8);
        match v {
            Value::Str(s) => {
                at.byte(key(1, LEN));
                at.byte(s.len() as u8);
                at.copy(s.as_bytes());
            }
            Value::Int(i) => {
                at.byte(key(3, VARINT));
                at.varint(*i as u64);
            }
            Value::Double(d) => {
                at.byte(key(4, FIXED64));
                at.fixed64(d.to_bits());
            }
            Value::Bool(b) => {
                at.byte(key(2, VARINT));
                at.byte(u8::from(*b));
            }
            _ => {}
        }
        at.finish(out);
    }
    true
}

/// Bytes being written into room reserved in the output, through a pointer that stays in
/// a register. Pushed byte by byte onto the vector, each byte stored made the compiler
/// reload the vector's pointer, length and capacity (a byte store may alias them) and
/// store the length again.
///
/// Invariant: between [`Cursor::reserve`] and [`Cursor::finish`], the output vector is not
/// touched, and exactly the bytes reserved are written.
struct Cursor {
    at: *mut u8,
    /// The output's length once the bytes reserved are written.
    end: usize,
}

impl Cursor {
    /// Reserves `n` bytes at the end of `out`, to be written through the cursor.
    #[inline(always)]
    fn reserve(out: &mut Vec<u8>, n: usize) -> Cursor {
        out.reserve(n);
        let len = out.len();
        Cursor {
            // SAFETY: `n` bytes are reserved past `len`.
            at: unsafe { out.as_mut_ptr().add(len) },
            end: len + n,
        }
    }

    /// # Safety
    /// Within the bytes reserved (see the type's invariant).
    #[inline(always)]
    unsafe fn byte(&mut self, b: u8) {
        // SAFETY: as the caller vouches.
        unsafe {
            *self.at = b;
            self.at = self.at.add(1);
        }
    }

    /// # Safety
    /// Within the bytes reserved (see the type's invariant).
    #[inline(always)]
    unsafe fn copy(&mut self, b: &[u8]) {
        // SAFETY: as the caller vouches; `b` is borrowed apart from the output, which is
        // borrowed mutably by the cursor's owner, so the two do not overlap.
        unsafe {
            if b.len() <= 32 {
                copy_small(b, self.at);
            } else {
                std::ptr::copy_nonoverlapping(b.as_ptr(), self.at, b.len());
            }
            self.at = self.at.add(b.len());
        }
    }

    /// # Safety
    /// Within the bytes reserved (see the type's invariant).
    #[inline(always)]
    unsafe fn varint(&mut self, mut v: u64) {
        // SAFETY: as the caller vouches.
        unsafe {
            while v >= 0x80 {
                self.byte((v as u8) | 0x80);
                v >>= 7;
            }
            self.byte(v as u8);
        }
    }

    /// # Safety
    /// Within the bytes reserved (see the type's invariant).
    #[inline(always)]
    unsafe fn fixed64(&mut self, v: u64) {
        // SAFETY: as the caller vouches.
        unsafe {
            std::ptr::write_unaligned(self.at.cast::<[u8; 8]>(), v.to_le_bytes());
            self.at = self.at.add(8);
        }
    }

    /// Takes the bytes written into the output's length.
    ///
    /// # Safety
    /// Every byte reserved was written (see the type's invariant).
    #[inline(always)]
    unsafe fn finish(self, out: &mut Vec<u8>) {
        debug_assert_eq!(self.at, out.as_mut_ptr().wrapping_add(self.end));
        // SAFETY: as the caller vouches, `out[..self.end]` is initialised.
        unsafe { out.set_len(self.end) };
    }
}

/// The content of an AnyValue message.
#[inline]
fn put_any(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {}
        Value::Str(s) => put_bytes_field(out, 1, s.as_bytes()),
        Value::Bool(b) => {
            out.push(key(2, VARINT));
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(key(3, VARINT));
            put_varint(out, *i as u64);
        }
        Value::Double(d) => put_fixed64(out, 4, d.to_bits()),
        Value::Array(_) | Value::Map(_) => put_nested(out, v),
        Value::Bytes(b) => put_bytes_field(out, 7, b),
    }
}

/// [`put_any`] for arrays and maps (AnyValue.array_value = 5, kvlist_value = 6). Out of
/// line: records mostly hold scalars, and `put_any` is inlined where they are encoded.
#[inline(never)]
fn put_nested(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Array(items) => {
            put_len_key(out, 5, array_len(items));
            for item in items.iter() {
                put_len_key(out, 1, any_len(item));
                put_any(out, item);
            }
        }
        Value::Map(m) => {
            put_len_key(out, 6, kvs_len(m));
            put_kvs(out, 1, m);
        }
        scalar => put_any(out, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_otlp_request;
    use prost::Message;

    #[test]
    fn a_huge_first_record_does_not_make_the_estimate_huge() {
        let mut entries = vec![entry(Value::from("x".repeat(1 << 20)))];
        entries.extend((0..50).map(|i| entry(Value::from(format!("line {i}")))));
        same_as_prost(&entries);
        let mut scope = Scope::new(0, 0, &entries[0]);
        put_record_field(&mut scope.bytes, 2, &entries[0]);
        scope.records = 1;
        scope.make_room(8191);
        assert!(scope.bytes.capacity() < scope.bytes.len() + 2 * ESTIMATE_MAX + (4 << 20));
    }

    fn same_as_prost(entries: &[Entry]) {
        let want = to_otlp_request(entries).encode_to_vec();
        let got = encode_request(entries);
        assert_eq!(got[..], want[..], "bytes differ for {entries:#?}");
        // Encoded one by one, grouped as a batch processor groups them.
        if !entries.is_empty() {
            let logs = Arc::new(records(entries));
            let copied = request_of_records(logs.clone());
            assert_eq!(
                copied[..],
                want[..],
                "copied records differ for {entries:#?}"
            );
            let alone = request_of_records(logs);
            assert_eq!(alone[..], want[..], "records differ for {entries:#?}");
        }
    }

    /// `entries` encoded in groups of one resource and scope, as a batch processor does.
    fn records(entries: &[Entry]) -> EncodedLogs {
        let mut logs = EncodedLogs::default();
        for e in entries {
            let at = logs
                .groups
                .iter()
                .position(|g| g.resource == e.resource && g.scope_name == e.scope_name)
                .unwrap_or_else(|| {
                    logs.groups
                        .push(OtlpRecords.start(&e.resource, &e.scope_name));
                    logs.groups.len() - 1
                });
            OtlpRecords.push(&mut logs.groups[at], e);
            logs.count += 1;
        }
        logs
    }

    #[test]
    fn records_take_a_resource_changed_after_them() {
        let mut entries: Vec<Entry> = (0..3).map(|i| entry(Value::Int(i))).collect();
        let mut logs = records(&entries);
        let stamp: (Text, Value) = ("config.version".into(), Value::from("x".repeat(300)));
        logs.groups[0]
            .resource
            .insert(stamp.0.clone(), stamp.1.clone());
        for e in &mut entries {
            e.resource.insert(stamp.0.clone(), stamp.1.clone());
        }
        let want = to_otlp_request(&entries).encode_to_vec();
        assert_eq!(request_of_records(Arc::new(logs))[..], want[..]);
    }

    fn entry(body: Value) -> Entry {
        let mut e = Entry::new(body);
        e.observed_timestamp = Timestamp::from_nanosecond(1_795_467_600_200_000_000).unwrap();
        e
    }

    #[test]
    fn empty_batch() {
        same_as_prost(&[]);
        assert!(encode_request(&[]).is_empty());
    }

    #[test]
    fn every_field_and_value_type() {
        let mut e = entry(Value::from("msg"));
        e.timestamp = Some(Timestamp::from_nanosecond(1_795_467_600_123_456_789).unwrap());
        e.severity = 24;
        e.severity_text = "FATAL4".into();
        e.trace_id = (1..=16).collect();
        e.span_id = (1..=8).collect();
        e.trace_flags = vec![1, 7];
        e.scope_name = "scope".into();
        e.resource.insert("host.name".into(), Value::from("web-01"));
        let inner: Map = [("k".into(), Value::Int(1)), ("".into(), Value::Null)]
            .into_iter()
            .collect();
        for (k, v) in [
            ("null", Value::Null),
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("zero", Value::Int(0)),
            ("neg", Value::Int(-1)),
            ("min", Value::Int(i64::MIN)),
            ("max", Value::Int(i64::MAX)),
            ("d", Value::Double(-0.25)),
            ("d0", Value::Double(0.0)),
            ("nan", Value::Double(f64::NAN)),
            ("empty", Value::from("")),
            ("utf8", Value::from("héllo ✓")),
            ("bytes", Value::Bytes(vec![0, 255].into())),
            ("nobytes", Value::Bytes(Box::default())),
            (
                "arr",
                Value::Array(Box::new(vec![
                    Value::Null,
                    Value::from("a"),
                    Value::Map(Box::new(inner.clone())),
                ])),
            ),
            ("noarr", Value::Array(Box::default())),
            ("map", Value::Map(Box::new(inner.clone()))),
            ("nomap", Value::Map(Box::default())),
            ("", Value::from("empty key")),
        ] {
            e.attributes.insert(k.into(), v);
        }
        same_as_prost(std::slice::from_ref(&e));
        e.body = Value::Map(Box::new(inner));
        same_as_prost(&[e]);
    }

    #[test]
    fn defaults_are_omitted() {
        let mut e = Entry::new(Value::Null);
        e.observed_timestamp = Timestamp::from_second(-5).unwrap();
        e.trace_flags = vec![0];
        same_as_prost(&[e]);
        same_as_prost(&[Entry::default()]);
    }

    #[test]
    fn long_values_need_long_varints() {
        let mut e = entry(Value::from("x".repeat(70_000)));
        e.attributes
            .insert("k".repeat(200).into(), Value::from("v".repeat(130)));
        same_as_prost(&[e.clone(), e]);
    }

    #[test]
    fn groups_by_resource_then_scope() {
        let mk = |resource: &str, scope: &str, body: &str| {
            let mut e = entry(Value::from(body));
            if !resource.is_empty() {
                e.resource.insert("host".into(), Value::from(resource));
            }
            e.scope_name = scope.into();
            e
        };
        same_as_prost(&[
            mk("b", "s1", "1"),
            mk("a", "s2", "2"),
            mk("b", "s2", "3"),
            mk("b", "s1", "4"),
            mk("a", "s2", "5"),
            mk("", "", "6"),
        ]);
        // Equal maps in another order share a group; NaN never equals anything.
        let mut x = mk("", "", "x");
        x.resource.insert("a".into(), Value::Int(1));
        x.resource.insert("b".into(), Value::Int(2));
        let mut y = mk("", "", "y");
        y.resource.insert("b".into(), Value::Int(2));
        y.resource.insert("a".into(), Value::Int(1));
        let mut n = mk("", "", "n");
        n.resource.insert("nan".into(), Value::Double(f64::NAN));
        same_as_prost(&[x, n.clone(), y, n]);
    }

    /// Random entries (a fixed seed, so failures reproduce) encode as prost encodes them.
    #[test]
    fn random_entries_match_prost() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
            match next() % if depth > 2 { 6 } else { 8 } {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => Value::Int(next() as i64 >> (next() % 64)),
                3 => Value::Double(f64::from_bits(next())),
                4 => Value::Str(("s".repeat((next() % 200) as usize)).into()),
                5 => Value::Bytes(vec![7; (next() % 20) as usize].into()),
                6 => Value::Array(Box::new(
                    (0..next() % 4).map(|_| value(next, depth + 1)).collect(),
                )),
                _ => Value::from(
                    (0..next() % 4)
                        .map(|i| (format!("k{i}").into(), value(next, depth + 1)))
                        .collect::<Map>(),
                ),
            }
        }
        for _ in 0..200 {
            let entries: Vec<Entry> = (0..next() % 20)
                .map(|_| {
                    let mut e = Entry::new(value(&mut next, 0));
                    e.observed_timestamp =
                        Timestamp::from_nanosecond((next() >> 2) as i128 - (1 << 60)).unwrap();
                    if next().is_multiple_of(2) {
                        e.timestamp =
                            Some(Timestamp::from_nanosecond((next() >> 3) as i128).unwrap());
                    }
                    e.severity = (next() % 25) as u8;
                    e.severity_text = "x"
                        .repeat([0, 1, 2, 125, 126, 200][(next() % 6) as usize])
                        .into();
                    for i in 0..next() % 10 {
                        e.attributes
                            .insert(format!("a{i}").into(), value(&mut next, 0));
                    }
                    if next().is_multiple_of(4) {
                        e.resource
                            .insert("r".into(), Value::Int((next() % 3) as i64));
                    }
                    e.scope_name = ["", "a", "b"][(next() % 3) as usize].into();
                    e.trace_id = vec![1; (next() % 17) as usize];
                    e.span_id = vec![2; (next() % 9) as usize];
                    e.trace_flags = vec![(next() % 3) as u8; (next() % 2) as usize];
                    e
                })
                .collect();
            same_as_prost(&entries);
        }
    }
}
