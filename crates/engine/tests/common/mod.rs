//! Shared helpers for the engine's integration tests: rules from YAML,
//! events from (time, name, fields) and running a stream.
#![allow(dead_code)]

use std::sync::Arc;

use secmon_core::{Dur, Event, Fields, Timestamp, Value};
use secmon_engine::{Engine, EngineConfig, MetricConfig, RuleConfig, Ruleset, Verdict};

pub fn ruleset(rules_yaml: &str, metrics_yaml: &str) -> Arc<Ruleset> {
    let rules: Vec<RuleConfig> = serde_saphyr::from_str(rules_yaml).expect("rules yaml");
    let metrics: Vec<MetricConfig> = if metrics_yaml.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(metrics_yaml).expect("metrics yaml")
    };
    Arc::new(Ruleset::build(&rules, &metrics).unwrap_or_else(|e| panic!("{e:?}")))
}

pub fn cfg(lateness_ms: i64) -> EngineConfig {
    EngineConfig {
        lateness: Dur(lateness_ms),
        eval_interval: Dur::from_secs(10),
        max_groups: 1_000_000,
    }
}

pub fn ev(t: i64, name: &str, fields: &[(&str, Value)]) -> Event {
    let mut f = Fields::new();
    f.insert("event", Value::from(name));
    for (k, v) in fields {
        f.insert(format!("fields.{k}").as_str(), v.clone());
    }
    Event::new(Timestamp(t), f)
}

pub fn ip(t: i64, ip: &str) -> Event {
    ev(t, "auth.login_failed", &[("ip", ip.into())])
}

/// Runs events through a fresh engine, then flushes.
pub fn run(
    rs: &Arc<Ruleset>,
    cfg: EngineConfig,
    events: impl IntoIterator<Item = Event>,
) -> (Vec<Verdict>, Engine) {
    let mut e = Engine::new(rs.clone(), cfg);
    let mut out = Vec::new();
    for x in events {
        e.observe(x, &mut out);
    }
    e.flush(&mut out);
    (out, e)
}

/// (kind, rule, at, group values) for compact assertions.
pub fn summary(v: &[Verdict]) -> Vec<(&'static str, usize, i64, String)> {
    v.iter()
        .map(|x| {
            let g = x
                .group()
                .iter()
                .map(|(_, v)| v.to_string())
                .collect::<Vec<_>>()
                .join(",");
            (
                if x.is_fire() { "fire" } else { "resolve" },
                x.rule(),
                x.at().0,
                g,
            )
        })
        .collect()
}

pub fn fires(v: &[Verdict]) -> Vec<(usize, i64, String)> {
    summary(v)
        .into_iter()
        .filter(|s| s.0 == "fire")
        .map(|s| (s.1, s.2, s.3))
        .collect()
}
