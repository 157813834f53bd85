//! Reading series back as aligned points for charts.
//!
//! A query asks for `func` of a metric's series (one label set, or all of
//! them) over `[since, until]` at `step`. Points are at `t = since` floored to
//! the step, then every step while `t <= until`; the point at `t` summarizes
//! the samples with time in `[t, t + step)` (so the newest point may be a
//! window still in progress). A window without samples is `None` — `null` in
//! JSON — never an interpolated or zero value.
//!
//! The tier is chosen by range: the 10 s tier when `since` is within its 24 h,
//! else the 5 min rollups. The step is rounded up to a multiple of the chosen
//! tier's resolution, and the result says which step it used. Rollups were
//! computed with the same arithmetic as the 10 s path ([`Agg`]), so both tiers
//! give the same answer for the same 5-min-aligned window.
//!
//! This module does not pick steps for the caller (a chart knows its width)
//! and does not merge label sets (`sum by`): a dashboard panel gets one line
//! per series.

use std::fmt;
use std::str::FromStr;

use secmon_core::{Dur, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sample::{Kind, Labels};
use crate::store::{
    Agg, RAW_SLOTS, RAW_STEP_MS, ROLLUP_STEP_MS, SLOTS_PER_BUCKET, STALE_MS, Series, Store,
};

/// Most points one series may return (Prometheus' limit): bounds the work
/// and the response size a single API request can ask for.
pub const MAX_POINTS: i64 = 11_000;

/// What each point reports about its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    /// The newest sample in the window (`raw` is an alias: at the tier's
    /// resolution this is each sample as recorded).
    #[serde(alias = "raw")]
    Last,
    Avg,
    Min,
    Max,
    /// Counters: reset-aware increase over the window, per second of step.
    Rate,
    /// Counters: reset-aware increase over the window.
    Increase,
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Func::Last => "last",
            Func::Avg => "avg",
            Func::Min => "min",
            Func::Max => "max",
            Func::Rate => "rate",
            Func::Increase => "increase",
        })
    }
}

impl FromStr for Func {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, QueryError> {
        Ok(match s {
            "last" | "raw" => Func::Last,
            "avg" => Func::Avg,
            "min" => Func::Min,
            "max" => Func::Max,
            "rate" => Func::Rate,
            "increase" => Func::Increase,
            _ => {
                return Err(QueryError::UnknownFunc(secmon_core::time::truncate(s)));
            }
        })
    }
}

/// Which label sets of the metric to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelFilter {
    /// Every series of the metric.
    All,
    /// Exactly this label set.
    Exact(Labels),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub metric: String,
    pub labels: LabelFilter,
    pub since: Timestamp,
    pub until: Timestamp,
    pub step: Dur,
    pub func: Func,
}

/// `[t_ms, value]` in JSON; `value` is `null` for a window without data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point(pub i64, pub Option<f64>);

/// One series' answer, ready to serialize for the API:
/// `{"metric":…,"labels":{…},"kind":…,"func":…,"step_ms":…,"resolution_ms":…,"points":[[t,v],…]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesData {
    pub metric: String,
    pub labels: Labels,
    pub kind: Kind,
    pub func: Func,
    /// The step used (the requested one rounded up to the tier resolution).
    pub step_ms: i64,
    /// Resolution of the tier that answered: 10000 or 300000.
    pub resolution_ms: i64,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown metric {0:?}")]
    UnknownMetric(String),
    #[error("metric {metric:?} has no series with labels {labels}")]
    UnknownSeries { metric: String, labels: Labels },
    #[error("unknown function {0:?} (use last, raw, avg, min, max, rate or increase)")]
    UnknownFunc(String),
    #[error("since ({since}) is after until ({until})")]
    InvertedRange { since: Timestamp, until: Timestamp },
    #[error("step {step} is smaller than {min}, the resolution of {why}")]
    StepTooSmall {
        step: Dur,
        min: Dur,
        why: &'static str,
    },
    #[error("{func} needs a counter, but {metric:?} is a {kind} (use last, avg, min or max)")]
    NotACounter {
        func: Func,
        metric: String,
        kind: Kind,
    },
    #[error(
        "the query asks for {points} points per series, more than {max}: use a larger step or a shorter range"
    )]
    TooManyPoints { points: i128, max: i64 },
}

impl Store {
    /// Answers `q`, one [`SeriesData`] per matching series, ordered by labels.
    pub fn query(&self, q: &Query) -> Result<Vec<SeriesData>, QueryError> {
        let metric = self
            .metrics
            .get(q.metric.as_str())
            .ok_or_else(|| QueryError::UnknownMetric(secmon_core::time::truncate(&q.metric)))?;
        if matches!(q.func, Func::Rate | Func::Increase) && metric.kind != Kind::Counter {
            return Err(QueryError::NotACounter {
                func: q.func,
                metric: q.metric.clone(),
                kind: metric.kind,
            });
        }
        let plan = self.plan(q)?;
        let selected: Vec<(&Labels, &Series)> = match &q.labels {
            LabelFilter::All => metric.series.iter().collect(),
            LabelFilter::Exact(l) => match metric.series.get_key_value(l) {
                Some(kv) => vec![kv],
                None => {
                    return Err(QueryError::UnknownSeries {
                        metric: q.metric.clone(),
                        labels: l.clone(),
                    });
                }
            },
        };
        Ok(selected
            .into_iter()
            .map(|(labels, s)| SeriesData {
                metric: q.metric.clone(),
                labels: labels.clone(),
                kind: metric.kind,
                func: q.func,
                step_ms: plan.step,
                resolution_ms: plan.resolution,
                points: plan.points(s, q.func),
            })
            .collect())
    }

    fn plan(&self, q: &Query) -> Result<Plan, QueryError> {
        if q.since > q.until {
            return Err(QueryError::InvertedRange {
                since: q.since,
                until: q.until,
            });
        }
        let step = q.step.as_millis();
        if step < RAW_STEP_MS {
            return Err(QueryError::StepTooSmall {
                step: q.step,
                min: Dur::from_millis(RAW_STEP_MS),
                why: "the 10 s tier",
            });
        }
        let raw_from = self.latest_slot.map_or(i64::MIN, |l| {
            (l - RAW_SLOTS + 1).saturating_mul(RAW_STEP_MS)
        });
        let resolution = if q.since.as_millis() >= raw_from {
            RAW_STEP_MS
        } else if step < ROLLUP_STEP_MS {
            return Err(QueryError::StepTooSmall {
                step: q.step,
                min: Dur::from_millis(ROLLUP_STEP_MS),
                why: "the 5 min tier, which answers ranges starting more than 24 h ago",
            });
        } else {
            ROLLUP_STEP_MS
        };
        let too_many = |points: i128| QueryError::TooManyPoints {
            points,
            max: MAX_POINTS,
        };
        // Round up to the resolution; a step this large is one point anyway.
        let step = step
            .checked_add(resolution - 1)
            .map(|s| s / resolution * resolution)
            .ok_or_else(|| too_many(1))?;
        let start = q.since.floor_to(Dur::from_millis(step)).as_millis();
        let n = (i128::from(q.until.as_millis()) - i128::from(start)) / i128::from(step) + 1;
        if n > i128::from(MAX_POINTS) {
            return Err(too_many(n));
        }
        Ok(Plan {
            start,
            step,
            n: n as usize,
            resolution,
        })
    }
}

/// A validated query: `n` windows of `step` ms from `start`, read from the
/// tier of `resolution`.
struct Plan {
    start: i64,
    step: i64,
    n: usize,
    resolution: i64,
}

impl Plan {
    fn window(&self, t: i64) -> Option<usize> {
        if t < self.start {
            return None;
        }
        usize::try_from((t - self.start) / self.step)
            .ok()
            .filter(|&i| i < self.n)
    }

    fn end(&self) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(self.n as i64))
    }

    fn points(&self, s: &Series, func: Func) -> Vec<Point> {
        let mut wins = vec![Agg::EMPTY; self.n];
        let counter = s.kind == Kind::Counter;
        if self.resolution == RAW_STEP_MS {
            // Counters read back far enough to find the sample before the
            // first window, so its first increase is known.
            let from = if counter {
                self.start.saturating_sub(STALE_MS)
            } else {
                self.start
            };
            let mut carry = None;
            let slots = s.raw_samples(
                from.div_euclid(RAW_STEP_MS),
                ceil_div(self.end(), RAW_STEP_MS),
            );
            for (slot, v) in slots {
                let t = slot * RAW_STEP_MS;
                match self.window(t) {
                    Some(i) => wins[i].push(t, v, counter, &mut carry),
                    None => {
                        // Before the first window: only moves the carry.
                        let mut scratch = Agg::EMPTY;
                        scratch.push(t, v, counter, &mut carry);
                    }
                }
            }
        } else {
            let rolls = s.rollups(
                self.start.div_euclid(ROLLUP_STEP_MS),
                ceil_div(self.end(), ROLLUP_STEP_MS),
            );
            for (b, a) in rolls {
                if let Some(i) = self.window(b * ROLLUP_STEP_MS) {
                    wins[i].merge(&a);
                }
            }
        }
        let secs = self.step as f64 / 1000.0;
        wins.iter()
            .enumerate()
            .map(|(i, a)| {
                let t = self.start + self.step * i as i64;
                Point(t, eval(a, func, secs))
            })
            .collect()
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

fn eval(a: &Agg, func: Func, step_secs: f64) -> Option<f64> {
    if a.count == 0.0 {
        return None;
    }
    match func {
        Func::Last => Some(a.last),
        Func::Avg => Some(a.sum / a.count),
        Func::Min => Some(a.min),
        Func::Max => Some(a.max),
        Func::Increase => a.inc,
        Func::Rate => a.inc.map(|i| i / step_secs),
    }
}

// Slots and buckets are aligned: a 5 min window holds 30 whole slots.
const _: () = assert!(ROLLUP_STEP_MS == RAW_STEP_MS * SLOTS_PER_BUCKET);
