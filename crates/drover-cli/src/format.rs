//! Output primitives shared by every command (`reference/client-drivers-jobspec.md` §8.1).
//!
//! All pure: values in, text out, no clock (callers pass `now` in Unix nanoseconds).
//!
//! | function | output |
//! |---|---|
//! | [`kv`] | `Key   = value` blocks, keys padded, empty values `<none>` |
//! | [`table`] | two-space-separated columns, each padded to its widest cell, empty cells `<none>` |
//! | [`short_id`] | the first 8 characters of an ID unless verbose |
//! | [`time`] | `2006-01-02T15:04:05Z` (UTC; zero → empty) |
//! | [`ago`] | `1m30s ago`, `2h5m ago`, `3d4h from now` (largest two units) |
//! | [`ibytes`] | `256 MiB`, `7.7 GiB` |
//! | [`quote`] | Go's `%q` |

use drover_types::time::{SECOND, Timestamp};

/// A `Key = Value` block. Keys are padded to the longest key; an empty value prints `<none>`.
pub fn kv<K: AsRef<str>, V: AsRef<str>>(rows: &[(K, V)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.as_ref().chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, (k, v)) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let k = k.as_ref();
        let v = v.as_ref();
        let v = if v.is_empty() { "<none>" } else { v };
        let pad = width - k.chars().count();
        out.push_str(k);
        out.push_str(&" ".repeat(pad));
        out.push_str(" = ");
        out.push_str(v);
    }
    out
}

/// A table: the first row is the header. Columns are separated by two spaces and padded to
/// their widest cell; trailing blanks are trimmed; empty cells print `<none>`.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |r: &Vec<String>, c: usize| -> String {
        match r.get(c) {
            Some(s) if !s.is_empty() => s.clone(),
            Some(_) => "<none>".to_string(),
            None => String::new(),
        }
    };
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (c, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(cell(r, c).chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut line = String::new();
        for (c, w) in widths.iter().enumerate() {
            let s = cell(r, c);
            line.push_str(&s);
            if c + 1 < cols {
                line.push_str(&" ".repeat(w - s.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
    }
    out
}

/// Builds a table row from anything printable.
#[macro_export]
macro_rules! row {
    ($($x:expr),* $(,)?) => { vec![$($x.to_string()),*] };
}

/// The first 8 characters of an ID, or all of it with `verbose`.
pub fn short_id(id: &str, verbose: bool) -> String {
    if verbose {
        id.to_string()
    } else {
        id.chars().take(8).collect()
    }
}

/// Unix nanoseconds as `2006-01-02T15:04:05Z` (UTC, whole seconds); `0` prints as empty.
pub fn time(unix_nanos: i64) -> String {
    if unix_nanos == 0 {
        return String::new();
    }
    Timestamp(unix_nanos - unix_nanos.rem_euclid(SECOND)).to_rfc3339()
}

/// An optional timestamp as [`time`].
pub fn opt_time(t: Option<Timestamp>) -> String {
    t.map(|t| time(t.0)).unwrap_or_default()
}

/// How long ago (or how far ahead) `then` is from `now`, in the largest two units of
/// years, months (30 days), days, hours, minutes and seconds: `1m30s ago`, `3d4h from now`,
/// `0s ago`. A zero `then` prints as empty.
pub fn ago(then: i64, now: i64) -> String {
    if then == 0 {
        return String::new();
    }
    let round = |n: i64| (n + SECOND / 2).div_euclid(SECOND);
    let (secs, suffix) = {
        let d = round(now) - round(then);
        if d >= 0 { (d, "ago") } else { (-d, "from now") }
    };
    format!("{} {suffix}", two_units(secs))
}

/// The largest two non-zero units of a number of seconds (`1h5m`, `45s`, `0s`).
pub fn two_units(secs: i64) -> String {
    const UNITS: [(&str, i64); 6] = [
        ("y", 365 * 86_400),
        ("mo", 30 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let mut rest = secs.max(0);
    let mut parts = Vec::new();
    for (i, (name, size)) in UNITS.iter().enumerate() {
        let n = rest / size;
        rest %= size;
        if n > 0 && parts.is_empty() {
            parts.push(format!("{n}{name}"));
            // The next unit, if it is not zero.
            if let Some((next, next_size)) = UNITS.get(i + 1) {
                let m = rest / next_size;
                if m > 0 {
                    parts.push(format!("{m}{next}"));
                }
            }
            break;
        }
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.concat()
    }
}

/// Bytes in binary units like `humanize.IBytes`: one decimal below 10 (`7.7 GiB`), none above
/// (`256 MiB`).
pub fn ibytes(bytes: u64) -> String {
    const SUFFIXES: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let e = ((bytes as f64).ln() / 1024f64.ln()).floor() as usize;
    let e = e.min(SUFFIXES.len() - 1);
    let val = bytes as f64 / 1024f64.powi(e as i32);
    // Round to one decimal first so 9.96 shows as "10", like humanize does.
    let val = (val * 10.0).round() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", SUFFIXES[e])
    } else {
        format!("{val:.0} {}", SUFFIXES[e])
    }
}

/// Mebibytes as [`ibytes`].
pub fn mib(mb: i64) -> String {
    ibytes((mb.max(0) as u64) * 1024 * 1024)
}

/// A string quoted like Go's `%q`: `"`, `\` and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prefixes every line of `text` with `prefix` (empty lines stay empty).
pub fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` when `n == 1`, else `s` + "s".
pub fn plural(n: i64, s: &str) -> String {
    if n == 1 { s.to_string() } else { format!("{s}s") }
}

/// JSON indented with four spaces, as Nomad's CLI prints it.
pub fn json_pretty<T: serde::Serialize>(v: &T) -> Result<String, serde_json::Error> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_pads_keys_and_fills_empty_values() {
        assert_eq!(
            kv(&[("ID", "example"), ("Submit Date", ""), ("Type", "service")]),
            "ID          = example\nSubmit Date = <none>\nType        = service"
        );
    }

    #[test]
    fn table_pads_columns_but_not_the_last() {
        let t = table(&[
            row!["ID", "Type", "Priority", "Status"],
            row!["example", "service", 50, "running"],
            row!["b", "", 7, "dead"],
        ]);
        assert_eq!(
            t,
            "ID       Type     Priority  Status\n\
             example  service  50        running\n\
             b        <none>   7         dead"
        );
    }

    #[test]
    fn times() {
        let t = Timestamp::parse_rfc3339("2025-01-01T10:00:00.75Z").unwrap().0;
        assert_eq!(time(t), "2025-01-01T10:00:00Z");
        assert_eq!(time(0), "");
        let now = t + 90 * SECOND;
        assert_eq!(ago(t, now), "1m30s ago");
        assert_eq!(ago(t, t), "0s ago");
        assert_eq!(ago(now + (3 * 86_400 + 4 * 3_600) * SECOND, now), "3d4h from now");
        assert_eq!(ago(t, t + (2 * 3_600 + 5 * 60 + 7) * SECOND), "2h5m ago");
        assert_eq!(ago(t, t + 2 * 3_600 * SECOND), "2h ago");
        assert_eq!(ago(0, now), "");
    }

    #[test]
    fn bytes_and_quotes() {
        assert_eq!(mib(256), "256 MiB");
        assert_eq!(ibytes(7_900 * 1024 * 1024), "7.7 GiB");
        assert_eq!(mib(300), "300 MiB");
        assert_eq!(ibytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(ibytes(50 * 1024 * 1024 * 1024), "50 GiB");
        assert_eq!(ibytes(0), "0 B");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(
            short_id("0f3a1b2c-1111-2222-3333-444455556666", false),
            "0f3a1b2c"
        );
        assert_eq!(short_id("0f3a1b2c-1111", true), "0f3a1b2c-1111");
    }
}
