//! Ordered scales: the log [`Level`] an application wrote, the [`Severity`] a
//! rule assigns to its alerts, and the incident [`Priority`] P1–P4 that sets
//! how fast a human must respond.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_enum {
    ($name:ident, $what:literal, [$($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)?]) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $(
                    if s.eq_ignore_ascii_case($text) $(|| s.eq_ignore_ascii_case($alias))* {
                        return Ok($name::$variant);
                    }
                )+
                Err(format!(
                    concat!("unknown ", $what, " {:?} (expected one of: {})"),
                    crate::time::truncate(s),
                    [$($text),+].join(", ")
                ))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Log level as written by applications (seed 003 "Log Levels").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}
string_enum!(Level, "log level", [
    Debug => "DEBUG" | "trace",
    Info => "INFO" | "notice" | "information",
    Warn => "WARN" | "warning",
    Error => "ERROR" | "err",
    Fatal => "FATAL" | "critical" | "crit" | "alert" | "emerg",
]);

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}
string_enum!(Severity, "severity", [
    Low => "low" | "info",
    Medium => "medium" | "warning",
    High => "high",
    Critical => "critical",
]);

/// Incident priority (seed 003 "Incident Response"); P1 is the most urgent,
/// so the derived order sorts P1 first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}
string_enum!(Priority, "priority", [P1 => "P1", P2 => "P2", P3 => "P3", P4 => "P4"]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_case_insensitive_with_aliases() {
        assert_eq!("warning".parse::<Level>().unwrap(), Level::Warn);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert_eq!("p2".parse::<Priority>().unwrap(), Priority::P2);
        assert!("P5".parse::<Priority>().is_err());
        assert!(Severity::Critical > Severity::High);
        assert!(Priority::P1 < Priority::P4);
    }
}
