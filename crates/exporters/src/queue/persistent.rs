//! The persistent sending queue: one redb database per exporter in the `file_storage`
//! extension's directory, table `requests` mapping a sequence number to a stored request.
//!
//! Invariants:
//! - a request's acks are settled as delivered only after the transaction inserting it
//!   committed durably (redb's default durability: fsync before `commit` returns);
//! - a request is removed only after the backend accepted it or rejected it for good, so a
//!   crash at any point loses nothing and at worst sends a request twice;
//! - keys grow with every insert, so the requests an earlier run left (the smallest keys)
//!   are handed out before anything newer.
//!
//! Stored value: a format byte (1), the record count as u64 little-endian, then the
//! request's OTLP protobuf bytes. Database calls block, so they run on tokio's blocking
//! threads.

use super::{Capacity, Item, Lease, Sizer, Slot, wait_for};
use crate::retry::Outcome;
use bytes::Bytes;
use centimane_core::config::ComponentId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
const FORMAT_V1: u8 = 1;
const HEADER: usize = 9;
/// redb's page cache. Its default (1 GiB) would let a long outage grow the agent's memory
/// by as much; requests are written once and read once, so a small cache loses little.
const CACHE_BYTES: usize = 8 << 20;
/// Wait before trying a failed database operation again (a full disk needs an operator).
const IO_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct PersistentQueue {
    id: ComponentId,
    path: PathBuf,
    db: Arc<Database>,
    sizer: Sizer,
    capacity: Capacity,
    state: Mutex<State>,
    ready: Notify,
}

struct State {
    /// Stored requests not handed out (key, capacity units), oldest first.
    waiting: VecDeque<(u64, u64)>,
    next_key: u64,
    closed: bool,
}

/// The database file of exporter `id`: `exporter_otlp_backup_queue.redb` for `otlp/backup`.
fn file_name(id: &ComponentId) -> String {
    format!("exporter_{}_queue.redb", id.to_string().replace('/', "_"))
}

fn encode(records: u64, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER + payload.len());
    value.push(FORMAT_V1);
    value.extend_from_slice(&records.to_le_bytes());
    value.extend_from_slice(payload);
    value
}

/// The record count and payload of a stored value; `None` if it is not one of ours.
fn decode(value: Vec<u8>) -> Option<(u64, Bytes)> {
    let (&format, rest) = value.split_first()?;
    let count: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    (format == FORMAT_V1).then(|| {
        (
            u64::from_le_bytes(count),
            Bytes::from(value).slice(HEADER..),
        )
    })
}

impl PersistentQueue {
    /// Opens (or creates) the exporter's database in `dir` and queues what it holds.
    /// Fails if another process has it open.
    pub(super) fn open(
        id: &ComponentId,
        dir: &Path,
        sizer: Sizer,
        capacity: Capacity,
    ) -> Result<PersistentQueue, String> {
        let path = dir.join(file_name(id));
        let fail = |e: &dyn std::fmt::Display| {
            format!("cannot open the persistent queue {}: {e}", path.display())
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| fail(&e))?;
        let Stored {
            waiting,
            next_key,
            records,
        } = scan(&db, sizer).map_err(|e| fail(&e))?;
        for (_, units) in &waiting {
            capacity.add(*units);
        }
        if !waiting.is_empty() {
            tracing::info!(exporter = %id, requests = waiting.len(), records, path = %path.display(), "sending what the persistent queue kept from the last run first");
        }
        Ok(PersistentQueue {
            id: id.clone(),
            path,
            db: Arc::new(db),
            sizer,
            capacity,
            state: Mutex::new(State {
                waiting,
                next_key,
                closed: false,
            }),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn push(&self, item: Item, abandon: &CancellationToken) -> bool {
        let units = self.sizer.units(item.records, &item.payload);
        if !self.capacity.reserve(units, abandon).await {
            return false;
        }
        let key = {
            let mut state = self.lock();
            let key = state.next_key;
            state.next_key += 1;
            key
        };
        let value = Arc::new(encode(item.records, &item.payload));
        loop {
            let written = self
                .blocking({
                    let value = value.clone();
                    move |db| {
                        let txn = db.begin_write()?;
                        txn.open_table(REQUESTS)?.insert(key, value.as_slice())?;
                        txn.commit()?;
                        Ok(())
                    }
                })
                .await;
            match written {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(exporter = %self.id, path = %self.path.display(), %error, "cannot write to the persistent queue; holding the batch and trying again");
                    tokio::select! {
                        biased;
                        () = abandon.cancelled() => {
                            self.capacity.release(units);
                            return false;
                        }
                        () = tokio::time::sleep(IO_RETRY) => {}
                    }
                }
            }
        }
        // Durable now: the receiver may commit the offsets of these lines.
        item.acks.delivered();
        self.lock().waiting.push_back((key, units));
        self.ready.notify_one();
        true
    }

    pub(super) async fn pop(&self, abandon: &CancellationToken) -> Option<Lease> {
        loop {
            let (key, units) = wait_for(&self.ready, abandon, || {
                let mut state = self.lock();
                if state.closed {
                    return Some(None);
                }
                state.waiting.pop_front().map(Some)
            })
            .await?;
            let read = self
                .blocking(move |db| {
                    let txn = db.begin_read()?;
                    let table = txn.open_table(REQUESTS)?;
                    Ok(table.get(key)?.map(|v| v.value().to_vec()))
                })
                .await;
            match read {
                Ok(Some(value)) => match decode(value) {
                    Some((records, payload)) => {
                        return Some(Lease {
                            payload,
                            records,
                            slot: Slot::Persistent { key, units },
                        });
                    }
                    None => {
                        tracing::error!(exporter = %self.id, key, path = %self.path.display(), "dropping a stored request in an unknown format");
                        self.remove(key, units).await;
                    }
                },
                // Cannot happen while this process holds the database's lock; if it
                // does, there is nothing to send.
                Ok(None) => self.capacity.release(units),
                Err(error) => {
                    tracing::error!(exporter = %self.id, path = %self.path.display(), %error, "cannot read from the persistent queue; trying again");
                    self.lock().waiting.push_front((key, units));
                    tokio::select! {
                        biased;
                        () = abandon.cancelled() => return None,
                        () = tokio::time::sleep(IO_RETRY) => {}
                    }
                }
            }
        }
    }

    pub(super) async fn finish(&self, key: u64, units: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Accepted(_) | Outcome::Rejected(_) => self.remove(key, units).await,
            Outcome::GaveUp(_) => {
                // Stored, so not lost: retried after everything queued before it.
                self.lock().waiting.push_back((key, units));
                self.ready.notify_one();
            }
            // Stays stored for the next start.
            Outcome::Abandoned | Outcome::Stopped => {}
        }
    }

    /// Removes a request for good. A failure only means it is sent again after a restart.
    async fn remove(&self, key: u64, units: u64) {
        let removed = self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(REQUESTS)?.remove(key)?;
                txn.commit()?;
                Ok(())
            })
            .await;
        if let Err(error) = removed {
            tracing::warn!(exporter = %self.id, path = %self.path.display(), %error, "cannot remove a sent request from the persistent queue; it will be sent again after a restart");
        }
        self.capacity.release(units);
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
    }

    /// Runs a database operation on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, String> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || op(&db)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("database task failed: {e}")),
        }
    }
}

/// What a database holds, as found at startup.
struct Stored {
    /// (key, capacity units), oldest first.
    waiting: VecDeque<(u64, u64)>,
    next_key: u64,
    records: u64,
}

fn scan(db: &Database, sizer: Sizer) -> Result<Stored, redb::Error> {
    // Creates the table on first use, so that reads never meet a missing table.
    let txn = db.begin_write()?;
    txn.open_table(REQUESTS)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let table = txn.open_table(REQUESTS)?;
    let mut waiting = VecDeque::new();
    let mut next_key = 0;
    let mut records_total = 0u64;
    for entry in table.iter()? {
        let (key, value) = entry?;
        let (key, value) = (key.value(), value.value());
        next_key = key + 1;
        // A value in an unknown format is dropped when it is popped; it holds no capacity.
        let records = value
            .get(1..HEADER)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes);
        records_total = records_total.saturating_add(records);
        let payload = value.get(HEADER..).unwrap_or_default();
        waiting.push_back((key, sizer.units(records, payload)));
    }
    Ok(Stored {
        waiting,
        next_key,
        records: records_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip_and_foreign_ones_are_refused() {
        let value = encode(7, b"proto");
        assert_eq!(decode(value), Some((7, Bytes::from_static(b"proto"))));
        assert_eq!(decode(vec![]), None);
        assert_eq!(decode(vec![FORMAT_V1, 1, 2]), None);
        assert_eq!(
            decode(encode(1, b"").into_iter().map(|b| b ^ 0xff).collect()),
            None
        );
    }

    #[test]
    fn one_file_per_exporter_id() {
        assert_eq!(
            file_name(&"otlp".parse().unwrap()),
            "exporter_otlp_queue.redb"
        );
        assert_eq!(
            file_name(&"otlphttp/backup".parse().unwrap()),
            "exporter_otlphttp_backup_queue.redb"
        );
    }
}
