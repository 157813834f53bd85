//! Every YAML example in the crate README is valid: `# watch-config` blocks
//! validate as probe/collector config, `# engine-rules` blocks build as a
//! ruleset in the real engine, and `# engine-rules (state detector)` blocks
//! (for a detector the engine may not have yet) at least have valid
//! conditions.

use secmon_engine::{MetricConfig, RuleConfig, Ruleset, parse_expr};
use secmon_watch::WatchConfig;
use serde::Deserialize;

const README: &str = include_str!("../README.md");

fn blocks(tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = README.lines();
    while let Some(l) = lines.next() {
        if l.trim() != "```yaml" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if body.first().map(|f| f.trim()) == Some(tag) {
            out.push(body.join("\n"));
        }
    }
    out
}

#[derive(Deserialize)]
struct Rules {
    metrics: Vec<MetricConfig>,
    rules: Vec<RuleConfig>,
}

#[test]
fn watch_config_examples_validate() {
    let b = blocks("# watch-config");
    assert!(!b.is_empty());
    for y in b {
        let c: WatchConfig = serde_saphyr::from_str(&y).expect("parses");
        let w = c.validate().expect("validates");
        assert!(!w.probes.is_empty());
    }
}

#[test]
fn rule_examples_build_in_the_engine() {
    let b = blocks("# engine-rules");
    assert_eq!(b.len(), 2);
    for y in b {
        let r: Rules = serde_saphyr::from_str(&y).expect("parses");
        if let Err(e) = Ruleset::build(&r.rules, &r.metrics) {
            panic!("{e:?}\n{y}");
        }
    }
}

#[test]
fn state_detector_examples_have_valid_conditions() {
    let b = blocks("# engine-rules (state detector)");
    assert_eq!(b.len(), 1);
    let v: serde_json::Value = serde_saphyr::from_str(&b[0]).expect("parses");
    let rules = v["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 5);
    for r in rules {
        for cond in [&r["match"], &r["detector"]["when"]] {
            if let Some(s) = cond.as_str() {
                parse_expr(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            }
        }
    }
}

/// The "works today" rules fire on probe results as the seed table says:
/// first failure → degraded (P2), third → down (P1), Redis disconnected →
/// fallback (P3); quiet windows resolve them.
#[test]
fn fallback_rules_escalate_on_probe_results() {
    use std::sync::Arc;
    use std::time::Duration;

    use secmon_core::{Timestamp, Value};
    use secmon_engine::{Engine, EngineConfig, Verdict};
    use secmon_watch::{Category, Outcome, ProbeState};

    let cfg: WatchConfig = serde_saphyr::from_str(&blocks("# watch-config")[0]).expect("parses");
    let probe = cfg.validate().expect("valid").probes.remove(0);
    let r: Rules = serde_saphyr::from_str(&blocks("# engine-rules")[1]).expect("parses");
    let ruleset = Arc::new(Ruleset::build(&r.rules, &r.metrics).expect("builds"));
    let ids: Vec<String> = r.rules.iter().map(|r| r.id.clone()).collect();
    let mut engine = Engine::new(ruleset, EngineConfig::default());

    let ok = |redis: bool| Outcome {
        extracted: vec![("redis_connected".into(), Value::Bool(redis))],
        ..Outcome::ok(Duration::from_millis(2))
    };
    let bad = || {
        Outcome::failed(
            Duration::from_millis(2),
            Category::Status,
            "unexpected status 500",
        )
    };
    let runs = [ok(true), bad(), bad(), bad(), ok(false), ok(true)];
    let mut state = ProbeState::default();
    let mut out = Vec::new();
    let t0 = 1_700_000_000_000i64;
    for (i, o) in runs.into_iter().enumerate() {
        let ev = state.record(&probe, o, Timestamp(t0 + i as i64 * 30_000));
        engine.observe(ev, &mut out);
    }
    engine.advance_to(Timestamp(t0 + 600_000), &mut out);
    // A still-failing probe fires again at each failing run (the window
    // starts empty after a fire); the alert lifecycle folds repeats of an
    // open alert into it, so the first fire per rule is what pages.
    let mut fired: Vec<(String, i64)> = Vec::new();
    for v in &out {
        if let Verdict::Fire(f) = v
            && !fired.iter().any(|(id, _)| *id == ids[f.rule])
        {
            fired.push((ids[f.rule].clone(), (f.at.0 - t0) / 30_000));
        }
    }
    assert_eq!(
        fired,
        vec![
            ("health-check-failing".to_string(), 1),
            ("health-check-down".to_string(), 3),
            ("redis-fallback-active".to_string(), 4),
        ]
    );
    let resolved: Vec<String> = out
        .iter()
        .filter_map(|v| match v {
            Verdict::Resolve(r) => Some(ids[r.rule].clone()),
            Verdict::Fire(_) => None,
        })
        .collect();
    assert_eq!(resolved.len(), 3, "{resolved:?}");
}
