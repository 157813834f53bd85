//! Reading timestamps: RFC 3339, the python `logging` default, Unix numbers
//! and user strftime formats, into millisecond [`Timestamp`]s.
//!
//! The common shapes (`2024-01-15T10:30:00.000Z`, `2025-11-21 10:00:00,123`)
//! are read by a hand-written fixed-position parser, because a general
//! parser costs more than the rest of a JSON event together; anything it does
//! not recognise falls back to jiff, which is the reference. Civil-date
//! arithmetic is the exact proleptic Gregorian algorithm, not an
//! approximation. This module never reads the clock.

use jiff::fmt::strtime::BrokenDownTime;
use secmon_core::Timestamp;

use crate::config::TimeFormat;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`), exact for every `i32` year.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year of a day count (inverse of [`days_from_civil`], year only).
pub(crate) fn year_of_days(z: i64) -> i64 {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Milliseconds of a UTC civil time; `None` when the date does not exist.
pub(crate) fn civil_to_ms(
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ms: u32,
) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    day_ms(days_from_civil(y, mo, d), h, mi, s, ms)
}

/// Milliseconds of a time of day on day number `days` (a valid date, see
/// [`days_from_civil`]); `None` when the time does not exist.
#[inline]
pub(crate) fn day_ms(days: i64, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // A leap second (:60) is folded onto the next second, as jiff does.
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s.min(59));
    Some(secs * 1000 + i64::from(ms))
}

#[inline]
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Reads `YYYY-MM-DD[T ]HH:MM:SS[(.|,)frac][Z|±HH:MM|±HHMM]`. `need_zone`:
/// whether a missing zone is an error (RFC 3339) or means UTC (python).
/// Returns `None` for anything else, so that the caller can fall back.
pub(crate) fn fast_datetime(s: &str, need_zone: bool) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let y = digits(b, 0, 4)?;
    let mo = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    let h = digits(b, 11, 2)?;
    let mi = digits(b, 14, 2)?;
    let sec = digits(b, 17, 2)?;
    let mut i = 19;
    let mut ms = 0u32;
    if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        i += 1;
        let start = i;
        let mut scale = 100;
        while i < b.len() && b[i].is_ascii_digit() {
            if scale > 0 {
                ms += u32::from(b[i] - b'0') * scale;
                scale /= 10;
            }
            i += 1;
            if i - start > 9 {
                return None;
            }
        }
        if i == start {
            return None;
        }
    }
    let mut offset_min: i64 = 0;
    if i == b.len() {
        if need_zone {
            return None;
        }
    } else {
        match b[i] {
            b'Z' | b'z' if i + 1 == b.len() => {}
            sign @ (b'+' | b'-') => {
                let oh = digits(b, i + 1, 2)?;
                let om = match b.len() - i {
                    6 if b[i + 3] == b':' => digits(b, i + 4, 2)?,
                    5 => digits(b, i + 3, 2)?,
                    3 => 0,
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                offset_min = i64::from(oh * 60 + om);
                if sign == b'-' {
                    offset_min = -offset_min;
                }
            }
            _ => return None,
        }
    }
    let t = civil_to_ms(i64::from(y), mo, d, h, mi, sec, ms)?;
    Some(Timestamp(t - offset_min * 60_000))
}

/// Numbers as Unix time. `unit_ms`: `Some(true)` milliseconds, `Some(false)`
/// seconds, `None` guess (seconds below 1e11, i.e. before year 5138).
pub(crate) fn from_number(n: f64, unit_ms: Option<bool>) -> Result<Timestamp, String> {
    if !n.is_finite() {
        return Err("not a finite number".into());
    }
    let ms = match unit_ms {
        Some(true) => n,
        Some(false) => n * 1000.0,
        None if n.abs() < 1e11 => n * 1000.0,
        None => n,
    };
    // jiff's range (years -9999..=9999) keeps every later formatting exact.
    if ms.abs() > 253_402_300_799_000.0 {
        return Err("out of range".into());
    }
    Ok(Timestamp(ms.round() as i64))
}

fn parse_number_str(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A compiled [`TimeFormat`]: the same thing with the strftime format
/// checked once at configuration time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeParser {
    format: TimeFormat,
}

impl TimeParser {
    /// Checks a strftime format by formatting a known time with it and
    /// reading the result back; a format that cannot round-trip its own
    /// output is rejected up front rather than failing on every line.
    pub(crate) fn new(format: &TimeFormat) -> Result<TimeParser, String> {
        if let TimeFormat::Strftime(f) = format {
            if f.is_empty() {
                return Err("empty time format".into());
            }
            let sample = jiff::civil::date(2024, 1, 15).at(10, 30, 0, 123_000_000);
            let zoned = sample
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|e| e.to_string())?;
            let text = BrokenDownTime::from(&zoned)
                .to_string(f.as_str())
                .map_err(|e| format!("invalid strftime format {f:?}: {e}"))?;
            let back = parse_strftime(f, &text).map_err(|e| {
                format!("strftime format {f:?} cannot read its own output {text:?}: {e}")
            })?;
            if back.as_secs() != zoned.timestamp().as_second() {
                return Err(format!(
                    "strftime format {f:?} does not identify a full date and time (read {text:?} back as {back})"
                ));
            }
        }
        Ok(TimeParser {
            format: format.clone(),
        })
    }

    pub(crate) fn parse_str(&self, s: &str) -> Result<Timestamp, String> {
        match &self.format {
            TimeFormat::Auto => {
                if let Some(t) = fast_datetime(s, false) {
                    return Ok(t);
                }
                if let Some(n) = parse_number_str(s) {
                    return from_number(n, None);
                }
                rfc3339_slow(s)
            }
            TimeFormat::Rfc3339 => match fast_datetime(s, true) {
                Some(t) => Ok(t),
                None => rfc3339_slow(s),
            },
            TimeFormat::UnixSeconds => match parse_number_str(s) {
                Some(n) => from_number(n, Some(false)),
                None => Err("expected a number of seconds".into()),
            },
            TimeFormat::UnixMillis => match parse_number_str(s) {
                Some(n) => from_number(n, Some(true)),
                None => Err("expected a number of milliseconds".into()),
            },
            TimeFormat::Strftime(f) => parse_strftime(f, s),
        }
    }

    pub(crate) fn parse_number(&self, n: f64) -> Result<Timestamp, String> {
        match &self.format {
            TimeFormat::Auto => from_number(n, None),
            TimeFormat::UnixSeconds => from_number(n, Some(false)),
            TimeFormat::UnixMillis => from_number(n, Some(true)),
            TimeFormat::Rfc3339 => Err("expected an RFC 3339 string, found a number".into()),
            TimeFormat::Strftime(_) => {
                Err("expected a string in the configured format, found a number".into())
            }
        }
    }
}

fn rfc3339_slow(s: &str) -> Result<Timestamp, String> {
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(Timestamp(t.as_millisecond())),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_strftime(f: &str, s: &str) -> Result<Timestamp, String> {
    let tm = BrokenDownTime::parse(f, s).map_err(|e| e.to_string())?;
    if tm.offset().is_some() || tm.iana_time_zone().is_some() {
        return tm
            .to_timestamp()
            .map(|t| Timestamp(t.as_millisecond()))
            .map_err(|e| e.to_string());
    }
    let dt = tm.to_datetime().map_err(|e| e.to_string())?;
    let z = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?;
    Ok(Timestamp(z.timestamp().as_millisecond()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        Timestamp::parse_rfc3339(s).expect("valid").0
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 19_000, 2_932_896] {
            let y = year_of_days(days);
            let first = days_from_civil(y, 1, 1);
            assert!(
                first <= days && days < days_from_civil(y + 1, 1, 1),
                "{days} -> {y}"
            );
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn fast_rfc3339_matches_jiff() {
        for s in [
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:30:00.123456789Z",
            "2024-02-29T23:59:59.999+01:00",
            "1969-12-31T23:59:59.5-05:30",
            "2003-10-11T22:14:15.003Z",
        ] {
            assert_eq!(fast_datetime(s, true).map(|t| t.0), Some(ms(s)), "{s}");
        }
        assert_eq!(fast_datetime("2024-01-15T10:30:00", true), None);
        assert_eq!(fast_datetime("2023-02-29T10:30:00Z", true), None);
        assert_eq!(fast_datetime("2024-13-01T10:30:00Z", true), None);
        assert_eq!(fast_datetime("2024-01-15T10:30:00.Z", true), None);
    }

    #[test]
    fn python_logging_time_is_utc() {
        let p = TimeParser::new(&TimeFormat::Auto).expect("auto");
        assert_eq!(
            p.parse_str("2025-11-21 10:00:00,123").map(|t| t.0),
            Ok(ms("2025-11-21T10:00:00.123Z"))
        );
        assert_eq!(
            p.parse_str("2025-11-21 10:00:00.5").map(|t| t.0),
            Ok(ms("2025-11-21T10:00:00.500Z"))
        );
        assert_eq!(
            p.parse_str("1700000000").map(|t| t.0),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            p.parse_number(1_700_000_000_123.0).map(|t| t.0),
            Ok(1_700_000_000_123)
        );
        assert!(p.parse_str("yesterday").is_err());
    }

    #[test]
    fn strftime_formats() {
        let p =
            TimeParser::new(&TimeFormat::Strftime("%Y-%m-%d %H:%M:%S,%3f".into())).expect("valid");
        assert_eq!(
            p.parse_str("2025-11-21 10:00:00,123").map(|t| t.0),
            Ok(ms("2025-11-21T10:00:00.123Z"))
        );
        let p =
            TimeParser::new(&TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into())).expect("valid");
        assert_eq!(
            p.parse_str("10/Oct/2000:13:55:36 -0700").map(|t| t.0),
            Ok(ms("2000-10-10T20:55:36Z"))
        );
        assert!(TimeParser::new(&TimeFormat::Strftime("%H:%M".into())).is_err());
        assert!(TimeParser::new(&TimeFormat::Strftime("%Q%Y".into())).is_err());
    }

    #[test]
    fn unix_units() {
        let s = TimeParser::new(&TimeFormat::UnixSeconds).expect("unix");
        assert_eq!(s.parse_number(1.5).map(|t| t.0), Ok(1500));
        let m = TimeParser::new(&TimeFormat::UnixMillis).expect("unix_ms");
        assert_eq!(m.parse_str("1500").map(|t| t.0), Ok(1500));
        assert!(m.parse_number(f64::NAN).is_err());
        assert!(m.parse_number(1e300).is_err());
    }
}
