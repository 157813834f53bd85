//! The alert line `secmon replay` and `secmon run` print: one JSON object per
//! fired verdict, with the rule's severity, priority and actions attached.
//! This is a stable, documented output format (see README "Alert output").

use serde::Serialize;

use secmon_core::{FieldPath, Priority, Severity, Timestamp, Value};
use secmon_engine::{Fire, Rule};

#[derive(Debug, Serialize)]
pub struct AlertLine<'a> {
    pub rule: &'a str,
    pub group: Group<'a>,
    pub fired_at: Timestamp,
    pub value: Number,
    pub threshold: Option<Number>,
    pub severity: Severity,
    pub priority: Option<Priority>,
    pub actions: &'a [String],
}

impl<'a> AlertLine<'a> {
    pub fn new(rule: &'a Rule, fire: &'a Fire) -> Self {
        AlertLine {
            rule: rule.id(),
            group: Group(&fire.group),
            fired_at: fire.at,
            value: Number(fire.value),
            threshold: fire.threshold.map(Number),
            severity: rule.severity(),
            priority: rule.priority(),
            actions: rule.actions(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The group as a JSON object keyed by the full field path (`fields.ip`):
/// leaf names could collide (`ip` and `fields.ip`), paths cannot.
#[derive(Debug)]
pub struct Group<'a>(pub &'a [(FieldPath, Value)]);

impl Serialize for Group<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k.as_str(), v)?;
        }
        m.end()
    }
}

/// Counts print as integers (`10`, not `10.0`); rates and quantiles keep
/// their fraction.
#[derive(Debug, Clone, Copy)]
pub struct Number(pub f64);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            s.serialize_i64(v as i64)
        } else if v.is_finite() {
            s.serialize_f64(v)
        } else {
            s.serialize_unit()
        }
    }
}

/// Writes one line to stdout for commands that print reports. A closed pipe
/// (`secmon decisions list | head -1`) means the reader is gone: exit quietly
/// with success instead of panicking as `println!` would.
pub fn print_line(line: &str) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        crate::telemetry::flush();
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(3);
    }
}

/// `println!` for reports, through [`print_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::print_line(&format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_integers_when_whole() {
        assert_eq!(
            serde_json::to_string(&Number(10.0)).unwrap_or_default(),
            "10"
        );
        assert_eq!(
            serde_json::to_string(&Number(2.5)).unwrap_or_default(),
            "2.5"
        );
        assert_eq!(
            serde_json::to_string(&Number(f64::NAN)).unwrap_or_default(),
            "null"
        );
    }
}
