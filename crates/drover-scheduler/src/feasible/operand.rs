//! Constraint operands and the per-evaluation [`ConstraintChecker`] cache.

use std::cmp::Ordering;
use std::collections::HashMap;

use drover_types::Node;
use drover_types::job::{Affinity, Constraint};
use regex::{Regex, RegexBuilder};

use super::target::resolve_target_ref;
use super::version::{self, Constraints};

/// Cache entries kept per map before it is cleared: a checker normally lives for one
/// evaluation, this only bounds a checker someone keeps around for longer.
const CACHE_CAP: usize = 4096;

/// Compiled-regex size bound: a pathological pattern fails to compile (and so does not
/// match) rather than eating memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Caches compiled regexes and parsed version constraints for one evaluation.
///
/// Failures are cached too: an invalid pattern or constraint string is parsed once and then
/// answers `false` from the cache. Cached values depend only on the right-hand string, never
/// on a node, so one checker can serve every node of an evaluation.
#[derive(Debug, Default)]
pub struct ConstraintChecker {
    regexes: HashMap<String, Option<Regex>>,
    versions: HashMap<String, Option<Constraints>>,
    semvers: HashMap<String, Option<Constraints>>,
}

impl ConstraintChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Does the node satisfy the constraint? `distinct_hosts` / `distinct_property` always
    /// return true here (they are handled by dedicated iterators).
    pub fn check(&mut self, node: &Node, c: &Constraint) -> bool {
        if matches!(c.operand.as_str(), "distinct_hosts" | "distinct_property") {
            return true;
        }
        let l = resolve_target_ref(&c.l_target, node);
        let r = resolve_target_ref(&c.r_target, node);
        check_operand(&c.operand, l.as_deref(), r.as_deref(), self)
    }

    /// Does the node match the affinity? Same operands as constraints minus `distinct_*`,
    /// `is_set` and `is_not_set` (which never match: validation rejects them on affinities).
    pub fn matches_affinity(&mut self, node: &Node, a: &Affinity) -> bool {
        if !affinity_operand_allowed(&a.operand) {
            return false;
        }
        let l = resolve_target_ref(&a.l_target, node);
        let r = resolve_target_ref(&a.r_target, node);
        check_operand(&a.operand, l.as_deref(), r.as_deref(), self)
    }

    fn regex_match(&mut self, value: &str, pattern: &str) -> bool {
        if self.regexes.len() >= CACHE_CAP && !self.regexes.contains_key(pattern) {
            self.regexes.clear();
        }
        self.regexes
            .entry(pattern.to_string())
            .or_insert_with(|| {
                RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .ok()
            })
            .as_ref()
            .is_some_and(|re| re.is_match(value))
    }

    fn version_match(&mut self, value: &str, constraint: &str, strict: bool) -> bool {
        let cache = if strict {
            &mut self.semvers
        } else {
            &mut self.versions
        };
        if cache.len() >= CACHE_CAP && !cache.contains_key(constraint) {
            cache.clear();
        }
        let Some(parsed) = cache
            .entry(constraint.to_string())
            .or_insert_with(|| version::parse_constraints(constraint, strict))
            .as_ref()
        else {
            return false;
        };
        let v = if strict {
            version::parse_strict(value)
        } else {
            version::parse_lenient(value)
        };
        v.is_some_and(|v| parsed.check(&v))
    }
}

/// Operands an affinity may use.
pub(crate) fn affinity_operand_allowed(op: &str) -> bool {
    !matches!(
        op,
        "distinct_hosts" | "distinct_property" | "is_set" | "is_not_set"
    )
}

/// Orders two resolved values: as int64 when both parse, else as float64 when both parse,
/// else lexically (byte order). `None` when the floats are unordered (NaN).
pub fn compare_values(l: &str, r: &str) -> Option<Ordering> {
    if let (Ok(a), Ok(b)) = (l.parse::<i64>(), r.parse::<i64>()) {
        return Some(a.cmp(&b));
    }
    if let (Ok(a), Ok(b)) = (l.parse::<f64>(), r.parse::<f64>()) {
        return a.partial_cmp(&b);
    }
    Some(l.cmp(r))
}

/// Applies an ordering operator (`<`, `<=`, `>`, `>=`) to a comparison result.
pub(crate) fn order_holds(op: &str, ord: Ordering) -> bool {
    match op {
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        ">=" => ord.is_ge(),
        _ => false,
    }
}

fn set_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim)
}

fn set_contains_all(l: &str, r: &str) -> bool {
    let have: Vec<&str> = set_items(l).collect();
    set_items(r).all(|want| have.contains(&want))
}

fn set_contains_any(l: &str, r: &str) -> bool {
    let have: Vec<&str> = set_items(l).collect();
    set_items(r).any(|want| have.contains(&want))
}

/// Operand semantics (reference §8.4). `l` / `r` are the resolved targets, `None` when the
/// target was not found:
///
/// | operand | true when |
/// |---|---|
/// | `=` `==` `is` | both found and equal |
/// | `!=` `not` | the values differ, a missing side counting as `""` |
/// | `<` `<=` `>` `>=` | both found and ordered so ([`compare_values`]: int64, float64, lexical) |
/// | `is_set` / `is_not_set` | left found / not found |
/// | `regexp` | both found and the pattern (unanchored, cached) matches; invalid pattern → false |
/// | `version` | both found, left a lenient version meeting the right constraint list |
/// | `semver` | both found, left a strict semver meeting the right constraint list |
/// | `set_contains` `set_contains_all` | both found; every comma item of right is an item of left (trimmed) |
/// | `set_contains_any` | both found; some item of right is an item of left |
/// | `distinct_hosts` `distinct_property` | always (handled elsewhere) |
/// | anything else | never |
pub fn check_operand(op: &str, l: Option<&str>, r: Option<&str>, checker: &mut ConstraintChecker) -> bool {
    match op {
        "distinct_hosts" | "distinct_property" => true,
        "=" | "==" | "is" => matches!((l, r), (Some(a), Some(b)) if a == b),
        "!=" | "not" => l.unwrap_or("") != r.unwrap_or(""),
        "is_set" => l.is_some(),
        "is_not_set" => l.is_none(),
        _ => {
            let (Some(l), Some(r)) = (l, r) else {
                return false;
            };
            match op {
                "<" | "<=" | ">" | ">=" => compare_values(l, r).is_some_and(|o| order_holds(op, o)),
                "regexp" => checker.regex_match(l, r),
                "version" => checker.version_match(l, r, false),
                "semver" => checker.version_match(l, r, true),
                "set_contains" | "set_contains_all" => set_contains_all(l, r),
                "set_contains_any" => set_contains_any(l, r),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(o: &str, l: Option<&str>, r: Option<&str>) -> bool {
        check_operand(o, l, r, &mut ConstraintChecker::new())
    }

    #[test]
    fn equality() {
        for o in ["=", "==", "is"] {
            assert!(op(o, Some("linux"), Some("linux")));
            assert!(!op(o, Some("linux"), Some("windows")));
            assert!(!op(o, None, Some("linux")));
            assert!(!op(o, None, Some("")), "missing is not equal to empty for {o}");
            assert!(!op(o, None, None));
        }
    }

    #[test]
    fn inequality() {
        for o in ["!=", "not"] {
            assert!(op(o, Some("a"), Some("b")));
            assert!(!op(o, Some("a"), Some("a")));
            assert!(op(o, None, Some("a")), "missing left differs from a value");
            assert!(!op(o, None, Some("")), "missing counts as empty");
            assert!(!op(o, None, None));
        }
    }

    #[test]
    fn ordering_numeric_and_lexical() {
        assert!(op(">", Some("10"), Some("9")), "int compare, not lexical");
        assert!(!op("<", Some("10"), Some("9")));
        assert!(op("<", Some("1.5"), Some("2")), "float compare");
        assert!(op(">=", Some("2.0"), Some("2")));
        assert!(op("<=", Some("-3"), Some("-2")));
        assert!(op(">", Some("b"), Some("a")), "lexical");
        assert!(
            op("<", Some("10a"), Some("9")),
            "lexical when one side is not a number"
        );
        assert!(op(">=", Some("a"), Some("a")));
        assert!(!op(">", Some("a"), Some("a")));
        assert!(!op("<", Some("NaN"), Some("1")), "NaN is unordered");
        for o in ["<", "<=", ">", ">="] {
            assert!(!op(o, None, Some("1")), "{o} with missing left");
            assert!(!op(o, Some("1"), None), "{o} with missing right");
        }
    }

    #[test]
    fn set_and_not_set() {
        assert!(op("is_set", Some(""), None));
        assert!(!op("is_set", None, Some("x")));
        assert!(op("is_not_set", None, None));
        assert!(!op("is_not_set", Some("x"), None));
    }

    #[test]
    fn regexp() {
        assert!(
            op("regexp", Some("linux-amd64"), Some("amd64")),
            "unanchored search"
        );
        assert!(op("regexp", Some("linux-amd64"), Some("^linux-.*64$")));
        assert!(!op("regexp", Some("xlinux"), Some("^linux")));
        assert!(!op("regexp", Some("abc"), Some("(")), "invalid regex");
        assert!(!op("regexp", None, Some(".*")));
        assert!(!op("regexp", Some("a"), None));
    }

    #[test]
    fn regex_cache_serves_repeats() {
        let mut c = ConstraintChecker::new();
        assert!(check_operand("regexp", Some("abc"), Some("b"), &mut c));
        assert!(!check_operand("regexp", Some("xyz"), Some("b"), &mut c));
        assert!(!check_operand("regexp", Some("x"), Some("["), &mut c));
        assert!(!check_operand("regexp", Some("x"), Some("["), &mut c));
        assert_eq!(c.regexes.len(), 2);
        assert!(c.regexes["["].is_none());
    }

    #[test]
    fn version_operand() {
        assert!(op("version", Some("1.5.0"), Some(">= 1.2.3, < 2.0")));
        assert!(!op("version", Some("2.1"), Some(">= 1.2.3, < 2.0")));
        assert!(op("version", Some("1.7"), Some("~> 1.2")));
        assert!(!op("version", Some("2.0"), Some("~> 1.2")));
        assert!(op("version", Some("1.2.5"), Some("~> 1.2.3")));
        assert!(!op("version", Some("1.3.0"), Some("~> 1.2.3")));
        assert!(op("version", Some("1.2"), Some("= 1.2.0")));
        assert!(op("version", Some("1.2.3.4"), Some("> 1.2.3")));
        assert!(op("version", Some("1.2.3-beta"), Some("< 1.2.3-rc.1")));
        assert!(
            !op("version", Some("1.2.3-beta"), Some("< 1.2.3")),
            "pre-release never meets a release ordering constraint"
        );
        assert!(!op("version", Some("not-a-version"), Some(">= 1.0")));
        assert!(!op("version", Some("1.0"), Some(">= banana")));
        assert!(!op("version", Some("1.0"), Some("")));
        assert!(!op("version", None, Some(">= 1.0")));
        assert!(!op("version", Some("1.0"), None));
    }

    #[test]
    fn semver_operand() {
        assert!(op("semver", Some("1.2.3"), Some(">= 1.2.0, < 2.0.0")));
        assert!(
            op("semver", Some("1.2.3-beta"), Some("< 1.2.3")),
            "pre-release orders below its release"
        );
        assert!(op("semver", Some("1.6.0-beta.1"), Some(">= 1.0.0")));
        assert!(
            !op("semver", Some("1.2"), Some(">= 1.0.0")),
            "1.2 is not strict semver"
        );
        assert!(
            !op("semver", Some("1.2.0"), Some(">= 1.0")),
            "nor in the constraint"
        );
        assert!(
            !op("semver", Some("1.2.3"), Some("~> 1.2.0")),
            "no pessimistic operator"
        );
        assert!(op("semver", Some("1.0.0-alpha.beta"), Some("> 1.0.0-alpha.1")));
        assert!(op("semver", Some("1.0.0+x"), Some("= 1.0.0+y")));
        assert!(op("semver", Some("2.0.0"), Some("!= 1.0.0")));
        assert!(!op("semver", None, Some(">= 1.0.0")));
    }

    #[test]
    fn set_contains() {
        for o in ["set_contains", "set_contains_all"] {
            assert!(op(o, Some("a, b, c"), Some("c,a")));
            assert!(op(o, Some("a,b"), Some(" b ")));
            assert!(!op(o, Some("a, b"), Some("a, d")));
            assert!(!op(o, None, Some("a")));
            assert!(!op(o, Some("a"), None));
        }
        assert!(op("set_contains_any", Some("a, b"), Some("d , b")));
        assert!(!op("set_contains_any", Some("a, b"), Some("d, e")));
        assert!(!op("set_contains_any", None, Some("a")));
        assert!(
            !op("set_contains", Some("ab"), Some("a")),
            "items, not substrings"
        );
    }

    #[test]
    fn distinct_and_unknown() {
        assert!(op("distinct_hosts", None, None));
        assert!(op("distinct_property", Some("x"), Some("2")));
        assert!(!op("bogus", Some("a"), Some("a")));
        assert!(!op("", Some("a"), Some("a")));
    }

    #[test]
    fn checker_resolves_node_targets() {
        let mut node = Node::default();
        node.attributes.insert("kernel.name".into(), "linux".into());
        node.attributes.insert("cpu.numcores".into(), "16".into());
        let mut c = ConstraintChecker::new();
        let con = |l: &str, o: &str, r: &str| Constraint {
            l_target: l.into(),
            r_target: r.into(),
            operand: o.into(),
        };
        assert!(c.check(&node, &con("${attr.kernel.name}", "=", "linux")));
        assert!(!c.check(&node, &con("${attr.kernel.name}", "=", "windows")));
        assert!(c.check(&node, &con("${attr.cpu.numcores}", ">", "8")));
        assert!(c.check(&node, &con("${attr.missing}", "!=", "x")));
        assert!(!c.check(&node, &con("${attr.missing}", "<", "x")));
        assert!(c.check(&node, &con("${attr.missing}", "distinct_property", "")));
        assert!(c.check(&node, &con("", "distinct_hosts", "true")));
    }

    #[test]
    fn affinity_matching() {
        let node = Node {
            datacenter: "dc1".into(),
            ..Default::default()
        };
        let mut c = ConstraintChecker::new();
        let aff = |l: &str, o: &str, r: &str| Affinity {
            l_target: l.into(),
            r_target: r.into(),
            operand: o.into(),
            weight: 50,
        };
        assert!(c.matches_affinity(&node, &aff("${node.datacenter}", "=", "dc1")));
        assert!(!c.matches_affinity(&node, &aff("${node.datacenter}", "=", "dc2")));
        assert!(c.matches_affinity(&node, &aff("${node.datacenter}", "regexp", "^dc")));
        assert!(!c.matches_affinity(&node, &aff("${node.datacenter}", "is_set", "")));
        assert!(!c.matches_affinity(&node, &aff("${attr.x}", "is_not_set", "")));
        assert!(!c.matches_affinity(&node, &aff("${node.datacenter}", "distinct_hosts", "")));
    }

    proptest::proptest! {
        /// Total on arbitrary input: every operand, found or missing sides, never panics,
        /// and `=` / `!=` stay complementary when both sides are found.
        #[test]
        fn never_panics(
            op_idx in 0usize..20,
            l in proptest::option::of("[ -~]{0,12}"),
            r in proptest::option::of("[ -~,<>=~!.0-9v-]{0,16}"),
        ) {
            const OPS: [&str; 20] = [
                "=", "==", "is", "!=", "not", "<", "<=", ">", ">=", "is_set", "is_not_set",
                "regexp", "version", "semver", "set_contains", "set_contains_all",
                "set_contains_any", "distinct_hosts", "distinct_property", "???",
            ];
            let mut c = ConstraintChecker::new();
            let _ = check_operand(OPS[op_idx], l.as_deref(), r.as_deref(), &mut c);
            if let (Some(a), Some(b)) = (l.as_deref(), r.as_deref()) {
                proptest::prop_assert_ne!(
                    check_operand("=", Some(a), Some(b), &mut c),
                    check_operand("!=", Some(a), Some(b), &mut c)
                );
            }
        }
    }
}
