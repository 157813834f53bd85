//! The web dashboard end to end, without a browser: users made with
//! `secmon users`, login and its cookie, CSRF on state-changing requests,
//! roles, logout, password changes ending sessions, login failures that look
//! the same for every reason and take the same time, and secmon's own login
//! events locking the user through the shipped rules. The browser tests
//! (`tests/browser/`) are run from here too.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use super::api::{Daemon, config, key};
use super::support::bin;

/// `secmon users add NAME --role ROLE` with the password on stdin.
pub fn add_user(data: &Path, name: &str, role: &str, password: &str) {
    users(data, &["add", name, "--role", role], Some(password));
}

fn users(data: &Path, args: &[&str], password: Option<&str>) -> String {
    let mut child = bin()
        .arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(p) = password {
            writeln!(stdin, "{p}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "secmon users {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn login(c: &Client, url: &str, user: &str, password: &str) -> Response {
    c.post(format!("{url}/ui/api/login"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .unwrap()
}

/// A logged-in session: the cookie header value and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn session(c: &Client, url: &str, user: &str, password: &str) -> Session {
    let r = login(c, url, user, password);
    assert_eq!(r.status(), 200, "login as {user}");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let body: Value = r.json().unwrap();
    Session {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_string(),
    }
}

fn send(
    c: &Client,
    method: &str,
    url: &str,
    s: &Session,
    csrf: bool,
    body: Option<Value>,
) -> Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = c.request(m, url).header("cookie", &s.cookie);
    if csrf {
        r = r.header("x-csrf-token", &s.csrf);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().unwrap()
}

/// Status, headers that are not a date, and body of a failed login.
fn failure_shape(r: Response) -> (u16, Vec<(String, String)>, String) {
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, r.text().unwrap())
}

#[test]
fn login_session_csrf_roles_logout() {
    let data = tempfile::tempdir().unwrap();
    let admin = key(data.path(), "admin");
    add_user(data.path(), "alice", "responder", "correct horse battery");
    add_user(data.path(), "vic", "viewer", "viewer password");
    let listed = users(data.path(), &["list", "--json"], None);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("argon2"), "no hash listed");
    let cfg = config(data.path(), 1000, "");
    let dir = data.path().to_path_buf();
    let d = Daemon::start(data, &cfg);
    let c = client();

    // The pages are served, embedded, with a strict CSP; / goes to them.
    let r = c.get(format!("{}/", d.url)).send().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/");
    let r = c.get(format!("{}/ui/", d.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(r.text().unwrap().contains("/ui/app.js"));
    for asset in [
        "app.js",
        "style.css",
        "dashboards.json",
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/LICENSE",
    ] {
        let r = c.get(format!("{}/ui/{asset}", d.url)).send().unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let dashboards: Value = c
        .get(format!("{}/ui/dashboards.json", d.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(dashboards["overview"]["panels"].as_array().unwrap().len() >= 10);

    // Unknown user, wrong password, malformed name: one answer.
    let a = failure_shape(login(&c, &d.url, "alice", "wrong password"));
    let b = failure_shape(login(&c, &d.url, "mallory", "wrong password"));
    let e = failure_shape(login(&c, &d.url, "not a valid name!", "x"));
    assert_eq!(a.0, 401);
    assert_eq!(a, b);
    assert_eq!(a, e);
    assert!(!a.1.iter().any(|(k, _)| k == "set-cookie"));

    // The cookie: HttpOnly, SameSite=Strict, not Secure without TLS.
    let r = login(&c, &d.url, "Alice", "correct horse battery");
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("secmon_session="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["role"], "responder");
    let alice = Session {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: body["csrf"].as_str().unwrap().to_string(),
    };

    // Reads with the cookie alone; changes need the CSRF token too.
    let r = send(
        &c,
        "GET",
        &format!("{}/v1/incidents", d.url),
        &alice,
        false,
        None,
    );
    assert_eq!(r.status(), 200);
    let me: Value = send(
        &c,
        "GET",
        &format!("{}/ui/api/session", d.url),
        &alice,
        false,
        None,
    )
    .json()
    .unwrap();
    assert_eq!(me["csrf"], alice.csrf.as_str());
    assert_eq!(me["active_sessions"], 1);
    let decision = json!({"scope": "ip", "value": "203.0.113.9", "duration": "1h"});
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/decisions", d.url),
        &alice,
        false,
        Some(decision.clone()),
    );
    assert_eq!(r.status(), 403, "no CSRF token");
    let wrong = Session {
        cookie: alice.cookie.clone(),
        csrf: "0".repeat(64),
    };
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/decisions", d.url),
        &wrong,
        true,
        Some(decision.clone()),
    );
    assert_eq!(r.status(), 403, "wrong CSRF token");
    assert!(
        d.get("/v1/decisions", &admin)
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/decisions", d.url),
        &alice,
        true,
        Some(decision),
    );
    assert_eq!(r.status(), 200);
    let made: Value = r.json().unwrap();
    assert_eq!(made["author"], "alice (dashboard)");
    let id = made["id"].as_i64().unwrap();
    let r = send(
        &c,
        "DELETE",
        &format!("{}/v1/decisions/{id}", d.url),
        &alice,
        false,
        None,
    );
    assert_eq!(r.status(), 403, "DELETE needs the token too");
    let r = send(
        &c,
        "DELETE",
        &format!("{}/v1/decisions/{id}", d.url),
        &alice,
        true,
        None,
    );
    assert_eq!(r.status(), 200);

    // A viewer reads but cannot change anything, token or not.
    let vic = session(&c, &d.url, "vic", "viewer password");
    let r = send(
        &c,
        "GET",
        &format!("{}/v1/alerts", d.url),
        &vic,
        false,
        None,
    );
    assert_eq!(r.status(), 200);
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/incidents/1/ack", d.url),
        &vic,
        true,
        None,
    );
    assert_eq!(r.status(), 403);
    // A forged cookie is not a session.
    let forged = Session {
        cookie: format!("secmon_session={}", "a".repeat(64)),
        csrf: String::new(),
    };
    let r = send(
        &c,
        "GET",
        &format!("{}/v1/alerts", d.url),
        &forged,
        false,
        None,
    );
    assert_eq!(r.status(), 401);

    // Logout needs the token, then the cookie is dead.
    let r = send(
        &c,
        "POST",
        &format!("{}/ui/api/logout", d.url),
        &vic,
        false,
        None,
    );
    assert_eq!(r.status(), 403);
    let r = send(
        &c,
        "POST",
        &format!("{}/ui/api/logout", d.url),
        &vic,
        true,
        None,
    );
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = send(
        &c,
        "GET",
        &format!("{}/v1/alerts", d.url),
        &vic,
        false,
        None,
    );
    assert_eq!(r.status(), 401);

    // A password change ends the user's sessions within the refresh time.
    users(&dir, &["passwd", "alice"], Some("a new long password"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = send(
            &c,
            "GET",
            &format!("{}/v1/alerts", d.url),
            &alice,
            false,
            None,
        );
        if r.status() == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session survived a password change"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        login(&c, &d.url, "alice", "correct horse battery").status(),
        401
    );
    assert_eq!(
        login(&c, &d.url, "alice", "a new long password").status(),
        200
    );
    d.stop();
}

#[test]
fn own_login_failures_lock_the_user_through_the_shipped_rules() {
    let data = tempfile::tempdir().unwrap();
    let admin = key(data.path(), "admin");
    add_user(data.path(), "bob", "responder", "bob's password");
    let cfg = config(data.path(), 1000, "");
    let d = Daemon::start(data, &cfg);
    let c = client();
    let ok = session(&c, &d.url, "bob", "bob's password");
    drop(ok);
    let ev = d.wait_log("auth.login_succeeded");
    assert_eq!(ev["fields"]["user"], "bob");
    assert_eq!(ev["fields"]["ip"], "127.0.0.1");
    let first = failure_shape(login(&c, &d.url, "bob", "guess 1"));
    let ev = d.wait_log("auth.login_failed");
    assert_eq!(ev["fields"]["reason"], "invalid_password");
    for i in 2..=5 {
        assert_eq!(
            failure_shape(login(&c, &d.url, "bob", &format!("guess {i}"))),
            first
        );
    }
    // failed-logins-per-user (5 in 15 min) fires on secmon's own events and
    // its lock_account action locks bob.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lock = loop {
        let list = d.get("/v1/decisions?user=bob", &admin);
        if let Some(l) = list.as_array().unwrap().first() {
            break l.clone();
        }
        assert!(Instant::now() < deadline, "bob was not locked");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(lock["scenario"], "failed-logins-per-user");
    assert_eq!(lock["type"], "lock_account");
    let alerts = d.get("/v1/alerts?rule=failed-logins-per-user", &admin);
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    // The right password is refused now, with the same answer as any failure.
    assert_eq!(
        failure_shape(login(&c, &d.url, "bob", "bob's password")),
        first
    );
    loop {
        let ev = d.wait_log("auth.login_failed");
        if ev["fields"]["reason"] == "account_locked" {
            break;
        }
    }
    // Lifting the lock lets bob in again.
    let id = lock["id"].as_i64().unwrap();
    let r = d
        .req("DELETE", &format!("/v1/decisions/{id}"), Some(&admin))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while login(&c, &d.url, "bob", "bob's password").status() != 200 {
        assert!(Instant::now() < deadline, "unlock did not take effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    d.stop();
}

/// The verdict of the login timing test: paired relative differences
/// `(known − unknown) / mean` of attempts made back to back, so load that
/// comes and goes on the machine hits both sides of a pair alike. It fails
/// only when the data show, with 99.9 % confidence, that the median
/// difference is larger than `margin` either way: noise widens the
/// interval and cannot fail it, a real difference (an unknown user skipping
/// the Argon2id work: pairs differ by ~200 %) cannot pass.
struct Timing {
    /// Median paired relative difference and its distribution-free 99.9 %
    /// confidence interval (order statistics of the sign test).
    median: f64,
    lo: f64,
    hi: f64,
}

impl Timing {
    fn of(known: &[f64], unknown: &[f64]) -> Timing {
        let mut r: Vec<f64> = known
            .iter()
            .zip(unknown)
            .map(|(k, u)| (k - u) / ((k + u) / 2.0).max(1e-9))
            .collect();
        r.sort_by(|a, b| a.total_cmp(b));
        let n = r.len();
        // The largest k with P(Binomial(n, 1/2) < k) ≤ 0.0005: the median
        // lies in [r(k), r(n+1−k)] (1-based) with probability ≥ 99.9 %.
        let mut k = 0usize;
        let mut cdf = 0.0f64;
        let mut pmf = 0.5f64.powi(n as i32);
        for i in 0..n {
            if cdf + pmf > 0.0005 {
                break;
            }
            cdf += pmf;
            k = i + 1;
            pmf *= (n - i) as f64 / (i + 1) as f64;
        }
        let k = k.max(1);
        Timing {
            median: if n % 2 == 1 {
                r[n / 2]
            } else {
                (r[n / 2 - 1] + r[n / 2]) / 2.0
            },
            lo: r[k - 1],
            hi: r[n - k],
        }
    }

    /// True when a difference larger than `margin` is shown.
    fn distinguishable(&self, margin: f64) -> bool {
        self.lo > margin || self.hi < -margin
    }
}

/// The statistic itself, on made-up data: it must pass identical
/// distributions under heavy, bursty noise and fail a real difference.
#[test]
fn login_timing_statistic_fails_real_differences_only() {
    // A deterministic generator: 40 ms ± heavy-tailed load bursts that hit
    // whole stretches of attempts.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 10_000.0
    };
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let load = if (i / 10) % 2 == 1 { 3.0 } else { 1.0 };
        let spike = |r: f64| if r > 0.9 { 80.0 * r } else { 0.0 };
        let (a, b) = (next(), next());
        k.push(40.0 * load + 8.0 * a + spike(a));
        u.push(40.0 * load + 8.0 * b + spike(b));
    }
    assert!(!Timing::of(&k, &u).distinguishable(0.10), "noise alone");
    // The enumeration bug: unknown users answered without the hash work.
    let fast: Vec<f64> = u.iter().map(|v| v / 100.0).collect();
    assert!(Timing::of(&k, &fast).distinguishable(0.10), "skipped work");
    // A smaller but systematic 30 % difference is caught too.
    let slow: Vec<f64> = k.iter().map(|v| v * 1.3 + 2.0).collect();
    assert!(
        Timing::of(&slow, &u).distinguishable(0.10),
        "30 % more work"
    );
}

/// Unknown user and wrong password, interleaved in pairs (ABBA order), many
/// times: the paired differences must not show a difference above 10 %
/// (see [`Timing`]). The figures go to target/dashboard-login-timing.txt.
#[test]
fn login_timing_does_not_reveal_users() {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "carol", "viewer", "carol's password");
    // Only the timing matters here: a lock or block does not change the work
    // done (the hash is verified first, decisions are looked at after).
    let cfg = config(data.path(), 1000, "");
    let d = Daemon::start(data, &cfg);
    let c = client();
    let n = 60;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Warm-up: connections, page cache, allocator.
    for _ in 0..4 {
        login(&c, &d.url, "carol", "warm up");
        login(&c, &d.url, "nobody-here", "warm up");
    }
    let time = |user: &str| {
        let t = Instant::now();
        let r = login(&c, &d.url, user, "definitely wrong");
        assert_eq!(r.status(), 401);
        let _ = r.text();
        t.elapsed().as_secs_f64() * 1000.0
    };
    for i in 0..n {
        // ABBA: neither side always goes first (connection reuse, caches).
        if i % 2 == 0 {
            known.push(time("carol"));
            unknown.push(time("dave-unknown"));
        } else {
            unknown.push(time("dave-unknown"));
            known.push(time("carol"));
        }
    }
    let t = Timing::of(&known, &unknown);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mk, mu) = (median(&known), median(&unknown));
    let report = format!(
        "login timing, {n} pairs: known user wrong password median {mk:.2} ms, unknown user median {mu:.2} ms; paired relative difference median {:+.1} %, 99.9 % interval [{:+.1} %, {:+.1} %] (fails only beyond ±10 %)",
        t.median * 100.0,
        t.lo * 100.0,
        t.hi * 100.0
    );
    eprintln!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-login-timing.txt");
    let _ = std::fs::write(out, format!("{report}\n"));
    assert!(
        mk > 1.0 && mu > 1.0,
        "an Argon2id verification runs: {report}"
    );
    assert!(!t.distinguishable(0.10), "{report}");
    d.stop();
}

/// What the auth page's heatmap, by-IP table and active-sessions figure read,
/// without a browser: `/v1/archive/counts` counts every failed login by IP
/// (those below the alert threshold too) in aligned buckets, for viewers
/// and not for ingest keys; the sessions metric counts up on creation and
/// down on invalidation for any reason, also on `/metrics`.
#[test]
fn failed_login_counts_and_active_sessions_from_the_events() {
    let data = tempfile::tempdir().unwrap();
    let ingest = key(data.path(), "ingest");
    let viewer = key(data.path(), "viewer");
    let cfg = config(data.path(), 1000, "");
    let d = Daemon::start(data, &cfg);
    let at = |m: u32, s: u32| format!("2025-11-21T10:{m:02}:{s:02}.000Z");
    let ev = |t: String, name: &str, fields: Value| {
        json!({"timestamp": t, "level": "INFO", "event": name, "service": "app", "fields": fields})
            .to_string()
    };
    let mut lines = Vec::new();
    // 12 from one address over two minutes (fires the per-IP rule), 4 and 1
    // from two that never reach it.
    for i in 0..12 {
        lines.push(ev(
            at(i / 6, (i % 6) * 10),
            "auth.login_failed",
            json!({"email": format!("u{i}@example.com"), "ip_address": "203.0.113.5", "reason": "invalid_password"}),
        ));
    }
    for (ip, n) in [("198.51.100.1", 4), ("198.51.100.2", 1)] {
        for i in 0..n {
            lines.push(ev(
                at(5, i * 5),
                "auth.login_failed",
                json!({"email": "x@example.com", "ip_address": ip, "reason": "invalid_password"}),
            ));
        }
    }
    lines.push(ev(
        at(6, 0),
        "auth.login_failed",
        json!({"email": "x@example.com"}),
    ));
    // Sessions: 4 created, ended by logout, timeout and revocation, and one
    // more end than was seen starting (not below zero).
    for i in 0..4 {
        lines.push(ev(
            at(7, i),
            "auth.session_created",
            json!({"user_id": format!("u{i}"), "session_id_prefix": format!("s_{i}"), "ip_address": "10.1.0.1"}),
        ));
    }
    lines.push(ev(
        at(6, 59),
        "auth.session_invalidated",
        json!({"user_id": "old", "reason": "timeout"}),
    ));
    for (i, reason) in ["logout", "revoked"].iter().enumerate() {
        lines.push(ev(
            at(8, i as u32),
            "auth.session_invalidated",
            json!({"user_id": "u0", "reason": reason}),
        ));
    }
    let (status, body) = d.ingest(&ingest, &lines.join("\n"));
    assert_eq!(status, 200, "{body}");

    let q = format!(
        "/v1/archive/counts?where={}&by=fields.ip&since=2025-11-21T10:00:00Z&until=2025-11-21T10:10:00Z&buckets=10&top=2",
        "event%20%3D%20auth.login_failed"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let c = d.get(&q, &viewer);
        if c["total"] == 17 || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(counts["total"], 17, "{counts}");
    assert_eq!(counts["missing"], 1, "{counts}");
    assert_eq!(
        (counts["start"].as_i64(), counts["step_ms"].as_i64()),
        (Some(1_763_719_200_000), Some(60_000))
    );
    assert_eq!(counts["buckets"], 10);
    assert_eq!(counts["rows"][0]["value"], "203.0.113.5");
    assert_eq!(
        counts["rows"][0]["counts"],
        json!([6, 6, 0, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(
        counts["rows"][1]["value"], "198.51.100.1",
        "below the threshold, listed"
    );
    assert_eq!(counts["rows"][1]["total"], 4);
    assert_eq!(counts["other"]["values"], 1);
    assert_eq!(counts["other"]["counts"][5], 1);
    assert_eq!(counts["distinct"], 3);
    // Viewers may count; an ingest key may not; a bad condition is a 400.
    let r = d.req("GET", &q, Some(&ingest)).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = d
        .req(
            "GET",
            "/v1/archive/counts?where=event%20%3D%20(",
            Some(&viewer),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // Default `by`: event names.
    let c = d.get(
        "/v1/archive/counts?since=2025-11-21T10:00:00Z&until=2025-11-21T11:00:00Z&buckets=1",
        &viewer,
    );
    assert_eq!(c["rows"][0]["value"], "auth.login_failed", "{c}");
    assert_eq!(c["rows"][0]["total"], 18);

    // 4 created, 2 ended after them (the earlier end found nothing to end).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = d
            .req("GET", "/metrics", Some(&viewer))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if m.lines().any(|l| l == "auth_sessions_active 2") {
            assert!(m.contains("# TYPE auth_sessions_active gauge"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    d.stop();
}

/// A page declared in the configuration (`dashboards:`, here in an included
/// file) is served after the seeds' pages; a bad panel is a `secmon check`
/// error naming the file and the field.
#[test]
fn configured_dashboards_are_served_and_checked() {
    let data = tempfile::tempdir().unwrap();
    let page = "dashboards:\n  payments:\n    title: Payments\n    panels:\n      - {id: refused, title: Refused cards by country, type: top, where: \"event = payment.refused\", by: fields.country, rules: [failed-logins-per-ip]}\n";
    let cfg = config(data.path(), 1000, page);
    let out = bin().arg("check").arg("-c").arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = config(
        data.path(),
        1000,
        &page.replace("rules: [failed-logins-per-ip]", "rules: [no-such-rule]"),
    );
    let out = bin().arg("check").arg("-c").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("extra-rules.yaml")
            && err.contains("dashboards.payments.panels[0].rules")
            && err.contains("no-such-rule"),
        "{err}"
    );
    let cfg = config(data.path(), 1000, page);
    let d = Daemon::start(data, &cfg);
    let r = client()
        .get(format!("{}/ui/dashboards.json", d.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    let keys: Vec<&str> = [
        "overview",
        "redis",
        "auth",
        "ratelimit",
        "containers",
        "events",
        "payments",
    ]
    .into_iter()
    .filter(|k| text.contains(&format!("\"{k}\":{{")))
    .collect();
    assert_eq!(keys.len(), 7, "{text}");
    assert!(text.find("\"events\":{").unwrap() < text.find("\"payments\":{").unwrap());
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["payments"]["panels"][0]["by"], "fields.country");
    d.stop();
}

/// PromQL names a Grafana target or alert expression reads (identifiers
/// outside functions, label matchers and durations).
fn promql_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut depth_brace = 0;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            '[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
            }
            c if depth_brace == 0 && (c.is_ascii_alphabetic() || c == '_' || c == '$') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let call = expr[i..].trim_start().starts_with('(');
                if !call
                    && !word.starts_with('$')
                    && !["or", "and", "on", "by", "without"].contains(&word)
                {
                    out.push(word.to_string());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `secmon export grafana` and `secmon export prometheus-rules` read the
/// names a running secmon serves on /metrics (every metric a panel or rule
/// queries is there), and the rules pass `promtool check rules` when
/// SECMON_TEST_PROMTOOL is set (CI sets it).
#[test]
fn exports_read_what_metrics_serves() {
    let data = tempfile::tempdir().unwrap();
    let viewer = key(data.path(), "viewer");
    let ingest = key(data.path(), "ingest");
    let gdir = data.path().join("grafana");
    let out = bin()
        .args(["export", "grafana", "--out-dir"])
        .arg(&gdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = bin().args(["export", "prometheus-rules"]).output().unwrap();
    assert!(
        rules.status.success(),
        "{}",
        String::from_utf8_lossy(&rules.stderr)
    );
    let rules_file = data.path().join("secmon-rules.yaml");
    std::fs::write(&rules_file, &rules.stdout).unwrap();

    // Every seed metric observed once, so /metrics lists each family.
    let cfg = config(data.path(), 1000, "");
    let d = Daemon::start(data, &cfg);
    let lines: Vec<String> = [
        ("auth.login_failed", json!({"email": "a@b.c", "ip": "10.0.0.1", "reason": "x"})),
        ("auth.login_succeeded", json!({"user_id": "u", "ip": "10.0.0.1", "user_agent": "t"})),
        ("auth.session_created", json!({"user_id": "u", "session_id_prefix": "s", "ip": "10.0.0.1"})),
        ("auth.api_key_hmac_failed", json!({"ip": "10.0.0.1"})),
        ("auth.login_timing", json!({"duration_ms": 40})),
        ("cache.value_rejected", json!({"key": "k"})),
        ("cache.ttl_invalid", json!({"key": "k"})),
        ("redis.scan", json!({"duration_ms": 12})),
        ("redis.memory_sample", json!({"memory_mb": 40, "memory_percent": 40, "fragmentation_ratio": 1.1})),
        ("redis.info", json!({"connected_clients": 3, "ops_per_sec": 10, "evicted_keys_delta": 0, "expired_keys_delta": 1, "dbsize": 5, "hit_ratio": 0.9})),
        ("ratelimit.exceeded", json!({"identifier": "i", "endpoint": "/e", "count": 1, "limit": 1, "retry_after": 1})),
        ("container.started", json!({"user_id": "u", "container_id": "c"})),
        ("container.hibernated", json!({"user_id": "u", "container_id": "c"})),
        ("container.error", json!({"user_id": "u", "container_id": "c", "error": "e"})),
        ("container.resource_limit", json!({"user_id": "u", "container_id": "c", "resource": "cpu"})),
        ("probe.result", json!({"probe": "p", "ok": true, "latency_ms": 3})),
    ]
    .into_iter()
    .map(|(name, fields)| event(name, fields))
    .collect();
    assert_eq!(d.ingest(&ingest, &lines.join("\n")).0, 200);
    let mut read = Vec::new();
    for f in std::fs::read_dir(&gdir).unwrap() {
        let b: Value = serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap();
        for p in b["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                read.extend(promql_names(t["expr"].as_str().unwrap()));
            }
        }
    }
    let rules_text = String::from_utf8_lossy(&rules.stdout).to_string();
    for l in rules_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
    {
        let e: String = serde_json::from_str(l).unwrap();
        read.extend(promql_names(&e));
    }
    assert!(read.len() > 20, "{read:?}");
    // Published once a second, after the reorder buffer let them go: wait
    // until every name read is served.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (families, missing) = loop {
        let text = d
            .req("GET", "/metrics", Some(&viewer))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let families: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        let missing: Vec<String> = read
            .iter()
            .filter(|n| {
                !families.contains(n.as_str())
                    && !n
                        .strip_suffix("_count")
                        .is_some_and(|s| families.contains(s))
            })
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (families, missing);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}\n{families:?}"
    );
    let _data = d.stop(); // keeps the rules file until the end

    match std::env::var("SECMON_TEST_PROMTOOL") {
        Ok(promtool) => {
            let out = std::process::Command::new(&promtool)
                .args(["check", "rules"])
                .arg(&rules_file)
                .output()
                .unwrap_or_else(|e| panic!("SECMON_TEST_PROMTOOL={promtool} cannot run: {e}"));
            assert!(
                out.status.success(),
                "promtool check rules failed:\n{}{}\n{rules_text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => eprintln!("SECMON_TEST_PROMTOOL not set: skipping promtool check rules"),
    }
}

/// node, an installed playwright-core and Chromium, or why not. Installs
/// playwright-core from tests/browser/package-lock.json when missing.
fn browser_tools() -> Result<std::path::PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "{chromium} not found (apt-get install chromium, or set CHROMIUM)"
        ));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node not found (apt-get install nodejs npm)".into());
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci in tests/browser failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(dir)
}

/// Seven days of history for the dashboard's metrics, one sample a minute,
/// as the daemon's series snapshot: what the pages' budgets are measured on.
fn seven_days_of_series(data: &Path) {
    use secmon_series::{Config, Labels, Sample, Store};
    let mut store = Store::new(Config::default());
    let now = secmon::clock::now().0;
    let start = now - 7 * 86_400_000;
    let mut t = start - start.rem_euclid(60_000);
    let (mut failed, mut ok, mut rejected, mut events) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0u64;
    while t < now - 60_000 {
        i += 1;
        let wave = ((i % 1440) as f64 / 1440.0 * std::f64::consts::TAU).sin();
        failed += f64::from(u8::from(i.is_multiple_of(7)))
            + f64::from(u8::from(i.is_multiple_of(97))) * 12.0;
        ok += 3.0;
        rejected += f64::from(u8::from(i.is_multiple_of(31)));
        events += 50.0 + 20.0 * wave;
        let mut s = vec![
            Sample::gauge("redis.memory.mb", 40.0 + 8.0 * wave),
            Sample::gauge("redis.memory.percent", 42.0 + 9.0 * wave),
            Sample::gauge("redis.connected.clients", 12.0 + (i % 5) as f64),
            Sample::gauge("redis.ops.per.sec", 900.0 + 300.0 * wave),
            Sample::gauge("redis.keys", 15_000.0 + (i % 100) as f64),
            Sample::gauge("redis.memory.fragmentation", 1.1),
            Sample::gauge("auth.sessions.active", (20.0 + 15.0 * wave).round()),
            Sample::counter("auth.login.failed.count", failed),
            Sample::counter("auth.login.succeeded.count", ok),
            Sample::counter("cache.value.rejection.count", rejected),
            Sample::counter("secmon.events", events * i as f64),
        ];
        s.extend(Sample::summary(
            "redis.scan.duration.ms",
            &Labels::new(),
            &[
                (0.5, Some(12.0)),
                (0.95, Some(30.0 + 10.0 * wave)),
                (0.99, Some(45.0)),
            ],
        ));
        s.extend(Sample::summary(
            "auth.login.duration.ms",
            &Labels::new(),
            &[(0.5, Some(40.0)), (0.95, Some(55.0)), (0.99, Some(70.0))],
        ));
        store.record(secmon_core::Timestamp(t), &s);
        t += 60_000;
    }
    store.save_file(&data.join("series.snap")).unwrap();
}

fn event(name: &str, fields: Value) -> String {
    json!({
        "timestamp": secmon::clock::now().to_rfc3339(),
        "level": "WARN", "event": name, "service": "management-server", "fields": fields,
    })
    .to_string()
}

/// The browser tests (tests/browser/run.mjs) against a daemon with 7 days of
/// series and fresh alerts, incidents and decisions. Skipped with a message
/// when Chromium or node is missing, unless CI is set: then it fails.
#[test]
fn dashboard_in_a_real_browser() {
    let dir = match browser_tools() {
        Ok(d) => d,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "browser tests cannot run in CI: {why}"
            );
            eprintln!("skipping the browser tests: {why}");
            return;
        }
    };
    let data = tempfile::tempdir().unwrap();
    let admin = key(data.path(), "admin");
    add_user(data.path(), "rita", "responder", "rita's password");
    add_user(data.path(), "vera", "viewer", "vera's password");
    seven_days_of_series(data.path());
    // A page of the operator's own, declared in the configuration.
    let cfg = config(
        data.path(),
        1000,
        "dashboards:\n  custom:\n    title: Custom page\n    panels:\n      - {id: by-email, title: Failed logins by account, type: top, where: \"event = auth.login_failed\", by: fields.email, top: 5, rules: [failed-logins-per-user]}\n      - {id: failed, title: Failed logins, type: stat, metric: auth.login.failed.count, func: increase, total: true}\n",
    );
    let d = Daemon::start(data, &cfg);

    // An attack: 10 failures from one address for one account (blocks the
    // IP, locks the account), admin brute force, cache and memory trouble.
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(event(
            "auth.login_failed",
            json!({"email": "eve@example.com", "ip": "10.0.0.7", "reason": "invalid_password", "attempt": i + 1}),
        ));
    }
    // Below every threshold: in the heatmap and the by-IP table all the
    // same (they count events, not alerts).
    for (ip, n) in [("10.0.0.8", 3), ("10.0.0.9", 1)] {
        for i in 0..n {
            lines.push(event(
                "auth.login_failed",
                json!({"email": format!("user{i}@example.com"), "ip": ip, "reason": "invalid_password"}),
            ));
        }
    }
    // The application's sessions: 5 created, 2 ended (logout, timeout), so
    // 3 are active; and rate-limit hits on two endpoints.
    for i in 0..5 {
        lines.push(event(
            "auth.session_created",
            json!({"user_id": format!("user{i}"), "session_id_prefix": format!("s_{i}"), "ip_address": "10.1.0.1"}),
        ));
    }
    for reason in ["logout", "timeout"] {
        lines.push(event(
            "auth.session_invalidated",
            json!({"user_id": "user0", "reason": reason}),
        ));
    }
    for (endpoint, n) in [("/api/search", 3), ("/api/login", 1)] {
        for _ in 0..n {
            lines.push(event(
                "ratelimit.exceeded",
                json!({"identifier": "key_scraper", "endpoint": endpoint, "count": 120, "limit": 100, "retry_after": 60}),
            ));
        }
    }
    for _ in 0..3 {
        lines.push(event(
            "admin.auth_failed",
            json!({"user_id": "admin-1", "ip": "192.0.2.10"}),
        ));
    }
    for i in 0..4 {
        lines.push(event(
            "cache.value_rejected",
            json!({"key": format!("k{i}"), "size": 11_000_000}),
        ));
        lines.push(event(
            "redis.memory_sample",
            json!({"memory_mb": 47.5, "memory_percent": 61.0 + i as f64}),
        ));
    }
    let r = d
        .req("POST", "/v1/events", Some(&admin))
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    // Wait for the response stage and for one 10 s series tick.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let incidents = d.get("/v1/incidents?state=triggered", &admin);
        let decisions = d.get("/v1/decisions", &admin);
        // Not recorded before the first tick: 404 until then.
        let series = |m: &str| {
            let r = d
                .req(
                    "GET",
                    &format!("/v1/series?metric={m}&since=1m"),
                    Some(&admin),
                )
                .send()
                .unwrap();
            if r.status() == 200 {
                r.json().unwrap()
            } else {
                Value::Null
            }
        };
        let memory = series("redis.memory.percent");
        let sessions = series("auth.sessions.active");
        let has = |v: &Value, x: f64| {
            v.as_array()
                .and_then(|a| a.first())
                .is_some_and(|s| s["points"].as_array().unwrap().iter().any(|p| p[1] == x))
        };
        let fresh = has(&memory, 64.0) && has(&sessions, 3.0);
        if incidents.as_array().unwrap().len() >= 3
            && decisions.as_array().unwrap().len() >= 3
            && fresh
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no incidents/decisions/series: {incidents} {decisions} {memory} {sessions}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let out = std::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .env("SECMON_URL", &d.url)
        .env("SECMON_ADMIN_KEY", &admin)
        .env("SECMON_RESPONDER", "rita:rita's password")
        .env("SECMON_VIEWER", "vera:vera's password")
        .env("SECMON_SCREENSHOTS", target.join("browser-screenshots"))
        .env("SECMON_BUDGETS", target.join("dashboard-budgets.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser tests failed:\n{stdout}");
    d.stop();
}
