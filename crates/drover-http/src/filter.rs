//! `?filter=` expressions: a subset of go-bexpr, evaluated against the JSON of the *full*
//! stored object (the whole `Job`, not its list stub), as Nomad does.
//!
//! ```text
//!  "Status == \"running\" and Meta.owner != \"ops\""
//!     └─ tokenize ─▶ parse (precedence: not > and > or) ─▶ Expr ─▶ matches(&serde_json::Value)
//! ```
//!
//! Supported: selectors `A.B.C` and `Meta["key"]`; `==`, `!=`, `contains`, `not contains`,
//! `in`, `not in` (`"v" in Selector`), `is empty`, `is not empty`, `is nil`, `is not nil`;
//! `and`, `or`, `not`, parentheses; values as `"strings"`, `` `raw strings` ``, numbers,
//! `true`/`false`. A selector that passes through a list applies to every element and matches
//! when any does (`TaskGroups.Name == "web"`).
//!
//! Limits: `matches` / `not matches` (regular expressions) are rejected; selectors are not
//! checked against the object's schema, so a misspelt field is simply nil. An expression we
//! cannot parse is answered `400 failed to create result paginator: <why>` — the text the
//! `nomad` CLI recognises to fall back to filtering on its side.

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Contains,
    NotContains,
    In,
    NotIn,
    Empty,
    NotEmpty,
    Nil,
    NotNil,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Eq,
    Ne,
    LParen,
    RParen,
    Dot,
    LBracket,
    RBracket,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '.' => {
                out.push(Tok::Dot);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Eq);
                i += 2;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Ne);
                i += 2;
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => v.push('\n'),
                                Some('t') => v.push('\t'),
                                Some(&c) => v.push(c),
                                None => return Err("unterminated string".into()),
                            }
                            i += 2;
                        }
                        Some(&c) => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?} at offset {i}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }
    fn peek_ident_at(&self, off: usize, word: &str) -> bool {
        matches!(self.toks.get(self.pos + off), Some(Tok::Ident(w)) if w == word)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_ident("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_ident("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_ident("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err("expected \")\"".into());
            }
            return Ok(e);
        }
        self.matcher()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Ok(s),
            Some(Tok::Ident(s)) if s == "true" || s == "false" => Ok(s),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn selector(&mut self) -> Result<Vec<String>, String> {
        let mut path = match self.next() {
            Some(Tok::Ident(s)) => vec![s],
            other => return Err(format!("expected a selector, found {other:?}")),
        };
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    match self.next() {
                        Some(Tok::Ident(s)) | Some(Tok::Num(s)) => path.push(s),
                        other => return Err(format!("expected a field name after \".\", found {other:?}")),
                    }
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let key = self.value()?;
                    if self.next() != Some(Tok::RBracket) {
                        return Err("expected \"]\"".into());
                    }
                    path.push(key);
                }
                _ => return Ok(path),
            }
        }
    }

    fn matcher(&mut self) -> Result<Expr, String> {
        // `"value" in Selector` / `"value" not in Selector`
        if matches!(self.peek(), Some(Tok::Str(_)) | Some(Tok::Num(_))) {
            let value = self.value()?;
            let op = if self.peek_ident("in") {
                self.pos += 1;
                Op::In
            } else if self.peek_ident("not") && self.peek_ident_at(1, "in") {
                self.pos += 2;
                Op::NotIn
            } else {
                return Err("expected \"in\" or \"not in\" after a value".into());
            };
            let selector = self.selector()?;
            return Ok(Expr::Match {
                selector,
                op,
                value: Some(value),
            });
        }
        let selector = self.selector()?;
        let op = match self.next() {
            Some(Tok::Eq) => Op::Eq,
            Some(Tok::Ne) => Op::Ne,
            Some(Tok::Ident(w)) => match w.as_str() {
                "contains" => Op::Contains,
                "is" => {
                    let negated = self.peek_ident("not");
                    if negated {
                        self.pos += 1;
                    }
                    match self.next() {
                        Some(Tok::Ident(w)) if w == "empty" => {
                            if negated {
                                Op::NotEmpty
                            } else {
                                Op::Empty
                            }
                        }
                        Some(Tok::Ident(w)) if w == "nil" => {
                            if negated {
                                Op::NotNil
                            } else {
                                Op::Nil
                            }
                        }
                        other => return Err(format!("expected \"empty\" or \"nil\", found {other:?}")),
                    }
                }
                "not" => match self.next() {
                    Some(Tok::Ident(w)) if w == "contains" => Op::NotContains,
                    Some(Tok::Ident(w)) if w == "matches" => {
                        return Err("the \"not matches\" operator is not supported".into());
                    }
                    other => return Err(format!("unexpected {other:?} after \"not\"")),
                },
                "matches" => return Err("the \"matches\" operator is not supported".into()),
                other => return Err(format!("unknown operator {other:?}")),
            },
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        let value = match op {
            Op::Empty | Op::NotEmpty | Op::Nil | Op::NotNil => None,
            _ => Some(self.value()?),
        };
        Ok(Expr::Match { selector, op, value })
    }
}

/// The values a selector reaches (lists fan out; a missing field reaches nothing).
fn resolve<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match v {
        Value::Object(o) => {
            if let Some(child) = o.get(first) {
                resolve(child, rest, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve(item, path, out);
            }
        }
        _ => {}
    }
}

/// Whether a JSON scalar equals the literal (compared in the field's type, as bexpr coerces).
fn scalar_eq(v: &Value, lit: &str) -> bool {
    match v {
        Value::String(s) => s == lit,
        Value::Bool(b) => lit.parse::<bool>().is_ok_and(|l| l == *b),
        Value::Number(n) => match (n.as_f64(), lit.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Array(items) => items.iter().any(|i| scalar_eq(i, lit)),
        _ => false,
    }
}

fn contains(v: &Value, lit: &str) -> bool {
    match v {
        Value::String(s) => s.contains(lit),
        Value::Array(items) => items.iter().any(|i| scalar_eq(i, lit)),
        Value::Object(o) => o.contains_key(lit),
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl Filter {
    /// Parses an expression.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut p = Parser {
            toks: tokenize(s)?,
            pos: 0,
        };
        let expr = p.or()?;
        if let Some(t) = p.peek() {
            return Err(format!("unexpected {t:?} after the expression"));
        }
        Ok(Filter { expr })
    }

    /// Whether the object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        eval(&self.expr, obj)
    }
}

fn eval(e: &Expr, obj: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, obj) && eval(b, obj),
        Expr::Or(a, b) => eval(a, obj) || eval(b, obj),
        Expr::Not(a) => !eval(a, obj),
        Expr::Match { selector, op, value } => {
            let mut found = Vec::new();
            resolve(obj, selector, &mut found);
            let lit = value.as_deref().unwrap_or_default();
            match op {
                Op::Eq => found.iter().any(|v| scalar_eq(v, lit)),
                Op::Ne => !found.iter().any(|v| scalar_eq(v, lit)),
                Op::Contains | Op::In => found.iter().any(|v| contains(v, lit)),
                Op::NotContains | Op::NotIn => !found.iter().any(|v| contains(v, lit)),
                Op::Empty => found.iter().all(|v| is_empty(v)),
                Op::NotEmpty => !found.iter().all(|v| is_empty(v)),
                Op::Nil => found.iter().all(|v| v.is_null()),
                Op::NotNil => !found.iter().all(|v| v.is_null()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(f: &str, v: &Value) -> bool {
        Filter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(v)
    }

    #[test]
    fn expressions() {
        let job = json!({
            "ID": "web", "Status": "running", "Priority": 50, "Stop": false,
            "Meta": {"owner": "ops"}, "Periodic": null,
            "TaskGroups": [{"Name": "api"}, {"Name": "cache"}],
            "Datacenters": ["dc1", "dc2"]
        });
        assert!(m(r#"Status == "running""#, &job));
        assert!(!m(r#"Status != "running""#, &job));
        assert!(m(r#"Priority == 50 and Stop == false"#, &job));
        assert!(m(r#"Meta.owner == "ops" or ID == "x""#, &job));
        assert!(m(r#"Meta["owner"] == `ops`"#, &job));
        assert!(m(r#"TaskGroups.Name == "cache""#, &job));
        assert!(m(r#""dc2" in Datacenters"#, &job));
        assert!(m(
            r#"Datacenters contains "dc1" and "dc9" not in Datacenters"#,
            &job
        ));
        assert!(m("Periodic is nil", &job));
        assert!(!m("Periodic is not nil", &job));
        assert!(m("not (Meta is empty)", &job));
        assert!(m("ParameterizedJob is nil", &job));
        assert!(m(r#"ID contains "we""#, &job));
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        assert!(Filter::parse(r#"ID matches "^w""#).is_err());
        assert!(Filter::parse(r#"ID == "#).is_err());
        assert!(Filter::parse(r#"(ID == "a""#).is_err());
        assert!(Filter::parse(r#"ID ~ "a""#).is_err());
        assert!(Filter::parse(r#"ID == "a" extra"#).is_err());
    }
}
