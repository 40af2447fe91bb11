//! The in-memory sending queue: requests with their acknowledgements, first in first out.

use super::{Capacity, Item, Lease, Sizer, Slot, wait_for};
use crate::retry::Outcome;
use centimane_core::AckSet;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) struct MemoryQueue {
    sizer: Sizer,
    capacity: Capacity,
    state: Mutex<State>,
    /// Signalled once per pushed request, and to everyone on close.
    ready: Notify,
}

struct State {
    /// Requests not yet handed to a consumer, with the capacity units each holds.
    waiting: VecDeque<(Item, u64)>,
    closed: bool,
}

impl MemoryQueue {
    pub(super) fn new(sizer: Sizer, capacity: Capacity) -> Self {
        MemoryQueue {
            sizer,
            capacity,
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn push(&self, item: Item, abandon: &CancellationToken) -> bool {
        let units = self.sizer.units(item.records, &item.payload);
        if !self.capacity.reserve(units, abandon).await {
            return false;
        }
        self.lock().waiting.push_back((item, units));
        self.ready.notify_one();
        true
    }

    pub(super) async fn pop(&self, abandon: &CancellationToken) -> Option<Lease> {
        wait_for(&self.ready, abandon, || {
            let mut state = self.lock();
            match state.waiting.pop_front() {
                Some((item, units)) => Some(Some(Lease {
                    payload: item.payload,
                    records: item.records,
                    slot: Slot::Memory {
                        acks: item.acks,
                        units,
                    },
                })),
                None if state.closed => Some(None),
                None => None,
            }
        })
        .await
    }

    pub(super) fn finish(&self, acks: AckSet, units: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Accepted(_) | Outcome::Rejected(_) => acks.delivered(),
            // Unsettled: the receiver does not commit these offsets.
            Outcome::GaveUp(_) | Outcome::Abandoned | Outcome::Stopped => drop(acks),
        }
        self.capacity.release(units);
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
    }
}
