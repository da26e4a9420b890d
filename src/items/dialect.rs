//! Prodigy's filter and sort dialect, parsed into a small expression tree:
//!
//! * bare field paths of the item: `severity`, `File.score`, `a.b[0]`, `tags["odd key"]`
//!   (also `item.x`, `$item.x` and jq's `.x`; `.` alone is the item);
//! * literals: numbers, `'single'` (read as is) or `"double"` (JSON escapes) strings, `true`,
//!   `false`, `null`;
//! * comparisons `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`; `x in ['a', 'b']`;
//!   `x contains y`, `starts_with`, `ends_with`, `matches` (a regular expression);
//! * `AND`/`OR`/`NOT` (any case) and `&&`/`||`/`!`, parentheses;
//! * functions `is_null`, `is_not_null`, `is_empty`, `is_not_empty`, `is_number`,
//!   `is_string`, `is_bool`, `is_array`, `is_object`, `length`, `contains`, `starts_with`,
//!   `ends_with`, `matches`, `sum`, `count`, `min`, `max`, `avg`.
//!
//! Evaluation is in [`super::dialect_eval`].

use regex::Regex;

use super::dialect_lex::{LexError, Tok, Token, lex};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// String (and array) tests, infix or called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// One-argument functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    IsNull,
    IsNotNull,
    IsEmpty,
    IsNotEmpty,
    IsNumber,
    IsString,
    IsBool,
    IsArray,
    IsObject,
    Length,
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

/// An expression of the dialect.
#[derive(Debug, Clone)]
pub enum Node {
    Lit(serde_json::Value),
    Path(Vec<Seg>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    In(Box<Node>, Vec<serde_json::Value>),
    Str(StrOp, Box<Node>, Box<Node>),
    /// `x matches 're'`: a literal pattern is compiled once; a computed one at each use.
    Matches(Box<Node>, Box<Node>, Option<Regex>),
    Call(Func, Box<Node>),
    /// Prodigy's `length(x, n)`: the length of `x` is `n`.
    LengthIs(Box<Node>, f64),
}

/// A syntax error: what is wrong and the byte range of the token it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

impl From<LexError> for SyntaxError {
    fn from(e: LexError) -> Self {
        SyntaxError {
            start: e.offset,
            end: e.offset + 1,
            message: e.message,
        }
    }
}

/// Parse a filter (any expression).
pub fn parse_filter(src: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser::new(src)?;
    let n = p.or()?;
    p.finish()?;
    Ok(n)
}

/// Parse a sort or `distinct` key: a path, a literal or a function call.
pub fn parse_value(src: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser::new(src)?;
    let n = p.operand()?;
    p.finish()?;
    Ok(n)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

fn keyword(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(word))
}

fn func(name: &str) -> Option<Func> {
    Some(match name.to_ascii_lowercase().as_str() {
        "is_null" => Func::IsNull,
        "is_not_null" => Func::IsNotNull,
        "is_empty" => Func::IsEmpty,
        "is_not_empty" => Func::IsNotEmpty,
        "is_number" => Func::IsNumber,
        "is_string" => Func::IsString,
        "is_bool" => Func::IsBool,
        "is_array" => Func::IsArray,
        "is_object" => Func::IsObject,
        "length" => Func::Length,
        "sum" => Func::Sum,
        "count" => Func::Count,
        "min" => Func::Min,
        "max" => Func::Max,
        "avg" => Func::Avg,
        _ => return None,
    })
}

/// `contains`, `starts_with`/`startswith`, `ends_with`/`endswith`, `matches` (`None` for
/// `matches`).
fn str_op(name: &str) -> Option<Option<StrOp>> {
    Some(match name.to_ascii_lowercase().as_str() {
        "contains" => Some(StrOp::Contains),
        "starts_with" | "startswith" => Some(StrOp::StartsWith),
        "ends_with" | "endswith" => Some(StrOp::EndsWith),
        "matches" => None,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, SyntaxError> {
        let toks = lex(src)?;
        if toks.is_empty() {
            return Err(SyntaxError {
                start: 0,
                end: src.len(),
                message: "the expression is empty".into(),
            });
        }
        Ok(Parser { src, toks, pos: 0 })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.tok)
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        let (start, end) = match self.toks.get(self.pos) {
            Some(t) => (t.start, t.end),
            None => (self.src.len(), self.src.len()),
        };
        SyntaxError {
            start,
            end,
            message: message.into(),
        }
    }

    fn found(&self) -> String {
        match self.toks.get(self.pos) {
            Some(t) => format!("`{}`", &self.src[t.start..t.end]),
            None => "the end of the expression".into(),
        }
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.found())))
        }
    }

    fn finish(&self) -> Result<(), SyntaxError> {
        if self.pos < self.toks.len() {
            return Err(self.error(format!(
                "unexpected {} after a complete expression",
                self.found()
            )));
        }
        Ok(())
    }

    /// Whether the next token is the logical operator `sym` or its word `word` (any case).
    fn at_logical(&self, sym: &str, word: &str) -> bool {
        match self.peek() {
            Some(Tok::Op(op)) => *op == sym,
            Some(t) => keyword(t, word),
            None => false,
        }
    }

    fn or(&mut self) -> Result<Node, SyntaxError> {
        let mut left = self.and()?;
        while self.at_logical("||", "or") {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, SyntaxError> {
        let mut left = self.unary()?;
        while self.at_logical("&&", "and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, SyntaxError> {
        if self.at_logical("!", "not") {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, SyntaxError> {
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op("==" | "=")) => Some(Cmp::Eq),
            Some(Tok::Op("!=")) => Some(Cmp::Ne),
            Some(Tok::Op("<")) => Some(Cmp::Lt),
            Some(Tok::Op("<=")) => Some(Cmp::Le),
            Some(Tok::Op(">")) => Some(Cmp::Gt),
            Some(Tok::Op(">=")) => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Node::Cmp(op, Box::new(left), Box::new(right)));
        }
        if self.peek().is_some_and(|t| keyword(t, "in")) {
            self.pos += 1;
            let list = self.list()?;
            return Ok(Node::In(Box::new(left), list));
        }
        if let Some(Tok::Ident(name)) = self.peek()
            && let Some(op) = str_op(name)
        {
            self.pos += 1;
            let at = self.pos;
            let right = self.operand()?;
            return self.string_test(op, left, right, at);
        }
        Ok(left)
    }

    fn string_test(
        &self,
        op: Option<StrOp>,
        left: Node,
        right: Node,
        at: usize,
    ) -> Result<Node, SyntaxError> {
        match op {
            Some(op) => Ok(Node::Str(op, Box::new(left), Box::new(right))),
            None => {
                let re = match &right {
                    Node::Lit(serde_json::Value::String(p)) => {
                        Some(Regex::new(p).map_err(|e| {
                            let t = &self.toks[at.min(self.toks.len() - 1)];
                            SyntaxError {
                                start: t.start,
                                end: t.end,
                                message: format!("invalid regular expression: {e}"),
                            }
                        })?)
                    }
                    _ => None,
                };
                Ok(Node::Matches(Box::new(left), Box::new(right), re))
            }
        }
    }

    /// `[lit, lit, ...]` after `in`.
    fn list(&mut self) -> Result<Vec<serde_json::Value>, SyntaxError> {
        self.expect(&Tok::LBracket, "`[` (a list such as ['a', 'b'])")?;
        let mut out = Vec::new();
        if self.peek() == Some(&Tok::RBracket) {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            match self.operand()? {
                Node::Lit(v) => out.push(v),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("the values of an `in [...]` list must be literals"));
                }
            }
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::RBracket) => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(self.error(format!("expected `,` or `]`, found {}", self.found()))),
            }
        }
    }

    /// A literal, a path, a function call or a parenthesised expression.
    fn operand(&mut self) -> Result<Node, SyntaxError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.error("expected a value, found the end of the expression"));
        };
        match tok {
            Tok::Num(n) => {
                self.pos += 1;
                Ok(Node::Lit(number(n)))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Node::Lit(serde_json::Value::String(s)))
            }
            Tok::LParen => {
                self.pos += 1;
                let inner = self.or()?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Dot => {
                self.pos += 1;
                let mut path = Vec::new();
                if let Some(Tok::Ident(name)) = self.peek().cloned() {
                    self.pos += 1;
                    path.push(Seg::Key(name));
                } else if self.peek() == Some(&Tok::LBracket) {
                    // `.[0]`
                } else {
                    return Ok(Node::Path(path));
                }
                self.path_rest(path)
            }
            Tok::Var(name) if name == "item" => {
                self.pos += 1;
                self.path_rest(Vec::new())
            }
            Tok::Ident(name) => self.ident(name),
            _ => Err(self.error(format!("expected a value, found {}", self.found()))),
        }
    }

    fn ident(&mut self, name: String) -> Result<Node, SyntaxError> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "true" | "false" | "null" => {
                self.pos += 1;
                return Ok(Node::Lit(match lower.as_str() {
                    "true" => serde_json::Value::Bool(true),
                    "false" => serde_json::Value::Bool(false),
                    _ => serde_json::Value::Null,
                }));
            }
            "and" | "or" | "not" | "in" => {
                return Err(self.error(format!("expected a value, found {}", self.found())));
            }
            _ => {}
        }
        if self.peek_at(1) == Some(&Tok::LParen) {
            return self.call(&name);
        }
        if func(&name).is_some() || str_op(&name).is_some() {
            return Err(self.error(format!(
                "expected `(` after the function `{name}` (write `.{name}` for a field of that name)"
            )));
        }
        self.pos += 1;
        if name == "item" {
            return self.path_rest(Vec::new());
        }
        self.path_rest(vec![Seg::Key(name)])
    }

    fn call(&mut self, name: &str) -> Result<Node, SyntaxError> {
        let at = self.pos;
        let f = func(name);
        let s = str_op(name);
        if f.is_none() && s.is_none() {
            return Err(self.error(format!(
                "unknown function `{name}` (the dialect has is_null, is_not_null, is_empty, is_not_empty, is_number, is_string, is_bool, is_array, is_object, length, contains, starts_with, ends_with, matches, sum, count, min, max, avg)"
            )));
        }
        self.pos += 2; // name (
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push(self.or()?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(&Tok::RParen, "`,` or `)`")?;
        let arity = |want: &str| SyntaxError {
            start: self.toks[at].start,
            end: self.toks[at].end,
            message: format!("`{name}` takes {want}"),
        };
        match (f, s) {
            (Some(Func::Length), _) if args.len() == 2 => {
                let n = match &args[1] {
                    Node::Lit(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                    _ => return Err(arity("a value and a number: length(field, 3)")),
                };
                Ok(Node::LengthIs(Box::new(args.swap_remove(0)), n))
            }
            (Some(f), _) => {
                if args.len() != 1 {
                    return Err(arity("one argument"));
                }
                Ok(Node::Call(f, Box::new(args.swap_remove(0))))
            }
            (None, Some(op)) => {
                if args.len() != 2 {
                    return Err(arity("two arguments"));
                }
                let right = args.pop().unwrap_or(Node::Lit(serde_json::Value::Null));
                let left = args.pop().unwrap_or(Node::Lit(serde_json::Value::Null));
                // Point a bad pattern at the call.
                self.string_test(op, left, right, at)
            }
            (None, None) => Err(arity("arguments")),
        }
    }

    /// `.key`, `[N]`, `["key"]` after a path's start.
    fn path_rest(&mut self, mut path: Vec<Seg>) -> Result<Node, SyntaxError> {
        loop {
            match self.peek() {
                Some(Tok::Dot) => match self.peek_at(1).cloned() {
                    Some(Tok::Ident(k)) => {
                        self.pos += 2;
                        path.push(Seg::Key(k));
                    }
                    Some(Tok::LBracket) => self.pos += 1,
                    _ => {
                        self.pos += 1;
                        return Err(self.error(format!(
                            "expected a field name after `.`, found {}",
                            self.found()
                        )));
                    }
                },
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => {
                            path.push(Seg::Index(n as usize))
                        }
                        Some(Tok::Str(k)) => path.push(Seg::Key(k)),
                        _ => {
                            return Err(self.error(format!(
                                "expected an index such as [0] or a key such as [\"a b\"], found {}",
                                self.found()
                            )));
                        }
                    }
                    self.pos += 1;
                    self.expect(&Tok::RBracket, "`]`")?;
                }
                _ => return Ok(Node::Path(path)),
            }
        }
    }
}

/// A number literal as JSON: integral values as integers, so that `5` equals an item's `5`.
fn number(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) {
        parse_filter(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }

    #[test]
    fn prodigy_filters_parse() {
        for s in [
            "severity == 'high' || severity == 'critical'",
            "unified_score.final_score >= 5",
            "path matches '\\.rs$' && has_issues == true",
            "severity in ['high', 'critical'] AND NOT is_null(owner)",
            "File.score > 3 and a.b[0] = \"x\"",
            "!(priority > 5)",
            "length(tags) > 2 && is_empty(notes)",
            "name starts_with 'src/' OR contains(name, 'test')",
            "item.score >= 5 && !item.done",
            "$item.size >= 10 and !(.skip)",
            "length(tags, 2)",
        ] {
            ok(s);
        }
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = parse_filter("severity == ").unwrap_err();
        assert_eq!(e.start, 12);
        assert!(e.message.contains("end of the expression"), "{e:?}");
        let e = parse_filter("a == 1 b").unwrap_err();
        assert_eq!((e.start, e.end), (7, 8));
        let e = parse_filter("x in ['a', b]").unwrap_err();
        assert!(e.message.contains("literals"), "{e:?}");
        let e = parse_filter("p matches '('").unwrap_err();
        assert!(e.message.contains("regular expression"), "{e:?}");
        let e = parse_filter("nosuch(a)").unwrap_err();
        assert!(e.message.contains("unknown function"), "{e:?}");
        let e = parse_filter("is_null(a, b)").unwrap_err();
        assert!(e.message.contains("one argument"), "{e:?}");
    }

    #[test]
    fn jq_only_syntax_does_not_parse() {
        for s in [
            ".a | length",
            "select(.a)",
            "length > 3",
            "endswith(\".rs\")",
            ".a // 1",
        ] {
            assert!(parse_filter(s).is_err(), "{s}");
        }
    }

    #[test]
    fn value_keys() {
        assert!(parse_value("priority").is_ok());
        assert!(parse_value("a.b[1]").is_ok());
        assert!(parse_value("length(tags)").is_ok());
        assert!(parse_value("a == 1").is_err());
    }
}
