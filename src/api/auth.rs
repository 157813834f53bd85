//! Request authentication: API key → caller and role, throttling of
//! addresses that keep failing, and the middleware every protected route
//! goes through.
//!
//! Every failure looks the same from outside — one 401 body, and the same
//! work (one HMAC and one constant-time comparison, against a dummy hash when
//! the prefix is unknown) whether or not the key exists — so failures tell an
//! attacker nothing. Each one is counted, logged with the key prefix only,
//! and fed into the pipeline as an `auth.api_key_hmac_failed` event, so the
//! shipped rules alert on secmon's own API the way they do on the apps'.
//!
//! Keys are verified against an in-memory copy refreshed from the store
//! every [`REFRESH`]: the request path never touches the database, and a
//! revocation made with `secmon keys revoke` takes effect within that time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::keys::{Access, KeyHash, Role, ServerSecret, prefix_of};
use super::{ApiError, AppState};

/// How often the key copy is reloaded from the store.
pub const REFRESH: Duration = Duration::from_secs(2);
/// Addresses tracked by the failure throttle; past it the oldest windows go.
const MAX_TRACKED: usize = 100_000;

/// Who made a request; handlers record it as the author of changes.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: i64,
    pub prefix: String,
    pub role: Role,
    pub name: String,
}

impl Caller {
    /// The author recorded on incidents, decisions and silences.
    pub fn author(&self) -> String {
        if self.key_id == 0 {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.prefix)
        }
    }
}

pub struct Auth {
    secret: Option<ServerSecret>,
    /// Bound to a loopback address: only then may an empty key set mean
    /// "open" (a fresh install, nothing to protect yet from the network).
    loopback: bool,
    keys: RwLock<HashMap<String, KeyHash>>,
    throttle: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    limit: u32,
    window: Duration,
}

pub enum Verdict {
    Ok(Caller),
    Denied { prefix: Option<String> },
    Throttled,
}

impl Auth {
    pub fn new(
        secret: Option<ServerSecret>,
        loopback: bool,
        keys: Vec<KeyHash>,
        limit: u32,
        window: Duration,
    ) -> Self {
        let auth = Auth {
            secret,
            loopback,
            keys: RwLock::new(HashMap::new()),
            throttle: Mutex::new(HashMap::new()),
            limit,
            window,
        };
        auth.replace_keys(keys);
        auth
    }

    pub fn replace_keys(&self, keys: Vec<KeyHash>) {
        let map = keys.into_iter().map(|k| (k.prefix.clone(), k)).collect();
        match self.keys.write() {
            Ok(mut g) => *g = map,
            Err(p) => *p.into_inner() = map,
        }
    }

    fn key_count(&self) -> usize {
        self.keys.read().map(|g| g.len()).unwrap_or(1)
    }

    /// No key exists and the API is on loopback: requests need no key.
    pub fn is_open(&self) -> bool {
        self.loopback && self.key_count() == 0
    }

    pub fn check(&self, headers: &HeaderMap, from: IpAddr, now: Instant) -> Verdict {
        if self.is_open() {
            return Verdict::Ok(Caller {
                key_id: 0,
                prefix: String::new(),
                role: Role::Admin,
                name: "local".into(),
            });
        }
        if self.throttled(from, now) {
            return Verdict::Throttled;
        }
        let presented = presented_key(headers);
        let prefix = presented.and_then(prefix_of);
        if let (Some(key), Some(secret)) = (presented, &self.secret) {
            let mac = secret.hash(key.as_bytes());
            let keys = match self.keys.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let found = prefix.and_then(|p| keys.get(p));
            // The comparison runs whether or not the prefix is known.
            let expected = found.map(|k| k.hash).unwrap_or([0x5a; 32]);
            let equal: bool = mac.ct_eq(&expected).into();
            if equal && let Some(k) = found {
                return Verdict::Ok(Caller {
                    key_id: k.id,
                    prefix: k.prefix.clone(),
                    role: k.role,
                    name: k.name.clone(),
                });
            }
        }
        self.record_failure(from, now);
        Verdict::Denied {
            prefix: prefix.map(str::to_string),
        }
    }

    fn throttled(&self, from: IpAddr, now: Instant) -> bool {
        let Ok(g) = self.throttle.lock() else {
            return false;
        };
        g.get(&from)
            .is_some_and(|(n, start)| *n >= self.limit && now.duration_since(*start) < self.window)
    }

    fn record_failure(&self, from: IpAddr, now: Instant) {
        let Ok(mut g) = self.throttle.lock() else {
            return;
        };
        if g.len() >= MAX_TRACKED && !g.contains_key(&from) {
            let window = self.window;
            g.retain(|_, (_, start)| now.duration_since(*start) < window);
            if g.len() >= MAX_TRACKED {
                g.clear();
            }
        }
        let e = g.entry(from).or_insert((0, now));
        if now.duration_since(e.1) >= self.window {
            *e = (0, now);
        }
        e.0 += 1;
    }
}

/// A browser request sent by another site: `Sec-Fetch-Site: cross-site`, or
/// an `Origin` whose host is not the one addressed.
fn cross_site(h: &HeaderMap) -> bool {
    if h.get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let (Some(origin), Some(host)) = (
        h.get("origin").and_then(|v| v.to_str().ok()),
        h.get("host").and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !origin_host.eq_ignore_ascii_case(host)
}

/// `Authorization: Bearer KEY`, or `X-Api-Key: KEY` (what CrowdSec bouncers send).
fn presented_key(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let v = h.get("authorization")?.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The middleware: authenticates, checks the role against what the route
/// needs, and hands the caller to the handler as an extension.
pub async fn require(
    State((app, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    // A dashboard session cookie stands in for a key (role from the user;
    // CSRF token required on state-changing methods).
    let by_cookie = match crate::dashboard::cookie_caller(&app, req.method(), req.headers()).await {
        crate::dashboard::CookieAuth::Absent => None,
        crate::dashboard::CookieAuth::Ok(caller) => Some(Verdict::Ok(caller)),
        crate::dashboard::CookieAuth::Expired => return crate::dashboard::session_expired(),
        crate::dashboard::CookieAuth::BadCsrf => return crate::dashboard::csrf_refused(),
    };
    // Open mode (no key yet, loopback): any web page the operator visits
    // could otherwise drive the API from their browser. Browsers say where a
    // request comes from; refuse what another site sent.
    if by_cookie.is_none() && app.auth.is_open() && cross_site(req.headers()) {
        return ApiError::Forbidden(
            "cross-site request refused while the API runs without keys".into(),
        )
        .into_response();
    }
    let verdict = by_cookie.unwrap_or_else(|| app.auth.check(req.headers(), from, Instant::now()));
    match verdict {
        Verdict::Ok(caller) => {
            if !caller.role.allows(access) {
                return ApiError::Forbidden(format!(
                    "a {} key may not do this (needs {})",
                    caller.role,
                    access_name(access)
                ))
                .into_response();
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Verdict::Throttled => {
            app.counters()
                .auth_throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::TooManyRequests.into_response()
        }
        Verdict::Denied { prefix } => {
            app.auth_failed(from, prefix.as_deref(), req.uri().path());
            ApiError::Unauthorized.into_response()
        }
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Read => "viewer, responder or admin",
        Access::Respond => "responder or admin",
        Access::Ingest => "ingest or admin",
        Access::Decisions => "bouncer, viewer, responder or admin",
        Access::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn setup(limit: u32) -> (Auth, String) {
        let secret = ServerSecret::from_value("a-test-secret-of-some-length").unwrap();
        let key = "smk_ABCDEFGH_0123456789abcdefghijABCDEFGHIJKL".to_string();
        let kh = KeyHash {
            id: 1,
            prefix: "ABCDEFGH".into(),
            hash: secret.hash(key.as_bytes()),
            role: Role::Viewer,
            name: "v".into(),
        };
        (
            Auth::new(Some(secret), true, vec![kh], limit, Duration::from_secs(60)),
            key,
        )
    }

    fn headers(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {k}")).unwrap(),
        );
        h
    }

    #[test]
    fn right_key_wrong_key_no_key() {
        let (auth, key) = setup(100);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t = Instant::now();
        assert!(
            matches!(auth.check(&headers(&key), ip, t), Verdict::Ok(c) if c.role == Role::Viewer)
        );
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push('x');
        assert!(
            matches!(auth.check(&headers(&wrong), ip, t), Verdict::Denied { prefix: Some(p) } if p == "ABCDEFGH")
        );
        assert!(matches!(
            auth.check(&HeaderMap::new(), ip, t),
            Verdict::Denied { prefix: None }
        ));
        let mut x = HeaderMap::new();
        x.insert("x-api-key", HeaderValue::from_str(&key).unwrap());
        assert!(matches!(auth.check(&x, ip, t), Verdict::Ok(_)));
    }

    #[test]
    fn repeated_failures_are_throttled_per_address() {
        let (auth, key) = setup(3);
        let bad = IpAddr::from([10, 0, 0, 2]);
        let good = IpAddr::from([10, 0, 0, 3]);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                auth.check(&HeaderMap::new(), bad, t),
                Verdict::Denied { .. }
            ));
        }
        // Even the right key is refused from there until the window passes.
        assert!(matches!(
            auth.check(&headers(&key), bad, t),
            Verdict::Throttled
        ));
        assert!(matches!(
            auth.check(&headers(&key), good, t),
            Verdict::Ok(_)
        ));
        let later = t + Duration::from_secs(61);
        assert!(matches!(
            auth.check(&headers(&key), bad, later),
            Verdict::Ok(_)
        ));
    }

    #[test]
    fn cross_site_browser_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!cross_site(&h), "curl sends neither header");
        h.insert("host", HeaderValue::from_static("127.0.0.1:9650"));
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:9650"));
        assert!(!cross_site(&h));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }

    #[test]
    fn open_only_on_loopback_without_keys() {
        let a = Auth::new(None, true, vec![], 10, Duration::from_secs(60));
        assert!(a.is_open());
        let b = Auth::new(None, false, vec![], 10, Duration::from_secs(60));
        assert!(!b.is_open());
        assert!(matches!(
            b.check(
                &HeaderMap::new(),
                IpAddr::from([1, 1, 1, 1]),
                Instant::now()
            ),
            Verdict::Denied { .. }
        ));
    }
}
