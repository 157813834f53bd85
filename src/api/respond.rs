//! Routes over the response side: decisions (the fast lookup for enforcing
//! code, the bouncer stream, manual changes), alerts, incidents, silences and
//! the notification outbox.
//!
//! Reads use the API's read connection or the in-memory decision index;
//! every change goes to the engine thread as a [`ManualOp`] so the store
//! keeps one writer and the change reaches publishers and the index exactly
//! as automated ones do.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use secmon_core::{Dur, Priority};
use secmon_notify::{Outbox, OutboxStatus};
use secmon_respond::{
    AlertBook, AlertFilter, AlertStatus, IncidentFilter, IncidentState, Incidents, Matcher, Scope,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::daemon::decisions::BouncerDecision;
use crate::respond::ManualOp;

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json<T: serde::Serialize>(v: &T) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn parse_dur(field: &str, s: &str) -> Result<Dur, ApiError> {
    Dur::parse(s).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

// ---------------------------------------------------------------- decisions

#[derive(Deserialize)]
pub struct DecisionQuery {
    ip: Option<String>,
    user: Option<String>,
    scope: Option<String>,
    value: Option<String>,
}

/// Decisions for one target (`?ip=`, `?user=`, `?scope=&value=`), or all.
/// An array either way, empty when nothing is in force.
pub async fn decisions_query(
    State(app): State<AppState>,
    Query(q): Query<DecisionQuery>,
) -> ApiResult {
    let now = app.now();
    let target = match (&q.ip, &q.user, &q.scope, &q.value) {
        (Some(ip), None, None, None) => Some((Scope::Ip, ip.as_str())),
        (None, Some(u), None, None) => Some((Scope::User, u.as_str())),
        (None, None, Some(s), Some(v)) => {
            Some((Scope::parse(s).map_err(ApiError::BadRequest)?, v.as_str()))
        }
        (None, None, None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give one of ip=, user=, or scope= with value=".into(),
            ));
        }
    };
    let out: Vec<BouncerDecision> = match target {
        Some((scope, value)) => app
            .shared
            .decisions
            .lookup(&scope, value, now)
            .map(|d| vec![BouncerDecision::new(&d, now)])
            .unwrap_or_default(),
        None => app
            .shared
            .decisions
            .list(now)
            .iter()
            .map(|d| BouncerDecision::new(d, now))
            .collect(),
    };
    to_json(&out)
}

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    startup: bool,
}

pub async fn decisions_stream(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<StreamQuery>,
) -> ApiResult {
    to_json(
        &app.shared
            .decisions
            .stream(caller.key_id, q.startup, app.now()),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDecision {
    scope: String,
    value: String,
    #[serde(default = "one_hour")]
    duration: String,
    #[serde(default = "manual")]
    reason: String,
}

fn one_hour() -> String {
    "1h".into()
}
fn manual() -> String {
    "manual".into()
}

pub async fn decision_add(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(d): Json<NewDecision>,
) -> ApiResult {
    let op = ManualOp::AddDecision {
        scope: Scope::parse(&d.scope).map_err(ApiError::BadRequest)?,
        value: d.value,
        duration: parse_dur("duration", &d.duration)?,
        reason: d.reason,
    };
    app.manual(op, &caller).await.map(Json)
}

pub async fn decision_delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult {
    app.manual(ManualOp::DeleteDecision { id }, &caller)
        .await
        .map(Json)
}

// ---------------------------------------------------------------- alerts

#[derive(Deserialize)]
pub struct AlertQuery {
    status: Option<String>,
    rule: Option<String>,
    since: Option<String>,
    #[serde(default)]
    limit: usize,
}

pub async fn alerts_list(State(app): State<AppState>, Query(q): Query<AlertQuery>) -> ApiResult {
    let status = match q.status.as_deref() {
        None => None,
        Some("firing") => Some(AlertStatus::Firing),
        Some("resolved") => Some(AlertStatus::Resolved),
        Some(o) => {
            return Err(ApiError::BadRequest(format!(
                "status: {o:?} is not firing or resolved"
            )));
        }
    };
    let since = q
        .since
        .as_deref()
        .map(|s| super::parse_time(s, app.now(), "since"))
        .transpose()?;
    let filter = AlertFilter {
        status,
        rule: q.rule,
        since,
        limit: q.limit.min(10_000),
    };
    let list = app
        .read(move |s| AlertBook::new(s).list(&filter).map_err(ApiError::from))
        .await?;
    to_json(&list)
}

pub async fn alert_get(State(app): State<AppState>, Path(id): Path<i64>) -> ApiResult {
    match app
        .read(move |s| AlertBook::new(s).get(id).map_err(ApiError::from))
        .await?
    {
        Some(a) => to_json(&a),
        None => Err(ApiError::NotFound(format!("alert {id} not found"))),
    }
}

// ---------------------------------------------------------------- incidents

#[derive(Deserialize)]
pub struct IncidentQuery {
    state: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    limit: usize,
}

pub async fn incidents_list(
    State(app): State<AppState>,
    Query(q): Query<IncidentQuery>,
) -> ApiResult {
    let state = match q.state.as_deref() {
        None => None,
        Some("triggered") => Some(IncidentState::Triggered),
        Some("acknowledged") => Some(IncidentState::Acknowledged),
        Some("resolved") => Some(IncidentState::Resolved),
        Some(o) => {
            return Err(ApiError::BadRequest(format!(
                "state: {o:?} is not triggered, acknowledged or resolved"
            )));
        }
    };
    let priority = q
        .priority
        .as_deref()
        .map(|p| {
            p.parse::<Priority>()
                .map_err(|_| ApiError::BadRequest(format!("priority: {p:?} is not P1..P4")))
        })
        .transpose()?;
    let cfg = app.incidents_cfg.clone();
    let filter = IncidentFilter {
        state,
        priority,
        limit: q.limit.min(10_000),
    };
    let list = app
        .read(move |s| {
            Incidents::new(s, &cfg)
                .list(&filter)
                .map_err(ApiError::from)
        })
        .await?;
    to_json(&list)
}

pub async fn incident_get(State(app): State<AppState>, Path(id): Path<i64>) -> ApiResult {
    let cfg = app.incidents_cfg.clone();
    match app
        .read(move |s| Incidents::new(s, &cfg).get(id).map_err(ApiError::from))
        .await?
    {
        Some(d) => to_json(&d),
        None => Err(ApiError::NotFound(format!("incident {id} not found"))),
    }
}

pub async fn incident_ack(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult {
    app.manual(ManualOp::AckIncident { id }, &caller)
        .await
        .map(Json)
}

pub async fn incident_resolve(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult {
    app.manual(ManualOp::ResolveIncident { id }, &caller)
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    text: String,
}

pub async fn incident_note(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    Json(n): Json<Note>,
) -> ApiResult {
    app.manual(ManualOp::NoteIncident { id, text: n.text }, &caller)
        .await
        .map(Json)
}

// ---------------------------------------------------------------- silences

#[derive(Deserialize)]
pub struct SilenceQuery {
    #[serde(default)]
    all: bool,
}

pub async fn silences_list(
    State(app): State<AppState>,
    Query(q): Query<SilenceQuery>,
) -> ApiResult {
    let now = (!q.all).then(|| app.now());
    let list = app
        .read(move |s| AlertBook::new(s).list_silences(now).map_err(ApiError::from))
        .await?;
    to_json(&list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    matchers: Vec<Matcher>,
    #[serde(default = "one_hour")]
    duration: String,
    #[serde(default)]
    comment: String,
}

pub async fn silence_create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(s): Json<NewSilence>,
) -> ApiResult {
    if s.matchers.is_empty() {
        return Err(ApiError::BadRequest(
            "matchers: at least one is required (a silence of everything is refused)".into(),
        ));
    }
    let op = ManualOp::CreateSilence {
        matchers: s.matchers,
        duration: parse_dur("duration", &s.duration)?,
        comment: s.comment,
    };
    app.manual(op, &caller).await.map(Json)
}

pub async fn silence_expire(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult {
    app.manual(ManualOp::ExpireSilence { id }, &caller)
        .await
        .map(Json)
}

// ---------------------------------------------------------------- notifications

#[derive(Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
}

pub async fn notifications_list(
    State(app): State<AppState>,
    Query(q): Query<OutboxQuery>,
) -> ApiResult {
    let status = match q.status.as_deref() {
        None | Some("pending") => OutboxStatus::Pending,
        Some("dead") => OutboxStatus::Dead,
        Some(o) => {
            return Err(ApiError::BadRequest(format!(
                "status: {o:?} is not pending or dead"
            )));
        }
    };
    let lease = app.notify.outbox.lease;
    let items = app
        .read(move |s| {
            let outbox =
                Outbox::new(s.conn(), lease).map_err(|e| ApiError::Internal(e.to_string()))?;
            outbox
                .list(status)
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(Json(Value::Array(items.iter().map(outbox_json).collect())))
}

/// An outbox entry as the API and `secmon notifications list --json` show it.
pub fn outbox_json(i: &secmon_notify::OutboxItem) -> Value {
    json!({
        "id": i.id, "receiver": i.message.receiver, "status": i.status.as_str(),
        "attempts": i.attempts, "created_at": i.created_at, "next_attempt_at": i.next_attempt_at,
        "last_error": i.last_error, "dead_reason": i.dead_reason,
        "idempotency_key": i.message.idempotency_key,
        "alerts": i.message.alerts.iter().map(|a| a.rule.clone()).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    id: Option<i64>,
}

pub async fn notifications_retry(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Option<Json<Retry>>,
) -> ApiResult {
    let id = body.and_then(|Json(r)| r.id);
    app.manual(ManualOp::RetryNotifications { id }, &caller)
        .await
        .map(Json)
}
