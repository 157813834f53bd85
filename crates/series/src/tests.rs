//! Store-level tests with explicit times: tiering, rollup boundaries,
//! counter resets, a naive reference for every function, cardinality,
//! retention and snapshots.

use proptest::prelude::*;
use secmon_core::{Dur, Timestamp};

use crate::*;

const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const D: i64 = 24 * H;
/// An arbitrary aligned origin (2024-01-01T00:00:00Z).
const T0: i64 = 1_704_067_200_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp(T0 + ms)
}

fn q(metric: &str, since: i64, until: i64, step: i64, func: Func) -> Query {
    Query {
        metric: metric.into(),
        labels: LabelFilter::All,
        since: ts(since),
        until: ts(until),
        step: Dur::from_millis(step),
        func,
    }
}

fn values(store: &Store, query: &Query) -> Vec<Option<f64>> {
    let r = store.query(query).unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].points.iter().map(|p| p.1).collect()
}

#[test]
fn raw_points_are_slot_aligned_with_gaps_as_none() {
    let mut st = Store::default();
    st.record(ts(3 * S), &[Sample::gauge("g", 1.0)]);
    st.record(ts(13 * S), &[Sample::gauge("g", 2.0)]);
    // 20 s tick missed; 31 s lands in slot 3.
    st.record(ts(31 * S), &[Sample::gauge("g", 4.0)]);
    let r = st.query(&q("g", 0, 40 * S, 10 * S, Func::Last)).unwrap();
    assert_eq!(r[0].resolution_ms, RAW_STEP_MS);
    assert_eq!(r[0].step_ms, 10 * S);
    let pts: Vec<(i64, Option<f64>)> = r[0].points.iter().map(|p| (p.0 - T0, p.1)).collect();
    assert_eq!(
        pts,
        vec![
            (0, Some(1.0)),
            (10 * S, Some(2.0)),
            (20 * S, None),
            (30 * S, Some(4.0)),
            (40 * S, None)
        ]
    );
}

#[test]
fn a_second_record_in_the_same_slot_overwrites() {
    let mut st = Store::default();
    st.record(ts(0), &[Sample::gauge("g", 1.0)]);
    st.record(ts(9 * S), &[Sample::gauge("g", 7.0)]);
    assert_eq!(
        values(&st, &q("g", 0, 0, 10 * S, Func::Avg)),
        vec![Some(7.0)]
    );
    // The rollup sees the slot once, not twice.
    st.advance_to(ts(25 * H));
    assert_eq!(
        values(&st, &q("g", 0, 0, 5 * MIN, Func::Avg)),
        vec![Some(7.0)]
    );
}

#[test]
fn step_is_rounded_up_to_the_tier_and_windows_aggregate() {
    let mut st = Store::default();
    for i in 0..6 {
        st.record(ts(i * 10 * S), &[Sample::gauge("g", i as f64)]);
    }
    let r = st.query(&q("g", 0, 59 * S, 25 * S, Func::Max)).unwrap();
    assert_eq!(r[0].step_ms, 30 * S);
    let v: Vec<_> = r[0].points.iter().map(|p| p.1).collect();
    assert_eq!(v, vec![Some(2.0), Some(5.0)]);
    assert_eq!(
        values(&st, &q("g", 0, 59 * S, 30 * S, Func::Min)),
        vec![Some(0.0), Some(3.0)]
    );
    assert_eq!(
        values(&st, &q("g", 0, 59 * S, 30 * S, Func::Avg)),
        vec![Some(1.0), Some(4.0)]
    );
}

#[test]
fn tiers_are_chosen_by_range_and_errors_are_typed() {
    let mut st = Store::default();
    for i in 0..(26 * 360) {
        st.record(ts(i * 10 * S), &[Sample::gauge("g", 1.0)]);
    }
    let now = 26 * H - 10 * S;
    let recent = st
        .query(&q("g", now - 2 * H, now, 10 * S, Func::Last))
        .unwrap();
    assert_eq!(recent[0].resolution_ms, RAW_STEP_MS);
    let old = st.query(&q("g", 0, now, 5 * MIN, Func::Last)).unwrap();
    assert_eq!(old[0].resolution_ms, ROLLUP_STEP_MS);
    assert!(old[0].points.iter().all(|p| p.1 == Some(1.0)));

    let err = |query: Query| st.query(&query).unwrap_err();
    assert!(matches!(
        err(q("g", 0, now, 10 * S, Func::Last)),
        QueryError::StepTooSmall { min, .. } if min == Dur::from_mins(5)
    ));
    assert!(matches!(
        err(q("g", now - H, now, S, Func::Last)),
        QueryError::StepTooSmall { min, .. } if min == Dur::from_secs(10)
    ));
    assert!(matches!(
        err(q("g", now, now - H, 10 * S, Func::Last)),
        QueryError::InvertedRange { .. }
    ));
    assert!(matches!(
        err(q("nope", 0, now, 10 * S, Func::Last)),
        QueryError::UnknownMetric(_)
    ));
    assert!(matches!(
        err(q("g", now - H, now, 10 * S, Func::Rate)),
        QueryError::NotACounter { .. }
    ));
    assert!(matches!(
        err(q(
            "g",
            now - 24 * H + 10 * S,
            now + 7 * D,
            10 * S,
            Func::Last
        )),
        QueryError::TooManyPoints { .. }
    ));
    let mut exact = q("g", now - H, now, 10 * S, Func::Last);
    exact.labels = LabelFilter::Exact(Labels::new().with("db", "db0"));
    let e = err(exact);
    assert!(matches!(e, QueryError::UnknownSeries { .. }));
    assert_eq!(
        e.to_string(),
        r#"metric "g" has no series with labels {db="db0"}"#
    );
    assert_eq!(
        err(q("g", 0, now, 10 * S, Func::Last)).to_string(),
        "step 10s is smaller than 5m, the resolution of the 5 min tier, which answers ranges starting more than 24 h ago"
    );
    assert!("median".parse::<Func>().is_err());
    assert_eq!("raw".parse::<Func>().unwrap(), Func::Last);
}

#[test]
fn rollup_buckets_split_exactly_on_five_minute_boundaries() {
    let mut st = Store::default();
    // 4:40 and 4:59.999 in bucket 0, 5:00 in bucket 1.
    st.record(ts(4 * MIN + 40 * S), &[Sample::gauge("g", 1.0)]);
    st.record(ts(5 * MIN - 1), &[Sample::gauge("g", 3.0)]);
    st.record(ts(5 * MIN), &[Sample::gauge("g", 10.0)]);
    st.record(ts(9 * MIN + 59 * S), &[Sample::gauge("g", 20.0)]);
    st.advance_to(ts(30 * H));
    let r = st.query(&q("g", 0, 5 * MIN, 5 * MIN, Func::Avg)).unwrap();
    assert_eq!(r[0].resolution_ms, ROLLUP_STEP_MS);
    let v = |f| values(&st, &q("g", 0, 5 * MIN, 5 * MIN, f));
    assert_eq!(v(Func::Avg), vec![Some(2.0), Some(15.0)]);
    assert_eq!(v(Func::Min), vec![Some(1.0), Some(10.0)]);
    assert_eq!(v(Func::Max), vec![Some(3.0), Some(20.0)]);
    assert_eq!(v(Func::Last), vec![Some(3.0), Some(20.0)]);
    // A 10 min step merges the two buckets.
    assert_eq!(
        values(&st, &q("g", 0, 0, 10 * MIN, Func::Avg)),
        vec![Some(34.0 / 4.0)]
    );
}

#[test]
fn counter_resets_count_like_prometheus() {
    let mut st = Store::default();
    for (i, v) in [10.0, 20.0, 5.0, 15.0].into_iter().enumerate() {
        st.record(ts(i as i64 * 10 * S), &[Sample::counter("c", v)]);
    }
    // 10 → 20 (+10), reset to 5 (+5), 5 → 15 (+10). The first sample has no
    // predecessor, so its window has no increase.
    assert_eq!(
        values(&st, &q("c", 0, 30 * S, 10 * S, Func::Increase)),
        vec![None, Some(10.0), Some(5.0), Some(10.0)]
    );
    assert_eq!(
        values(&st, &q("c", 0, 0, MIN, Func::Increase)),
        vec![Some(25.0)]
    );
    assert_eq!(
        values(&st, &q("c", 0, 0, MIN, Func::Rate)),
        vec![Some(25.0 / 60.0)]
    );
    st.advance_to(ts(25 * H));
    assert_eq!(
        values(&st, &q("c", 0, 0, 5 * MIN, Func::Increase)),
        vec![Some(25.0)]
    );
}

#[test]
fn downtime_is_a_gap_and_no_increase_is_invented_across_it() {
    let mut st = Store::default();
    st.record(ts(0), &[Sample::counter("c", 100.0)]);
    st.record(ts(10 * S), &[Sample::counter("c", 110.0)]);
    // Down for two hours; the producer did not restart (no drop).
    st.record(ts(2 * H), &[Sample::counter("c", 500.0)]);
    st.record(ts(2 * H + 10 * S), &[Sample::counter("c", 501.0)]);
    let v = values(&st, &q("c", 0, 2 * H, 30 * MIN, Func::Increase));
    assert_eq!(v, vec![Some(10.0), None, None, None, Some(1.0)]);
    let gauges = values(&st, &q("c", 0, 2 * H, 30 * MIN, Func::Last));
    assert_eq!(gauges[1..4], [None, None, None]);
    // A restart within the staleness window is a reset: counted from zero.
    st.record(ts(2 * H + 20 * S), &[Sample::counter("c", 3.0)]);
    assert_eq!(
        values(&st, &q("c", 2 * H, 2 * H, 10 * MIN, Func::Increase)),
        vec![Some(4.0)]
    );
}

#[test]
fn series_with_labels_are_separate_and_listed() {
    let mut st = Store::default();
    let samples = [
        Sample::gauge("probe.latency.ms", 12.0).label("probe", "mgmt"),
        Sample::gauge("probe.latency.ms", 30.0).label("probe", "relay"),
        Sample::counter("rule.alerts", 1.0).label("rule", "failed-logins-per-ip"),
    ];
    st.record(ts(0), &samples);
    let all = st
        .query(&q("probe.latency.ms", 0, 0, 10 * S, Func::Last))
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].labels.get("probe"), Some("relay"));
    let mut one = q("probe.latency.ms", 0, 0, 10 * S, Func::Last);
    one.labels = LabelFilter::Exact(Labels::new().with("probe", "mgmt"));
    assert_eq!(st.query(&one).unwrap()[0].points[0].1, Some(12.0));
    let list = st.list();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2].kind, Kind::Counter);
    assert_eq!(list[2].last_ms, T0);
    let json = serde_json::to_string(&st.query(&one).unwrap()[0]).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"metric":"probe.latency.ms","labels":{{"probe":"mgmt"}},"kind":"gauge","func":"last","step_ms":10000,"resolution_ms":10000,"points":[[{T0},12.0]]}}"#
        )
    );
    let gap = serde_json::to_string(&Point(5, None)).unwrap();
    assert_eq!(gap, "[5,null]");
}

#[test]
fn cardinality_is_capped_and_refusals_are_counted() {
    let mut st = Store::new(Config {
        max_series: 5,
        max_series_per_metric: 3,
        ..Config::default()
    });
    let ips: Vec<Sample> = (0..10)
        .map(|i| Sample::counter("auth.failed", 1.0).label("ip", format!("10.0.0.{i}")))
        .collect();
    assert_eq!(st.record(ts(0), &ips), 3);
    let others: Vec<Sample> = (0..4)
        .map(|i| Sample::gauge(format!("g{i}"), 1.0))
        .collect();
    assert_eq!(st.record(ts(10 * S), &others), 2);
    let s = st.stats();
    assert_eq!((s.series, s.refused_cardinality), (5, 7 + 2));
    // Known series keep being recorded at the cap.
    assert_eq!(st.record(ts(20 * S), &ips[..3]), 3);

    let bad = [
        Sample::gauge("g0", f64::NAN),
        Sample::gauge("", 1.0),
        Sample::gauge("x".repeat(200), 1.0),
        Sample::counter("g0", 1.0),
    ];
    assert_eq!(st.record(ts(30 * S), &bad), 0);
    let s = st.stats();
    assert_eq!((s.refused_invalid, s.refused_kind_conflict), (3, 1));
    assert_eq!(st.record(ts(0), &others), 0);
    assert_eq!(st.stats().refused_out_of_order, 4);
}

#[test]
fn seven_day_retention_drops_old_data_and_silent_series() {
    let mut st = Store::default();
    // Eight days of a counter rising by 1 per tick, and a series that speaks
    // only at the start.
    st.record(ts(0), &[Sample::gauge("once", 1.0)]);
    let ticks = 8 * D / (10 * S);
    for i in 0..ticks {
        st.record(ts(i * 10 * S), &[Sample::counter("c", i as f64)]);
    }
    let now = (ticks - 1) * 10 * S;
    assert!(st.list().iter().all(|s| s.metric == "c"));
    assert_eq!(st.stats().expired_series, 1);

    let week = values(&st, &q("c", now - 8 * D, now, H, Func::Increase));
    let first_kept = week.iter().position(Option::is_some).unwrap();
    // Hours older than 7 days are gone; every kept hour increased by 360.
    assert!((24..=25).contains(&first_kept), "{first_kept}");
    assert!(week[first_kept + 1..].iter().all(|v| *v == Some(360.0)));

    let day = values(&st, &q("c", now - 24 * H + 10 * S, now, 10 * S, Func::Last));
    assert_eq!(day.len(), 8640);
    assert!(day.iter().all(Option::is_some));
    // Both tiers are bounded: ≤ 25 one-hour chunks, ≤ 29 six-hour chunks.
    let (_, m) = st.metrics.iter().next().unwrap();
    let s = m.series.values().next().unwrap();
    assert!(
        s.raw.len() <= 25 && s.rollup.len() <= 29,
        "{} {}",
        s.raw.len(),
        s.rollup.len()
    );
    assert!(s.raw.iter().filter(|c| c.is_open()).count() <= 1);
}

#[test]
fn snapshot_round_trip_continues_as_if_never_stopped() {
    let mut a = Store::default();
    let tick = |i: i64| {
        vec![
            Sample::counter("c", (i * 3 % 1000) as f64).label("rule", "r1"),
            Sample::gauge("g", (i % 17) as f64),
        ]
    };
    for i in 0..3000 {
        a.record(ts(i * 10 * S), &tick(i));
    }
    let mut buf = Vec::new();
    a.save(&mut buf).unwrap();
    let mut b = Store::load(&buf[..], Config::default()).unwrap();
    assert_eq!(a.list(), b.list());
    assert_eq!(a.stats(), b.stats());
    for i in 3000..4000 {
        a.record(ts(i * 10 * S), &tick(i));
        b.record(ts(i * 10 * S), &tick(i));
    }
    a.advance_to(ts(30 * H));
    b.advance_to(ts(30 * H));
    for (m, f) in [("c", Func::Increase), ("g", Func::Avg), ("g", Func::Last)] {
        for step in [10 * S, 5 * MIN, H] {
            let qq = q(m, 6 * H + 10 * S, 12 * H, step, f);
            if step >= 5 * MIN || a.query(&qq).is_ok() {
                assert_eq!(a.query(&qq), b.query(&qq));
            }
        }
        let old = q(m, 0, 12 * H, 5 * MIN, f);
        assert_eq!(a.query(&old), b.query(&old));
        assert!(
            a.query(&old).unwrap()[0]
                .points
                .iter()
                .any(|p| p.1.is_some())
        );
    }
}

#[test]
fn corrupt_or_truncated_snapshots_are_errors_not_panics() {
    let mut st = Store::default();
    for i in 0..400 {
        st.record(
            ts(i * 10 * S),
            &[
                Sample::gauge("g", i as f64).label("a", "b"),
                Sample::counter("c", 1.0),
            ],
        );
    }
    let good = st.to_snapshot();
    for cut in 0..good.len() {
        let e = Store::from_snapshot(&good[..cut], Config::default()).unwrap_err();
        assert!(
            matches!(e, SnapshotError::Truncated { .. } | SnapshotError::BadMagic),
            "{cut}: {e}"
        );
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        assert!(
            Store::from_snapshot(&bad, Config::default()).is_err(),
            "byte {i}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        Store::from_snapshot(&longer, Config::default()),
        Err(SnapshotError::Corrupt(_))
    ));
    let mut v2 = good.clone();
    v2[8] = 2;
    let e = Store::from_snapshot(&v2, Config::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "snapshot format version 2 is not supported (this build reads version 1)"
    );
    let e = Store::from_snapshot(b"{\"json\": true}", Config::default()).unwrap_err();
    assert!(matches!(e, SnapshotError::BadMagic));
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    assert!(
        Store::from_snapshot(&flipped, Config::default())
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch")
    );
}

#[test]
fn snapshot_files_are_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.snap");
    assert!(
        Store::load_file(&path, Config::default())
            .unwrap()
            .is_none()
    );
    let mut st = Store::default();
    st.record(ts(0), &[Sample::gauge("g", 1.0)]);
    st.save_file(&path).unwrap();
    st.record(ts(10 * S), &[Sample::gauge("g", 2.0)]);
    st.save_file(&path).unwrap();
    assert!(!dir.path().join("series.snap.tmp").exists());
    let back = Store::load_file(&path, Config::default()).unwrap().unwrap();
    assert_eq!(back.list()[0].last_value, 2.0);
    std::fs::write(&path, b"SECMONTS\x01\x00").unwrap();
    assert!(matches!(
        Store::load_file(&path, Config::default()),
        Err(SnapshotError::Truncated { .. })
    ));
}

/// The reference: every function over a window, straight from the list of
/// samples (one per slot, time-ordered).
fn naive(samples: &[(i64, f64)], from: i64, to: i64, func: Func, counter: bool) -> Option<f64> {
    let idx: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].0 >= from && samples[i].0 < to)
        .collect();
    if idx.is_empty() {
        return None;
    }
    let vals: Vec<f64> = idx.iter().map(|&i| samples[i].1).collect();
    let inc = || {
        let deltas: Vec<f64> = idx
            .iter()
            .filter(|&&i| i > 0 && samples[i].0 - samples[i - 1].0 <= STALE_MS)
            .map(|&i| {
                let (p, c) = (samples[i - 1].1, samples[i].1);
                if c < p { c } else { c - p }
            })
            .collect();
        (!deltas.is_empty()).then(|| deltas.iter().sum::<f64>())
    };
    match func {
        Func::Last => vals.last().copied(),
        Func::Avg => Some(vals.iter().sum::<f64>() / vals.len() as f64),
        Func::Min => vals.iter().copied().reduce(f64::min),
        Func::Max => vals.iter().copied().reduce(f64::max),
        Func::Increase if counter => inc(),
        Func::Rate if counter => inc().map(|i| i / ((to - from) as f64 / 1000.0)),
        _ => None,
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        (None, None) => true,
        _ => false,
    }
}

/// A counter over ~7 h: ticks of 10 s with random skips (some longer than
/// the staleness), increments, and resets.
fn counter_run() -> impl Strategy<Value = Vec<(i64, f64)>> {
    proptest::collection::vec((1i64..4, 0u8..40, 0u32..100, any::<bool>()), 1..300).prop_map(
        |steps| {
            let mut t = 0;
            let mut v = 0.0;
            let mut out = Vec::new();
            for (gap, long, inc, reset) in steps {
                // One gap in forty is longer than 5 min.
                t += if long == 0 { 40 * gap } else { gap } * 10 * S;
                v = if reset && inc % 7 == 0 {
                    f64::from(inc)
                } else {
                    v + f64::from(inc)
                };
                out.push((t, v));
            }
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_function_matches_the_naive_reference_on_both_tiers(
        samples in counter_run(),
        step_mul in 1i64..13,
        kind in prop_oneof![Just(Kind::Counter), Just(Kind::Gauge)],
    ) {
        let mut st = Store::default();
        for &(t, v) in &samples {
            st.record(ts(t), &[Sample { name: "m".into(), labels: Labels::new(), kind, value: v }]);
        }
        let end = samples.last().map_or(0, |s| s.0);
        let counter = kind == Kind::Counter;
        let funcs: &[Func] = if counter {
            &[Func::Increase, Func::Rate, Func::Last, Func::Max]
        } else {
            &[Func::Last, Func::Avg, Func::Min, Func::Max]
        };
        // 10 s tier at a step of 10 s × step_mul; 5 min tier (after 25 h) at
        // 5 min × step_mul. Both against the same reference.
        let check = |st: &Store, step: i64| -> Result<(), TestCaseError> {
            for &f in funcs {
                let r = st.query(&q("m", 0, end, step, f)).unwrap();
                for p in &r[0].points {
                    let from = p.0 - T0;
                    let want = naive(&samples, from, from + step, f, counter);
                    prop_assert!(close(p.1, want), "{f} at {from} step {step}: {:?} vs {want:?}", p.1);
                }
            }
            Ok(())
        };
        check(&st, 10 * S * step_mul)?;
        check(&st, 5 * MIN * step_mul)?;
        st.advance_to(ts(end + 25 * H));
        let r = st.query(&q("m", 0, end, 5 * MIN, Func::Last)).unwrap();
        prop_assert_eq!(r[0].resolution_ms, ROLLUP_STEP_MS);
        check(&st, 5 * MIN * step_mul)?;
        let mut buf = Vec::new();
        st.save(&mut buf).unwrap();
        let back = Store::load(&buf[..], Config::default()).unwrap();
        check(&back, 5 * MIN * step_mul)?;
    }
}
