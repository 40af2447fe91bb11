//! Every operator type and how to build it. [`crate::OPERATOR_TYPES`] lists the same names
//! (a test checks it).

use crate::config::{OnError, from_block};
use crate::expr::Expr;
use crate::operator::{Guard, Operator, Stage, Step};
use crate::{parsers, scope, severity, time, trace, transformers};
use serde_json::{Map as JsonMap, Value as Json};

/// Everything a builder gets: the operator's own keys plus the common ones the chain read.
pub(crate) struct Spec {
    pub id: String,
    /// The operator's own keys (the common ones taken out).
    pub block: JsonMap<String, Json>,
    pub condition: Option<Expr>,
    pub on_error: OnError,
    /// Whether the block had an `output` key (the router refuses one).
    pub has_output: bool,
    /// Seed for operators that draw random numbers (filter `drop_ratio`); differs per node.
    pub seed: u64,
}

impl Spec {
    /// The guard (`if` + `on_error`) of this operator.
    pub(crate) fn guard(&mut self) -> Guard {
        Guard::new(self.id.clone(), self.condition.take(), self.on_error)
    }
}

/// A built node: its stage and, for the router, its own output ports.
pub(crate) struct Built {
    pub stage: Box<dyn Stage>,
    /// `None`: one port wired from the common `output` key. `Some`: one port per list of ids.
    pub ports: Option<Vec<Vec<String>>>,
}

impl Built {
    pub(crate) fn single(stage: Box<dyn Stage>) -> Built {
        Built { stage, ports: None }
    }
}

pub(crate) type OperatorBuilder = fn(JsonMap<String, Json>) -> Result<Box<dyn Operator>, String>;
pub(crate) type StageBuilder = fn(Spec) -> Result<Built, String>;

#[derive(Clone, Copy)]
pub(crate) enum Builder {
    /// A per-entry operator; the chain wraps it with `if` and `on_error`.
    Operator(OperatorBuilder),
    /// An operator that handles `if`/`on_error` itself, holds entries, or routes them.
    Stage(StageBuilder),
}

impl Builder {
    pub(crate) fn build(self, mut spec: Spec) -> Result<Built, String> {
        match self {
            Builder::Operator(build) => {
                let guard = spec.guard();
                let operator = build(spec.block)?;
                Ok(Built::single(Box::new(Step::new(guard, operator))))
            }
            Builder::Stage(build) => build(spec),
        }
    }
}

/// Sorted by name.
pub(crate) const BUILDERS: [(&str, Builder); 27] = [
    ("add", Builder::Operator(transformers::basic::build_add)),
    (
        "assign_keys",
        Builder::Operator(transformers::assign_keys::build),
    ),
    ("container", Builder::Stage(parsers::container::build)),
    ("copy", Builder::Operator(transformers::basic::build_copy)),
    ("csv_parser", Builder::Operator(parsers::csv::build)),
    ("filter", Builder::Stage(transformers::filter::build)),
    ("flatten", Builder::Operator(transformers::flatten::build)),
    (
        "json_array_parser",
        Builder::Operator(parsers::json_array::build),
    ),
    ("json_parser", Builder::Operator(parsers::json::build)),
    (
        "key_value_parser",
        Builder::Operator(parsers::key_value::build),
    ),
    ("move", Builder::Operator(transformers::basic::build_move)),
    ("noop", Builder::Operator(transformers::basic::build_noop)),
    ("recombine", Builder::Stage(transformers::recombine::build)),
    ("regex_parser", Builder::Operator(parsers::regex::build)),
    (
        "regex_replace",
        Builder::Operator(transformers::replace::build_regex_replace),
    ),
    (
        "remove",
        Builder::Operator(transformers::basic::build_remove),
    ),
    ("retain", Builder::Operator(transformers::retain::build)),
    ("router", Builder::Stage(transformers::router::build)),
    (
        "sanitize_utf8",
        Builder::Operator(transformers::sanitize::build),
    ),
    (
        "scope_name_parser",
        Builder::Operator(build_scope_name_parser),
    ),
    ("severity_parser", Builder::Operator(build_severity_parser)),
    (
        "strip_ansi_escape_codes",
        Builder::Operator(transformers::replace::build_strip_ansi),
    ),
    ("syslog_parser", Builder::Operator(parsers::syslog::build)),
    ("time_parser", Builder::Operator(build_time_parser)),
    ("trace_parser", Builder::Operator(build_trace_parser)),
    ("unquote", Builder::Operator(transformers::unquote::build)),
    ("uri_parser", Builder::Operator(parsers::uri::build)),
];

/// The builder of `kind`.
pub(crate) fn builder(kind: &str) -> Option<Builder> {
    BUILDERS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, b)| *b)
}

fn build_time_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(time::TimeParser::build(from_block(block)?)?))
}

fn build_severity_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(severity::SeverityParser::build(from_block(
        block,
    )?)?))
}

fn build_scope_name_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(scope::ScopeNameParser::build(from_block(block)?)))
}

fn build_trace_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(trace::TraceParser::build(from_block(block)?)))
}
