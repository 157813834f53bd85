//! Field paths such as `fields.ip` address nested JSON by dotted names. Events
//! store their fields flattened under exactly these dotted names, so resolving
//! a path is a lookup, not a walk.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Str;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Str);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid field path {path:?}: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl FieldPath {
    /// Segments are non-empty runs of letters, digits, `_`, `-` or `@`
    /// separated by single dots.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        let err = |reason| PathError {
            path: crate::time::truncate(s),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.len() > 256 {
            return Err(err("longer than 256 bytes"));
        }
        for seg in s.split('.') {
            if seg.is_empty() {
                return Err(err("empty segment (leading, trailing or double dot)"));
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
            {
                return Err(err(
                    "segments may only contain letters, digits, '_', '-' and '@'",
                ));
            }
        }
        Ok(FieldPath(Str::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: `fields.ip` → `ip` (the name a group key is shown under).
    pub fn leaf(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(FieldPath::parse("fields.ip").unwrap().leaf(), "ip");
        assert!(FieldPath::parse("fields..ip").is_err());
        assert!(FieldPath::parse(".ip").is_err());
        assert!(FieldPath::parse("a b").is_err());
    }
}
