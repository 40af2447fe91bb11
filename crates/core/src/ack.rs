//! Acknowledgements: how a receiver learns that what it sent was accepted downstream.
//!
//! A receiver creates one [`AckToken`] per unit it can commit (for files: a run of lines
//! ending at an offset) and sends it along with the entries. Every component that holds the
//! entries holds a clone of the token. A holder that has delivered them calls
//! [`AckToken::delivered`]; a holder dropped without that counts as a failure. When the last
//! holder is gone, the receiver's [`AckListener`] hears `Delivered` only if every holder
//! delivered, `Failed` otherwise.
//!
//! Invariant: dropping a token never reports success. A bug that loses a batch therefore
//! stops the receiver's checkpoint from advancing (the lines are read again after a restart)
//! instead of losing lines silently.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Every holder delivered (accepted by every exporter, or deliberately dropped by a
    /// processor such as a filter).
    Delivered,
    /// At least one holder gave up or was dropped: the data may not have arrived.
    Failed,
}

/// Told once per token, when its last holder is gone. Called on whatever thread drops the
/// last holder, so implementations should only hand the news off (e.g. into a channel).
pub trait AckListener: Send + Sync {
    fn on_ack(&self, id: u64, status: AckStatus);
}

struct AckInner {
    id: u64,
    failed: AtomicBool,
    listener: Arc<dyn AckListener>,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let status = if self.failed.load(Ordering::Acquire) {
            AckStatus::Failed
        } else {
            AckStatus::Delivered
        };
        self.listener.on_ack(self.id, status);
    }
}

/// One holder's share of an acknowledgement (see the module docs).
pub struct AckToken {
    inner: Arc<AckInner>,
    settled: bool,
}

impl AckToken {
    pub fn new(id: u64, listener: Arc<dyn AckListener>) -> Self {
        AckToken {
            inner: Arc::new(AckInner {
                id,
                failed: AtomicBool::new(false),
                listener,
            }),
            settled: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// This holder delivered its share.
    pub fn delivered(mut self) {
        self.settled = true;
    }
}

impl Clone for AckToken {
    /// A new holder, which must settle on its own.
    fn clone(&self) -> Self {
        AckToken {
            inner: Arc::clone(&self.inner),
            settled: false,
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.settled {
            self.inner.failed.store(true, Ordering::Release);
        }
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AckToken({})", self.inner.id)
    }
}

/// The tokens that travel with a batch.
#[derive(Debug, Default, Clone)]
pub struct AckSet(Vec<AckToken>);

impl AckSet {
    pub fn new() -> Self {
        AckSet(Vec::new())
    }

    pub fn push(&mut self, token: AckToken) {
        self.0.push(token);
    }

    pub fn append(&mut self, other: &mut AckSet) {
        self.0.append(&mut other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every token in the set delivered its share.
    pub fn delivered(self) {
        self.0.into_iter().for_each(AckToken::delivered);
    }
}

impl From<AckToken> for AckSet {
    fn from(token: AckToken) -> Self {
        AckSet(vec![token])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::AckRecorder as Recorder;

    #[test]
    fn delivered_only_when_every_holder_delivers() {
        let rec = Arc::new(Recorder::default());
        let a = AckToken::new(1, rec.clone());
        let b = a.clone();
        a.delivered();
        assert!(rec.0.lock().unwrap().is_empty(), "b still holds it");
        b.delivered();
        assert_eq!(*rec.0.lock().unwrap(), [(1, AckStatus::Delivered)]);
    }

    #[test]
    fn a_dropped_holder_fails_the_token() {
        let rec = Arc::new(Recorder::default());
        let a = AckToken::new(7, rec.clone());
        let b = a.clone();
        a.delivered();
        drop(b);
        assert_eq!(*rec.0.lock().unwrap(), [(7, AckStatus::Failed)]);
    }
}
