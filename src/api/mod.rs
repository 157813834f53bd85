//! The HTTP API of `secmon run`: applications push events, enforcing code
//! asks for decisions, responders ack and silence, Prometheus scrapes.
//!
//! `app(state) -> Router` is a pure function of [`AppState`], so routes are
//! tested with `oneshot` and the real socket only appears in `server`. Every
//! route is declared once in [`routes`], with the access it needs and its
//! documentation: the router and `/openapi.json` are both generated from that
//! table, which is what keeps them in sync.
//!
//! The API holds no detection or response state. Reads come from the
//! engine's published [`Shared`] copy or a read-only store connection;
//! changes are sent to the engine thread, the single writer, and answered
//! when it has made them.

mod archive;
pub mod auth;
pub mod config;
mod events;
pub mod keys;
mod openapi;
pub mod prometheus;
mod respond;
pub use respond::outbox_json;
mod rules;
mod series;
pub mod server;
mod status;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use secmon_core::Timestamp;
use secmon_parse::LineParser;
use secmon_respond::{RespondError, Store};

pub use config::ApiConfig;
use keys::Access;

use crate::daemon::shared::ApiCounters;
use crate::daemon::{Msg, Shared};

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub shared: Arc<Shared>,
    pub auth: auth::Auth,
    /// To the engine thread.
    pub tx: flume::Sender<Msg>,
    /// A read connection to the response store (the engine thread writes).
    pub db: Arc<Mutex<Store>>,
    /// JSON event parser (aliases, timestamp field) shared with file sources.
    pub parser: Arc<LineParser>,
    pub notify: secmon_notify::NotifyConfig,
    /// To the archive's writer thread (searches run there); `None` when disabled.
    pub archive: Option<flume::Sender<crate::archive::writer::ArchiveMsg>>,
    pub incidents_cfg: secmon_respond::IncidentConfig,
    pub engine_cfg: secmon_engine::EngineConfig,
    pub max_body: usize,
    /// Cleared on shutdown: ingest answers 503 from then on.
    pub accepting: std::sync::atomic::AtomicBool,
    /// Web dashboard sessions and users (`crate::dashboard`).
    pub dashboard: crate::dashboard::Dashboard,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    pub fn counters(&self) -> &ApiCounters {
        &self.shared.api
    }

    pub fn now(&self) -> Timestamp {
        crate::clock::now()
    }

    /// A failed authentication: counted, logged with the prefix only, and
    /// sent through the pipeline so rules can alert on it.
    pub fn auth_failed(&self, from: std::net::IpAddr, prefix: Option<&str>, path: &str) {
        ApiCounters::add(&self.shared.api.auth_failures, 1);
        tracing::warn!(
            event = "auth.api_key_hmac_failed",
            ip = %from,
            key_prefix = prefix.unwrap_or("-"),
            path = %secmon_core::time::truncate(path),
            "API key verification failed"
        );
        let mut fields = secmon_core::Fields::new();
        fields.insert("event", "auth.api_key_hmac_failed".into());
        fields.insert("level", "WARNING".into());
        fields.insert("service", "secmon".into());
        fields.insert("fields.ip", from.to_string().as_str().into());
        if let Some(p) = prefix {
            fields.insert("fields.key_prefix", p.into());
        }
        let mut ev = secmon_core::Event::new(self.now(), fields);
        ev.received = ev.time;
        let (reply, _) = tokio::sync::oneshot::channel();
        // Best effort: under a flood the channel may be full; the counter
        // and the log line above still record it.
        let _ = self.tx.try_send(Msg::Ingest {
            events: vec![ev],
            summary: crate::summary::Summary::new(0),
            reply,
        });
    }

    /// Runs `f` on the read connection off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let g = db
                .lock()
                .map_err(|_| ApiError::Internal("store lock".into()))?;
            f(&g)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// Asks the engine thread to make an operator's change.
    pub async fn manual(
        &self,
        op: crate::respond::ManualOp,
        caller: &auth::Caller,
    ) -> Result<serde_json::Value, ApiError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send_async(Msg::Manual {
                op,
                author: caller.author(),
                reply,
            })
            .await
            .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
        rx.await
            .map_err(|_| ApiError::Unavailable("shutting down".into()))?
            .map_err(ApiError::from)
    }
}

/// A `since`/`until` query parameter: RFC 3339, epoch ms or a duration ago.
pub fn parse_time(s: &str, now: Timestamp, what: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_when(s, now).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{what}: {s:?} is neither an RFC 3339 time, epoch milliseconds nor a duration ago like 24h"
        ))
    })
}

/// The one error type of the API. Internal details are logged, never sent.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(usize),
    TooManyRequests,
    Unavailable(String),
    Internal(String),
}

impl From<RespondError> for ApiError {
    fn from(e: RespondError) -> Self {
        match e {
            RespondError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            RespondError::Conflict(m) => ApiError::Conflict(m),
            RespondError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid API key".to_string(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::PayloadTooLarge(n) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body larger than {n} bytes"),
            ),
            ApiError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed authentications from this address; try later".to_string(),
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "API internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (see secmon's log)".to_string(),
                )
            }
        };
        let body = serde_json::json!({ "error": code, "message": message });
        (status, axum::Json(body)).into_response()
    }
}

/// A documented query or path parameter.
pub struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub description: &'static str,
}

/// A query parameter (a macro, so parameter lists are promoted to `'static`).
macro_rules! q {
    ($name:literal, $description:literal) => {
        Param {
            name: $name,
            location: "query",
            description: $description,
        }
    };
}

macro_rules! p {
    ($name:literal, $description:literal) => {
        Param {
            name: $name,
            location: "path",
            description: $description,
        }
    };
}

/// One route: method, path, who may call it, documentation, handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// `None`: public (health, the OpenAPI document).
    pub access: Option<Access>,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// Description of the request body, if any.
    pub body: Option<&'static str>,
    pub handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Option<Access>,
    summary: &'static str,
    params: &'static [Param],
    body: Option<&'static str>,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
        params,
        body,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use axum::routing::{delete, get, post};
    use keys::Access::*;
    let id: &'static [Param] = &[p!("id", "numeric id")];
    vec![
        route(
            Method::GET,
            "/health",
            None,
            "Health of secmon and each of its components (seed 003 shape).",
            &[],
            None,
            get(status::health),
        ),
        route(
            Method::GET,
            "/openapi.json",
            None,
            "This document.",
            &[],
            None,
            get(openapi::document),
        ),
        route(
            Method::GET,
            "/metrics",
            Some(Read),
            "Prometheus text exposition: derived metrics, per-rule alert counts, secmon's own health.",
            &[],
            None,
            get(prometheus::scrape),
        ),
        route(
            Method::POST,
            "/v1/events",
            Some(Ingest),
            "Ingest events: NDJSON (one event per line) or a JSON array. Answers with the count accepted and per-line errors.",
            &[],
            Some("NDJSON or JSON array of seed-format events"),
            post(events::ingest),
        ),
        route(
            Method::GET,
            "/v1/decisions",
            Some(Decisions),
            "Decisions in force, all or for one target (CrowdSec LAPI shape).",
            &[
                q!("ip", "an IP address"),
                q!("user", "a user name"),
                q!("scope", "ip, user, vault, admin or custom (with value)"),
                q!("value", "the target, with scope"),
            ],
            None,
            get(respond::decisions_query),
        ),
        route(
            Method::GET,
            "/v1/decisions/stream",
            Some(Decisions),
            "Bouncer stream: with startup=true the full set, then only what changed since this key's last pull.",
            &[q!("startup", "true on the bouncer's first pull")],
            None,
            get(respond::decisions_stream),
        ),
        route(
            Method::POST,
            "/v1/decisions",
            Some(Respond),
            "Make a decision by hand (the allowlist still applies).",
            &[],
            Some("{scope, value, duration, reason}"),
            post(respond::decision_add),
        ),
        route(
            Method::DELETE,
            "/v1/decisions/{id}",
            Some(Respond),
            "Lift a decision.",
            id,
            None,
            delete(respond::decision_delete),
        ),
        route(
            Method::GET,
            "/v1/alerts",
            Some(Read),
            "Alerts, newest first.",
            &[
                q!("status", "firing or resolved"),
                q!("rule", "rule id"),
                q!("since", "RFC 3339 time or a duration ago (24h)"),
                q!("limit", "default 100"),
            ],
            None,
            get(respond::alerts_list),
        ),
        route(
            Method::GET,
            "/v1/alerts/{id}",
            Some(Read),
            "One alert.",
            id,
            None,
            get(respond::alert_get),
        ),
        route(
            Method::GET,
            "/v1/incidents",
            Some(Read),
            "Incidents, newest first.",
            &[
                q!("state", "triggered, acknowledged or resolved"),
                q!("priority", "P1..P4"),
                q!("limit", "default 100"),
            ],
            None,
            get(respond::incidents_list),
        ),
        route(
            Method::GET,
            "/v1/incidents/{id}",
            Some(Read),
            "An incident with its timeline, evidence and checklist.",
            id,
            None,
            get(respond::incident_get),
        ),
        route(
            Method::POST,
            "/v1/incidents/{id}/ack",
            Some(Respond),
            "Acknowledge an incident.",
            id,
            None,
            post(respond::incident_ack),
        ),
        route(
            Method::POST,
            "/v1/incidents/{id}/resolve",
            Some(Respond),
            "Resolve an incident.",
            id,
            None,
            post(respond::incident_resolve),
        ),
        route(
            Method::POST,
            "/v1/incidents/{id}/notes",
            Some(Respond),
            "Add a note to an incident's timeline.",
            id,
            Some("{text}"),
            post(respond::incident_note),
        ),
        route(
            Method::GET,
            "/v1/silences",
            Some(Read),
            "Silences active now (all with all=true).",
            &[q!("all", "include expired silences")],
            None,
            get(respond::silences_list),
        ),
        route(
            Method::POST,
            "/v1/silences",
            Some(Respond),
            "Create a silence.",
            &[],
            Some("{matchers: [{name, value, regex, negate}], duration, comment}"),
            post(respond::silence_create),
        ),
        route(
            Method::DELETE,
            "/v1/silences/{id}",
            Some(Respond),
            "Expire a silence now.",
            id,
            None,
            delete(respond::silence_expire),
        ),
        route(
            Method::GET,
            "/v1/rules",
            Some(Read),
            "Rules with their detector, severity and alert counts.",
            &[],
            None,
            get(rules::list),
        ),
        route(
            Method::POST,
            "/v1/rules/{id}/test",
            Some(Read),
            "Run posted events (NDJSON or JSON array) through one rule alone; nothing is stored.",
            &[p!("id", "rule id")],
            Some("NDJSON or JSON array of events"),
            post(rules::test),
        ),
        route(
            Method::GET,
            "/v1/series",
            Some(Read),
            "Metric history (10 s for 24 h, 5 min for 7 days) for charts.",
            &[
                q!("metric", "metric name, e.g. redis.memory.mb"),
                q!(
                    "since",
                    "RFC 3339, epoch ms or a duration ago (default 24h)"
                ),
                q!("until", "default now"),
                q!("step", "e.g. 10s, 5m (default: about 360 points)"),
                q!("func", "last, avg, min, max, rate or increase"),
                q!("labels", "k=v,k2=v2 for one label set"),
            ],
            None,
            get(series::query),
        ),
        route(
            Method::GET,
            "/v1/archive/search",
            Some(Read),
            "Search the log archive (recorded as an access-audit record).",
            &[
                q!(
                    "since",
                    "RFC 3339, epoch ms or a duration ago (default 24h)"
                ),
                q!("until", "default now"),
                q!(
                    "category",
                    "comma-separated categories (default all but audit)"
                ),
                q!(
                    "where",
                    "condition, e.g. event = auth.login_failed and fields.ip = 1.2.3.4"
                ),
                q!("limit", "default 200, at most 10000"),
            ],
            None,
            get(archive::search),
        ),
        route(
            Method::GET,
            "/v1/archive/counts",
            Some(Read),
            "Matching archived events counted by a field's value in time buckets, the largest values first (heatmaps, top-N tables; recorded as an access-audit record).",
            &[
                q!(
                    "since",
                    "RFC 3339, epoch ms or a duration ago (default 24h)"
                ),
                q!("until", "default now"),
                q!(
                    "category",
                    "comma-separated categories (default all but audit)"
                ),
                q!("where", "condition, e.g. event = auth.login_failed"),
                q!(
                    "by",
                    "the field whose values make the rows, e.g. fields.ip (default event)"
                ),
                q!(
                    "buckets",
                    "columns over the range, default 24, at most 240 (aligned to whole 10 s / minutes)"
                ),
                q!(
                    "top",
                    "rows, default 20, at most 100; the rest is summed in `other`"
                ),
            ],
            None,
            get(archive::counts),
        ),
        route(
            Method::GET,
            "/v1/series/list",
            Some(Read),
            "Every recorded series with its kind and labels.",
            &[],
            None,
            get(series::list),
        ),
        route(
            Method::GET,
            "/v1/notifications",
            Some(Read),
            "Notification outbox: pending (default) or dead letters.",
            &[q!("status", "pending or dead")],
            None,
            get(respond::notifications_list),
        ),
        route(
            Method::POST,
            "/v1/notifications/retry",
            Some(Respond),
            "Re-queue one dead letter, or all.",
            &[],
            Some("{id} or {} for all"),
            post(respond::notifications_retry),
        ),
    ]
}

/// The router: every route of [`routes`] behind the access check it declares.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        let handler = match r.access {
            Some(access) => r.handler.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), access),
                auth::require,
            )),
            None => r.handler,
        };
        router = router.route(r.path, handler);
    }
    router
        .merge(crate::dashboard::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body))
        .with_state(state)
}
