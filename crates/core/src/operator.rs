//! The contract between receivers and the operator library: a receiver hands raw entries to
//! an [`OperatorChain`] and sends on whatever comes out. Receivers depend on this trait, not
//! on the operators crate; the agent builds chains from config.

use crate::entry::Entry;

pub trait OperatorChain: Send {
    /// Runs `entries` through the chain in order and appends what comes out to `out`.
    /// Operators may drop, split or hold entries; processing errors follow each operator's
    /// `on_error` and never stop the chain.
    fn process(&mut self, entries: Vec<Entry>, out: &mut Vec<Entry>);

    /// Emits every entry that operators hold back (e.g. a multi-line combine waiting for its
    /// next line). Called when the receiver stops.
    fn flush(&mut self, out: &mut Vec<Entry>) {
        let _ = out;
    }

    /// Emits only the held entries whose hold period (`force_flush_period`) has expired.
    /// Called on a timer, so a held entry goes out even when no further input arrives.
    fn flush_expired(&mut self, out: &mut Vec<Entry>) {
        let _ = out;
    }
}

/// The chain of an empty `operators:` list.
pub struct Passthrough;

impl OperatorChain for Passthrough {
    fn process(&mut self, mut entries: Vec<Entry>, out: &mut Vec<Entry>) {
        if out.is_empty() {
            std::mem::swap(out, &mut entries);
        } else {
            out.append(&mut entries);
        }
        crate::recycle::keep(entries);
    }
}
