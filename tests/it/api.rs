//! The HTTP API end to end: the real binary on an ephemeral port, keys made
//! with `secmon keys create`, events posted over HTTP, alerts, incidents and
//! decisions read back, every route's authentication, `/metrics` checked by
//! Prometheus' own `promtool`, and configuration reload on SIGHUP.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use super::support::bin;

const SECRET: &str = "test-secret-for-api-keys-0123456789";

/// A running `secmon run` with its API.
pub struct Daemon {
    child: Child,
    pub url: String,
    /// Kept alive (and removed) with the daemon.
    data: Option<tempfile::TempDir>,
    logs: Receiver<Value>,
    client: Client,
}

/// The seed configuration plus an `api:` section with the given failure
/// throttle, including `extra-rules.yaml` (holding `extra`) from `dir`.
pub fn config(dir: &Path, auth_fail_limit: u32, extra: &str) -> PathBuf {
    let cfg = dir.join("secmon.yaml");
    let seeds = std::fs::read_to_string(super::support::example("seeds.yaml")).unwrap();
    std::fs::write(dir.join("extra-rules.yaml"), format!("rules: []\n{extra}")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{seeds}\napi:\n  auth_fail_limit: {auth_fail_limit}\ninclude: [extra-rules.yaml]\n"
        ),
    )
    .unwrap();
    cfg
}

/// Creates a key of `role` in the data directory of `data`.
pub fn key(data: &Path, role: &str) -> String {
    let out = bin()
        .args(["keys", "create", "--role", role, "--name"])
        .arg(format!("test-{role}"))
        .arg("--data-dir")
        .arg(data)
        .env("SECMON_API_KEY_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(k.starts_with("smk_"), "{k}");
    k
}

impl Daemon {
    /// Starts `secmon run` on 127.0.0.1:0 and waits for the API to listen.
    pub fn start(data: tempfile::TempDir, cfg: &Path) -> Daemon {
        let mut child = bin()
            .args([
                "run",
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "info",
                "-c",
            ])
            .arg(cfg)
            .arg("--data-dir")
            .arg(data.path())
            .env("SECMON_API_KEY_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn secmon run");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let v = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("secmon did not report the API address");
            if v["event"] == "secmon.api_listening" {
                break v["fields"]["url"].as_str().unwrap().to_string();
            }
        };
        Daemon {
            child,
            url,
            data: Some(data),
            logs: rx,
            client: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.client.request(m, format!("{}{path}", self.url));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// Posts NDJSON (or a JSON array) to `/v1/events`; answers the status and body.
    pub fn ingest(&self, key: &str, body: &str) -> (u16, Value) {
        let r = self
            .req("POST", "/v1/events", Some(key))
            .header("content-type", "application/x-ndjson")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    }

    pub fn get(&self, path: &str, key: &str) -> Value {
        let r = self.req("GET", path, Some(key)).send().unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    /// Waits for a log event named `event` (e.g. `secmon.reloaded`).
    pub fn wait_log(&self, event: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .logs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {event} log"));
            if v["event"] == event {
                return v;
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// SIGTERM, a clean exit, and the data directory back (for a restart).
    pub fn stop(mut self) -> tempfile::TempDir {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "secmon exited with {st:?}");
                return self.data.take().unwrap();
            }
            assert!(Instant::now() < deadline, "secmon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seed-format `auth.login_failed` at second `i` of 2025-11-21 10:00.
pub fn login_failed_as(ip: &str, email: &str, i: usize) -> String {
    json!({
        "timestamp": format!("2025-11-21T10:00:{:02}.000Z", i),
        "level": "WARN", "event": "auth.login_failed", "service": "management-server",
        "fields": {"email": email, "ip_address": ip, "reason": "invalid_password"},
    })
    .to_string()
}

fn login_failed(ip: &str, i: usize) -> String {
    login_failed_as(ip, &format!("u{i}@example.com"), i)
}

#[test]
fn ingest_over_http_then_read_alerts_incidents_and_decisions() {
    let data = tempfile::tempdir().unwrap();
    let (admin, ingest, viewer, bouncer, responder) = (
        key(data.path(), "admin"),
        key(data.path(), "ingest"),
        key(data.path(), "viewer"),
        key(data.path(), "bouncer"),
        key(data.path(), "responder"),
    );
    let cfg = config(data.path(), 5, "");
    let d = Daemon::start(data, &cfg);

    // Ten failures from one IP (seed: 10 in 5 min → block IP), one bad line.
    let mut body: Vec<String> = (0..10).map(|i| login_failed("203.0.113.7", i)).collect();
    body.push("{not json".into());
    let (status, v) = d.ingest(&ingest, &body.join("\n"));
    assert_eq!(status, 200);
    assert_eq!(v["accepted"], 10);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["errors"][0]["line"], 11);
    // A JSON array works too.
    let arr = format!("[{}]", login_failed("198.51.100.1", 0));
    assert_eq!(d.ingest(&ingest, &arr).1["accepted"], 1);

    // The alert fires on event time once the lateness (5 s) passes: the
    // engine follows the wall clock when input is idle.
    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let a = d.get("/v1/alerts?rule=failed-logins-per-ip", &viewer);
        if a.as_array().is_some_and(|a| !a.is_empty()) {
            break a;
        }
        assert!(Instant::now() < deadline, "no alert over the API");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alerts[0]["group"][0][1], "203.0.113.7", "{alerts}");

    let dec = d.get("/v1/decisions?ip=203.0.113.7", &bouncer);
    assert_eq!(dec.as_array().unwrap().len(), 1, "{dec}");
    assert_eq!(dec[0]["scope"], "Ip");
    assert_eq!(dec[0]["scenario"], "failed-logins-per-ip");
    assert_eq!(d.get("/v1/decisions?ip=198.51.100.1", &bouncer), json!([]));
    let stream = d.get("/v1/decisions/stream?startup=true", &bouncer);
    assert_eq!(stream["new"].as_array().unwrap().len(), 1);
    assert_eq!(d.get("/v1/decisions/stream", &bouncer)["new"], json!([]));

    // A responder lifts it; the bouncer sees the deletion.
    let id = dec[0]["id"].as_i64().unwrap();
    let r = d
        .req("DELETE", &format!("/v1/decisions/{id}"), Some(&responder))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let stream = d.get("/v1/decisions/stream", &bouncer);
    assert_eq!(stream["deleted"][0]["id"], id, "{stream}");
    assert_eq!(d.get("/v1/decisions?ip=203.0.113.7", &bouncer), json!([]));
    // A manual decision, then a refused one (allowlisted loopback).
    let r = d
        .req("POST", "/v1/decisions", Some(&responder))
        .json(&json!({"scope": "user", "value": "mallory", "duration": "2h", "reason": "fraud"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        d.get("/v1/decisions?user=mallory", &bouncer)[0]["value"],
        "mallory"
    );
    let r = d
        .req("POST", "/v1/decisions", Some(&responder))
        .json(&json!({"scope": "ip", "value": "not-an-ip"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // The P2 incident: ack, double ack is a conflict, note, resolve.
    let inc = d.get("/v1/incidents?state=triggered", &viewer);
    let inc_id = inc[0]["id"].as_i64().expect("an incident");
    let ack = |k: &str| {
        d.req("POST", &format!("/v1/incidents/{inc_id}/ack"), Some(k))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(ack(&viewer), 403);
    assert_eq!(ack(&responder), 200);
    assert_eq!(ack(&responder), 409);
    let r = d
        .req(
            "POST",
            &format!("/v1/incidents/{inc_id}/notes"),
            Some(&responder),
        )
        .json(&json!({"text": "blocked at the edge"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let detail = d.get(&format!("/v1/incidents/{inc_id}"), &viewer);
    let timeline = detail["timeline"].to_string();
    assert!(timeline.contains("blocked at the edge"), "{timeline}");
    assert!(timeline.contains("test-responder"), "{timeline}");

    // Silences and rules.
    let r = d
        .req("POST", "/v1/silences", Some(&responder))
        .json(&json!({"matchers": [{"name": "rule", "value": "failed-logins-per-ip"}], "duration": "1h", "comment": "maintenance"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(d.get("/v1/silences", &viewer).as_array().unwrap().len(), 1);
    let rules = d.get("/v1/rules", &viewer);
    let r = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "failed-logins-per-ip")
        .unwrap();
    assert_eq!(r["fired"], 1, "{r}");

    // Rule test: posted events through one rule, nothing stored.
    let body: Vec<String> = (0..10).map(|i| login_failed("192.0.2.9", i)).collect();
    let t: Value = d
        .req("POST", "/v1/rules/failed-logins-per-ip/test", Some(&viewer))
        .body(body.join("\n"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["verdicts"][0]["verdict"], "fire", "{t}");
    assert_eq!(d.get("/v1/decisions?ip=192.0.2.9", &admin), json!([]));

    let health = d.get("/health", &admin);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["engine"]["healthy"], true);
    d.stop();
}

/// Every route from the OpenAPI document: no key and a wrong key get the
/// same 401; a key of a role the route does not allow gets 403.
#[test]
fn every_route_refuses_missing_wrong_and_underprivileged_keys() {
    let data = tempfile::tempdir().unwrap();
    let roles = ["admin", "responder", "viewer", "ingest", "bouncer"];
    let keys: Vec<(&str, String)> = roles.iter().map(|r| (*r, key(data.path(), r))).collect();
    let cfg = config(data.path(), 10_000, "");
    let d = Daemon::start(data, &cfg);
    let doc: Value = d
        .req("GET", "/openapi.json", None)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut checked = 0;
    let mut bodies = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(allowed) = op["x-secmon-roles"].as_array() else {
                continue; // public
            };
            let p = path.replace("{id}", "1");
            let method = method.to_uppercase();
            let none = d.req(&method, &p, None).send().unwrap();
            assert_eq!(none.status(), 401, "{method} {p} without a key");
            bodies.push(none.text().unwrap());
            let wrong = d
                .req(
                    &method,
                    &p,
                    Some("smk_AAAAAAAA_0123456789abcdef0123456789abcdef"),
                )
                .send()
                .unwrap();
            assert_eq!(wrong.status(), 401, "{method} {p} with a wrong key");
            bodies.push(wrong.text().unwrap());
            for (role, k) in &keys {
                if !allowed.iter().any(|a| a == role) {
                    let r = d.req(&method, &p, Some(k)).send().unwrap();
                    assert_eq!(r.status(), 403, "{method} {p} as {role}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} routes checked");
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "401 bodies differ: {bodies:?}");
    d.stop();
}

/// Repeated failures from one address are throttled, counted, logged with
/// the key prefix only, and reach secmon's own rules as events.
#[test]
fn auth_failures_are_throttled_logged_and_counted() {
    let data = tempfile::tempdir().unwrap();
    let viewer = key(data.path(), "viewer");
    let cfg = config(data.path(), 5, "");
    let d = Daemon::start(data, &cfg);
    let bad = "smk_BADPREFX_0123456789abcdef0123456789abcdef";
    for _ in 0..5 {
        let r = d.req("GET", "/v1/alerts", Some(bad)).send().unwrap();
        assert_eq!(r.status(), 401);
    }
    let log = d.wait_log("auth.api_key_hmac_failed");
    assert_eq!(log["fields"]["key_prefix"], "BADPREFX");
    assert!(
        !log.to_string().contains("0123456789abcdef"),
        "key leaked: {log}"
    );
    // Throttled now, even with a good key.
    let r = d.req("GET", "/v1/alerts", Some(&viewer)).send().unwrap();
    assert_eq!(r.status(), 429);
    d.stop();
}

#[test]
fn metrics_pass_promtool_check() {
    let data = tempfile::tempdir().unwrap();
    let viewer = key(data.path(), "viewer");
    let ingest = key(data.path(), "ingest");
    let cfg = config(data.path(), 5, "");
    let d = Daemon::start(data, &cfg);
    // Some derived metrics with values: an API-key failure event (counter)
    // and SCAN durations (summary in seconds, quantiles over the last minute,
    // hence events stamped now).
    let now = jiff::Timestamp::now().to_string();
    let events = [
        json!({"timestamp": now, "level": "DEBUG", "event": "redis.scan", "service": "api", "fields": {"duration_ms": 12.5}}),
        json!({"timestamp": now, "level": "WARN", "event": "auth.api_key_hmac_failed", "service": "api", "fields": {"key_prefix": "abc"}}),
    ];
    let body: Vec<String> = events.iter().map(Value::to_string).collect();
    assert_eq!(d.ingest(&ingest, &body.join("\n")).0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let r = d.req("GET", "/metrics", Some(&viewer)).send().unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = r.text().unwrap();
        if text.contains("redis_scan_duration_seconds{quantile=\"0.5\"}") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the scan:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        text.contains("auth_api_key_hmac_fail_count_total 1"),
        "{text}"
    );
    assert!(text.contains("secmon_rule_alerts_fired_total{rule=\"failed-logins-per-ip\"}"));
    assert!(
        text.contains("secmon_http_ingested_events_total 2"),
        "{text}"
    );
    match std::env::var("SECMON_TEST_PROMTOOL") {
        Ok(promtool) => {
            let mut child = std::process::Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("SECMON_TEST_PROMTOOL={promtool} cannot run: {e}"));
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed:\n{}{}\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => eprintln!("SECMON_TEST_PROMTOOL not set: skipping promtool check"),
    }
    d.stop();
}

#[test]
fn sighup_reloads_valid_rules_and_keeps_running_on_errors() {
    let data = tempfile::tempdir().unwrap();
    let viewer = key(data.path(), "viewer");
    let cfg = config(data.path(), 5, "");
    let d = Daemon::start(data, &cfg);
    let has_rule = |id: &str| {
        d.get("/v1/rules", &viewer)
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id)
    };
    assert!(!has_rule("reload-probe"));
    // A broken rule: reload refused, the running rules stay.
    let extra = cfg.with_file_name("extra-rules.yaml");
    std::fs::write(
        &extra,
        "rules:\n  - id: reload-probe\n    severity: loud\n    match: {event: x}\n    detector: {type: single}\n",
    )
    .unwrap();
    d.signal("-HUP");
    let log = d.wait_log("secmon.reload_failed");
    assert!(
        log["fields"]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("severity"),
        "{log}"
    );
    assert!(d.get("/health", &viewer)["status"] == "ok");
    // Fixed: the new rule is live.
    let text = std::fs::read_to_string(&extra)
        .unwrap()
        .replace("loud", "low");
    std::fs::write(&extra, text).unwrap();
    d.signal("-HUP");
    d.wait_log("secmon.reloaded");
    assert!(has_rule("reload-probe"));
    d.stop();
}

#[test]
fn without_keys_the_api_is_open_on_loopback_only() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(data.path(), 5, "");
    let mut child = bin()
        .args(["run", "--listen", "0.0.0.0:0", "--log-level", "info", "-c"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("SECMON_API_KEY_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let mut warned = false;
    let mut url = None;
    for line in err.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "secmon.api_loopback_only" {
            warned = true;
        }
        if v["event"] == "secmon.api_listening" {
            url = v["fields"]["url"].as_str().map(str::to_string);
            break;
        }
    }
    let url = url.expect("listening");
    assert!(warned);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = reqwest::blocking::get(format!("{url}/v1/alerts")).unwrap();
    assert_eq!(r.status(), 200);
    // …but not to another web site driving the operator's browser.
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/decisions"))
        .header("origin", "https://evil.example")
        .json(&json!({"scope": "ip", "value": "192.0.2.1"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let _ = child.kill();
    let _ = child.wait();
}

/// `api.tls`: the API speaks HTTPS with the configured certificate (test
/// material in `tests/fixtures/tls/`). A client that trusts its CA is
/// answered; one that does not, and one speaking plain HTTP to the port,
/// get no answer at all.
#[test]
fn serves_https_with_the_configured_certificate() {
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("secmon.yaml");
    let seeds = std::fs::read_to_string(super::support::example("seeds.yaml")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{seeds}\napi:\n  tls:\n    cert: {}\n    key: {}\n",
            tls.join("cert.pem").display(),
            tls.join("key.pem").display()
        ),
    )
    .unwrap();
    let viewer = key(data.path(), "viewer");
    let d = Daemon::start(data, &cfg);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);

    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.pem")).unwrap()).unwrap();
    let trusting = Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = trusting
        .get(format!("{}/health", d.url))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status"], "ok");

    let untrusting = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{}/health", d.url))
        .send()
        .expect_err("a certificate from an unknown CA is refused");
    assert!(err.is_connect(), "{err:?}");

    let plain = d.url.replacen("https://", "http://", 1);
    assert!(
        untrusting
            .get(format!("{plain}/health"))
            .bearer_auth(&viewer)
            .send()
            .is_err(),
        "plain HTTP gets no HTTP answer from the TLS port"
    );
}

/// Polls `cond` every 200 ms for up to 15 s; fails the test naming `what`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A tiny HTTP health endpoint whose answer the test switches.
fn health_server() -> (String, std::sync::Arc<std::sync::Mutex<(u16, String)>>) {
    use std::io::{Read, Write};
    let state = std::sync::Arc::new(std::sync::Mutex::new((
        200u16,
        r#"{"status":"ok"}"#.to_string(),
    )));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let s = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let (code, body) = s.lock().unwrap().clone();
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, state)
}

/// Seed 003 health checks: one failure → P2 degraded, three → P1 down,
/// recovery resolves both; probe results are metrics too.
#[test]
fn probes_escalate_and_recovery_resolves() {
    let (url, state) = health_server();
    let data = tempfile::tempdir().unwrap();
    let viewer = key(data.path(), "viewer");
    let cfg = config(data.path(), 5, "");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "probes:\n  - name: management\n    type: http\n    url: {url}\n    interval: 300ms\n    timeout: 1s\n    assert: ['status == \"ok\"']\n"
        );
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(data, &cfg);
    let firing = |rule: &str| {
        d.get(&format!("/v1/alerts?rule={rule}&status=firing"), &viewer)
            .as_array()
            .unwrap()
            .len()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Healthy: nothing fires, latency is measured.
    wait("probe latency metric", &|| {
        let m = d
            .req("GET", "/metrics", Some(&viewer))
            .send()
            .unwrap()
            .text()
            .unwrap();
        m.contains("probe_latency_seconds_count")
    });
    assert_eq!(firing("health-check-failing"), 0);
    // Unhealthy body (assertion fails): degraded, then down.
    *state.lock().unwrap() = (200, r#"{"status":"degraded"}"#.into());
    wait("P2 service degraded", &|| {
        firing("health-check-failing") == 1
    });
    wait("P1 service down", &|| firing("health-check-down") == 1);
    let inc = d.get("/v1/incidents", &viewer);
    let prios: Vec<&str> = inc
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["priority"].as_str())
        .collect();
    assert!(prios.contains(&"P1") && prios.contains(&"P2"), "{inc}");
    // Recovery resolves both.
    *state.lock().unwrap() = (200, r#"{"status":"ok"}"#.into());
    wait("recovery", &|| {
        firing("health-check-failing") == 0 && firing("health-check-down") == 0
    });
    // The probe's state is history for the health grid.
    let points = |d: &Daemon| {
        let v = d.get(
            "/v1/series?metric=probe.up&labels=probe=management&since=10m",
            &viewer,
        );
        v[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p[1].is_null())
            .count()
    };
    wait("probe.up series", &|| points(&d) > 0);
    let before = points(&d);
    // History survives a restart.
    let data = d.stop();
    let d = Daemon::start(data, &cfg);
    assert!(points(&d) >= before, "history lost over a restart");
    d.stop();
}

/// `secmon decisions add|delete` next to a running daemon: the API (and the
/// bouncer stream) follow within a few seconds.
#[test]
fn cli_decisions_next_to_a_running_daemon_reach_the_api() {
    let data = tempfile::tempdir().unwrap();
    let bouncer = key(data.path(), "bouncer");
    let cfg = config(data.path(), 5, "");
    let dir = data.path().to_path_buf();
    let d = Daemon::start(data, &cfg);
    let out = bin()
        .args(["decisions", "-c"])
        .arg(&cfg)
        .args(["--data-dir"])
        .arg(&dir)
        .args([
            "add",
            "--scope",
            "ip",
            "--value",
            "192.0.2.77",
            "--duration",
            "1h",
            "--author",
            "cli-test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap();
    let blocked = || {
        !d.get("/v1/decisions?ip=192.0.2.77", &bouncer)
            .as_array()
            .unwrap()
            .is_empty()
    };
    eventually("the CLI's decision reaches the API", blocked);
    let out = bin()
        .args(["decisions", "-c"])
        .arg(&cfg)
        .args(["--data-dir"])
        .arg(&dir)
        .args(["delete", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the CLI's deletion reaches the API", || !blocked());
    d.stop();
}
