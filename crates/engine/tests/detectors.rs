#![allow(clippy::unwrap_used)]
//! Data-driven detector tests: exact window boundaries, weights, grouping,
//! resolves, absence, metric rules, lateness.

mod common;

use common::*;
use secmon_core::Value;
use secmon_engine::Verdict;

const BY_IP: &str = r#"
- id: brute.ip
  severity: high
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {type: threshold, count: 3, window: 100ms}
"#;

#[test]
fn threshold_n_minus_one_never_fires() {
    let rs = ruleset(BY_IP, "");
    let (v, _) = run(&rs, cfg(0), [ip(0, "a"), ip(10, "a"), ip(20, "b")]);
    assert!(fires(&v).is_empty());
}

#[test]
fn threshold_exactly_window_apart_fires() {
    let rs = ruleset(BY_IP, "");
    let (v, _) = run(&rs, cfg(0), [ip(0, "a"), ip(50, "a"), ip(100, "a")]);
    assert_eq!(fires(&v), vec![(0, 100, "a".into())]);
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert_eq!(f.value, 3.0);
    assert_eq!(f.threshold, Some(3.0));
    assert_eq!(f.evidence.len(), 1);
    assert_eq!(f.evidence[0].time.0, 100);
    assert_eq!(f.group[0].0.as_str(), "fields.ip");
}

#[test]
fn threshold_window_plus_one_never_fires() {
    let rs = ruleset(BY_IP, "");
    let (v, _) = run(&rs, cfg(0), [ip(0, "a"), ip(50, "a"), ip(101, "a")]);
    assert!(fires(&v).is_empty());
}

#[test]
fn threshold_window_empties_after_fire() {
    let rs = ruleset(BY_IP, "");
    let evs = (0..7).map(|i| ip(i, "a"));
    let (v, _) = run(&rs, cfg(0), evs);
    // Fires at the 3rd and 6th event, not on every event after the 3rd.
    assert_eq!(fires(&v), vec![(0, 2, "a".into()), (0, 5, "a".into())]);
}

#[test]
fn more_than_needs_n_plus_one() {
    let rs = ruleset(
        r#"
- id: r
  severity: high
  detector: {type: threshold, more_than: 2, window: 1s}
"#,
        "",
    );
    let (v, _) = run(&rs, cfg(0), [ip(0, "a"), ip(1, "b")]);
    assert!(fires(&v).is_empty());
    let (v, _) = run(&rs, cfg(0), [ip(0, "a"), ip(1, "b"), ip(2, "c")]);
    assert_eq!(fires(&v), vec![(0, 2, String::new())]);
}

#[test]
fn weights_count_occurrences() {
    let rs = ruleset(
        r#"
- id: ssh
  severity: high
  group_by: [fields.ip]
  detector: {type: threshold, count: 5, window: 1m, weight: fields.repeat}
"#,
        "",
    );
    let e = |t, r: Option<Value>| {
        let mut f = vec![("ip", Value::from("x"))];
        if let Some(r) = r {
            f.push(("repeat", r));
        }
        ev(t, "sshd.failed", &f)
    };
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            e(0, Some(Value::Int(3))),
            e(1, None),
            e(2, Some("bogus".into())),
        ],
    );
    assert_eq!(fires(&v), vec![(0, 2, "x".into())]);
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert_eq!(f.value, 5.0);
}

#[test]
fn group_by_missing_field_is_ungrouped() {
    let rs = ruleset(BY_IP, "");
    let (v, e) = run(&rs, cfg(0), [ev(0, "auth.login_failed", &[]), ip(1, "a")]);
    assert!(v.is_empty());
    let s = e.stats();
    assert_eq!(s.rules[0].ungrouped, 1);
    assert_eq!(s.rules[0].matched, 1);
}

#[test]
fn multi_field_groups_and_int_values() {
    let rs = ruleset(
        r#"
- id: r
  severity: low
  group_by: [fields.user, fields.n]
  detector: {type: threshold, count: 2, window: 1s}
"#,
        "",
    );
    let e = |t, u: &str, n: i64| ev(t, "x", &[("user", u.into()), ("n", Value::Int(n))]);
    let (v, _) = run(&rs, cfg(0), [e(0, "a", 1), e(1, "a", 2), e(2, "a", 1)]);
    assert_eq!(fires(&v), vec![(0, 2, "a,1".into())]);
}

#[test]
fn single_fires_every_matching_event() {
    let rs = ruleset(
        r#"
- id: admin.action
  severity: medium
  match: {event: authz.admin_action}
  detector: {type: single}
"#,
        "",
    );
    let (v, e) = run(
        &rs,
        cfg(0),
        [
            ev(0, "authz.admin_action", &[]),
            ev(1, "other", &[]),
            ev(2, "authz.admin_action", &[]),
        ],
    );
    assert_eq!(
        fires(&v),
        vec![(0, 0, String::new()), (0, 2, String::new())]
    );
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert_eq!((f.value, f.threshold), (1.0, None));
    assert_eq!(e.stats().rules[0].fired, 2);
}

#[test]
fn threshold_resolves_after_a_quiet_window() {
    let rs = ruleset(BY_IP, "");
    // Fire at 2; more events at 50 and 120 keep it firing; quiet after 120 → resolve at 220.
    let (v, e) = run(
        &rs,
        cfg(0),
        [
            ip(0, "a"),
            ip(1, "a"),
            ip(2, "a"),
            ip(50, "a"),
            ip(120, "a"),
            ip(400, "z"),
        ],
    );
    assert_eq!(
        summary(&v),
        vec![("fire", 0, 2, "a".into()), ("resolve", 0, 220, "a".into())]
    );
    assert_eq!(e.stats().rules[0].resolved, 1);
}

#[test]
fn resolve_not_invented_past_the_end_of_replay() {
    let rs = ruleset(BY_IP, "");
    let (v, _) = run(
        &rs,
        cfg(0),
        [ip(0, "a"), ip(1, "a"), ip(2, "a"), ip(50, "b")],
    );
    assert_eq!(summary(&v), vec![("fire", 0, 2, "a".into())]);
}

#[test]
fn distinct_counts_distinct_values_only() {
    let rs = ruleset(
        r#"
- id: spray
  severity: high
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {type: distinct, field: fields.email, count: 3, window: 100ms}
"#,
        "",
    );
    let e = |t, em: &str| {
        ev(
            t,
            "auth.login_failed",
            &[("ip", "x".into()), ("email", em.into())],
        )
    };
    let (v, _) = run(
        &rs,
        cfg(0),
        [e(0, "a"), e(1, "a"), e(2, "b"), e(3, "b"), e(4, "b")],
    );
    assert!(fires(&v).is_empty());
    let (v, _) = run(&rs, cfg(0), [e(0, "a"), e(1, "a"), e(2, "b"), e(100, "c")]);
    assert_eq!(fires(&v), vec![(0, 100, "x".into())]);
    let (v, _) = run(&rs, cfg(0), [e(0, "a"), e(2, "b"), e(101, "c")]);
    assert!(fires(&v).is_empty(), "a is 101ms old");
    // Events lacking the field are ignored.
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            e(0, "a"),
            e(1, "b"),
            ev(2, "auth.login_failed", &[("ip", "x".into())]),
        ],
    );
    assert!(fires(&v).is_empty());
}
