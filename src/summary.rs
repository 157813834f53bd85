//! What a run saw, besides alerts: lines and events per source, input that
//! could not be parsed (with source and line), events that break the event
//! catalog, late and evicted state, and per-rule counts. `replay --summary`
//! prints it; `run` logs it at shutdown. Bad input is always *counted*; only
//! the first few of each kind are kept with their location so that a file
//! full of garbage cannot exhaust memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use secmon_engine::{EngineStats, Ruleset};

/// How many located examples to keep per error kind.
pub const DEFAULT_SAMPLES: usize = 20;

#[derive(Debug, Clone)]
pub struct Located {
    pub source: String,
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub count: u64,
    pub samples: Vec<Located>,
}

impl Tally {
    pub fn add(&mut self, limit: usize, at: impl FnOnce() -> Located) {
        self.count += 1;
        if self.samples.len() < limit {
            self.samples.push(at());
        }
    }

    fn merge(&mut self, other: Tally, limit: usize) {
        self.count += other.count;
        for s in other.samples {
            if self.samples.len() < limit {
                self.samples.push(s);
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub limit: usize,
    pub lines: BTreeMap<String, u64>,
    pub events: u64,
    /// Syslog lines that parsed but matched no pattern: valid, not errors.
    pub unmatched_syslog: u64,
    /// Parse errors by kind (`invalid JSON`, `no parser matched`, …).
    pub errors: BTreeMap<&'static str, Tally>,
    /// Catalog violations by (event, missing field).
    pub catalog: BTreeMap<(String, &'static str), Tally>,
}

impl Summary {
    pub fn new(limit: usize) -> Self {
        Summary {
            limit,
            ..Default::default()
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    pub fn merge(&mut self, other: Summary) {
        for (k, v) in other.lines {
            *self.lines.entry(k).or_default() += v;
        }
        self.events += other.events;
        self.unmatched_syslog += other.unmatched_syslog;
        for (k, v) in other.errors {
            self.errors.entry(k).or_default().merge(v, self.limit);
        }
        for (k, v) in other.catalog {
            self.catalog.entry(k).or_default().merge(v, self.limit);
        }
    }

    pub fn render(
        &self,
        ruleset: &Ruleset,
        stats: &EngineStats,
        alerts: &BTreeMap<usize, u64>,
    ) -> String {
        let mut s = String::new();
        let total_lines: u64 = self.lines.values().sum();
        let _ = writeln!(s, "== secmon summary ==");
        let _ = writeln!(
            s,
            "input: {total_lines} lines, {} events, {} parse errors, {} syslog lines matched no pattern, {} late events (dropped from detection)",
            self.events,
            self.error_count(),
            self.unmatched_syslog,
            stats.late_events
        );
        for (src, n) in &self.lines {
            let _ = writeln!(s, "  {src}: {n} lines");
        }
        let _ = writeln!(s, "rules:");
        let _ = writeln!(
            s,
            "  {:<34} {:>10} {:>8} {:>10} {:>9}",
            "rule", "matched", "alerts", "groups now", "evicted"
        );
        for (i, r) in ruleset.rules().iter().enumerate() {
            let st = stats.rules.get(i).cloned().unwrap_or_default();
            let name = if r.enabled() {
                r.id().to_string()
            } else {
                format!("{} (disabled)", r.id())
            };
            let _ = writeln!(
                s,
                "  {:<34} {:>10} {:>8} {:>10} {:>9}",
                name,
                st.matched,
                alerts.get(&i).copied().unwrap_or(0),
                st.groups_live,
                st.groups_evicted
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "parse errors:");
            for (kind, t) in &self.errors {
                let _ = writeln!(s, "  {kind}: {}", t.count);
                for l in &t.samples {
                    let _ = writeln!(s, "    {}:{}: {}", l.source, l.line, l.message);
                }
                if t.count > t.samples.len() as u64 {
                    let _ = writeln!(s, "    … and {} more", t.count - t.samples.len() as u64);
                }
            }
        }
        if !self.catalog.is_empty() {
            let _ = writeln!(s, "catalog violations (events processed anyway):");
            for ((event, field), t) in &self.catalog {
                let _ = writeln!(s, "  {event}: missing fields.{field}: {}", t.count);
                for l in t.samples.iter().take(3) {
                    let _ = writeln!(s, "    {}:{}", l.source, l.line);
                }
            }
        }
        s
    }
}
