//! String functions: `chomp`, `indent`, `join`, `lower`, `regex_replace`, `replace`, `split`,
//! `strlen`, `strrev`, `substr`, `title`, `trim`, `trimprefix`, `trimspace`, `trimsuffix`,
//! `upper`, `urlencode`.

use super::{MAX_STRING_LEN, MAX_WIDTH, int_arg, list_arg, scalar_to_string, string_arg, type_name};
use hcl::Value;
use regex::Regex;

pub(super) fn chomp(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("chomp", args, 0)?;
    Ok(Value::from(s.trim_end_matches(['\r', '\n'])))
}

pub(super) fn indent(args: &[Value]) -> Result<Value, String> {
    let spaces = int_arg("indent", args, 0)?;
    let s = string_arg("indent", args, 1)?;
    let n = usize::try_from(spaces)
        .map_err(|_| format!("indent: the number of spaces must not be negative, got {spaces}"))?;
    if n > MAX_WIDTH {
        return Err(format!(
            "indent: the number of spaces must be at most {MAX_WIDTH}, got {n}"
        ));
    }
    let lines = s.matches('\n').count();
    let total = lines.saturating_mul(n).saturating_add(s.len());
    if total > MAX_STRING_LEN {
        return Err(format!(
            "indent: the result would be longer than {MAX_STRING_LEN} bytes"
        ));
    }
    let replacement = format!("\n{}", " ".repeat(n));
    Ok(Value::String(s.replace('\n', &replacement)))
}

pub(super) fn join(args: &[Value]) -> Result<Value, String> {
    let sep = string_arg("join", args, 0)?;
    if args.len() < 2 {
        return Err("join: at least one list argument is required".to_string());
    }
    let mut parts = Vec::new();
    let mut total: usize = 0;
    for li in 1..args.len() {
        let list = list_arg("join", args, li)?;
        for (ei, item) in list.iter().enumerate() {
            let s = scalar_to_string(item).ok_or_else(|| {
                format!(
                    "join: element {ei} of list argument {} must be a string, got {}",
                    li + 1,
                    type_name(item)
                )
            })?;
            total = total.saturating_add(s.len()).saturating_add(sep.len());
            if total > MAX_STRING_LEN {
                return Err(format!(
                    "join: the result would be longer than {MAX_STRING_LEN} bytes"
                ));
            }
            parts.push(s);
        }
    }
    Ok(Value::String(parts.join(&sep)))
}

pub(super) fn lower(args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(string_arg("lower", args, 0)?.to_lowercase()))
}

pub(super) fn upper(args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(string_arg("upper", args, 0)?.to_uppercase()))
}

/// Compiles a user supplied regular expression.
pub(super) fn compile_regex(f: &str, pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(10 * 1024 * 1024)
        .build()
        .map_err(|e| format!("{f}: invalid regular expression {pattern:?}: {e}"))
}

/// Replaces every match of `re` in `s` with `rep` (which may reference capture groups as `$1`,
/// `${name}`), refusing to build results larger than [`MAX_STRING_LEN`].
fn regex_replace_all(f: &str, s: &str, re: &Regex, rep: &str) -> Result<String, String> {
    let too_long = || format!("{f}: the result would be longer than {MAX_STRING_LEN} bytes");
    // Upper bound for a single expansion: every `$` may reference at most the whole input.
    let dollars = rep.matches('$').count();
    let per_match = dollars.saturating_mul(s.len()).saturating_add(rep.len());
    if per_match > MAX_STRING_LEN {
        return Err(too_long());
    }
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(s.get(last..m.start()).unwrap_or_default());
        caps.expand(rep, &mut out);
        last = m.end();
        if out.len() > MAX_STRING_LEN {
            return Err(too_long());
        }
    }
    out.push_str(s.get(last..).unwrap_or_default());
    if out.len() > MAX_STRING_LEN {
        return Err(too_long());
    }
    Ok(out)
}

pub(super) fn regex_replace(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("regex_replace", args, 0)?;
    let pattern = string_arg("regex_replace", args, 1)?;
    let rep = string_arg("regex_replace", args, 2)?;
    let re = compile_regex("regex_replace", &pattern)?;
    regex_replace_all("regex_replace", &s, &re, &rep).map(Value::String)
}

/// `replace(string, search, replacement)`: plain substring replacement, or a regular
/// expression replacement when `search` is wrapped in slashes (`/[0-9]+/`), as in Terraform.
pub(super) fn replace(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("replace", args, 0)?;
    let search = string_arg("replace", args, 1)?;
    let rep = string_arg("replace", args, 2)?;
    if search.len() > 1 && search.starts_with('/') && search.ends_with('/') {
        let pattern = search.get(1..search.len() - 1).unwrap_or_default();
        let re = compile_regex("replace", pattern)?;
        return regex_replace_all("replace", &s, &re, &rep).map(Value::String);
    }
    let occurrences = if search.is_empty() {
        s.chars().count().saturating_add(1)
    } else {
        s.matches(search.as_str()).count()
    };
    let total = s
        .len()
        .saturating_sub(occurrences.saturating_mul(search.len()))
        .saturating_add(occurrences.saturating_mul(rep.len()));
    if total > MAX_STRING_LEN {
        return Err(format!(
            "replace: the result would be longer than {MAX_STRING_LEN} bytes"
        ));
    }
    Ok(Value::String(s.replace(search.as_str(), &rep)))
}

pub(super) fn split(args: &[Value]) -> Result<Value, String> {
    let sep = string_arg("split", args, 0)?;
    let s = string_arg("split", args, 1)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str()).map(Value::from).collect()
    };
    Ok(Value::Array(parts))
}

/// Returns true for characters that attach to the preceding character in a user-perceived
/// character (combining marks, variation selectors, joiners, emoji modifiers, tags).
fn is_extender(c: char) -> bool {
    matches!(u32::from(c),
        0x0300..=0x036F
        | 0x0483..=0x0489
        | 0x0591..=0x05BD
        | 0x05BF | 0x05C1 | 0x05C2 | 0x05C4 | 0x05C5 | 0x05C7
        | 0x0610..=0x061A
        | 0x064B..=0x065F
        | 0x0670
        | 0x06D6..=0x06DC
        | 0x06DF..=0x06E4
        | 0x06E7 | 0x06E8
        | 0x06EA..=0x06ED
        | 0x0900..=0x0903
        | 0x093A..=0x094F
        | 0x0951..=0x0957
        | 0x0962 | 0x0963
        | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x200C | 0x200D
        | 0x20D0..=0x20FF
        | 0x302A..=0x302F
        | 0x3099 | 0x309A
        | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F
        | 0x1F3FB..=0x1F3FF
        | 0xE0020..=0xE007F
        | 0xE0100..=0xE01EF
    )
}

fn is_regional_indicator(c: char) -> bool {
    matches!(u32::from(c), 0x1F1E6..=0x1F1FF)
}

/// Splits a string into approximate grapheme clusters.
///
/// Approximation of Unicode text segmentation without an extra dependency: combining marks,
/// variation selectors, emoji modifiers and zero-width-joiner sequences attach to the preceding
/// character, `\r\n` is one cluster and regional indicators pair up into flags. Hangul jamo
/// composition and some Indic rules are not modelled.
pub(super) fn graphemes(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    let mut ri_run = 0usize;
    for (i, c) in s.char_indices() {
        let attach = match prev {
            None => true,
            Some(p) => {
                is_extender(c)
                    || p == '\u{200D}'
                    || (p == '\r' && c == '\n')
                    || (is_regional_indicator(p) && is_regional_indicator(c) && ri_run % 2 == 1)
            }
        };
        if !attach {
            if let Some(cluster) = s.get(start..i) {
                out.push(cluster);
            }
            start = i;
        }
        if is_regional_indicator(c) {
            ri_run += 1;
        } else {
            ri_run = 0;
        }
        prev = Some(c);
    }
    if let Some(cluster) = s.get(start..)
        && !cluster.is_empty()
    {
        out.push(cluster);
    }
    out
}

pub(super) fn strlen(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("strlen", args, 0)?;
    Ok(Value::from(graphemes(&s).len()))
}

pub(super) fn strrev(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("strrev", args, 0)?;
    Ok(Value::String(graphemes(&s).into_iter().rev().collect()))
}

pub(super) fn substr(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("substr", args, 0)?;
    let offset = int_arg("substr", args, 1)?;
    let length = int_arg("substr", args, 2)?;
    let g = graphemes(&s);
    let len = i64::try_from(g.len()).unwrap_or(i64::MAX);
    let mut start = offset;
    if start < 0 {
        start = start.saturating_add(len).max(0);
    }
    if start >= len {
        return Ok(Value::from(""));
    }
    let end = if length < 0 {
        len
    } else {
        start.saturating_add(length).min(len)
    };
    let start = usize::try_from(start).unwrap_or(0);
    let end = usize::try_from(end).unwrap_or(0);
    Ok(Value::String(g.get(start..end).unwrap_or_default().concat()))
}

/// Mirrors Go's `strings.Title` word-boundary rule.
fn is_word_separator(c: char) -> bool {
    if c.is_ascii() {
        !(c.is_ascii_alphanumeric() || c == '_')
    } else if c.is_alphanumeric() {
        false
    } else {
        c.is_whitespace()
    }
}

pub(super) fn title(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("title", args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = is_word_separator(c);
    }
    Ok(Value::String(out))
}

pub(super) fn trim(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("trim", args, 0)?;
    let cutset = string_arg("trim", args, 1)?;
    Ok(Value::from(s.trim_matches(|c| cutset.contains(c))))
}

pub(super) fn trimprefix(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("trimprefix", args, 0)?;
    let prefix = string_arg("trimprefix", args, 1)?;
    Ok(Value::from(s.strip_prefix(prefix.as_str()).unwrap_or(&s)))
}

pub(super) fn trimsuffix(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("trimsuffix", args, 0)?;
    let suffix = string_arg("trimsuffix", args, 1)?;
    Ok(Value::from(s.strip_suffix(suffix.as_str()).unwrap_or(&s)))
}

pub(super) fn trimspace(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(string_arg("trimspace", args, 0)?.trim()))
}

/// `urlencode`: query-string escaping as Go's `url.QueryEscape` (spaces become `+`).
pub(super) fn urlencode(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("urlencode", args, 0)?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};
    use super::graphemes;

    #[test]
    fn chomp_indent_join() {
        assert_eq!(ok(r#"chomp("hello\n\r\n")"#), v(r#""hello""#));
        assert_eq!(ok(r#"chomp("a\nb")"#), v(r#""a\nb""#));
        assert_eq!(ok(r#"indent(2, "a\nb\nc")"#), v(r#""a\n  b\n  c""#));
        assert_eq!(ok(r#"join(", ", ["a", 1, true])"#), v(r#""a, 1, true""#));
        assert_eq!(ok(r#"join("-", ["a"], ["b", "c"])"#), v(r#""a-b-c""#));
        assert_eq!(ok(r#"join("-", [])"#), v(r#""""#));
        err(
            r#"indent(-1, "a")"#,
            "indent: the number of spaces must not be negative",
        );
        err(
            r#"indent(2000000, "a")"#,
            "indent: the number of spaces must be at most",
        );
        err(
            r#"join(",", [null])"#,
            "join: element 0 of list argument 2 must be a string, got null",
        );
        err(r#"join(",")"#, "join: at least one list argument is required");
        err(r#"join(",", "a")"#, "join: argument 2 must be a list");
    }

    #[test]
    fn case_functions() {
        assert_eq!(ok(r#"lower("HeLLo")"#), v(r#""hello""#));
        assert_eq!(ok(r#"upper("hello ä")"#), v(r#""HELLO Ä""#));
        assert_eq!(
            ok(r#"title("hello world-wide web_x")"#),
            v(r#""Hello World-Wide Web_x""#)
        );
        err("upper([])", "upper: argument 1 must be a string, got list");
        err("lower()", "lower: expected exactly 1 argument, got 0");
    }

    #[test]
    fn replace_functions() {
        assert_eq!(ok(r#"replace("1 + 2 + 3", "+", "-")"#), v(r#""1 - 2 - 3""#));
        assert_eq!(
            ok(r#"replace("hello world", "/w.*d/", "everybody")"#),
            v(r#""hello everybody""#)
        );
        assert_eq!(
            ok(r#"replace("abc-123", "/([a-z]+)-([0-9]+)/", "$2-$1")"#),
            v(r#""123-abc""#)
        );
        assert_eq!(ok(r#"replace("abc", "", "-")"#), v(r#""-a-b-c-""#));
        assert_eq!(ok(r#"regex_replace("hello", "l+", "L")"#), v(r#""heLo""#));
        assert_eq!(
            ok(r#"regex_replace("a1b22", "[0-9]+", "<$0>")"#),
            v(r#""a<1>b<22>""#)
        );
        err(
            r#"regex_replace("a", "(", "b")"#,
            "regex_replace: invalid regular expression",
        );
        err(
            r#"replace("a", "/(/", "b")"#,
            "replace: invalid regular expression",
        );
    }

    #[test]
    fn split_cases() {
        assert_eq!(ok(r#"split(",", "a,b,,c")"#), v(r#"["a", "b", "", "c"]"#));
        assert_eq!(ok(r#"split(",", "")"#), v(r#"[""]"#));
        assert_eq!(ok(r#"split("", "abc")"#), v(r#"["a", "b", "c"]"#));
        err(r#"split(",", ["a"])"#, "split: argument 2 must be a string");
    }

    #[test]
    fn length_and_substrings() {
        assert_eq!(ok(r#"strlen("hello")"#), v("5"));
        assert_eq!(ok(r#"strlen("e\u0301x")"#), v("2"));
        assert_eq!(ok(r#"strlen("")"#), v("0"));
        assert_eq!(ok(r#"strrev("hello")"#), v(r#""olleh""#));
        assert_eq!(ok(r#"strrev("ae\u0301")"#), v(r#""e\u0301a""#));
        assert_eq!(ok(r#"substr("hello world", 1, 4)"#), v(r#""ello""#));
        assert_eq!(ok(r#"substr("hello world", -5, 3)"#), v(r#""wor""#));
        assert_eq!(ok(r#"substr("hello", 2, -1)"#), v(r#""llo""#));
        assert_eq!(ok(r#"substr("hello", 10, 2)"#), v(r#""""#));
        assert_eq!(ok(r#"substr("hello", 3, 100)"#), v(r#""lo""#));
        err(
            r#"substr("hello", 1.5, 1)"#,
            "substr: argument 2 must be a whole number",
        );
        assert_eq!(graphemes("🇩🇪🇫🇷"), vec!["🇩🇪", "🇫🇷"]);
        assert_eq!(graphemes("a\r\nb"), vec!["a", "\r\n", "b"]);
        assert_eq!(graphemes("👩\u{200D}💻x"), vec!["👩\u{200D}💻", "x"]);
    }

    #[test]
    fn trims() {
        assert_eq!(ok(r#"trim("?!hello?!", "!?")"#), v(r#""hello""#));
        assert_eq!(ok(r#"trimprefix("helloworld", "hello")"#), v(r#""world""#));
        assert_eq!(ok(r#"trimprefix("helloworld", "x")"#), v(r#""helloworld""#));
        assert_eq!(ok(r#"trimsuffix("helloworld", "world")"#), v(r#""hello""#));
        assert_eq!(ok(r#"trimspace("  hi \n")"#), v(r#""hi""#));
    }

    #[test]
    fn urlencode_cases() {
        assert_eq!(ok(r#"urlencode("Hello World!")"#), v(r#""Hello+World%21""#));
        assert_eq!(ok(r#"urlencode("a/b?c=d&e~f")"#), v(r#""a%2Fb%3Fc%3Dd%26e~f""#));
        assert_eq!(ok(r#"urlencode("é")"#), v(r#""%C3%A9""#));
    }
}
