#![allow(clippy::unwrap_used)]
//! State across a reload (`Engine::carry_over`) and alerts taken over from
//! outside the engine (`Engine::adopt`).

mod common;

use common::*;
use secmon_core::{Dur, Timestamp, Value};
use secmon_engine::{Adoption, Engine, EngineConfig, Verdict};

/// Two threshold rules on failed logins by IP; `window` of the second.
fn rules(window: &str) -> String {
    format!(
        r#"
- id: five.per.minute
  severity: high
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {{type: threshold, count: 5, window: 1m}}
- id: other
  severity: low
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {{type: threshold, count: 5, window: {window}}}
"#
    )
}

fn feed(e: &mut Engine, events: impl IntoIterator<Item = secmon_core::Event>) -> Vec<Verdict> {
    let mut out = Vec::new();
    for x in events {
        e.observe(x, &mut out);
    }
    out
}

fn advance(e: &mut Engine, t: i64) -> Vec<Verdict> {
    let mut out = Vec::new();
    e.advance_to(Timestamp(t), &mut out);
    out
}

fn group(ip: &str) -> Vec<(String, String)> {
    vec![("fields.ip".to_string(), ip.to_string())]
}

#[test]
fn unchanged_rule_keeps_its_partial_window_changed_rule_starts_fresh() {
    let mut e = Engine::new(ruleset(&rules("1m"), ""), cfg(0));
    assert!(feed(&mut e, (0..4).map(|i| ip(i * 1_000, "a"))).is_empty());

    // Reload: `other` gets a longer window, `five.per.minute` is unchanged
    // but for its severity (which detection does not read).
    let new = ruleset(
        &rules("2m").replace("severity: high", "severity: critical"),
        "",
    );
    let (mut e, report) = Engine::carry_over(new, cfg(0), e);
    assert_eq!(report.kept, ["five.per.minute"]);
    assert_eq!(report.fresh, ["other"]);
    assert!(report.removed.is_empty());

    // The fifth event: the kept rule fires at its threshold, the changed one
    // has seen one event.
    let v = feed(&mut e, [ip(4_000, "a")]);
    assert_eq!(fires(&v), vec![(0, 4_000, "a".into())]);
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert_eq!(f.value, 5.0);
    assert_eq!(e.stats().rules[0].fired, 1, "counters move with the state");
    let v = feed(&mut e, (5..9).map(|i| ip(i * 1_000, "a")));
    assert_eq!(fires(&v), vec![(1, 8_000, "a".into())]);
}

#[test]
fn a_kept_rule_still_resolves_its_alert_and_a_removed_rule_is_reported() {
    let mut e = Engine::new(ruleset(&rules("1m"), ""), cfg(0));
    let v = feed(&mut e, (0..5).map(|i| ip(i * 1_000, "a")));
    assert_eq!(v.len(), 2, "both rules fire: {v:?}");

    let only_first = rules("1m");
    let only_first = &only_first[..only_first.find("- id: other").unwrap()];
    let (mut e, report) = Engine::carry_over(ruleset(only_first, ""), cfg(0), e);
    assert_eq!(report.kept, ["five.per.minute"]);
    assert_eq!(report.removed, ["other"]);
    // Quiet for the window after the last event: the alert resolves.
    assert!(advance(&mut e, 63_999).is_empty());
    let v = advance(&mut e, 64_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 64_000, "a".into())]);
}

#[test]
fn the_lateness_buffer_and_the_watermark_move_over() {
    let mut e = Engine::new(ruleset(&rules("1m"), ""), cfg(5_000));
    // Still buffered (the watermark is 3 s behind the newest event).
    assert!(feed(&mut e, (0..4).map(|i| ip(i * 1_000, "a"))).is_empty());
    let w = e.watermark();
    let (mut e, _) = Engine::carry_over(ruleset(&rules("1m"), ""), cfg(5_000), e);
    assert_eq!(e.watermark(), w);
    assert_eq!(e.stats().buffered, 4);
    assert_eq!(e.stats().events_in, 4);
    // An event older than the watermark is still late after the reload.
    let mut out = Vec::new();
    e.observe(ip(-10_000, "a"), &mut out);
    assert_eq!(e.stats().late_events, 1);
    let v = feed(&mut e, [ip(4_000, "a"), ip(20_000, "z")]);
    assert_eq!(
        fires(&v),
        vec![(0, 4_000, "a".into()), (1, 4_000, "a".into())]
    );
}

#[test]
fn an_alert_taken_over_after_a_restart_resolves_after_a_quiet_window() {
    let rs = ruleset(&rules("1m"), "");
    let mut e = Engine::new(rs, cfg(0));
    let mut out = Vec::new();
    // No time yet: the caller tries again later.
    assert_eq!(e.adopt(0, &group("a"), &mut out), Adoption::NoTime);
    assert!(advance(&mut e, 100_000).is_empty());
    assert_eq!(e.adopt(0, &group("a"), &mut out), Adoption::Adopted);
    assert_eq!(e.adopt(0, &group("a"), &mut out), Adoption::Known);
    assert_eq!(
        e.adopt(0, &[("fields.user".into(), "x".into())], &mut out),
        Adoption::GroupMismatch
    );
    assert!(out.is_empty());
    // A matching event (below the threshold) is new evidence: the quiet
    // window starts again from it.
    assert!(feed(&mut e, [ip(130_000, "a")]).is_empty());
    assert!(advance(&mut e, 161_000).is_empty());
    let v = advance(&mut e, 190_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 190_000, "a".into())]);
    // Once resolved, it is gone: nothing more.
    assert!(advance(&mut e, 400_000).is_empty());
}

#[test]
fn an_alert_taken_over_by_a_group_with_events_resolves_from_its_last_event() {
    let mut e = Engine::new(ruleset(&rules("1m"), ""), cfg(0));
    assert!(feed(&mut e, [ip(10_000, "a")]).is_empty());
    assert!(advance(&mut e, 20_000).is_empty());
    let mut out = Vec::new();
    assert_eq!(e.adopt(0, &group("a"), &mut out), Adoption::Adopted);
    let v = advance(&mut e, 70_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 70_000, "a".into())]);
}

#[test]
fn distinct_absence_state_and_single_alerts_taken_over() {
    let rs = ruleset(
        r#"
- id: spray
  severity: high
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {type: distinct, field: fields.user, count: 3, window: 10s}
- id: silent
  severity: high
  match: event = heartbeat
  group_by: [fields.host]
  detector: {type: absence, window: 30s}
- id: down
  severity: high
  match: event = probe.result
  group_by: [fields.probe]
  detector: {type: state, when: 'fields.down = true'}
- id: each
  severity: low
  match: event = admin.action
  detector: {type: single}
- id: off
  severity: low
  enabled: false
  detector: {type: single}
"#,
        "",
    );
    let mut e = Engine::new(rs, cfg(0));
    let probe = |t, p: &str, down: bool| {
        ev(
            t,
            "probe.result",
            &[("probe", p.into()), ("down", Value::Bool(down))],
        )
    };
    assert!(feed(&mut e, [probe(1_000, "web", false)]).is_empty());
    let mut out = Vec::new();
    let host = |h: &str| vec![("fields.host".to_string(), h.to_string())];
    let p = |n: &str| vec![("fields.probe".to_string(), n.to_string())];
    assert_eq!(e.adopt(0, &group("a"), &mut out), Adoption::Adopted);
    assert_eq!(e.adopt(1, &host("h1"), &mut out), Adoption::Adopted);
    assert_eq!(e.adopt(2, &p("db"), &mut out), Adoption::Adopted);
    assert_eq!(e.adopt(3, &[], &mut out), Adoption::Stateless);
    assert_eq!(e.adopt(4, &[], &mut out), Adoption::Disabled);
    // The web probe's latest result says up: resolved at once.
    assert_eq!(e.adopt(2, &p("web"), &mut out), Adoption::Resolved);
    assert_eq!(summary(&out), vec![("resolve", 2, 1_000, "web".into())]);

    // distinct: a quiet window; absence: the heartbeat returns; state: the
    // probe reports up.
    let v = advance(&mut e, 11_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 11_000, "a".into())]);
    let v = feed(
        &mut e,
        [
            ev(12_000, "heartbeat", &[("host", "h1".into())]),
            probe(13_000, "db", true),
            probe(14_000, "db", false),
        ],
    );
    assert_eq!(
        summary(&v),
        vec![
            ("resolve", 1, 12_000, "h1".into()),
            ("resolve", 2, 14_000, "db".into())
        ]
    );
}

#[test]
fn metric_state_and_stores_move_over_and_adopted_metric_alerts_wait_for_their_windows() {
    let metrics = "- {name: errors, type: counter, match: {event: error}}\n";
    let rule = |threshold: u32| {
        format!(
            "- id: error.rate\n  severity: high\n  detector: {{type: metric, expr: 'increase(errors[30s]) >= {threshold}'}}\n"
        )
    };
    let cfg = EngineConfig {
        lateness: Dur(0),
        eval_interval: Dur::from_secs(10),
        max_groups: 1_000,
    };
    let errors = |t: i64| (0..3).map(move |i| ev(t + i, "error", &[]));
    let mut e = Engine::new(ruleset(&rule(3), metrics), cfg);
    feed(&mut e, errors(1_000));
    let v = advance(&mut e, 10_001);
    assert_eq!(summary(&v), vec![("fire", 0, 10_000, String::new())]);

    // Unchanged: firing state and the store move over; no second fire, and
    // the resolve comes when the errors leave the window.
    let (mut e, report) = Engine::carry_over(ruleset(&rule(3), metrics), cfg, e);
    assert_eq!((report.kept.len(), report.metrics_kept), (1, 1));
    assert!(advance(&mut e, 30_001).is_empty());
    let v = advance(&mut e, 40_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 40_000, String::new())]);

    // A restart: a fresh engine takes the alert over. The condition is false
    // at once (no data), but the alert is judged only once the 30 s window
    // has filled again.
    let mut e = Engine::new(ruleset(&rule(3), metrics), cfg);
    assert!(advance(&mut e, 100_000).is_empty());
    let mut out = Vec::new();
    assert_eq!(e.adopt(0, &[], &mut out), Adoption::Adopted);
    assert!(advance(&mut e, 125_000).is_empty());
    let v = advance(&mut e, 130_001);
    assert_eq!(summary(&v), vec![("resolve", 0, 130_000, String::new())]);

    // A changed rule: the store is kept (the metric did not change) but the
    // rule starts fresh.
    let mut e = Engine::new(ruleset(&rule(3), metrics), cfg);
    feed(&mut e, errors(1_000));
    assert_eq!(advance(&mut e, 10_001).len(), 1);
    let (mut e, report) = Engine::carry_over(ruleset(&rule(2), metrics), cfg, e);
    assert_eq!(report.fresh, ["error.rate"]);
    assert_eq!(report.metrics_kept, 1);
    // Not firing as far as the new rule knows: it fires again at once
    // (the store still holds the errors).
    let v = advance(&mut e, 20_001);
    assert_eq!(summary(&v), vec![("fire", 0, 20_000, String::new())]);
}

#[test]
fn a_new_global_absence_rule_starts_its_silence_at_the_reload() {
    let base = rules("1m");
    let mut e = Engine::new(ruleset(&base, ""), cfg(0));
    feed(&mut e, [ip(0, "a")]);
    assert!(advance(&mut e, 50_000).is_empty());
    let with_absence = format!(
        "{base}- id: quiet\n  severity: low\n  match: event = heartbeat\n  detector: {{type: absence, window: 20s}}\n"
    );
    let (mut e, _) = Engine::carry_over(ruleset(&with_absence, ""), cfg(0), e);
    assert!(advance(&mut e, 69_999).is_empty());
    let v = advance(&mut e, 70_001);
    assert_eq!(summary(&v), vec![("fire", 2, 70_000, String::new())]);
}
