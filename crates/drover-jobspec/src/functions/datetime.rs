//! Date and time functions: `formatdate` and `timeadd`, over RFC 3339 timestamps.

use super::string_arg;
use hcl::Value;

/// A point in time with the UTC offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timestamp {
    /// Nanoseconds since the Unix epoch (UTC).
    unix_nanos: i128,
    /// Offset of the written local time from UTC, in seconds.
    offset: i32,
    /// Whether the timestamp was written with `Z`.
    utc_z: bool,
}

/// Local civil time fields.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    part.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Parses an RFC 3339 timestamp such as `2017-11-22T00:00:00Z` or `2017-11-22T01:00:00+01:00`.
fn parse_rfc3339(f: &str, s: &str) -> Result<Timestamp, String> {
    let invalid = || format!("{f}: {s:?} is not a valid RFC 3339 timestamp (like 2006-01-02T15:04:05Z)");
    let b = s.as_bytes();
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return Err(invalid());
    }
    let year = digits(b, 0..4).ok_or_else(invalid)?;
    let month = digits(b, 5..7).ok_or_else(invalid)?;
    let day = digits(b, 8..10).ok_or_else(invalid)?;
    let hour = digits(b, 11..13).ok_or_else(invalid)?;
    let minute = digits(b, 14..16).ok_or_else(invalid)?;
    let second = digits(b, 17..19).ok_or_else(invalid)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!(
            "{f}: {s:?} is not a valid RFC 3339 timestamp: a field is out of range"
        ));
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let frac = b.get(start..i).unwrap_or_default();
        let mut scale: i128 = 100_000_000;
        for d in frac.iter().take(9) {
            nanos += i128::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    let (offset, utc_z) = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => (0i32, true),
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let oh = digits(b, i + 1..i + 3).ok_or_else(invalid)?;
            let om = digits(b, i + 4..i + 6).ok_or_else(invalid)?;
            if oh > 23 || om > 59 {
                return Err(invalid());
            }
            let secs = i32::try_from(oh * 3600 + om * 60).unwrap_or(0);
            (if *sign == b'-' { -secs } else { secs }, false)
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month, day);
    let local_secs =
        i128::from(days) * 86_400 + i128::from(hour) * 3600 + i128::from(minute) * 60 + i128::from(second);
    let unix_secs = local_secs - i128::from(offset);
    Ok(Timestamp {
        unix_nanos: unix_secs * NANOS_PER_SEC + nanos,
        offset,
        utc_z,
    })
}

fn civil(ts: &Timestamp) -> Civil {
    let local_secs = ts.unix_nanos.div_euclid(NANOS_PER_SEC) + i128::from(ts.offset);
    let days = i64::try_from(local_secs.div_euclid(86_400)).unwrap_or(0);
    let sod = u32::try_from(local_secs.rem_euclid(86_400)).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: sod % 3600 / 60,
        second: sod % 60,
        weekday: u32::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
    }
}

fn offset_text(offset: i32, colon: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (h, m) = (abs / 3600, abs % 3600 / 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

fn format_rfc3339(ts: &Timestamp) -> String {
    let c = civil(ts);
    let zone = if ts.utc_z && ts.offset == 0 {
        "Z".to_string()
    } else {
        offset_text(ts.offset, true)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `formatdate(spec, timestamp)`.
///
/// Supported sequences: `YYYY YY MMMM MMM MM M DD D EEEE EEE hh h HH H AA aa mm m ss s ZZZZZ
/// ZZZZ ZZZ Z`, literal text in single quotes (`''` for a quote). Approximation: `ZZZ` prints
/// `UTC` for a zero offset and `+hhmm` otherwise, since timestamps carry no zone names.
pub(super) fn formatdate(args: &[Value]) -> Result<Value, String> {
    let spec = string_arg("formatdate", args, 0)?;
    let ts_text = string_arg("formatdate", args, 1)?;
    let ts = parse_rfc3339("formatdate", &ts_text)?;
    let c = civil(&ts);
    let chars: Vec<char> = spec.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&ch) = chars.get(i) {
        if ch == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("formatdate: unterminated literal (missing closing ')".to_string()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        out.push(other);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            out.push(ch);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&ch) {
            n += 1;
        }
        i += n;
        let hour12 = if c.hour.is_multiple_of(12) {
            12
        } else {
            c.hour % 12
        };
        let month_name = MONTHS
            .get(c.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("");
        let weekday_name = WEEKDAYS.get(c.weekday as usize).copied().unwrap_or("");
        let piece = match (ch, n) {
            ('Y', 4) => format!("{:04}", c.year),
            ('Y', 2) => format!("{:02}", c.year.rem_euclid(100)),
            ('M', 4) => month_name.to_string(),
            ('M', 3) => month_name.chars().take(3).collect(),
            ('M', 2) => format!("{:02}", c.month),
            ('M', 1) => c.month.to_string(),
            ('D', 2) => format!("{:02}", c.day),
            ('D', 1) => c.day.to_string(),
            ('E', 4) => weekday_name.to_string(),
            ('E', 3) => weekday_name.chars().take(3).collect(),
            ('h', 2) => format!("{:02}", c.hour),
            ('h', 1) => c.hour.to_string(),
            ('H', 2) => format!("{hour12:02}"),
            ('H', 1) => hour12.to_string(),
            ('A', 2) => (if c.hour < 12 { "AM" } else { "PM" }).to_string(),
            ('a', 2) => (if c.hour < 12 { "am" } else { "pm" }).to_string(),
            ('m', 2) => format!("{:02}", c.minute),
            ('m', 1) => c.minute.to_string(),
            ('s', 2) => format!("{:02}", c.second),
            ('s', 1) => c.second.to_string(),
            ('Z', 5) => offset_text(ts.offset, true),
            ('Z', 4) => offset_text(ts.offset, false),
            ('Z', 3) => {
                if ts.offset == 0 {
                    "UTC".to_string()
                } else {
                    offset_text(ts.offset, false)
                }
            }
            ('Z', 1) => {
                if ts.offset == 0 {
                    "Z".to_string()
                } else {
                    offset_text(ts.offset, true)
                }
            }
            _ => {
                let seq: String = std::iter::repeat_n(ch, n).collect();
                return Err(format!(
                    "formatdate: invalid date format sequence {seq:?}; use quotes for literal text, like 'T'"
                ));
            }
        };
        out.push_str(&piece);
    }
    Ok(Value::String(out))
}

/// Parses a Go duration string (`1h30m`, `-10s`, `1.5h`, `300ms`, `2us`) into nanoseconds.
fn parse_duration(f: &str, s: &str) -> Result<i128, String> {
    let invalid = || format!("{f}: invalid duration {s:?} (expected something like \"1h30m\" or \"-10s\")");
    let mut rest = s;
    let negative = if let Some(r) = rest.strip_prefix('-') {
        rest = r;
        true
    } else {
        rest = rest.strip_prefix('+').unwrap_or(rest);
        false
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = rest.get(..num_len).unwrap_or_default();
        rest = rest.get(num_len..).unwrap_or_default();
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len).unwrap_or_default();
        rest = rest.get(unit_len..).unwrap_or_default();
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "" => return Err(format!("{f}: missing unit in duration {s:?}")),
            other => return Err(format!("{f}: unknown unit {other:?} in duration {s:?}")),
        };
        let int_val: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<i128>().map_err(|_| invalid())?
        };
        let mut value = int_val.checked_mul(scale).ok_or_else(invalid)?;
        let mut frac_scale = scale;
        for d in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value = value
                .checked_add(i128::from(d - b'0') * frac_scale)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if negative { -total } else { total })
}

/// `timeadd(timestamp, duration)`: the result keeps the timestamp's UTC offset and, like
/// Go's RFC 3339 layout, omits fractional seconds.
pub(super) fn timeadd(args: &[Value]) -> Result<Value, String> {
    let ts_text = string_arg("timeadd", args, 0)?;
    let dur_text = string_arg("timeadd", args, 1)?;
    let ts = parse_rfc3339("timeadd", &ts_text)?;
    let dur = parse_duration("timeadd", &dur_text)?;
    let result = Timestamp {
        unix_nanos: ts.unix_nanos + dur,
        ..ts
    };
    let year = civil(&result).year;
    if !(0..=9999).contains(&year) {
        return Err(format!(
            "timeadd: the resulting year {year} is outside the range 0 to 9999"
        ));
    }
    Ok(Value::String(format_rfc3339(&result)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};
    use super::{civil_from_days, days_from_civil};

    #[test]
    fn civil_roundtrip() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn formatdate_cases() {
        assert_eq!(
            ok(r#"formatdate("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z")"#),
            v(r#""02 Jan 2018 23:12 UTC""#)
        );
        assert_eq!(
            ok(r#"formatdate("EEEE, DD-MMM-YY hh:mm:ss ZZZ", "2018-01-02T23:12:01Z")"#),
            v(r#""Tuesday, 02-Jan-18 23:12:01 UTC""#)
        );
        assert_eq!(
            ok(r#"formatdate("EEE, DD MMM YYYY hh:mm:ss ZZZ", "2018-01-02T23:12:01-08:00")"#),
            v(r#""Tue, 02 Jan 2018 23:12:01 -0800""#)
        );
        assert_eq!(
            ok(r#"formatdate("MMM DD, YYYY", "2018-01-02T23:12:01Z")"#),
            v(r#""Jan 02, 2018""#)
        );
        assert_eq!(
            ok(r#"formatdate("HH:mmaa", "2018-01-02T23:12:01Z")"#),
            v(r#""11:12pm""#)
        );
        assert_eq!(
            ok(r#"formatdate("H AA", "2018-01-02T00:05:00Z")"#),
            v(r#""12 AM""#)
        );
        assert_eq!(
            ok(r#"formatdate("YYYY-MM-DD'T'hh:mm:ssZ", "2018-01-02T23:12:01.123+05:30")"#),
            v(r#""2018-01-02T23:12:01+05:30""#)
        );
        assert_eq!(
            ok(r#"formatdate("ZZZZ ZZZZZ Z", "2018-01-02T23:12:01Z")"#),
            v(r#""+0000 +00:00 Z""#)
        );
        assert_eq!(
            ok(r#"formatdate("D M h m s 'o''clock' ''", "2018-03-04T05:06:07Z")"#),
            v(r#""4 3 5 6 7 o'clock '""#)
        );
        assert_eq!(
            ok(r#"formatdate("MMMM", "2024-09-01T00:00:00Z")"#),
            v(r#""September""#)
        );
        err(
            r#"formatdate("YYY", "2018-01-02T23:12:01Z")"#,
            "formatdate: invalid date format sequence \"YYY\"",
        );
        err(
            r#"formatdate("'abc", "2018-01-02T23:12:01Z")"#,
            "unterminated literal",
        );
        err(
            r#"formatdate("YYYY", "2018-01-02")"#,
            "is not a valid RFC 3339 timestamp",
        );
        err(
            r#"formatdate("YYYY", "2018-02-30T00:00:00Z")"#,
            "a field is out of range",
        );
    }

    #[test]
    fn timeadd_cases() {
        assert_eq!(
            ok(r#"timeadd("2017-11-22T00:00:00Z", "10m")"#),
            v(r#""2017-11-22T00:10:00Z""#)
        );
        assert_eq!(
            ok(r#"timeadd("2017-11-22T00:00:00Z", "-1h30m")"#),
            v(r#""2017-11-21T22:30:00Z""#)
        );
        assert_eq!(
            ok(r#"timeadd("2017-11-22T23:00:00+01:00", "1.5h")"#),
            v(r#""2017-11-23T00:30:00+01:00""#)
        );
        assert_eq!(
            ok(r#"timeadd("2024-02-28T12:00:00Z", "24h")"#),
            v(r#""2024-02-29T12:00:00Z""#)
        );
        assert_eq!(
            ok(r#"timeadd("2017-11-22T00:00:00Z", "1500ms")"#),
            v(r#""2017-11-22T00:00:01Z""#)
        );
        assert_eq!(
            ok(r#"timeadd("2017-11-22T00:00:00Z", "0")"#),
            v(r#""2017-11-22T00:00:00Z""#)
        );
        err(
            r#"timeadd("2017-11-22T00:00:00Z", "10")"#,
            "timeadd: missing unit",
        );
        err(
            r#"timeadd("2017-11-22T00:00:00Z", "10d")"#,
            "timeadd: unknown unit \"d\"",
        );
        err(
            r#"timeadd("2017-11-22T00:00:00Z", "")"#,
            "timeadd: invalid duration",
        );
        err(
            r#"timeadd("2017-11-22T00:00:00Z", "99999999999999999999h")"#,
            "timeadd: invalid duration",
        );
        err(r#"timeadd("9999-12-31T23:00:00Z", "2h")"#, "outside the range");
        err(
            r#"timeadd("yesterday", "1h")"#,
            "timeadd: \"yesterday\" is not a valid RFC 3339 timestamp",
        );
    }
}
