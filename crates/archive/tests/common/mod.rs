#![allow(dead_code, clippy::unwrap_used)]
//! Shared by the integration tests: fixed keys, a small policy, seed-format
//! events and a manual clock.

use std::sync::Arc;

use secmon_archive::{
    Archive, ArchiveConfig, Keys, MasterKey, MemStorage, Policy, Query, SigningKey, Storage,
    VerifyReport, verify_archive,
};
use secmon_core::{Event, Fields, Timestamp, Value};

pub const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;

pub fn keys() -> Keys {
    Keys::new(
        MasterKey::from_bytes([1; 32]),
        SigningKey::from_bytes([2; 32]),
    )
}

pub fn config() -> ArchiveConfig {
    ArchiveConfig {
        // Few checkpoints: Ed25519 in a debug build costs milliseconds each.
        checkpoint_records: 5_000,
        personal_fields: vec![
            "fields.email".into(),
            "fields.ip".into(),
            "fields.user_id".into(),
        ],
        subject_fields: vec!["fields.user_id".into(), "fields.email".into()],
        ..ArchiveConfig::default()
    }
}

pub fn policy() -> Policy {
    config().validate(&[]).unwrap()
}

/// A seed-003-shaped event (~300 bytes as JSON with its raw line).
pub fn event(i: u64, t: i64) -> Event {
    let (name, level) = match i % 4 {
        0 => ("auth.login_failed", "WARN"),
        1 => ("http.request", "INFO"),
        2 => ("security.csrf_failed", "WARN"),
        _ => ("cache.miss", "DEBUG"),
    };
    let user = ["alice", "bob", "carol"][(i % 3) as usize];
    let mut f = Fields::new();
    f.insert("event", Value::from(name));
    f.insert("level", Value::from(level));
    f.insert("service", Value::from("api"));
    f.insert("fields.n", Value::Int(i as i64));
    f.insert("fields.user_id", Value::from(user));
    f.insert(
        "fields.email",
        Value::from(format!("{user}@example.com").as_str()),
    );
    f.insert(
        "fields.ip",
        Value::from(format!("10.0.{}.{}", i % 7, i % 251).as_str()),
    );
    f.insert("fields.path", Value::from("/api/v1/login"));
    let mut e = Event::new(Timestamp(t), f);
    e.raw = Some(Arc::from(format!("{name} user={user} n={i}").as_str()));
    e
}

pub fn open(st: &MemStorage, now: i64) -> Archive {
    Archive::open(Arc::new(st.clone()), policy(), keys(), Timestamp(now))
        .unwrap()
        .0
}

/// Writes `n` events one second apart from `t0`, in batches of 10, synced.
pub fn fill(a: &mut Archive, n: u64, t0: i64) {
    let evs: Vec<Event> = (0..n).map(|i| event(i, t0 + i as i64 * 1000)).collect();
    for (k, b) in evs.chunks(10).enumerate() {
        a.append(b, Timestamp(t0 + k as i64 * 10_000)).unwrap();
    }
    a.sync(Timestamp(t0 + n as i64 * 1000)).unwrap();
}

pub fn verify(st: &dyn Storage, exported: Option<&[u8]>) -> VerifyReport {
    // Sequential and parallel verification must agree.
    let r = verify_archive(st, &keys(), exported, &mut |_| {}).unwrap();
    let p = secmon_archive::verify_archive_with(st, &keys(), exported, 3, &mut |_| {}).unwrap();
    assert_eq!(r.problems, p.problems);
    assert_eq!(
        (r.records, r.segments, r.bytes),
        (p.records, p.segments, p.bytes)
    );
    r
}

pub fn all(a: &mut Archive, now: i64) -> Vec<Event> {
    let q = Query {
        text: "all".into(),
        ..Default::default()
    };
    let (hits, _) = a
        .search_collect(&q, &|_| true, "test", Timestamp(now))
        .unwrap();
    hits.into_iter().map(|h| h.event).collect()
}

pub fn segs(st: &MemStorage, cat: &str) -> Vec<String> {
    st.paths()
        .into_iter()
        .filter(|p| p.starts_with(&format!("seg/{cat}/")))
        .collect()
}

pub fn n_of(e: &Event) -> i64 {
    e.get("fields.n").and_then(|v| v.as_i64()).unwrap_or(-1)
}
