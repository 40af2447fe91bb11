//! Evaluates an AST against an entry. Values read from the entry are borrowed ([`Val::Ref`],
//! [`Val::Map`]); only computed results (concatenations, arithmetic, booleans) are owned.
//! Type rules follow expr-lang: numbers compare across int/float, `==` between different
//! types is false, ordering and arithmetic on other types are errors, and member access on
//! nil or a non-map is an error unless written with `?.`.

use super::EvalError;
use super::parser::{BinOp, Node};
use centimane_core::{Entry, Map, Timestamp, Value};
use regex::Regex;
use std::cmp::Ordering;

/// A value during evaluation.
#[derive(Debug)]
pub(super) enum Val<'a> {
    Ref(&'a Value),
    Owned(Value),
    /// `attributes` / `resource`: maps that are not stored inside a `Value`.
    Map(&'a Map),
    /// `timestamp`; `None` is Go's zero time.
    Time(Option<Timestamp>),
}

/// A borrowed look at a [`Val`] for operators to match on.
#[derive(Debug, Clone, Copy)]
enum View<'v> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'v str),
    Bytes(&'v [u8]),
    Array(&'v [Value]),
    Map(&'v Map),
    Time(Option<Timestamp>),
}

const NIL: Val<'static> = Val::Owned(Value::Null);

fn view_of(v: &Value) -> View<'_> {
    match v {
        Value::Null => View::Nil,
        Value::Bool(b) => View::Bool(*b),
        Value::Int(i) => View::Int(*i),
        Value::Double(d) => View::Float(*d),
        Value::Str(s) => View::Str(s),
        Value::Bytes(b) => View::Bytes(b),
        Value::Array(a) => View::Array(a),
        Value::Map(m) => View::Map(m),
    }
}

impl View<'_> {
    fn type_name(self) -> &'static str {
        match self {
            View::Nil => "nil",
            View::Bool(_) => "bool",
            View::Int(_) => "int",
            View::Float(_) => "float64",
            View::Str(_) => "string",
            View::Bytes(_) => "[]uint8",
            View::Array(_) => "[]interface {}",
            View::Map(_) => "map[string]interface {}",
            View::Time(_) => "time.Time",
        }
    }
}

impl<'a> Val<'a> {
    fn view(&self) -> View<'_> {
        match self {
            Val::Ref(v) => view_of(v),
            Val::Owned(v) => view_of(v),
            Val::Map(m) => View::Map(m),
            Val::Time(t) => View::Time(*t),
        }
    }

    /// The result as an entry value. A time becomes its RFC 3339 text, as `Value` has no
    /// time type.
    pub(super) fn into_value(self) -> Value {
        match self {
            Val::Ref(v) => v.clone(),
            Val::Owned(v) => v,
            Val::Map(m) => Value::Map(Box::new(m.clone())),
            Val::Time(t) => Value::Str(match t {
                Some(t) => t.to_string().into(),
                None => "0001-01-01T00:00:00Z".into(),
            }),
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self.view() {
            View::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        self.view().type_name()
    }

    /// Looks `key` up in a map value; a missing key is nil.
    fn member(self, key: &str, optional: bool) -> Result<Val<'a>, EvalError> {
        match self {
            Val::Ref(Value::Map(m)) => Ok(m.get(key).map_or(NIL, Val::Ref)),
            Val::Map(m) => Ok(m.get(key).map_or(NIL, Val::Ref)),
            Val::Owned(Value::Map(mut m)) => Ok(m.shift_remove(key).map_or(NIL, Val::Owned)),
            other if optional && matches!(other.view(), View::Nil) => Ok(NIL),
            other => Err(EvalError::new(format!(
                "cannot fetch {key} from {}",
                other.type_name()
            ))),
        }
    }

    /// `target[index]`: a map key or an array position (negative counts from the end).
    fn index(self, index: &Val<'_>, optional: bool) -> Result<Val<'a>, EvalError> {
        if optional && matches!(self.view(), View::Nil) {
            return Ok(NIL);
        }
        match (self, index.view()) {
            (target, View::Str(key)) if matches!(target.view(), View::Map(_)) => {
                target.member(key, optional)
            }
            (Val::Ref(Value::Array(items)), View::Int(i)) => {
                position(items.len(), i).map(|p| Val::Ref(&items[p]))
            }
            (Val::Owned(Value::Array(mut items)), View::Int(i)) => {
                position(items.len(), i).map(|p| Val::Owned(items.swap_remove(p)))
            }
            (target, idx) => Err(EvalError::new(format!(
                "cannot use {} as index to {}",
                idx.type_name(),
                target.type_name()
            ))),
        }
    }
}

fn position(len: usize, i: i64) -> Result<usize, EvalError> {
    let signed = if i < 0 {
        i64::try_from(len).unwrap_or(i64::MAX) + i
    } else {
        i
    };
    usize::try_from(signed)
        .ok()
        .filter(|p| *p < len)
        .ok_or_else(|| EvalError::new(format!("index out of range: {i} (array length is {len})")))
}

fn owned<'a>(v: Value) -> Result<Val<'a>, EvalError> {
    Ok(Val::Owned(v))
}

fn boolean<'a>(b: bool) -> Result<Val<'a>, EvalError> {
    owned(Value::Bool(b))
}

/// Evaluates `node` against `entry`.
pub(super) fn eval<'a>(node: &'a Node, entry: &'a Entry) -> Result<Val<'a>, EvalError> {
    match node {
        Node::Lit(v) => Ok(Val::Ref(v)),
        Node::Body => Ok(Val::Ref(&entry.body)),
        Node::Attributes => Ok(Val::Map(&entry.attributes)),
        Node::Resource => Ok(Val::Map(&entry.resource)),
        Node::Timestamp => Ok(Val::Time(entry.timestamp)),
        Node::Env(arg) => {
            let name = eval(arg, entry)?;
            match name.view() {
                View::Str(var) => owned(Value::Str(std::env::var(var).unwrap_or_default().into())),
                other => Err(EvalError::new(format!(
                    "env() needs a string, got {}",
                    other.type_name()
                ))),
            }
        }
        Node::Member {
            target,
            key,
            optional,
        } => eval(target, entry)?.member(key, *optional),
        Node::Index {
            target,
            index,
            optional,
        } => {
            let target = eval(target, entry)?;
            let index = eval(index, entry)?;
            target.index(&index, *optional)
        }
        Node::List(items) => owned(Value::Array(Box::new(
            items
                .iter()
                .map(|n| eval(n, entry).map(Val::into_value))
                .collect::<Result<_, _>>()?,
        ))),
        Node::Not(inner) => match eval(inner, entry)?.view() {
            View::Bool(b) => boolean(!b),
            other => Err(EvalError::new(format!(
                "invalid operation: ! {}",
                other.type_name()
            ))),
        },
        Node::Neg(inner) => match eval(inner, entry)?.view() {
            View::Int(i) => owned(Value::Int(i.wrapping_neg())),
            View::Float(f) => owned(Value::Double(-f)),
            other => Err(EvalError::new(format!(
                "invalid operation: - {}",
                other.type_name()
            ))),
        },
        Node::And(l, r) => Ok(if bool_operand(l, entry, "and")? {
            Val::Owned(Value::Bool(bool_operand(r, entry, "and")?))
        } else {
            Val::Owned(Value::Bool(false))
        }),
        Node::Or(l, r) => Ok(if bool_operand(l, entry, "or")? {
            Val::Owned(Value::Bool(true))
        } else {
            Val::Owned(Value::Bool(bool_operand(r, entry, "or")?))
        }),
        Node::Coalesce(l, r) => {
            let left = eval(l, entry)?;
            if matches!(left.view(), View::Nil) {
                eval(r, entry)
            } else {
                Ok(left)
            }
        }
        Node::Cond(cond, then, otherwise) => {
            if bool_operand(cond, entry, "?:")? {
                eval(then, entry)
            } else {
                eval(otherwise, entry)
            }
        }
        Node::MatchesLit(l, re) => {
            let left = eval(l, entry)?;
            matches_regex(left.view(), re)
        }
        Node::Binary(op, l, r) => {
            let left = eval(l, entry)?;
            let right = eval(r, entry)?;
            binary(*op, left.view(), right.view())
        }
    }
}

fn bool_operand(node: &Node, entry: &Entry, op: &str) -> Result<bool, EvalError> {
    let v = eval(node, entry)?;
    v.as_bool().ok_or_else(|| {
        EvalError::new(format!(
            "invalid operation: {op} needs bool operands, got {}",
            v.type_name()
        ))
    })
}

fn matches_regex<'a>(left: View<'_>, re: &Regex) -> Result<Val<'a>, EvalError> {
    match left {
        View::Str(s) => boolean(re.is_match(s)),
        other => Err(EvalError::new(format!(
            "invalid operation: {} matches string",
            other.type_name()
        ))),
    }
}

fn mismatch(op: &str, l: View<'_>, r: View<'_>) -> EvalError {
    EvalError::new(format!(
        "invalid operation: {op} (mismatched types {} and {})",
        l.type_name(),
        r.type_name()
    ))
}

fn binary<'a>(op: BinOp, l: View<'_>, r: View<'_>) -> Result<Val<'a>, EvalError> {
    match op {
        BinOp::Eq => boolean(equal(l, r)),
        BinOp::Ne => boolean(!equal(l, r)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let symbol = match op {
                BinOp::Lt => "<",
                BinOp::Le => "<=",
                BinOp::Gt => ">",
                _ => ">=",
            };
            let ord = compare(l, r).ok_or_else(|| mismatch(symbol, l, r))?;
            boolean(match op {
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
        BinOp::Add => match (l, r) {
            (View::Str(a), View::Str(b)) => {
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(a);
                s.push_str(b);
                owned(Value::Str(s.into()))
            }
            _ => arithmetic("+", l, r, i64::wrapping_add, |a, b| a + b),
        },
        BinOp::Sub => arithmetic("-", l, r, i64::wrapping_sub, |a, b| a - b),
        BinOp::Mul => arithmetic("*", l, r, i64::wrapping_mul, |a, b| a * b),
        // expr-lang's `/` is always a float division.
        BinOp::Div => match (as_f64(l), as_f64(r)) {
            (Some(a), Some(b)) => owned(Value::Double(a / b)),
            _ => Err(mismatch("/", l, r)),
        },
        BinOp::Mod => match (l, r) {
            (View::Int(_), View::Int(0)) => Err(EvalError::new("integer divide by zero".into())),
            (View::Int(a), View::Int(b)) => owned(Value::Int(a.wrapping_rem(b))),
            _ => Err(mismatch("%", l, r)),
        },
        BinOp::In => match r {
            View::Array(items) => boolean(items.iter().any(|item| equal(l, view_of(item)))),
            View::Map(m) => match l {
                View::Str(key) => boolean(m.contains_key(key)),
                other => Err(EvalError::new(format!(
                    "cannot use {} as a map key",
                    other.type_name()
                ))),
            },
            View::Nil => boolean(false),
            other => Err(EvalError::new(format!(
                "operator \"in\" not defined on {}",
                other.type_name()
            ))),
        },
        BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith => match (l, r) {
            (View::Str(a), View::Str(b)) => boolean(match op {
                BinOp::Contains => a.contains(b),
                BinOp::StartsWith => a.starts_with(b),
                _ => a.ends_with(b),
            }),
            _ => Err(mismatch(
                match op {
                    BinOp::Contains => "contains",
                    BinOp::StartsWith => "startsWith",
                    _ => "endsWith",
                },
                l,
                r,
            )),
        },
        BinOp::Matches => match r {
            View::Str(pattern) => {
                let re = crate::go_regex::compile(pattern)
                    .map_err(|e| EvalError::new(format!("invalid regex {pattern:?}: {e}")))?;
                matches_regex(l, &re)
            }
            _ => Err(mismatch("matches", l, r)),
        },
    }
}

fn as_f64(v: View<'_>) -> Option<f64> {
    match v {
        View::Int(i) => Some(i as f64),
        View::Float(f) => Some(f),
        _ => None,
    }
}

fn arithmetic<'a>(
    symbol: &str,
    l: View<'_>,
    r: View<'_>,
    ints: fn(i64, i64) -> i64,
    floats: fn(f64, f64) -> f64,
) -> Result<Val<'a>, EvalError> {
    match (l, r) {
        (View::Int(a), View::Int(b)) => owned(Value::Int(ints(a, b))),
        _ => match (as_f64(l), as_f64(r)) {
            (Some(a), Some(b)) => owned(Value::Double(floats(a, b))),
            _ => Err(mismatch(symbol, l, r)),
        },
    }
}

/// expr-lang's `==`: numbers by value across int/float, otherwise same type and same value.
fn equal(l: View<'_>, r: View<'_>) -> bool {
    match (l, r) {
        (View::Nil, View::Nil) => true,
        (View::Bool(a), View::Bool(b)) => a == b,
        (View::Str(a), View::Str(b)) => a == b,
        (View::Bytes(a), View::Bytes(b)) => a == b,
        (View::Array(a), View::Array(b)) => a == b,
        (View::Map(a), View::Map(b)) => a == b,
        (View::Time(a), View::Time(b)) => a == b,
        _ => match (as_f64(l), as_f64(r)) {
            (Some(_), Some(_)) => compare(l, r) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

/// Ordering for numbers, strings and times; `None` for anything else.
fn compare(l: View<'_>, r: View<'_>) -> Option<Ordering> {
    match (l, r) {
        (View::Int(a), View::Int(b)) => Some(a.cmp(&b)),
        (View::Str(a), View::Str(b)) => Some(a.cmp(b)),
        (View::Time(a), View::Time(b)) => Some(a.cmp(&b)),
        _ => as_f64(l)?.partial_cmp(&as_f64(r)?),
    }
}
