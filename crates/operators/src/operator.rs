//! What the chain runs. A [`Stage`] is one node of the chain: it takes a batch and writes what
//! comes out to its output ports. Most operators change one entry at a time; they implement
//! [`Operator`] and run inside a [`Step`], which adds the behaviour every such operator
//! shares: the `if:` condition and `on_error` (stanza.md §4.2, §4.3). Operators that hold
//! entries back, route them or ignore `if` (recombine, container, router, filter) implement
//! [`Stage`] directly.

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

/// Which held entries a flush emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything (end of input, shutdown).
    All,
    /// Only what has waited longer than the operator's `force_flush_period`.
    Expired,
}

/// A node of the chain.
pub(crate) trait Stage: Send {
    /// Processes `batch`, leaving it empty (its capacity is reused), and appends what comes
    /// out to `ports`: one vector per output port, in the order the chain wired them (one
    /// port for every operator but the router).
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]);

    /// Emits entries the stage holds back. Stages that hold nothing keep the default.
    fn flush(&mut self, mode: Flush, ports: &mut [Vec<Entry>]) {
        let _ = (mode, ports);
    }
}

/// Moves `batch` to the end of `dest` without copying entries when `dest` is empty. `batch`
/// is left empty, holding whatever spare capacity there is.
pub(crate) fn hand_over(dest: &mut Vec<Entry>, batch: &mut Vec<Entry>) {
    if dest.is_empty() {
        std::mem::swap(dest, batch);
    } else {
        dest.append(batch);
    }
}

/// The `if` condition and `on_error` mode of one operator, and its rate-limited error log.
pub(crate) struct Guard {
    id: String,
    condition: Option<Expr>,
    on_error: OnError,
    log: ErrorLog,
}

/// What [`Guard::check`] decided for an entry.
pub(crate) enum Gate {
    /// The condition holds (or there is none): the operator runs.
    Run,
    /// The condition is false: the entry goes on untouched.
    Skip,
    /// The condition failed to evaluate and `on_error` discards the entry.
    Drop,
}

impl Guard {
    pub(crate) fn new(id: String, condition: Option<Expr>, on_error: OnError) -> Guard {
        Guard {
            id,
            condition,
            on_error,
            log: ErrorLog::default(),
        }
    }

    /// Evaluates the `if` condition. An evaluation error goes through `on_error`; when the
    /// entry is kept it is forwarded untouched, as Stanza does.
    pub(crate) fn check(&mut self, entry: &Entry) -> Gate {
        let Some(condition) = &self.condition else {
            return Gate::Run;
        };
        match condition.eval_bool(entry) {
            Ok(true) => Gate::Run,
            Ok(false) => Gate::Skip,
            Err(e) => {
                if self.failed(&ProcessError::Expr(e)) {
                    Gate::Skip
                } else {
                    Gate::Drop
                }
            }
        }
    }

    /// Logs a processing error; `true` when `on_error` keeps the entry.
    pub(crate) fn failed(&mut self, error: &ProcessError) -> bool {
        let keep = self.on_error.keeps_entry() && !matches!(error, ProcessError::Discard(_));
        if self.on_error.is_quiet() {
            tracing::debug!(operator = %self.id, kept = keep, "failed to process entry: {error}");
        } else {
            self.log.error(&self.id, error, keep);
        }
        keep
    }
}

/// An [`Operator`] with its condition and error handling.
pub(crate) struct Step {
    guard: Guard,
    operator: Box<dyn Operator>,
}

impl Step {
    pub(crate) fn new(guard: Guard, operator: Box<dyn Operator>) -> Step {
        Step { guard, operator }
    }

    /// Runs the operator on one entry; `false` means the entry is dropped.
    fn run_one(&mut self, entry: &mut Entry) -> bool {
        match self.guard.check(entry) {
            Gate::Run => {}
            Gate::Skip => return true,
            Gate::Drop => return false,
        }
        match self.operator.apply(entry) {
            Ok(()) => true,
            Err(e) => self.guard.failed(&e),
        }
    }
}

impl Stage for Step {
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]) {
        batch.retain_mut(|entry| self.run_one(entry));
        if let Some(port) = ports.first_mut() {
            hand_over(port, batch);
        }
        batch.clear();
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

    fn step(condition: Option<&str>, mode: OnError) -> Step {
        let condition = condition.map(|c| Expr::parse(c).unwrap());
        Step::new(Guard::new("x".into(), condition, mode), Box::new(Fails))
    }

    fn run(step: &mut Step) -> Vec<Entry> {
        let mut b = batch();
        let mut ports = vec![Vec::new()];
        step.run(&mut b, &mut ports);
        assert!(b.is_empty(), "the batch is consumed");
        ports.remove(0)
    }

    #[test]
    fn on_error_decides_what_is_kept() {
        for (mode, kept) in [
            (OnError::Send, 2),
            (OnError::SendQuiet, 2),
            (OnError::Drop, 0),
            (OnError::DropQuiet, 0),
        ] {
            let out = run(&mut step(None, mode));
            assert_eq!(out.len(), kept, "{mode:?}");
            assert!(out.iter().all(|e| e.severity == 1), "partial work is kept");
        }
    }

    #[test]
    fn condition_gates_the_operator() {
        let out = run(&mut step(Some("body == 'a'"), OnError::Drop));
        assert_eq!(
            out.len(),
            1,
            "only the matching entry ran (and was dropped)"
        );
        assert_eq!(out[0].body, Value::Int(1));
        assert_eq!(out[0].severity, 0, "untouched when the condition is false");
    }

    #[test]
    fn condition_errors_go_through_on_error() {
        assert!(run(&mut step(Some("body.x == 1"), OnError::Drop)).is_empty());
        let out = run(&mut step(Some("body.x == 1"), OnError::Send));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].severity, 0, "forwarded untouched");
    }

    #[test]
    fn hand_over_appends_in_order() {
        let mut dest = vec![Entry::new(Value::from("a"))];
        let mut more = vec![Entry::new(Value::from("b"))];
        hand_over(&mut dest, &mut more);
        assert!(more.is_empty());
        assert_eq!(dest[1].body, Value::from("b"));
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
