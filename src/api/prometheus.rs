//! `GET /metrics`: the Prometheus text exposition format (0.0.4).
//!
//! Rendered by hand from the engine's snapshot rather than through
//! `prometheus-client`: the derived metrics are defined at run time by the
//! configuration, and their histograms are DDSketches exposed as summaries
//! with quantiles, a type `prometheus-client` does not offer.
//!
//! Names follow Prometheus conventions, which `promtool check metrics`
//! enforces: dots become underscores, counters end in `_total`, and units are
//! base units — a metric configured as `redis.scan.duration.ms` is exported
//! as `redis_scan_duration_seconds` (values divided by 1000), `redis.memory.mb`
//! as `redis_memory_bytes`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use secmon_engine::config::MetricKind;

use super::AppState;
use crate::daemon::shared::{ApiCounters, Snapshot};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn scrape(State(app): State<AppState>) -> impl IntoResponse {
    let snap = app.shared.snapshot();
    let rs = app.shared.ruleset();
    let mut out = String::with_capacity(16 * 1024);
    render_derived(&mut out, &snap, &rs);
    render_rules(&mut out, &snap);
    render_self(&mut out, &app, &snap);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out)
}

/// Prometheus name and scale factor for a configured metric name.
pub fn prom_name(name: &str) -> (String, f64) {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, '_');
    }
    for (suffix, unit, scale) in [
        ("_ms", "_seconds", 0.001),
        ("_us", "_seconds", 0.000_001),
        ("_mb", "_bytes", 1024.0 * 1024.0),
        ("_kb", "_bytes", 1024.0),
    ] {
        if let Some(stem) = base.strip_suffix(suffix) {
            return (format!("{stem}{unit}"), scale);
        }
    }
    (base, 1.0)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_derived(out: &mut String, snap: &Snapshot, rs: &secmon_engine::Ruleset) {
    for m in &snap.metrics {
        let def = rs.metrics().iter().find(|d| d.name == m.name);
        let help = def
            .and_then(|d| d.description.clone())
            .unwrap_or_else(|| format!("secmon derived metric {}", m.name));
        let (name, scale) = prom_name(&m.name);
        match m.kind {
            MetricKind::Counter => {
                let name = if name.ends_with("_total") {
                    name
                } else {
                    format!("{name}_total")
                };
                header(out, &name, "counter", &help);
                let _ = writeln!(out, "{name} {}", num(m.value * scale));
            }
            MetricKind::UpDown => {
                header(out, &name, "gauge", &help);
                let _ = writeln!(out, "{name} {}", num(m.value * scale));
            }
            MetricKind::Gauge => {
                if m.count == 0 {
                    continue; // never observed: no value to report
                }
                header(out, &name, "gauge", &help);
                let _ = writeln!(out, "{name} {}", num(m.value * scale));
            }
            MetricKind::Histogram => {
                header(
                    out,
                    &name,
                    "summary",
                    &format!("{help} (quantiles over the last minute of event time)"),
                );
                for (q, v) in [("0.5", m.p50), ("0.95", m.p95), ("0.99", m.p99)] {
                    if let Some(v) = v {
                        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", num(v * scale));
                    }
                }
                let _ = writeln!(out, "{name}_count {}", m.count);
            }
        }
    }
}

fn render_rules(out: &mut String, snap: &Snapshot) {
    type Pick = fn(&crate::daemon::shared::RuleFigures) -> u64;
    let families: [(&str, &str, &str, Pick); 4] = [
        (
            "secmon_rule_alerts_fired_total",
            "counter",
            "Alerts fired per rule.",
            |f| f.fired,
        ),
        (
            "secmon_rule_alerts_resolved_total",
            "counter",
            "Alerts resolved per rule.",
            |f| f.resolved,
        ),
        (
            "secmon_rule_groups",
            "gauge",
            "Groups (IPs, users…) with live detection state per rule.",
            |f| f.live_groups,
        ),
        (
            "secmon_rule_groups_evicted_total",
            "counter",
            "Groups dropped by the max_groups cap per rule.",
            |f| f.evicted_groups,
        ),
    ];
    for (name, kind, help, pick) in families {
        header(out, name, kind, help);
        for f in &snap.rules {
            let _ = writeln!(
                out,
                "{name}{{rule=\"{}\"}} {}",
                escape_label(&f.id),
                pick(f)
            );
        }
    }
}

fn render_self(out: &mut String, app: &AppState, snap: &Snapshot) {
    let c = &app.shared.api;
    let simple: [(&str, &str, &str, f64); 14] = [
        (
            "secmon_events_total",
            "counter",
            "Events taken by the engine (files, stdin, HTTP).",
            snap.events_in as f64,
        ),
        (
            "secmon_events_late_total",
            "counter",
            "Events older than the lateness allows; not evaluated.",
            snap.late_events as f64,
        ),
        (
            "secmon_catalog_violations_total",
            "counter",
            "Catalog events missing a required field.",
            snap.catalog_violations as f64,
        ),
        (
            "secmon_sources_live",
            "gauge",
            "Sources still reading.",
            snap.sources_live as f64,
        ),
        (
            "secmon_sources_configured",
            "gauge",
            "Sources configured.",
            snap.sources_total as f64,
        ),
        (
            "secmon_outbox_depth",
            "gauge",
            "Notifications waiting to be delivered.",
            snap.outbox_depth as f64,
        ),
        (
            "secmon_notifications_dead_letters",
            "gauge",
            "Notifications that failed for good and wait for an operator.",
            snap.outbox_dead as f64,
        ),
        (
            "secmon_response_errors_total",
            "counter",
            "Failures of the response stage (store, publishers).",
            snap.response_errors as f64,
        ),
        (
            "secmon_decisions_active",
            "gauge",
            "Decisions in force.",
            app.shared.decisions.len() as f64,
        ),
        (
            "secmon_http_ingested_events_total",
            "counter",
            "Events accepted by POST /v1/events.",
            ApiCounters::get(&c.ingested) as f64,
        ),
        (
            "secmon_http_ingest_rejected_lines_total",
            "counter",
            "Lines of POST /v1/events bodies that failed to parse.",
            ApiCounters::get(&c.ingest_rejected_lines) as f64,
        ),
        (
            "secmon_api_auth_failures_total",
            "counter",
            "Requests with a missing or invalid API key.",
            ApiCounters::get(&c.auth_failures) as f64,
        ),
        (
            "secmon_api_auth_throttled_total",
            "counter",
            "Requests refused because their address failed authentication too often.",
            ApiCounters::get(&c.auth_throttled) as f64,
        ),
        (
            "secmon_start_time_seconds",
            "gauge",
            "When this secmon started, in seconds since the Unix epoch.",
            app.shared.started.0 as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, v) in simple {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {}", num(v));
    }
    header(
        out,
        "secmon_parse_errors_total",
        "counter",
        "Input that could not be parsed, by kind.",
    );
    for (kind, n) in &snap.parse_errors {
        let _ = writeln!(
            out,
            "secmon_parse_errors_total{{kind=\"{}\"}} {n}",
            escape_label(kind)
        );
    }
    header(out, "secmon_build_info", "gauge", "Version of this secmon.");
    let _ = writeln!(
        out,
        "secmon_build_info{{version=\"{}\"}} 1",
        app.shared.version
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        assert_eq!(
            prom_name("cache.value.rejection.count"),
            ("cache_value_rejection_count".into(), 1.0)
        );
        assert_eq!(
            prom_name("redis.scan.duration.ms"),
            ("redis_scan_duration_seconds".into(), 0.001)
        );
        assert_eq!(
            prom_name("redis.memory.mb"),
            ("redis_memory_bytes".into(), 1048576.0)
        );
        assert_eq!(prom_name("9lives"), ("_9lives".into(), 1.0));
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
