//! Receivers: where entries enter a pipeline. `filelog` tails files on its own thread (file
//! reading is blocking I/O and stays off the async runtime) and hands batches to the
//! pipeline's bounded channel; acknowledgements flow back to commit file offsets.

pub mod filelog;

use centimane_core::Batch;
use tokio::sync::mpsc;

/// Every receiver type this build has.
pub const RECEIVER_TYPES: &[&str] = &["filelog"];

/// Where a receiver sends its batches: one channel per pipeline that lists the receiver.
/// A batch going to several pipelines is copied, and each copy holds the acknowledgement
/// tokens, so offsets commit only when every pipeline delivered.
#[derive(Clone)]
pub struct Outputs {
    senders: Vec<mpsc::Sender<Batch>>,
}

impl Outputs {
    pub fn new(senders: Vec<mpsc::Sender<Batch>>) -> Self {
        Outputs { senders }
    }

    /// Copies of `batch`, one per pipeline, paired with their channels.
    fn fan_out(&self, batch: Batch) -> Vec<(&mpsc::Sender<Batch>, Batch)> {
        let mut out = Vec::with_capacity(self.senders.len());
        let (last, rest) = match self.senders.split_last() {
            Some(split) => split,
            None => return out,
        };
        for tx in rest {
            out.push((tx, Batch::new(batch.entries.clone(), batch.acks.clone())));
        }
        out.push((last, batch));
        out
    }
}
