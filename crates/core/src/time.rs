//! Event time. secmon evaluates everything on the time an event *says* it
//! happened, at millisecond resolution, so replaying a file gives exactly the
//! alerts that watching it live would have given.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch (UTC). Millisecond resolution is what the
/// alert output promises and what window boundaries are defined on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Saturating so that windows near the ends of time never overflow.
    pub const fn add(self, d: Dur) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    pub const fn sub(self, d: Dur) -> Self {
        Timestamp(self.0.saturating_sub(d.0))
    }

    /// `self - earlier` as a duration (negative if `earlier` is later).
    pub const fn since(self, earlier: Timestamp) -> Dur {
        Dur(self.0.saturating_sub(earlier.0))
    }

    /// The greatest multiple of `step` that is `<= self` (ticks are aligned so
    /// that two engines evaluating the same stream agree on them).
    pub fn floor_to(self, step: Dur) -> Timestamp {
        if step.0 <= 0 {
            return self;
        }
        Timestamp(self.0.div_euclid(step.0) * step.0)
    }

    /// A point in time as people type it in queries: RFC 3339, epoch
    /// milliseconds, or a duration ago relative to `now` (`24h`, `7d`).
    pub fn parse_when(s: &str, now: Timestamp) -> Option<Timestamp> {
        let s = s.trim();
        if let Ok(t) = Timestamp::parse_rfc3339(s) {
            return Some(t);
        }
        if let Ok(ms) = s.parse::<i64>() {
            return Some(Timestamp(ms));
        }
        Dur::parse(s).ok().map(|d| now.sub(d))
    }

    /// Parses RFC 3339 / ISO 8601 with an offset or `Z` (`2024-01-15T10:30:00.000Z`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let ts: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| TimeError::Invalid {
            input: truncate(s),
            reason: e.to_string(),
        })?;
        Ok(Timestamp(ts.as_millisecond()))
    }

    /// RFC 3339 in UTC with exactly three fractional digits, the format of
    /// every time secmon prints.
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_rfc3339(&mut s);
        s
    }

    pub fn write_rfc3339(self, out: &mut String) {
        use std::fmt::Write;
        if (0..FAST_END).contains(&self.0) {
            write_rfc3339_fast(self.0, out);
            return;
        }
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => {
                let _ = write!(out, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"));
            }
            Err(_) => {
                let _ = write!(out, "{}", self.0);
            }
        }
    }
}

/// 9999-12-30T22:00:00Z, within jiff's range (which ends that second):
/// from the epoch up to here, times are formatted by
/// [`write_rfc3339_fast`].
const FAST_END: i64 = 253_402_207_200_000;

/// What jiff's `%Y-%m-%dT%H:%M:%S%.3fZ` prints for `0 <= ms < FAST_END`,
/// by civil-date arithmetic (H. Hinnant's `civil_from_days`): every alert
/// line carries a time, and strftime cost more than the rest of the line.
fn write_rfc3339_fast(ms: i64, out: &mut String) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let digits = |out: &mut String, v: i64, n: u32| {
        for i in (0..n).rev() {
            let d = (v / 10i64.pow(i) % 10) as u8;
            out.push(char::from(b'0' + d));
        }
    };
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, h, 2);
    out.push(':');
    digits(out, m, 2);
    out.push(':');
    digits(out, s, 2);
    out.push('.');
    digits(out, f, 3);
    out.push('Z');
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

/// A span of event time in milliseconds, written in config as `250ms`, `10s`,
/// `5m`, `1h`, `7d` or combinations such as `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub i64);

impl Dur {
    pub const ZERO: Dur = Dur(0);

    pub const fn from_millis(ms: i64) -> Self {
        Dur(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        Dur(s * 1000)
    }
    pub const fn from_mins(m: i64) -> Self {
        Dur(m * 60_000)
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Parses `1h30m`, `5m`, `250ms`, `1.5s`, `7d`, `2w`. A bare number is
    /// rejected on purpose: `window: 5` is more often a mistake than seconds.
    pub fn parse(s: &str) -> Result<Dur, TimeError> {
        let bad = |reason: &str| TimeError::InvalidDuration {
            input: truncate(s),
            reason: reason.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(bad("empty"));
        }
        let bytes = t.as_bytes();
        let mut i = 0;
        let mut total: f64 = 0.0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if start == i {
                return Err(bad("expected a number, e.g. 30s, 5m, 1h"));
            }
            let num: f64 = t[start..i].parse().map_err(|_| bad("invalid number"))?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit_ms: f64 = match &t[ustart..i] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                "w" => 604_800_000.0,
                "" => return Err(bad("missing unit (ms, s, m, h, d, w)")),
                _ => return Err(bad("unknown unit (use ms, s, m, h, d, w)")),
            };
            total += num * unit_ms;
        }
        if !total.is_finite() || total > i64::MAX as f64 / 2.0 {
            return Err(bad("too large"));
        }
        Ok(Dur(total.round() as i64))
    }
}

impl fmt::Display for Dur {
    /// The shortest exact spelling: `5m`, `1h30m`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error("invalid timestamp {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration { input: String, reason: String },
}

/// Error messages quote input, but never a megabyte of it.
pub fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {

    #[test]
    fn when_is_a_time_epoch_ms_or_a_duration_ago() {
        let now = Timestamp(1_000_000_000);
        assert_eq!(
            Timestamp::parse_when("24h", now),
            Some(Timestamp(1_000_000_000 - 86_400_000))
        );
        assert_eq!(
            Timestamp::parse_when("1700000000000", now),
            Some(Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            Timestamp::parse_when("2024-01-15T10:30:00Z", now),
            Timestamp::parse_rfc3339("2024-01-15T10:30:00Z").ok()
        );
        assert_eq!(Timestamp::parse_when("yesterday", now), None);
    }
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(Dur::parse("5m").unwrap(), Dur::from_mins(5));
        assert_eq!(Dur::parse("1h30m").unwrap(), Dur::from_mins(90));
        assert_eq!(Dur::parse("250ms").unwrap(), Dur(250));
        assert_eq!(Dur::parse("1.5s").unwrap(), Dur(1500));
        assert_eq!(Dur::parse("7d").unwrap(), Dur(7 * 86_400_000));
        assert!(Dur::parse("5").is_err());
        assert!(Dur::parse("5mins").is_err());
        assert!(Dur::parse("").is_err());
        assert!(Dur::parse("m").is_err());
    }

    #[test]
    fn durations_display_round_trip() {
        for s in ["5m", "1h30m", "250ms", "1d2h", "10s"] {
            assert_eq!(Dur::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rfc3339_round_trip_with_millis() {
        let t = Timestamp::parse_rfc3339("2024-01-15T10:30:00.123Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-15T10:30:00.123Z");
        let t2 = Timestamp::parse_rfc3339("2024-01-15T11:30:00.123+01:00").unwrap();
        assert_eq!(t, t2);
    }

    /// The arithmetic formatter prints what jiff's strftime prints.
    #[test]
    fn fast_rfc3339_matches_jiff() {
        let jiff = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut times = vec![0, 1, 999, 1000, 86_399_999, 86_400_000, FAST_END - 1];
        // Around every new year and leap day of four centuries, and at random.
        for y in 1970..2400i64 {
            let t = (y - 1970) * 31_556_952_000;
            times.extend([t - 1, t, t + 1, t + 59 * 86_400_000]);
        }
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            times.push((seed % FAST_END as u64) as i64);
        }
        for t in times.into_iter().filter(|t| (0..FAST_END).contains(t)) {
            let mut s = String::new();
            write_rfc3339_fast(t, &mut s);
            assert_eq!(s, jiff(t), "{t}");
        }
        assert_eq!(Timestamp(-1).to_rfc3339(), jiff(-1));
        assert_eq!(Timestamp(FAST_END).to_rfc3339(), jiff(FAST_END));
    }

    #[test]
    fn floor_aligns_to_step() {
        let t = Timestamp(12_345);
        assert_eq!(t.floor_to(Dur::from_secs(10)), Timestamp(10_000));
        assert_eq!(
            Timestamp(-1).floor_to(Dur::from_secs(10)),
            Timestamp(-10_000)
        );
    }
}
