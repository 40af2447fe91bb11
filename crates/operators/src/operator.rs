//! What the chain runs: an [`Operator`] changes one entry in place, and a [`Step`] wraps it
//! with the behaviour every operator shares: the `if:` condition and `on_error`
//! (stanza.md §4.2, §4.3).

use crate::config::OnError;
use crate::error::ProcessError;
use crate::expr::Expr;
use centimane_core::Entry;
use std::time::{Duration, Instant};

/// One operator's work on one entry.
pub(crate) trait Operator: Send {
    /// Changes `entry` in place. On error the entry keeps whatever was already written;
    /// the caller applies `on_error`.
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError>;
}

/// An operator with its condition and error handling.
pub(crate) struct Step {
    id: String,
    operator: Box<dyn Operator>,
    condition: Option<Expr>,
    on_error: OnError,
    log: ErrorLog,
}

impl Step {
    pub(crate) fn new(
        id: String,
        operator: Box<dyn Operator>,
        condition: Option<Expr>,
        on_error: OnError,
    ) -> Step {
        Step {
            id,
            operator,
            condition,
            on_error,
            log: ErrorLog::default(),
        }
    }

    /// Runs the operator on every entry of `batch`, dropping the ones `on_error` discards.
    pub(crate) fn run_batch(&mut self, batch: &mut Vec<Entry>) {
        batch.retain_mut(|entry| self.run(entry));
    }

    /// Runs the operator on one entry; `false` means the entry is dropped.
    fn run(&mut self, entry: &mut Entry) -> bool {
        if let Some(condition) = &self.condition {
            match condition.eval_bool(entry) {
                Ok(true) => {}
                // A false condition forwards the entry untouched.
                Ok(false) => return true,
                Err(e) => return self.failed(ProcessError::Expr(e)),
            }
        }
        match self.operator.apply(entry) {
            Ok(()) => true,
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, error: ProcessError) -> bool {
        let keep = self.on_error.keeps_entry();
        if self.on_error.is_quiet() {
            tracing::debug!(operator = %self.id, kept = keep, "failed to process entry: {error}");
        } else {
            self.log.error(&self.id, &error, keep);
        }
        keep
    }
}

/// Logs processing errors at error level at most once per [`ErrorLog::INTERVAL`] per
/// operator, counting the ones it held back: a bad input stream must not flood the log.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    const INTERVAL: Duration = Duration::from_secs(1);

    fn error(&mut self, id: &str, error: &ProcessError, kept: bool) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::error!(
            operator = %id,
            kept,
            suppressed_since_last = self.suppressed,
            "failed to process entry: {error}"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Value;

    struct Fails;
    impl Operator for Fails {
        fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
            entry.severity = 1;
            Err(ProcessError::NoMatch)
        }
    }

    fn batch() -> Vec<Entry> {
        vec![Entry::new(Value::from("a")), Entry::new(Value::Int(1))]
    }

    #[test]
    fn on_error_decides_what_is_kept() {
        for (mode, kept) in [
            (OnError::Send, 2),
            (OnError::SendQuiet, 2),
            (OnError::Drop, 0),
            (OnError::DropQuiet, 0),
        ] {
            let mut step = Step::new("x".into(), Box::new(Fails), None, mode);
            let mut b = batch();
            step.run_batch(&mut b);
            assert_eq!(b.len(), kept, "{mode:?}");
            assert!(b.iter().all(|e| e.severity == 1), "partial work is kept");
        }
    }

    #[test]
    fn condition_gates_the_operator() {
        let cond = Expr::parse("body == 'a'").unwrap();
        let mut step = Step::new("x".into(), Box::new(Fails), Some(cond), OnError::Drop);
        let mut b = batch();
        step.run_batch(&mut b);
        assert_eq!(b.len(), 1, "only the matching entry ran (and was dropped)");
        assert_eq!(b[0].body, Value::Int(1));
        assert_eq!(b[0].severity, 0, "untouched when the condition is false");
    }

    #[test]
    fn condition_errors_go_through_on_error() {
        let cond = Expr::parse("body.x == 1").unwrap();
        let mut step = Step::new("x".into(), Box::new(Fails), Some(cond), OnError::Drop);
        let mut b = batch();
        step.run_batch(&mut b);
        assert!(b.is_empty());
    }

    #[test]
    fn error_log_holds_back_bursts() {
        let mut log = ErrorLog::default();
        for _ in 0..100 {
            log.error("x", &ProcessError::NoMatch, true);
        }
        assert_eq!(log.suppressed, 99);
    }
}
