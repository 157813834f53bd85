//! `secmon export grafana` and `secmon export prometheus-rules`: the same
//! dashboards and metric rules for teams that already run Grafana and
//! Prometheus, scraping secmon's `/metrics`.
//!
//! Both are translations of what secmon itself uses, never a second copy:
//! the Grafana dashboards come from the dashboards the web UI draws (the
//! configuration's `dashboards:` over the shipped `web/dashboards.json`, one
//! Grafana panel per secmon panel, same title, order and thresholds), the alerting rules from the configuration's
//! `metric` rules. Names follow `/metrics` ([`prom_name`]: dots to
//! underscores, `_total` on counters, base units), and thresholds are scaled
//! with the unit (a `100` ms threshold becomes `0.1` seconds).
//!
//! What Prometheus cannot express is said, not faked: panels drawn from the
//! archive or the response store (per-IP heatmaps, log tables, alerts,
//! decisions) become text panels linking to the secmon page that has them,
//! and a metric rule whose function has no PromQL equivalent is left out
//! with the reason on stderr (and in a comment of the rules file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use secmon_engine::metric_expr::{CmpOp, Comparison, Func};
use secmon_engine::{Detector, MetricExpr, MetricKind, Ruleset};
use serde_json::{Value, json};

use crate::api::prometheus::prom_name;
use crate::cli::ConfigArg;

#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// The dashboards as Grafana dashboard JSON over a Prometheus datasource
    /// (a JSON array on stdout, or one file per dashboard with --out-dir).
    Grafana(GrafanaArgs),
    /// The metric rules as Prometheus alerting rules (YAML on stdout; check
    /// with `promtool check rules`).
    PrometheusRules {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Args)]
pub struct GrafanaArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write `secmon-<dashboard>.json` files here (Grafana's file provisioning
    /// reads a directory) instead of one array on stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Where secmon's own pages are, for links from the panels.
    #[arg(long, default_value = "http://127.0.0.1:9650")]
    pub secmon_url: String,
}

pub fn run(cmd: ExportCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCmd::Grafana(a) => {
            let (_, rt) = match super::load_runtime(a.config.config.as_deref()) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            // The configured dashboards (the defaults with `dashboards:` over
            // them): what `run` serves to the pages.
            let text = rt.dashboards.to_json();
            let boards = grafana(&text, &rt.ruleset, a.secmon_url.trim_end_matches('/'))?;
            match a.out_dir {
                None => crate::outln!("{}", serde_json::to_string_pretty(&boards)?),
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for b in &boards {
                        let uid = b["uid"].as_str().unwrap_or("secmon");
                        let path = dir.join(format!("{uid}.json"));
                        std::fs::write(&path, serde_json::to_vec_pretty(b)?)
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!("wrote {}", path.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ExportCmd::PrometheusRules { config } => {
            let (_, rt) = match super::load_runtime(config.config.as_deref()) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let (yaml, skipped) = prometheus_rules(&rt.ruleset);
            for (id, why) in &skipped {
                eprintln!("rule {id} left out: {why}");
            }
            crate::outln!("{}", yaml.trim_end());
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ------------------------------------------------------------ names, units

/// The Prometheus view of one secmon metric name.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// The name on `/metrics` (with `_total` for counters).
    name: String,
    kind: MetricKind,
    /// Multiply secmon values (and thresholds) by this to get Prometheus's.
    scale: f64,
    /// Grafana unit id.
    unit: &'static str,
}

/// Metrics secmon records about itself under other names on `/metrics`.
const OWN: &[(&str, &str)] = &[
    ("secmon.events", "secmon_events_total"),
    ("secmon.api.auth.failures", "secmon_api_auth_failures_total"),
    ("rule.alerts.fired", "secmon_rule_alerts_fired_total"),
];

fn series(name: &str, rs: &Ruleset) -> Option<Series> {
    if let Some((_, prom)) = OWN.iter().find(|(n, _)| *n == name) {
        return Some(Series {
            name: (*prom).to_string(),
            kind: MetricKind::Counter,
            scale: 1.0,
            unit: "short",
        });
    }
    let m = rs.metrics().iter().find(|m| m.name == name)?;
    let (base, scale) = prom_name(name);
    let unit = if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "bytes"
    } else if base.ends_with("_percent") {
        "percent"
    } else {
        "short"
    };
    let name = match m.kind {
        MetricKind::Counter if !base.ends_with("_total") => format!("{base}_total"),
        _ => base,
    };
    Some(Series {
        name,
        kind: m.kind,
        scale,
        unit,
    })
}

/// `k=v,k2=v2` (the dashboards' label filter) as a PromQL selector.
fn selector(name: &str, labels: Option<&str>) -> String {
    let pairs: Vec<String> = labels
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| format!("{}={}", k.trim(), quote(v.trim())))
        .collect();
    if pairs.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", pairs.join(","))
    }
}

/// A PromQL / YAML double-quoted string.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A duration as Prometheus writes it (`5m`, `90s`, `1h`).
fn prom_dur(ms: i64) -> String {
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms % n == 0 {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{}ms", ms.max(1))
}

fn num(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('e') { format!("{v:e}") } else { s }
}

// ----------------------------------------------------------------- grafana

/// One panel's PromQL for a secmon series query (`func` over `range`, a
/// PromQL range such as `$__rate_interval` or `5m`); `None` when Prometheus
/// has no equivalent.
fn promql(s: &Series, labels: Option<&str>, func: &str, range: &str) -> Option<String> {
    let sel = selector(&s.name, labels);
    Some(match (s.kind, func) {
        (MetricKind::Counter, "increase") => format!("increase({sel}[{range}])"),
        (MetricKind::Counter, "rate") => format!("rate({sel}[{range}])"),
        (MetricKind::Counter, _) => sel,
        (MetricKind::UpDown, "increase") => format!("delta({sel}[{range}])"),
        (MetricKind::Gauge | MetricKind::UpDown, "avg") => format!("avg_over_time({sel}[{range}])"),
        (MetricKind::Gauge | MetricKind::UpDown, "max") => format!("max_over_time({sel}[{range}])"),
        (MetricKind::Gauge | MetricKind::UpDown, "min") => format!("min_over_time({sel}[{range}])"),
        (MetricKind::Gauge | MetricKind::UpDown, "last") => sel,
        // Histograms are summaries with quantile labels on /metrics.
        (MetricKind::Histogram, "last" | "avg" | "max" | "min") => sel,
        _ => return None,
    })
}

fn thresholds(t: Option<&Value>, scale: f64) -> Value {
    let mut steps = vec![json!({"color": "green", "value": null})];
    if let Some(t) = t.and_then(Value::as_array) {
        for (v, color) in t.iter().zip(["yellow", "red"]) {
            if let Some(v) = v.as_f64() {
                steps.push(json!({"color": color, "value": v * scale}));
            }
        }
    }
    json!({"mode": "absolute", "steps": steps})
}

/// Grafana dashboards (schema 39) for every dashboard of `dashboards_json`.
pub fn grafana(
    dashboards_json: &str,
    rs: &Ruleset,
    secmon_url: &str,
) -> anyhow::Result<Vec<Value>> {
    let boards: serde_json::Map<String, Value> =
        serde_json::from_str(dashboards_json).context("dashboards.json")?;
    let mut out = Vec::new();
    for (key, d) in &boards {
        let title = d["title"].as_str().unwrap_or(key);
        let page = format!("{secmon_url}/ui/#/{key}");
        let mut panels = Vec::new();
        let (mut x, mut y) = (0u64, 0u64);
        let empty = Vec::new();
        for (i, p) in d["panels"].as_array().unwrap_or(&empty).iter().enumerate() {
            let w = if p["full"].as_bool() == Some(true) {
                24
            } else if p["wide"].as_bool() == Some(true) {
                12
            } else {
                6
            };
            if x + w > 24 {
                x = 0;
                y += 8;
            }
            let mut panel = panel(p, rs, secmon_url, &page);
            panel["id"] = json!(i + 1);
            panel["gridPos"] = json!({"x": x, "y": y, "w": w, "h": 8});
            x += w;
            panels.push(panel);
        }
        out.push(json!({
            "uid": format!("secmon-{key}"),
            "title": format!("secmon — {title}"),
            "description": d["seed"].as_str().unwrap_or(""),
            "tags": ["secmon"],
            "timezone": "utc",
            "schemaVersion": 39,
            "editable": true,
            "time": {"from": "now-24h", "to": "now"},
            "refresh": "30s",
            "templating": {"list": [{
                "name": "datasource", "label": "Prometheus", "type": "datasource",
                "query": "prometheus", "current": {}, "hide": 0,
            }]},
            "links": [{"title": "secmon", "url": page, "type": "link", "targetBlank": true}],
            "panels": panels,
        }));
    }
    Ok(out)
}

fn panel(p: &Value, rs: &Ruleset, secmon_url: &str, page: &str) -> Value {
    let title = p["title"].as_str().unwrap_or("");
    let mut links = vec![json!({"title": "in secmon", "url": page})];
    if let Some(rule) = p["rules"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(Value::as_str)
    {
        links.push(json!({
            "title": format!("alerts of {rule}"),
            "url": format!("{secmon_url}/ui/#/alerts?rule={rule}"),
        }));
    }
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    let text = |why: &str| {
        json!({
            "type": "text", "title": title, "links": links,
            "options": {"mode": "markdown", "content": format!(
                "**{title}** is drawn by secmon from {why}, which Prometheus does not have.\n\n[Open it in secmon]({page})"
            )},
        })
    };
    let ty = p["type"].as_str().unwrap_or("");
    match ty {
        "gauge" | "stat" => {
            let metric = p["metric"].as_str().unwrap_or("");
            let Some(s) = series(metric, rs) else {
                return text(&format!("`{metric}`"));
            };
            let func = p["func"].as_str().unwrap_or("last");
            let range = if p["total"].as_bool() == Some(true) {
                "$__range".to_string()
            } else {
                p["window"]
                    .as_str()
                    .unwrap_or("$__rate_interval")
                    .to_string()
            };
            let Some(expr) = promql(&s, p["labels"].as_str(), func, &range) else {
                return text(&format!("`{func}({metric})`"));
            };
            let mut defaults =
                json!({"unit": s.unit, "thresholds": thresholds(p.get("thresholds"), s.scale)});
            if let Some(max) = p["max"].as_f64() {
                defaults["min"] = json!(0);
                defaults["max"] = json!(max * s.scale);
            }
            json!({
                "type": ty, "title": title, "datasource": ds, "links": links,
                "targets": [{"refId": "A", "expr": expr, "instant": true}],
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}},
            })
        }
        "line" | "area" => {
            let mut targets = Vec::new();
            let mut unit = "short";
            let empty = Vec::new();
            for (i, q) in p["series"].as_array().unwrap_or(&empty).iter().enumerate() {
                let metric = q["metric"].as_str().unwrap_or("");
                let func = q["func"].as_str().unwrap_or("last");
                let Some(s) = series(metric, rs) else {
                    continue;
                };
                let Some(expr) = promql(&s, q["labels"].as_str(), func, "$__rate_interval") else {
                    continue;
                };
                unit = s.unit;
                let legend = match (q["name"].as_str(), s.kind) {
                    (Some(n), _) => n.to_string(),
                    (None, MetricKind::Histogram) => "{{quantile}}".into(),
                    (None, _) => metric.to_string(),
                };
                targets.push(json!({
                    "refId": char::from(b'A' + (i % 26) as u8).to_string(),
                    "expr": expr, "legendFormat": legend,
                }));
            }
            if targets.is_empty() {
                return text("series not on /metrics");
            }
            json!({
                "type": "timeseries", "title": title, "datasource": ds, "links": links,
                "targets": targets,
                "fieldConfig": {"defaults": {
                    "unit": unit,
                    "custom": {"fillOpacity": if ty == "area" { 25 } else { 0 }, "lineWidth": 1},
                }, "overrides": []},
            })
        }
        "pie" => {
            let empty = Vec::new();
            let targets: Vec<Value> = p["items"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .enumerate()
                .filter_map(|(i, it)| {
                    let s = series(it["metric"].as_str()?, rs)?;
                    Some(json!({
                        "refId": char::from(b'A' + (i % 26) as u8).to_string(),
                        "expr": promql(&s, None, "increase", "$__range")?,
                        "legendFormat": it["name"].as_str().unwrap_or(""),
                        "instant": true,
                    }))
                })
                .collect();
            json!({
                "type": "piechart", "title": title, "datasource": ds, "links": links,
                "targets": targets,
                "options": {"reduceOptions": {"calcs": ["lastNotNull"], "values": false}},
            })
        }
        "severity" | "rules" => json!({
            "type": "bargauge", "title": title, "datasource": ds, "links": links,
            "targets": [{"refId": "A", "expr": "sort_desc(increase(secmon_rule_alerts_fired_total[$__range]) > 0)", "legendFormat": "{{rule}}", "instant": true}],
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "values": false}, "orientation": "horizontal"},
        }),
        "heatmap" | "top" => {
            text("the archived events (counted per value, which Prometheus series do not carry)")
        }
        "logs" => text("the event archive"),
        "decisions" => text("the decisions in force"),
        "sessions" => text("its own dashboard sessions"),
        _ => text("its response store"),
    }
}

// -------------------------------------------------------- prometheus rules

/// A metric expression in PromQL; `Err` with the reason when one of its
/// comparisons has no equivalent.
fn expr_promql(e: &MetricExpr, rs: &Ruleset) -> Result<String, String> {
    match e {
        MetricExpr::Cmp(c) => cmp_promql(c, rs),
        MetricExpr::Or(xs) => Ok(xs
            .iter()
            .map(|x| expr_promql(x, rs).map(|s| format!("({s})")))
            .collect::<Result<Vec<_>, _>>()?
            .join(" or ")),
        // Operands are single series with different names: match on no labels.
        MetricExpr::And(xs) => Ok(xs
            .iter()
            .map(|x| expr_promql(x, rs).map(|s| format!("({s})")))
            .collect::<Result<Vec<_>, _>>()?
            .join(" and on() ")),
    }
}

fn cmp_promql(c: &Comparison, rs: &Ruleset) -> Result<String, String> {
    let s =
        series(c.metric.as_str(), rs).ok_or_else(|| format!("unknown metric `{}`", c.metric))?;
    let w = prom_dur(c.window.as_millis());
    let sel = &s.name;
    // Thresholds in the metric's unit scale with it; counts and rates do not.
    let (lhs, scale) = match (c.func, s.kind) {
        (Func::Current, _) => (sel.clone(), s.scale),
        (Func::Rate, MetricKind::Counter) => (format!("rate({sel}[{w}])"), 1.0),
        (Func::Increase | Func::Sum, MetricKind::Counter) => (format!("increase({sel}[{w}])"), 1.0),
        (Func::Increase, MetricKind::UpDown) => (format!("delta({sel}[{w}])"), 1.0),
        (Func::Avg, MetricKind::Gauge) => (format!("avg_over_time({sel}[{w}])"), s.scale),
        (Func::Min, MetricKind::Gauge) => (format!("min_over_time({sel}[{w}])"), s.scale),
        (Func::Max, MetricKind::Gauge) => (format!("max_over_time({sel}[{w}])"), s.scale),
        (Func::Count, MetricKind::Histogram) => (format!("increase({sel}_count[{w}])"), 1.0),
        // The summary's quantiles cover a minute each; the worst minute of
        // the window is the conservative reading of "the window's q".
        (Func::Quantile(q), MetricKind::Histogram) if [0.5, 0.95, 0.99].contains(&q) => (
            format!("max_over_time({sel}{{quantile=\"{q}\"}}[{w}])"),
            s.scale,
        ),
        (f, k) => {
            return Err(format!(
                "{f:?} of a {} has no PromQL equivalent on secmon's /metrics",
                k.as_str()
            ));
        }
    };
    let op = match c.op {
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
    };
    Ok(format!("{lhs} {op} {}", num(c.threshold * scale)))
}

/// The `metric` rules as one Prometheus rule group (YAML, strings quoted as
/// JSON, which YAML reads the same), and the rules left out with why.
pub fn prometheus_rules(rs: &Ruleset) -> (String, Vec<(String, String)>) {
    let mut y = String::from(
        "# secmon's metric rules as Prometheus alerting rules (secmon export prometheus-rules).\n\
         # Metric names as on secmon's /metrics; check with: promtool check rules FILE\n\
         groups:\n  - name: secmon\n    rules:\n",
    );
    let mut skipped = Vec::new();
    let mut n = 0;
    for r in rs.rules() {
        let Detector::Metric { expr, hold } = r.detector() else {
            continue;
        };
        let e = match expr_promql(expr, rs) {
            Ok(e) => e,
            Err(why) => {
                y.push_str(&format!("      # {}: left out: {why}\n", r.id()));
                skipped.push((r.id().to_string(), why));
                continue;
            }
        };
        n += 1;
        let mut labels = BTreeMap::new();
        labels.insert("severity".to_string(), r.severity().as_str().to_string());
        if let Some(p) = r.priority() {
            labels.insert("priority".into(), p.as_str().to_string());
        }
        labels.insert("secmon_rule".into(), r.id().to_string());
        for (k, v) in r.labels() {
            let ok = k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit());
            if ok && !labels.contains_key(k) {
                labels.insert(k.clone(), v.clone());
            }
        }
        y.push_str(&format!(
            "      - alert: {}\n        expr: {}\n",
            quote(&alert_name(r.id())),
            quote(&e)
        ));
        if hold.as_millis() > 0 {
            y.push_str(&format!("        for: {}\n", prom_dur(hold.as_millis())));
        }
        y.push_str("        labels:\n");
        for (k, v) in &labels {
            y.push_str(&format!("          {k}: {}\n", quote(v)));
        }
        y.push_str("        annotations:\n");
        y.push_str(&format!("          summary: {}\n", quote(r.name())));
        if let Some(d) = r.description() {
            y.push_str(&format!("          description: {}\n", quote(d)));
        }
    }
    if n == 0 {
        y.push_str("      []\n");
    }
    (y, skipped)
}

/// `redis-scan-slow` → `RedisScanSlow` (Prometheus alert names are CamelCase by convention).
fn alert_name(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> std::sync::Arc<Ruleset> {
        let loaded = crate::config::load(None).unwrap_or_else(|d| panic!("{d}"));
        crate::config::build(&loaded)
            .unwrap_or_else(|d| panic!("{d}"))
            .ruleset
    }

    #[test]
    fn seed_metric_rules_translate_with_units_scaled() {
        let rs = seeds();
        let (y, skipped) = prometheus_rules(&rs);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(
            y.contains(
                r#"expr: "max_over_time(redis_scan_duration_seconds{quantile=\"0.95\"}[5m]) > 0.1""#
            ),
            "{y}"
        );
        assert!(
            y.contains(r#"expr: "rate(cache_value_rejection_count_total[5m]) > 2""#),
            "{y}"
        );
        assert!(
            y.contains(
                r#"expr: "(redis_memory_bytes > 104857600) or (redis_memory_percent > 80)""#
            ),
            "{y}"
        );
        assert!(y.contains("for: 15m"), "{y}");
        assert!(y.contains(r#"alert: "RedisScanSlow""#), "{y}");
    }

    #[test]
    fn every_panel_becomes_one_grafana_panel_in_order() {
        let rs = seeds();
        let text = crate::dashboard::dashboards_json().unwrap_or_default();
        let src: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
        let boards = grafana(&text, &rs, "http://secmon:9650").unwrap_or_default();
        assert_eq!(boards.len(), src.len());
        for (b, (key, d)) in boards.iter().zip(&src) {
            assert_eq!(b["uid"], format!("secmon-{key}"));
            let titles: Vec<&Value> = b["panels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["title"])
                .collect();
            let want: Vec<&Value> = d["panels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["title"])
                .collect();
            assert_eq!(titles, want, "{key}");
        }
        let auth = &boards
            .iter()
            .find(|b| b["uid"] == "secmon-auth")
            .unwrap_or(&Value::Null)["panels"];
        let by_title = |t: &str| {
            auth.as_array()
                .into_iter()
                .flatten()
                .find(|p| p["title"] == t)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            by_title("Active sessions")["targets"][0]["expr"],
            "auth_sessions_active"
        );
        assert_eq!(
            by_title("Failed logins heatmap (IP × time)")["type"],
            "text"
        );
        assert_eq!(
            by_title("Failed logins (range)")["targets"][0]["expr"],
            "increase(auth_login_failed_count_total[$__range])"
        );
        let overview = &boards
            .iter()
            .find(|b| b["uid"] == "secmon-overview")
            .unwrap_or(&Value::Null)["panels"];
        let scan = overview
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["title"] == "SCAN performance (P95)")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            scan["targets"][0]["expr"],
            "redis_scan_duration_seconds{quantile=\"0.95\"}"
        );
        assert_eq!(scan["fieldConfig"]["defaults"]["unit"], "s");
        assert_eq!(
            scan["fieldConfig"]["defaults"]["thresholds"]["steps"][2]["value"],
            0.1
        );
    }
}
