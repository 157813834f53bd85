#![allow(clippy::unwrap_used)]
//! threshold and distinct against a naive reference: for each event in
//! release order, recompute from the full list of the group's events since
//! its last fire. Streams have random group keys, weights, missing fields,
//! and arrive out of order within the lateness.

mod common;

use common::*;
use proptest::prelude::*;
use secmon_core::{Event, Value};
use secmon_engine::Verdict;

const RULES: &str = r#"
- id: thr
  severity: high
  match: event = a
  group_by: [fields.g]
  detector: {type: threshold, count: 4, window: 50ms, weight: fields.w}
- id: dist
  severity: high
  match: event = a
  group_by: [fields.g]
  detector: {type: distinct, field: fields.v, count: 3, window: 40ms}
"#;
const N_THR: u64 = 4;
const T_THR: i64 = 50;
const N_DIST: usize = 3;
const T_DIST: i64 = 40;
const LATENESS: i64 = 30;

#[derive(Debug, Clone)]
struct Spec {
    dt: i64,
    g: Option<u8>,
    v: Option<u8>,
    w: Option<u8>,
    jitter: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0i64..12,
        prop::option::weighted(0.95, 0u8..4),
        prop::option::weighted(0.9, 0u8..5),
        prop::option::weighted(0.3, 0u8..4),
        0i64..LATENESS,
    )
        .prop_map(|(dt, g, v, w, jitter)| Spec {
            dt,
            g,
            v,
            w,
            jitter,
        })
}

fn to_events(specs: &[Spec]) -> Vec<(i64, Event)> {
    let mut t = 0;
    specs
        .iter()
        .map(|s| {
            t += s.dt;
            let mut f: Vec<(&str, Value)> = Vec::new();
            if let Some(g) = s.g {
                f.push(("g", Value::Int(i64::from(g))));
            }
            if let Some(v) = s.v {
                f.push(("v", format!("v{v}").as_str().into()));
            }
            if let Some(w) = s.w {
                f.push(("w", Value::Int(i64::from(w))));
            }
            (t + s.jitter, ev(t, "a", &f))
        })
        .collect()
}

/// (rule, at, group, value) of every fire, computed naively.
fn reference(release_order: &[Event]) -> Vec<(usize, i64, String, f64)> {
    let mut out = Vec::new();
    // Per group: index into release_order of the event after the last fire.
    let mut thr_start: std::collections::HashMap<String, usize> = Default::default();
    let mut dist_start: std::collections::HashMap<String, usize> = Default::default();
    let key = |e: &Event| e.get("fields.g").map(|v| v.to_key().to_string());
    for (i, e) in release_order.iter().enumerate() {
        let Some(g) = key(e) else { continue };
        let t = e.time.0;
        // threshold
        let start = *thr_start.get(&g).unwrap_or(&0);
        let sum: u64 = release_order[start..=i]
            .iter()
            .filter(|x| key(x).as_deref() == Some(&g) && t - x.time.0 <= T_THR)
            .map(|x| match x.get("fields.w").and_then(Value::as_f64) {
                Some(w) if w >= 1.0 => w as u64,
                _ => 1,
            })
            .sum();
        if sum >= N_THR {
            out.push((0, t, g.clone(), sum as f64));
            thr_start.insert(g.clone(), i + 1);
        }
        // distinct
        if e.get("fields.v").is_some() {
            let start = *dist_start.get(&g).unwrap_or(&0);
            let mut vals: Vec<String> = release_order[start..=i]
                .iter()
                .filter(|x| key(x).as_deref() == Some(&g) && t - x.time.0 <= T_DIST)
                .filter_map(|x| x.get("fields.v").map(|v| v.to_key().to_string()))
                .collect();
            vals.sort();
            vals.dedup();
            if vals.len() >= N_DIST {
                out.push((1, t, g.clone(), vals.len() as f64));
                dist_start.insert(g, i + 1);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn threshold_and_distinct_match_naive_reference(specs in prop::collection::vec(spec(), 0..200)) {
        let mut keyed = to_events(&specs);
        // Arrival order: by time + jitter (stable), i.e. out of order within the lateness.
        keyed.sort_by_key(|k| k.0);
        let arrival: Vec<Event> = keyed.into_iter().map(|k| k.1).collect();
        // Release order: stable sort of arrival by time.
        let mut release = arrival.clone();
        release.sort_by_key(|e| e.time);
        let want = reference(&release);

        let rs = ruleset(RULES, "");
        let (v, e) = run(&rs, cfg(LATENESS), arrival);
        let got: Vec<(usize, i64, String, f64)> = v
            .iter()
            .filter_map(|x| match x {
                Verdict::Fire(f) => Some((f.rule, f.at.0, f.group[0].1.to_string(), f.value)),
                Verdict::Resolve(_) => None,
            })
            .collect();
        prop_assert_eq!(e.stats().late_events, 0);
        prop_assert_eq!(got, want);
        // Verdicts (fires and resolves) in event-time order.
        prop_assert!(v.windows(2).all(|w| w[0].at() <= w[1].at()));
    }
}
