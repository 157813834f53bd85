//! Measures what the binary will do with the store: `record` of 1,000 series
//! every 10 s over 8 days of explicit time (steady state, including the
//! 5-minute sweeps), 24 h and 7 d queries, snapshot save/load, and bytes per
//! series at full retention for four value shapes. Numbers go to README.md.
//!
//! Plain binary (`harness = false`), no criterion: the interesting figures
//! are per-tick costs and memory, printed once. Run with
//! `cargo bench -p secmon-series --bench series`.

use std::hint::black_box;
use std::time::Instant;

use secmon_core::{Dur, Timestamp};
use secmon_series::{Config, Func, LabelFilter, Labels, Query, Sample, Store};

const S: i64 = 1_000;
const H: i64 = 3_600 * S;
const D: i64 = 24 * H;
const T0: i64 = 1_704_067_200_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The four shapes: a flat gauge, an integer counter with bursts, a noisy
/// float gauge (latency), a percentage random walk.
const SHAPES: [&str; 4] = ["flat", "counter", "latency", "walk"];

fn build(n: usize) -> (Vec<Sample>, Vec<f64>) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let shape = SHAPES[i % 4];
        let s = if shape == "counter" {
            Sample::counter(format!("bench.{shape}"), 0.0)
        } else {
            Sample::gauge(format!("bench.{shape}"), 0.0)
        };
        samples.push(s.label("id", format!("{i}")));
    }
    (samples, vec![0.0; n])
}

fn step(samples: &mut [Sample], state: &mut [f64], rng: &mut Rng) {
    for (i, (s, v)) in samples.iter_mut().zip(state.iter_mut()).enumerate() {
        match i % 4 {
            0 => *v = 42.0,
            1 => {
                *v += if rng.next().is_multiple_of(10) {
                    (rng.next() % 50) as f64
                } else {
                    0.0
                }
            }
            2 => *v = 3.0 + rng.unit() * 20.0,
            _ => *v = (*v + rng.unit() - 0.5).clamp(0.0, 100.0),
        }
        s.value = *v;
    }
}

fn main() {
    let n = 1_000;
    let (mut samples, mut state) = build(n);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut store = Store::new(Config::default());
    let ticks = 8 * D / (10 * S);
    let mut total = std::time::Duration::ZERO;
    let mut worst = std::time::Duration::ZERO;
    let mut last_day = std::time::Duration::ZERO;
    for k in 0..ticks {
        step(&mut samples, &mut state, &mut rng);
        let t = Instant::now();
        store.record(Timestamp(T0 + k * 10 * S), &samples);
        let e = t.elapsed();
        total += e;
        worst = worst.max(e);
        if k >= ticks - D / (10 * S) {
            last_day += e;
        }
    }
    let per_day_ticks = (D / (10 * S)) as u32;
    println!("record: {n} series, {ticks} ticks over 8 days");
    println!(
        "  mean per tick {:.1} µs ({:.0} ns/sample); steady-state day mean {:.1} µs; worst tick (sweep) {:.2} ms",
        total.as_secs_f64() * 1e6 / ticks as f64,
        total.as_secs_f64() * 1e9 / (ticks as f64 * n as f64),
        last_day.as_secs_f64() * 1e6 / f64::from(per_day_ticks),
        worst.as_secs_f64() * 1e3
    );

    let now = T0 + (ticks - 1) * 10 * S;
    let heap = store.heap_bytes();
    println!(
        "memory: {} series, heap {:.1} MB, {:.1} KB per series (mixed)",
        n,
        heap as f64 / 1e6,
        heap as f64 / n as f64 / 1e3
    );
    for m in store.memory_by_metric() {
        println!(
            "  {:14} {:.1} KB per series",
            m.metric,
            m.bytes as f64 / m.series as f64 / 1e3
        );
    }

    let bench = |name: &str, q: &Query, reps: u32| {
        let t = Instant::now();
        let mut pts = 0;
        for _ in 0..reps {
            let r = store.query(black_box(q)).expect("query");
            pts = r.iter().map(|s| s.points.len()).sum::<usize>();
        }
        println!(
            "query {name}: {:.0} µs ({pts} points)",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(reps)
        );
    };
    let id = |i: usize| LabelFilter::Exact(Labels::new().with("id", format!("{i}")));
    let mk = |metric: &str, labels, since, step, func| Query {
        metric: metric.into(),
        labels,
        since: Timestamp(since),
        until: Timestamp(now),
        step: Dur::from_millis(step),
        func,
    };
    bench(
        "7 d, 5 min step, avg, 1 series",
        &mk("bench.latency", id(2), now - 7 * D, 300 * S, Func::Avg),
        50,
    );
    bench(
        "7 d, 1 h step, rate, 1 counter",
        &mk("bench.counter", id(1), now - 7 * D, H, Func::Rate),
        50,
    );
    bench(
        "24 h, 10 s step, last, 1 series",
        &mk("bench.walk", id(3), now - D + 10 * S, 10 * S, Func::Last),
        50,
    );
    bench(
        "24 h, 5 min step (10 s tier), max, 1 series",
        &mk("bench.walk", id(3), now - D + 10 * S, 300 * S, Func::Max),
        50,
    );
    bench(
        "7 d, 5 min step, avg, all 250 series of a metric",
        &mk(
            "bench.latency",
            LabelFilter::All,
            now - 7 * D,
            300 * S,
            Func::Avg,
        ),
        5,
    );

    let t = Instant::now();
    let bytes = store.to_snapshot();
    let save = t.elapsed();
    let t = Instant::now();
    let back = Store::from_snapshot(&bytes, Config::default()).expect("load");
    let load = t.elapsed();
    assert_eq!(back.list().len(), n);
    println!(
        "snapshot: {:.1} MB, encode {:.0} ms, decode+verify {:.0} ms",
        bytes.len() as f64 / 1e6,
        save.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3
    );
}
