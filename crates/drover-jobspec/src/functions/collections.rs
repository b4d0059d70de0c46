//! Collection functions: `chunklist`, `coalesce`, `coalescelist`, `compact`, `concat`,
//! `contains`, `distinct`, `element`, `flatten`, `index`, `keys`, `length`, `lookup`, `merge`,
//! `reverse`, `setintersection`, `setproduct`, `setunion`, `slice`, `sort`, `values`, `zipmap`.
//!
//! Sets are represented as lists without duplicates that keep first-occurrence order.

use super::strings::graphemes;
use super::{
    MAX_COLLECTION_LEN, MAX_DEPTH, arg, cmp_numbers, dedup, describe, int_arg, key_of, list_arg, object_arg,
    parse_number, scalar_to_string, string_arg, type_name,
};
use hcl::{Map, Value};
use std::collections::HashSet;

pub(super) fn chunklist(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("chunklist", args, 0)?;
    let size = int_arg("chunklist", args, 1)?;
    if size < 0 {
        return Err(format!(
            "chunklist: the chunk size must not be negative, got {size}"
        ));
    }
    if list.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    if size == 0 {
        return Ok(Value::Array(vec![Value::Array(list.to_vec())]));
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    Ok(Value::Array(
        list.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
    ))
}

/// `coalesce(vals...)`: the first argument that is neither null nor an empty string. When the
/// arguments mix strings with numbers or bools the result is converted to a string, as cty's
/// type unification does.
pub(super) fn coalesce(args: &[Value]) -> Result<Value, String> {
    let any_string = args.iter().any(Value::is_string);
    for v in args {
        match v {
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::Number(_) | Value::Bool(_) if any_string => {
                return Ok(scalar_to_string(v).map_or(Value::Null, Value::String));
            }
            other => return Ok(other.clone()),
        }
    }
    Err("coalesce: no non-null, non-empty-string arguments".to_string())
}

pub(super) fn coalescelist(args: &[Value]) -> Result<Value, String> {
    for (i, v) in args.iter().enumerate() {
        match v {
            Value::Null => {}
            Value::Array(items) if items.is_empty() => {}
            Value::Array(_) => return Ok(v.clone()),
            other => {
                return Err(format!(
                    "coalescelist: argument {} must be a list, got {}",
                    i + 1,
                    type_name(other)
                ));
            }
        }
    }
    Err("coalescelist: no non-null, non-empty list arguments".to_string())
}

pub(super) fn compact(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("compact", args, 0)?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        if item.is_null() {
            continue;
        }
        let s = scalar_to_string(item)
            .ok_or_else(|| format!("compact: element {i} must be a string, got {}", type_name(item)))?;
        if !s.is_empty() {
            out.push(Value::String(s));
        }
    }
    Ok(Value::Array(out))
}

pub(super) fn concat(args: &[Value]) -> Result<Value, String> {
    let mut out = Vec::new();
    for i in 0..args.len() {
        out.extend_from_slice(list_arg("concat", args, i)?);
        if out.len() > MAX_COLLECTION_LEN {
            return Err(format!(
                "concat: the result would have more than {MAX_COLLECTION_LEN} elements"
            ));
        }
    }
    Ok(Value::Array(out))
}

/// Equality with cty's automatic conversion between strings and numbers/bools, so that
/// `contains(["1"], 1)` is true.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            parse_number(s).is_some_and(|p| cmp_numbers(&p, n).is_eq())
        }
        (Value::String(s), Value::Bool(x)) | (Value::Bool(x), Value::String(s)) => {
            s == if *x { "true" } else { "false" }
        }
        _ => a == b,
    }
}

pub(super) fn contains(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("contains", args, 0)?;
    let needle = arg("contains", args, 1)?;
    Ok(Value::Bool(list.iter().any(|v| loose_eq(v, needle))))
}

pub(super) fn distinct(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("distinct", args, 0)?;
    dedup("distinct", list).map(Value::Array)
}

/// `element(list, index)`: the index wraps around the length of the list, as in Terraform.
pub(super) fn element(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("element", args, 0)?;
    let index = int_arg("element", args, 1)?;
    if index < 0 {
        return Err(format!("element: index {index} must not be negative"));
    }
    if list.is_empty() {
        return Err("element: cannot use element on an empty list".to_string());
    }
    let idx = usize::try_from(index).unwrap_or(0) % list.len();
    list.get(idx).cloned().ok_or_else(|| {
        format!(
            "element: index {index} out of range for list of {} elements",
            list.len()
        )
    })
}

fn flatten_into(items: &[Value], out: &mut Vec<Value>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("flatten: the list is nested too deeply".to_string());
    }
    for item in items {
        match item {
            Value::Array(inner) => flatten_into(inner, out, depth + 1)?,
            other => {
                if out.len() >= MAX_COLLECTION_LEN {
                    return Err(format!(
                        "flatten: the result would have more than {MAX_COLLECTION_LEN} elements"
                    ));
                }
                out.push(other.clone());
            }
        }
    }
    Ok(())
}

pub(super) fn flatten(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("flatten", args, 0)?;
    let mut out = Vec::new();
    flatten_into(list, &mut out, 0)?;
    Ok(Value::Array(out))
}

pub(super) fn index(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("index", args, 0)?;
    let needle = arg("index", args, 1)?;
    list.iter()
        .position(|v| loose_eq(v, needle))
        .map(Value::from)
        .ok_or_else(|| format!("index: item {} not found in the list", describe(needle)))
}

fn sorted_entries(obj: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = obj.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `keys(map)`: the keys in lexicographic order.
pub(super) fn keys(args: &[Value]) -> Result<Value, String> {
    let obj = object_arg("keys", args, 0)?;
    Ok(Value::Array(
        sorted_entries(obj)
            .into_iter()
            .map(|(k, _)| Value::from(k.as_str()))
            .collect(),
    ))
}

/// `values(map)`: the values in the lexicographic order of their keys.
pub(super) fn values(args: &[Value]) -> Result<Value, String> {
    let obj = object_arg("values", args, 0)?;
    Ok(Value::Array(
        sorted_entries(obj).into_iter().map(|(_, v)| v.clone()).collect(),
    ))
}

/// `length(value)`: elements of a list, entries of a map, or characters of a string.
pub(super) fn length(args: &[Value]) -> Result<Value, String> {
    match arg("length", args, 0)? {
        Value::Array(items) => Ok(Value::from(items.len())),
        Value::Object(obj) => Ok(Value::from(obj.len())),
        Value::String(s) => Ok(Value::from(graphemes(s).len())),
        other => Err(format!(
            "length: argument must be a list, map or string, got {}",
            type_name(other)
        )),
    }
}

pub(super) fn lookup(args: &[Value]) -> Result<Value, String> {
    let obj = object_arg("lookup", args, 0)?;
    let key = string_arg("lookup", args, 1)?;
    if args.len() > 3 {
        return Err(format!("lookup: expected 2 or 3 arguments, got {}", args.len()));
    }
    match (obj.get(&key), args.get(2)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(format!("lookup: key {key:?} not found and no default given")),
    }
}

pub(super) fn merge(args: &[Value]) -> Result<Value, String> {
    let mut out = Map::new();
    for (i, v) in args.iter().enumerate() {
        match v {
            Value::Null => {}
            Value::Object(obj) => {
                for (k, item) in obj {
                    out.insert(k.clone(), item.clone());
                }
            }
            other => {
                return Err(format!(
                    "merge: argument {} must be a map or object, got {}",
                    i + 1,
                    type_name(other)
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn reverse(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("reverse", args, 0)?;
    Ok(Value::Array(list.iter().rev().cloned().collect()))
}

fn set_args<'a>(f: &str, args: &'a [Value]) -> Result<Vec<&'a [Value]>, String> {
    if args.is_empty() {
        return Err(format!("{f}: at least one set argument is required"));
    }
    (0..args.len()).map(|i| list_arg(f, args, i)).collect()
}

pub(super) fn setintersection(args: &[Value]) -> Result<Value, String> {
    let sets = set_args("setintersection", args)?;
    let Some((first, others)) = sets.split_first() else {
        return Ok(Value::Array(Vec::new()));
    };
    let other_keys = others
        .iter()
        .map(|set| {
            set.iter()
                .map(|v| key_of("setintersection", v))
                .collect::<Result<HashSet<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for item in dedup("setintersection", first)? {
        let k = key_of("setintersection", &item)?;
        if other_keys.iter().all(|keys| keys.contains(&k)) {
            out.push(item);
        }
    }
    Ok(Value::Array(out))
}

pub(super) fn setunion(args: &[Value]) -> Result<Value, String> {
    let sets = set_args("setunion", args)?;
    let all: Vec<Value> = sets.iter().flat_map(|s| s.iter().cloned()).collect();
    if all.len() > MAX_COLLECTION_LEN {
        return Err(format!(
            "setunion: the result would have more than {MAX_COLLECTION_LEN} elements"
        ));
    }
    dedup("setunion", &all).map(Value::Array)
}

pub(super) fn setproduct(args: &[Value]) -> Result<Value, String> {
    if args.len() < 2 {
        return Err(format!(
            "setproduct: at least two arguments are required, got {}",
            args.len()
        ));
    }
    let sets = set_args("setproduct", args)?;
    let mut total: usize = 1;
    for s in &sets {
        total = total
            .checked_mul(s.len())
            .filter(|t| *t <= MAX_COLLECTION_LEN)
            .ok_or_else(|| {
                format!("setproduct: the result would have more than {MAX_COLLECTION_LEN} elements")
            })?;
    }
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for set in sets {
        let mut next = Vec::with_capacity(out.len().saturating_mul(set.len()));
        for prefix in &out {
            for item in set {
                let mut row = prefix.clone();
                row.push(item.clone());
                next.push(row);
            }
        }
        out = next;
    }
    Ok(Value::Array(out.into_iter().map(Value::Array).collect()))
}

pub(super) fn slice(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("slice", args, 0)?;
    let start = int_arg("slice", args, 1)?;
    let end = int_arg("slice", args, 2)?;
    let len = list.len();
    if start < 0 {
        return Err(format!("slice: start index {start} must not be negative"));
    }
    let (Ok(s), Ok(e)) = (usize::try_from(start), usize::try_from(end)) else {
        return Err(format!("slice: end index {end} must not be negative"));
    };
    if e > len {
        return Err(format!(
            "slice: end index {e} out of range for list of {len} elements"
        ));
    }
    if s > e {
        return Err(format!(
            "slice: start index {s} must not be greater than end index {e}"
        ));
    }
    Ok(Value::Array(list.get(s..e).unwrap_or_default().to_vec()))
}

/// `sort(list)`: lexicographic sort of strings; numbers and bools are converted to strings.
pub(super) fn sort(args: &[Value]) -> Result<Value, String> {
    let list = list_arg("sort", args, 0)?;
    let mut items = list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            scalar_to_string(v)
                .ok_or_else(|| format!("sort: element {i} must be a string, got {}", type_name(v)))
        })
        .collect::<Result<Vec<String>, String>>()?;
    items.sort();
    Ok(Value::Array(items.into_iter().map(Value::String).collect()))
}

pub(super) fn zipmap(args: &[Value]) -> Result<Value, String> {
    let keys = list_arg("zipmap", args, 0)?;
    let vals = list_arg("zipmap", args, 1)?;
    if keys.len() != vals.len() {
        return Err(format!(
            "zipmap: the number of keys ({}) does not match the number of values ({})",
            keys.len(),
            vals.len()
        ));
    }
    let mut out = Map::new();
    for (i, (k, v)) in keys.iter().zip(vals).enumerate() {
        let k = scalar_to_string(k)
            .ok_or_else(|| format!("zipmap: key {i} must be a string, got {}", type_name(k)))?;
        out.insert(k, v.clone());
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};

    #[test]
    fn chunklist_cases() {
        assert_eq!(
            ok(r#"chunklist(["a", "b", "c"], 2)"#),
            v(r#"[["a", "b"], ["c"]]"#)
        );
        assert_eq!(ok("chunklist([1, 2], 0)"), v("[[1, 2]]"));
        assert_eq!(ok("chunklist([], 3)"), v("[]"));
        err(
            "chunklist([1], -1)",
            "chunklist: the chunk size must not be negative",
        );
        err(
            "chunklist(1, 1)",
            "chunklist: argument 1 must be a list, got number",
        );
    }

    #[test]
    fn coalesce_cases() {
        assert_eq!(ok(r#"coalesce("", "b", "c")"#), v(r#""b""#));
        assert_eq!(ok("coalesce(null, 1, 2)"), v("1"));
        assert_eq!(ok(r#"coalesce(1, "x")"#), v(r#""1""#));
        assert_eq!(ok(r#"coalescelist([], ["a"], ["b"])"#), v(r#"["a"]"#));
        err(
            r#"coalesce("", null)"#,
            "coalesce: no non-null, non-empty-string arguments",
        );
        err(
            "coalescelist([], [])",
            "coalescelist: no non-null, non-empty list arguments",
        );
        err("coalescelist(1)", "coalescelist: argument 1 must be a list");
    }

    #[test]
    fn compact_concat_contains_distinct() {
        assert_eq!(ok(r#"compact(["a", "", null, "b", 1])"#), v(r#"["a", "b", "1"]"#));
        assert_eq!(ok(r#"concat(["a"], [], ["b", 1])"#), v(r#"["a", "b", 1]"#));
        assert_eq!(ok("concat()"), v("[]"));
        assert_eq!(ok(r#"contains(["a", "b"], "b")"#), v("true"));
        assert_eq!(ok(r#"contains([{a = 1}], {a = 1})"#), v("true"));
        assert_eq!(ok(r#"contains(["a"], "c")"#), v("false"));
        assert_eq!(ok(r#"contains(["1", "2"], 2)"#), v("true"));
        assert_eq!(ok(r#"index([1, 2], "2")"#), v("1"));
        assert_eq!(
            ok(r#"distinct(["a", "b", "a", "c", "b"])"#),
            v(r#"["a", "b", "c"]"#)
        );
        err(
            r#"compact([["a"]])"#,
            "compact: element 0 must be a string, got list",
        );
        err(
            r#"concat(["a"], "b")"#,
            "concat: argument 2 must be a list, got string",
        );
    }

    #[test]
    fn element_index_slice() {
        assert_eq!(ok(r#"element(["a", "b", "c"], 1)"#), v(r#""b""#));
        assert_eq!(ok(r#"element(["a", "b", "c"], 5)"#), v(r#""c""#));
        assert_eq!(ok(r#"index(["a", "b", "c"], "b")"#), v("1"));
        assert_eq!(ok(r#"slice(["a", "b", "c", "d"], 1, 3)"#), v(r#"["b", "c"]"#));
        assert_eq!(ok("slice([1], 1, 1)"), v("[]"));
        err("element([], 0)", "element: cannot use element on an empty list");
        err("element([1], -1)", "element: index -1 must not be negative");
        err(r#"index(["a"], "z")"#, "index: item \"z\" not found");
        err(
            "slice([1, 2, 3], 1, 5)",
            "slice: end index 5 out of range for list of 3 elements",
        );
        err(
            "slice([1, 2, 3], 2, 1)",
            "slice: start index 2 must not be greater than end index 1",
        );
        err(
            "slice([1, 2, 3], -1, 1)",
            "slice: start index -1 must not be negative",
        );
    }

    #[test]
    fn flatten_cases() {
        assert_eq!(
            ok(r#"flatten([["a", "b"], [], ["c", ["d"]]])"#),
            v(r#"["a", "b", "c", "d"]"#)
        );
        err(r#"flatten("a")"#, "flatten: argument 1 must be a list");
    }

    #[test]
    fn maps() {
        assert_eq!(ok("keys({b = 1, a = 2})"), v(r#"["a", "b"]"#));
        assert_eq!(ok("values({b = 1, a = 2})"), v("[2, 1]"));
        assert_eq!(ok(r#"lookup({a = "x"}, "a")"#), v(r#""x""#));
        assert_eq!(ok(r#"lookup({a = "x"}, "b", "dflt")"#), v(r#""dflt""#));
        assert_eq!(
            ok("merge({a = 1, b = 2}, null, {b = 3, c = 4})"),
            v("{a = 1, b = 3, c = 4}")
        );
        assert_eq!(ok(r#"zipmap(["a", "b"], [1, 2])"#), v("{a = 1, b = 2}"));
        err(
            r#"lookup({a = "x"}, "b")"#,
            "lookup: key \"b\" not found and no default given",
        );
        err(
            r#"lookup({}, "a", 1, 2)"#,
            "lookup: expected 2 to 3 arguments, got 4",
        );
        err("keys([1])", "keys: argument 1 must be a map or object, got list");
        err(
            "merge({}, [1])",
            "merge: argument 2 must be a map or object, got list",
        );
        err(
            r#"zipmap(["a"], [1, 2])"#,
            "zipmap: the number of keys (1) does not match the number of values (2)",
        );
    }

    #[test]
    fn length_reverse_sort() {
        assert_eq!(ok("length([1, 2, 3])"), v("3"));
        assert_eq!(ok("length({a = 1})"), v("1"));
        assert_eq!(ok(r#"length("héllo")"#), v("5"));
        assert_eq!(ok("reverse([1, 2, 3])"), v("[3, 2, 1]"));
        assert_eq!(ok(r#"sort(["e", "d", "a", "x"])"#), v(r#"["a", "d", "e", "x"]"#));
        assert_eq!(ok("sort([10, 9])"), v(r#"["10", "9"]"#));
        err(
            "length(null)",
            "length: argument must be a list, map or string, got null",
        );
        err("length(5)", "got number");
        err("sort([null])", "sort: element 0 must be a string, got null");
    }

    #[test]
    fn sets() {
        assert_eq!(
            ok(r#"setintersection(["a", "b"], ["b", "c"], ["b", "d"])"#),
            v(r#"["b"]"#)
        );
        assert_eq!(
            ok(r#"setunion(["a", "b"], ["b", "c"], ["d"])"#),
            v(r#"["a", "b", "c", "d"]"#)
        );
        assert_eq!(
            ok(r#"setproduct(["development", "staging"], ["app1", "app2"])"#),
            v(
                r#"[["development", "app1"], ["development", "app2"], ["staging", "app1"], ["staging", "app2"]]"#
            )
        );
        assert_eq!(ok(r#"setproduct(["a"], [])"#), v("[]"));
        err(
            r#"setproduct(["a"])"#,
            "setproduct: expected at least 2 arguments, got 1",
        );
        err(r#"setunion("a")"#, "setunion: argument 1 must be a list");
        err(
            "setproduct(range(1000), range(1000), range(10))",
            "more than 1000000 elements",
        );
    }
}
