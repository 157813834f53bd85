//! What the engine thread shares with the HTTP side: the decision index, the
//! ruleset in force, and a snapshot of counters taken once per tick.
//!
//! The engine thread is the only writer of detection and response state; the
//! API never reaches into it. It reads this published copy instead (a cheap
//! `Arc` clone under a lock held for nanoseconds), and asks for changes by
//! sending messages ([`super::Msg`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use secmon_core::Timestamp;
use secmon_engine::{MetricSample, Ruleset};

use super::decisions::DecisionIndex;

/// Per-rule figures for `/metrics` and the rules list.
#[derive(Clone, Debug, Default)]
pub struct RuleFigures {
    pub id: String,
    pub fired: u64,
    pub resolved: u64,
    pub live_groups: u64,
    pub evicted_groups: u64,
}

/// Counters and metric values as of the engine's last tick.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Wall time the snapshot was taken.
    pub at: Timestamp,
    /// Engine watermark (event time).
    pub watermark: Option<Timestamp>,
    pub metrics: Vec<MetricSample>,
    pub rules: Vec<RuleFigures>,
    pub events_in: u64,
    pub late_events: u64,
    pub parse_errors: BTreeMap<String, u64>,
    pub catalog_violations: u64,
    pub sources_live: usize,
    pub sources_total: usize,
    pub outbox_depth: u64,
    pub outbox_dead: u64,
    pub store_ok: bool,
    pub response_errors: u64,
}

/// Counters the HTTP side increments itself.
#[derive(Debug, Default)]
pub struct ApiCounters {
    pub ingested: AtomicU64,
    pub ingest_rejected_lines: AtomicU64,
    pub ingest_requests: AtomicU64,
    pub auth_failures: AtomicU64,
    pub auth_throttled: AtomicU64,
    pub requests: AtomicU64,
}

impl ApiCounters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

pub struct Shared {
    pub decisions: DecisionIndex,
    /// Metric history for the dashboard (`GET /v1/series`); the engine
    /// thread records into it every 10 s.
    pub series: Mutex<secmon_series::Store>,
    ruleset: RwLock<Arc<Ruleset>>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub api: ApiCounters,
    pub started: Timestamp,
    pub version: &'static str,
}

impl Shared {
    pub fn new(
        ruleset: Arc<Ruleset>,
        decisions: DecisionIndex,
        series: secmon_series::Store,
        started: Timestamp,
    ) -> Self {
        Shared {
            decisions,
            series: Mutex::new(series),
            ruleset: RwLock::new(ruleset),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            api: ApiCounters::default(),
            started,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn ruleset(&self) -> Arc<Ruleset> {
        match self.ruleset.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_ruleset(&self, rs: Arc<Ruleset>) {
        match self.ruleset.write() {
            Ok(mut g) => *g = rs,
            Err(p) => *p.into_inner() = rs,
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn publish(&self, s: Snapshot) {
        let s = Arc::new(s);
        match self.snapshot.write() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }
}
