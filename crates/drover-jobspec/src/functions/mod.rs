//! The HCL2 function library available inside Nomad job files.
//!
//! Nomad's `jobspec2` parser registers the go-cty standard library plus the go-cty-funcs
//! collection; this module provides Drover's own implementation of the same set of functions
//! for the `hcl-rs` evaluator. Every function follows the documented Terraform/go-cty
//! semantics as closely as practical; the few places that are approximations are noted on the
//! individual functions.
//!
//! Function groups:
//!
//! - **numeric**: `abs`, `ceil`, `floor`, `log`, `max`, `min`, `parseint`, `pow`, `range`,
//!   `signum`
//! - **string**: `chomp`, `format`, `formatlist`, `indent`, `join`, `lower`, `regex_replace`,
//!   `replace`, `split`, `strlen`, `strrev`, `substr`, `title`, `trim`, `trimprefix`,
//!   `trimspace`, `trimsuffix`, `upper`, `urlencode`
//! - **collection**: `chunklist`, `coalesce`, `coalescelist`, `compact`, `concat`, `contains`,
//!   `distinct`, `element`, `flatten`, `index`, `keys`, `length`, `lookup`, `merge`,
//!   `reverse`, `setintersection`, `setproduct`, `setunion`, `slice`, `sort`, `values`,
//!   `zipmap`
//! - **encoding**: `base64decode`, `base64encode`, `csvdecode`, `jsondecode`, `jsonencode`,
//!   `yamldecode`, `yamlencode`
//! - **hash and crypto**: `md5`, `sha1`, `sha256`, `sha512`, `uuidv4`, `uuidv5`, and the
//!   unsupported `bcrypt` and `rsadecrypt` (they always return an error)
//! - **network**: `cidrhost`, `cidrnetmask`, `cidrsubnet`, `cidrsubnets`
//! - **date and time**: `formatdate`, `timeadd`
//! - **filesystem** (relative paths resolve against the directory set with [`set_base_dir`]):
//!   `abspath`, `basename`, `dirname`, `file`, `filebase64`, `fileexists`, `fileset`,
//!   `pathexpand`
//! - **type conversion and error handling**: `convert`, `try`, `can`
//!
//! All functions are registered with [`register_all`]; [`names`] lists them. Functions never
//! panic: every failure is reported as an `Err(String)` whose message starts with the function
//! name, and results that would grow without bound (`range`, `indent`, `format` widths, ...)
//! are capped.

mod collections;
mod datetime;
mod encoding;
mod filesystem;
mod format;
mod network;
mod numeric;
mod strings;
mod yaml;

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Number, Value};
use std::cmp::Ordering;

pub use filesystem::{BaseDirGuard, set_base_dir};

/// Largest number of elements a function may produce (e.g. `range`, `setproduct`).
pub(crate) const MAX_COLLECTION_LEN: usize = 1_000_000;
/// Largest width, precision or indentation a function accepts.
pub(crate) const MAX_WIDTH: usize = 1_000_000;
/// Largest string (in bytes) a function may produce or read.
pub(crate) const MAX_STRING_LEN: usize = 64 * 1024 * 1024;
/// Deepest nesting of values that recursive functions walk.
pub(crate) const MAX_DEPTH: usize = 256;

/// The signature of every function implementation in this module. The registered `hcl-rs`
/// functions are thin wrappers around these.
type Impl = fn(&[Value]) -> Result<Value, String>;

/// One registered function: its name, implementation and accepted number of arguments
/// (`max == None` means variadic). Only the tests iterate over the table.
#[cfg_attr(not(test), allow(dead_code))]
struct Spec {
    name: &'static str,
    func: Impl,
    min: usize,
    max: Option<usize>,
}

/// Checks the argument count and calls the implementation.
fn call_checked(
    name: &str,
    min: usize,
    max: Option<usize>,
    func: Impl,
    args: &[Value],
) -> Result<Value, String> {
    let n = args.len();
    let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
    match max {
        Some(max) if min == max && n != min => {
            Err(format!("{name}: expected exactly {min} {}, got {n}", plural(min)))
        }
        Some(max) if n < min || n > max => Err(format!("{name}: expected {min} to {max} arguments, got {n}")),
        None if n < min => Err(format!(
            "{name}: expected at least {min} {}, got {n}",
            plural(min)
        )),
        _ => func(args),
    }
}

macro_rules! function_table {
    ($( $name:literal => $func:path, $min:literal, $max:expr; )*) => {
        const NAMES: &[&str] = &[$($name),*];

        #[cfg_attr(not(test), allow(dead_code))]
        const SPECS: &[Spec] = &[$(Spec { name: $name, func: $func, min: $min, max: $max }),*];

        /// Registers every function into an hcl-rs evaluation context.
        pub fn register_all(ctx: &mut Context<'_>) {
            $(
                // Arity and types are checked by the implementation itself so that error
                // messages are uniform; hcl-rs only sees a variadic `any` parameter.
                ctx.declare_func(
                    $name,
                    FuncDef::builder()
                        .variadic_param(ParamType::Any)
                        .build(|args: FuncArgs| call_checked($name, $min, $max, $func, &args)),
                );
            )*
        }
    };
}

function_table! {
    "abs" => numeric::abs, 1, Some(1);
    "abspath" => filesystem::abspath, 1, Some(1);
    "base64decode" => encoding::base64decode, 1, Some(1);
    "base64encode" => encoding::base64encode, 1, Some(1);
    "basename" => filesystem::basename, 1, Some(1);
    "bcrypt" => encoding::bcrypt, 1, Some(2);
    "can" => can, 1, Some(1);
    "ceil" => numeric::ceil, 1, Some(1);
    "chomp" => strings::chomp, 1, Some(1);
    "chunklist" => collections::chunklist, 2, Some(2);
    "cidrhost" => network::cidrhost, 2, Some(2);
    "cidrnetmask" => network::cidrnetmask, 1, Some(1);
    "cidrsubnet" => network::cidrsubnet, 3, Some(3);
    "cidrsubnets" => network::cidrsubnets, 1, None;
    "coalesce" => collections::coalesce, 1, None;
    "coalescelist" => collections::coalescelist, 1, None;
    "compact" => collections::compact, 1, Some(1);
    "concat" => collections::concat, 0, None;
    "contains" => collections::contains, 2, Some(2);
    "convert" => convert, 2, Some(2);
    "csvdecode" => encoding::csvdecode, 1, Some(1);
    "dirname" => filesystem::dirname, 1, Some(1);
    "distinct" => collections::distinct, 1, Some(1);
    "element" => collections::element, 2, Some(2);
    "file" => filesystem::file, 1, Some(1);
    "filebase64" => filesystem::filebase64, 1, Some(1);
    "fileexists" => filesystem::fileexists, 1, Some(1);
    "fileset" => filesystem::fileset, 2, Some(2);
    "flatten" => collections::flatten, 1, Some(1);
    "floor" => numeric::floor, 1, Some(1);
    "format" => format::format, 1, None;
    "formatdate" => datetime::formatdate, 2, Some(2);
    "formatlist" => format::formatlist, 1, None;
    "indent" => strings::indent, 2, Some(2);
    "index" => collections::index, 2, Some(2);
    "join" => strings::join, 1, None;
    "jsondecode" => encoding::jsondecode, 1, Some(1);
    "jsonencode" => encoding::jsonencode, 1, Some(1);
    "keys" => collections::keys, 1, Some(1);
    "length" => collections::length, 1, Some(1);
    "log" => numeric::log, 2, Some(2);
    "lookup" => collections::lookup, 2, Some(3);
    "lower" => strings::lower, 1, Some(1);
    "max" => numeric::max, 1, None;
    "md5" => encoding::md5, 1, Some(1);
    "merge" => collections::merge, 0, None;
    "min" => numeric::min, 1, None;
    "parseint" => numeric::parseint, 2, Some(2);
    "pathexpand" => filesystem::pathexpand, 1, Some(1);
    "pow" => numeric::pow, 2, Some(2);
    "range" => numeric::range, 1, Some(3);
    "regex_replace" => strings::regex_replace, 3, Some(3);
    "replace" => strings::replace, 3, Some(3);
    "reverse" => collections::reverse, 1, Some(1);
    "rsadecrypt" => encoding::rsadecrypt, 2, Some(2);
    "setintersection" => collections::setintersection, 1, None;
    "setproduct" => collections::setproduct, 2, None;
    "setunion" => collections::setunion, 1, None;
    "sha1" => encoding::sha1, 1, Some(1);
    "sha256" => encoding::sha256, 1, Some(1);
    "sha512" => encoding::sha512, 1, Some(1);
    "signum" => numeric::signum, 1, Some(1);
    "slice" => collections::slice, 3, Some(3);
    "sort" => collections::sort, 1, Some(1);
    "split" => strings::split, 2, Some(2);
    "strlen" => strings::strlen, 1, Some(1);
    "strrev" => strings::strrev, 1, Some(1);
    "substr" => strings::substr, 3, Some(3);
    "timeadd" => datetime::timeadd, 2, Some(2);
    "title" => strings::title, 1, Some(1);
    "trim" => strings::trim, 2, Some(2);
    "trimprefix" => strings::trimprefix, 2, Some(2);
    "trimspace" => strings::trimspace, 1, Some(1);
    "trimsuffix" => strings::trimsuffix, 2, Some(2);
    "try" => try_fallback, 1, None;
    "upper" => strings::upper, 1, Some(1);
    "urlencode" => strings::urlencode, 1, Some(1);
    "uuidv4" => encoding::uuidv4, 0, Some(0);
    "uuidv5" => encoding::uuidv5, 2, Some(2);
    "values" => collections::values, 1, Some(1);
    "yamldecode" => yaml::yamldecode, 1, Some(1);
    "yamlencode" => yaml::yamlencode, 1, Some(1);
    "zipmap" => collections::zipmap, 2, Some(2);
}

/// Names of all registered functions (sorted), for docs and error hints.
pub fn names() -> &'static [&'static str] {
    NAMES
}

// ---------------------------------------------------------------------------------------------
// try / can / convert
// ---------------------------------------------------------------------------------------------

/// Fallback registration of `try(expr, ...)`.
///
/// The real `try` must see its arguments *unevaluated* so it can catch evaluation errors, but
/// hcl-rs evaluates every argument before calling a function. The job-file evaluator (in another
/// module of this crate) therefore recognises `try(...)` calls and handles the error-catching
/// form itself before evaluation; this registration is only reached when all arguments evaluated
/// successfully. It returns the first argument that is not null (or null if all are null).
fn try_fallback(args: &[Value]) -> Result<Value, String> {
    if args.is_empty() {
        return Err("try: at least one argument is required".to_string());
    }
    Ok(args.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null))
}

/// Fallback registration of `can(expr)`.
///
/// Like `try`, the real `can` needs its argument unevaluated; the job-file evaluator (in another
/// module of this crate) handles `can(...)` specially before evaluation and yields `false` when
/// the expression fails. When this registration is reached the argument evaluated successfully,
/// so the answer is always `true`.
fn can(args: &[Value]) -> Result<Value, String> {
    arg("can", args, 0)?;
    Ok(Value::Bool(true))
}

/// A target type for `convert`.
#[derive(Debug, Clone, PartialEq)]
enum TypeSpec {
    Any,
    String,
    Number,
    Bool,
    List(Box<TypeSpec>),
    Set(Box<TypeSpec>),
    Map(Box<TypeSpec>),
}

/// `convert(value, type)`: best-effort type conversion.
///
/// Approximation: hcl-rs cannot pass a type expression (`list(string)`) to a function, so the
/// type is accepted as a string such as `"string"`, `"number"`, `"bool"`, `"list(string)"`,
/// `"set(number)"`, `"map(bool)"` or `"any"`; `object(...)`/`tuple(...)` are treated as `any`.
/// If the second argument is not a string (for example because the evaluator bound a type
/// keyword to some other value), the value is returned unchanged.
fn convert(args: &[Value]) -> Result<Value, String> {
    let value = arg("convert", args, 0)?;
    let ty = arg("convert", args, 1)?;
    match ty {
        Value::String(s) => {
            let spec = parse_type(s)?;
            convert_value(value, &spec, 0)
        }
        _ => Ok(value.clone()),
    }
}

fn parse_type(s: &str) -> Result<TypeSpec, String> {
    fn inner(s: &str, depth: usize) -> Result<TypeSpec, String> {
        if depth > MAX_DEPTH {
            return Err("convert: type specification is nested too deeply".to_string());
        }
        let s = s.trim();
        match s {
            "any" => return Ok(TypeSpec::Any),
            "string" => return Ok(TypeSpec::String),
            "number" => return Ok(TypeSpec::Number),
            "bool" => return Ok(TypeSpec::Bool),
            _ => {}
        }
        if let Some(open) = s.find('(')
            && s.ends_with(')')
        {
            let head = s.get(..open).unwrap_or_default().trim();
            let body = s.get(open + 1..s.len().saturating_sub(1)).unwrap_or_default();
            return match head {
                "list" => Ok(TypeSpec::List(Box::new(inner(body, depth + 1)?))),
                "set" => Ok(TypeSpec::Set(Box::new(inner(body, depth + 1)?))),
                "map" => Ok(TypeSpec::Map(Box::new(inner(body, depth + 1)?))),
                "object" | "tuple" => Ok(TypeSpec::Any),
                _ => Err(format!("convert: unknown type constructor {head:?}")),
            };
        }
        Err(format!(
            "convert: unknown type {s:?} (expected string, number, bool, any, list(T), set(T) or map(T))"
        ))
    }
    inner(s, 0)
}

fn convert_value(v: &Value, ty: &TypeSpec, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("convert: value is nested too deeply".to_string());
    }
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        TypeSpec::Any => Ok(v.clone()),
        TypeSpec::String => scalar_to_string(v)
            .map(Value::String)
            .ok_or_else(|| format!("convert: cannot convert {} to string", type_name(v))),
        TypeSpec::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => parse_number(s)
                .map(Value::Number)
                .ok_or_else(|| format!("convert: cannot convert {s:?} to number")),
            _ => Err(format!("convert: cannot convert {} to number", type_name(v))),
        },
        TypeSpec::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) => match s.as_str() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("convert: cannot convert {s:?} to bool")),
            },
            _ => Err(format!("convert: cannot convert {} to bool", type_name(v))),
        },
        TypeSpec::List(elem) | TypeSpec::Set(elem) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("convert: cannot convert {} to a list or set", type_name(v)))?;
            let converted = items
                .iter()
                .map(|item| convert_value(item, elem, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, TypeSpec::Set(_)) {
                Ok(Value::Array(dedup("convert", &converted)?))
            } else {
                Ok(Value::Array(converted))
            }
        }
        TypeSpec::Map(elem) => {
            let obj = v
                .as_object()
                .ok_or_else(|| format!("convert: cannot convert {} to a map", type_name(v)))?;
            let mut out = Map::new();
            for (k, item) in obj {
                out.insert(k.clone(), convert_value(item, elem, depth + 1)?);
            }
            Ok(Value::Object(out))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers for the function implementations.
// ---------------------------------------------------------------------------------------------

/// A short, human readable name for the type of a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a value for error messages (JSON, truncated).
pub(crate) fn describe(v: &Value) -> String {
    let text = encoding::value_to_json("", v, 0)
        .ok()
        .and_then(|j| serde_json::to_string(&j).ok())
        .unwrap_or_else(|| type_name(v).to_string());
    if text.chars().count() > 60 {
        let mut short: String = text.chars().take(57).collect();
        short.push_str("...");
        short
    } else {
        text
    }
}

/// Returns argument `i` (zero based) or an error naming the function.
pub(crate) fn arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a Value, String> {
    args.get(i)
        .ok_or_else(|| format!("{f}: missing argument {}", i.saturating_add(1)))
}

/// Formats a number the way cty converts numbers to strings: integers as integers and other
/// values in plain decimal notation without an exponent.
pub(crate) fn number_to_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        // `as_f64` always succeeds for hcl numbers.
        format!("{}", n.as_f64().unwrap_or(0.0))
    }
}

/// Converts a primitive value (string, number or bool) to a string like cty's automatic
/// conversion does. Returns `None` for null and collections.
pub(crate) fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_to_string(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses a decimal number string (`-1`, `2.5`, `1e3`) the way cty converts strings to numbers.
/// Returns `None` for anything else, including infinities and NaN.
pub(crate) fn parse_number(s: &str) -> Option<Number> {
    let bytes = s.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut has_digits = i > digits_start;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        has_digits |= i > frac_start;
    }
    if !has_digits {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    let unsigned = s.strip_prefix('+').unwrap_or(s);
    if let Ok(i) = unsigned.parse::<i64>() {
        return Some(Number::from(i));
    }
    if let Ok(u) = unsigned.parse::<u64>() {
        return Some(Number::from(u));
    }
    unsigned.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Converts a value to a number: numbers as is, numeric strings parsed.
pub(crate) fn to_number(f: &str, v: &Value, pos: usize) -> Result<Number, String> {
    match v {
        Value::Number(n) => Ok(*n),
        Value::String(s) => parse_number(s)
            .ok_or_else(|| format!("{f}: argument {pos} must be a number, got the string {s:?}")),
        _ => Err(format!(
            "{f}: argument {pos} must be a number, got {}",
            type_name(v)
        )),
    }
}

/// Number argument `i` as `f64`.
pub(crate) fn f64_arg(f: &str, args: &[Value], i: usize) -> Result<f64, String> {
    let n = to_number(f, arg(f, args, i)?, i + 1)?;
    Ok(n.as_f64().unwrap_or(0.0))
}

/// Whole-number argument `i` as `i64`.
pub(crate) fn int_arg(f: &str, args: &[Value], i: usize) -> Result<i64, String> {
    let n = to_number(f, arg(f, args, i)?, i + 1)?;
    number_to_i64(&n).ok_or_else(|| {
        format!(
            "{f}: argument {} must be a whole number between {} and {}, got {}",
            i + 1,
            i64::MIN,
            i64::MAX,
            number_to_string(&n)
        )
    })
}

/// A whole number that fits into `i64`.
pub(crate) fn number_to_i64(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.as_u64().is_some() {
        return None;
    }
    let f = n.as_f64()?;
    // Integral floats are normalised to integers by hcl-rs, so a float here is either
    // fractional or outside the 64-bit range.
    let limit = 2f64.powi(63);
    if f.fract() == 0.0 && (-limit..limit).contains(&f) {
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i64)
    } else {
        None
    }
}

/// String argument `i`; numbers and bools are converted like cty does.
pub(crate) fn string_arg(f: &str, args: &[Value], i: usize) -> Result<String, String> {
    let v = arg(f, args, i)?;
    scalar_to_string(v)
        .ok_or_else(|| format!("{f}: argument {} must be a string, got {}", i + 1, type_name(v)))
}

/// String argument `i` that must really be a string (no conversion).
pub(crate) fn str_arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a str, String> {
    let v = arg(f, args, i)?;
    v.as_str()
        .ok_or_else(|| format!("{f}: argument {} must be a string, got {}", i + 1, type_name(v)))
}

/// List argument `i`.
pub(crate) fn list_arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a [Value], String> {
    let v = arg(f, args, i)?;
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{f}: argument {} must be a list, got {}", i + 1, type_name(v)))
}

/// Object/map argument `i`.
pub(crate) fn object_arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a Map<String, Value>, String> {
    let v = arg(f, args, i)?;
    v.as_object().ok_or_else(|| {
        format!(
            "{f}: argument {} must be a map or object, got {}",
            i + 1,
            type_name(v)
        )
    })
}

/// Writes a canonical key for a value, so that equal values (in the sense of `Value`'s
/// `PartialEq`, where object key order does not matter) produce equal keys.
pub(crate) fn canonical_key(f: &str, v: &Value, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{f}: value is nested too deeply"));
    }
    match v {
        Value::Null => out.push('N'),
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::Number(n) => {
            out.push('#');
            out.push_str(&n.to_string());
            out.push(';');
        }
        Value::String(s) => {
            out.push('S');
            out.push_str(&s.len().to_string());
            out.push(':');
            out.push_str(s);
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical_key(f, item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(obj) => {
            out.push('{');
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            for k in keys {
                out.push_str(&k.len().to_string());
                out.push(':');
                out.push_str(k);
                if let Some(item) = obj.get(k) {
                    canonical_key(f, item, out, depth + 1)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The canonical key of a value as a new string.
pub(crate) fn key_of(f: &str, v: &Value) -> Result<String, String> {
    let mut s = String::new();
    canonical_key(f, v, &mut s, 0)?;
    Ok(s)
}

/// Removes duplicate values, keeping the first occurrence.
pub(crate) fn dedup(f: &str, items: &[Value]) -> Result<Vec<Value>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in items {
        if seen.insert(key_of(f, item)?) {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// Compares two numbers exactly when both are integers, otherwise as floats.
pub(crate) fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    fn as_int(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let x = a.as_f64().unwrap_or(0.0);
            let y = b.as_f64().unwrap_or(0.0);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// Builds a number value from a float, failing for infinities and NaN.
pub(crate) fn float_value(f: &str, x: f64) -> Result<Value, String> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("{f}: the result is not a finite number"))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Evaluates `expr` as the value of an attribute through hcl-rs with all functions registered.
    pub(crate) fn eval(expr: &str) -> Result<Value, String> {
        let mut ctx = Context::new();
        register_all(&mut ctx);
        let body = format!("x = {expr}\n");
        let v: Value = hcl::eval::from_str(&body, &ctx).map_err(|e| e.to_string())?;
        v.as_object()
            .and_then(|o| o.get("x"))
            .cloned()
            .ok_or_else(|| "no attribute x".to_string())
    }

    /// Evaluates and expects success.
    #[track_caller]
    pub(crate) fn ok(expr: &str) -> Value {
        match eval(expr) {
            Ok(v) => v,
            Err(e) => panic!("evaluating {expr} failed: {e}"),
        }
    }

    /// Evaluates and expects an error containing `needle`.
    #[track_caller]
    pub(crate) fn err(expr: &str, needle: &str) {
        match eval(expr) {
            Ok(v) => panic!("evaluating {expr} succeeded with {v:?}, expected error containing {needle:?}"),
            Err(e) => assert!(
                e.contains(needle),
                "error for {expr} was {e:?}, expected {needle:?}"
            ),
        }
    }

    /// Parses an HCL expression into a value (no functions involved).
    pub(crate) fn v(expr: &str) -> Value {
        ok(expr)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{err, ok, v};
    use super::*;

    #[test]
    fn names_are_sorted_unique_and_registered() {
        let names = names();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "names must be sorted and unique"
        );
        assert_eq!(names.len(), SPECS.len());
        for spec in SPECS {
            assert!(names.contains(&spec.name));
        }
        // Every name resolves in a context.
        let mut ctx = Context::new();
        register_all(&mut ctx);
        for name in names {
            let expr = format!("x = {name}()\n");
            let result: Result<Value, _> = hcl::eval::from_str(&expr, &ctx);
            if let Err(e) = result {
                assert!(!e.to_string().contains("undefined function"), "{name}: {e}");
            }
        }
        assert_eq!(names.len(), 83);
    }

    #[test]
    fn try_and_can_fallbacks() {
        assert_eq!(ok(r#"try(null, "b", "c")"#), v(r#""b""#));
        assert_eq!(ok("try(null, null)"), Value::Null);
        assert_eq!(ok("can(1)"), Value::Bool(true));
        err("try()", "try: expected at least 1 argument, got 0");
        err("can(1, 2)", "can: expected exactly 1 argument, got 2");
    }

    #[test]
    fn convert_primitives_and_collections() {
        assert_eq!(ok(r#"convert(5, "string")"#), v(r#""5""#));
        assert_eq!(ok(r#"convert("5.5", "number")"#), v("5.5"));
        assert_eq!(ok(r#"convert("true", "bool")"#), v("true"));
        assert_eq!(ok(r#"convert([1, 2], "list(string)")"#), v(r#"["1", "2"]"#));
        assert_eq!(ok(r#"convert([1, 1, 2], "set(number)")"#), v("[1, 2]"));
        assert_eq!(ok(r#"convert({a = 1}, "map(string)")"#), v(r#"{a = "1"}"#));
        assert_eq!(ok(r#"convert({a = 1}, "object({a=number})")"#), v("{a = 1}"));
        assert_eq!(ok(r#"convert(null, "string")"#), Value::Null);
        assert_eq!(ok("convert(1, 2)"), v("1"));
        err(
            r#"convert("x", "number")"#,
            "convert: cannot convert \"x\" to number",
        );
        err(r#"convert(1, "strin")"#, "convert: unknown type");
        err(r#"convert([1], "string")"#, "cannot convert list to string");
    }

    #[test]
    fn edge_values_through_hcl() {
        assert_eq!(
            ok(r#"format("%v|%g", 1e21, 1e21)"#),
            v(r#""1000000000000000000000|1e+21""#)
        );
        assert_eq!(ok("abs(-9223372036854775808)"), v("9223372036854775808"));
        assert_eq!(
            ok(r#"cidrhost("::/0", -1)"#),
            v(r#""ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff""#)
        );
        assert_eq!(
            ok(r#"timeadd("2020-01-01T00:30:00-05:00", "-1h")"#),
            v(r#""2019-12-31T23:30:00-05:00""#)
        );
        assert_eq!(
            ok(r#"jsondecode(jsonencode({a = [1, {b = null}]}))"#),
            v("{a = [1, {b = null}]}")
        );
        assert_eq!(ok(r#"upper(join("", split(",", "a,b")))"#), v(r#""AB""#));
    }

    #[test]
    fn number_parsing() {
        assert_eq!(parse_number("12"), Some(Number::from(12)));
        assert_eq!(parse_number("-1.5"), Number::from_f64(-1.5));
        assert_eq!(parse_number("1e3"), Some(Number::from(1000)));
        assert_eq!(parse_number(".5"), Number::from_f64(0.5));
        assert_eq!(parse_number("18446744073709551615"), Some(Number::from(u64::MAX)));
        for bad in ["", "-", "1e", "inf", "NaN", "0x10", " 1", "1 ", "1e999"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    /// Odd values fed to every function in every arity to make sure nothing panics.
    fn odd_values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::from(""),
            Value::from("a/b"),
            Value::from("-1"),
            Value::from("**"),
            Value::from("%[5]*.99999999999d%"),
            Value::from("10.0.0.0/8"),
            Value::from("::/0"),
            Value::from("2024-02-29T23:59:59Z"),
            Value::from(0),
            Value::from(-1),
            Value::from(i64::MIN),
            Value::from(u64::MAX),
            Value::from(1.5e300),
            Value::from(-0.5),
            Value::Array(vec![]),
            Value::Array(vec![
                Value::Null,
                Value::Array(vec![Value::from(1)]),
                Value::from("x"),
            ]),
            Value::Object(Map::new()),
            Value::Object(Map::from_iter([(
                "k".to_string(),
                Value::Array(vec![Value::Null]),
            )])),
        ]
    }

    #[test]
    fn no_function_panics_on_odd_input() {
        let dir = std::env::temp_dir().join(format!("drover-fn-nopanic-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("a.txt"), "hello");
        let _guard = set_base_dir(dir.clone());
        let values = odd_values();
        let small: Vec<Value> = values.iter().step_by(3).cloned().collect();
        for spec in SPECS {
            let call = |args: &[Value]| {
                let _ = call_checked(spec.name, spec.min, spec.max, spec.func, args);
                let _ = (spec.func)(args);
            };
            call(&[]);
            for a in &values {
                call(std::slice::from_ref(a));
                for b in &values {
                    call(&[a.clone(), b.clone()]);
                }
            }
            for a in &small {
                for b in &small {
                    for c in &small {
                        call(&[a.clone(), b.clone(), c.clone()]);
                    }
                }
            }
            call(&[Value::from(1), Value::from(2), Value::from(3), Value::from(4)]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
