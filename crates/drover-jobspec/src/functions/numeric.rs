//! Numeric functions: `abs`, `ceil`, `floor`, `log`, `max`, `min`, `parseint`, `pow`, `range`,
//! `signum`.

use super::{MAX_COLLECTION_LEN, arg, cmp_numbers, f64_arg, float_value, int_arg, str_arg, to_number};
use hcl::{Number, Value};
use std::cmp::Ordering;

pub(super) fn abs(args: &[Value]) -> Result<Value, String> {
    let n = to_number("abs", arg("abs", args, 0)?, 1)?;
    if let Some(i) = n.as_i64() {
        return Ok(Value::from(i.unsigned_abs()));
    }
    if n.as_u64().is_some() {
        return Ok(Value::Number(n));
    }
    float_value("abs", n.as_f64().unwrap_or(0.0).abs())
}

fn round_with(f: &'static str, args: &[Value], op: fn(f64) -> f64) -> Result<Value, String> {
    let n = to_number(f, arg(f, args, 0)?, 1)?;
    if n.as_i64().is_some() || n.as_u64().is_some() {
        return Ok(Value::Number(n));
    }
    float_value(f, op(n.as_f64().unwrap_or(0.0)))
}

pub(super) fn ceil(args: &[Value]) -> Result<Value, String> {
    round_with("ceil", args, f64::ceil)
}

pub(super) fn floor(args: &[Value]) -> Result<Value, String> {
    round_with("floor", args, f64::floor)
}

pub(super) fn log(args: &[Value]) -> Result<Value, String> {
    let num = f64_arg("log", args, 0)?;
    let base = f64_arg("log", args, 1)?;
    if num < 0.0 || base < 0.0 {
        return Err("log: the number and the base must not be negative".to_string());
    }
    float_value("log", num.ln() / base.ln())
}

pub(super) fn pow(args: &[Value]) -> Result<Value, String> {
    let base = f64_arg("pow", args, 0)?;
    let exp = f64_arg("pow", args, 1)?;
    float_value("pow", base.powf(exp))
}

pub(super) fn signum(args: &[Value]) -> Result<Value, String> {
    let n = to_number("signum", arg("signum", args, 0)?, 1)?;
    let zero = Number::from(0);
    Ok(Value::from(match cmp_numbers(&n, &zero) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}

fn extreme(f: &'static str, args: &[Value], want: Ordering) -> Result<Value, String> {
    if args.is_empty() {
        return Err(format!("{f}: at least one argument is required"));
    }
    let mut best: Option<Number> = None;
    for (i, v) in args.iter().enumerate() {
        let n = to_number(f, v, i + 1)?;
        best = match best {
            Some(b) if cmp_numbers(&n, &b) != want => Some(b),
            _ => Some(n),
        };
    }
    Ok(best.map_or(Value::Null, Value::Number))
}

pub(super) fn max(args: &[Value]) -> Result<Value, String> {
    extreme("max", args, Ordering::Greater)
}

pub(super) fn min(args: &[Value]) -> Result<Value, String> {
    extreme("min", args, Ordering::Less)
}

pub(super) fn parseint(args: &[Value]) -> Result<Value, String> {
    let s = str_arg("parseint", args, 0)?;
    let base = int_arg("parseint", args, 1)?;
    if !(2..=62).contains(&base) {
        return Err(format!(
            "parseint: base must be a whole number between 2 and 62, got {base}"
        ));
    }
    let base_u = u32::try_from(base).unwrap_or(10);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    let invalid = || format!("parseint: cannot parse {s:?} as a base {base} integer");
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut acc: u128 = 0;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => u32::from(c) - u32::from('0'),
            'a'..='z' => u32::from(c) - u32::from('a') + 10,
            'A'..='Z' if base_u <= 36 => u32::from(c) - u32::from('A') + 10,
            'A'..='Z' => u32::from(c) - u32::from('A') + 36,
            _ => return Err(invalid()),
        };
        if d >= base_u {
            return Err(invalid());
        }
        acc = acc
            .checked_mul(u128::from(base_u))
            .and_then(|a| a.checked_add(u128::from(d)))
            .ok_or_else(|| format!("parseint: {s:?} is too large"))?;
    }
    if negative {
        if let Ok(i) = i64::try_from(acc) {
            return Ok(Value::from(-i));
        }
        if acc == u128::from(i64::MIN.unsigned_abs()) {
            return Ok(Value::from(i64::MIN));
        }
        #[allow(clippy::cast_precision_loss)]
        return float_value("parseint", -(acc as f64));
    }
    if let Ok(u) = u64::try_from(acc) {
        return Ok(Value::from(u));
    }
    #[allow(clippy::cast_precision_loss)]
    float_value("parseint", acc as f64)
}

pub(super) fn range(args: &[Value]) -> Result<Value, String> {
    let nums = (0..args.len())
        .map(|i| f64_arg("range", args, i))
        .collect::<Result<Vec<f64>, String>>()?;
    let (start, end, step) = match nums.as_slice() {
        [end] => (0.0, *end, if *end < 0.0 { -1.0 } else { 1.0 }),
        [start, end] => (*start, *end, if end < start { -1.0 } else { 1.0 }),
        [start, end, step] => (*start, *end, *step),
        _ => return Err(format!("range: expected 1 to 3 arguments, got {}", args.len())),
    };
    if step == 0.0 {
        return Err("range: step must not be zero".to_string());
    }
    let down = step < 0.0;
    if down && end > start {
        return Err("range: end must be less than start when step is negative".to_string());
    }
    if !down && end < start {
        return Err("range: end must be greater than start when step is positive".to_string());
    }
    // Reject oversized results before building them.
    let span = (end - start) / step;
    #[allow(clippy::cast_precision_loss)]
    if !span.is_finite() || span > MAX_COLLECTION_LEN as f64 {
        return Err(format!(
            "range: the result would have more than {MAX_COLLECTION_LEN} elements"
        ));
    }
    let mut out = Vec::new();
    let mut i: u32 = 0;
    loop {
        let x = start + f64::from(i) * step;
        if (down && x <= end) || (!down && x >= end) || !x.is_finite() {
            break;
        }
        if out.len() >= MAX_COLLECTION_LEN {
            return Err(format!(
                "range: the result would have more than {MAX_COLLECTION_LEN} elements"
            ));
        }
        out.push(float_value("range", x)?);
        i = i.saturating_add(1);
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};

    #[test]
    fn abs_ceil_floor_signum() {
        assert_eq!(ok("abs(-3)"), v("3"));
        assert_eq!(ok("abs(-1.5)"), v("1.5"));
        assert_eq!(ok("abs(\"-2\")"), v("2"));
        assert_eq!(ok("ceil(1.2)"), v("2"));
        assert_eq!(ok("ceil(5)"), v("5"));
        assert_eq!(ok("floor(-1.2)"), v("-2"));
        assert_eq!(ok("signum(-7)"), v("-1"));
        assert_eq!(ok("signum(0)"), v("0"));
        assert_eq!(ok("signum(3.5)"), v("1"));
        err("abs(\"x\")", "abs: argument 1 must be a number");
        err("ceil(true)", "ceil: argument 1 must be a number, got bool");
    }

    #[test]
    fn log_pow() {
        assert_eq!(ok("log(8, 2)"), v("3"));
        assert_eq!(ok("pow(2, 10)"), v("1024"));
        assert_eq!(ok("pow(4, 0.5)"), v("2"));
        err("log(0, 10)", "log: the result is not a finite number");
        err("pow(10, 400)", "pow: the result is not a finite number");
    }

    #[test]
    fn min_max() {
        assert_eq!(ok("max(1, 5, 3)"), v("5"));
        assert_eq!(ok("min(1, -5.5, 3)"), v("-5.5"));
        assert_eq!(ok("max(\"7\", 2)"), v("7"));
        assert_eq!(ok("max([1, 9]...)"), v("9"));
        err("max()", "max: expected at least 1 argument");
        err("min(1, \"a\")", "min: argument 2 must be a number");
    }

    #[test]
    fn parseint_cases() {
        assert_eq!(ok(r#"parseint("100", 10)"#), v("100"));
        assert_eq!(ok(r#"parseint("FF", 16)"#), v("255"));
        assert_eq!(ok(r#"parseint("-10", 2)"#), v("-2"));
        assert_eq!(ok(r#"parseint("zz", 36)"#), v("1295"));
        assert_eq!(ok(r#"parseint("Z", 62)"#), v("61"));
        err(
            r#"parseint("12", 2)"#,
            "parseint: cannot parse \"12\" as a base 2 integer",
        );
        err(r#"parseint("1", 1)"#, "parseint: base must be");
        err(r#"parseint("", 10)"#, "cannot parse");
        err("parseint(10, 10)", "parseint: argument 1 must be a string");
        err(
            r#"parseint("1111111111111111111111111111111111111111111111", 36)"#,
            "too large",
        );
    }

    #[test]
    fn range_cases() {
        assert_eq!(ok("range(3)"), v("[0, 1, 2]"));
        assert_eq!(ok("range(0)"), v("[]"));
        assert_eq!(ok("range(-2)"), v("[0, -1]"));
        assert_eq!(ok("range(1, 4)"), v("[1, 2, 3]"));
        assert_eq!(ok("range(4, 1)"), v("[4, 3, 2]"));
        assert_eq!(ok("range(1, 8, 2)"), v("[1, 3, 5, 7]"));
        assert_eq!(ok("range(1, 3, 0.5)"), v("[1, 1.5, 2, 2.5]"));
        assert_eq!(ok("range(4, 2, -0.5)"), v("[4, 3.5, 3, 2.5]"));
        err("range(1, 2, 0)", "range: step must not be zero");
        err("range(1, 5, -1)", "range: end must be less than start");
        err("range(5, 1, 1)", "range: end must be greater than start");
        err("range(10000000)", "more than 1000000 elements");
        err("range(1, 2, 3, 4)", "range: expected 1 to 3 arguments, got 4");
    }
}
