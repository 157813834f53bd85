//! A worker killed with SIGKILL in the middle of a send loses nothing: after
//! restart every message arrives (at least once; exactly one distinct
//! idempotency key per message).

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{HttpServer, Reply, config, message};
use rusqlite::Connection;
use secmon_core::Timestamp;
use secmon_notify::{Dispatcher, Outbox, OutboxStatus};
use serde_json::json;

const WORKER_ENV: &str = "SECMON_NOTIFY_KILL_TEST_WORKER";

/// The child worker is a real process and runs on the wall clock.
#[allow(clippy::disallowed_methods)]
fn wall() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn
}

fn worker_config(url: &str) -> secmon_notify::NotifyConfig {
    config(json!({
        "receivers": [{"name": "w", "kind": "webhook", "url": url}],
        "outbox": {"backoff_base": "50ms", "backoff_max": "200ms", "timeout": "10s", "lease": "2m"}
    }))
}

/// The worker, run in a child process (a no-op in a normal test run): what
/// the binary's outbox thread does, with the wall clock.
#[test]
fn worker_child() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (db, url) = spec.split_once('|').expect("db|url");
    let cfg = worker_config(url);
    let conn = open(db);
    let ob = Outbox::new(&conn, cfg.outbox.lease).expect("outbox");
    let d = Dispatcher::new(&cfg, &|_: &str| None).expect("dispatcher");
    ob.recover(wall()).expect("recover");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ob.depth().expect("depth") > 0 && Instant::now() < deadline {
        let items = ob.due(wall(), 1).expect("due");
        if items.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        for item in items {
            d.deliver_one(&ob, &item, wall()).expect("deliver");
        }
    }
}

fn spawn_worker(db: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "worker_child", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, format!("{db}|{url}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker")
}

#[test]
fn sigkill_mid_send_then_restart_delivers_everything() {
    let slow = Arc::new(AtomicBool::new(true));
    let s2 = slow.clone();
    let srv = HttpServer::start(move |_| {
        let d = if s2.load(Ordering::SeqCst) { 3000 } else { 0 };
        Reply::status(200).delay(Duration::from_millis(d))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("secmon.db").to_string_lossy().into_owned();
    let keys: BTreeSet<String> = (0..6).map(|i| format!("kill-{i}")).collect();
    {
        let conn = open(&db);
        let ob = Outbox::new(&conn, secmon_core::Dur::from_mins(2)).expect("outbox");
        for k in &keys {
            ob.enqueue(&message("w", k), wall()).expect("enqueue");
        }
    }
    let url = srv.url("/hook");
    let mut child = spawn_worker(&db, &url);
    // Wait until the first request has reached the server (so the worker is
    // blocked inside the send), then SIGKILL it.
    let t0 = Instant::now();
    while srv.requests().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "worker never sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    {
        let conn = open(&db);
        let ob = Outbox::new(&conn, secmon_core::Dur::from_mins(2)).expect("outbox");
        let in_flight = ob.list(OutboxStatus::Sending).expect("list");
        assert_eq!(in_flight.len(), 1, "killed in the middle of a send");
        assert_eq!(ob.depth().expect("depth"), 6, "nothing was marked sent");
    }
    slow.store(false, Ordering::SeqCst);
    let mut child = spawn_worker(&db, &url);
    let status = child.wait().expect("worker");
    assert!(status.success());
    let got: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap_or("").to_string())
        .collect();
    let distinct: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(distinct, keys, "every message arrived, none missing");
    assert_eq!(
        got.len(),
        7,
        "only the interrupted send was repeated: {got:?}"
    );
    let conn = open(&db);
    let ob = Outbox::new(&conn, secmon_core::Dur::from_mins(2)).expect("outbox");
    assert_eq!(ob.depth().expect("depth"), 0);
    assert_eq!(ob.list(OutboxStatus::Sent).expect("list").len(), 6);
}
