//! The web dashboard, served by `secmon run` on the API's port: embedded
//! assets under `/ui/`, password login for local users, sessions.
//!
//! The pages are static files (`web/`, embedded with rust-embed; vendored
//! uPlot for charts, no CDN, no build step) that read the same `/v1/…` API
//! as every other client. A login gives a session cookie (HttpOnly,
//! SameSite=Strict, Secure under TLS) and a CSRF token; the API's `require`
//! middleware accepts the cookie in place of an API key, with the user's
//! role, and wants the token in `X-CSRF-Token` on every state-changing
//! request ([`cookie_caller`]).
//!
//! Login answers identically — same status, body, headers and work — for an
//! unknown user, a wrong password, a locked user and a blocked address: an
//! unknown user's password is checked against a dummy Argon2id hash made at
//! start with the same parameters. Every attempt becomes an
//! `auth.login_succeeded` / `auth.login_failed` event (seed 003 fields) sent
//! through secmon's own pipeline, so the shipped rules lock the user (5 in
//! 15 min) or block the address (10 in 5 min), and the decisions they make
//! are honoured here.
//!
//! Which pages and panels exist is configuration ([`config`]: the shipped
//! `web/dashboards.json` overlaid by `dashboards:`), served as
//! `/ui/dashboards.json`.
//!
//! It holds no detection or response state and draws nothing itself: the
//! pages do that in the browser.

pub mod config;
pub mod session;
pub mod users;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secmon_core::Timestamp;
use secmon_respond::Scope;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Caller;
use crate::api::{ApiError, AppState};
use session::Sessions;
use users::{UserHash, Users};

/// Requests without activity for this long end the session.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, active or not.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// How long the in-memory copy of the users table is trusted: `secmon users
/// passwd|remove` takes effect on a running secmon within this time.
const USERS_REFRESH: Duration = Duration::from_secs(2);
/// Argon2id verifications running at once (19 MiB each): more logins wait.
const LOGIN_CONCURRENCY: usize = 2;
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Assets;

/// The dashboards the pages draw (`web/dashboards.json`), for `secmon
/// export grafana`, which must translate exactly these.
pub fn dashboards_json() -> Option<String> {
    Assets::get("dashboards.json").map(|f| String::from_utf8_lossy(&f.data).into_owned())
}

/// Users by name, as last loaded from the store.
type UserMap = Arc<HashMap<String, UserHash>>;

/// The dashboard's state inside [`AppState`].
pub struct Dashboard {
    pub sessions: Sessions,
    users: RwLock<(Option<Instant>, UserMap)>,
    /// Verified against for unknown users, so they cost what a known one does.
    dummy_hash: String,
    /// Served over TLS: cookies get `Secure` and the `__Host-` prefix.
    secure: bool,
    login_gate: tokio::sync::Semaphore,
    /// `/ui/dashboards.json`: the configured pages (`None`: the embedded
    /// defaults as shipped).
    pages: Option<Arc<str>>,
}

impl Dashboard {
    /// Serves these dashboards (JSON from `config::build`) to the pages.
    pub fn with_pages(mut self, pages: Option<Arc<str>>) -> Self {
        self.pages = pages;
        self
    }

    pub fn new(secure: bool) -> Self {
        Self::with_timeouts(secure, IDLE_TIMEOUT, MAX_AGE)
    }

    pub fn with_timeouts(secure: bool, idle: Duration, max_age: Duration) -> Self {
        // A hash of a random password nobody knows, with the same parameters
        // as real ones (hash_password cannot fail for a 64-byte password).
        let dummy_hash = users::hash_password(&session::random_token()).unwrap_or_default();
        Dashboard {
            sessions: Sessions::new(idle, max_age),
            users: RwLock::new((None, Arc::new(HashMap::new()))),
            dummy_hash,
            secure,
            login_gate: tokio::sync::Semaphore::new(LOGIN_CONCURRENCY),
            pages: None,
        }
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-secmon_session"
        } else {
            "secmon_session"
        }
    }

    fn cookie(&self, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name()
        );
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static(""))
    }

    /// The session token in the request's cookies, if any.
    fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
    }

    /// The users table as of at most [`USERS_REFRESH`] ago; sessions of
    /// removed users, or of users whose password or role changed, end.
    async fn users(&self, app: &AppState) -> UserMap {
        {
            let g = match self.users.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if g.0.is_some_and(|t| t.elapsed() < USERS_REFRESH) {
                return g.1.clone();
            }
        }
        let loaded = app
            .read(|store| {
                Users::open(store)
                    .and_then(|u| u.all_hashes())
                    .map_err(|e| ApiError::Internal(e.to_string()))
            })
            .await;
        let map: UserMap = match loaded {
            Ok(list) => Arc::new(list.into_iter().map(|u| (u.name.clone(), u)).collect()),
            Err(e) => {
                tracing::error!(error = ?e, "loading dashboard users failed");
                let g = match self.users.read() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                return g.1.clone();
            }
        };
        self.sessions
            .retain_users(|u| map.get(u).map(|h| h.updated));
        let mut g = match self.users.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = (Some(Instant::now()), map.clone());
        map
    }
}

/// How a request stands with respect to the session cookie.
pub enum CookieAuth {
    /// No session cookie: authenticate some other way.
    Absent,
    Ok(Caller),
    /// A cookie that names no live session (expired, logged out, forged).
    Expired,
    /// A live session, but a state-changing request without its CSRF token.
    BadCsrf,
}

/// For `api::auth::require`: the caller a session cookie stands for.
/// Requests that carry an API key are not looked at (the key decides).
pub async fn cookie_caller(app: &AppState, method: &Method, headers: &HeaderMap) -> CookieAuth {
    if headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key") {
        return CookieAuth::Absent;
    }
    let d = &app.dashboard;
    let Some(token) = d.token(headers) else {
        return CookieAuth::Absent;
    };
    let token = token.to_string();
    // Refreshes the users copy, which ends sessions of changed users.
    d.users(app).await;
    let Some(s) = d.sessions.touch(&token, Instant::now()) else {
        return CookieAuth::Expired;
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::csrf_matches(presented, &s.csrf) {
            return CookieAuth::BadCsrf;
        }
    }
    CookieAuth::Ok(caller(&s.user, s.role))
}

fn caller(user: &str, role: crate::api::keys::Role) -> Caller {
    Caller {
        key_id: -1,
        prefix: "dashboard".into(),
        role,
        name: user.to_string(),
    }
}

/// The dashboard's routes, merged into the API's router by `api::app`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { redirect("/ui/") }))
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/api/login", post(login))
        .route("/ui/api/logout", post(logout))
        .route("/ui/api/session", get(session_info))
        .route("/ui/dashboards.json", get(pages))
        .route("/ui/{*path}", get(asset))
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Headers every dashboard response carries: no framing, no sniffing, no
/// referrer, scripts and styles only from here.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `/ui/dashboards.json`: the configured dashboards (public like every
/// asset: panel definitions, no data).
async fn pages(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match &app.dashboard.pages {
        None => serve("dashboards.json", &headers),
        Some(json) => {
            let mut r = (
                [(header::CONTENT_TYPE, "application/json")],
                json.to_string(),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            hardened(r)
        }
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound("no such page".into()).into_response();
    };
    let etag = {
        let h = file.metadata.sha256_hash();
        let mut s = String::with_capacity(20);
        s.push('"');
        for b in &h[..8] {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('"');
        s
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hardened(r)
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

/// Why a login failed: in the event and secmon's log, never in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    UnknownUser,
    InvalidPassword,
    AccountLocked,
    IpBlocked,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown_user",
            Failure::InvalidPassword => "invalid_password",
            Failure::AccountLocked => "account_locked",
            Failure::IpBlocked => "ip_blocked",
        }
    }
}

/// Whether a login succeeds: a known user, the right password, and neither
/// the account locked nor the address blocked by a decision in force.
pub fn outcome(known: bool, verified: bool, locked: bool, ip_blocked: bool) -> Option<Failure> {
    if !known {
        Some(Failure::UnknownUser)
    } else if !verified {
        Some(Failure::InvalidPassword)
    } else if locked {
        Some(Failure::AccountLocked)
    } else if ip_blocked {
        Some(Failure::IpBlocked)
    } else {
        None
    }
}

fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The one answer to every failed login.
fn login_failed() -> Response {
    let body = json!({"error": "login_failed", "message": "wrong user name or password"});
    hardened((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
}

/// `POST /ui/api/login` with `{"user", "password"}` (JSON only: a cross-site
/// form cannot send it, which rules out login CSRF).
async fn login(State(app): State<AppState>, req: Request) -> Response {
    let ip = peer(&req);
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return ApiError::BadRequest("login wants a JSON body {\"user\", \"password\"}".into())
            .into_response();
    }
    let bytes: Bytes = match axum::body::to_bytes(req.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge(16 * 1024).into_response(),
    };
    let Ok(body) = serde_json::from_slice::<LoginBody>(&bytes) else {
        return ApiError::BadRequest("login wants a JSON body {\"user\", \"password\"}".into())
            .into_response();
    };
    let d = &app.dashboard;
    let Ok(_permit) = d.login_gate.acquire().await else {
        return ApiError::Unavailable("shutting down".into()).into_response();
    };
    let users = d.users(&app).await;
    let name = users::normalize(&body.user).ok();
    let user = name.as_deref().and_then(|n| users.get(n)).cloned();
    // Exactly one Argon2id verification whatever the case.
    let hash = user
        .as_ref()
        .map(|u| u.hash.clone())
        .unwrap_or_else(|| d.dummy_hash.clone());
    let password = body.password;
    let verified = tokio::task::spawn_blocking(move || users::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let now = app.now();
    let ip_blocked = app
        .shared
        .decisions
        .lookup(&Scope::Ip, &ip.to_string(), now)
        .is_some();
    let locked = app
        .shared
        .decisions
        .lookup(&Scope::User, name.as_deref().unwrap_or(""), now)
        .is_some();
    let failure = outcome(user.is_some(), verified, locked, ip_blocked);
    // What the rules group by: the name as typed (normalized when valid).
    let shown = name.clone().unwrap_or_else(|| {
        body.user
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect()
    });
    login_event(&app, &shown, ip, failure, now);
    match (failure, user) {
        (None, Some(u)) => {
            let (token, csrf) = d
                .sessions
                .create(&u.name, u.role, u.updated, Instant::now());
            let body = json!({"user": u.name, "role": u.role, "csrf": csrf});
            let mut r = hardened(axum::Json(body).into_response());
            r.headers_mut()
                .insert(header::SET_COOKIE, d.cookie(&token, None));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        _ => login_failed(),
    }
}

/// Logs the attempt and sends it through the pipeline as a seed-003 event.
fn login_event(app: &AppState, user: &str, ip: IpAddr, failure: Option<Failure>, now: Timestamp) {
    let event = if failure.is_some() {
        "auth.login_failed"
    } else {
        "auth.login_succeeded"
    };
    match failure {
        Some(f) => {
            tracing::warn!(event, ip = %ip, user = %user, reason = f.as_str(), "dashboard login failed")
        }
        None => tracing::info!(event, ip = %ip, user = %user, "dashboard login"),
    }
    let mut fields = secmon_core::Fields::new();
    fields.insert("event", event.into());
    fields.insert(
        "level",
        if failure.is_some() { "WARN" } else { "INFO" }.into(),
    );
    fields.insert("service", "secmon".into());
    fields.insert("fields.email", user.into());
    fields.insert("fields.user", user.into());
    fields.insert("fields.ip", ip.to_string().as_str().into());
    fields.insert("fields.method", "password".into());
    if let Some(f) = failure {
        fields.insert("fields.reason", f.as_str().into());
    }
    let mut ev = secmon_core::Event::new(now, fields);
    ev.received = ev.time;
    // Best effort, as for API key failures: under a flood the channel may be
    // full; the log line above still records the attempt.
    let _ = app.tx.try_send(crate::daemon::Msg::Event(ev));
}

/// `POST /ui/api/logout`: needs the session and its CSRF token.
async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let d = &app.dashboard;
    match cookie_caller(&app, &Method::POST, &headers).await {
        CookieAuth::Ok(_) => {
            if let Some(t) = d.token(&headers) {
                d.sessions.remove(t);
            }
            let mut r = hardened(axum::Json(json!({"ok": true})).into_response());
            r.headers_mut()
                .insert(header::SET_COOKIE, d.cookie("", Some(0)));
            r
        }
        CookieAuth::BadCsrf => csrf_refused(),
        _ => session_expired(),
    }
}

/// `GET /ui/api/session`: who is logged in, the CSRF token for this
/// session, and the active session count; 401 when not logged in.
async fn session_info(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let d = &app.dashboard;
    let Some(token) = d.token(&headers) else {
        return session_expired();
    };
    let token = token.to_string();
    d.users(&app).await;
    let now = Instant::now();
    match d.sessions.touch(&token, now) {
        Some(s) => {
            let body = json!({
                "user": s.user,
                "role": s.role,
                "csrf": s.csrf,
                "idle_timeout_s": d.sessions.idle.as_secs(),
                "active_sessions": d.sessions.active(now),
            });
            let mut r = hardened(axum::Json(body).into_response());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => session_expired(),
    }
}

pub fn session_expired() -> Response {
    let body =
        json!({"error": "unauthorized", "message": "not logged in, or the session has expired"});
    hardened((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
}

pub fn csrf_refused() -> Response {
    let body =
        json!({"error": "forbidden", "message": "missing or wrong CSRF token (X-CSRF-Token)"});
    hardened((StatusCode::FORBIDDEN, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_in_force_refuse_the_right_password() {
        assert_eq!(outcome(true, true, false, false), None);
        assert_eq!(
            outcome(true, true, false, true),
            Some(Failure::IpBlocked),
            "a blocked address cannot log in"
        );
        assert_eq!(
            outcome(true, true, true, false),
            Some(Failure::AccountLocked)
        );
        assert_eq!(
            outcome(true, false, true, true),
            Some(Failure::InvalidPassword)
        );
        assert_eq!(
            outcome(false, false, false, false),
            Some(Failure::UnknownUser)
        );
        // A dummy hash never verifies, but an unknown user fails regardless.
        assert_eq!(
            outcome(false, true, false, false),
            Some(Failure::UnknownUser)
        );
    }

    #[test]
    fn session_cookie_attributes() {
        let plain = Dashboard::with_timeouts(false, IDLE_TIMEOUT, MAX_AGE);
        let c = plain.cookie("tok", None);
        assert_eq!(
            c.to_str().unwrap_or_default(),
            "secmon_session=tok; Path=/; HttpOnly; SameSite=Strict"
        );
        let tls = Dashboard::with_timeouts(true, IDLE_TIMEOUT, MAX_AGE);
        let c = tls.cookie("tok", Some(0));
        assert_eq!(
            c.to_str().unwrap_or_default(),
            "__Host-secmon_session=tok; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; __Host-secmon_session=xyz; c=d"),
        );
        assert_eq!(tls.token(&h), Some("xyz"));
        assert_eq!(plain.token(&h), None, "the TLS cookie name only under TLS");
    }
}
