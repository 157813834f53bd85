//! Building events in the seed 003 log shape (`event`, `level`, `service`,
//! `message` at the top, everything else under `fields.`), so probe results
//! and Redis samples are indistinguishable from the same facts logged by an
//! application and the same rules and metrics apply to both.
//!
//! This module only assembles [`Event`]s; it decides nothing.

use secmon_core::{Event, Fields, Str, Timestamp, Value};

/// The names of the events this crate emits.
pub mod names {
    /// One per probe run.
    pub const PROBE_RESULT: &str = "probe.result";
    /// One per collector poll: memory use against the limit.
    pub const REDIS_MEMORY_SAMPLE: &str = "redis.memory_sample";
    /// One per collector poll: clients, throughput, keyspace.
    pub const REDIS_INFO: &str = "redis.info";
    /// One per collector poll: the timed SCAN.
    pub const REDIS_SCAN: &str = "redis.scan";
    /// A poll that failed (connection, timeout, authentication, protocol).
    pub const REDIS_COLLECTOR_ERROR: &str = "redis.collector_error";
}

pub(crate) struct EventBuilder {
    fields: Fields,
}

impl EventBuilder {
    pub fn new(event: &str, level: &str, service: &str) -> Self {
        let mut fields = Fields::with_capacity(24);
        fields.push(Str::const_new("event"), Value::from(event));
        fields.push(Str::const_new("level"), Value::from(level));
        fields.push(Str::const_new("service"), Value::from(service));
        EventBuilder { fields }
    }

    /// A top-level field (`message`).
    pub fn top(&mut self, key: &str, v: impl Into<Value>) -> &mut Self {
        self.fields.insert(key, v.into());
        self
    }

    /// `fields.<key>`.
    pub fn field(&mut self, key: &str, v: impl Into<Value>) -> &mut Self {
        let mut k = Str::with_capacity(7 + key.len());
        k.push_str("fields.");
        k.push_str(key);
        self.fields.insert(k, v.into());
        self
    }

    /// `fields.<key>` when there is a value.
    pub fn opt<V: Into<Value>>(&mut self, key: &str, v: Option<V>) -> &mut Self {
        if let Some(v) = v {
            self.field(key, v);
        }
        self
    }

    pub fn build(self, time: Timestamp) -> Event {
        Event::new(time, self.fields)
    }
}

/// Milliseconds as a float with microsecond precision: latencies below a
/// millisecond on loopback are common and must not all read 0.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Bytes to MiB (what Redis' `used_memory_human` calls M), 3 decimals.
pub(crate) fn mib(bytes: u64) -> f64 {
    round3(bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn round3(f: f64) -> f64 {
    (f * 1000.0).round() / 1000.0
}

/// A JSON value from a health body as an event value (objects and arrays are
/// kept as their JSON text, as the JSON parser does for nested arrays).
pub(crate) fn json_value(v: &serde_json::Value) -> Value {
    Value::from_json(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shape() {
        let mut b = EventBuilder::new("probe.result", "WARN", "management-server");
        b.field("ok", false)
            .field("latency_ms", 1.5)
            .top("message", "x");
        let e = b.build(Timestamp(0));
        let j = e.to_json();
        assert_eq!(j["event"], "probe.result");
        assert_eq!(j["level"], "WARN");
        assert_eq!(j["service"], "management-server");
        assert_eq!(j["fields"]["ok"], false);
        assert_eq!(j["fields"]["latency_ms"], 1.5);
        assert_eq!(millis(std::time::Duration::from_micros(1234)), 1.234);
        assert_eq!(mib(3 * 1024 * 1024 / 2), 1.5);
    }
}
