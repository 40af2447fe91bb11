//! `EXPR(...)` templates (Stanza's `ExprString`, stanza.md §3): literal text with embedded
//! expressions, used by the router's route `attributes`. An expression runs from `EXPR(` to
//! the last `)` before the next `EXPR(` (or the end); text without such a `)` stays literal.
//! Every embedded expression must produce a string.

use super::{EvalError, Expr};
use centimane_core::{Entry, Value};

const START: &str = "EXPR(";

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    /// Parses `source`; an embedded expression that does not parse is an error.
    pub(crate) fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find(START) {
            let after = &rest[start + START.len()..];
            let window = after.find(START).map_or(after, |next| &after[..next]);
            let Some(end) = window.rfind(')') else {
                break;
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            parts.push(Part::Expr(Expr::parse(&after[..end])?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Renders the template for `entry`.
    pub(crate) fn render(&self, entry: &Entry) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr(expr) => match expr.eval_value(entry)? {
                    Value::Str(s) => out.push_str(&s),
                    other => {
                        return Err(EvalError::new(format!(
                            "embedded expression returned non-string {}",
                            other.type_name()
                        )));
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str) -> Result<String, String> {
        let mut e = Entry::new("msg".into());
        e.attributes.insert("n".into(), Value::Int(1));
        Template::parse(src)?.render(&e).map_err(|e| e.to_string())
    }

    #[test]
    fn literal_and_embedded_parts() {
        assert_eq!(render("plain").unwrap(), "plain");
        assert_eq!(render("a-EXPR(body)-b").unwrap(), "a-msg-b");
        assert_eq!(render("EXPR(body + 'x')EXPR(body)").unwrap(), "msgxmsg");
        assert_eq!(
            render("EXPR(env('CENTIMANE_TEMPLATE_UNSET'))!").unwrap(),
            "!"
        );
        assert_eq!(render("EXPR(no end").unwrap(), "EXPR(no end");
    }

    #[test]
    fn non_strings_and_bad_expressions_fail() {
        assert!(
            render("EXPR(attributes.n)")
                .unwrap_err()
                .contains("non-string")
        );
        assert!(render("EXPR(body ==)").is_err());
    }
}
