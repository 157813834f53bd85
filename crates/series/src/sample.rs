//! What the binary hands to the store each tick: [`Sample`]s of a metric
//! name, a small [`Labels`] set, a [`Kind`] and a value.
//!
//! These are the store's own input types on purpose: the store does not
//! depend on the engine (whose `MetricSample` is one producer among probes,
//! the Redis collector and secmon's own health counters); the binary converts.
//! Nothing here validates sizes; the store does, against its [`crate::Config`].

use std::collections::BTreeMap;
use std::fmt;

use secmon_core::Str;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a series' values are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A monotonic running total (events seen, alerts fired). A drop in value
    /// is a reset (the producer restarted), as in Prometheus.
    Counter,
    /// A value that goes up and down (memory %, latency, queue depth).
    Gauge,
    /// One quantile of a distribution, stored like a gauge with a `quantile`
    /// label (`redis.scan.duration.ms{quantile="0.95"}`); kept apart from
    /// gauges so that the dashboard can tell them apart in `list()`.
    Summary,
}

impl Kind {
    pub(crate) fn code(self) -> u8 {
        match self {
            Kind::Counter => 0,
            Kind::Gauge => 1,
            Kind::Summary => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Kind> {
        match c {
            0 => Some(Kind::Counter),
            1 => Some(Kind::Gauge),
            2 => Some(Kind::Summary),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        })
    }
}

/// A label set, sorted by key with unique keys, so that the same set written
/// in any order names the same series. Serialized as a JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(Str, Str)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// Builds a set from pairs; a repeated key keeps the last value.
    pub fn from_pairs<K: Into<Str>, V: Into<Str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.insert(k, v);
        }
        l
    }

    /// Adds or replaces one label.
    pub fn insert(&mut self, key: impl Into<Str>, value: impl Into<Str>) {
        let key = key.into();
        let value = value.into();
        match self
            .0
            .binary_search_by(|(k, _)| k.as_str().cmp(key.as_str()))
        {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    pub fn with(mut self, key: impl Into<Str>, value: impl Into<Str>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes on the heap (strings longer than the inline size, the vector).
    pub(crate) fn heap_bytes(&self) -> usize {
        let spill = |s: &Str| {
            if s.is_heap_allocated() {
                s.capacity()
            } else {
                0
            }
        };
        self.0.capacity() * std::mem::size_of::<(Str, Str)>()
            + self
                .0
                .iter()
                .map(|(k, v)| spill(k) + spill(v))
                .sum::<usize>()
    }
}

/// `{k="v",k2="v2"}` as Prometheus writes it; empty for no labels.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("{}");
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels::from_pairs(m))
    }
}

/// The current value of one series at a sampling tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: Str,
    pub labels: Labels,
    pub kind: Kind,
    pub value: f64,
}

impl Sample {
    pub fn counter(name: impl Into<Str>, total: f64) -> Self {
        Sample {
            name: name.into(),
            labels: Labels::new(),
            kind: Kind::Counter,
            value: total,
        }
    }

    pub fn gauge(name: impl Into<Str>, value: f64) -> Self {
        Sample {
            name: name.into(),
            labels: Labels::new(),
            kind: Kind::Gauge,
            value,
        }
    }

    pub fn label(mut self, key: impl Into<Str>, value: impl Into<Str>) -> Self {
        self.labels.insert(key, value);
        self
    }

    /// One [`Kind::Summary`] sample per quantile, labelled
    /// `quantile="0.5"` etc. on top of `labels`. Missing quantiles (an empty
    /// window) are skipped, which leaves a gap rather than a fake zero.
    pub fn summary(
        name: impl Into<Str>,
        labels: &Labels,
        quantiles: &[(f64, Option<f64>)],
    ) -> Vec<Sample> {
        let name = name.into();
        quantiles
            .iter()
            .filter_map(|&(q, v)| {
                v.map(|value| Sample {
                    name: name.clone(),
                    labels: labels.clone().with("quantile", q.to_string()),
                    kind: Kind::Summary,
                    value,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_order_independent_and_serialize_as_a_map() {
        let a = Labels::from_pairs([("rule", "x"), ("db", "db0")]);
        let b = Labels::new().with("db", "db0").with("rule", "x");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), r#"{db="db0",rule="x"}"#);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"db":"db0","rule":"x"}"#
        );
        let back: Labels = serde_json::from_str(r#"{"rule":"x","db":"db0"}"#).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn summary_expands_to_quantile_series_and_skips_empty_ones() {
        let s = Sample::summary(
            "redis.scan.duration.ms",
            &Labels::new(),
            &[(0.5, Some(1.0)), (0.95, Some(3.0)), (0.99, None)],
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].labels.get("quantile"), Some("0.95"));
        assert_eq!(s[1].kind, Kind::Summary);
    }
}
