//! Helpers shared by the JSON, syslog and pattern paths for filling an
//! event's [`Fields`]: alias renaming of key segments, the "canonical
//! spelling wins" insertion rule, and conversion of captured text to typed
//! [`Value`]s.
//!
//! Nothing here knows about line formats; it only decides how one key and
//! one value land in the flattened field list.

use std::collections::BTreeMap;

use secmon_core::{Fields, Str, Value};

use crate::config::FieldType;
use crate::error::ConfigError;

/// Segment renames (`ip_address` → `ip`). A handful of entries, so a linear
/// scan with a length check first beats any map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases(Vec<(Box<str>, Str)>);

impl Aliases {
    pub(crate) fn new(map: &BTreeMap<String, String>, errs: &mut Vec<ConfigError>) -> Aliases {
        let mut v = Vec::with_capacity(map.len());
        for (from, to) in map {
            let field = format!("parse.aliases.{from}");
            if !valid_segment(from) {
                errs.push(ConfigError::new(
                    field,
                    "alias names must be one field-name segment: letters, digits, '_', '-' or '@'",
                ));
                continue;
            }
            if !valid_segment(to) {
                errs.push(ConfigError::new(
                    field,
                    format!("alias target {to:?} must be one field-name segment: letters, digits, '_', '-' or '@'"),
                ));
                continue;
            }
            if map.contains_key(to) {
                errs.push(ConfigError::new(
                    field,
                    format!("alias target {to:?} is itself renamed; renames do not chain"),
                ));
                continue;
            }
            v.push((Box::from(from.as_str()), Str::from(to.as_str())));
        }
        Aliases(v)
    }

    #[inline]
    pub(crate) fn get(&self, seg: &str) -> Option<&str> {
        for (from, to) in &self.0 {
            if from.len() == seg.len() && **from == *seg {
                return Some(to.as_str());
            }
        }
        None
    }

    /// Renames every segment of a dotted path; `(path, renamed?)`.
    pub(crate) fn rename_path(&self, path: &str) -> (String, bool) {
        let mut out = String::with_capacity(path.len());
        let mut renamed = false;
        for (i, seg) in path.split('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            match self.get(seg) {
                Some(to) => {
                    renamed = true;
                    out.push_str(to);
                }
                None => out.push_str(seg),
            }
        }
        (out, renamed)
    }
}

pub(crate) fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
}

pub(crate) fn valid_path(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.split('.').all(valid_segment)
}

/// Inserts with the alias rule: a value whose key was produced by renaming
/// never overwrites an existing key, and a key spelled canonically always
/// does. So when both `ip_address` and `ip` are present, `ip` wins whatever
/// their order.
#[inline]
pub(crate) fn put(fields: &mut Fields, key: &str, value: Value, renamed: bool) {
    if let Some((_, slot)) = fields.iter_mut().find(|(k, _)| k.as_str() == key) {
        if !renamed {
            *slot = value;
        }
        return;
    }
    fields.push(Str::from(key), value);
}

/// The type of a capture, including the builtin-only `Flag` (an optional
/// group whose presence is the value: `invalid user ` → true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Typed(FieldType),
    Flag,
}

/// Converts captured text to the declared type; `Err(expected)` names the
/// type for the error message.
pub(crate) fn convert(s: &str, kind: Kind) -> Result<Value, &'static str> {
    match kind {
        Kind::Flag => Ok(Value::Bool(true)),
        Kind::Typed(FieldType::String) => Ok(Value::Str(Str::from(s))),
        Kind::Typed(FieldType::Int) => s.trim().parse::<i64>().map(Value::Int).map_err(|_| "int"),
        Kind::Typed(FieldType::Float) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err("float"),
        },
        Kind::Typed(FieldType::Duration) => duration_ms(s)
            .map(Value::Float)
            .ok_or("duration (e.g. 12.5ms, 1.5s)"),
        Kind::Typed(FieldType::Bool) => {
            let t = s.trim();
            for (words, v) in [
                (&["true", "yes", "on", "1"][..], true),
                (&["false", "no", "off", "0"][..], false),
            ] {
                if words.iter().any(|w| t.eq_ignore_ascii_case(w)) {
                    return Ok(Value::Bool(v));
                }
            }
            Err("bool")
        }
    }
}

/// `12.5ms` → 12.5, `1.5s` → 1500, `2m` → 120000, `1h30m` → 5400000, `250`
/// → 250 (a bare number is milliseconds). Units: ns, us, µs, ms, s, m, h, d.
pub(crate) fn duration_ms(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(n) = t.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    let b = t.as_bytes();
    let mut i = 0;
    let mut total = 0.0f64;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = t.get(start..i)?.parse().ok()?;
        let ustart = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit = match t.get(ustart..i)?.trim() {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86_400e3,
            _ => return None,
        };
        total += num * unit;
    }
    total.is_finite().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_ms() {
        assert_eq!(duration_ms("12.5ms"), Some(12.5));
        assert_eq!(duration_ms("1.5s"), Some(1500.0));
        assert_eq!(duration_ms("2m"), Some(120_000.0));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000.0));
        assert_eq!(duration_ms("250"), Some(250.0));
        assert_eq!(duration_ms("3us"), Some(0.003));
        assert_eq!(duration_ms("fast"), None);
        assert_eq!(duration_ms("5 parsecs"), None);
        assert_eq!(duration_ms(""), None);
        assert_eq!(duration_ms("1.2.3ms"), None);
    }

    #[test]
    fn conversions() {
        assert_eq!(
            convert("42", Kind::Typed(FieldType::Int)),
            Ok(Value::Int(42))
        );
        assert_eq!(convert("4x", Kind::Typed(FieldType::Int)), Err("int"));
        assert_eq!(
            convert("Yes", Kind::Typed(FieldType::Bool)),
            Ok(Value::Bool(true))
        );
        assert_eq!(convert("inf", Kind::Typed(FieldType::Float)), Err("float"));
    }

    #[test]
    fn canonical_spelling_wins() {
        let mut errs = vec![];
        let a = Aliases::new(&crate::config::default_aliases(), &mut errs);
        assert!(errs.is_empty());
        assert_eq!(
            a.rename_path("fields.ip_address"),
            ("fields.ip".to_string(), true)
        );
        let mut f = Fields::new();
        put(&mut f, "fields.ip", Value::from("canon"), false);
        put(&mut f, "fields.ip", Value::from("alias"), true);
        assert_eq!(f.get("fields.ip"), Some(&Value::from("canon")));
        let mut f = Fields::new();
        put(&mut f, "fields.ip", Value::from("alias"), true);
        put(&mut f, "fields.ip", Value::from("canon"), false);
        assert_eq!(f.get("fields.ip"), Some(&Value::from("canon")));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn bad_alias_config() {
        let mut errs = vec![];
        let m: BTreeMap<String, String> = [("a.b", "c"), ("x", "y"), ("y", "z")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let _ = Aliases::new(&m, &mut errs);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].field, "parse.aliases.a.b");
    }
}
