//! The periodic dispatcher's clock: when does a periodic job launch next.
//!
//! ```text
//!  PeriodicConfig.spec ("0 3 * * *", "@daily", "*/15 * * * * *") ──parse──▶ Cron
//!  Cron::next_after(unix seconds) ──▶ the first matching second strictly after it (UTC)
//!  leader task: every second, for each enabled periodic job: next_after(last launch) ≤ now?
//!                 → launch `<job>/periodic-<unix>` (skipped while a child runs if
//!                   prohibit_overlap) and remember the launch
//! ```
//!
//! Cron fields: 5 (minute hour day-of-month month day-of-week) or 6 with seconds first (7 with
//! a trailing year is accepted and the year ignored); `*`, lists, ranges, steps, month and
//! weekday names, `7` = Sunday, `?` = `*`; day-of-month and day-of-week both restricted match
//! either (Vixie cron). Shorthands `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/
//! `@midnight`, `@hourly`.
//!
//! Limitations: schedules are evaluated in UTC (a job's `time_zone` is reported as a warning
//! at registration, not applied); `L`, `W` and `#` are refused.

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], base: u32) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + base);
    }
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn field(spec: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let star = spec == "*" || spec == "?";
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step in {part:?}"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in {part:?}"));
        }
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, name_base)?, value(b, names, name_base)?)
        } else {
            let v = value(range, names, name_base)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{part:?} is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Cron {
    /// Parses a cron expression.
    pub fn parse(spec: &str) -> Result<Cron, String> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            s if s.starts_with('@') => return Err(format!("unknown shorthand {s}")),
            s => s,
        };
        let mut f: Vec<&str> = expanded.split_whitespace().collect();
        if f.iter().any(|x| x.contains(['L', 'W', '#'])) {
            return Err("L, W and # are not supported".into());
        }
        match f.len() {
            5 => f.insert(0, "0"),
            6 => {}
            7 => {
                f.pop();
            }
            n => return Err(format!("expected 5 to 7 fields, got {n}")),
        }
        let (seconds, _) = field(f[0], 0, 59, &[], 0)?;
        let (minutes, _) = field(f[1], 0, 59, &[], 0)?;
        let (hours, _) = field(f[2], 0, 23, &[], 0)?;
        let (days, dom_star) = field(f[3], 1, 31, &[], 0)?;
        let (months, _) = field(f[4], 1, 12, &MONTHS, 1)?;
        let (mut weekdays, dow_star) = field(f[5], 0, 7, &DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let d = self.days & (1 << dom) != 0;
        let w = self.weekdays & (1 << dow) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (false, true) => d,
            (true, false) => w,
            (false, false) => d || w,
        }
    }

    /// The first matching second strictly after `t` (Unix seconds, UTC); `None` if nothing
    /// matches in the next five years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let mut day = t.div_euclid(86_400);
        let mut first = true;
        let last = day + 5 * 366;
        while day <= last {
            let (_, m, d) = civil(day);
            let dow = (day + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if self.months & (1 << m) != 0 && self.day_matches(d, dow) {
                let start = if first { t.rem_euclid(86_400) + 1 } else { 0 };
                for h in 0..24u32 {
                    if self.hours & (1 << h) == 0 || (h as i64 + 1) * 3600 <= start {
                        continue;
                    }
                    for mi in 0..60u32 {
                        if self.minutes & (1 << mi) == 0 {
                            continue;
                        }
                        for s in 0..60u32 {
                            let sec = h as i64 * 3600 + mi as i64 * 60 + s as i64;
                            if self.seconds & (1 << s) != 0 && sec >= start {
                                return Some(day * 86_400 + sec);
                            }
                        }
                    }
                }
            }
            first = false;
            day += 1;
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day number since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25T18:30:00Z (a Wednesday).
    const NOW: i64 = 1_795_631_400;

    fn at(spec: &str, t: i64) -> i64 {
        Cron::parse(spec).unwrap().next_after(t).unwrap()
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(NOW / 86_400), (2026, 11, 25));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }

    #[test]
    fn next_launches() {
        // Daily at 03:00 → tomorrow 03:00.
        assert_eq!(at("0 3 * * *", NOW), NOW - 18 * 3600 - 1800 + 86_400 + 3 * 3600);
        // Every 15 minutes → 18:45.
        assert_eq!(at("*/15 * * * *", NOW), NOW + 15 * 60);
        // Strictly after: at 18:45:00 the next */15 is 19:00.
        assert_eq!(at("*/15 * * * *", NOW + 900), NOW + 1800);
        // Seconds field.
        assert_eq!(at("*/10 * * * * *", NOW), NOW + 10);
        // Mondays at 09:30 → 2026-11-30 (Monday).
        assert_eq!(
            at("30 9 * * MON", NOW),
            NOW - 66_600 + 5 * 86_400 + 9 * 3600 + 1800
        );
        // 1st of the month at midnight → 2026-12-01.
        assert_eq!(at("@monthly", NOW), NOW - 66_600 + 6 * 86_400);
        // Day-of-month OR day-of-week when both are restricted: the 1st or a Friday.
        assert_eq!(at("0 0 1 * FRI", NOW), NOW - 66_600 + 2 * 86_400);
        // Sunday as 7.
        assert_eq!(at("0 0 * * 7", NOW), at("0 0 * * 0", NOW));
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("outside"));
        assert!(Cron::parse("* * *").unwrap_err().contains("fields"));
        assert!(Cron::parse("@fortnightly").unwrap_err().contains("shorthand"));
        assert!(Cron::parse("0 0 L * *").is_err());
        assert!(Cron::parse("*/0 * * * *").is_err());
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(NOW), None);
    }
}
