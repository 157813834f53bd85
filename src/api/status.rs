//! `GET /health`: is secmon working, component by component, in the shape
//! of seed 003's health checks (`{"status":"ok", …}`), so a secmon can probe
//! another with the same assertions it uses for the apps.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// The engine publishes a snapshot every second; older than this means the
/// engine thread is stuck.
const STALE_MS: i64 = 10_000;

pub async fn health(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let snap = app.shared.snapshot();
    let now = app.now();
    let engine_ok = now.0.saturating_sub(snap.at.0) <= STALE_MS;
    let store_ok = snap.store_ok;
    let sources_ok = snap.sources_live == snap.sources_total;
    let ok = engine_ok && store_ok;
    let status = if !ok {
        "down"
    } else if sources_ok && snap.outbox_dead == 0 {
        "ok"
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "service": "secmon",
        "version": app.shared.version,
        "uptime_s": now.0.saturating_sub(app.shared.started.0) / 1000,
        "engine": {
            "healthy": engine_ok,
            "events_in": snap.events_in,
            "late_events": snap.late_events,
            "watermark": snap.watermark,
            "last_tick": snap.at,
        },
        "store": { "healthy": store_ok },
        "sources": { "healthy": sources_ok, "live": snap.sources_live, "total": snap.sources_total },
        "notifications": {
            "healthy": snap.outbox_dead == 0,
            "outbox_depth": snap.outbox_depth,
            "dead_letters": snap.outbox_dead,
        },
        "decisions": { "active": app.shared.decisions.len() },
        "api": { "healthy": true, "auth": if app.auth.is_open() { "open (loopback, no key configured)" } else { "api keys" } },
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
