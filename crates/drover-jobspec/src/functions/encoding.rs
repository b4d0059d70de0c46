//! Encoding, hashing and identifier functions: `base64decode`, `base64encode`, `csvdecode`,
//! `jsondecode`, `jsonencode`, `md5`, `sha1`, `sha256`, `sha512`, `uuidv4`, `uuidv5`, and the
//! unsupported `bcrypt` and `rsadecrypt`.

use super::{MAX_DEPTH, arg, string_arg};
use base64::Engine as _;
use hcl::{Map, Value};
use sha2::Digest as _;

pub(super) fn base64encode(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("base64encode", args, 0)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
    ))
}

pub(super) fn base64decode(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("base64decode", args, 0)?;
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| format!("base64decode: the string is not valid base64: {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "base64decode: the decoded data is not valid UTF-8".to_string())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(super) fn md5(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("md5", args, 0)?;
    Ok(Value::String(hex(&::md5::Md5::digest(s.as_bytes()))))
}

pub(super) fn sha1(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("sha1", args, 0)?;
    Ok(Value::String(hex(&::sha1::Sha1::digest(s.as_bytes()))))
}

pub(super) fn sha256(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("sha256", args, 0)?;
    Ok(Value::String(hex(&sha2::Sha256::digest(s.as_bytes()))))
}

pub(super) fn sha512(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("sha512", args, 0)?;
    Ok(Value::String(hex(&sha2::Sha512::digest(s.as_bytes()))))
}

pub(super) fn uuidv4(args: &[Value]) -> Result<Value, String> {
    if !args.is_empty() {
        return Err(format!(
            "uuidv4: expected exactly 0 arguments, got {}",
            args.len()
        ));
    }
    Ok(Value::String(uuid::Uuid::new_v4().to_string()))
}

pub(super) fn uuidv5(args: &[Value]) -> Result<Value, String> {
    let ns = string_arg("uuidv5", args, 0)?;
    let name = string_arg("uuidv5", args, 1)?;
    let namespace = match ns.as_str() {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => uuid::Uuid::parse_str(other).map_err(|_| {
            format!("uuidv5: namespace must be \"dns\", \"url\", \"oid\", \"x500\" or a UUID, got {other:?}")
        })?,
    };
    Ok(Value::String(
        uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string(),
    ))
}

/// `bcrypt` needs a password-hashing dependency that Drover does not carry.
pub(super) fn bcrypt(_args: &[Value]) -> Result<Value, String> {
    Err("bcrypt: bcrypt is not supported by drover".to_string())
}

/// `rsadecrypt` needs an RSA implementation that Drover does not carry.
pub(super) fn rsadecrypt(_args: &[Value]) -> Result<Value, String> {
    Err("rsadecrypt: rsadecrypt is not supported by drover".to_string())
}

/// Converts an HCL value into JSON.
pub(crate) fn value_to_json(f: &str, v: &Value, depth: usize) -> Result<serde_json::Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{f}: value is nested too deeply"));
    }
    Ok(match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| value_to_json(f, item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(obj) => {
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                if let Some(item) = obj.get(k) {
                    out.insert(k.clone(), value_to_json(f, item, depth + 1)?);
                }
            }
            serde_json::Value::Object(out)
        }
    })
}

/// Converts JSON into an HCL value.
pub(crate) fn json_to_value(j: &serde_json::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("jsondecode: value is nested too deeply".to_string());
    }
    Ok(match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| json_to_value(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(obj) => {
            let mut out = Map::new();
            for (k, item) in obj {
                out.insert(k.clone(), json_to_value(item, depth + 1)?);
            }
            Value::Object(out)
        }
    })
}

pub(super) fn jsondecode(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("jsondecode", args, 0)?;
    let j: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| format!("jsondecode: invalid JSON: {e}"))?;
    json_to_value(&j, 0)
}

/// `jsonencode(value)`: compact JSON with object keys sorted and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped, like Go's `encoding/json`.
pub(super) fn jsonencode(args: &[Value]) -> Result<Value, String> {
    let v = arg("jsonencode", args, 0)?;
    let j = value_to_json("jsonencode", v, 0)?;
    let text = serde_json::to_string(&j).map_err(|e| format!("jsonencode: {e}"))?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    Ok(Value::String(out))
}

/// Parses RFC 4180 CSV like Go's `encoding/csv` (blank lines are skipped, `\r\n` is accepted).
fn parse_csv(s: &str) -> Result<Vec<Vec<String>>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut records = Vec::new();
    let mut i = 0;
    let mut line = 1usize;
    while i < chars.len() {
        // Skip blank lines.
        if chars.get(i) == Some(&'\n') {
            i += 1;
            line += 1;
            continue;
        }
        if chars.get(i) == Some(&'\r') && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            line += 1;
            continue;
        }
        let record_line = line;
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            if chars.get(i) == Some(&'"') {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "csvdecode: line {record_line}: unterminated quoted field"
                            ));
                        }
                        Some('"') if chars.get(i + 1) == Some(&'"') => {
                            field.push('"');
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                            i += 1;
                        }
                    }
                }
                let crlf = chars.get(i) == Some(&'\r') && chars.get(i + 1) == Some(&'\n');
                if !crlf && !matches!(chars.get(i), None | Some(',' | '\n')) {
                    return Err(format!(
                        "csvdecode: line {line}: extraneous or missing \" in quoted field"
                    ));
                }
            } else {
                while let Some(&c) = chars.get(i) {
                    if c == ',' || c == '\n' || (c == '\r' && chars.get(i + 1) == Some(&'\n')) {
                        break;
                    }
                    if c == '"' {
                        return Err(format!("csvdecode: line {line}: bare \" in non-quoted field"));
                    }
                    field.push(c);
                    i += 1;
                }
            }
            record.push(field);
            match chars.get(i) {
                Some(',') => i += 1,
                Some('\n') => {
                    i += 1;
                    line += 1;
                    break;
                }
                Some('\r') => {
                    i += 2;
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        records.push(record);
    }
    Ok(records)
}

/// `csvdecode(string)`: the first line is the header; every other line becomes an object.
pub(super) fn csvdecode(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("csvdecode", args, 0)?;
    let records = parse_csv(&s)?;
    let Some((header, rows)) = records.split_first() else {
        return Err("csvdecode: missing header line".to_string());
    };
    let mut seen = std::collections::HashSet::new();
    for name in header {
        if !seen.insert(name) {
            return Err(format!("csvdecode: duplicate column name {name:?}"));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.len() != header.len() {
            return Err(format!(
                "csvdecode: record {} has {} fields but the header has {}",
                i + 1,
                row.len(),
                header.len()
            ));
        }
        let obj: Map<String, Value> = header
            .iter()
            .zip(row)
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        out.push(Value::Object(obj));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};

    #[test]
    fn base64() {
        assert_eq!(ok(r#"base64encode("Hello World")"#), v(r#""SGVsbG8gV29ybGQ=""#));
        assert_eq!(ok(r#"base64decode("SGVsbG8gV29ybGQ=")"#), v(r#""Hello World""#));
        err(
            r#"base64decode("!!!")"#,
            "base64decode: the string is not valid base64",
        );
        err(
            r#"base64decode("/w==")"#,
            "base64decode: the decoded data is not valid UTF-8",
        );
    }

    #[test]
    fn hashes() {
        assert_eq!(
            ok(r#"md5("hello world")"#),
            v(r#""5eb63bbbe01eeed093cb22bb8f5acdc3""#)
        );
        assert_eq!(
            ok(r#"sha1("hello world")"#),
            v(r#""2aae6c35c94fcfb415dbe95f408b9ce91ee846ed""#)
        );
        assert_eq!(
            ok(r#"sha256("hello world")"#),
            v(r#""b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9""#)
        );
        assert_eq!(
            ok(r#"sha512("hello world")"#),
            v(
                r#""309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f""#
            )
        );
        err("sha256([])", "sha256: argument 1 must be a string, got list");
    }

    #[test]
    fn uuids() {
        let u = ok("uuidv4()");
        let s = u.as_str().unwrap_or_default();
        assert_eq!(s.len(), 36);
        assert_eq!(s.chars().nth(14), Some('4'));
        assert_eq!(
            ok(r#"uuidv5("dns", "www.terraform.io")"#),
            v(r#""a5008fae-b28c-5ba5-96cd-82b4c53552d6""#)
        );
        assert_eq!(
            ok(r#"uuidv5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.terraform.io")"#),
            v(r#""a5008fae-b28c-5ba5-96cd-82b4c53552d6""#)
        );
        err(r#"uuidv5("nope", "x")"#, "uuidv5: namespace must be");
        err("uuidv4(1)", "uuidv4: expected exactly 0 arguments, got 1");
    }

    #[test]
    fn unsupported_crypto() {
        err(r#"bcrypt("secret")"#, "bcrypt is not supported by drover");
        err(r#"rsadecrypt("a", "b")"#, "rsadecrypt is not supported by drover");
    }

    #[test]
    fn json() {
        assert_eq!(
            ok(r#"jsondecode("{\"a\": [1, 2.5, true, null, \"x\"]}")"#),
            v(r#"{a = [1, 2.5, true, null, "x"]}"#)
        );
        assert_eq!(
            ok(r#"jsonencode({b = 1, a = ["x", null, true]})"#),
            v(r#""{\"a\":[\"x\",null,true],\"b\":1}""#)
        );
        assert_eq!(ok(r#"jsonencode("<&>")"#), v(r#""\"\\u003c\\u0026\\u003e\"""#));
        assert_eq!(ok("jsonencode(1.5)"), v(r#""1.5""#));
        err(r#"jsondecode("{")"#, "jsondecode: invalid JSON");
    }

    #[test]
    fn csv() {
        assert_eq!(
            ok(r#"csvdecode("a,b,c\n1,2,3\n4,5,6")"#),
            v(r#"[{a = "1", b = "2", c = "3"}, {a = "4", b = "5", c = "6"}]"#)
        );
        assert_eq!(
            ok(r#"csvdecode("name,note\r\n\"Doe, J\",\"said \"\"hi\"\"\"\r\n\r\n")"#),
            v(r#"[{name = "Doe, J", note = "said \"hi\""}]"#)
        );
        assert_eq!(ok(r#"csvdecode("a,b\n")"#), v("[]"));
        err(r#"csvdecode("")"#, "csvdecode: missing header line");
        err(
            r#"csvdecode("a,b\n1")"#,
            "csvdecode: record 1 has 1 fields but the header has 2",
        );
        err(r#"csvdecode("a\n\"x")"#, "unterminated quoted field");
        err(r#"csvdecode("a\nx\"y")"#, "bare \" in non-quoted field");
        err(r#"csvdecode("a,a\n1,2")"#, "duplicate column name");
    }
}
