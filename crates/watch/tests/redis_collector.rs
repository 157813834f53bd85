//! The Redis collector against the real local Redis (`SECMON_TEST_REDIS_URL`):
//! fill it with data under a unique key prefix, see `memory_mb` rise between
//! two polls and a memory rule of the engine fire on the collector's events;
//! plus the failure path against a closed port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use secmon_core::{Event, SourceId, Timestamp};
use secmon_engine::{Engine, EngineConfig, MetricConfig, RuleConfig, Ruleset, Verdict};
use secmon_watch::{RedisPoller, names};
use serde::Deserialize;

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("secmon-watch-test:{}:{nanos}", std::process::id())
}

fn poller(yaml: &str) -> RedisPoller {
    let w = watch(yaml);
    RedisPoller::new(w.redis.expect("redis section")).expect("poller")
}

fn by_name<'a>(evs: &'a [Event], name: &str) -> &'a Event {
    evs.iter()
        .find(|e| e.name() == Some(name))
        .unwrap_or_else(|| {
            panic!(
                "no {name} among {:?}",
                evs.iter().map(Event::name).collect::<Vec<_>>()
            )
        })
}

/// Deletes the test's keys even when an assertion fails (values also carry a
/// TTL, so a killed test leaves nothing behind for long).
struct Cleanup {
    url: String,
    keys: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let url = self.url.clone();
        let keys = std::mem::take(&mut self.keys);
        if keys.is_empty() {
            return;
        }
        // Drop runs inside the test's runtime: do the IO on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(c) = redis::Client::open(url.as_str())
                    && let Ok(mut conn) = c.get_multiplexed_async_connection().await
                {
                    let _: Result<i64, _> = conn.del(&keys).await;
                }
            });
        })
        .join();
    }
}

#[derive(Deserialize)]
struct Rules {
    metrics: Vec<MetricConfig>,
    rules: Vec<RuleConfig>,
}

#[tokio::test]
async fn memory_rises_when_redis_fills_and_the_memory_rule_fires() {
    let Some(url) = service_url("SECMON_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique_prefix();
    let mut p = poller(&format!(
        "redis: {{url: '{url}', interval: 10s, scan_pattern: '{prefix}:*'}}\n"
    ));
    let t0 = 1_700_000_000_000i64;
    let (before, delay) = p.poll_once(|| Timestamp(t0)).await;
    assert_eq!(
        before.len(),
        3,
        "Redis at {url} must be reachable: {:?}",
        before.iter().map(Event::to_json).collect::<Vec<_>>()
    );
    assert!(delay <= Duration::from_secs(10));
    let mem0 = by_name(&before, names::REDIS_MEMORY_SAMPLE);
    let mb0 = float(mem0, "fields.memory_mb");
    let keys0 = int(by_name(&before, names::REDIS_INFO), "fields.dbsize");
    assert!(float(mem0, "fields.memory_percent") > 0.0);
    assert!(!string(mem0, "fields.maxmemory_policy").is_empty());
    assert!(float(by_name(&before, names::REDIS_SCAN), "fields.duration_ms") >= 0.0);

    // Fill: 16 values of 512 KiB under the test's prefix.
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut cleanup = Cleanup {
        url: url.clone(),
        keys: Vec::new(),
    };
    let value = vec![b'x'; 512 * 1024];
    for i in 0..16 {
        let k = format!("{prefix}:{i}");
        let _: () = conn.set_ex(&k, &value, 300).await.expect("set");
        cleanup.keys.push(k);
    }

    let (after, _) = p.poll_once(|| Timestamp(t0 + 10_000)).await;
    let mem1 = by_name(&after, names::REDIS_MEMORY_SAMPLE);
    let mb1 = float(mem1, "fields.memory_mb");
    assert!(mb1 >= mb0 + 7.0, "memory_mb {mb0} → {mb1}");
    let info1 = by_name(&after, names::REDIS_INFO);
    assert!(int(info1, "fields.dbsize") >= keys0 + 16);
    assert!(int(info1, "fields.keys_total") >= 16);
    assert!(int(info1, "fields.interval_ms") == 10_000);
    assert!(int(info1, "fields.commands_delta") >= 16);
    let scan = by_name(&after, names::REDIS_SCAN);
    assert_eq!(string(scan, "fields.pattern"), format!("{prefix}:*"));
    assert_eq!(int(scan, "fields.count"), 100);

    // The seed's memory alert shape, with the threshold between the two
    // samples, runs on the collector's events in the real engine.
    let threshold = (mb0 + mb1) / 2.0;
    let cfg: Rules = serde_saphyr::from_str(&format!(
        r#"
metrics:
  - {{name: redis.memory.mb, type: gauge, match: {{event: redis.memory_sample}}, field: fields.memory_mb}}
  - {{name: redis.memory.percent, type: gauge, match: {{event: redis.memory_sample}}, field: fields.memory_percent}}
rules:
  - id: redis-memory-high
    severity: high
    detector: {{type: metric, expr: 'redis.memory.mb > {threshold} or redis.memory.percent > 80'}}
"#
    ))
    .expect("rules");
    let ruleset = Ruleset::build(&cfg.rules, &cfg.metrics).expect("ruleset");
    let mut engine = Engine::new(Arc::new(ruleset), EngineConfig::default());
    let mut out = Vec::new();
    for e in before.iter().chain(after.iter()) {
        engine.observe(e.clone(), &mut out);
    }
    engine.advance_to(Timestamp(t0 + 60_000), &mut out);
    let fires: Vec<_> = out
        .iter()
        .filter_map(|v| match v {
            Verdict::Fire(f) => Some(f),
            Verdict::Resolve(_) => None,
        })
        .collect();
    assert_eq!(fires.len(), 1, "{out:?}");
    assert!(fires[0].at >= Timestamp(t0 + 10_000));
    assert!(
        (fires[0].value - mb1).abs() < 1e-6,
        "{} vs {mb1}",
        fires[0].value
    );

    // Cleaning up brings the dataset back down.
    drop(cleanup);
    let (again, _) = p.poll_once(|| Timestamp(t0 + 20_000)).await;
    let mb2 = float(
        by_name(&again, names::REDIS_MEMORY_SAMPLE),
        "fields.memory_mb",
    );
    assert!(mb2 < mb1 - 4.0, "memory_mb after cleanup {mb2} (was {mb1})");
}

#[tokio::test]
async fn an_unreachable_redis_gives_collector_errors_with_backoff() {
    let port = closed_port();
    let mut p = poller(&format!(
        "redis: {{url: 'redis://:hunter2@127.0.0.1:{port}/0', interval: 1s, max_backoff: 3s, timeout: 1s}}\n"
    ));
    let mut delays = Vec::new();
    for n in 1..=4 {
        let (evs, delay) = p.poll_once(|| Timestamp(n * 1_000)).await;
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.name(), Some(names::REDIS_COLLECTOR_ERROR));
        assert_eq!(int(e, "fields.consecutive_failures"), n);
        assert_eq!(string(e, "level"), "ERROR");
        assert!(
            ["connect", "timeout"].contains(&string(e, "fields.category")),
            "{}",
            e.to_json()
        );
        assert!(!e.to_json().to_string().contains("hunter2"));
        assert_eq!(
            string(e, "fields.target"),
            format!("redis://:***@127.0.0.1:{port}/0")
        );
        delays.push(delay.as_secs());
    }
    assert_eq!(delays, vec![1, 2, 3, 3]);
}

#[tokio::test]
async fn spawned_collector_emits_every_interval_until_shutdown() {
    let Some(url) = service_url("SECMON_TEST_REDIS_URL") else {
        return;
    };
    let w = watch(&format!(
        "redis: {{url: '{url}', interval: 100ms, instance: cache-main, service: cache}}\n"
    ));
    let clock = ManualClock::at(42);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = secmon_watch::spawn_with_source(w, clock.clock(), tx, SourceId(3), async {
        let _ = stop_rx.await;
    })
    .expect("spawn");
    let mut got = Vec::new();
    while got.len() < 6 {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("events in time")
            .expect("open");
        assert_eq!(e.source, SourceId(3));
        assert_eq!(e.time, Timestamp(42));
        assert_eq!(string(&e, "service"), "cache");
        assert_eq!(string(&e, "fields.instance"), "cache-main");
        got.push(e.name().unwrap_or_default().to_string());
    }
    assert_eq!(
        got,
        [
            names::REDIS_MEMORY_SAMPLE,
            names::REDIS_INFO,
            names::REDIS_SCAN,
            names::REDIS_MEMORY_SAMPLE,
            names::REDIS_INFO,
            names::REDIS_SCAN
        ]
    );
    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("stops promptly")
        .expect("no panic");
}
