//! The serde shapes of the rule language: what a user writes in YAML under
//! `rules:`, `metrics:` and `engine:`. Every struct denies unknown fields so a
//! typo (`windw: 5m`) is an error instead of a silently ignored setting.
//!
//! This module only describes and deserializes; it does not validate beyond
//! what types enforce. [`crate::Ruleset::build`] turns these into runtime
//! [`crate::Rule`]s and reports every problem with its field path.

use std::collections::BTreeMap;
use std::fmt;

use secmon_core::{Dur, FieldPath, Priority, Severity};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// One detection rule as written in config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `[a-z0-9][a-z0-9_.-]*`, unique within the ruleset.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub severity: Severity,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Which events the rule looks at; absent means every event.
    #[serde(rename = "match", default)]
    pub match_: Option<ConditionConfig>,
    /// Paths whose values split the rule's state into independent groups.
    #[serde(default)]
    pub group_by: Vec<FieldPath>,
    pub detector: DetectorConfig,
    /// Names of response actions; resolved by the binary, not here.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// What a rule counts and when it fires.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// At least `count` (or more than `more_than`) matching events within `window`.
    Threshold {
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        more_than: Option<u64>,
        window: Dur,
        /// Numeric field saying how many occurrences one event stands for
        /// (sshd "message repeated 3 times"); missing or invalid counts 1.
        #[serde(default)]
        weight: Option<FieldPath>,
    },
    /// At least `count` distinct values of `field` within `window`.
    Distinct {
        field: FieldPath,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        more_than: Option<u64>,
        window: Dur,
    },
    /// Every matching event fires.
    Single,
    /// A metric expression (`rate(x[5m]) > 2`) true for `for` (default 0).
    Metric {
        expr: String,
        #[serde(rename = "for", default)]
        hold: Dur,
    },
    /// No matching event for `window`.
    Absence { window: Dur },
    /// The latest matching event of a group decides: the group fires when
    /// one satisfies `when` and resolves when a later one does not (a probe
    /// failing three times in a row, then recovering).
    State { when: ConditionConfig },
}

/// A condition: either the string expression language or the structured map form.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionConfig {
    Expr(String),
    /// Keys in written order, duplicates kept (`fields.ip` may appear twice); ANDed.
    Map(Vec<(String, serde_json::Value)>),
}

impl<'de> Deserialize<'de> for ConditionConfig {
    // Hand-written rather than `#[serde(untagged)]`: untagged buffers the
    // input and replaces the YAML parser's located error with "data did not
    // match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConditionConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition expression string or a map of field conditions")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ConditionConfig, E> {
                Ok(ConditionConfig::Expr(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<ConditionConfig, E> {
                Ok(ConditionConfig::Expr(s))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ConditionConfig, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    let v: serde_json::Value = m.next_value()?;
                    out.push((k, v));
                }
                Ok(ConditionConfig::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Kind of a derived metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Monotonic count; `rate`/`increase` apply.
    Counter,
    /// Distribution of observed values; quantiles apply.
    Histogram,
    /// Last observed value.
    Gauge,
    /// A level counted up and down by events, such as the sessions alive
    /// now: +1 for each event matching `match`, −1 for each matching
    /// `down`. Kept at or above zero, because an end whose start happened
    /// before secmon was watching cannot be paired with anything.
    #[serde(rename = "updown")]
    UpDown,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Histogram => "histogram",
            MetricKind::Gauge => "gauge",
            MetricKind::UpDown => "updown",
        }
    }
}

/// A metric derived from events (top-level `metrics:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Dotted name, e.g. `cache.value.rejection.count`.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Which events update the metric; absent means every event.
    #[serde(rename = "match", default)]
    pub match_: Option<ConditionConfig>,
    /// Updown only (and required there): the events that count the level
    /// down, e.g. `{event: auth.session_invalidated}`.
    #[serde(default)]
    pub down: Option<ConditionConfig>,
    /// Histogram/gauge: the observed number (required). Counter: optional
    /// increment (default 1). Updown: not allowed (each event counts one).
    #[serde(default)]
    pub field: Option<FieldPath>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
}

/// Engine-wide settings (`engine:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How late (event time behind the newest event) an event may arrive and
    /// still be counted. Default 5s.
    pub lateness: Dur,
    /// Metric evaluation step and metric bucket width. Default 10s.
    pub eval_interval: Dur,
    /// Live groups per rule before the least recently seen are evicted.
    /// Default 1,000,000.
    pub max_groups: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lateness: Dur::from_secs(5),
            eval_interval: Dur::from_secs(10),
            max_groups: 1_000_000,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rule_yaml_deserializes() {
        let y = r#"
id: brute-force.ip
severity: high
match: event = auth.login_failed
group_by: [fields.ip]
detector: { type: threshold, more_than: 10, window: 5m }
actions: [ban-ip]
"#;
        let r: RuleConfig = serde_saphyr::from_str(y).expect("parses");
        assert_eq!(r.id, "brute-force.ip");
        assert!(r.enabled);
        assert_eq!(
            r.detector,
            DetectorConfig::Threshold {
                count: None,
                more_than: Some(10),
                window: Dur::from_mins(5),
                weight: None
            }
        );
        assert_eq!(
            r.match_,
            Some(ConditionConfig::Expr("event = auth.login_failed".into()))
        );
    }

    #[test]
    fn map_condition_keeps_duplicates_and_order() {
        let y = "match: {event: auth.login_failed, fields.ip: [a, b], fields.attempt: {gte: 3}, fields.ip: {cidr: 10.0.0.0/8}}\n";
        #[derive(Deserialize)]
        struct W {
            #[serde(rename = "match")]
            m: ConditionConfig,
        }
        let w: Result<W, _> = serde_saphyr::from_str(y);
        // Some YAML loaders reject duplicate keys; either outcome must not panic.
        if let Ok(w) = w {
            let ConditionConfig::Map(m) = w.m else {
                panic!("map form expected")
            };
            assert_eq!(m[0].0, "event");
            assert_eq!(m[2].1["gte"], 3);
        }
    }

    #[test]
    fn unknown_fields_rejected() {
        let y = "id: x\nseverity: low\ndetector: {type: single}\nwindw: 5m\n";
        assert!(serde_saphyr::from_str::<RuleConfig>(y).is_err());
        let y = "id: x\nseverity: low\ndetector: {type: threshold, count: 3, window: 5m, foo: 1}\n";
        assert!(serde_saphyr::from_str::<RuleConfig>(y).is_err());
    }

    #[test]
    fn engine_defaults() {
        let c: EngineConfig = serde_saphyr::from_str("lateness: 1s\n").expect("parses");
        assert_eq!(c.lateness, Dur::from_secs(1));
        assert_eq!(c.eval_interval, Dur::from_secs(10));
        assert_eq!(c.max_groups, 1_000_000);
    }
}
