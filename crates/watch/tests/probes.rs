//! Probes against real sockets: an in-test HTTP server (axum on
//! 127.0.0.1:0) that turns unhealthy and back, open and closed TCP ports,
//! and the local Redis and PostgreSQL servers.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use secmon_core::{SourceId, Timestamp, Value};
use secmon_watch::{CallbackSink, names};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Healthy,
    Error500,
    RedisDown,
    Slow,
    NotJson,
    Big,
}

type Shared = Arc<Mutex<Mode>>;

async fn health(State(mode): State<Shared>) -> Response {
    let m = *mode.lock().expect("lock");
    match m {
        Mode::Healthy => (
            StatusCode::OK,
            r#"{"status":"ok","relay":{"healthy":true},"redis":{"connected":true},"containers":2}"#,
        )
            .into_response(),
        Mode::Error500 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::RedisDown => (
            StatusCode::OK,
            r#"{"status":"ok","relay":{"healthy":true},"redis":{"connected":false},"containers":2}"#,
        )
            .into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, r#"{"status":"ok"}"#).into_response()
        }
        Mode::NotJson => (StatusCode::OK, "<html>ok</html>").into_response(),
        Mode::Big => (StatusCode::OK, format!(r#"{{"status":"{}"}}"#, "x".repeat(10_000)))
            .into_response(),
    }
}

/// `/secure` answers 401 unless the probe sends the configured header.
async fn secure(headers: HeaderMap) -> Response {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer s3cr3t-token") => (StatusCode::OK, r#"{"status":"ok"}"#).into_response(),
        _ => (StatusCode::UNAUTHORIZED, "no").into_response(),
    }
}

async fn server(mode: Mode) -> (SocketAddr, Shared) {
    let shared = Arc::new(Mutex::new(mode));
    let app = Router::new()
        .route("/health", get(health))
        .route("/secure", get(secure))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, shared)
}

fn set(m: &Shared, mode: Mode) {
    *m.lock().expect("lock") = mode;
}

#[tokio::test]
async fn http_escalates_one_two_three_and_resets_on_recovery() {
    let (addr, mode) = server(Mode::Healthy).await;
    let clock = ManualClock::at(1_000);
    let mut r = runner(&format!(
        r#"
probes:
  - name: management
    type: http
    service: management-server
    url: http://{addr}/health
    assert: ['status == "ok"', 'relay.healthy == true']
    extract: {{redis_connected: redis.connected}}
"#
    ));
    let e = r.run_once(|| clock.now()).await;
    assert_eq!(e.name(), Some(names::PROBE_RESULT));
    assert!(boolean(&e, "fields.ok"), "{}", e.to_json());
    assert_eq!(int(&e, "fields.consecutive_failures"), 0);
    assert_eq!(int(&e, "fields.status_code"), 200);
    assert!(boolean(&e, "fields.redis_connected"));
    assert_eq!(string(&e, "service"), "management-server");
    assert_eq!(string(&e, "fields.probe"), "management");
    assert_eq!(string(&e, "fields.kind"), "http");
    assert!(float(&e, "fields.latency_ms") >= 0.0);
    assert_eq!(e.time, Timestamp(1_000));

    set(&mode, Mode::Error500);
    for n in 1..=3 {
        clock.set(1_000 + n * 30_000);
        let e = r.run_once(|| clock.now()).await;
        assert!(!boolean(&e, "fields.ok"));
        assert_eq!(int(&e, "fields.consecutive_failures"), n);
        assert_eq!(int(&e, "fields.status_code"), 500);
        assert_eq!(string(&e, "fields.category"), "status");
        assert_eq!(string(&e, "fields.error"), "unexpected status 500");
        assert_eq!(string(&e, "level"), if n >= 3 { "ERROR" } else { "WARN" });
        assert_eq!(boolean(&e, "fields.changed"), n == 1);
        assert_eq!(e.time, Timestamp(1_000 + n * 30_000));
    }

    // Healthy again, but Redis is disconnected: the probe is ok (the seed's
    // management server falls back), the field says so for the P3 rule.
    set(&mode, Mode::RedisDown);
    clock.set(200_000);
    let e = r.run_once(|| clock.now()).await;
    assert!(boolean(&e, "fields.ok"), "{}", e.to_json());
    assert_eq!(int(&e, "fields.consecutive_failures"), 0);
    assert!(boolean(&e, "fields.changed"));
    assert_eq!(int(&e, "fields.failures_before"), 3);
    assert_eq!(int(&e, "fields.downtime_ms"), 200_000 - 31_000);
    assert!(!boolean(&e, "fields.redis_connected"));

    set(&mode, Mode::Healthy);
    let e = r.run_once(|| clock.now()).await;
    assert!(boolean(&e, "fields.redis_connected"));
    assert!(!boolean(&e, "fields.changed"));
}

#[tokio::test]
async fn http_assertion_failures_are_listed() {
    let (addr, _mode) = server(Mode::RedisDown).await;
    let mut r = runner(&format!(
        r#"
probes:
  - name: mgmt-strict
    type: http
    url: http://{addr}/health
    assert: ['status == "ok"', 'redis.connected == true', 'containers >= 3', 'relay.healthy == true']
"#
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "assertion");
    assert_eq!(
        string(&e, "fields.failed_assertion"),
        "redis.connected == true (got false)"
    );
    let Value::Array(all) = field(&e, "fields.failed_assertions") else {
        panic!("not an array")
    };
    assert_eq!(
        all,
        &vec![
            Value::from("redis.connected == true (got false)"),
            Value::from("containers >= 3 (got 2)"),
        ]
    );
    assert!(string(&e, "fields.error").contains("(and 1 more)"));
    assert_eq!(int(&e, "fields.status_code"), 200);
}

#[tokio::test]
async fn http_timeout_is_bounded_and_categorised() {
    let (addr, _mode) = server(Mode::Slow).await;
    let mut r = runner(&format!(
        "probes:\n  - {{name: slow, type: http, url: 'http://{addr}/health', timeout: 200ms}}\n"
    ));
    let start = std::time::Instant::now();
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "timeout", "{}", e.to_json());
    let lat = float(&e, "fields.latency_ms");
    assert!((150.0..2_000.0).contains(&lat), "{lat}");
}

#[tokio::test]
async fn http_bodies_that_cannot_be_checked_fail() {
    let (addr, mode) = server(Mode::NotJson).await;
    let mut r = runner(&format!(
        "probes:\n  - {{name: b, type: http, url: 'http://{addr}/health', assert: ['status == \"ok\"'], max_body_bytes: 1024}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert_eq!(string(&e, "fields.category"), "body");
    assert!(string(&e, "fields.error").starts_with("body is not JSON"));
    set(&mode, Mode::Big);
    let e = r.run_once(|| Timestamp(0)).await;
    assert_eq!(string(&e, "fields.category"), "body");
    assert_eq!(string(&e, "fields.error"), "body larger than 1024 bytes");

    // Without assertions the body is not needed and does not matter.
    let mut r = runner(&format!(
        "probes:\n  - {{name: b2, type: http, url: 'http://{addr}/health', extract: {{s: status}}, max_body_bytes: 1024}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(boolean(&e, "fields.ok"));
    assert!(e.get("fields.s").is_none());
}

#[tokio::test]
async fn http_expected_status_and_headers() {
    let (addr, _mode) = server(Mode::Error500).await;
    let mut r = runner(&format!(
        "probes:\n  - {{name: e, type: http, url: 'http://{addr}/health', expect_status: [500, 503]}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(boolean(&e, "fields.ok"));

    let mut r = runner(&format!(
        "probes:\n  - {{name: s, type: http, url: 'http://{addr}/secure', headers: {{Authorization: 'Bearer s3cr3t-token'}}, assert: ['status == \"ok\"']}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(boolean(&e, "fields.ok"), "{}", e.to_json());
    let mut r = runner(&format!(
        "probes:\n  - {{name: s2, type: http, url: 'http://{addr}/secure'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert_eq!(int(&e, "fields.status_code"), 401);
    assert!(!e.to_json().to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn http_refused_connection_hides_credentials() {
    let port = closed_port();
    let mut r = runner(&format!(
        "probes:\n  - {{name: down, type: http, url: 'http://admin:hunter2@127.0.0.1:{port}/health?token=abc123'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "connect", "{}", e.to_json());
    assert!(e.get("fields.status_code").is_none());
    let text = e.to_json().to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("abc123"),
        "{text}"
    );
    assert_eq!(
        string(&e, "fields.target"),
        format!("http://admin:***@127.0.0.1:{port}/health?token=***")
    );
    assert!(!string(&e, "fields.error").is_empty());
}

#[tokio::test]
async fn tcp_open_and_closed_ports() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let open = listener.local_addr().expect("addr");
    let mut r = runner(&format!(
        "probes:\n  - {{name: open, type: tcp, address: '{open}'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(boolean(&e, "fields.ok"), "{}", e.to_json());
    assert_eq!(string(&e, "fields.target"), format!("tcp://{open}"));

    let mut r = runner(&format!(
        "probes:\n  - {{name: closed, type: tcp, address: '127.0.0.1:{}'}}\n",
        closed_port()
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "connect");
    assert!(
        string(&e, "fields.error").contains("refused"),
        "{}",
        e.to_json()
    );
}

#[tokio::test]
async fn redis_ping_against_the_local_server() {
    let Some(url) = service_url("SECMON_TEST_REDIS_URL") else {
        return;
    };
    let mut r = runner(&format!(
        "probes:\n  - {{name: cache, type: redis, url: '{url}'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(
        boolean(&e, "fields.ok"),
        "Redis at {url} must answer PING: {}",
        e.to_json()
    );
    assert_eq!(string(&e, "fields.kind"), "redis");

    let mut r = runner(&format!(
        "probes:\n  - {{name: cache-down, type: redis, url: 'redis://:hunter2@127.0.0.1:{}/0', timeout: 2s}}\n",
        closed_port()
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "connect", "{}", e.to_json());
    assert!(!e.to_json().to_string().contains("hunter2"));
}

#[tokio::test]
async fn postgres_connect_against_the_local_server() {
    let Some(url) = service_url("SECMON_TEST_POSTGRES_URL") else {
        return;
    };
    let mut r = runner(&format!(
        "probes:\n  - {{name: db, type: postgres, url: '{url}'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(
        boolean(&e, "fields.ok"),
        "PostgreSQL at {url} must accept SELECT 1: {}",
        e.to_json()
    );
    assert_eq!(string(&e, "fields.kind"), "postgres");

    // A query error is a failure of its own category.
    let mut r = runner(&format!(
        "probes:\n  - {{name: db-q, type: postgres, url: '{url}', query: 'SELECT * FROM secmon_no_such_table'}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert_eq!(string(&e, "fields.category"), "query", "{}", e.to_json());
}

#[tokio::test]
async fn postgres_unreachable_is_a_connect_failure() {
    let port = closed_port();
    let mut r = runner(&format!(
        "probes:\n  - {{name: db, type: postgres, url: 'postgres://app:hunter2@127.0.0.1:{port}/test', timeout: 2s}}\n"
    ));
    let e = r.run_once(|| Timestamp(0)).await;
    assert!(!boolean(&e, "fields.ok"));
    assert_eq!(string(&e, "fields.category"), "connect", "{}", e.to_json());
    assert_eq!(
        string(&e, "fields.target"),
        format!("postgres://app@127.0.0.1:{port}/test")
    );
    assert!(!e.to_json().to_string().contains("hunter2"));
}

#[tokio::test]
async fn spawn_runs_on_schedule_and_stops_on_shutdown() {
    let (addr, mode) = server(Mode::Healthy).await;
    let w = watch(&format!(
        r#"
probes:
  - {{name: web, type: http, url: 'http://{addr}/health', interval: 50ms, timeout: 1s}}
  - {{name: port, type: tcp, address: '{addr}', interval: 50ms}}
"#
    ));
    let clock = ManualClock::at(5_000);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = secmon_watch::spawn_with_source(w, clock.clock(), tx, SourceId(7), async {
        let _ = stop_rx.await;
    })
    .expect("spawn");

    let mut web_failures = Vec::new();
    let mut seen_port = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    set(&mode, Mode::Error500);
    while web_failures.len() < 3 {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("events in time")
            .expect("channel open");
        assert_eq!(e.source, SourceId(7));
        assert_eq!(e.time, Timestamp(5_000));
        match string(&e, "fields.probe") {
            "port" => seen_port += 1,
            "web" if !boolean(&e, "fields.ok") => {
                web_failures.push(int(&e, "fields.consecutive_failures"))
            }
            _ => {}
        }
    }
    assert_eq!(web_failures, vec![1, 2, 3]);
    assert!(seen_port >= 1);
    set(&mode, Mode::Healthy);
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("recovery in time")
            .expect("channel open");
        if string(&e, "fields.probe") == "web" {
            assert!(boolean(&e, "fields.ok"));
            assert_eq!(int(&e, "fields.failures_before"), 3);
            break;
        }
    }

    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("stops promptly")
        .expect("no panic");
    // Everything buffered drains, then the channel is closed.
    while rx.recv().await.is_some() {}
}

#[tokio::test]
async fn a_closed_sink_stops_the_watchers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let w = watch(&format!(
        "probes:\n  - {{name: p, type: tcp, address: '{addr}', interval: 20ms}}\n"
    ));
    let count = Arc::new(Mutex::new(0));
    let c2 = count.clone();
    let sink = CallbackSink::new(move |_e| {
        let mut n = c2.lock().expect("lock");
        *n += 1;
        *n < 3
    });
    let handle = secmon_watch::spawn(
        w,
        ManualClock::at(0).clock(),
        sink,
        std::future::pending::<()>(),
    )
    .expect("spawn");
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops once the sink is closed")
        .expect("no panic");
    assert_eq!(*count.lock().expect("lock"), 3);
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let w = watch("probes:\n  - {name: p, type: tcp, address: '127.0.0.1:1'}\n");
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let r = secmon_watch::spawn(w, ManualClock::at(0).clock(), tx, async {});
    assert!(matches!(r, Err(secmon_watch::WatchError::NoRuntime)));
}
