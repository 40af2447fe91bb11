//! Taps: the last records that passed each pipeline, kept for the OpAMP
//! `io.centimane.snapshot` capability ("show me what this agent is sending"). Only enabled
//! when that capability is, since keeping copies costs a clone per record.

use centimane_core::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub struct Taps {
    capacity: usize,
    points: Mutex<HashMap<String, VecDeque<Entry>>>,
}

impl Taps {
    pub fn new(capacity: usize) -> Self {
        Taps {
            capacity,
            points: Mutex::new(HashMap::new()),
        }
    }

    /// Records the last entries of a batch that passed `point`.
    pub fn record(&self, point: &str, entries: &[Entry]) {
        let skip = entries.len().saturating_sub(self.capacity);
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let ring = points.entry(point.to_owned()).or_default();
        for e in &entries[skip..] {
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(e.clone());
        }
    }

    /// The last `n` entries seen at `point`, oldest first.
    pub fn last(&self, point: &str, n: usize) -> Result<Vec<Entry>, String> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ring) = points.get(point) else {
            let mut known: Vec<&String> = points.keys().collect();
            known.sort();
            return Err(format!("no records seen at `{point}` (points: {known:?})"));
        };
        let skip = ring.len().saturating_sub(n);
        Ok(ring.iter().skip(skip).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_records() {
        let taps = Taps::new(3);
        let batch: Vec<Entry> = (0..5).map(|i| Entry::new((i as i64).into())).collect();
        taps.record("pipeline:logs", &batch[..2]);
        taps.record("pipeline:logs", &batch[2..]);
        let last = taps.last("pipeline:logs", 2).unwrap();
        assert_eq!(
            last.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
            [3i64.into(), 4i64.into()]
        );
        assert_eq!(taps.last("pipeline:logs", 10).unwrap().len(), 3);
        assert!(
            taps.last("pipeline:x", 1)
                .unwrap_err()
                .contains("pipeline:logs")
        );
    }
}
