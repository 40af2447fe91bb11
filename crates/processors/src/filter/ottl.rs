//! The OTTL subset of `logs.log_record` conditions (the grammar is in the parent module's
//! docs): a lexer, a recursive-descent parser that refuses anything outside the subset by
//! name, and an evaluator over [`Entry`].

use centimane_core::{Entry, Value};
use regex::Regex;
use std::borrow::Cow;
use std::cmp::Ordering;

/// A parsed boolean expression.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    Or(Vec<Condition>),
    And(Vec<Condition>),
    Not(Box<Condition>),
    Compare(Operand, Op, Operand),
    IsMatch(Operand, Regex),
    Const(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value in a condition: a path into the record, or a literal.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Root, Vec<Index>),
    /// `IsMatch(...)` used as a value, e.g. `IsMatch(body, "x") == false`.
    IsMatch(Box<Operand>, Regex),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Root {
    Body,
    Attributes,
    ResourceAttributes,
    SeverityNumber,
    SeverityText,
}

#[derive(Debug, Clone)]
pub(crate) enum Index {
    Key(String),
    Position(i64),
}

impl Condition {
    pub(crate) fn parse(text: &str) -> Result<Condition, String> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let condition = parser.or()?;
        match parser.peek() {
            None => Ok(condition),
            Some(t) => Err(format!("unexpected {} after the condition", t.describe())),
        }
    }

    pub(crate) fn matches(&self, entry: &Entry) -> bool {
        match self {
            Condition::Or(terms) => terms.iter().any(|c| c.matches(entry)),
            Condition::And(terms) => terms.iter().all(|c| c.matches(entry)),
            Condition::Not(c) => !c.matches(entry),
            Condition::Compare(a, op, b) => compare(&a.eval(entry), *op, &b.eval(entry)),
            Condition::IsMatch(target, re) => is_match(&target.eval(entry), re),
            Condition::Const(b) => *b,
        }
    }
}

impl Operand {
    fn eval<'a>(&'a self, entry: &'a Entry) -> Cow<'a, Value> {
        match self {
            Operand::Literal(v) => Cow::Borrowed(v),
            Operand::IsMatch(target, re) => {
                Cow::Owned(Value::Bool(is_match(&target.eval(entry), re)))
            }
            Operand::Path(root, indexes) => {
                let mut current: Cow<'a, Value> = match root {
                    Root::Body => Cow::Borrowed(&entry.body),
                    Root::SeverityNumber => Cow::Owned(Value::Int(i64::from(entry.severity))),
                    Root::SeverityText => Cow::Owned(Value::Str(entry.severity_text.clone())),
                    Root::Attributes | Root::ResourceAttributes => {
                        let map = match root {
                            Root::Attributes => &entry.attributes,
                            _ => &entry.resource,
                        };
                        // The first index of a map root looks up a key directly.
                        let Some((first, rest)) = indexes.split_first() else {
                            return Cow::Owned(Value::Map(Box::new(map.clone())));
                        };
                        let found = match first {
                            Index::Key(k) => map.get(k.as_str()),
                            Index::Position(_) => None,
                        };
                        return match found {
                            Some(v) => index_into(Cow::Borrowed(v), rest),
                            None => Cow::Owned(Value::Null),
                        };
                    }
                };
                current = index_into(current, indexes);
                current
            }
        }
    }
}

/// Follows `indexes` into maps and arrays; a missing key, a position out of range or an
/// index into a scalar gives `nil`, as OTTL does for absent values.
fn index_into<'a>(value: Cow<'a, Value>, indexes: &[Index]) -> Cow<'a, Value> {
    let mut current = value;
    for index in indexes {
        let next = match (&*current, index) {
            (Value::Map(m), Index::Key(k)) => m.get(k.as_str()).cloned(),
            (Value::Array(items), Index::Position(i)) => {
                usize::try_from(*i).ok().and_then(|i| items.get(i)).cloned()
            }
            _ => None,
        };
        current = Cow::Owned(next.unwrap_or(Value::Null));
    }
    current
}

/// OTTL's comparison rules (see the module docs of `filter`).
fn compare(a: &Value, op: Op, b: &Value) -> bool {
    let ordering = match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => {
            return match op {
                Op::Eq => x == y,
                Op::Ne => x != y,
                _ => false,
            };
        }
        (Value::Map(_), Value::Map(_)) | (Value::Array(_), Value::Array(_)) => {
            return match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                _ => false,
            };
        }
        _ => None,
    };
    match (ordering, op) {
        (Some(o), Op::Eq) => o == Ordering::Equal,
        (Some(o), Op::Ne) => o != Ordering::Equal,
        (Some(o), Op::Lt) => o == Ordering::Less,
        (Some(o), Op::Le) => o != Ordering::Greater,
        (Some(o), Op::Gt) => o == Ordering::Greater,
        (Some(o), Op::Ge) => o != Ordering::Less,
        // Different types (or NaN): unequal, and not ordered.
        (None, Op::Ne) => true,
        (None, _) => false,
    }
}

/// `IsMatch`: the target as text (OTTL's string-like conversion), matched unanchored.
fn is_match(target: &Value, re: &Regex) -> bool {
    let text = match target {
        Value::Null => return false,
        Value::Str(s) => Cow::Borrowed(s.as_str()),
        // Go's strconv.FormatFloat(v, 'f', -1, 64): no exponent, like Rust's Display.
        Value::Double(d) => Cow::Owned(d.to_string()),
        Value::Bytes(b) => Cow::Owned(b.iter().map(|x| format!("{x:02x}")).collect()),
        other => Cow::Owned(crate::text::as_string(other)),
    };
    re.is_match(&text)
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("`{s}`"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Int(i) => format!("number {i}"),
            Token::Float(f) => format!("number {f}"),
            Token::Op(op) => format!("`{}`", op_text(*op)),
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::LBracket => "`[`".into(),
            Token::RBracket => "`]`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | '[' | ']' | ',' => {
                tokens.push(match c {
                    '(' => Token::LParen,
                    ')' => Token::RParen,
                    '[' => Token::LBracket,
                    ']' => Token::RBracket,
                    _ => Token::Comma,
                });
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => {
                        return Err(format!(
                            "unsupported operator `{c}` (use ==, !=, <, <=, >, >=)"
                        ));
                    }
                };
                tokens.push(Token::Op(op));
                i += len;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            s.push(match chars.get(i + 1) {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                other => {
                                    return Err(format!(
                                        "unsupported escape `\\{}` in a string",
                                        other.map(|c| c.to_string()).unwrap_or_default()
                                    ));
                                }
                            });
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || *ch == '.' || *ch == '_')
                {
                    i += 1;
                }
                let number: String = chars[start..i].iter().collect();
                if let Ok(n) = number.parse::<i64>() {
                    tokens.push(Token::Int(n));
                } else if let Ok(f) = number.parse::<f64>() {
                    tokens.push(Token::Float(f));
                } else {
                    return Err(format!("`{number}` is not a number"));
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_alphanumeric() || *ch == '_' || *ch == '.')
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character `{other}`")),
        }
    }
    Ok(tokens)
}

// ---- parser ----

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn at_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(s)) if s == word)
    }

    fn expect(&mut self, want: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!(
                "expected {}, found {}",
                want.describe(),
                t.describe()
            )),
            None => Err(format!("expected {}, found the end", want.describe())),
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut terms = vec![self.and()?];
        while self.at_keyword("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut terms = vec![self.not()?];
        while self.at_keyword("and") {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::And(terms)
        })
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.at_keyword("not") {
            self.pos += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, String> {
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Token::RParen)?;
            return Ok(inner);
        }
        let left = self.operand()?;
        if let Some(Token::Op(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, op, right));
        }
        match left {
            Operand::IsMatch(target, re) => Ok(Condition::IsMatch(*target, re)),
            Operand::Literal(Value::Bool(b)) => Ok(Condition::Const(b)),
            _ => Err("a value on its own is not a condition: compare it (e.g. `body == \"x\"`) or use IsMatch".into()),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let token = self
            .next()
            .ok_or("a condition ends where a value was expected")?;
        match token {
            Token::Str(s) => Ok(Operand::Literal(Value::Str(s.into()))),
            Token::Int(i) => Ok(Operand::Literal(Value::Int(i))),
            Token::Float(f) => Ok(Operand::Literal(Value::Double(f))),
            Token::Ident(name) => {
                if self.peek() == Some(&Token::LParen) {
                    return self.call(&name);
                }
                if let Some(literal) = keyword_literal(&name) {
                    return Ok(Operand::Literal(literal));
                }
                let root = path_root(&name)?;
                let mut indexes = Vec::new();
                while self.peek() == Some(&Token::LBracket) {
                    self.pos += 1;
                    indexes.push(match self.next() {
                        Some(Token::Str(k)) => Index::Key(k),
                        Some(Token::Int(i)) => Index::Position(i),
                        Some(t) => {
                            return Err(format!(
                                "an index must be a string or an integer, found {}",
                                t.describe()
                            ));
                        }
                        None => return Err("unterminated index".into()),
                    });
                    self.expect(Token::RBracket)?;
                }
                if !indexes.is_empty() && matches!(root, Root::SeverityNumber | Root::SeverityText)
                {
                    return Err(format!("`{name}` can't be indexed"));
                }
                Ok(Operand::Path(root, indexes))
            }
            other => Err(format!("expected a value, found {}", other.describe())),
        }
    }

    fn call(&mut self, name: &str) -> Result<Operand, String> {
        if name != "IsMatch" {
            return Err(format!(
                "unsupported OTTL function `{name}` (this build supports IsMatch)"
            ));
        }
        self.expect(Token::LParen)?;
        let target = self.operand()?;
        self.expect(Token::Comma)?;
        let pattern = match self.next() {
            Some(Token::Str(p)) => p,
            _ => return Err("the pattern of IsMatch must be a string literal".into()),
        };
        self.expect(Token::RParen)?;
        let re = Regex::new(&pattern)
            .map_err(|e| format!("IsMatch pattern {pattern:?} is not a valid regex: {e}"))?;
        Ok(Operand::IsMatch(Box::new(target), re))
    }
}

fn keyword_literal(name: &str) -> Option<Value> {
    match name {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "nil" => Some(Value::Null),
        _ => severity_enum(name).map(Value::Int),
    }
}

/// `SEVERITY_NUMBER_UNSPECIFIED` = 0, `SEVERITY_NUMBER_TRACE` = 1 … `SEVERITY_NUMBER_FATAL4` = 24.
fn severity_enum(name: &str) -> Option<i64> {
    let suffix = name.strip_prefix("SEVERITY_NUMBER_")?;
    if suffix == "UNSPECIFIED" {
        return Some(0);
    }
    let index = centimane_core::entry::SEVERITY_NAMES
        .iter()
        .skip(1)
        .position(|n| *n == suffix)?;
    Some(index as i64 + 1)
}

fn path_root(name: &str) -> Result<Root, String> {
    let bare = name.strip_prefix("log.").unwrap_or(name);
    Ok(match bare {
        "body" => Root::Body,
        "attributes" => Root::Attributes,
        "severity_number" => Root::SeverityNumber,
        "severity_text" => Root::SeverityText,
        _ if name == "resource.attributes" => Root::ResourceAttributes,
        "and" | "or" | "not" => return Err(format!("`{name}` where a value was expected")),
        _ => {
            return Err(format!(
                "unsupported path `{name}` (this build supports body, attributes, resource.attributes, severity_number, severity_text)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Entry {
        let mut e = Entry::new(Value::from("GET /api/users 200"));
        e.severity = 13;
        e.severity_text = "WARN".into();
        e.attributes.insert("code".into(), Value::Int(503));
        e.attributes.insert("ratio".into(), Value::Double(0.5));
        e.attributes.insert("ok".into(), Value::Bool(false));
        let mut user = centimane_core::Map::default();
        user.insert("id".into(), Value::from("u1"));
        user.insert(
            "tags".into(),
            Value::Array(Box::new(vec![Value::from("a"), Value::from("b")])),
        );
        e.attributes
            .insert("user".into(), Value::Map(Box::new(user)));
        e.resource.insert("host".into(), Value::from("web-1"));
        e
    }

    fn eval(text: &str) -> bool {
        Condition::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .matches(&record())
    }

    #[test]
    fn comparisons() {
        for (text, want) in [
            ("severity_number >= SEVERITY_NUMBER_WARN", true),
            ("severity_number < SEVERITY_NUMBER_WARN", false),
            ("severity_number == 13", true),
            ("log.severity_text == \"WARN\"", true),
            ("body == \"GET /api/users 200\"", true),
            ("attributes[\"code\"] == 503", true),
            ("attributes[\"code\"] > 500.5", true),
            ("attributes[\"code\"] == \"503\"", false),
            ("attributes[\"code\"] != \"503\"", true),
            ("attributes[\"ratio\"] < 1", true),
            ("attributes[\"ok\"] == false", true),
            ("attributes[\"ok\"] < true", false),
            ("attributes[\"missing\"] == nil", true),
            ("attributes[\"code\"] == nil", false),
            ("attributes[\"user\"][\"id\"] == \"u1\"", true),
            ("attributes[\"user\"][\"tags\"][1] == \"b\"", true),
            ("attributes[\"user\"][\"tags\"][9] == nil", true),
            ("resource.attributes[\"host\"] == \"web-1\"", true),
            ("\"b\" > \"a\"", true),
        ] {
            assert_eq!(eval(text), want, "{text}");
        }
    }

    #[test]
    fn is_match_and_logic() {
        for (text, want) in [
            ("IsMatch(body, \"^GET\")", true),
            ("IsMatch(body, \"users\")", true),
            ("IsMatch(attributes[\"code\"], \"^5\\\\d\\\\d$\")", true),
            ("IsMatch(attributes[\"missing\"], \".*\")", false),
            ("not IsMatch(body, \"^POST\")", true),
            ("IsMatch(body, \"GET\") and severity_number < 9", false),
            (
                "IsMatch(body, \"GET\") and severity_number < 9 or true",
                true,
            ),
            (
                "IsMatch(body, \"GET\") and (severity_number < 9 or true)",
                true,
            ),
            ("not (IsMatch(body, \"GET\") or false)", false),
            ("not not true", true),
            ("IsMatch(body, \"GET\") == true", true),
        ] {
            assert_eq!(eval(text), want, "{text}");
        }
    }

    #[test]
    fn unsupported_syntax_is_named() {
        for (text, want) in [
            ("IsString(body)", "`IsString`"),
            ("span_id == nil", "`span_id`"),
            (
                "instrumentation_scope.name == \"x\"",
                "`instrumentation_scope.name`",
            ),
            ("body", "not a condition"),
            ("body == ", "ends where a value"),
            ("body == == \"x\"", "expected a value, found `==`"),
            ("body = \"x\"", "unsupported operator `=`"),
            ("(body == \"x\"", "expected `)`"),
            ("body == \"x\" extra", "unexpected `extra`"),
            ("IsMatch(body, \"(\")", "not a valid regex"),
            ("IsMatch(body, attributes[\"re\"])", "string literal"),
            ("severity_number[\"x\"] == 1", "can't be indexed"),
            ("body == \"unterminated", "unterminated string"),
            ("body == 'x'", "unexpected character"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        for text in [
            "", "(", ")", "[", "not", "and", "a[", "IsMatch(", "1 == ", "-", "\"\\",
        ] {
            let _ = Condition::parse(text);
        }
    }
}
