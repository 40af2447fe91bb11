//! Batches: entries plus the acknowledgement tokens that cover them.

use crate::ack::AckSet;
use crate::entry::Entry;
use std::sync::Arc;

/// What receivers and processors pass along. A batch with no entries may still carry tokens
/// (every entry was filtered out); settling it acknowledges them.
#[derive(Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
    pub acks: AckSet,
}

impl Batch {
    pub fn new(entries: Vec<Entry>, acks: AckSet) -> Self {
        Batch { entries, acks }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves `other`'s entries and tokens into this batch. Into an empty batch with less
    /// room, `other`'s vector is taken whole instead of copying its entries.
    pub fn append(&mut self, mut other: Batch) {
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
        Batch {
            entries: self.entries.split_off(at),
            acks: self.acks.clone(),
        }
    }

    /// Freezes the entries for fan-out: exporters read them and never change them.
    pub fn into_shared(self) -> SharedBatch {
        SharedBatch {
            entries: Arc::new(Entries(self.entries)),
            acks: self.acks,
        }
    }
}

/// A batch as exporters get it: entries shared between every exporter of the pipeline, and
/// this exporter's own holders of the tokens.
#[derive(Debug, Clone)]
pub struct SharedBatch {
    pub entries: Arc<Entries>,
    pub acks: AckSet,
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
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
