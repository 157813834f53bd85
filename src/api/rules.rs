//! `GET /v1/rules` and `POST /v1/rules/{id}/test`: what is being detected,
//! and a way to try a rule on sample events without touching live state.
//!
//! A test runs the posted events through a fresh engine built from the
//! rules in force (so metrics the rule depends on work too), on event time
//! exactly as `secmon replay` would, and reports only that rule's verdicts.
//! Nothing is stored, notified or decided.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use secmon_engine::{Fire, Resolve, Rule};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::output::AlertLine;
use crate::pipeline::{Detector, Sink};

pub async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rs = app.shared.ruleset();
    let snap = app.shared.snapshot();
    let rules: Vec<Value> = rs
        .rules()
        .iter()
        .map(|r| {
            let fig = snap.rules.iter().find(|f| f.id == r.id());
            let window = r.detector().window();
            json!({
                "id": r.id(),
                "name": r.name(),
                "description": r.description(),
                "severity": r.severity(),
                "priority": r.priority(),
                "enabled": r.enabled(),
                "labels": r.labels(),
                "detector": r.detector_kind().as_str(),
                "window": (window.as_millis() > 0).then(|| window.to_string()),
                "group_by": r.group_by().iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "actions": r.actions(),
                "fired": fig.map_or(0, |f| f.fired),
                "resolved": fig.map_or(0, |f| f.resolved),
                "live_groups": fig.map_or(0, |f| f.live_groups),
            })
        })
        .collect();
    Ok(Json(Value::Array(rules)))
}

struct Collect<'a> {
    rule: &'a str,
    out: Vec<Value>,
}

impl Sink for Collect<'_> {
    fn fire(&mut self, rule: &Rule, fire: &Fire) {
        if rule.id() == self.rule {
            let line = AlertLine::new(rule, fire).to_json();
            let mut v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("verdict".into(), "fire".into());
            }
            self.out.push(v);
        }
    }
    fn resolve(&mut self, rule: &Rule, r: &Resolve) {
        if rule.id() == self.rule {
            let group: serde_json::Map<String, Value> = r
                .group
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_key().to_string())))
                .collect();
            self.out.push(
                json!({ "verdict": "resolve", "rule": rule.id(), "at": r.at, "group": group }),
            );
        }
    }
}

pub async fn test(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let rs = app.shared.ruleset();
    if rs.position(&id).is_none() {
        return Err(ApiError::NotFound(format!("no rule {id:?}")));
    }
    let parser = app.parser.clone();
    let engine_cfg = app.engine_cfg;
    let now = app.now();
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let (events, summary) = super::events::parse_body(&parser, &body, now)?;
        let n = events.len();
        let mut detector = Detector::new(rs, engine_cfg);
        let mut sink = Collect {
            rule: &id,
            out: Vec::new(),
        };
        for ev in events {
            detector.observe(ev, &mut sink);
        }
        detector.flush(&mut sink);
        let errors: Vec<Value> = summary
            .errors
            .iter()
            .flat_map(|(kind, t)| {
                t.samples
                    .iter()
                    .map(move |s| json!({ "line": s.line, "kind": kind, "error": s.message }))
            })
            .collect();
        Ok(json!({ "rule": id, "events": n, "errors": errors, "verdicts": sink.out }))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(result))
}
