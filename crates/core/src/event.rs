//! The [`Event`]: one thing that happened, as every stage after parsing sees it.
//!
//! Fields are stored flattened under their dotted paths (`fields.ip`,
//! `event`, `level`) in a small vector. Events carry a handful of fields, so a
//! linear scan over inline strings beats hashing, and flattening once at parse
//! time makes every later lookup a plain comparison.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::{Str, Timestamp, Value};

/// Index of a source (file, stdin, HTTP…) in the run's source table; events
/// carry the index rather than the name to stay small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SourceId(pub u32);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(Vec<(Str, Value)>);

impl Fields {
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Fields(Vec::with_capacity(n))
    }

    #[inline]
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == path).map(|(_, v)| v)
    }

    /// Sets `path`, replacing an existing value (last write wins, as in JSON
    /// objects with duplicate keys).
    pub fn insert(&mut self, path: impl Into<Str>, value: Value) {
        let path = path.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == path) {
            slot.1 = value;
        } else {
            self.0.push((path, value));
        }
    }

    /// Keeps only the fields `keep` accepts, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    /// Appends without checking for an existing key; for parsers that know
    /// their keys are distinct.
    pub fn push(&mut self, path: Str, value: Value) {
        self.0.push((path, value));
    }

    pub fn remove(&mut self, path: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == path)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&mut Str, &mut Value)> {
        self.0.iter_mut().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rebuilds the nested JSON object the flat paths came from.
    pub fn to_json(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        for (k, v) in &self.0 {
            insert_nested(&mut root, k, v.to_json());
        }
        serde_json::Value::Object(root)
    }
}

fn insert_nested(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    v: serde_json::Value,
) {
    match path.split_once('.') {
        None => {
            root.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = root
                .entry(head.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if !entry.is_object() {
                // A scalar and an object under the same name: keep both by
                // giving the nested part its full dotted key.
                root.insert(path.to_string(), v);
                return;
            }
            if let serde_json::Value::Object(m) = entry {
                insert_nested(m, rest, v);
            }
        }
    }
}

impl FromIterator<(Str, Value)> for Fields {
    fn from_iter<T: IntoIterator<Item = (Str, Value)>>(iter: T) -> Self {
        let mut f = Fields::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_str(), v)?;
        }
        m.end()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// When it happened, according to the event itself.
    pub time: Timestamp,
    /// When secmon read it (wall clock of the reader); lateness is judged
    /// on `time`, this is kept for latency metrics and the archive.
    pub received: Timestamp,
    pub source: SourceId,
    /// 1-based line number within its source, 0 when not line-based.
    pub line: u64,
    pub fields: Fields,
    /// The original text line, when keeping it was asked for.
    pub raw: Option<Arc<str>>,
}

/// Well-known top-level field names.
pub mod names {
    pub const EVENT: &str = "event";
    pub const LEVEL: &str = "level";
    pub const SERVICE: &str = "service";
    pub const MESSAGE: &str = "message";
    pub const TIMESTAMP: &str = "timestamp";
    pub const TRACE_ID: &str = "trace_id";
}

impl Event {
    pub fn new(time: Timestamp, fields: Fields) -> Self {
        Event {
            time,
            received: time,
            fields,
            ..Default::default()
        }
    }

    #[inline]
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.fields.get(path)
    }

    /// The event name (`auth.login_failed`), when it has one.
    #[inline]
    pub fn name(&self) -> Option<&str> {
        self.fields.get(names::EVENT).and_then(Value::as_str)
    }

    /// The event as seed-format JSON: `timestamp` first, then the nested fields.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.fields.to_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert(
                names::TIMESTAMP.to_string(),
                serde_json::Value::String(self.time.to_rfc3339()),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_fields_rebuild_nested_json() {
        let mut f = Fields::new();
        f.insert("event", Value::from("auth.login_failed"));
        f.insert("fields.ip", Value::from("1.2.3.4"));
        f.insert("fields.attempt", Value::Int(3));
        let e = Event::new(Timestamp(0), f);
        assert_eq!(e.name(), Some("auth.login_failed"));
        let j = e.to_json();
        assert_eq!(j["fields"]["ip"], "1.2.3.4");
        assert_eq!(j["fields"]["attempt"], 3);
        assert_eq!(j["timestamp"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn insert_replaces() {
        let mut f = Fields::new();
        f.insert("a", Value::Int(1));
        f.insert("a", Value::Int(2));
        assert_eq!(f.len(), 1);
        assert_eq!(f.get("a"), Some(&Value::Int(2)));
    }
}
