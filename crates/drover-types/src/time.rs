//! Time encodings used by Nomad's JSON.
//!
//! Nomad encodes time three ways (see `reference/http-api.md` §1.2):
//!
//! | Go type            | JSON                                   | here                       |
//! |--------------------|----------------------------------------|----------------------------|
//! | `time.Time`        | RFC 3339 with nanoseconds, zero = null | [`Timestamp`] in an Option |
//! | `int64` nanos      | integer Unix nanoseconds               | plain `i64`                |
//! | `int64` seconds    | integer Unix seconds (`StatusUpdatedAt`) | plain `i64`              |
//! | `time.Duration`    | integer nanoseconds                    | plain `i64` ([`Nanos`])    |
//!
//! [`Timestamp`] is a Unix-nanosecond instant that serialises as RFC 3339 (`Z`, nanoseconds when
//! non-zero) and accepts any RFC 3339 offset when decoding. The civil-date arithmetic is the
//! well-known days-from-civil algorithm; no time-zone database is involved.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in nanoseconds, as Nomad's API encodes `time.Duration`.
pub type Nanos = i64;

/// One second in nanoseconds.
pub const SECOND: Nanos = 1_000_000_000;
/// One minute in nanoseconds.
pub const MINUTE: Nanos = 60 * SECOND;
/// One hour in nanoseconds.
pub const HOUR: Nanos = 60 * MINUTE;

/// An instant as Unix nanoseconds that encodes as an RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Formats as RFC 3339 in UTC with nanoseconds trimmed like Go's `RFC3339Nano`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(SECOND);
        let nanos = self.0.rem_euclid(SECOND);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        );
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// Parses RFC 3339 (`2024-05-01T10:11:12.123Z`, `…+02:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
        let bad = || format!("invalid RFC 3339 time {s:?}");
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
            s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
            return Err(bad());
        }
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let mut i = 19;
        let mut nanos = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = s.get(start..i).ok_or_else(bad)?;
            if digits.is_empty() {
                return Err(bad());
            }
            let mut padded = digits.chars().take(9).collect::<String>();
            while padded.len() < 9 {
                padded.push('0');
            }
            nanos = padded.parse().map_err(|_| bad())?;
        }
        let offset = match s.get(i..) {
            Some("Z") | Some("z") => 0,
            Some(rest) if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        secs.checked_mul(SECOND)
            .and_then(|v| v.checked_add(nanos))
            .map(Timestamp)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for `Option<Timestamp>` fields: Go's zero time (`0001-01-01T00:00:00Z`) reads as
/// `None`, and `None` is written as `null`.
pub mod opt_time {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Go's zero `time.Time` as Unix nanoseconds would overflow i64; we treat year 1 as "unset".
    const GO_ZERO_PREFIX: &str = "0001-01-01T00:00:00";

    /// Serialises `None` as `null`.
    pub fn serialize<S: Serializer>(v: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Accepts `null`, Go's zero time, or RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) if s.is_empty() || s.starts_with(GO_ZERO_PREFIX) => Ok(None),
            Some(s) => Timestamp::parse_rfc3339(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats a duration the way Go's `time.Duration.String()` does (`1h30m0s`, `500ms`, `0s`).
pub fn format_duration(n: Nanos) -> String {
    if n == 0 {
        return "0s".into();
    }
    let neg = n < 0;
    let u = n.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000 {
        out.push_str(&format!("{u}ns"));
    } else if u < 1_000_000 {
        out.push_str(&trim_frac(u, 1_000, "µs"));
    } else if u < 1_000_000_000 {
        out.push_str(&trim_frac(u, 1_000_000, "ms"));
    } else {
        let total_s = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let h = total_s / 3600;
        let m = (total_s % 3600) / 60;
        let s = total_s % 60;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if frac == 0 {
            out.push_str(&format!("{s}s"));
        } else {
            let f = format!("{frac:09}");
            out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
        }
    }
    out
}

fn trim_frac(u: u64, unit: u64, suffix: &str) -> String {
    let whole = u / unit;
    let frac = u % unit;
    if frac == 0 {
        format!("{whole}{suffix}")
    } else {
        let width = unit.to_string().len() - 1;
        let f = format!("{frac:0width$}");
        format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
    }
}

/// Parses a Go duration string (`"30s"`, `"1h30m"`, `"1.5h"`, `"500ms"`, `"-5s"`, `"1µs"`).
pub fn parse_duration(s: &str) -> Result<Nanos, String> {
    let bad = |why: &str| format!("invalid duration {s:?}: {why}");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("empty"));
    }
    let (neg, mut rest) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad("missing number"));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("missing unit (use ns, us, ms, s, m or h)"))?;
        if num_end == 0 {
            return Err(bad("expected a number"));
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| bad("bad number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        total += value * mult;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(bad("out of range"));
    }
    let v = total.round() as i64;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_roundtrip() {
        let t = Timestamp::parse_rfc3339("2024-05-01T10:11:12.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T10:11:12.123456789Z");
        let t = Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap();
        assert_eq!(t.0, 0);
        let t = Timestamp::parse_rfc3339("2024-02-29T01:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-02-29T00:00:00Z");
        assert!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_rfc3339("garbage").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30 * SECOND);
        assert_eq!(parse_duration("1h30m").unwrap(), 90 * MINUTE);
        assert_eq!(parse_duration("1.5h").unwrap(), 90 * MINUTE);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("-5s").unwrap(), -5 * SECOND);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(90 * MINUTE), "1h30m0s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(0), "0s");
    }
}
