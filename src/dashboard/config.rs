//! The `dashboards:` configuration section: the dashboard pages and their
//! panels (query, chart type, thresholds), so a panel is added by
//! configuration, not code.
//!
//! The defaults are the seeds' dashboards, `web/dashboards.json`, read with
//! these same types (a test keeps them valid). A configured dashboard
//! replaces the default of the same key; a new key adds a page after the
//! defaults. The result is what the pages load (`/ui/dashboards.json`) and
//! what `secmon export grafana` translates, so the two never differ.
//!
//! Maps keep their document order (pages appear in the navigation in that
//! order), hence [`Dashboards`]' own deserializer rather than a `BTreeMap`.

use std::fmt;

use secmon_core::Dur;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Page keys the dashboard uses for its own pages.
const RESERVED: &[&str] = &[
    "alerts",
    "incidents",
    "incident",
    "decisions",
    "health",
    "logs",
];

/// Dashboards by key, in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dashboards(pub Vec<(String, DashboardConfig)>);

impl<'de> Deserialize<'de> for Dashboards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dashboards;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of dashboard key to {title, panels}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Dashboards, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, DashboardConfig>()? {
                    out.push((k, v));
                }
                Ok(Dashboards(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    pub title: String,
    /// Where the page comes from (shown beside the title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    pub panels: Vec<Panel>,
}

/// How a panel draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    /// One metric figure with a dial (`metric`, `func`, `thresholds`, `max`).
    Gauge,
    /// One metric figure (`spark: true` draws its line under it).
    Stat,
    /// Time series (`series`).
    Line,
    Area,
    /// Shares of `items` over the range.
    Pie,
    /// Archived events matching `where`, newest first.
    Logs,
    /// Archived events matching `where` counted by `by` × time.
    Heatmap,
    /// The same counts over the whole range, largest first.
    Top,
    /// Alerts (of `rule`, or all).
    Alerts,
    /// Decisions in force of one `scope`.
    Decisions,
    /// Alerts in range by severity.
    Severity,
    /// Rules by alerts fired since start.
    Rules,
    /// secmon's own dashboard sessions.
    Sessions,
}

/// One line of a line/area panel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
    /// `k=v,k2=v2`: one label set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One share of a pie panel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PieItem {
    pub name: String,
    pub metric: String,
}

/// A panel. Which fields apply depends on `type` (checked by [`validate`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub id: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: PanelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// last, avg, min, max, rate, increase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Gauges and stats: read over this window (e.g. 5m) rather than the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Lines: this range (e.g. 7d) whatever the picker says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Warning and critical levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Stats: the sum over the range rather than the last value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark: Option<bool>,
    /// Stats: show secmon's own dashboard session count as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_sessions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesQuery>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<PieItem>>,
    /// Archive panels: which events (the `secmon archive search` language).
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub where_: Option<String>,
    /// Heatmap and top: the field whose values make the rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Heatmap and top: mark values with a decision in force of this scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<String>,
    /// Decisions panels: the scope listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The events behind the panel, for its "events" link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// The rules behind the panel: its title links to their alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    /// Alerts panels: one rule's alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
}

/// The seeds' dashboards, as shipped in `web/dashboards.json`.
pub fn defaults() -> Result<Dashboards, String> {
    let text = super::dashboards_json().ok_or("the embedded dashboards.json is missing")?;
    serde_json::from_str(&text).map_err(|e| format!("embedded dashboards.json: {e}"))
}

/// The defaults with the configured dashboards laid over them: same key
/// replaces, a new key is a new page after the defaults.
pub fn merge(defaults: Dashboards, configured: &Dashboards) -> Dashboards {
    let mut out = defaults.0;
    for (k, d) in &configured.0 {
        match out.iter_mut().find(|(o, _)| o == k) {
            Some(slot) => slot.1 = d.clone(),
            None => out.push((k.clone(), d.clone())),
        }
    }
    Dashboards(out)
}

impl Dashboards {
    /// JSON for the pages, keys in order (an object: the pages read it so).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, d)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&serde_json::to_string(k).unwrap_or_default());
            s.push(':');
            s.push_str(&serde_json::to_string(d).unwrap_or_default());
        }
        s.push('}');
        s
    }
}

const FUNCS: &[&str] = &["last", "avg", "min", "max", "rate", "increase"];

/// Every problem as (field path under `dashboards.`, message). `rule_ids`
/// are the configured rules, so a panel cannot link to a rule that is not
/// there.
pub fn validate(ds: &Dashboards, rule_ids: &[&str]) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    for (i, (key, d)) in ds.0.iter().enumerate() {
        let at = |f: &str| format!("{key}.{f}");
        let valid_key = !key.is_empty()
            && key
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
        if !valid_key {
            errs.push((
                key.clone(),
                "a dashboard key is [a-z0-9_-]+ (it is the page's address)".into(),
            ));
        } else if RESERVED.contains(&key.as_str()) {
            errs.push((
                key.clone(),
                format!("`{key}` is one of the dashboard's own pages"),
            ));
        }
        if ds.0[..i].iter().any(|(o, _)| o == key) {
            errs.push((key.clone(), "declared twice".into()));
        }
        for (j, p) in d.panels.iter().enumerate() {
            let f = |name: &str| at(&format!("panels[{j}].{name}"));
            if d.panels[..j].iter().any(|o| o.id == p.id) {
                errs.push((f("id"), format!("duplicate panel id `{}`", p.id)));
            }
            let mut need = |ok: bool, field: &str, what: &str| {
                if !ok {
                    errs.push((
                        f(field),
                        format!("a {:?} panel needs {what}", p.kind).to_lowercase(),
                    ));
                }
            };
            match p.kind {
                PanelKind::Gauge | PanelKind::Stat => {
                    need(p.metric.is_some(), "metric", "`metric`")
                }
                PanelKind::Line | PanelKind::Area => need(
                    p.series.as_ref().is_some_and(|s| !s.is_empty()),
                    "series",
                    "`series`: [{metric, func}]",
                ),
                PanelKind::Pie => need(
                    p.items.as_ref().is_some_and(|s| !s.is_empty()),
                    "items",
                    "`items`: [{name, metric}]",
                ),
                PanelKind::Logs => need(p.where_.is_some(), "where", "`where`"),
                PanelKind::Heatmap | PanelKind::Top => {
                    need(p.where_.is_some(), "where", "`where`");
                    need(p.by.is_some(), "by", "`by` (e.g. fields.ip)");
                }
                PanelKind::Decisions => need(p.scope.is_some(), "scope", "`scope` (ip, user…)"),
                PanelKind::Alerts
                | PanelKind::Severity
                | PanelKind::Rules
                | PanelKind::Sessions => {}
            }
            let funcs =
                p.func.iter().map(|x| ("func".to_string(), x)).chain(
                    p.series.iter().flatten().enumerate().filter_map(|(k, s)| {
                        s.func.as_ref().map(|x| (format!("series[{k}].func"), x))
                    }),
                );
            for (field, func) in funcs {
                if !FUNCS.contains(&func.as_str()) {
                    errs.push((f(&field), format!("`{func}`: one of {}", FUNCS.join(", "))));
                }
            }
            for (field, v) in [("window", &p.window), ("range", &p.range)] {
                if let Some(v) = v
                    && Dur::parse(v).map_or(true, |d| d <= Dur::ZERO)
                {
                    errs.push((
                        f(field),
                        format!("{v:?} is not a duration such as 5m or 7d"),
                    ));
                }
            }
            for (field, e) in [("where", &p.where_), ("events", &p.events)] {
                if let Some(e) = e
                    && let Err(x) = secmon_engine::parse_expr(e)
                {
                    errs.push((f(field), x.to_string()));
                }
            }
            for r in p.rules.iter().flatten().chain(p.rule.iter()) {
                if !rule_ids.contains(&r.as_str()) {
                    errs.push((f("rules"), format!("unknown rule `{r}`")));
                }
            }
            if let Some([a, b]) = p.thresholds
                && !matches!(
                    a.partial_cmp(&b),
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                )
            {
                errs.push((
                    f("thresholds"),
                    "[warning, critical] with warning ≤ critical".into(),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_dashboards_are_valid_and_keep_their_order() {
        let d = defaults().unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&str> = d.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "overview",
                "redis",
                "auth",
                "ratelimit",
                "containers",
                "events"
            ]
        );
        let loaded = crate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = loaded.rules.iter().map(|r| r.value.id.as_str()).collect();
        assert_eq!(validate(&d, &ids), vec![]);
        // What the pages get is the shipped file, key order included.
        let back: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap_or_default();
        let orig: serde_json::Value =
            serde_json::from_str(&super::super::dashboards_json().unwrap_or_default())
                .unwrap_or_default();
        // Numbers may come back as 10.0 for 10: the same to the pages.
        fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
            use serde_json::Value as V;
            match (a, b) {
                (V::Number(x), V::Number(y)) => x.as_f64() == y.as_f64(),
                (V::Array(x), V::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                }
                (V::Object(x), V::Object(y)) => {
                    x.len() == y.len()
                        && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
                }
                _ => a == b,
            }
        }
        assert!(same(&back, &orig), "{back}");
        assert!(d.to_json().starts_with("{\"overview\":"));
    }

    #[test]
    fn configured_dashboards_replace_or_add_and_are_checked() {
        let yaml = r#"
auth:
  title: Auth, our way
  panels:
    - {id: s, title: Sessions, type: stat, metric: auth.sessions.active, rules: [failed-logins-per-ip]}
payments:
  title: Payments
  panels:
    - {id: h, title: Refused cards by country, type: heatmap, where: "event = payment.refused"}
    - {id: h, title: Lines, type: line, series: [{metric: x, func: median}], window: soon}
    - {id: l, title: Logs, type: logs, where: "event = (", rules: [nope], thresholds: [9, 1]}
alerts:
  title: Clash
  panels: []
"#;
        let conf: Dashboards = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let merged = merge(defaults().unwrap_or_default(), &conf);
        let keys: Vec<&str> = merged.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "overview",
                "redis",
                "auth",
                "ratelimit",
                "containers",
                "events",
                "payments",
                "alerts"
            ]
        );
        assert_eq!(merged.0[2].1.title, "Auth, our way");
        let errs = validate(&conf, &["failed-logins-per-ip"]);
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "payments.panels[0].by",
            "payments.panels[1].id",
            "payments.panels[1].series[0].func",
            "payments.panels[1].window",
            "payments.panels[2].where",
            "payments.panels[2].rules",
            "payments.panels[2].thresholds",
            "alerts",
        ] {
            assert!(fields.contains(&want), "missing {want} in {errs:#?}");
        }
        assert!(!fields.iter().any(|f| f.starts_with("auth.")), "{errs:#?}");
        // Unknown fields are refused at parse time.
        let bad = "x: {title: t, panels: [{id: a, title: b, type: stat, metrc: m}]}";
        assert!(serde_saphyr::from_str::<Dashboards>(bad).is_err());
    }
}
