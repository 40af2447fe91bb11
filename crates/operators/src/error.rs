//! Errors that happen while processing an entry. They never stop the chain: the operator's
//! `on_error` decides whether the entry goes on, and the error is logged. Messages follow
//! Stanza's wording where users may search for it.

use centimane_core::{Field, FieldError};
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("log entry does not have the expected field `{0}`")]
    MissingField(Field),
    #[error("type '{got}' cannot be parsed as {what}")]
    WrongType {
        what: &'static str,
        got: &'static str,
    },
    /// A value the operator cannot process, with an operator-specific explanation.
    #[error("{0}")]
    Invalid(String),
    #[error("regex pattern does not match")]
    NoMatch,
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the JSON value is a {0}, not an object")]
    JsonNotObject(&'static str),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Time(#[from] crate::time::TimeError),
    #[error("expected float to be whole number, got {0}")]
    NotWholeFloat(f64),
    #[error(transparent)]
    Expr(#[from] crate::expr::EvalError),
    /// An error Stanza raises before its `on_error` handling, so the entry is dropped
    /// whatever `on_error` says.
    #[error("{0}")]
    Discard(String),
    /// Errors of the embedded parsers of one parser, reported together (stanza.md §4.4).
    #[error("{}", Joined(.0))]
    Joined(Vec<ProcessError>),
}

struct Joined<'a>(&'a [ProcessError]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_errors_keep_their_order() {
        let e = ProcessError::Joined(vec![
            ProcessError::NoMatch,
            ProcessError::NotWholeFloat(1.5),
        ]);
        assert_eq!(
            e.to_string(),
            "regex pattern does not match; expected float to be whole number, got 1.5"
        );
    }
}
