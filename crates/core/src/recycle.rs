//! Freeing entries on the thread that built them.
//!
//! A file receiver's thread allocates every string and map of its entries; exporters, on
//! the async runtime's threads, are where the last of them is let go. With the system
//! allocator (glibc) that producer/consumer pattern is expensive: each free from another
//! thread goes back to the producer's arena under its lock, the producer's per-thread
//! cache never refills, and the arena fragments. In a json-ingest profile, allocation and
//! freeing took about a third of the instructions, and peak RSS was twice the live data.
//!
//! So a batch's entries, once no exporter holds them ([`crate::SharedBatch`] drops its
//! [`Entries`]), are handed to [`dispose`]; a receiver thread that registered as a
//! [`Collector`] frees them when it next calls [`collect`] (before building each batch and
//! whenever it wakes up). [`MAX_HELD`] lots of any size may wait, or more while they hold
//! at most [`MAX_HELD_ENTRIES`] entries in all (a batch processor that encodes lets go of
//! each receiver batch as it arrives); beyond that, or when no collector is registered (no
//! file receiver runs), entries are freed where they are let go, as before.

//!
//! The vectors that carry a receiver's batches are reused on its thread too ([`spare`] and
//! [`keep`]): a filelog receiver made and let go of two vectors of a thousand entries
//! (256 KB each) per batch. Blocks that size come from the heap between the small blocks
//! of the entries, which glibc's per-thread cache then holds; the holes they left were
//! filled with small blocks, so the next vectors took fresh heap, and the agent's memory
//! grew by about 7 MB per million json-ingest lines until the cache was full.

use crate::entry::Entry;
use std::cell::RefCell;
use std::sync::Mutex;

/// How many emptied vectors of entries a thread keeps for its next batches.
pub const SPARE_MAX: usize = 4;

thread_local! {
    /// Emptied vectors of entries, kept by [`keep`] for [`spare`].
    static SPARE: RefCell<Vec<Vec<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// An empty vector with room for `n` entries: the roomiest this thread kept (see [`keep`]),
/// grown if it must be, or a new one.
pub fn spare(n: usize) -> Vec<Entry> {
    let kept = SPARE.with_borrow_mut(|spare| {
        let roomiest = (0..spare.len()).max_by_key(|&i| spare[i].capacity())?;
        Some(spare.swap_remove(roomiest))
    });
    let mut v = kept.unwrap_or_default();
    v.reserve(n);
    v
}

/// Drops `entries`' entries here and keeps the emptied vector for this thread's next
/// [`spare`] (up to [`SPARE_MAX`] of them; the smallest is freed beyond that).
pub fn keep(mut entries: Vec<Entry>) {
    entries.clear();
    if entries.capacity() == 0 {
        return;
    }
    SPARE.with_borrow_mut(|spare| {
        spare.push(entries);
        if spare.len() > SPARE_MAX {
            let smallest = (0..spare.len())
                .min_by_key(|&i| spare[i].capacity())
                .expect("not empty");
            spare.swap_remove(smallest);
        }
    });
}

/// How many lots of entries may wait for a collector, whatever their size.
pub const MAX_HELD: usize = 2;

/// How many entries, in smaller lots, may wait for a collector.
pub const MAX_HELD_ENTRIES: usize = 16_384;

struct Bin {
    collectors: usize,
    held: Vec<Vec<Entry>>,
    /// The entries in `held`.
    held_entries: usize,
}

static BIN: Mutex<Bin> = Mutex::new(Bin {
    collectors: 0,
    held: Vec::new(),
    held_entries: 0,
});

fn bin() -> std::sync::MutexGuard<'static, Bin> {
    // Nothing panics while holding the lock; if something did, the bin is still valid.
    BIN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Entries nobody needs any more: freed by a collector thread if one runs, else here.
pub fn dispose(entries: Vec<Entry>) {
    if entries.is_empty() {
        return;
    }
    let mut b = bin();
    let room = b.held.len() < MAX_HELD || b.held_entries + entries.len() <= MAX_HELD_ENTRIES;
    if b.collectors > 0 && room {
        b.held_entries += entries.len();
        b.held.push(entries);
        return;
    }
    drop(b);
    drop(entries);
}

/// Frees what waits for a collector, on the calling thread.
pub fn collect() {
    let taken = {
        let mut b = bin();
        b.held_entries = 0;
        std::mem::take(&mut b.held)
    };
    drop(taken);
}

/// A thread that frees disposed entries (by calling [`collect`]) while this is alive.
pub struct Collector(());

impl Collector {
    pub fn register() -> Collector {
        bin().collectors += 1;
        Collector(())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Under the lock, so nothing is put in the bin after the last collector left.
        let taken = {
            let mut b = bin();
            b.collectors -= 1;
            if b.collectors == 0 {
                b.held_entries = 0;
                std::mem::take(&mut b.held)
            } else {
                Vec::new()
            }
        };
        drop(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn held() -> usize {
        bin().held.len()
    }

    /// Vectors let go with [`keep`] come back from [`spare`], emptied and roomiest first;
    /// at most [`SPARE_MAX`] are kept, on the thread that kept them.
    #[test]
    fn emptied_vectors_are_reused_on_their_thread() {
        let entries = |n: usize| vec![Entry::new(Value::from("x")); n];
        for n in [10, 300, 20, 1000, 5, 40] {
            keep(entries(n));
        }
        keep(Vec::new());
        let first = spare(100);
        assert!(first.is_empty());
        assert_eq!(first.capacity(), 1000, "the roomiest");
        let rooms: Vec<usize> = (0..SPARE_MAX).map(|_| spare(0).capacity()).collect();
        assert_eq!(
            rooms[..SPARE_MAX - 1],
            [300, 40, 20],
            "the smallest were freed"
        );
        assert_eq!(rooms[SPARE_MAX - 1], 0, "none left: a new one");
        assert!(spare(50).capacity() >= 50, "grown to the room asked for");
        keep(entries(7));
        std::thread::spawn(|| assert_eq!(spare(0).capacity(), 0, "another thread's"))
            .join()
            .unwrap();
        assert!(spare(0).capacity() >= 7);
    }

    #[test]
    fn entries_wait_for_a_collector_only_while_one_runs() {
        // One test touches the global bin, so the steps run in order here.
        dispose(vec![Entry::new(Value::from("no collector"))]);
        assert_eq!(held(), 0, "freed at once without a collector");

        let c = Collector::register();
        dispose(Vec::new());
        assert_eq!(held(), 0, "nothing to free");
        let big = || vec![Entry::new(Value::from("x")); MAX_HELD_ENTRIES / 2 + 1];
        for _ in 0..MAX_HELD + 3 {
            dispose(big());
        }
        assert_eq!(held(), MAX_HELD, "bounded; the rest freed at once");
        collect();
        assert_eq!(held(), 0);
        for _ in 0..MAX_HELD_ENTRIES + 3 {
            dispose(vec![Entry::new(Value::from("x"))]);
        }
        assert_eq!(
            held(),
            MAX_HELD_ENTRIES,
            "small lots: bounded by their entries"
        );
        collect();
        assert_eq!(held(), 0);

        dispose(vec![Entry::new(Value::from("left"))]);
        assert_eq!(held(), 1);
        drop(c);
        assert_eq!(held(), 0, "the last collector frees what is left");
        dispose(vec![Entry::new(Value::from("after"))]);
        assert_eq!(held(), 0);
    }
}
