//! Batches: entries plus the acknowledgement tokens that cover them.

use crate::ack::AckSet;
use crate::entry::Entry;
use crate::value::{Map, Text};
use std::sync::Arc;

/// What receivers and processors pass along. A batch with no entries may still carry tokens
/// (every entry was filtered out); settling it acknowledges them.
///
/// After a batch processor that encodes ([`RecordEncoder`]), a batch holds its records as
/// [`EncodedLogs`] instead, and no entries.
#[derive(Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    pub acks: AckSet,
    pub encoded: Option<Box<EncodedLogs>>,
}

impl Batch {
    pub fn new(entries: Vec<Entry>, acks: AckSet) -> Self {
        Batch {
            entries,
            acks,
            encoded: None,
        }
    }

    /// Records: entries, or encoded records.
    pub fn len(&self) -> usize {
        self.entries.len() + self.encoded.as_ref().map_or(0, |e| e.count)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves `other`'s entries and tokens into this batch. Into an empty batch with less
    /// room, `other`'s vector is taken whole instead of copying its entries. Neither holds
    /// encoded records.
    pub fn append(&mut self, mut other: Batch) {
        debug_assert!(self.encoded.is_none() && other.encoded.is_none());
        if self.entries.is_empty() && self.entries.capacity() < other.entries.capacity() {
            std::mem::swap(&mut self.entries, &mut other.entries);
        } else {
            self.entries.append(&mut other.entries);
        }
        self.acks.append(&mut other.acks);
    }

    /// Splits off the entries after the first `at`. Both halves hold the tokens, so they are
    /// acknowledged only when both halves are.
    pub fn split_off(&mut self, at: usize) -> Batch {
        debug_assert!(self.encoded.is_none(), "encoded records are not split");
        Batch {
            entries: self.entries.split_off(at),
            acks: self.acks.clone(),
            encoded: None,
        }
    }

    /// Freezes the entries for fan-out: exporters read them and never change them.
    pub fn into_shared(self) -> SharedBatch {
        SharedBatch {
            entries: Arc::new(Entries(self.entries)),
            acks: self.acks,
            encoded: self.encoded.map(Arc::from),
        }
    }
}

/// Records a batch processor encoded as they arrived, for the OTLP exporters after it (see
/// [`RecordEncoder`]): one group per resource and scope, in the order of their first
/// records.
///
/// Holding a batch this way, rather than as entries until it is full, keeps a quarter of
/// the memory (a record's bytes instead of its entry, map and strings), and frees each
/// entry soon after it was made, on the thread that made it.
#[derive(Debug, Default, PartialEq)]
pub struct EncodedLogs {
    pub groups: Vec<RecordGroup>,
    /// The records of all groups.
    pub count: usize,
}

/// Encoded records of one resource and scope: `bytes[prefix..]` holds `count` LogRecords,
/// each as a `ScopeLogs.log_records` field, of `resource` and of the scope named
/// `scope_name`; the `prefix` bytes in front are room for the messages that enclose them.
#[derive(Debug, Default, PartialEq)]
pub struct RecordGroup {
    pub resource: Map,
    pub scope_name: Text,
    pub bytes: Vec<u8>,
    pub prefix: usize,
    pub count: usize,
}

impl EncodedLogs {
    /// Encodes entries after the records already here, each into the group of its resource
    /// and scope, a new one if there is none, until an entry would make more than
    /// `max_groups` groups; returns how many were encoded. The first group reserves room for
    /// the rest of `entries` (they are likely of its resource too); others grow as they
    /// need.
    pub fn push_entries(
        &mut self,
        encoder: &dyn RecordEncoder,
        entries: &[Entry],
        max_groups: usize,
    ) -> usize {
        let mut last = 0;
        for (i, entry) in entries.iter().enumerate() {
            last = match self.group_of(entry, last) {
                Some(at) => at,
                None if self.groups.len() >= max_groups => return i,
                None => {
                    self.groups
                        .push(encoder.start(&entry.resource, &entry.scope_name));
                    self.groups.len() - 1
                }
            };
            let group = &mut self.groups[last];
            encoder.push(group, entry);
            self.count += 1;
            if group.count == 1 && last == 0 {
                group.reserve_records(entries.len() - i - 1);
            }
        }
        entries.len()
    }

    /// The group of `entry`'s resource and scope, looked for at `hint` first (where the
    /// previous entry went).
    pub fn group_of(&self, entry: &Entry, hint: usize) -> Option<usize> {
        // Names compared as byte slices call `memcmp` even when both are empty, as they are
        // for a filelog receiver's records; that call was a twentieth of encoding them.
        let same_name = |a: &Text, b: &Text| a.len() == b.len() && (a.is_empty() || a == b);
        let of = |g: &RecordGroup| {
            same_name(&g.scope_name, &entry.scope_name) && g.resource == entry.resource
        };
        match self.groups.get(hint) {
            Some(g) if of(g) => Some(hint),
            _ => self.groups.iter().position(of),
        }
    }
}

/// The most resource-and-scope groups a batch of encoded records holds: a batch with more
/// resources is sent in several (finding a record's group is a walk over the groups).
pub const MAX_GROUPS: usize = 64;

/// The most [`RecordGroup::reserve_records`] reserves ahead.
const RESERVE_MAX: usize = 16 << 20;

impl RecordGroup {
    /// The bytes of the records.
    pub fn records(&self) -> &[u8] {
        &self.bytes[self.prefix..]
    }

    /// Reserves room for `more` records like those so far, and an eighth more: a lot
    /// growing to a full batch is not copied and doubled as a growing vector would be.
    pub fn reserve_records(&mut self, more: usize) {
        let Some(average) = (self.bytes.len() - self.prefix).checked_div(self.count) else {
            return;
        };
        let want = average.saturating_mul(more).min(RESERVE_MAX);
        let want = want + want / 8;
        if self.bytes.capacity() - self.bytes.len() < want {
            self.bytes.reserve_exact(want);
        }
    }
}

/// Encodes entries as OTLP LogRecords into [`RecordGroup`]s. The exporters crate implements
/// it; a batch processor is given one when every exporter after it sends OTLP and nothing
/// else reads its batches' entries.
pub trait RecordEncoder: Send + Sync {
    /// An empty group for records of `resource` and the scope named `scope_name`.
    fn start(&self, resource: &Map, scope_name: &Text) -> RecordGroup;

    /// Appends `entry`, whose resource and scope are the group's.
    fn push(&self, group: &mut RecordGroup, entry: &Entry);
}

/// A batch as exporters get it: entries (or encoded records) shared between every exporter
/// of the pipeline, and this exporter's own holders of the tokens.
#[derive(Debug, Clone)]
pub struct SharedBatch {
    pub entries: Arc<Entries>,
    pub acks: AckSet,
    pub encoded: Option<Arc<EncodedLogs>>,
}

/// The entries of a [`SharedBatch`], read through `Deref`. When the last exporter lets go
/// of them they are [disposed](crate::recycle::dispose): freed on a receiver's thread.
#[derive(Debug, Default, PartialEq)]
pub struct Entries(Vec<Entry>);

impl Entries {
    pub fn new(entries: Vec<Entry>) -> Self {
        Entries(entries)
    }
}

impl std::ops::Deref for Entries {
    type Target = Vec<Entry>;
    fn deref(&self) -> &Vec<Entry> {
        &self.0
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        crate::recycle::dispose(std::mem::take(&mut self.0));
    }
}

impl SharedBatch {
    /// Records: entries, or encoded records.
    pub fn len(&self) -> usize {
        self.entries.len() + self.encoded.as_ref().map_or(0, |e| e.count)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LineEncoder;
    use crate::value::Value;

    fn entry(body: &str, host: &str, scope: &str) -> Entry {
        let mut e = Entry::new(body.into());
        e.resource.insert("host".into(), Value::from(host));
        e.scope_name = scope.into();
        e
    }

    #[test]
    fn entries_are_grouped_by_resource_and_scope_in_first_seen_order() {
        let entries = [
            entry("1", "a", ""),
            entry("2", "b", ""),
            entry("3", "a", "s"),
            entry("4", "a", ""),
            entry("5", "b", ""),
        ];
        let mut logs = EncodedLogs::default();
        assert_eq!(logs.push_entries(&LineEncoder, &entries, MAX_GROUPS), 5);
        assert_eq!(logs.count, 5);
        let groups: Vec<_> = logs
            .groups
            .iter()
            .map(|g| {
                (
                    g.resource["host"].to_text().to_string(),
                    g.scope_name.to_string(),
                    String::from_utf8(g.records().to_vec()).unwrap(),
                    g.count,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("a".into(), "".into(), "1\n4\n".into(), 2),
                ("b".into(), "".into(), "2\n5\n".into(), 2),
                ("a".into(), "s".into(), "3\n".into(), 1),
            ]
        );
        assert_eq!(logs.group_of(&entries[4], 0), Some(1), "past a wrong hint");
        assert_eq!(logs.group_of(&entry("6", "c", ""), 0), None);
        let mut empty = EncodedLogs::default();
        assert_eq!(empty.push_entries(&LineEncoder, &[], MAX_GROUPS), 0);
        assert_eq!(empty, EncodedLogs::default());
    }

    #[test]
    fn encoding_stops_before_a_group_beyond_the_limit() {
        let entries = [
            entry("1", "a", ""),
            entry("2", "b", ""),
            entry("3", "a", ""),
            entry("4", "c", ""),
            entry("5", "a", ""),
        ];
        let mut logs = EncodedLogs::default();
        assert_eq!(logs.push_entries(&LineEncoder, &entries, 2), 3);
        assert_eq!((logs.count, logs.groups.len()), (3, 2));
        assert_eq!(logs.groups[0].records(), b"1\n3\n");
    }

    #[test]
    fn a_group_reserves_room_for_the_entries_after_its_first() {
        let entries: Vec<Entry> = (0..100)
            .map(|i| entry(&format!("{i:03}"), "a", ""))
            .collect();
        let mut logs = EncodedLogs::default();
        logs.push_entries(&LineEncoder, &entries, MAX_GROUPS);
        let group = &logs.groups[0];
        assert_eq!(group.records().len(), 400);
        assert!(
            group.bytes.capacity() >= 400,
            "{} bytes reserved",
            group.bytes.capacity()
        );
    }
}
