//! Stores for derived metrics, on event time.
//!
//! Each metric keeps a ring of buckets one `eval_interval` wide covering the
//! longest window any expression reads (and at least the minute the snapshot
//! reports). Bucket `k` holds observations with time in `((k−1)·I, k·I]`, so
//! a tick at `t = n·I` reads window `(t − w, t]` as buckets `n−m+1 ..= n`
//! with `m = ceil(w / I)` — windows are rounded up to whole buckets. Counters
//! keep sums and counts, histograms and gauges add min/max and a DDSketch
//! (relative error 1%, [`SKETCH_ALPHA`]) merged across the window at
//! evaluation. Gauges and histograms also remember their last value.
//! An updown's running total is its level (floored at zero); its buckets
//! hold the level's net change, so `increase` reads how it moved.
//!
//! Stores are fed in event-time order by the engine; they never see the
//! watermark, and they allocate only when a bucket first gets a sketch.

use secmon_core::Str;
use sketches_ddsketch::{Config, DDSketch};

use crate::config::MetricKind;
use crate::metric_expr::Func;

/// DDSketch relative accuracy: a reported quantile is within 1% of the true value.
pub const SKETCH_ALPHA: f64 = 0.01;

fn sketch_config() -> Config {
    Config::new(SKETCH_ALPHA, 2048, 1.0e-9)
}

#[derive(Clone)]
struct Bucket {
    /// Bucket number this slot currently holds; slots are reused round the ring.
    idx: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    sketch: Option<Box<DDSketch>>,
}

impl Bucket {
    fn empty(idx: i64) -> Self {
        Bucket {
            idx,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: None,
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("idx", &self.idx)
            .field("count", &self.count)
            .field("sum", &self.sum)
            .finish()
    }
}

/// One metric's store.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub name: Str,
    pub kind: MetricKind,
    width: i64,
    ring: Vec<Bucket>,
    /// Counter: running total. Updown: the level. Others: sum of observations.
    pub total: f64,
    pub count: u64,
    /// Last observed value and its time.
    pub last: Option<(f64, i64)>,
}

/// `ceil(t / width)`, overflow-free.
pub(crate) fn bucket_of(t: i64, width: i64) -> i64 {
    t.div_euclid(width) + i64::from(t.rem_euclid(width) != 0)
}

impl Store {
    /// `span` is the longest window read from this store.
    pub fn new(name: Str, kind: MetricKind, width: i64, span: i64) -> Self {
        let width = width.max(1);
        let span = span.max(60_000);
        let n = (span / width + 2).clamp(2, 1 << 20) as usize;
        Store {
            name,
            kind,
            width,
            ring: vec![Bucket::empty(i64::MIN); n],
            total: 0.0,
            count: 0,
            last: None,
        }
    }

    fn slot(&mut self, k: i64) -> &mut Bucket {
        let i = k.rem_euclid(self.ring.len() as i64) as usize;
        let b = &mut self.ring[i];
        if b.idx != k {
            *b = Bucket::empty(k);
        }
        b
    }

    /// Records one observation (`v` = increment for counters, ±1 for an
    /// updown).
    pub fn record(&mut self, t: i64, mut v: f64) {
        if !v.is_finite() {
            return;
        }
        let kind = self.kind;
        if kind == MetricKind::UpDown {
            // The floor: an end without a start seen does not count down.
            v = (self.total + v).max(0.0) - self.total;
        }
        let k = bucket_of(t, self.width);
        let b = self.slot(k);
        b.count += 1;
        b.sum += v;
        b.min = b.min.min(v);
        b.max = b.max.max(v);
        if matches!(kind, MetricKind::Gauge | MetricKind::Histogram) {
            b.sketch
                .get_or_insert_with(|| Box::new(DDSketch::new(sketch_config())))
                .add(v);
        }
        self.total += v;
        self.count += 1;
        self.last = Some((
            if kind == MetricKind::UpDown {
                self.total
            } else {
                v
            },
            t,
        ));
    }

    /// Bucket width in ms (the engine's `eval_interval` when it was made).
    pub fn width(&self) -> i64 {
        self.width
    }

    /// Takes over `old`'s observations (a reload kept the metric): the
    /// newest buckets that fit this store's ring, which may be longer or
    /// shorter if the windows read from it changed, and the totals and
    /// last value. Both must have the same bucket width.
    pub fn take_over(&mut self, old: Store) {
        debug_assert_eq!(self.width, old.width, "bucket widths differ");
        if self.ring.len() == old.ring.len() {
            self.ring = old.ring;
        } else {
            let mut ring = old.ring;
            ring.sort_unstable_by_key(|b| b.idx);
            let n = self.ring.len() as i64;
            for b in ring.into_iter().filter(|b| b.idx != i64::MIN) {
                // Ascending: a newer bucket replaces an older one in its slot.
                let i = b.idx.rem_euclid(n) as usize;
                self.ring[i] = b;
            }
        }
        self.total = old.total;
        self.count = old.count;
        self.last = old.last;
    }

    /// Buckets of the window `(at − window, at]` (rounded up to whole buckets).
    fn window(&self, at: i64, window: i64) -> impl Iterator<Item = &Bucket> {
        let n = bucket_of(at, self.width);
        let m = (window.max(1) + self.width - 1) / self.width;
        let m = m.min(self.ring.len() as i64);
        let lo = n.saturating_sub(m) + 1;
        self.ring
            .iter()
            .filter(move |b| b.idx >= lo && b.idx <= n && b.count > 0)
    }

    /// Effective window length after rounding up to whole buckets, in ms.
    fn rounded(&self, window: i64) -> i64 {
        let m = ((window.max(1) + self.width - 1) / self.width).min(self.ring.len() as i64);
        m * self.width
    }

    /// `func` of this metric at `at`; `None` when there is no data.
    pub fn eval(&self, func: Func, window: i64, at: i64) -> Option<f64> {
        if func == Func::Current {
            return match self.kind {
                MetricKind::Counter | MetricKind::UpDown if self.count > 0 => Some(self.total),
                MetricKind::Counter | MetricKind::UpDown => None,
                _ => self.last.map(|(v, _)| v),
            };
        }
        let mut count = 0u64;
        let mut sum = 0.0;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for b in self.window(at, window) {
            count += b.count;
            sum += b.sum;
            min = min.min(b.min);
            max = max.max(b.max);
        }
        if count == 0 {
            return None;
        }
        Some(match func {
            Func::Rate => sum / (self.rounded(window) as f64 / 1000.0),
            Func::Increase | Func::Sum => sum,
            Func::Count => count as f64,
            Func::Avg => sum / count as f64,
            Func::Min => min,
            Func::Max => max,
            Func::Quantile(q) => return self.quantile(q, window, at),
            Func::Current => return None,
        })
    }

    fn quantile(&self, q: f64, window: i64, at: i64) -> Option<f64> {
        let mut merged: Option<DDSketch> = None;
        for b in self.window(at, window) {
            let Some(s) = &b.sketch else { continue };
            match &mut merged {
                None => merged = Some((**s).clone()),
                Some(m) => {
                    // Same config everywhere, so merge cannot fail; a failure
                    // would only lose that bucket.
                    let _ = m.merge(s);
                }
            }
        }
        merged?.quantile(q).ok().flatten()
    }
}

/// A metric's current state, for `/metrics` and the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: Str,
    pub kind: MetricKind,
    /// Counter: running total. Updown: the level. Gauge and histogram: last
    /// observed value.
    pub value: f64,
    /// Number of observations since start.
    pub count: u64,
    /// Histograms: quantiles over the last minute of event time (None when empty).
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Store {
    pub fn sample(&self, now: i64) -> MetricSample {
        let (p50, p95, p99) = if self.kind == MetricKind::Histogram {
            (
                self.quantile(0.5, 60_000, now),
                self.quantile(0.95, 60_000, now),
                self.quantile(0.99, 60_000, now),
            )
        } else {
            (None, None, None)
        };
        let value = match self.kind {
            MetricKind::Counter | MetricKind::UpDown => self.total,
            _ => self.last.map_or(0.0, |(v, _)| v),
        };
        MetricSample {
            name: self.name.clone(),
            kind: self.kind,
            value,
            count: self.count,
            p50,
            p95,
            p99,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_boundaries_match_window_semantics() {
        assert_eq!(bucket_of(10_000, 10_000), 1);
        assert_eq!(bucket_of(10_001, 10_000), 2);
        assert_eq!(bucket_of(0, 10_000), 0);
        assert_eq!(bucket_of(-1, 10_000), 0);
        assert_eq!(bucket_of(i64::MAX, 10_000), i64::MAX / 10_000 + 1);
        let mut s = Store::new("c".into(), MetricKind::Counter, 10_000, 60_000);
        s.record(10_000, 1.0); // in (0, 10s]
        s.record(10_001, 1.0); // in (10s, 20s]
        assert_eq!(s.eval(Func::Increase, 10_000, 10_000), Some(1.0));
        assert_eq!(s.eval(Func::Increase, 20_000, 20_000), Some(2.0));
        assert_eq!(s.eval(Func::Increase, 10_000, 20_000), Some(1.0));
        assert_eq!(s.eval(Func::Rate, 20_000, 20_000), Some(0.1));
        assert_eq!(s.eval(Func::Increase, 10_000, 40_000), None);
        assert_eq!(s.eval(Func::Current, 0, 40_000), Some(2.0));
    }

    #[test]
    fn histogram_quantiles_within_error() {
        let mut s = Store::new("h".into(), MetricKind::Histogram, 10_000, 300_000);
        for i in 1..=1000 {
            s.record(i * 100, i as f64);
        }
        let p95 = s.eval(Func::Quantile(0.95), 100_000, 100_000).unwrap();
        assert!((p95 - 950.0).abs() / 950.0 < 0.02, "{p95}");
        assert_eq!(s.eval(Func::Max, 100_000, 100_000), Some(1000.0));
        assert_eq!(s.eval(Func::Min, 10_000, 100_000), Some(901.0));
        let sample = s.sample(100_000);
        assert!(sample.p50.is_some());
        assert_eq!(sample.value, 1000.0);
    }

    #[test]
    fn updown_level_never_below_zero() {
        let mut s = Store::new("u".into(), MetricKind::UpDown, 10_000, 60_000);
        assert_eq!(s.eval(Func::Current, 0, 0), None);
        s.record(1_000, -1.0); // an end whose start was never seen
        assert_eq!(s.eval(Func::Current, 0, 1_000), Some(0.0));
        s.record(2_000, 1.0);
        s.record(3_000, 1.0);
        s.record(11_000, 1.0);
        s.record(12_000, -1.0);
        assert_eq!(s.eval(Func::Current, 0, 12_000), Some(2.0));
        assert_eq!(s.sample(12_000).value, 2.0);
        // Net change per window, counting only what moved the level.
        assert_eq!(s.eval(Func::Increase, 10_000, 10_000), Some(2.0));
        assert_eq!(s.eval(Func::Increase, 10_000, 20_000), Some(0.0));
        assert_eq!(s.eval(Func::Count, 20_000, 20_000), Some(5.0));
    }

    #[test]
    fn resizing_keeps_the_newest_buckets_and_totals() {
        let mut s = Store::new("c".into(), MetricKind::Counter, 10_000, 60_000);
        for k in 1..=8 {
            s.record(k * 10_000, k as f64);
        }
        let before = s.eval(Func::Sum, 60_000, 80_000);
        let sized = |span| Store::new("c".into(), MetricKind::Counter, 10_000, span);
        // Longer: every bucket still there is kept.
        let mut longer = sized(3_600_000);
        longer.take_over(s.clone());
        assert_eq!(longer.eval(Func::Sum, 60_000, 80_000), before);
        assert_eq!(longer.eval(Func::Current, 0, 80_000), Some(36.0));
        // Shorter than the minute every store keeps: same ring.
        let mut same = sized(10_000);
        same.take_over(s);
        assert_eq!(same.eval(Func::Sum, 60_000, 80_000), before);
        // A longer store shrunk back keeps the newest buckets.
        let mut back = sized(60_000);
        back.take_over(longer);
        assert_eq!(back.eval(Func::Sum, 60_000, 80_000), before);
        assert_eq!(back.eval(Func::Sum, 10_000, 80_000), Some(8.0));
    }
}
