//! Alerts → routes/batches/rate limit → outbox → a real Slack endpoint, with a
//! manual clock.

mod common;

use common::{HttpServer, Reply, alert, config};
use rusqlite::Connection;
use secmon_core::{Dur, Timestamp};
use secmon_notify::dispatch::Outcome;
use secmon_notify::{Batcher, Dispatcher, Outbox};
use serde_json::json;

#[test]
fn batched_rate_limited_messages_flow_through_the_outbox() {
    let srv = HttpServer::start(|_| Reply::status(200));
    let cfg = config(json!({
        "receivers": [{"name": "slack", "kind": "slack", "url": srv.url("/services/x"), "channel": "#security-alerts"}],
        "routes": [{"match": {"min_severity": "medium"}, "receivers": ["slack"], "group_by": ["rule"]}],
        "rate_limit": {"per_minute": 1, "burst": 1}
    }));
    let t0 = Timestamp(1_705_312_200_000);
    let mut b = Batcher::new(&cfg, t0).unwrap();
    let d = Dispatcher::new(&cfg, &|_: &str| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("secmon.db")).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    let ob = Outbox::new(&conn, cfg.outbox.lease).unwrap();

    // Two IPs of one rule share a message; three other rules are separate groups.
    for (i, rule) in ["failed_logins_ip", "failed_logins_ip", "r2", "r3", "r4"]
        .iter()
        .enumerate()
    {
        let mut a = alert();
        a.rule = rule.to_string();
        a.fingerprint = format!("{rule}/{i}");
        a.group = vec![("ip".into(), format!("10.0.0.{i}"))];
        b.push(&a, t0);
    }
    let mut low = alert();
    low.severity = secmon_core::Severity::Low;
    b.push(&low, t0); // matches no route

    let step = |b: &mut Batcher, now: Timestamp| {
        for m in b.flush_due(now) {
            ob.enqueue(&m, now).unwrap();
        }
        for item in ob.due(now, 10).unwrap() {
            assert_eq!(d.deliver_one(&ob, &item, now).unwrap(), Outcome::Sent);
        }
    };
    step(&mut b, t0.add(Dur::from_secs(29)));
    assert!(srv.requests().is_empty(), "group_wait");
    step(&mut b, t0.add(Dur::from_secs(30)));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1, "burst of one; three groups dropped");
    let first = reqs[0].json();
    assert_eq!(first["attachments"].as_array().unwrap().len(), 2);
    assert!(first.get("text").is_none());

    let mut late = alert();
    late.rule = "r5".into();
    late.fingerprint = "r5/x".into();
    b.push(&late, t0.add(Dur::from_secs(60)));
    step(&mut b, t0.add(Dur::from_secs(90)));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    let second = reqs[1].json();
    assert_eq!(
        second["text"], "+3 more alerts",
        "dropped alerts are summarised"
    );
    assert_eq!(second["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(ob.depth().unwrap(), 0);
}
