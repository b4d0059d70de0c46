//! `format` and `formatlist`: printf-style formatting with the verbs cty supports.
//!
//! Supported verbs: `%v` (`%#v` for JSON), `%s`, `%q`, `%t`, `%d`, `%b`, `%o`, `%x`, `%X`,
//! `%e`, `%E`, `%f`, `%F`, `%g`, `%G` and `%%`, with the flags `+ - # 0` and space, width,
//! precision and explicit argument indexes (`%[2]s`).

use super::{
    MAX_STRING_LEN, MAX_WIDTH, Value, encoding::value_to_json, number_to_string, parse_number,
    scalar_to_string, string_arg, type_name,
};
use hcl::Number;

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
}

#[derive(Debug, Clone, Copy)]
struct VerbSpec {
    flags: Flags,
    width: Option<usize>,
    precision: Option<usize>,
}

pub(super) fn format(args: &[Value]) -> Result<Value, String> {
    let spec = string_arg("format", args, 0)?;
    let rest = args.get(1..).unwrap_or_default();
    format_values("format", &spec, rest).map(Value::String)
}

/// `formatlist(spec, args...)`: formats once per element of the list arguments; non-list
/// arguments are repeated for every element.
pub(super) fn formatlist(args: &[Value]) -> Result<Value, String> {
    let spec = string_arg("formatlist", args, 0)?;
    let rest = args.get(1..).unwrap_or_default();
    let mut iter_len: Option<(usize, usize)> = None;
    for (i, a) in rest.iter().enumerate() {
        if let Value::Array(items) = a {
            match iter_len {
                None => iter_len = Some((items.len(), i)),
                Some((len, first)) if len != items.len() => {
                    return Err(format!(
                        "formatlist: argument {} has length {}, which is inconsistent with argument {} of length {len}",
                        i + 2,
                        items.len(),
                        first + 2
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let count = iter_len.map_or(1, |(len, _)| len);
    let mut out = Vec::with_capacity(count);
    let mut total: usize = 0;
    for idx in 0..count {
        let row: Vec<Value> = rest
            .iter()
            .map(|a| match a {
                Value::Array(items) => items.get(idx).cloned().unwrap_or(Value::Null),
                other => other.clone(),
            })
            .collect();
        let s = format_values("formatlist", &spec, &row)?;
        total = total.saturating_add(s.len());
        if total > MAX_STRING_LEN {
            return Err(format!(
                "formatlist: the result would be longer than {MAX_STRING_LEN} bytes"
            ));
        }
        out.push(Value::String(s));
    }
    Ok(Value::Array(out))
}

/// Parses a decimal number at `chars[*i..]`, capped at [`MAX_WIDTH`].
fn parse_count(f: &str, chars: &[char], i: &mut usize, what: &str) -> Result<Option<usize>, String> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        let next = n
            .unwrap_or(0)
            .checked_mul(10)
            .and_then(|x| x.checked_add(d as usize))
            .filter(|x| *x <= MAX_WIDTH)
            .ok_or_else(|| format!("{f}: {what} in format string is larger than {MAX_WIDTH}"))?;
        n = Some(next);
        *i += 1;
    }
    Ok(n)
}

/// Parses an explicit argument index `[n]` at `chars[*i..]`, returning the zero based index.
fn parse_arg_index(f: &str, chars: &[char], i: &mut usize) -> Result<Option<usize>, String> {
    if chars.get(*i) != Some(&'[') {
        return Ok(None);
    }
    *i += 1;
    let n = parse_count(f, chars, i, "argument index")?;
    if chars.get(*i) != Some(&']') {
        return Err(format!("{f}: invalid argument index in format string"));
    }
    *i += 1;
    match n {
        Some(n) if n >= 1 => Ok(Some(n - 1)),
        _ => Err(format!("{f}: argument indexes in format strings start at 1")),
    }
}

/// Formats `vals` according to `spec`.
pub(super) fn format_values(f: &str, spec: &str, vals: &[Value]) -> Result<String, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut next_arg = 0usize;
    let mut used = vec![false; vals.len()];
    let mut reordered = false;
    while let Some(&c) = chars.get(i) {
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb_start = i - 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut flags = Flags::default();
        while let Some(&fc) = chars.get(i) {
            match fc {
                '+' => flags.plus = true,
                '-' => flags.minus = true,
                '#' => flags.sharp = true,
                ' ' => flags.space = true,
                '0' => flags.zero = true,
                _ => break,
            }
            i += 1;
        }
        if let Some(idx) = parse_arg_index(f, &chars, &mut i)? {
            next_arg = idx;
            reordered = true;
        }
        let width = parse_count(f, &chars, &mut i, "width")?;
        let mut precision = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            precision = Some(parse_count(f, &chars, &mut i, "precision")?.unwrap_or(0));
        }
        if let Some(idx) = parse_arg_index(f, &chars, &mut i)? {
            next_arg = idx;
            reordered = true;
        }
        let Some(&verb) = chars.get(i) else {
            return Err(format!(
                "{f}: format string ends with an incomplete verb at offset {verb_start}"
            ));
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(value) = vals.get(next_arg) else {
            return Err(format!(
                "{f}: not enough arguments for \"%{verb}\" at offset {verb_start}: need argument {}, have {}",
                next_arg + 1,
                vals.len()
            ));
        };
        if let Some(u) = used.get_mut(next_arg) {
            *u = true;
        }
        let arg_no = next_arg + 1;
        next_arg += 1;
        let vs = VerbSpec {
            flags,
            width,
            precision,
        };
        let piece = format_verb(f, verb, vs, value, arg_no)?;
        out.push_str(&piece);
        if out.len() > MAX_STRING_LEN {
            return Err(format!(
                "{f}: the result would be longer than {MAX_STRING_LEN} bytes"
            ));
        }
    }
    if !reordered && let Some(pos) = used.iter().position(|u| !u) {
        return Err(format!(
            "{f}: too many arguments; the format string uses only {pos} of {}",
            vals.len()
        ));
    }
    Ok(out)
}

fn format_verb(f: &str, verb: char, vs: VerbSpec, value: &Value, arg_no: usize) -> Result<String, String> {
    let unsupported =
        |why: &str| format!("{f}: unsupported value for \"%{verb}\" (argument {arg_no}): {why}");
    if value.is_null() && verb != 'v' {
        return Err(unsupported("null value cannot be formatted"));
    }
    match verb {
        'v' => {
            let s = if vs.flags.sharp {
                json_text(f, value)?
            } else {
                match value {
                    Value::Null => "null".to_string(),
                    Value::Array(_) | Value::Object(_) => json_text(f, value)?,
                    other => scalar_to_string(other).unwrap_or_default(),
                }
            };
            Ok(pad_string(truncate(s, vs.precision), vs))
        }
        's' => {
            let s = scalar_to_string(value).ok_or_else(|| {
                unsupported(&format!("{} cannot be converted to a string", type_name(value)))
            })?;
            Ok(pad_string(truncate(s, vs.precision), vs))
        }
        'q' => {
            let s = scalar_to_string(value).ok_or_else(|| {
                unsupported(&format!("{} cannot be converted to a string", type_name(value)))
            })?;
            let quoted = serde_json::to_string(&s).map_err(|e| format!("{f}: {e}"))?;
            Ok(pad_string(quoted, vs))
        }
        't' => {
            let b = match value {
                Value::Bool(b) => *b,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" => false,
                _ => return Err(unsupported(&format!("{} is not a bool", type_name(value)))),
            };
            Ok(pad_string(b.to_string(), vs))
        }
        'd' | 'b' | 'o' | 'x' | 'X' => {
            let n = verb_number(value)
                .ok_or_else(|| unsupported(&format!("{} is not a number", type_name(value))))?;
            let i = number_to_i128(&n)
                .ok_or_else(|| unsupported(&format!("{} is not a whole number", number_to_string(&n))))?;
            Ok(format_integer(i, verb, vs))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let n = verb_number(value)
                .ok_or_else(|| unsupported(&format!("{} is not a number", type_name(value))))?;
            Ok(format_float(n.as_f64().unwrap_or(0.0), verb, vs))
        }
        other => Err(format!(
            "{f}: unrecognized format verb \"%{other}\" for argument {arg_no}"
        )),
    }
}

fn json_text(f: &str, value: &Value) -> Result<String, String> {
    let j = value_to_json(f, value, 0)?;
    serde_json::to_string(&j).map_err(|e| format!("{f}: {e}"))
}

fn verb_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(*n),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

fn number_to_i128(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 1.0e38 {
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i128)
    } else {
        None
    }
}

/// Truncates to `precision` characters.
fn truncate(s: String, precision: Option<usize>) -> String {
    match precision {
        Some(p) if s.chars().count() > p => s.chars().take(p).collect(),
        _ => s,
    }
}

/// Pads a non-numeric result to the requested width.
fn pad_string(s: String, vs: VerbSpec) -> String {
    let Some(width) = vs.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if vs.flags.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if vs.flags.zero {
        format!("{}{s}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

/// Pads a numeric result made of a sign/prefix and digits.
fn pad_number(sign: &str, body: &str, vs: VerbSpec, allow_zero: bool) -> String {
    let len = sign.chars().count() + body.chars().count();
    let width = vs.width.unwrap_or(0);
    if len >= width {
        return format!("{sign}{body}");
    }
    let fill = width - len;
    if vs.flags.minus {
        format!("{sign}{body}{}", " ".repeat(fill))
    } else if vs.flags.zero && allow_zero {
        format!("{sign}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{body}", " ".repeat(fill))
    }
}

fn sign_of(negative: bool, flags: Flags) -> &'static str {
    if negative {
        "-"
    } else if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    }
}

fn format_integer(i: i128, verb: char, vs: VerbSpec) -> String {
    let mag = i.unsigned_abs();
    let mut digits = match verb {
        'b' => format!("{mag:b}"),
        'o' => format!("{mag:o}"),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        _ => mag.to_string(),
    };
    if let Some(p) = vs.precision {
        if p == 0 && mag == 0 {
            digits.clear();
        } else if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    let prefix = if vs.flags.sharp {
        match verb {
            'b' => "0b",
            'o' if !digits.starts_with('0') => "0",
            'x' => "0x",
            'X' => "0X",
            _ => "",
        }
    } else {
        ""
    };
    let sign = format!("{}{prefix}", sign_of(i < 0, vs.flags));
    pad_number(&sign, &digits, vs, vs.precision.is_none())
}

/// Rewrites Rust's exponent notation (`1.5e3`) into Go's (`1.5e+03`).
fn go_exponent(s: &str, upper: bool) -> String {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let (exp_sign, exp_digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    let e = if upper { 'E' } else { 'e' };
    if exp_digits.len() < 2 {
        format!("{mantissa}{e}{exp_sign}0{exp_digits}")
    } else {
        format!("{mantissa}{e}{exp_sign}{exp_digits}")
    }
}

/// Removes trailing zeros (and a trailing dot) from the fractional part of a decimal mantissa.
fn strip_fraction_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn format_float(x: f64, verb: char, vs: VerbSpec) -> String {
    let mag = x.abs();
    let negative = x.is_sign_negative() && x != 0.0;
    let upper = verb.is_ascii_uppercase();
    let body = match verb {
        'f' | 'F' => format!("{:.*}", vs.precision.unwrap_or(6), mag),
        'e' | 'E' => go_exponent(&format!("{:.*e}", vs.precision.unwrap_or(6), mag), upper),
        _ => format_g(mag, vs.precision, vs.flags.sharp, upper),
    };
    pad_number(sign_of(negative, vs.flags), &body, vs, true)
}

/// `%g`: exponent notation for large or small exponents, plain decimal otherwise; trailing
/// zeros are removed unless the `#` flag is given (as Go's `strconv` does).
fn format_g(mag: f64, precision: Option<usize>, sharp: bool, upper: bool) -> String {
    let sci = match precision {
        None => format!("{mag:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, mag),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mantissa = if sharp {
        mantissa.to_string()
    } else {
        strip_fraction_zeros(mantissa)
    };
    let digits = i64::try_from(mantissa.chars().filter(char::is_ascii_digit).count()).unwrap_or(1);
    let eprec = precision.map_or(6, |p| i64::try_from(p.max(1)).unwrap_or(i64::MAX));
    if exp < -4 || exp >= eprec {
        go_exponent(&format!("{mantissa}e{exp}"), upper)
    } else {
        let decimals = usize::try_from((digits - 1 - exp).max(0)).unwrap_or(0);
        format!("{mag:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};

    #[test]
    fn basic_verbs() {
        assert_eq!(ok(r#"format("Hello, %s!", "Ander")"#), v(r#""Hello, Ander!""#));
        assert_eq!(
            ok(r#"format("There are %d lights", 4)"#),
            v(r#""There are 4 lights""#)
        );
        assert_eq!(ok(r#"format("%.2f", 3.14159)"#), v(r#""3.14""#));
        assert_eq!(ok(r#"format("%f", 1)"#), v(r#""1.000000""#));
        assert_eq!(ok(r#"format("%t %v %v", true, 1.5, "x")"#), v(r#""true 1.5 x""#));
        assert_eq!(ok(r#"format("%q", "a\"b")"#), v(r#""\"a\\\"b\"""#));
        assert_eq!(
            ok(r#"format("%x %X %o %b", 255, 255, 8, 5)"#),
            v(r#""ff FF 10 101""#)
        );
        assert_eq!(ok(r#"format("%#x", 255)"#), v(r#""0xff""#));
        assert_eq!(ok(r#"format("100%%")"#), v(r#""100%""#));
        assert_eq!(ok(r#"format("%v", [1, "a"])"#), v(r#""[1,\"a\"]""#));
        assert_eq!(ok(r#"format("%#v", "a")"#), v(r#""\"a\"""#));
        assert_eq!(ok(r#"format("%v", null)"#), v(r#""null""#));
        assert_eq!(ok(r#"format("%d", "42")"#), v(r#""42""#));
        assert_eq!(ok(r#"format("%s", 12)"#), v(r#""12""#));
    }

    #[test]
    fn width_precision_flags() {
        assert_eq!(
            ok(r#"format("%5d|%-5d|%05d", 42, 42, -42)"#),
            v(r#""   42|42   |-0042""#)
        );
        assert_eq!(ok(r#"format("%+d % d", 5, 5)"#), v(r#""+5  5""#));
        assert_eq!(ok(r#"format("%8.3f|", -3.14159)"#), v(r#""  -3.142|""#));
        assert_eq!(ok(r#"format("%-6s|%6s|", "ab", "cd")"#), v(r#""ab    |    cd|""#));
        assert_eq!(ok(r#"format("%.2s", "hello")"#), v(r#""he""#));
        assert_eq!(ok(r#"format("%e", 1234.5678)"#), v(r#""1.234568e+03""#));
        assert_eq!(
            ok(r#"format("%g %g %g", 100000, 1000000, 0.00001)"#),
            v(r#""100000 1e+06 1e-05""#)
        );
        assert_eq!(ok(r#"format("%.3g", 3.14159)"#), v(r#""3.14""#));
        assert_eq!(ok(r#"format("%[2]s %[1]s", "a", "b")"#), v(r#""b a""#));
        assert_eq!(ok(r#"format("%.3d", 7)"#), v(r#""007""#));
    }

    #[test]
    fn format_errors() {
        err(r#"format("%s %s", "a")"#, "format: not enough arguments");
        err(r#"format("%s", "a", "b")"#, "format: too many arguments");
        err(r#"format("%d", 1.5)"#, "1.5 is not a whole number");
        err(r#"format("%d", "x")"#, "string is not a number");
        err(r#"format("%s", null)"#, "null value cannot be formatted");
        err(r#"format("%s", [1])"#, "list cannot be converted to a string");
        err(r#"format("%y", 1)"#, "unrecognized format verb");
        err(r#"format("%", 1)"#, "incomplete verb");
        err(
            r#"format("%99999999d", 1)"#,
            "width in format string is larger than",
        );
        err(
            r#"format("%.99999999f", 1)"#,
            "precision in format string is larger than",
        );
        err(
            r#"format("%[0]d", 1)"#,
            "argument indexes in format strings start at 1",
        );
        err("format()", "format: expected at least 1 argument, got 0");
    }

    #[test]
    fn formatlist_cases() {
        assert_eq!(
            ok(r#"formatlist("Hello, %s!", ["Valentina", "Ander"])"#),
            v(r#"["Hello, Valentina!", "Hello, Ander!"]"#)
        );
        assert_eq!(
            ok(r#"formatlist("%s, %s!", "Salutations", ["Valentina", "Ander"])"#),
            v(r#"["Salutations, Valentina!", "Salutations, Ander!"]"#)
        );
        assert_eq!(ok(r#"formatlist("%s", "x")"#), v(r#"["x"]"#));
        assert_eq!(ok(r#"formatlist("%s", [])"#), v("[]"));
        err(
            r#"formatlist("%s %s", ["a"], ["b", "c"])"#,
            "formatlist: argument 3 has length 2",
        );
    }
}
