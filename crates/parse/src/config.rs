//! The serde side of the parse configuration: what users write under
//! `parse:` and in the top-level `parsers:` list of a secmon config file.
//!
//! These types only describe; they are checked and compiled by
//! [`LineParser::new`](crate::LineParser::new) (and reported all at once by
//! [`validate`](crate::validate)). Every struct denies unknown keys, so a typo
//! in a config file is an error rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `parse:` in the secmon config: settings shared by every source's parser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// Renames of field-name segments, applied to JSON keys and pattern
    /// captures, so that rules see one spelling. Defaults to the seed
    /// catalog's `{ip_address: ip, email_attempted: email, failure_reason:
    /// reason}`; a map given by the user replaces the default entirely (give
    /// `{}` to turn renaming off).
    #[serde(default = "default_aliases")]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub json: JsonConfig,
    #[serde(default)]
    pub syslog: SyslogConfig,
    /// Builtin pattern sets to enable (default `["sshd"]`). An unknown name
    /// is a configuration error.
    #[serde(default = "default_builtin")]
    pub builtin: Vec<String>,
    /// Keep the raw line in `Event.raw` (costs one allocation per event).
    #[serde(default)]
    pub keep_raw: bool,
}

pub fn default_aliases() -> BTreeMap<String, String> {
    [
        ("ip_address", "ip"),
        ("email_attempted", "email"),
        ("failure_reason", "reason"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

pub fn default_builtin() -> Vec<String> {
    vec!["sshd".to_string()]
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            aliases: default_aliases(),
            json: JsonConfig::default(),
            syslog: SyslogConfig::default(),
            builtin: default_builtin(),
            keep_raw: false,
        }
    }
}

/// How JSON lines carry their time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonConfig {
    /// Dotted path of the event time inside the object (default
    /// `timestamp`; e.g. `ts` or `meta.time`). The field is consumed into the
    /// event time and not kept among the fields.
    pub timestamp_field: String,
    /// Default `auto`.
    pub timestamp_format: TimeFormat,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            timestamp_field: "timestamp".to_string(),
            timestamp_format: TimeFormat::Auto,
        }
    }
}

/// How a timestamp is written.
///
/// In YAML: `auto`, `rfc3339`, `unix` (seconds, fractions allowed),
/// `unix_ms`, or any other string, taken as a strftime format in jiff's
/// syntax (e.g. `"%Y-%m-%d %H:%M:%S,%3f"`). A strftime format without a
/// zone directive is read as UTC.
///
/// `auto` accepts an RFC 3339 string, the python `logging` default
/// `YYYY-MM-DD HH:MM:SS[,.]fff` (as UTC), or a number (seconds when below
/// 1e11, milliseconds otherwise; numeric strings too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimeFormat {
    #[default]
    Auto,
    Rfc3339,
    UnixSeconds,
    UnixMillis,
    Strftime(String),
}

impl TimeFormat {
    pub fn as_str(&self) -> &str {
        match self {
            TimeFormat::Auto => "auto",
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::UnixSeconds => "unix",
            TimeFormat::UnixMillis => "unix_ms",
            TimeFormat::Strftime(s) => s,
        }
    }
}

impl From<&str> for TimeFormat {
    fn from(s: &str) -> Self {
        match s {
            "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::UnixSeconds,
            "unix_ms" => TimeFormat::UnixMillis,
            other => TimeFormat::Strftime(other.to_string()),
        }
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TimeFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TimeFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(TimeFormat::from(s.as_str()))
    }
}

/// RFC 3164 lines carry neither a year nor a zone; these fill them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// A fixed year for RFC 3164 times. Unset: inferred from the time the
    /// line was received (see [`LineCtx`](crate::LineCtx)).
    pub year: Option<i32>,
    /// IANA zone name (`Europe/Paris`) or `UTC` (the default) in which RFC
    /// 3164 times are read. RFC 5424 times carry their own offset.
    pub timezone: Option<String>,
}

/// One entry of the top-level `parsers:` list: a regex with named captures
/// that turns matching text lines (or syslog messages) into events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// Unique name; sources select parsers by it.
    pub name: String,
    /// Regex (regex crate syntax: no look-around or backreferences) with
    /// named captures. Unanchored unless it says `^`.
    pub pattern: String,
    /// Event name given to matching lines, e.g. `cache.value_rejected`.
    #[serde(default)]
    pub event: Option<String>,
    /// Only apply to syslog lines whose program is this, exactly or followed
    /// by a non-alphanumeric character (`sshd` applies to `sshd`,
    /// `sshd(pam_unix)` and `sshd-session`). Such a pattern never applies to
    /// lines without a syslog header.
    #[serde(default)]
    pub program: Option<String>,
    /// Which capture holds the event time and how it is written. Without
    /// it a capture named `timestamp`, if any, is read with `auto`.
    #[serde(default)]
    pub timestamp: Option<TimestampCapture>,
    /// Capture name → type (default string). A value that does not convert
    /// makes the line an error rather than an event with a wrong type.
    #[serde(default)]
    pub types: BTreeMap<String, FieldType>,
    /// Static fields added to every match: keys without a dot are top-level
    /// (`level`, `service`), dotted keys are used as given (`fields.kind`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// `timestamp:` of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampCapture {
    /// Capture name (default `timestamp`).
    #[serde(default = "default_ts_capture")]
    pub field: String,
    /// Default `auto`.
    #[serde(default)]
    pub format: TimeFormat,
}

fn default_ts_capture() -> String {
    "timestamp".to_string()
}

impl Default for TimestampCapture {
    fn default() -> Self {
        TimestampCapture {
            field: default_ts_capture(),
            format: TimeFormat::Auto,
        }
    }
}

/// Type of a captured value.
///
/// `duration` converts `12.5ms`, `1.5s`, `2m`, `1h30m` (units ns, us, µs, ms,
/// s, m, h, d) into a float number of **milliseconds**; a bare number is
/// already milliseconds. `bool` accepts true/false, yes/no, on/off, 1/0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    #[default]
    String,
    Int,
    Float,
    Duration,
    Bool,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Duration => "duration",
            FieldType::Bool => "bool",
        }
    }
}

/// How a source's lines are written.
///
/// `auto` decides per line: `{` → JSON, a valid syslog header → syslog,
/// anything else → patterns on the whole line. The others restrict to one
/// path, so that e.g. a JSON source reports a non-JSON line as invalid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Auto,
    Json,
    Syslog,
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_empty_yaml() {
        let c: ParseConfig = serde_saphyr::from_str("{}").expect("parse");
        assert_eq!(c, ParseConfig::default());
        assert_eq!(c.aliases.get("ip_address").map(String::as_str), Some("ip"));
        assert_eq!(c.builtin, vec!["sshd"]);
        assert_eq!(c.json.timestamp_field, "timestamp");
    }

    #[test]
    fn user_aliases_replace_default() {
        let c: ParseConfig = serde_saphyr::from_str("aliases: {src_ip: ip}").expect("parse");
        assert_eq!(c.aliases.len(), 1);
    }

    #[test]
    fn unknown_keys_rejected() {
        assert!(serde_saphyr::from_str::<ParseConfig>("bogus: 1").is_err());
        assert!(serde_saphyr::from_str::<PatternConfig>("name: a\npattern: b\nxx: 1").is_err());
    }

    #[test]
    fn time_formats() {
        let j: JsonConfig =
            serde_saphyr::from_str("timestamp_field: ts\ntimestamp_format: unix_ms")
                .expect("parse");
        assert_eq!(j.timestamp_format, TimeFormat::UnixMillis);
        let p: PatternConfig = serde_saphyr::from_str(
            "name: a\npattern: x\ntimestamp: {format: '%Y-%m-%d %H:%M:%S,%3f'}\ntypes: {n: int, d: duration}",
        )
        .expect("parse");
        let ts = p.timestamp.expect("ts");
        assert_eq!(ts.field, "timestamp");
        assert_eq!(
            ts.format,
            TimeFormat::Strftime("%Y-%m-%d %H:%M:%S,%3f".into())
        );
        assert_eq!(p.types.get("d"), Some(&FieldType::Duration));
        assert!(
            serde_saphyr::from_str::<PatternConfig>("name: a\npattern: x\ntypes: {n: integer}")
                .is_err()
        );
    }
}
