//! The scope name parser (stanza.md §5.10): the standalone `scope_name_parser` operator and the
//! embedded `scope_name:` block. The value must be a string; it is copied to `scope_name`.

use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use serde::Deserialize;

/// Keys of the `scope_name_parser` operator and of the `scope_name:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeNameConfig {
    parse_from: Field,
}

#[derive(Debug)]
pub(crate) struct ScopeNameParser {
    parse_from: Field,
}

impl ScopeNameParser {
    pub(crate) fn build(cfg: ScopeNameConfig) -> ScopeNameParser {
        ScopeNameParser {
            parse_from: cfg.parse_from,
        }
    }
}

impl Operator for ScopeNameParser {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        match self.parse_from.get(entry) {
            Some(Value::Str(name)) => {
                entry.scope_name = name.clone();
                Ok(())
            }
            Some(other) => Err(ProcessError::WrongType {
                what: "a scope name",
                got: other.type_name(),
            }),
            None => Err(ProcessError::MissingField(self.parse_from.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(field: &str) -> ScopeNameParser {
        ScopeNameParser::build(ScopeNameConfig {
            parse_from: field.parse().unwrap(),
        })
    }

    #[test]
    fn copies_strings_and_rejects_the_rest() {
        let mut p = parser("attributes.logger");
        let mut e = Entry::default();
        assert!(matches!(
            p.apply(&mut e),
            Err(ProcessError::MissingField(_))
        ));
        e.attributes.insert("logger".into(), Value::Int(3));
        assert!(matches!(
            p.apply(&mut e),
            Err(ProcessError::WrongType { .. })
        ));
        assert_eq!(e.scope_name, "");
        e.attributes.insert("logger".into(), "my.logger".into());
        p.apply(&mut e).unwrap();
        assert_eq!(e.scope_name, "my.logger");
        assert!(e.attributes.contains_key("logger"), "the source is kept");
    }
}
