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

const ABSENCE_GLOBAL: &str = r#"
- id: heartbeat
  severity: high
  match: event = health.ok
  detector: {type: absence, window: 100ms}
"#;

#[test]
fn absence_global_clock_starts_at_first_event_of_any_kind() {
    let rs = ruleset(ABSENCE_GLOBAL, "");
    // Clock starts at 0 (an unrelated event); no health.ok → fire at 100.
    let (v, _) = run(&rs, cfg(0), [ev(0, "x", &[]), ev(150, "x", &[])]);
    assert_eq!(summary(&v), vec![("fire", 0, 100, String::new())]);
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert_eq!(f.value, 0.1);
    assert!(f.evidence.is_empty());
    // A matching event exactly at the deadline keeps it quiet.
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            ev(0, "x", &[]),
            ev(100, "health.ok", &[]),
            ev(199, "x", &[]),
        ],
    );
    assert!(v.is_empty(), "{v:?}");
    // Fires once per silence; the return resolves; the next silence fires again.
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            ev(0, "health.ok", &[]),
            ev(500, "x", &[]),
            ev(600, "health.ok", &[]),
            ev(800, "x", &[]),
        ],
    );
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 0, 100, String::new()),
            ("resolve", 0, 600, String::new()),
            ("fire", 0, 700, String::new())
        ]
    );
}

#[test]
fn absence_fires_only_when_the_watermark_passes() {
    let rs = ruleset(ABSENCE_GLOBAL, "");
    let mut e = secmon_engine::Engine::new(rs, cfg(0));
    let mut out = Vec::new();
    e.observe(ev(0, "health.ok", &[]), &mut out);
    e.advance_to(secmon_core::Timestamp(100), &mut out);
    assert!(out.is_empty(), "an event at exactly 100 could still arrive");
    e.advance_to(secmon_core::Timestamp(101), &mut out);
    assert_eq!(summary(&out), vec![("fire", 0, 100, String::new())]);
    // advance_to alone also starts the clock.
    let mut e = secmon_engine::Engine::new(ruleset(ABSENCE_GLOBAL, ""), cfg(0));
    let mut out = Vec::new();
    e.advance_to(secmon_core::Timestamp(1000), &mut out);
    e.advance_to(secmon_core::Timestamp(1101), &mut out);
    assert_eq!(summary(&out), vec![("fire", 0, 1100, String::new())]);
}

#[test]
fn absence_per_group() {
    let rs = ruleset(
        r#"
- id: host.silent
  severity: medium
  match: event = health.ok
  group_by: [fields.host]
  detector: {type: absence, window: 100ms}
"#,
        "",
    );
    let h = |t, host: &str| ev(t, "health.ok", &[("host", host.into())]);
    let (v, _) = run(
        &rs,
        cfg(0),
        [h(0, "a"), h(10, "b"), h(90, "a"), h(300, "b"), h(305, "a")],
    );
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 0, 110, "b".into()),
            ("fire", 0, 190, "a".into()),
            ("resolve", 0, 300, "b".into()),
            ("resolve", 0, 305, "a".into()),
        ]
    );
    // Flush does not invent a future past the last event.
    let (v, _) = run(&rs, cfg(0), [h(0, "a"), h(50, "b")]);
    assert!(v.is_empty());
}

const METRICS: &str = r#"
- name: cache.value.rejection.count
  type: counter
  match: event = cache.value_rejected
- name: redis.scan.duration.ms
  type: histogram
  match: event = redis.scan
  field: fields.duration_ms
- name: redis.memory.mb
  type: gauge
  match: event = redis.memory_sample
  field: fields.mb
- name: redis.memory.percent
  type: gauge
  match: event = redis.memory_sample
  field: fields.percent
"#;

fn rej(t: i64) -> secmon_core::Event {
    ev(t, "cache.value_rejected", &[])
}

#[test]
fn metric_rate_ticks_aligned_and_resolves() {
    let rs = ruleset(
        r#"
- id: rejections
  severity: high
  detector: {type: metric, expr: 'rate(cache.value.rejection.count[10s]) > 0.5'}
"#,
        METRICS,
    );
    // 6 events in (0, 10s] → rate 0.6 at tick 10s; nothing in (10s, 20s] → resolve at 20s.
    let mut evs: Vec<_> = (1..=6).map(|i| rej(3_000 + i)).collect();
    evs.push(ev(25_000, "x", &[]));
    let (v, _) = run(&rs, cfg(0), evs);
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 0, 10_000, String::new()),
            ("resolve", 0, 20_000, String::new())
        ]
    );
    let Verdict::Fire(f) = &v[0] else { panic!() };
    assert!((f.value - 0.6).abs() < 1e-9);
    assert_eq!(f.threshold, Some(0.5));
    // 5 events → rate 0.5, not > 0.5.
    let (v, _) = run(
        &rs,
        cfg(0),
        (1..=5)
            .map(|i| rej(3_000 + i))
            .chain([ev(25_000, "x", &[])]),
    );
    assert!(v.is_empty());
    // An event exactly at the tick belongs to its window (t − w, t].
    let (v, _) = run(
        &rs,
        cfg(0),
        (0..6).map(|_| rej(10_000)).chain([ev(25_000, "x", &[])]),
    );
    assert_eq!(fires(&v), vec![(0, 10_000, String::new())]);
}

#[test]
fn metric_hold_requires_true_at_every_tick() {
    let rs = ruleset(
        r#"
- id: rejections
  severity: high
  detector: {type: metric, expr: 'increase(cache.value.rejection.count[10s]) >= 1', for: 20s}
"#,
        METRICS,
    );
    // One event per 10s bucket from 5s to 45s: ticks 10..50 true; hold 20s → fire at 30s.
    let evs: Vec<_> = (0..5)
        .map(|i| rej(5_000 + i * 10_000))
        .chain([ev(70_000, "x", &[])])
        .collect();
    let (v, _) = run(&rs, cfg(0), evs);
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 0, 30_000, String::new()),
            ("resolve", 0, 60_000, String::new())
        ]
    );
    // A gap resets the hold: true at 10, 20, false at 30, true at 40, 50 → no fire.
    let evs = [5_000, 15_000, 35_000, 45_000]
        .map(rej)
        .into_iter()
        .chain([ev(55_000, "x", &[])]);
    let (v, _) = run(&rs, cfg(0), evs);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn metric_p95_and_or() {
    let rs = ruleset(
        r#"
- id: scan.slow
  severity: medium
  detector: {type: metric, expr: 'p95(redis.scan.duration.ms[1m]) > 100'}
- id: memory
  severity: high
  detector: {type: metric, expr: 'redis.memory.mb > 90 or redis.memory.percent > 90'}
- id: both
  severity: high
  detector: {type: metric, expr: 'redis.memory.mb > 50 and redis.memory.percent > 50'}
"#,
        METRICS,
    );
    let scan = |t, d: i64| ev(t, "redis.scan", &[("duration_ms", Value::Int(d))]);
    let mem = |t, mb: f64, pct: f64| {
        ev(
            t,
            "redis.memory_sample",
            &[("mb", mb.into()), ("percent", pct.into())],
        )
    };
    let mut evs: Vec<_> = (0..100)
        .map(|i| scan(1 + i, if i < 90 { 10 } else { 200 }))
        .collect();
    evs.push(mem(2_000, 60.0, 95.0));
    evs.push(ev(10_000, "x", &[]));
    let (v, _) = run(&rs, cfg(0), evs);
    assert_eq!(
        fires(&v),
        vec![
            (0, 10_000, String::new()),
            (1, 10_000, String::new()),
            (2, 10_000, String::new())
        ]
    );
    let vals: Vec<(f64, Option<f64>)> = v
        .iter()
        .filter_map(|x| match x {
            Verdict::Fire(f) => Some((f.value, f.threshold)),
            _ => None,
        })
        .collect();
    assert!((vals[0].0 - 200.0).abs() / 200.0 < 0.02, "p95 {vals:?}");
    assert_eq!(
        vals[1],
        (95.0, Some(90.0)),
        "value of the satisfied comparison"
    );
    assert_eq!(
        vals[2],
        (60.0, Some(50.0)),
        "and: value of the first comparison"
    );
    // 95% fast → p95 fast → no fire.
    let evs: Vec<_> = (0..100)
        .map(|i| scan(1 + i, if i < 96 { 10 } else { 200 }))
        .chain([ev(10_000, "x", &[])])
        .collect();
    let (v, _) = run(&rs, cfg(0), evs);
    assert!(fires(&v).iter().all(|f| f.0 != 0));
}

#[test]
fn metrics_snapshot_reports_totals_and_quantiles() {
    let rs = ruleset("[]", METRICS);
    let evs = (1..=10)
        .map(|i| {
            ev(
                i * 100,
                "redis.scan",
                &[("duration_ms", Value::Int(i * 10))],
            )
        })
        .chain((1001..1004).map(rej));
    let (_, e) = run(&rs, cfg(0), evs);
    let snap = e.metrics_snapshot();
    assert_eq!(snap[0].value, 3.0);
    assert_eq!(snap[1].count, 10);
    assert_eq!(snap[1].value, 100.0);
    let p50 = snap[1].p50.unwrap();
    assert!((45.0..=55.0).contains(&p50), "{p50}");
}

#[test]
fn shuffled_within_lateness_equals_sorted() {
    let rs = ruleset(
        &format!(
            "{BY_IP}{}",
            r#"
- id: spray
  severity: high
  group_by: [fields.ip]
  detector: {type: distinct, field: fields.email, count: 2, window: 100ms}
- id: silent
  severity: high
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {type: absence, window: 150ms}
- id: rate
  severity: high
  detector: {type: metric, expr: 'count(cache.value.rejection.count[10s]) > 3'}
"#
        ),
        METRICS,
    );
    // Distinct times so arrival order among ties cannot matter.
    let mut sorted = Vec::new();
    let mut seed = 7u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    let mut t = 0;
    for _ in 0..2000 {
        t += 1 + rnd() % 40;
        let e = if rnd() % 4 == 0 {
            rej(t)
        } else {
            ev(
                t,
                "auth.login_failed",
                &[
                    ("ip", format!("ip{}", rnd() % 5).as_str().into()),
                    ("email", format!("e{}", rnd() % 3).as_str().into()),
                ],
            )
        };
        sorted.push(e);
    }
    let lateness = 500;
    // Shuffle: each event displaced by less than the lateness.
    let mut keyed: Vec<(i64, secmon_core::Event)> = sorted
        .iter()
        .map(|e| (e.time.0 + rnd() % lateness, e.clone()))
        .collect();
    keyed.sort_by_key(|k| k.0);
    let shuffled: Vec<_> = keyed.into_iter().map(|k| k.1).collect();
    assert_ne!(
        shuffled.iter().map(|e| e.time.0).collect::<Vec<_>>(),
        sorted.iter().map(|e| e.time.0).collect::<Vec<_>>()
    );
    let (a, ea) = run(&rs, cfg(lateness), sorted);
    let (b, eb) = run(&rs, cfg(lateness), shuffled);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(ea.stats().late_events, 0);
    assert_eq!(eb.stats().late_events, 0);
    // Verdicts come out in event-time order.
    assert!(a.windows(2).all(|w| w[0].at() <= w[1].at()));
}

#[test]
fn events_older_than_the_watermark_are_late() {
    let rs = ruleset(BY_IP, "");
    let mut e = secmon_engine::Engine::new(rs, cfg(100));
    let mut out = Vec::new();
    e.observe(ip(1000, "a"), &mut out);
    e.observe(ip(900, "a"), &mut out); // == watermark: on time
    e.observe(ip(899, "a"), &mut out); // late
    e.flush(&mut out);
    let s = e.stats();
    assert_eq!((s.events_in, s.late_events, s.released), (3, 1, 2));
    assert!(out.is_empty());
}

#[test]
fn eviction_bounds_groups_and_counts() {
    let rs = ruleset(BY_IP, "");
    let mut c = cfg(0);
    c.max_groups = 100;
    let (_, e) = run(
        &rs,
        c,
        (0..1000).map(|i| ip(i, &format!("10.0.{}.{}", i / 256, i % 256))),
    );
    let s = e.stats();
    assert!(s.rules[0].groups_live <= 100);
    assert!(s.rules[0].groups_evicted >= 900);
}

#[test]
fn idle_groups_are_swept() {
    let rs = ruleset(BY_IP, "");
    // 500 groups in the first 100ms, then one group much later: the idle ones go.
    let evs = (0..500)
        .map(|i| ip(i / 5, &format!("g{i}")))
        .chain((0..5).map(|i| ip(10_000 + i, "late")));
    let (_, e) = run(&rs, cfg(0), evs);
    let s = e.stats();
    assert!(s.rules[0].groups_live <= 2, "{:?}", s.rules[0]);
    assert_eq!(s.rules[0].groups_evicted, 0);
}

#[test]
fn group_entries_are_small() {
    let t = secmon_engine::Engine::threshold_group_bytes();
    let d = secmon_engine::Engine::distinct_group_bytes();
    let a = secmon_engine::Engine::absence_group_bytes();
    eprintln!("bytes per group entry: threshold {t}, distinct {d}, absence {a}");
    assert!(t <= 48 && d <= 80 && a <= 48);
}

#[test]
fn metric_ticks_skip_long_quiet_gaps_with_same_verdicts() {
    let rs = ruleset(
        r#"
- id: mem
  severity: high
  detector: {type: metric, expr: 'redis.memory.mb > 90', for: 20s}
- id: rate
  severity: high
  detector: {type: metric, expr: 'rate(cache.value.rejection.count[1m]) > 0.01'}
"#,
        METRICS,
    );
    let mem = |t, mb: f64| {
        ev(
            t,
            "redis.memory_sample",
            &[("mb", mb.into()), ("percent", 1.0.into())],
        )
    };
    let year = 365 * 86_400_000i64;
    let started = std::time::Instant::now();
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            mem(1_000, 95.0),
            rej(2_000),
            mem(year, 10.0),
            ev(year + 30_000, "x", &[]),
        ],
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "a year of 10s ticks must be skipped"
    );
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 1, 10_000, String::new()),
            ("fire", 0, 30_000, String::new()),
            ("resolve", 1, 70_000, String::new()),
            // `year` is a multiple of 10s: its own tick sees the new sample.
            ("resolve", 0, year, String::new()),
        ]
    );
}

const PROBE_DOWN: &str = r#"
- id: service.down
  severity: critical
  match: event = probe.result
  group_by: [fields.probe]
  detector: {type: state, when: 'fields.consecutive_failures >= 3'}
"#;

#[test]
fn state_fires_once_while_it_holds_and_resolves_when_it_stops() {
    let rs = ruleset(PROBE_DOWN, "");
    let p = |t, probe: &str, n: i64| {
        ev(
            t,
            "probe.result",
            &[
                ("probe", probe.into()),
                ("consecutive_failures", Value::Int(n)),
            ],
        )
    };
    let (v, _) = run(
        &rs,
        cfg(0),
        [
            p(0, "mgmt", 1),
            p(10, "mgmt", 2),
            p(20, "mgmt", 3),  // fires
            p(25, "relay", 3), // another group fires on its own
            p(30, "mgmt", 4),  // still down: nothing new
            p(40, "mgmt", 0),  // recovered
            p(50, "mgmt", 0),
            p(60, "mgmt", 3), // down again: fires again
        ],
    );
    assert_eq!(
        summary(&v),
        vec![
            ("fire", 0, 20, "mgmt".into()),
            ("fire", 0, 25, "relay".into()),
            ("resolve", 0, 40, "mgmt".into()),
            ("fire", 0, 60, "mgmt".into()),
        ]
    );
}

#[test]
fn state_condition_errors_name_the_field() {
    let rules: Vec<secmon_engine::RuleConfig> = serde_saphyr::from_str(
        r#"
- id: bad
  severity: low
  detector: {type: state, when: 'fields.x >>> 3'}
"#,
    )
    .unwrap();
    let errs = secmon_engine::Ruleset::build(&rules, &[]).unwrap_err();
    assert!(
        errs.iter().any(|e| e.field.starts_with("detector.when")),
        "{errs:?}"
    );
}

/// An updown counts sessions up on creation and down on invalidation (any
/// reason), never below zero, and a metric rule can read its level.
#[test]
fn updown_counts_sessions_alive() {
    let rs = ruleset(
        r#"
- id: many.sessions
  severity: low
  detector: {type: metric, expr: 'sessions >= 2'}
"#,
        r#"
- name: sessions
  type: updown
  match: {event: auth.session_created}
  down: {event: auth.session_invalidated}
"#,
    );
    let inv = |t, reason: &str| {
        ev(
            t,
            "auth.session_invalidated",
            &[("reason", Value::from(reason))],
        )
    };
    let created = |t| ev(t, "auth.session_created", &[]);
    let evs = [
        inv(1_000, "timeout"), // started before we watched: no effect
        created(2_000),
        created(3_000),
        created(4_000),
        inv(5_000, "logout"),
        ev(20_000, "auth.login_failed", &[]),
    ];
    let (v, e) = run(&rs, cfg(0), evs);
    let snap = e.metrics_snapshot();
    assert_eq!(snap[0].value, 2.0);
    assert_eq!(snap[0].count, 5);
    assert_eq!(fires(&v).len(), 1);
}

/// Rules that share a group_by list (or a weight field) reuse the key (or
/// weight) read for the first of them; a rule with another list, a
/// condition beyond the event name, or a missing field must still see its
/// own. Checked against each rule run alone.
#[test]
fn shared_keys_and_weights_match_rules_run_alone() {
    let rules = r#"
- {id: a, severity: high, match: "event in [x, y]", group_by: [fields.ip], detector: {type: threshold, count: 3, window: 1s, weight: fields.n}}
- {id: b, severity: high, match: "event = x and fields.user = bob", group_by: [fields.ip], detector: {type: threshold, count: 2, window: 1s, weight: fields.n}}
- {id: c, severity: high, match: "event = y", group_by: [fields.user], detector: {type: threshold, count: 2, window: 1s}}
- {id: d, severity: high, match: "event in [x, y]", group_by: [fields.ip, fields.user], detector: {type: distinct, field: fields.port, count: 2, window: 5s}}
- {id: e, severity: high, group_by: [fields.ip], detector: {type: threshold, count: 4, window: 1s, weight: fields.m}}
"#;
    let events = || {
        let mut v = Vec::new();
        for i in 0..60i64 {
            let name = if i % 3 == 0 { "y" } else { "x" };
            let mut f: Vec<(&str, Value)> = Vec::new();
            if i % 5 != 0 {
                f.push(("ip", Value::from(["1.1.1.1", "2.2.2.2"][(i % 2) as usize])));
            }
            if i % 4 != 1 {
                f.push((
                    "user",
                    Value::from(["bob", "eve", "ann"][(i / 2 % 3) as usize]),
                ));
            }
            if i % 7 == 0 {
                f.push(("n", Value::Int(2)));
            }
            if i % 6 == 0 {
                f.push(("m", Value::Int(3)));
            }
            f.push(("port", Value::Int(i % 5)));
            v.push(ev(i * 100, name, &f));
        }
        v
    };
    let all = ruleset(rules, "");
    let (together, _) = run(&all, cfg(0), events());
    let configs: Vec<secmon_engine::RuleConfig> = serde_saphyr::from_str(rules).unwrap();
    for (i, rc) in configs.iter().enumerate() {
        let one = std::sync::Arc::new(
            secmon_engine::Ruleset::build(std::slice::from_ref(rc), &[]).unwrap(),
        );
        let (alone, _) = run(&one, cfg(0), events());
        let want: Vec<_> = summary(&alone)
            .into_iter()
            .map(|s| (s.0, s.2, s.3))
            .collect();
        let got: Vec<_> = summary(&together)
            .into_iter()
            .filter(|s| s.1 == i)
            .map(|s| (s.0, s.2, s.3))
            .collect();
        assert_eq!(got, want, "rule {}", rc.id);
        assert!(!want.is_empty(), "rule {} fires", rc.id);
    }
}

#[test]
fn without_evidence_and_with_recycled_fields() {
    let rs = ruleset(BY_IP, "");
    let mut e = secmon_engine::Engine::new(rs.clone(), cfg(10));
    e.set_evidence(false);
    e.recycle_fields();
    let mut out = Vec::new();
    for t in [0, 5, 30, 40, 50] {
        e.observe(ip(t, "a"), &mut out);
    }
    e.flush(&mut out);
    let (plain, _) = run(&rs, cfg(10), [0, 5, 30, 40, 50].map(|t| ip(t, "a")));
    assert_eq!(summary(&out), summary(&plain));
    let Verdict::Fire(f) = &out[0] else { panic!() };
    assert!(f.evidence.is_empty());
    let mut spent = Vec::new();
    e.take_spent(&mut spent);
    assert_eq!(spent.len(), 5, "one buffer per released event");
    assert!(spent.iter().all(|f| f.get("fields.ip").is_some()));
}
