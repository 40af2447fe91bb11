//! Parsers (stanza.md §4.4, §5): each reads `parse_from`, parses it into a value, sets that
//! at `parse_to`, optionally copies a field into the body, then runs the embedded time,
//! severity, trace and scope name parsers. Everything but the parse function is shared here.

pub(crate) mod container;
pub(crate) mod csv;
pub(crate) mod json;
pub(crate) mod json_array;
pub(crate) mod key_value;
pub(crate) mod regex;
pub(crate) mod syslog;
pub(crate) mod uri;

use crate::config::Block;
use crate::error::ProcessError;
use crate::operator::Operator;
use crate::scope::{ScopeNameConfig, ScopeNameParser};
use crate::severity::{SeverityConfig, SeverityParser};
use crate::time::{TimeConfig, TimeParser};
use crate::trace::{TraceConfig, TraceParser};
use centimane_core::{Entry, Field, FieldRoot, Map, Value};

/// Declares a parser's config struct: the parser base keys plus the parser's own.
macro_rules! parser_config {
    ($(#[$meta:meta])* $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            #[serde(default = "centimane_core::Field::body")]
            parse_from: centimane_core::Field,
            #[serde(default = "centimane_core::Field::attributes")]
            parse_to: centimane_core::Field,
            body: Option<centimane_core::Field>,
            timestamp: Option<$crate::config::Block<$crate::time::TimeConfig>>,
            severity: Option<$crate::config::Block<$crate::severity::SeverityConfig>>,
            trace: Option<$crate::config::Block<$crate::trace::TraceConfig>>,
            scope_name: Option<$crate::config::Block<$crate::scope::ScopeNameConfig>>,
            $($fields)*
        }

        impl $name {
            /// Builds the parser base from the shared keys.
            fn base(&mut self) -> Result<$crate::parsers::ParserBase, String> {
                $crate::parsers::ParserBase::build(
                    self.parse_from.clone(),
                    self.parse_to.clone(),
                    self.body.take(),
                    self.timestamp.take(),
                    self.severity.take(),
                    self.trace.take(),
                    self.scope_name.take(),
                )
            }
        }
    };
}
pub(crate) use parser_config;

/// Turns the `parse_from` value into the value set at `parse_to`.
pub(crate) trait Parse: Send {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError>;

    /// For parsers whose result is always a map: parses `value` and inserts the result's
    /// keys into `into` as setting the map there would merge them, without building the
    /// map first (json_parser and regex_parser into `attributes`, once per record). On
    /// error `into` is unchanged. `None`: not supported, `parse` is used.
    fn parse_into(&mut self, _value: &Value, _into: &mut Map) -> Option<Result<(), ProcessError>> {
        None
    }
}

/// What every parser shares.
pub(crate) struct ParserBase {
    parse_from: Field,
    parse_to: Field,
    body: Option<Field>,
    time: Option<TimeParser>,
    severity: Option<SeverityParser>,
    trace: Option<TraceParser>,
    scope_name: Option<ScopeNameParser>,
}

impl ParserBase {
    pub(crate) fn build(
        parse_from: Field,
        parse_to: Field,
        body: Option<Field>,
        time: Option<Block<TimeConfig>>,
        severity: Option<Block<SeverityConfig>>,
        trace: Option<Block<TraceConfig>>,
        scope_name: Option<Block<ScopeNameConfig>>,
    ) -> Result<ParserBase, String> {
        if body.is_some() && parse_to == Field::body() {
            return Err("`body` cannot be set together with `parse_to: body`".to_owned());
        }
        Ok(ParserBase {
            parse_from,
            parse_to,
            body,
            time: time
                .map(|Block(cfg)| TimeParser::build(cfg))
                .transpose()
                .map_err(|e| format!("`timestamp`: {e}"))?,
            severity: severity
                .map(|Block(cfg)| SeverityParser::build(cfg))
                .transpose()
                .map_err(|e| format!("`severity`: {e}"))?,
            trace: trace.map(|Block(cfg)| TraceParser::build(cfg)),
            scope_name: scope_name.map(|Block(cfg)| ScopeNameParser::build(cfg)),
        })
    }

    /// The whole parser flow with `parser` as the parse step.
    pub(crate) fn apply_with(
        &mut self,
        parser: &mut impl Parse,
        entry: &mut Entry,
    ) -> Result<(), ProcessError> {
        if !self.parse_into_attributes(parser, entry)? {
            let parsed = parser.parse(self.read(entry)?)?;
            self.write(entry, parsed)?;
        }
        self.run_embedded(entry, Vec::new())
    }

    /// Parses straight into the attributes when the result goes to their root and the
    /// parser can (see [`Parse::parse_into`]). `false`: it did nothing.
    fn parse_into_attributes(
        &self,
        parser: &mut impl Parse,
        entry: &mut Entry,
    ) -> Result<bool, ProcessError> {
        if !(self.parse_to.root() == FieldRoot::Attributes
            && self.parse_to.is_root()
            && self.parse_from.root() != FieldRoot::Attributes)
        {
            return Ok(false);
        }
        // Taken out for the call, so `parse_from` (not in them) can be read meanwhile.
        let mut attributes = std::mem::take(&mut entry.attributes);
        let done = match self.read(entry) {
            Ok(value) => parser.parse_into(value, &mut attributes),
            Err(e) => Some(Err(e)),
        };
        entry.attributes = attributes;
        match done {
            None => Ok(false),
            Some(result) => {
                result?;
                self.copy_body(entry);
                Ok(true)
            }
        }
    }

    /// The `parse_from` value.
    pub(crate) fn read<'e>(&self, entry: &'e Entry) -> Result<&'e Value, ProcessError> {
        self.parse_from
            .get(entry)
            .ok_or_else(|| ProcessError::MissingField(self.parse_from.clone()))
    }

    /// Sets the parsed value at `parse_to` and copies the `body` field, if one is set.
    pub(crate) fn write(&self, entry: &mut Entry, parsed: Value) -> Result<(), ProcessError> {
        self.parse_to.set(entry, parsed)?;
        self.copy_body(entry);
        Ok(())
    }

    /// Copies the `body` field into the body, if one is set.
    fn copy_body(&self, entry: &mut Entry) {
        if let Some(value) = self.body.as_ref().and_then(|field| field.get(entry)) {
            entry.body = value.clone();
        }
    }

    pub(crate) fn parse_to(&self) -> &Field {
        &self.parse_to
    }

    /// Whether a `timestamp:` block was configured.
    pub(crate) fn has_time_parser(&self) -> bool {
        self.time.is_some()
    }

    /// Runs the embedded parsers after the errors already in `errors` (a parser's own time
    /// step goes first). All of them run even if one fails; the errors are reported together.
    pub(crate) fn run_embedded(
        &mut self,
        entry: &mut Entry,
        mut errors: Vec<ProcessError>,
    ) -> Result<(), ProcessError> {
        let embedded: [Option<&mut dyn Operator>; 4] = [
            self.time.as_mut().map(|p| p as &mut dyn Operator),
            self.severity.as_mut().map(|p| p as &mut dyn Operator),
            self.trace.as_mut().map(|p| p as &mut dyn Operator),
            self.scope_name.as_mut().map(|p| p as &mut dyn Operator),
        ];
        for parser in embedded.into_iter().flatten() {
            if let Err(e) = parser.apply(entry) {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ProcessError::Joined(errors)),
        }
    }
}

/// A parser operator: the base plus a parse function.
pub(crate) struct ParserOp<P> {
    base: ParserBase,
    parser: P,
}

impl<P: Parse> ParserOp<P> {
    pub(crate) fn new(base: ParserBase, parser: P) -> Self {
        ParserOp { base, parser }
    }
}

impl<P: Parse> Operator for ParserOp<P> {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        self.base.apply_with(&mut self.parser, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A parse function that wraps the value as `{"v": value}`, or fails on `"bad"`.
    struct Wrap;
    impl Parse for Wrap {
        fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
            if value.as_str() == Some("bad") {
                return Err(ProcessError::NoMatch);
            }
            Ok(Value::Map(Box::new(
                [("v".into(), value.clone())].into_iter().collect(),
            )))
        }
    }

    parser_config!(TestConfig {});

    fn op(cfg: serde_json::Value) -> Result<ParserOp<Wrap>, String> {
        let serde_json::Value::Object(map) = cfg else {
            panic!("object")
        };
        let mut cfg: TestConfig = crate::config::from_block(map)?;
        Ok(ParserOp::new(cfg.base()?, Wrap))
    }

    fn entry(body: Value) -> Entry {
        Entry {
            body,
            ..Entry::default()
        }
    }

    #[test]
    fn parses_into_parse_to_and_keeps_the_source() {
        let mut p = op(json!({})).unwrap();
        let mut e = entry("x".into());
        p.apply(&mut e).unwrap();
        assert_eq!(e.attributes["v"], Value::from("x"));
        assert_eq!(e.body, Value::from("x"));
        let mut p = op(json!({"parse_to": "body"})).unwrap();
        p.apply(&mut e).unwrap();
        assert_eq!(e.body.as_map().unwrap()["v"], Value::from("x"));
    }

    #[test]
    fn body_field_is_copied_into_the_body() {
        let mut p = op(json!({"parse_to": "attributes.p", "body": "attributes.p.v"})).unwrap();
        let mut e = entry("x".into());
        p.apply(&mut e).unwrap();
        assert_eq!(e.body, Value::from("x"));
        assert!(op(json!({"parse_to": "body", "body": "attributes.x"})).is_err());
    }

    #[test]
    fn parse_errors_leave_the_entry_untouched() {
        let mut p = op(json!({"severity": {"parse_from": "body"}})).unwrap();
        let mut e = entry("bad".into());
        assert!(matches!(p.apply(&mut e), Err(ProcessError::NoMatch)));
        assert_eq!(e, entry("bad".into()));
        let mut e = entry(Value::Map(Default::default()));
        let mut p = op(json!({"parse_from": "body.missing"})).unwrap();
        assert!(matches!(
            p.apply(&mut e),
            Err(ProcessError::MissingField(_))
        ));
    }

    #[test]
    fn embedded_parsers_all_run_and_errors_are_joined() {
        let mut p = op(json!({
            "timestamp": {"parse_from": "attributes.missing", "layout": "%Y"},
            "severity": {"parse_from": "attributes.v"},
            "scope_name": {"parse_from": "attributes.nope"},
        }))
        .unwrap();
        let mut e = entry("error".into());
        let err = p.apply(&mut e).unwrap_err();
        assert!(
            matches!(&err, ProcessError::Joined(v) if v.len() == 2),
            "{err}"
        );
        assert_eq!(e.severity, 17, "severity applied although time failed");
        assert_eq!(e.attributes["v"], Value::from("error"));
    }

    #[test]
    fn embedded_block_errors_name_the_block() {
        let err = op(json!({"timestamp": {"layout": "%Q"}})).err().unwrap();
        assert!(err.starts_with("`timestamp`: `layout`"), "{err}");
        let err = op(json!({"severity": {"parse_from": "body", "preset": "x"}}))
            .err()
            .unwrap();
        assert!(err.starts_with("`severity`: `preset`"), "{err}");
        let err = op(json!({"scope_name": {}})).err().unwrap();
        assert!(err.contains("missing field `parse_from`"), "{err}");
        let err = op(json!({"parse_form": "body"})).err().unwrap();
        assert!(err.contains("unknown field `parse_form`"), "{err}");
    }
}
