//! Durable delivery against a flaky receiver, driven by a manual clock.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{HttpServer, Reply, config, message};
use rusqlite::Connection;
use secmon_core::{Dur, Timestamp};
use secmon_notify::dispatch::Outcome;
use secmon_notify::{Dispatcher, Outbox, OutboxStatus, RetryTarget};
use serde_json::json;

fn db(dir: &tempfile::TempDir) -> Connection {
    let conn = Connection::open(dir.path().join("secmon.db")).expect("open db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn
}

#[test]
fn five_hundreds_then_429_then_200_delivers_each_key_exactly_once() {
    // Per key: 500, 500, 500, 429 (Retry-After: 1), then 200.
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let delivered: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (a2, d2) = (attempts.clone(), delivered.clone());
    let srv = HttpServer::start(move |r| {
        let key = r.header("Idempotency-Key").unwrap_or("").to_string();
        let n = {
            let mut a = a2.lock().unwrap();
            let n = a.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        match n {
            1..=3 => Reply::status(500).body("upstream down"),
            4 => Reply::status(429).header("Retry-After", "1"),
            _ => {
                *d2.lock().unwrap().entry(key).or_default() += 1;
                Reply::status(200)
            }
        }
    });
    let cfg = config(json!({
        "receivers": [{"name": "w", "kind": "webhook", "url": srv.url("/hook")}],
        "outbox": {"backoff_base": "100ms", "backoff_max": "2s", "max_age": "1h"}
    }));
    let d = Dispatcher::new(&cfg, &|_: &str| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let ob = Outbox::new(&conn, cfg.outbox.lease).unwrap();
    let mut now = Timestamp(1_700_000_000_000);
    let keys: Vec<String> = (0..5).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        ob.enqueue(&message("w", k), now).unwrap();
    }
    let mut saw_429 = 0;
    for _ in 0..500 {
        if ob.depth().unwrap() == 0 {
            break;
        }
        for item in ob.due(now, 10).unwrap() {
            match d.deliver_one(&ob, &item, now).unwrap() {
                Outcome::Retrying { at, reason } if reason.starts_with("HTTP 429") => {
                    assert_eq!(at, now.add(Dur::from_secs(1)), "Retry-After honoured");
                    saw_429 += 1;
                }
                Outcome::Retrying { at, .. } => assert!(at <= now.add(Dur::from_secs(2))),
                Outcome::Dead { reason } => panic!("dead: {reason}"),
                Outcome::Sent => {}
            }
        }
        now = now.add(Dur::from_millis(250));
    }
    assert_eq!(saw_429, 5);
    assert_eq!(ob.depth().unwrap(), 0);
    let delivered = delivered.lock().unwrap();
    for k in &keys {
        assert_eq!(delivered.get(k), Some(&1), "{k} delivered exactly once");
    }
    assert_eq!(delivered.len(), 5);
    let sent = ob.list(OutboxStatus::Sent).unwrap();
    assert_eq!(sent.len(), 5);
    assert!(sent.iter().all(|i| i.attempts == 4));
}

#[test]
fn max_age_dead_letters_and_retry_requeues() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up2 = up.clone();
    let srv = HttpServer::start(move |_| {
        if up2.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(503)
        }
    });
    let cfg = config(json!({
        "receivers": [
            {"name": "w", "kind": "webhook", "url": srv.url("/hook")},
            {"name": "bad", "kind": "webhook", "url": srv.url("/hook"), "headers": {"Idempotency-Key": "x"}}
        ],
        "outbox": {"backoff_base": "1s", "backoff_max": "4s", "max_age": "30s"}
    }));
    let d = Dispatcher::new(&cfg, &|_: &str| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let ob = Outbox::new(&conn, cfg.outbox.lease).unwrap();
    let mut now = Timestamp(1_700_000_000_000);
    let id = ob.enqueue(&message("w", "k1"), now).unwrap();
    // A permanent error (a misconfigured receiver) is dead at once.
    let bad = ob.enqueue(&message("bad", "k2"), now).unwrap();
    for _ in 0..200 {
        for item in ob.due(now, 10).unwrap() {
            d.deliver_one(&ob, &item, now).unwrap();
        }
        now = now.add(Dur::from_millis(500));
    }
    let dead = ob.list(OutboxStatus::Dead).unwrap();
    assert_eq!(dead.iter().map(|i| i.id).collect::<Vec<_>>(), vec![id, bad]);
    assert!(
        dead[0]
            .dead_reason
            .as_deref()
            .unwrap()
            .starts_with("undelivered after 30s"),
        "{:?}",
        dead[0]
    );
    assert!(dead[0].attempts >= 3);
    assert!(dead[1].attempts == 0);
    assert_eq!(ob.depth().unwrap(), 0);
    // The receiver recovers; retry re-queues one dead letter.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ob.retry(RetryTarget::One(id), now).unwrap(), 1);
    for item in ob.due(now, 10).unwrap() {
        assert_eq!(d.deliver_one(&ob, &item, now).unwrap(), Outcome::Sent);
    }
    assert_eq!(ob.list(OutboxStatus::Sent).unwrap().len(), 1);
    assert_eq!(ob.list(OutboxStatus::Dead).unwrap().len(), 1);
}
