//! Version strings and version-constraint lists for the `version` and `semver` operands.
//!
//! Two dialects share one representation ([`Version`]):
//!
//! - **lenient** (`version`, HashiCorp go-version style): an optional `v`, any number of
//!   dot-separated numeric segments (`"1"`, `"1.2"`, `"1.2.3.4"`; missing segments compare as
//!   0 so `"1.2" == "1.2.0"`), an optional pre-release (`"-beta.1"`, or attached without a dash
//!   when it starts with a letter: `"1.2.3beta"`), optional `+metadata` (ignored when
//!   comparing). Constraint operators: `=` (also no operator), `!=`, `>`, `<`, `>=`, `<=`, `~>`.
//!   A pre-release version only satisfies an ordering or `~>` constraint whose version is a
//!   pre-release of the same base segments; a pre-release *constraint* paired with `~>` only
//!   admits pre-releases. `=`/`!=` compare plainly.
//! - **strict** (`semver`, Semantic Versioning 2.0): exactly `MAJOR.MINOR.PATCH` (an optional
//!   leading `v` is tolerated), no leading zeros in numeric parts or numeric pre-release
//!   identifiers, identifiers of `[0-9A-Za-z-]`. Operators as above minus `~>`. Pre-releases
//!   take part in ordering normally (`1.6.0-beta >= 1.0.0`).
//!
//! Precedence (both dialects): numeric segments, then a release sorts above any of its
//! pre-releases; pre-release identifiers compare pairwise, numeric ones numerically and below
//! alphanumeric ones, alphanumeric ones by ASCII; a shorter identifier list that is a prefix
//! of a longer one sorts first. Build metadata never matters.

use std::cmp::Ordering;

/// One pre-release identifier. The derived order is the precedence order: every numeric
/// identifier sorts before every alphanumeric one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Num(u64),
    Alpha(String),
}

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    /// Numeric segments as written, padded with zeros to at least three.
    segments: Vec<u64>,
    /// How many segments were written (before padding).
    written: usize,
    /// Pre-release identifiers; empty for a release.
    pre: Vec<Ident>,
}

impl Version {
    fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn segment(&self, i: usize) -> u64 {
        self.segments.get(i).copied().unwrap_or(0)
    }

    fn cmp_segments(&self, other: &Version) -> Ordering {
        let n = self.segments.len().max(other.segments.len());
        (0..n)
            .map(|i| self.segment(i).cmp(&other.segment(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// Full precedence (build metadata is not stored, so it cannot matter).
    pub(crate) fn precedence(&self, other: &Version) -> Ordering {
        self.cmp_segments(other)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

fn ident_char_lenient(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '~'
}

fn ident_char_strict(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Splits a dot-separated identifier list; every identifier must be non-empty and made of
/// allowed characters.
fn identifiers(s: &str, allowed: fn(char) -> bool) -> Option<Vec<&str>> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.iter().any(|p| p.is_empty() || !p.chars().all(allowed)) {
        return None;
    }
    Some(parts)
}

fn lenient_ident(s: &str) -> Ident {
    if s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = s.parse::<u64>()
    {
        return Ident::Num(n);
    }
    Ident::Alpha(s.to_string())
}

fn pad(mut segments: Vec<u64>) -> (Vec<u64>, usize) {
    let written = segments.len();
    while segments.len() < 3 {
        segments.push(0);
    }
    (segments, written)
}

/// Parses a version the go-version way (see the module docs). `None` when invalid.
pub(crate) fn parse_lenient(s: &str) -> Option<Version> {
    let s = s.strip_prefix('v').unwrap_or(s);
    // Build metadata: everything after the first '+', validated then dropped.
    let (main, build) = match s.split_once('+') {
        Some((m, b)) => (m, Some(b)),
        None => (s, None),
    };
    if let Some(b) = build {
        identifiers(b, ident_char_lenient)?;
    }
    let bytes = main.as_bytes();
    let mut i = 0;
    let mut segments = Vec::new();
    loop {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        segments.push(main[start..i].parse::<u64>().ok()?);
        // Another segment only when the dot is followed by a digit.
        if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
            i += 1;
            continue;
        }
        break;
    }
    let rest = &main[i..];
    let pre = if rest.is_empty() {
        Vec::new()
    } else if let Some(p) = rest.strip_prefix('-') {
        identifiers(p, ident_char_lenient)?
            .into_iter()
            .map(lenient_ident)
            .collect()
    } else if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '~') {
        identifiers(rest, ident_char_lenient)?
            .into_iter()
            .map(lenient_ident)
            .collect()
    } else {
        return None;
    };
    let (segments, written) = pad(segments);
    Some(Version {
        segments,
        written,
        pre,
    })
}

/// A numeric identifier of strict semver: digits, no leading zero (except "0" itself).
fn strict_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Parses a strict Semantic Versioning 2.0 version (see the module docs). `None` when invalid.
pub(crate) fn parse_strict(s: &str) -> Option<Version> {
    let s = s.strip_prefix('v').unwrap_or(s);
    let (main, build) = match s.split_once('+') {
        Some((m, b)) => (m, Some(b)),
        None => (s, None),
    };
    if let Some(b) = build {
        identifiers(b, ident_char_strict)?;
    }
    let (core, pre) = match main.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (main, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let segments = parts
        .iter()
        .map(|p| strict_number(p))
        .collect::<Option<Vec<u64>>>()?;
    let pre = match pre {
        None => Vec::new(),
        Some(p) => identifiers(p, ident_char_strict)?
            .into_iter()
            .map(|id| {
                if id.bytes().all(|b| b.is_ascii_digit()) {
                    strict_number(id).map(Ident::Num)
                } else {
                    Some(Ident::Alpha(id.to_string()))
                }
            })
            .collect::<Option<Vec<Ident>>>()?,
    };
    Some(Version {
        segments,
        written: 3,
        pre,
    })
}

/// A constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Pessimistic,
}

/// One `op version` item of a constraint list.
#[derive(Debug, Clone)]
pub(crate) struct VersionConstraint {
    op: Op,
    version: Version,
}

/// A parsed constraint list (all items must hold).
#[derive(Debug, Clone)]
pub(crate) struct Constraints {
    items: Vec<VersionConstraint>,
    strict: bool,
}

fn split_op(s: &str) -> (Op, &str) {
    // Two-character operators first so ">=" is not read as ">" followed by "=1.0".
    const OPS: [(&str, Op); 7] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("~>", Op::Pessimistic),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ];
    for (text, op) in OPS {
        if let Some(rest) = s.strip_prefix(text) {
            return (op, rest);
        }
    }
    (Op::Eq, s)
}

/// Parses `">= 1.2.3, < 2.0"`. `strict` selects the semver dialect (no `~>`). `None` when
/// any item is invalid.
pub(crate) fn parse_constraints(s: &str, strict: bool) -> Option<Constraints> {
    let mut items = Vec::new();
    for part in s.split(',') {
        let (op, rest) = split_op(part.trim());
        if strict && op == Op::Pessimistic {
            return None;
        }
        let rest = rest.trim_start();
        let version = if strict {
            parse_strict(rest)?
        } else {
            parse_lenient(rest)?
        };
        items.push(VersionConstraint { op, version });
    }
    Some(Constraints { items, strict })
}

/// go-version's pre-release gate for ordering operators: a pre-release version only meets a
/// constraint whose version is a pre-release of the same base segments.
fn prerelease_gate(v: &Version, c: &Version) -> bool {
    match (v.is_prerelease(), c.is_prerelease()) {
        (true, true) => v.cmp_segments(c).is_eq(),
        (true, false) => false,
        _ => true,
    }
}

/// `~> c`: at least `c`, and every written segment of `c` but the last equal in `v`.
fn pessimistic(v: &Version, c: &Version) -> bool {
    if !prerelease_gate(v, c) || (c.is_prerelease() && !v.is_prerelease()) {
        return false;
    }
    if v.precedence(c).is_lt() || c.segments.len() > v.segments.len() {
        return false;
    }
    let fixed = c.written.saturating_sub(1);
    if (0..fixed).any(|i| v.segment(i) != c.segment(i)) {
        return false;
    }
    let last = c.segments.len().saturating_sub(1);
    c.segment(last) <= v.segment(last)
}

impl VersionConstraint {
    fn check(&self, v: &Version, strict: bool) -> bool {
        let c = &self.version;
        let ord = v.precedence(c);
        let gate = strict || prerelease_gate(v, c);
        match self.op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Gt => gate && ord.is_gt(),
            Op::Lt => gate && ord.is_lt(),
            Op::Ge => gate && ord.is_ge(),
            Op::Le => gate && ord.is_le(),
            Op::Pessimistic => !strict && pessimistic(v, c),
        }
    }
}

impl Constraints {
    /// Whether `v` meets every item.
    pub(crate) fn check(&self, v: &Version) -> bool {
        self.items.iter().all(|c| c.check(v, self.strict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenient(v: &str, c: &str) -> bool {
        let v = parse_lenient(v).expect("version parses");
        parse_constraints(c, false).expect("constraint parses").check(&v)
    }

    fn strict(v: &str, c: &str) -> bool {
        let v = parse_strict(v).expect("version parses");
        parse_constraints(c, true).expect("constraint parses").check(&v)
    }

    #[test]
    fn lenient_parse_forms() {
        for ok in [
            "1",
            "1.2",
            "1.2.3",
            "1.2.3.4",
            "v1.2.3",
            "1.2.3-beta",
            "1.2.3-beta.1",
            "1.2.3beta",
            "1.2.3+meta",
            "1.2.3-rc.1+b.5",
            "1.2.3~x",
        ] {
            assert!(parse_lenient(ok).is_some(), "{ok} should parse");
        }
        for bad in [
            "",
            "v",
            "a.b",
            "1.",
            "1..2",
            "1.2.3-",
            "1.2.3+",
            ".1",
            "1.2.3.beta",
            "1.2.3-a..b",
            " 1.2",
            "1.2 ",
            "99999999999999999999",
        ] {
            assert!(parse_lenient(bad).is_none(), "{bad} should not parse");
        }
    }

    #[test]
    fn strict_parse_forms() {
        for ok in [
            "1.2.3",
            "v1.2.3",
            "0.0.0",
            "1.2.3-alpha",
            "1.2.3-alpha.1",
            "1.2.3-0.3.7",
            "1.2.3-x-y",
            "1.2.3+build.7",
        ] {
            assert!(parse_strict(ok).is_some(), "{ok} should parse");
        }
        for bad in [
            "1.2",
            "1",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.3-01",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3beta",
            "1.2.3-be~ta",
            "1.2.3+",
        ] {
            assert!(parse_strict(bad).is_none(), "{bad} should not parse");
        }
    }

    #[test]
    fn precedence_rules() {
        let p = |s: &str| parse_strict(s).expect("parses");
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in order.windows(2) {
            assert_eq!(
                p(w[0]).precedence(&p(w[1])),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(p("1.0.0+a").precedence(&p("1.0.0+b")), Ordering::Equal);
        let l = |s: &str| parse_lenient(s).expect("parses");
        assert_eq!(l("1.2").precedence(&l("1.2.0.0")), Ordering::Equal);
        assert_eq!(l("1.2.0.1").precedence(&l("1.2")), Ordering::Greater);
    }

    #[test]
    fn lenient_constraints() {
        assert!(lenient("1.5.0", ">= 1.2.3, < 2.0"));
        assert!(!lenient("2.0.0", ">= 1.2.3, < 2.0"));
        assert!(!lenient("1.2.2", ">= 1.2.3, < 2.0"));
        assert!(lenient("1.2", "1.2.0"));
        assert!(lenient("1.2", "= 1.2.0"));
        assert!(lenient("1.3", "!= 1.2"));
        assert!(lenient("1.3", ">1.2"));
        // Pre-release vs. release constraint: never satisfied by ordering operators.
        assert!(!lenient("1.2.3-beta", "< 1.2.3"));
        assert!(!lenient("1.6.0-beta", ">= 1.0"));
        assert!(lenient("1.2.3-beta", "< 1.2.3-rc1"));
        assert!(lenient("1.2.3-beta", "= 1.2.3-beta"));
        assert!(!lenient("1.2.4-beta", "> 1.2.3-alpha"));
    }

    #[test]
    fn pessimistic_operator() {
        assert!(lenient("1.2", "~> 1.2"));
        assert!(lenient("1.9.9", "~> 1.2"));
        assert!(!lenient("2.0", "~> 1.2"));
        assert!(!lenient("1.1.9", "~> 1.2"));
        assert!(lenient("1.2.3", "~> 1.2.3"));
        assert!(lenient("1.2.9", "~> 1.2.3"));
        assert!(!lenient("1.3.0", "~> 1.2.3"));
        assert!(!lenient("1.2.2", "~> 1.2.3"));
        assert!(lenient("7.0", "~> 1"));
        assert!(!lenient("1.2.3-beta", "~> 1.2"));
        assert!(lenient("1.2.3-beta.2", "~> 1.2.3-beta.1"));
        assert!(!lenient("1.2.3", "~> 1.2.3-beta"));
    }

    #[test]
    fn strict_constraints() {
        assert!(strict("1.2.3-beta", "< 1.2.3"));
        assert!(strict("1.6.0-beta", ">= 1.0.0"));
        assert!(strict("1.2.3+build", "= 1.2.3"));
        assert!(parse_constraints("~> 1.2.3", true).is_none());
        assert!(parse_constraints(">= 1.2", true).is_none());
        assert!(parse_constraints("", false).is_none());
        assert!(parse_constraints(">= 1.0,", false).is_none());
    }
}
