//! Parses tokens into an AST with expr-lang's precedence (lowest first): `? :`, `or`/`||`,
//! `and`/`&&`, comparisons and `in`/`matches`/`contains`/`startsWith`/`endsWith`, `+ -`,
//! `not`/`!` (unary), `* / %`, unary `-`, `??`, then member/index access.
//! Constant work is done here, once: literal lists are folded, `env("X")` is read, and regex
//! literals on the right of `matches` are compiled.

use super::lexer::Tok;
use centimane_core::Value;
use regex::Regex;

#[derive(Debug)]
pub(super) enum Node {
    Lit(Value),
    Body,
    Attributes,
    Resource,
    Timestamp,
    /// `env(x)` with a computed argument; a literal argument is read at build time.
    Env(Box<Node>),
    Member {
        target: Box<Node>,
        key: String,
        optional: bool,
    },
    Index {
        target: Box<Node>,
        index: Box<Node>,
        optional: bool,
    },
    List(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Coalesce(Box<Node>, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    /// `x matches "literal"`, compiled once.
    MatchesLit(Box<Node>, Regex),
    Cond(Box<Node>, Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    In,
    Contains,
    StartsWith,
    EndsWith,
    /// `matches` with a computed pattern.
    Matches,
}

/// What a binary operator token means.
#[derive(Clone, Copy)]
enum Infix {
    Or,
    And,
    Coalesce,
    Op(BinOp),
}

impl Infix {
    fn precedence(self) -> u16 {
        match self {
            Infix::Or => 10,
            Infix::And => 15,
            Infix::Op(BinOp::Add | BinOp::Sub) => 30,
            Infix::Op(BinOp::Mul | BinOp::Div | BinOp::Mod) => 60,
            Infix::Coalesce => 500,
            Infix::Op(_) => 20,
        }
    }
}

const UNARY_NOT_PRECEDENCE: u16 = 50;
const UNARY_MINUS_PRECEDENCE: u16 = 90;
/// Limits that keep parsing, evaluating and dropping an expression within the stack: the
/// parser's recursion, the length of the source, and the depth of the finished tree (long
/// `a + b + ...` or `a.b.c...` chains nest without recursing in the parser).
const MAX_DEPTH: usize = 128;
const MAX_TOKENS: usize = 4096;
const MAX_TREE_DEPTH: usize = 256;

pub(super) fn parse(toks: Vec<Tok>) -> Result<Node, String> {
    if toks.len() > MAX_TOKENS {
        return Err(format!(
            "expression is too long (more than {MAX_TOKENS} tokens)"
        ));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let node = p.expression(0)?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {}", describe(t)));
    }
    if tree_depth(&node) > MAX_TREE_DEPTH {
        return Err("expression is nested too deeply".to_owned());
    }
    Ok(node)
}

/// The depth of the tree (bounded by the token count, so this recursion is shallow enough).
fn tree_depth(node: &Node) -> usize {
    let children: Vec<&Node> = match node {
        Node::Lit(_) | Node::Body | Node::Attributes | Node::Resource | Node::Timestamp => {
            Vec::new()
        }
        Node::Env(n) | Node::Not(n) | Node::Neg(n) | Node::MatchesLit(n, _) => vec![n],
        Node::Member { target, .. } => vec![target],
        Node::Index { target, index, .. } => vec![target, index],
        Node::List(items) => items.iter().collect(),
        Node::And(l, r) | Node::Or(l, r) | Node::Coalesce(l, r) | Node::Binary(_, l, r) => {
            vec![l, r]
        }
        Node::Cond(c, t, o) => vec![c, t, o],
    };
    1 + children.into_iter().map(tree_depth).max().unwrap_or(0)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Num(n) => format!("number {}", n.to_text()),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Punct(p) => format!("`{p}`"),
    }
}

fn word_op(word: &str) -> Option<BinOp> {
    Some(match word {
        "in" => BinOp::In,
        "matches" => BinOp::Matches,
        "contains" => BinOp::Contains,
        "startsWith" => BinOp::StartsWith,
        "endsWith" => BinOp::EndsWith,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.pos + ahead)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), String> {
        if self.is_punct(p) {
            self.pos += 1;
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected `{p}`, found {}", describe(t)),
                None => format!("expected `{p}` at the end"),
            })
        }
    }

    /// The binary operator at the cursor: what it is, whether it is negated (`not in`), and
    /// how many tokens it spans.
    fn peek_infix(&self) -> Result<Option<(Infix, bool, usize)>, String> {
        let infix = match self.peek() {
            Some(Tok::Punct(p)) => match *p {
                "||" => Infix::Or,
                "&&" => Infix::And,
                "??" => Infix::Coalesce,
                "==" => Infix::Op(BinOp::Eq),
                "!=" => Infix::Op(BinOp::Ne),
                "<" => Infix::Op(BinOp::Lt),
                "<=" => Infix::Op(BinOp::Le),
                ">" => Infix::Op(BinOp::Gt),
                ">=" => Infix::Op(BinOp::Ge),
                "+" => Infix::Op(BinOp::Add),
                "-" => Infix::Op(BinOp::Sub),
                "*" => Infix::Op(BinOp::Mul),
                "/" => Infix::Op(BinOp::Div),
                "%" => Infix::Op(BinOp::Mod),
                _ => return Ok(None),
            },
            Some(Tok::Word(w)) => match w.as_str() {
                "or" => Infix::Or,
                "and" => Infix::And,
                "not" => {
                    return match self.peek_at(1) {
                        Some(Tok::Word(next)) => match word_op(next) {
                            Some(op) => Ok(Some((Infix::Op(op), true, 2))),
                            None => Err(format!("unexpected `{next}` after `not`")),
                        },
                        Some(t) => Err(format!("unexpected {} after `not`", describe(t))),
                        None => Err("unexpected end after `not`".to_owned()),
                    };
                }
                other => match word_op(other) {
                    Some(op) => Infix::Op(op),
                    None => return Ok(None),
                },
            },
            _ => return Ok(None),
        };
        Ok(Some((infix, false, 1)))
    }

    fn expression(&mut self, min_precedence: u16) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression is nested too deeply".to_owned());
        }
        let mut left = self.unary()?;
        while let Some((infix, negated, len)) = self.peek_infix()? {
            let precedence = infix.precedence();
            if precedence < min_precedence {
                break;
            }
            self.pos += len;
            let right = self.expression(precedence + 1)?;
            left = combine(infix, left, right)?;
            if negated {
                left = Node::Not(Box::new(left));
            }
        }
        if min_precedence == 0 && self.is_punct("?") {
            self.pos += 1;
            let then = self.expression(0)?;
            self.expect_punct(":")?;
            let otherwise = self.expression(0)?;
            left = Node::Cond(Box::new(left), Box::new(then), Box::new(otherwise));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(Tok::Punct("!")) => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.expression(UNARY_NOT_PRECEDENCE)?)))
            }
            Some(Tok::Word(w)) if w == "not" => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.expression(UNARY_NOT_PRECEDENCE)?)))
            }
            Some(Tok::Punct("-")) => {
                self.pos += 1;
                Ok(match self.expression(UNARY_MINUS_PRECEDENCE)? {
                    Node::Lit(Value::Int(i)) => Node::Lit(Value::Int(i.wrapping_neg())),
                    Node::Lit(Value::Double(d)) => Node::Lit(Value::Double(-d)),
                    other => Node::Neg(Box::new(other)),
                })
            }
            Some(Tok::Punct("+")) => {
                self.pos += 1;
                self.expression(UNARY_MINUS_PRECEDENCE)
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn primary(&mut self) -> Result<Node, String> {
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Err("unexpected end of expression".to_owned());
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Num(n) => Node::Lit(n),
            Tok::Str(s) => Node::Lit(Value::Str(s.into())),
            Tok::Punct("(") => {
                let inner = self.expression(0)?;
                self.expect_punct(")")?;
                inner
            }
            Tok::Punct("[") => self.list()?,
            Tok::Word(w) => match w.as_str() {
                "true" => Node::Lit(Value::Bool(true)),
                "false" => Node::Lit(Value::Bool(false)),
                "nil" => Node::Lit(Value::Null),
                "body" | "$" => Node::Body,
                "attributes" => Node::Attributes,
                "resource" => Node::Resource,
                "timestamp" => Node::Timestamp,
                _ if self.is_punct("(") => self.call(&w)?,
                // Compiled with "allow undefined variables": an unknown name is nil.
                _ => Node::Lit(Value::Null),
            },
            other => return Err(format!("unexpected {}", describe(&other))),
        })
    }

    fn list(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while !self.is_punct("]") {
            items.push(self.expression(0)?);
            if !self.is_punct("]") {
                self.expect_punct(",")?;
            }
        }
        self.pos += 1;
        // A list of literals is a constant: build it once.
        if items.iter().all(|n| matches!(n, Node::Lit(_))) {
            let values = items
                .into_iter()
                .filter_map(|n| match n {
                    Node::Lit(v) => Some(v),
                    _ => None,
                })
                .collect();
            return Ok(Node::Lit(Value::Array(Box::new(values))));
        }
        Ok(Node::List(items))
    }

    fn call(&mut self, name: &str) -> Result<Node, String> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        while !self.is_punct(")") {
            args.push(self.expression(0)?);
            if !self.is_punct(")") {
                self.expect_punct(",")?;
            }
        }
        self.pos += 1;
        match (name, args.len()) {
            ("env", 1) => Ok(match args.pop() {
                // The environment is read when the chain is built, like `${env:X}` in config.
                Some(Node::Lit(Value::Str(var))) => {
                    Node::Lit(Value::Str(std::env::var(var).unwrap_or_default().into()))
                }
                Some(arg) => Node::Env(Box::new(arg)),
                None => return Err("env() needs one argument".to_owned()),
            }),
            ("env", n) => Err(format!("env() takes one argument, got {n}")),
            (other, _) => Err(format!("unknown function `{other}`")),
        }
    }

    fn postfix(&mut self, mut node: Node) -> Result<Node, String> {
        loop {
            let optional = match self.peek() {
                Some(Tok::Punct(".")) => false,
                Some(Tok::Punct("?.")) => true,
                Some(Tok::Punct("[")) => {
                    self.pos += 1;
                    let index = self.expression(0)?;
                    self.expect_punct("]")?;
                    node = Node::Index {
                        target: Box::new(node),
                        index: Box::new(index),
                        optional: false,
                    };
                    continue;
                }
                _ => return Ok(node),
            };
            self.pos += 1;
            match self.toks.get(self.pos).cloned() {
                Some(Tok::Word(key)) => {
                    self.pos += 1;
                    node = Node::Member {
                        target: Box::new(node),
                        key,
                        optional,
                    };
                }
                Some(Tok::Punct("[")) if optional => {
                    self.pos += 1;
                    let index = self.expression(0)?;
                    self.expect_punct("]")?;
                    node = Node::Index {
                        target: Box::new(node),
                        index: Box::new(index),
                        optional,
                    };
                }
                Some(t) => {
                    return Err(format!("expected a name after `.`, found {}", describe(&t)));
                }
                None => return Err("expected a name after `.`".to_owned()),
            }
        }
    }
}

fn combine(infix: Infix, left: Node, right: Node) -> Result<Node, String> {
    let (l, r) = (Box::new(left), Box::new(right));
    Ok(match infix {
        Infix::Or => Node::Or(l, r),
        Infix::And => Node::And(l, r),
        Infix::Coalesce => Node::Coalesce(l, r),
        Infix::Op(BinOp::Matches) => match *r {
            Node::Lit(Value::Str(pattern)) => {
                let re = crate::go_regex::compile(&pattern)
                    .map_err(|e| format!("invalid regex: {e}"))?;
                Node::MatchesLit(l, re)
            }
            other => Node::Binary(BinOp::Matches, l, Box::new(other)),
        },
        Infix::Op(op) => Node::Binary(op, l, r),
    })
}
