//! Metric history for the dashboard: every 10 s (on the grid) the engine
//! thread records the engine's metric values, per-rule alert counts,
//! secmon's own counters and the latest state of each health probe into the
//! series store (`secmon-series`), and saves a snapshot every minute and at
//! shutdown so a restart keeps the last 7 days.
//!
//! Snapshots are encoded under the lock and written to disk on a helper
//! thread, so detection never waits for an fsync.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secmon_core::{Event, Timestamp};
use secmon_engine::config::MetricKind;
use secmon_series::{Config, Labels, Sample, Store};

use super::shared::{ApiCounters, Shared, Snapshot};

const STEP_MS: i64 = secmon_series::RAW_STEP_MS;
const SAVE_EVERY_MS: i64 = 60_000;

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("series.snap")
}

/// The store from the last snapshot; a missing file is a first start, a bad
/// one is reported and replaced.
pub fn load(path: &Path) -> Store {
    match Store::load_file(path, Config::default()) {
        Ok(Some(s)) => s,
        Ok(None) => Store::new(Config::default()),
        Err(e) => {
            tracing::warn!(event = "secmon.series_unusable", path = %path.display(), error = %e, "metric history snapshot unusable; starting empty");
            Store::new(Config::default())
        }
    }
}

#[derive(Default)]
pub struct History {
    last_slot: Option<i64>,
    last_save: Option<i64>,
    /// Latest (latency ms, up) per probe, from `probe.result` events.
    probes: BTreeMap<String, (f64, bool)>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl History {
    pub fn observe(&mut self, ev: &Event) {
        if ev.name() != Some("probe.result") || self.probes.len() >= 1000 {
            return;
        }
        let Some(probe) = ev.get("fields.probe").map(|v| v.to_string()) else {
            return;
        };
        let latency = ev
            .get("fields.latency_ms")
            .and_then(|v| v.to_string().parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        let up = ev.get("fields.ok").is_some_and(|v| v.to_string() == "true");
        self.probes.insert(probe, (latency, up));
    }

    /// Records a sample set when `now` entered a new 10 s slot.
    pub fn tick(&mut self, shared: &Shared, snap: &Snapshot, now: Timestamp, path: &Path) {
        let slot = now.0.div_euclid(STEP_MS);
        if self.last_slot == Some(slot) {
            return;
        }
        self.last_slot = Some(slot);
        let samples = self.samples(shared, snap);
        let bytes = {
            let Ok(mut store) = shared.series.lock() else {
                return;
            };
            store.record(now, &samples);
            let due = self
                .last_save
                .is_none_or(|t| now.0.saturating_sub(t) >= SAVE_EVERY_MS);
            due.then(|| store.to_snapshot())
        };
        if let Some(bytes) = bytes {
            self.last_save = Some(now.0);
            if self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
                return; // the previous write is still going: skip this one
            }
            let path = path.to_path_buf();
            self.writer = Some(std::thread::spawn(move || {
                if let Err(e) = secmon_series::write_snapshot_file(&path, &bytes) {
                    tracing::error!(event = "secmon.series_save_failed", error = %e, "saving metric history failed");
                }
            }));
        }
    }

    /// Final save at shutdown.
    pub fn save(&mut self, shared: &Shared, path: &Path) {
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let bytes = match shared.series.lock() {
            Ok(s) => s.to_snapshot(),
            Err(_) => return,
        };
        if let Err(e) = secmon_series::write_snapshot_file(path, &bytes) {
            tracing::error!(event = "secmon.series_save_failed", error = %e, "saving metric history failed");
        }
    }

    fn samples(&self, shared: &Shared, snap: &Snapshot) -> Vec<Sample> {
        let mut out = Vec::with_capacity(snap.metrics.len() + snap.rules.len() * 2 + 32);
        for m in &snap.metrics {
            match m.kind {
                MetricKind::Counter => out.push(Sample::counter(m.name.as_str(), m.value)),
                // A level (sessions alive): recorded as is, zero included.
                MetricKind::UpDown => out.push(Sample::gauge(m.name.as_str(), m.value)),
                MetricKind::Gauge => {
                    if m.count > 0 {
                        out.push(Sample::gauge(m.name.as_str(), m.value));
                    }
                }
                MetricKind::Histogram => out.extend(Sample::summary(
                    m.name.as_str(),
                    &Labels::new(),
                    &[(0.5, m.p50), (0.95, m.p95), (0.99, m.p99)],
                )),
            }
        }
        for r in &snap.rules {
            out.push(
                Sample::counter("rule.alerts.fired", r.fired as f64).label("rule", r.id.as_str()),
            );
            out.push(
                Sample::gauge("rule.groups", r.live_groups as f64).label("rule", r.id.as_str()),
            );
        }
        for (probe, (latency, up)) in &self.probes {
            if latency.is_finite() {
                out.push(
                    Sample::gauge("probe.latency.ms", *latency).label("probe", probe.as_str()),
                );
            }
            out.push(
                Sample::gauge("probe.up", if *up { 1.0 } else { 0.0 })
                    .label("probe", probe.as_str()),
            );
        }
        let c = &shared.api;
        for (name, v) in [
            ("secmon.events", snap.events_in as f64),
            ("secmon.events.late", snap.late_events as f64),
            ("secmon.http.ingested", ApiCounters::get(&c.ingested) as f64),
            (
                "secmon.api.auth.failures",
                ApiCounters::get(&c.auth_failures) as f64,
            ),
        ] {
            out.push(Sample::counter(name, v));
        }
        for (kind, n) in &snap.parse_errors {
            out.push(
                Sample::counter("secmon.parse.errors", *n as f64).label("kind", kind.as_str()),
            );
        }
        for (name, v) in [
            ("secmon.decisions.active", shared.decisions.len() as f64),
            ("secmon.outbox.depth", snap.outbox_depth as f64),
            ("secmon.notifications.dead", snap.outbox_dead as f64),
        ] {
            out.push(Sample::gauge(name, v));
        }
        out
    }
}
