//! The store: series keyed by name and labels, each with two tiers of
//! chunks, fed once per sampling tick by [`Store::record`].
//!
//! - **10 s tier**: slot `k` holds the value recorded at a time in
//!   `[k·10 s, (k+1)·10 s)`; a second record in the same slot overwrites it
//!   (last value wins). Kept for 24 h.
//! - **5 min tier**: bucket `b` covers slots `30b .. 30b+30` and keeps min,
//!   max, sum, count, last and — for counters — the reset-aware increase. It
//!   is *derived* from the 10 s tier when time leaves the bucket (the sweep),
//!   so a slot rewritten within the bucket is never counted twice. Kept for
//!   7 days.
//!
//! The store trusts only its own clock reading, passed in: a tick older than
//! the newest one is refused (counted), never back-filled. It does not
//! interpolate across missing ticks (downtime is a gap), does not read the
//! wall clock, spawn threads or do IO (see [`crate::snapshot`] for files).
//! Cardinality is bounded: a new series past [`Config::max_series`] or
//! [`Config::max_series_per_metric`] is refused and counted, and a series
//! silent for the whole 7 days is forgotten, freeing its place.

use std::collections::{BTreeMap, VecDeque};

use secmon_core::{Str, Timestamp};
use serde::Serialize;

use crate::chunk::{Chunk, Layout};
use crate::sample::{Kind, Labels, Sample};

/// Resolution of the fine tier.
pub const RAW_STEP_MS: i64 = 10_000;
/// Slots kept in the fine tier: 24 h.
pub const RAW_SLOTS: i64 = 8_640;
/// Resolution of the coarse tier.
pub const ROLLUP_STEP_MS: i64 = 300_000;
/// Buckets kept in the coarse tier: 7 days.
pub const ROLLUP_BUCKETS: i64 = 2_016;
/// A counter increase is counted between two samples at most this far apart
/// (Prometheus' default lookback). Across a longer gap — secmon was down — the
/// increase is unknown and not invented: the next sample starts afresh.
pub const STALE_MS: i64 = 300_000;

pub(crate) const SLOTS_PER_BUCKET: i64 = ROLLUP_STEP_MS / RAW_STEP_MS;
/// One hour of 10 s slots per chunk: 25 chunks span the 24 h (one partial).
pub(crate) const RAW: Layout = Layout { rows: 360, cols: 1 };
/// Six hours of 5 min buckets per chunk.
pub(crate) const ROLLUP: Layout = Layout { rows: 72, cols: 6 };

// Columns of a rollup row.
const MIN: usize = 0;
const MAX: usize = 1;
const SUM: usize = 2;
const COUNT: usize = 3;
const LAST: usize = 4;
const INC: usize = 5;

/// Limits; the defaults fit a few thousand busy series in tens of MB (see the
/// README for the measured bytes per series).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Series in the whole store; new series past it are refused.
    pub max_series: usize,
    /// Series under one metric name, so that one high-cardinality metric
    /// (a label per source IP) cannot crowd out all the others.
    pub max_series_per_metric: usize,
    /// Labels per series.
    pub max_labels: usize,
    /// Bytes of a metric name, label key or label value.
    pub max_str_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_series: 10_000,
            max_series_per_metric: 1_000,
            max_labels: 8,
            max_str_len: 128,
        }
    }
}

/// What the store holds and what it turned away, cumulative since creation
/// (the refusal counters are persisted in snapshots).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub metrics: usize,
    pub series: usize,
    pub samples: u64,
    /// New series refused by `max_series` or `max_series_per_metric`.
    pub refused_cardinality: u64,
    /// Non-finite value, empty or oversized name or labels.
    pub refused_invalid: u64,
    /// Recorded with a time older than the newest tick.
    pub refused_out_of_order: u64,
    /// A name already known with another kind.
    pub refused_kind_conflict: u64,
    /// Series forgotten after 7 days without a sample.
    pub expired_series: u64,
}

/// The previous sample of a counter `(ms, value)`, if any.
pub(crate) type Carry = Option<(i64, f64)>;

/// min, max, sum, count, last and counter increase of some samples; a
/// rollup row, and a query window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Agg {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: f64,
    pub last: f64,
    /// Sum of counter increases whose later sample is in here; `None` when no
    /// such pair exists (gauges, or only a sample after a gap).
    pub inc: Option<f64>,
}

impl Agg {
    pub const EMPTY: Agg = Agg {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
        count: 0.0,
        last: f64::NAN,
        inc: None,
    };

    /// Adds one sample at `t` (ms). For counters `carry` is the previous
    /// sample of the series, wherever it was; it is updated.
    pub fn push(&mut self, t: i64, v: f64, counter: bool, carry: &mut Option<(i64, f64)>) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.count += 1.0;
        self.last = v;
        if counter {
            if let Some((pt, pv)) = *carry
                && t - pt <= STALE_MS
            {
                // A drop is a reset: the counter restarted from zero and
                // counted `v` since, as Prometheus assumes.
                let d = if v < pv { v } else { v - pv };
                self.inc = Some(self.inc.unwrap_or(0.0) + d);
            }
            *carry = Some((t, v));
        }
    }

    /// Folds a later aggregate into this one.
    pub fn merge(&mut self, o: &Agg) {
        if o.count == 0.0 {
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
        self.last = o.last;
        if let Some(i) = o.inc {
            self.inc = Some(self.inc.unwrap_or(0.0) + i);
        }
    }

    fn row(&self) -> [f64; 6] {
        [
            self.min,
            self.max,
            self.sum,
            self.count,
            self.last,
            self.inc.unwrap_or(f64::NAN),
        ]
    }

    fn from_row(v: &[f64], row: usize) -> Agg {
        let at = |c: usize| v.get(c * ROLLUP.rows + row).copied().unwrap_or(f64::NAN);
        if at(COUNT).is_nan() {
            return Agg::EMPTY;
        }
        let inc = at(INC);
        Agg {
            min: at(MIN),
            max: at(MAX),
            sum: at(SUM),
            count: at(COUNT),
            last: at(LAST),
            inc: (!inc.is_nan()).then_some(inc),
        }
    }
}

/// One series: its two tiers and what is needed to extend them.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub kind: Kind,
    /// 10 s chunks, ascending `start`.
    pub raw: VecDeque<Chunk>,
    /// 5 min chunks, ascending `start`.
    pub rollup: VecDeque<Chunk>,
    /// Newest sample: (slot, value).
    pub last: (i64, f64),
    /// First bucket not yet rolled up; later buckets are read from `raw`.
    pub next_bucket: i64,
    /// Newest sample (ms, value) before `next_bucket`, which the first
    /// increase of the next rollup is measured from.
    pub carry: Carry,
}

impl Series {
    fn new(kind: Kind, slot: i64, v: f64) -> Self {
        Series {
            kind,
            raw: VecDeque::new(),
            rollup: VecDeque::new(),
            last: (slot, v),
            next_bucket: slot.div_euclid(SLOTS_PER_BUCKET),
            carry: None,
        }
    }

    fn put(&mut self, slot: i64, v: f64) {
        let start = slot - slot.rem_euclid(RAW.rows as i64);
        match self.raw.back_mut() {
            Some(c) if c.start == start => {}
            back => {
                if let Some(c) = back {
                    c.seal();
                }
                self.raw.push_back(Chunk::new(start, RAW));
            }
        }
        if let Some(c) = self.raw.back_mut() {
            c.set_row(RAW, (slot - start) as usize, &[v]);
        }
        self.last = (slot, v);
    }

    /// Samples `(slot, value)` with `from <= slot < to`, in time order.
    pub fn raw_samples(&self, from: i64, to: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        for c in &self.raw {
            if c.end(RAW) <= from || c.start >= to {
                continue;
            }
            let vals = c.values(RAW);
            let lo = (from.max(c.start) - c.start) as usize;
            let hi = (to.min(c.end(RAW)) - c.start) as usize;
            for (i, &v) in vals.iter().enumerate().take(hi).skip(lo) {
                if !v.is_nan() {
                    out.push((c.start + i as i64, v));
                }
            }
        }
        out
    }

    /// Rollups `(bucket, agg)` of non-empty buckets with `from <= b < to`, in
    /// order: stored ones, then the not yet rolled-up ones computed from
    /// the 10 s tier exactly as the sweep will store them.
    pub fn rollups(&self, from: i64, to: i64) -> Vec<(i64, Agg)> {
        let mut out = Vec::new();
        for c in &self.rollup {
            if c.end(ROLLUP) <= from || c.start >= to {
                continue;
            }
            let vals = c.values(ROLLUP);
            let lo = (from.max(c.start) - c.start) as usize;
            let hi = (to.min(c.end(ROLLUP)) - c.start) as usize;
            for row in lo..hi {
                let a = Agg::from_row(&vals, row);
                if a.count > 0.0 {
                    out.push((c.start + row as i64, a));
                }
            }
        }
        let open_from = from.max(self.next_bucket);
        if open_from < to {
            let (open, _) = self.roll(i64::MAX / SLOTS_PER_BUCKET);
            out.extend(open.into_iter().filter(|(b, _)| *b >= open_from && *b < to));
        }
        out
    }

    /// Rollups of the buckets from `next_bucket` up to `upto` (exclusive)
    /// that have samples, computed from the 10 s tier, and the counter carry
    /// after them.
    fn roll(&self, upto: i64) -> (Vec<(i64, Agg)>, Carry) {
        let counter = self.kind == Kind::Counter;
        let mut carry = self.carry;
        let mut out: Vec<(i64, Agg)> = Vec::new();
        let from = self.next_bucket.saturating_mul(SLOTS_PER_BUCKET);
        for (slot, v) in self.raw_samples(from, upto.saturating_mul(SLOTS_PER_BUCKET)) {
            let b = slot.div_euclid(SLOTS_PER_BUCKET);
            if out.last().is_none_or(|(lb, _)| *lb != b) {
                out.push((b, Agg::EMPTY));
            }
            if let Some((_, a)) = out.last_mut() {
                a.push(slot * RAW_STEP_MS, v, counter, &mut carry);
            }
        }
        (out, carry)
    }

    /// Rolls up every bucket before `upto`, then seals finished chunks and
    /// drops those past retention.
    fn sweep(&mut self, now_slot: i64, upto: i64) {
        if self.next_bucket < upto {
            let (rolled, carry) = self.roll(upto);
            for (b, a) in rolled {
                self.write_rollup(b, &a);
            }
            self.carry = carry;
            self.next_bucket = upto;
        }
        for c in self.raw.iter_mut() {
            if c.is_open() && c.end(RAW) <= now_slot {
                c.seal();
            }
        }
        for c in self.rollup.iter_mut() {
            if c.is_open() && c.end(ROLLUP) <= upto {
                c.seal();
            }
        }
        let raw_from = now_slot - RAW_SLOTS + 1;
        while self.raw.front().is_some_and(|c| c.end(RAW) <= raw_from) {
            self.raw.pop_front();
        }
        let rollup_from = upto - ROLLUP_BUCKETS + 1;
        while self
            .rollup
            .front()
            .is_some_and(|c| c.end(ROLLUP) <= rollup_from)
        {
            self.rollup.pop_front();
        }
    }

    fn write_rollup(&mut self, b: i64, a: &Agg) {
        let start = b - b.rem_euclid(ROLLUP.rows as i64);
        if self.rollup.back().is_none_or(|c| c.start != start) {
            if let Some(c) = self.rollup.back_mut() {
                c.seal();
            }
            self.rollup.push_back(Chunk::new(start, ROLLUP));
        }
        if let Some(c) = self.rollup.back_mut() {
            c.set_row(ROLLUP, (b - start) as usize, &a.row());
        }
    }

    fn heap_bytes(&self) -> usize {
        let chunk = std::mem::size_of::<Chunk>();
        (self.raw.capacity() + self.rollup.capacity()) * chunk
            + self
                .raw
                .iter()
                .chain(self.rollup.iter())
                .map(Chunk::heap_bytes)
                .sum::<usize>()
    }
}

/// All series of one metric name, which share one kind.
#[derive(Clone, Debug)]
pub(crate) struct Metric {
    pub kind: Kind,
    pub series: BTreeMap<Labels, Series>,
}

/// A known series, as [`Store::list`] reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesInfo {
    pub metric: String,
    pub labels: Labels,
    pub kind: Kind,
    /// Time (ms, start of its 10 s slot) and value of the newest sample.
    pub last_ms: i64,
    pub last_value: f64,
}

/// Estimated memory of one metric's series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetricMemory {
    pub metric: String,
    pub series: usize,
    pub bytes: usize,
}

/// The time-series store. See the crate documentation for how to drive it.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) config: Config,
    pub(crate) metrics: BTreeMap<Str, Metric>,
    pub(crate) series_count: usize,
    /// Slot of the newest tick.
    pub(crate) latest_slot: Option<i64>,
    pub(crate) stats: Stats,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(Config::default())
    }
}

impl Store {
    pub fn new(config: Config) -> Self {
        Store {
            config,
            metrics: BTreeMap::new(),
            series_count: 0,
            latest_slot: None,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records the current value of every series at `now`, once per sampling
    /// tick (every 10 s). Returns how many samples were accepted; refusals are
    /// counted in [`Store::stats`]. A tick in the same 10 s slot as the
    /// previous one overwrites it; a tick older than the newest is refused as
    /// a whole (the clock went backwards; nothing is rewritten).
    pub fn record(&mut self, now: Timestamp, samples: &[Sample]) -> usize {
        let slot = now.as_millis().div_euclid(RAW_STEP_MS);
        if self.latest_slot.is_some_and(|l| slot < l) {
            self.stats.refused_out_of_order += samples.len() as u64;
            return 0;
        }
        self.advance_to(now);
        let mut accepted = 0;
        for s in samples {
            if self.record_one(slot, s) {
                accepted += 1;
            }
        }
        self.stats.samples += accepted as u64;
        accepted
    }

    /// Moves time forward without samples: rolls up finished buckets, seals
    /// chunks and applies retention. `record` does this itself; call it to
    /// let a store with no input age (or before `save` after a long pause).
    pub fn advance_to(&mut self, now: Timestamp) {
        let slot = now.as_millis().div_euclid(RAW_STEP_MS);
        if self.latest_slot.is_some_and(|l| slot < l) {
            return;
        }
        let bucket = slot.div_euclid(SLOTS_PER_BUCKET);
        let crossed = self
            .latest_slot
            .is_some_and(|l| l.div_euclid(SLOTS_PER_BUCKET) < bucket);
        self.latest_slot = Some(slot);
        if crossed {
            self.sweep(slot);
        }
    }

    fn sweep(&mut self, now_slot: i64) {
        let upto = now_slot.div_euclid(SLOTS_PER_BUCKET);
        // A series with no sample in the 7 days of rollups is gone.
        let alive_from = (upto - ROLLUP_BUCKETS + 1) * SLOTS_PER_BUCKET;
        let mut expired = 0usize;
        self.metrics.retain(|_, m| {
            m.series.retain(|_, s| {
                if s.last.0 < alive_from {
                    expired += 1;
                    return false;
                }
                s.sweep(now_slot, upto);
                true
            });
            !m.series.is_empty()
        });
        self.series_count -= expired;
        self.stats.expired_series += expired as u64;
    }

    fn valid(&self, s: &Sample) -> bool {
        let c = &self.config;
        // The snapshot format stores lengths as u16 and label counts as u8.
        let max_len = c.max_str_len.min(u16::MAX as usize);
        let ok_str = |x: &str| !x.is_empty() && x.len() <= max_len;
        s.value.is_finite()
            && ok_str(&s.name)
            && s.labels.len() <= c.max_labels.min(u8::MAX as usize)
            && s.labels
                .iter()
                .all(|(k, v)| ok_str(k) && v.len() <= max_len)
    }

    fn record_one(&mut self, slot: i64, s: &Sample) -> bool {
        if !self.valid(s) {
            self.stats.refused_invalid += 1;
            return false;
        }
        let full = self.series_count >= self.config.max_series;
        let per_metric = self.config.max_series_per_metric;
        let m = match self.metrics.get_mut(s.name.as_str()) {
            Some(m) => m,
            None if full => {
                self.stats.refused_cardinality += 1;
                return false;
            }
            None => self.metrics.entry(s.name.clone()).or_insert(Metric {
                kind: s.kind,
                series: BTreeMap::new(),
            }),
        };
        if m.kind != s.kind {
            self.stats.refused_kind_conflict += 1;
            return false;
        }
        let at_metric_cap = m.series.len() >= per_metric;
        match m.series.get_mut(&s.labels) {
            Some(series) => series.put(slot, s.value),
            None if full || at_metric_cap => {
                self.stats.refused_cardinality += 1;
                return false;
            }
            None => {
                let mut series = Series::new(s.kind, slot, s.value);
                series.put(slot, s.value);
                m.series.insert(s.labels.clone(), series);
                self.series_count += 1;
            }
        }
        true
    }

    /// Every known series, ordered by name then labels.
    pub fn list(&self) -> Vec<SeriesInfo> {
        self.metrics
            .iter()
            .flat_map(|(name, m)| {
                m.series.iter().map(move |(labels, s)| SeriesInfo {
                    metric: name.to_string(),
                    labels: labels.clone(),
                    kind: m.kind,
                    last_ms: s.last.0 * RAW_STEP_MS,
                    last_value: s.last.1,
                })
            })
            .collect()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            metrics: self.metrics.len(),
            series: self.series_count,
            ..self.stats.clone()
        }
    }

    /// Time of the newest tick (start of its 10 s slot).
    pub fn latest(&self) -> Option<Timestamp> {
        self.latest_slot.map(|s| Timestamp(s * RAW_STEP_MS))
    }

    /// Estimated heap bytes held by series data, names and labels (B-tree
    /// nodes approximated by their entries).
    pub fn heap_bytes(&self) -> usize {
        self.memory_by_metric().iter().map(|m| m.bytes).sum()
    }

    /// The same estimate per metric name, to see which metric is costly.
    pub fn memory_by_metric(&self) -> Vec<MetricMemory> {
        self.metrics
            .iter()
            .map(|(name, m)| {
                let name_heap = if name.is_heap_allocated() {
                    name.capacity()
                } else {
                    0
                };
                let series: usize = m
                    .series
                    .iter()
                    .map(|(l, s)| {
                        std::mem::size_of::<(Labels, Series)>() + l.heap_bytes() + s.heap_bytes()
                    })
                    .sum();
                MetricMemory {
                    metric: name.to_string(),
                    series: m.series.len(),
                    bytes: name_heap + std::mem::size_of::<(Str, Metric)>() + series,
                }
            })
            .collect()
    }
}
