use std::time::{Duration, Instant};

use secmon_core::{Dur, Timestamp};
use secmon_respond::config::{ExecConfig, RedisPublishConfig};
use secmon_respond::{
    Decision, DecisionChange, DecisionOutcome, DecisionPublisher, Decisions, ExecPublisher,
    RedisPublisher, RespondConfig, RespondError, Scope, Store,
};

use crate::common::at;

fn decision(value: &str) -> Decision {
    let store = Store::open_in_memory().unwrap();
    let mut ds = Decisions::open(&store, &Default::default()).unwrap();
    match ds
        .add_manual(&Scope::Ip, value, Dur::from_mins(60), "test", "t", at(0))
        .unwrap()
    {
        DecisionOutcome::Created(d) => d,
        o => panic!("{o:?}"),
    }
}

fn exec(argv: &[&str], timeout: Dur) -> ExecPublisher {
    ExecPublisher::new(&ExecConfig {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout,
    })
    .unwrap()
}

#[test]
fn exec_substitutes_whole_arguments_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let d = decision("203.0.113.5");
    let target = format!(
        "{}/{{op}}-{{scope}}-{{value}}-{{duration_secs}}-{{action}}",
        dir.path().display()
    );
    let mut p = exec(&["/usr/bin/touch", &target], Dur::from_secs(10));
    p.publish(&DecisionChange::Added(d.clone()), at(0)).unwrap();
    assert!(dir.path().join("add-ip-203.0.113.5-3600-manual").exists());
    // 59m30s left: rounded up.
    p.publish(
        &DecisionChange::Added(d.clone()),
        Timestamp(at(0).0 + 30_500),
    )
    .unwrap();
    assert!(dir.path().join("add-ip-203.0.113.5-3570-manual").exists());
    p.publish(&DecisionChange::Removed(d.clone()), at(1))
        .unwrap();
    assert!(dir.path().join("del-ip-203.0.113.5-0-manual").exists());

    // Even a value that slipped past validation stays one argument: `test`
    // gets exactly three arguments and compares them.
    let mut evil = d.clone();
    evil.value = "1.2.3.4; rm -rf / $(id) `id`\n".into();
    let mut p = exec(
        &[
            "/usr/bin/test",
            "{value}",
            "=",
            "1.2.3.4; rm -rf / $(id) `id`\n",
        ],
        Dur::from_secs(10),
    );
    p.publish(&DecisionChange::Added(evil), at(0)).unwrap();

    // A failing hook reports its exit status and stderr.
    let mut p = exec(&["/bin/ls", "/nonexistent-{value}"], Dur::from_secs(10));
    let err = p
        .publish(&DecisionChange::Added(d.clone()), at(0))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RespondError::Exec { .. }));
    assert!(msg.contains("nonexistent-203.0.113.5"), "{msg}");
    // A missing program is an error, not a panic.
    let mut p = exec(&["/nonexistent/program"], Dur::from_secs(1));
    assert!(p.publish(&DecisionChange::Added(d), at(0)).is_err());
    // The program itself can never be a template.
    assert!(
        ExecPublisher::new(&ExecConfig {
            argv: vec!["{value}".into()],
            timeout: Dur::from_secs(1)
        })
        .is_err()
    );
}

#[test]
fn exec_is_killed_on_timeout() {
    let d = decision("203.0.113.6");
    let mut p = exec(&["/bin/sleep", "30"], Dur::from_millis(300));
    let started = Instant::now();
    let err = p.publish(&DecisionChange::Added(d), at(0)).unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The real Redis from `SECMON_TEST_REDIS_URL`. Unset: skipped (and says so);
/// set but unreachable: fails.
fn redis_url() -> Option<String> {
    match std::env::var("SECMON_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("SKIPPED: SECMON_TEST_REDIS_URL is not set; Redis publisher test not run");
            None
        }
    }
}

#[test]
fn redis_set_with_ttl_publish_and_del() {
    let Some(url) = redis_url() else { return };
    // Unique per run so parallel runs and reruns never collide.
    let run = format!(
        "secmon-test:{}:{}:",
        std::process::id(),
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let cfg = RedisPublishConfig {
        url: url.clone(),
        key_prefix: format!("{run}decision:"),
        channel: format!("{run}decisions"),
    };
    let mut publisher = RedisPublisher::connect(&cfg)
        .expect("SECMON_TEST_REDIS_URL is set but Redis is unreachable");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut sub_conn = client.get_connection().unwrap();
    sub_conn
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sub = sub_conn.as_pubsub();
    sub.subscribe(&cfg.channel).unwrap();
    let mut conn = client.get_connection().unwrap();

    let store = Store::open_in_memory().unwrap();
    let rc = RespondConfig::seed_defaults();
    let mut ds = Decisions::open(&store, &rc.allowlist).unwrap();
    let o = ds
        .add_manual(
            &Scope::Ip,
            "198.51.100.77",
            Dur::from_mins(60),
            "redis test",
            "t",
            at(0),
        )
        .unwrap();
    let change = o.change().unwrap();
    // Published 10 minutes into the ban: the TTL is what remains.
    publisher.publish(&change, at(10)).unwrap();
    let key = format!("{}ip:198.51.100.77", cfg.key_prefix);
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(pttl > 49 * 60_000 && pttl <= 50 * 60_000, "pttl {pttl}");
    let body: String = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["value"], "198.51.100.77");
    assert_eq!(v["scope"], "ip");

    let msg = sub.get_message().unwrap();
    let payload: String = msg.get_payload().unwrap();
    let m: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(m["op"], "added");
    assert_eq!(m["decision"]["value"], "198.51.100.77");

    // Removal deletes the key and announces it.
    let id = change.decision().id;
    let removed = ds.delete(id, "t", at(11)).unwrap();
    publisher.publish(&removed, at(11)).unwrap();
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
    assert_eq!(exists, 0);
    let m: serde_json::Value =
        serde_json::from_str(&sub.get_message().unwrap().get_payload::<String>().unwrap()).unwrap();
    assert_eq!(m["op"], "removed");

    // An add published after its end leaves no key behind.
    let late = DecisionChange::Added(change.decision().clone());
    publisher.publish(&late, at(120)).unwrap();
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn redis_unreachable_is_an_error() {
    let cfg = RedisPublishConfig {
        url: "redis://127.0.0.1:1".into(),
        key_prefix: "x:".into(),
        channel: "x".into(),
    };
    assert!(RedisPublisher::connect(&cfg).is_err());
}
