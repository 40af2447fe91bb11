//! The expression language of `if:` and `EXPR(...)` (stanza.md §3): a hand-written subset of
//! expr-lang. An expression is parsed once, when the chain is built; evaluating it walks the
//! AST against an entry, borrowing the entry's values.
//!
//! Supported: `body`/`$`, `attributes`, `resource`, `timestamp`, `env("X")`, member access
//! `a.b` and `a?.b`, index `a["b.c"]` and `a[0]`, string/number/bool/nil literals, list
//! literals, `+ - * / %`, `== != < <= > >=`, `and or not && || !`, `matches`, `contains`,
//! `startsWith`, `endsWith`, `in` (each of the last five also as `not <op>`), `??`, `? :`
//! and parentheses. An unknown name is nil ("allow undefined variables").

mod eval;
mod lexer;
mod parser;
mod template;

pub(crate) use template::Template;

use centimane_core::{Entry, Value};
use std::fmt;

/// A parsed expression.
#[derive(Debug)]
pub(crate) struct Expr {
    root: parser::Node,
    source: String,
}

/// An expression that failed at run time (e.g. member access on a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError {
    message: String,
}

impl EvalError {
    fn new(message: String) -> Self {
        EvalError { message }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

impl Expr {
    /// Parses `source`. The error message quotes the expression.
    pub(crate) fn parse(source: &str) -> Result<Expr, String> {
        lexer::tokenize(source)
            .and_then(parser::parse)
            .map(|root| Expr {
                root,
                source: source.to_owned(),
            })
            .map_err(|e| format!("invalid expression `{source}`: {e}"))
    }

    /// Evaluates an `if:` condition, which must produce a bool.
    pub(crate) fn eval_bool(&self, entry: &Entry) -> Result<bool, EvalError> {
        let v = self.eval(entry)?;
        v.as_bool().ok_or_else(|| {
            EvalError::new(format!(
                "expression `{}` must return a bool, got {}",
                self.source,
                v.type_name()
            ))
        })
    }

    /// Evaluates to a value of any type (for `EXPR(...)` in `add`).
    pub(crate) fn eval_value(&self, entry: &Entry) -> Result<Value, EvalError> {
        self.eval(entry).map(eval::Val::into_value)
    }

    fn eval<'a>(&'a self, entry: &'a Entry) -> Result<eval::Val<'a>, EvalError> {
        eval::eval(&self.root, entry)
            .map_err(|e| EvalError::new(format!("expression `{}`: {}", self.source, e.message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Map;
    use proptest::prelude::*;

    fn entry() -> Entry {
        let body = Value::from_json_str(
            r#"{"message":"hello world","level":"error","n":3,"f":2.5,"tags":["a","b"],"nested":{"k.dot":"v"},"empty":null}"#,
            centimane_core::value::NumberMode::IntsWhenIntegral,
        )
        .unwrap();
        let mut attributes = Map::default();
        attributes.insert("http.method".into(), "GET".into());
        attributes.insert("status".into(), Value::Int(404));
        Entry {
            body,
            attributes,
            ..Entry::default()
        }
    }

    fn value(src: &str) -> Value {
        Expr::parse(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval_value(&entry())
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn truth(src: &str) -> bool {
        match value(src) {
            Value::Bool(b) => b,
            other => panic!("{src} gave {other:?}"),
        }
    }

    fn fails(src: &str) -> String {
        Expr::parse(src)
            .unwrap()
            .eval_value(&entry())
            .expect_err(src)
            .to_string()
    }

    #[test]
    fn access_and_literals() {
        assert_eq!(value("body.message"), Value::from("hello world"));
        assert_eq!(value("$.n"), Value::Int(3));
        assert_eq!(value(r#"body.nested["k.dot"]"#), Value::from("v"));
        assert_eq!(value(r#"attributes["http.method"]"#), Value::from("GET"));
        assert_eq!(value("body.tags[1]"), Value::from("b"));
        assert_eq!(value("body.tags[-1]"), Value::from("b"));
        assert_eq!(value("body.missing"), Value::Null);
        assert_eq!(value("attributes.missing"), Value::Null);
        assert_eq!(value("resource.anything"), Value::Null);
        assert_eq!(value("nil"), Value::Null);
        assert_eq!(value("undefined_name"), Value::Null);
    }

    #[test]
    fn arithmetic_and_concatenation() {
        assert_eq!(value("body.message + '!'"), Value::from("hello world!"));
        assert_eq!(value("body.n + 1"), Value::Int(4));
        assert_eq!(value("body.n + body.f"), Value::Double(5.5));
        assert_eq!(value("body.n * 2 - 1"), Value::Int(5));
        assert_eq!(value("7 / 2"), Value::Double(3.5));
        assert_eq!(value("7 % 4"), Value::Int(3));
        assert_eq!(value("-body.n"), Value::Int(-3));
        assert_eq!(value("1 + 2 * 3"), Value::Int(7));
        assert_eq!(value("(1 + 2) * 3"), Value::Int(9));
    }

    #[test]
    fn comparisons_and_logic() {
        assert!(truth("body.level == 'error'"));
        assert!(truth("body.n == 3.0"), "int and float compare by value");
        assert!(!truth("body.n == '3'"), "different types are not equal");
        assert!(truth("body.missing == nil"));
        assert!(!truth("body.missing == 'x'"));
        assert!(truth("body.n >= 3 && body.f < 3"));
        assert!(truth("body.n > 5 or body.level != 'info'"));
        assert!(truth("not (body.n > 5)"));
        assert!(truth("!false"));
        assert!(truth("'abc' < 'abd'"));
    }

    #[test]
    fn string_and_membership_operators() {
        assert!(truth("body.message matches '^hel+o'"));
        assert!(truth("body.message not matches 'bye'"));
        assert!(truth("body.message matches ('wor' + 'ld')"));
        assert!(truth("body.message contains 'lo w'"));
        assert!(truth("body.message startsWith 'hello'"));
        assert!(truth("body.message endsWith 'world'"));
        assert!(truth("body.level in ['warn', 'error']"));
        assert!(truth("body.level not in ['warn']"));
        assert!(truth("'status' in attributes"));
        assert!(truth("body.n in [1, 2, body.n]"));
        assert!(!truth("'x' in body.missing"));
    }

    #[test]
    fn conditional_coalesce_optional_and_env() {
        assert_eq!(value("body.n > 1 ? 'big' : 'small'"), Value::from("big"));
        assert_eq!(value("body.missing ?? 'dflt'"), Value::from("dflt"));
        assert_eq!(value("body.empty?.x"), Value::Null);
        assert_eq!(value("body.empty?.['x']"), Value::Null);
        // cargo sets CARGO_PKG_NAME for the test process; no test mutates the environment.
        let name = Value::from(env!("CARGO_PKG_NAME"));
        assert_eq!(value("env('CARGO_PKG_NAME')"), name);
        assert_eq!(value("env('CARGO_' + 'PKG_NAME')"), name);
        assert_eq!(value("env('CENTIMANE_EXPR_UNSET_VAR')"), Value::from(""));
    }

    #[test]
    fn timestamp_is_a_time() {
        assert!(truth("timestamp == timestamp"));
        assert_eq!(value("timestamp"), Value::from("0001-01-01T00:00:00Z"));
    }

    #[test]
    fn runtime_errors() {
        assert!(fails("body.message.x").contains("cannot fetch x from string"));
        assert!(fails("body.empty.x").contains("cannot fetch x from nil"));
        assert!(fails("body.message + 1").contains("mismatched types string and int"));
        assert!(fails("body.message < 1").contains("mismatched types"));
        assert!(fails("body.n and true").contains("needs bool operands"));
        assert!(fails("body.n matches 'x'").contains("matches"));
        assert!(fails("body.tags[5]").contains("index out of range"));
        assert!(fails("1 % 0").contains("divide by zero"));
        // `not` binds tighter than `==` (expr-lang precedence), so this negates an int.
        assert!(fails("not body.n == 3").contains("invalid operation: !"));
        assert!(fails("'a' in 'abc'").contains("not defined on string"));
        assert!(fails("body.message matches ('(' + '')").contains("invalid regex"));
    }

    #[test]
    fn if_conditions_must_be_bool() {
        let e = Expr::parse("body.n").unwrap();
        assert!(
            e.eval_bool(&entry())
                .unwrap_err()
                .to_string()
                .contains("must return a bool")
        );
        assert!(
            Expr::parse("body.n == 3")
                .unwrap()
                .eval_bool(&entry())
                .unwrap()
        );
    }

    #[test]
    fn parse_errors_quote_the_expression() {
        for bad in [
            "body.",
            "(body",
            "body ==",
            "a not b",
            "1 +",
            "unknown_fn(1)",
            "env()",
            "body matches '('",
            "[1, 2",
            "a ? b",
            "@",
        ] {
            let err = Expr::parse(bad).expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let src = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Expr::parse(&src).is_err());
        let src = format!("{}true", "!".repeat(10_000));
        assert!(Expr::parse(&src).is_err());
        let src = format!("body{}", ".a".repeat(1_000));
        assert!(Expr::parse(&src).is_err());
        let src = vec!["1"; 1_000].join(" + ");
        assert!(Expr::parse(&src).is_err());
        let src = format!("[{}]", vec!["'x'"; 100].join(", "));
        assert!(Expr::parse(&src).is_ok(), "long flat lists are fine");
    }

    proptest! {
        #[test]
        fn parsing_and_evaluating_never_panic(src in "\\PC{0,40}") {
            if let Ok(e) = Expr::parse(&src) {
                let _ = e.eval_value(&entry());
            }
        }

        #[test]
        fn expression_shaped_input_never_panics(
            src in "[a-z$. ()\\[\\]'\"0-9+*/%<>=!&|?:-]{0,40}"
        ) {
            if let Ok(e) = Expr::parse(&src) {
                let _ = e.eval_bool(&entry());
            }
        }
    }
}
