//! The Redis collector (seed 000 metrics 4 and 5, the "Redis Health"
//! dashboard): polls one Redis server and turns each poll into events the
//! engine's metrics and rules consume, with the same names and fields the
//! application's own log lines produce through the seed parsers
//! (`redis.memory_sample` `fields.memory_mb`/`memory_percent`, `redis.scan`
//! `fields.duration_ms`), plus more.
//!
//! Each poll runs `INFO`, `CONFIG GET maxmemory` / `maxmemory-policy`
//! (falling back to INFO's copies of them when `CONFIG` is disabled, as on
//! managed services), `DBSIZE`, and one timed `SCAN 0 [MATCH p] COUNT n`.
//! It emits `redis.memory_sample`, `redis.info` and `redis.scan`, all stamped
//! with the same time. A failed poll emits `redis.collector_error` and the
//! next attempt waits twice as long (from `interval` up to `max_backoff`);
//! the [`redis::aio::ConnectionManager`] reconnects underneath, and is
//! replaced after a timeout or three failures in a row.
//!
//! `memory_percent` is of `maxmemory` when one is set. With `maxmemory 0`
//! Redis does not cap itself and the machine's memory is the limit that
//! matters, so the percent is of `total_system_memory` and
//! `fields.memory_limit` says `system` (`none` when the server reports
//! neither, in which case `memory_percent` is absent).
//!
//! The collector does not alert and does not write to Redis.

pub mod info;

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secmon_core::{Event, Timestamp};
use tokio::time::Instant;

use crate::config::RedisCollector;
use crate::event::{EventBuilder, mib, millis, names, round3};
use crate::probe::net::redis_category;
use crate::redact::{password_of, scrub};
use info::Info;

/// Keyspace lines turned into fields: Redis has 16 databases by default; a
/// server configured with thousands must not make events unbounded.
const MAX_DBS: usize = 64;

/// What one successful poll read.
#[derive(Debug, Clone)]
pub struct Sample {
    pub info: Info,
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub dbsize: Option<i64>,
    pub scan_duration: Duration,
    pub scan_keys: usize,
    pub scan_complete: bool,
}

/// Counters kept between polls to report per-interval deltas (the
/// dashboard's expiration rate, eviction rate, hit ratio over the interval).
#[derive(Debug, Clone, Default)]
struct Counters {
    run_id: Option<String>,
    at: Option<Timestamp>,
    values: HashMap<&'static str, u64>,
}

const DELTA_COUNTERS: &[(&str, &str)] = &[
    ("total_commands_processed", "commands_delta"),
    ("expired_keys", "expired_keys_delta"),
    ("evicted_keys", "evicted_keys_delta"),
    ("keyspace_hits", "keyspace_hits_delta"),
    ("keyspace_misses", "keyspace_misses_delta"),
    ("rejected_connections", "rejected_connections_delta"),
];

/// The collector's memory between polls; [`Self::events`] is pure so the
/// event shapes are tested on captured INFO text without a server.
#[derive(Debug, Default)]
pub struct CollectorState {
    prev: Option<Counters>,
    failures: u64,
}

impl CollectorState {
    pub fn events(&mut self, c: &RedisCollector, s: &Sample, now: Timestamp) -> Vec<Event> {
        self.failures = 0;
        let i = &s.info;
        let base = |name: &str, level: &str, msg: String| {
            let mut b = EventBuilder::new(name, level, &c.service);
            b.field("instance", c.instance.as_str())
                .field("target", c.target.as_str())
                .top("message", msg.as_str());
            b
        };

        // --- memory
        let used = i.u64("used_memory");
        let maxmemory = s.maxmemory.or_else(|| i.u64("maxmemory"));
        let system = i.u64("total_system_memory").filter(|m| *m > 0);
        let (limit, limit_kind) = match (maxmemory, system) {
            (Some(m), _) if m > 0 => (Some(m), "maxmemory"),
            (_, Some(sys)) => (Some(sys), "system"),
            _ => (None, "none"),
        };
        let percent = match (used, limit) {
            (Some(u), Some(l)) => Some(round3(u as f64 * 100.0 / l as f64)),
            _ => None,
        };
        let policy = s
            .maxmemory_policy
            .clone()
            .or_else(|| i.get("maxmemory_policy").map(str::to_string));
        let mut mem = base(
            names::REDIS_MEMORY_SAMPLE,
            "INFO",
            match (used, percent) {
                (Some(u), Some(p)) => format!("Redis memory: {} MB ({p}% of limit)", mib(u)),
                (Some(u), None) => format!("Redis memory: {} MB", mib(u)),
                _ => "Redis memory: unknown".to_string(),
            },
        );
        mem.opt("memory_mb", used.map(mib))
            .opt("memory_percent", percent)
            .field("memory_limit", limit_kind)
            .opt("maxmemory_mb", maxmemory.map(mib))
            .opt("maxmemory_bytes", maxmemory.map(|m| m as i64))
            .opt("maxmemory_policy", policy.as_deref())
            .opt("fragmentation_ratio", i.f64("mem_fragmentation_ratio"))
            .opt("used_memory", used.map(|m| m as i64))
            .opt("used_memory_rss", i.i64("used_memory_rss"))
            .opt("used_memory_peak", i.i64("used_memory_peak"))
            .opt("used_memory_dataset", i.i64("used_memory_dataset"))
            .opt("used_memory_overhead", i.i64("used_memory_overhead"))
            .opt("rss_mb", i.u64("used_memory_rss").map(mib))
            .opt("peak_mb", i.u64("used_memory_peak").map(mib))
            .opt("dataset_mb", i.u64("used_memory_dataset").map(mib))
            .opt("overhead_mb", i.u64("used_memory_overhead").map(mib))
            .opt("system_memory_mb", system.map(mib));

        // --- clients, throughput, keyspace
        let hits = i.u64("keyspace_hits");
        let misses = i.u64("keyspace_misses");
        let ratio = |h: Option<u64>, m: Option<u64>| match (h, m) {
            (Some(h), Some(m)) if h + m > 0 => Some(round3(h as f64 / (h + m) as f64)),
            _ => None,
        };
        let mut inf = base(
            names::REDIS_INFO,
            "INFO",
            format!(
                "Redis: {} clients, {} ops/s, {} keys",
                i.get("connected_clients").unwrap_or("?"),
                i.get("instantaneous_ops_per_sec").unwrap_or("?"),
                s.dbsize.map_or("?".to_string(), |d| d.to_string()),
            ),
        );
        for (key, field) in [
            ("connected_clients", "connected_clients"),
            ("blocked_clients", "blocked_clients"),
            ("instantaneous_ops_per_sec", "ops_per_sec"),
            ("total_commands_processed", "total_commands_processed"),
            ("total_connections_received", "total_connections_received"),
            ("rejected_connections", "rejected_connections"),
            ("evicted_keys", "evicted_keys"),
            ("expired_keys", "expired_keys"),
            ("keyspace_hits", "keyspace_hits"),
            ("keyspace_misses", "keyspace_misses"),
            ("uptime_in_seconds", "uptime_seconds"),
        ] {
            inf.opt(field, i.i64(key));
        }
        inf.opt("hit_ratio", ratio(hits, misses))
            .opt("redis_version", i.get("redis_version"))
            .opt("role", i.get("role"))
            .opt("dbsize", s.dbsize);
        let (mut keys, mut expires) = (0u64, 0u64);
        for (_, st) in i.keyspace() {
            keys += st.keys;
            expires += st.expires;
        }
        for (db, st) in i.keyspace().iter().take(MAX_DBS) {
            inf.field(&format!("keyspace.db{db}.keys"), st.keys as i64)
                .field(&format!("keyspace.db{db}.expires"), st.expires as i64)
                .field(&format!("keyspace.db{db}.avg_ttl_ms"), st.avg_ttl as i64);
        }
        inf.field("keys_total", keys as i64)
            .field("expires_total", expires as i64);

        // Deltas since the previous poll, unless the server restarted
        // (another run_id, or a counter that went down).
        let run_id = i.get("run_id").map(str::to_string);
        let mut cur = Counters {
            run_id: run_id.clone(),
            at: Some(now),
            values: HashMap::new(),
        };
        for (key, _) in DELTA_COUNTERS {
            if let Some(v) = i.u64(key) {
                cur.values.insert(key, v);
            }
        }
        if let Some(prev) = &self.prev
            && prev.run_id == run_id
        {
            if let Some(at) = prev.at {
                inf.field("interval_ms", now.since(at).as_millis());
            }
            let mut d = HashMap::new();
            for (key, field) in DELTA_COUNTERS {
                if let (Some(p), Some(c)) = (prev.values.get(key), cur.values.get(key))
                    && c >= p
                {
                    inf.field(field, (c - p) as i64);
                    d.insert(*key, c - p);
                }
            }
            inf.opt(
                "hit_ratio_interval",
                ratio(
                    d.get("keyspace_hits").copied(),
                    d.get("keyspace_misses").copied(),
                ),
            );
        }
        self.prev = Some(cur);

        // --- scan
        let ms = millis(s.scan_duration);
        let mut scan = base(names::REDIS_SCAN, "DEBUG", format!("SCAN duration: {ms}ms"));
        scan.field("duration_ms", ms)
            .field("keys", s.scan_keys as i64)
            .field("count", i64::from(c.scan_count))
            .field("complete", s.scan_complete)
            .opt("pattern", c.scan_pattern.as_deref());

        vec![mem.build(now), inf.build(now), scan.build(now)]
    }

    /// Counts a failed poll and describes it.
    pub fn error_event(
        &mut self,
        c: &RedisCollector,
        category: &str,
        error: &str,
        retry_in: Duration,
        now: Timestamp,
    ) -> Event {
        self.failures += 1;
        let mut b = EventBuilder::new(names::REDIS_COLLECTOR_ERROR, "ERROR", &c.service);
        b.field("instance", c.instance.as_str())
            .field("target", c.target.as_str())
            .field("category", category)
            .field("error", error)
            .field("consecutive_failures", self.failures as i64)
            .field("retry_in_ms", retry_in.as_millis() as i64)
            .top(
                "message",
                format!(
                    "Redis collector: {category}: {error} ({} in a row)",
                    self.failures
                )
                .as_str(),
            );
        b.build(now)
    }

    pub fn failures(&self) -> u64 {
        self.failures
    }
}

/// The collector with its connection and memory. [`crate::spawn`] drives it;
/// tests call [`Self::poll_once`] directly.
pub struct RedisPoller {
    c: RedisCollector,
    conn: ConnectionManager,
    state: CollectorState,
}

impl RedisPoller {
    /// No IO: the connection is made by the first poll.
    pub fn new(c: RedisCollector) -> Result<RedisPoller, crate::WatchError> {
        let conn = manager(&c).map_err(|e| crate::WatchError::RedisClient {
            instance: c.instance.clone(),
            message: describe(&c, &e).1,
        })?;
        Ok(RedisPoller {
            c,
            conn,
            state: CollectorState::default(),
        })
    }

    pub fn config(&self) -> &RedisCollector {
        &self.c
    }

    /// One poll (at most `timeout`): the three sample events, or one
    /// `redis.collector_error`; and how long to wait before the next poll
    /// (the rest of the interval, or the backoff after a failure).
    pub async fn poll_once(&mut self, now: impl FnOnce() -> Timestamp) -> (Vec<Event>, Duration) {
        let started = Instant::now();
        let res = tokio::time::timeout(self.c.timeout, poll(&mut self.conn, &self.c)).await;
        let now = now();
        let timed_out = res.is_err();
        let (cat, err) = match res {
            Ok(Ok(sample)) => {
                let evs = self.state.events(&self.c, &sample, now);
                return (evs, self.c.interval.saturating_sub(started.elapsed()));
            }
            Ok(Err(e)) => describe(&self.c, &e),
            Err(_) => (
                crate::Category::Timeout.as_str(),
                format!("no answer within {} ms", self.c.timeout.as_millis()),
            ),
        };
        let delay = backoff(
            self.c.interval,
            self.c.max_backoff,
            self.state.failures() + 1,
        );
        let ev = self.state.error_event(&self.c, cat, &err, delay, now);
        // The manager reconnects on IO errors by itself; a stuck connection
        // (timeout) or a streak of failures gets a fresh one.
        if (timed_out || self.state.failures().is_multiple_of(3))
            && let Ok(m) = manager(&self.c)
        {
            self.conn = m;
        }
        (vec![ev], delay)
    }
}

/// Exponential backoff from `interval`, capped at `max`.
pub(crate) fn backoff(interval: Duration, max: Duration, failures: u64) -> Duration {
    let shift = failures.saturating_sub(1).min(20) as u32;
    interval
        .saturating_mul(1u32 << shift)
        .min(max.max(interval))
}

/// One poll's round trips.
async fn poll(conn: &mut ConnectionManager, c: &RedisCollector) -> redis::RedisResult<Sample> {
    let text: String = redis::cmd("INFO").query_async(conn).await?;
    let info = Info::parse(&text);
    let maxmemory = config_get(conn, "maxmemory")
        .await?
        .and_then(|v| v.trim().parse::<u64>().ok());
    let maxmemory_policy = config_get(conn, "maxmemory-policy").await?;
    let dbsize: Option<i64> = Some(redis::cmd("DBSIZE").query_async(conn).await?);
    let mut scan = redis::cmd("SCAN");
    scan.arg(0);
    if let Some(p) = &c.scan_pattern {
        scan.arg("MATCH").arg(p);
    }
    scan.arg("COUNT").arg(c.scan_count);
    let start = Instant::now();
    let (cursor, keys): (String, Vec<redis::Value>) = scan.query_async(conn).await?;
    let scan_duration = start.elapsed();
    Ok(Sample {
        info,
        maxmemory,
        maxmemory_policy,
        dbsize,
        scan_duration,
        scan_keys: keys.len(),
        scan_complete: cursor == "0",
    })
}

/// `CONFIG GET name`; `Ok(None)` when the server refuses `CONFIG` (renamed
/// or disabled on managed services) — INFO carries the same values.
async fn config_get(
    conn: &mut ConnectionManager,
    name: &str,
) -> redis::RedisResult<Option<String>> {
    match redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async::<HashMap<String, String>>(conn)
        .await
    {
        Ok(mut m) => Ok(m.remove(name)),
        Err(e) if e.code().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn manager(c: &RedisCollector) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(c.url.expose())?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(c.timeout))
        .set_response_timeout(Some(c.timeout))
        // Our own loop retries on its schedule; the manager's background
        // reconnection only needs to try once per failure.
        .set_number_of_retries(1)
        .set_max_delay(c.timeout);
    ConnectionManager::new_lazy_with_config(client, cfg)
}

/// A failed poll as `(category, short error text)`.
pub(crate) fn describe(c: &RedisCollector, e: &redis::RedisError) -> (&'static str, String) {
    let cat = redis_category(e).as_str();
    (
        cat,
        scrub(&e.to_string(), password_of(c.url.expose()).as_deref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WatchConfig;
    use secmon_core::Value;

    const REAL: &str = include_str!("../../tests/data/info-redis-7.0.txt");

    fn collector(y: &str) -> RedisCollector {
        let c: WatchConfig = serde_saphyr::from_str(y).unwrap();
        c.validate().unwrap().redis.unwrap()
    }

    fn sample(info: &str) -> Sample {
        Sample {
            info: Info::parse(info),
            maxmemory: Some(0),
            maxmemory_policy: Some("noeviction".into()),
            dbsize: Some(2),
            scan_duration: Duration::from_micros(1500),
            scan_keys: 2,
            scan_complete: true,
        }
    }

    #[test]
    fn events_from_real_info() {
        let c =
            collector("redis: {url: 'redis://:pw@127.0.0.1:6379', scan_pattern: 'api_key:*'}\n");
        let mut st = CollectorState::default();
        let evs = st.events(&c, &sample(REAL), Timestamp(10_000));
        assert_eq!(evs.len(), 3);
        let mem = &evs[0];
        assert_eq!(mem.name(), Some("redis.memory_sample"));
        assert_eq!(mem.get("service"), Some(&Value::from("redis")));
        assert_eq!(
            mem.get("fields.target"),
            Some(&Value::from("redis://:***@127.0.0.1:6379"))
        );
        assert_eq!(
            mem.get("fields.memory_mb"),
            Some(&Value::Float(mib(1_040_856)))
        );
        // maxmemory 0: percent of the machine's memory.
        assert_eq!(mem.get("fields.memory_limit"), Some(&Value::from("system")));
        let pct = mem
            .get("fields.memory_percent")
            .and_then(Value::as_f64)
            .unwrap();
        assert!((pct - round3(1_040_856.0 * 100.0 / 25_276_510_208.0)).abs() < 1e-9);
        assert_eq!(mem.get("fields.maxmemory_mb"), Some(&Value::Float(0.0)));
        assert_eq!(
            mem.get("fields.maxmemory_policy"),
            Some(&Value::from("noeviction"))
        );
        assert_eq!(
            mem.get("fields.fragmentation_ratio"),
            Some(&Value::Float(7.5))
        );
        for f in [
            "used_memory_rss",
            "used_memory_dataset",
            "used_memory_overhead",
            "rss_mb",
        ] {
            assert!(mem.get(&format!("fields.{f}")).is_some(), "{f}");
        }
        let inf = &evs[1];
        assert_eq!(inf.name(), Some("redis.info"));
        for f in [
            "connected_clients",
            "blocked_clients",
            "ops_per_sec",
            "total_commands_processed",
            "evicted_keys",
            "expired_keys",
            "keyspace_hits",
            "keyspace_misses",
            "dbsize",
        ] {
            assert!(inf.get(&format!("fields.{f}")).is_some(), "{f}");
        }
        assert_eq!(inf.get("fields.keyspace.db5.keys"), Some(&Value::Int(2)));
        assert_eq!(inf.get("fields.keyspace.db5.expires"), Some(&Value::Int(1)));
        assert_eq!(inf.get("fields.keys_total"), Some(&Value::Int(2)));
        // No deltas on the first poll.
        assert!(inf.get("fields.expired_keys_delta").is_none());
        let scan = &evs[2];
        assert_eq!(scan.name(), Some("redis.scan"));
        assert_eq!(scan.get("fields.duration_ms"), Some(&Value::Float(1.5)));
        assert_eq!(scan.get("fields.pattern"), Some(&Value::from("api_key:*")));
        assert_eq!(scan.get("level"), Some(&Value::from("DEBUG")));
        assert!(evs.iter().all(|e| e.time == Timestamp(10_000)));
    }

    #[test]
    fn maxmemory_sets_the_percent_and_deltas_follow_counters() {
        let c = collector("redis: {url: 'redis://127.0.0.1'}\n");
        let mut st = CollectorState::default();
        let text = |mem: u64, expired: u64, hits: u64, misses: u64, run: &str| {
            format!(
                "# Memory\r\nused_memory:{mem}\r\n# Stats\r\nexpired_keys:{expired}\r\n\
                 keyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\nrun_id:{run}\r\n"
            )
        };
        let mut s = sample(&text(50 * 1024 * 1024, 10, 90, 10, "a"));
        s.maxmemory = Some(100 * 1024 * 1024);
        let e = st.events(&c, &s, Timestamp(0));
        assert_eq!(e[0].get("fields.memory_percent"), Some(&Value::Float(50.0)));
        assert_eq!(e[0].get("fields.memory_mb"), Some(&Value::Float(50.0)));
        assert_eq!(
            e[0].get("fields.memory_limit"),
            Some(&Value::from("maxmemory"))
        );
        assert_eq!(e[0].get("fields.maxmemory_mb"), Some(&Value::Float(100.0)));
        assert_eq!(e[1].get("fields.hit_ratio"), Some(&Value::Float(0.9)));

        s.info = Info::parse(&text(60 * 1024 * 1024, 25, 100, 30, "a"));
        let e = st.events(&c, &s, Timestamp(10_000));
        assert_eq!(e[1].get("fields.expired_keys_delta"), Some(&Value::Int(15)));
        assert_eq!(
            e[1].get("fields.keyspace_hits_delta"),
            Some(&Value::Int(10))
        );
        assert_eq!(
            e[1].get("fields.hit_ratio_interval"),
            Some(&Value::Float(0.333))
        );
        assert_eq!(e[1].get("fields.interval_ms"), Some(&Value::Int(10_000)));

        // A restart (new run_id) gives no deltas rather than negative ones.
        s.info = Info::parse(&text(1024, 0, 0, 0, "b"));
        let e = st.events(&c, &s, Timestamp(20_000));
        assert!(e[1].get("fields.expired_keys_delta").is_none());
        assert!(e[1].get("fields.hit_ratio").is_none());
    }

    #[test]
    fn no_limit_known_means_no_percent() {
        let c = collector("redis: {url: 'redis://127.0.0.1'}\n");
        let mut s = sample("used_memory:1048576\r\n");
        s.maxmemory = None;
        let e = CollectorState::default().events(&c, &s, Timestamp(0));
        assert!(e[0].get("fields.memory_percent").is_none());
        assert_eq!(e[0].get("fields.memory_limit"), Some(&Value::from("none")));
        assert_eq!(e[0].get("fields.memory_mb"), Some(&Value::Float(1.0)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), s(60), 1), s(10));
        assert_eq!(backoff(s(10), s(60), 2), s(20));
        assert_eq!(backoff(s(10), s(60), 3), s(40));
        assert_eq!(backoff(s(10), s(60), 4), s(60));
        assert_eq!(backoff(s(10), s(60), 400), s(60));
        assert_eq!(backoff(s(10), s(5), 3), s(10));
    }

    #[test]
    fn error_events_count() {
        let c = collector("redis: {url: 'redis://:pw@127.0.0.1:1'}\n");
        let mut st = CollectorState::default();
        st.error_event(
            &c,
            "connect",
            "refused",
            Duration::from_secs(10),
            Timestamp(0),
        );
        let e = st.error_event(
            &c,
            "connect",
            "refused",
            Duration::from_secs(20),
            Timestamp(1),
        );
        assert_eq!(e.name(), Some("redis.collector_error"));
        assert_eq!(e.get("fields.consecutive_failures"), Some(&Value::Int(2)));
        assert_eq!(e.get("fields.retry_in_ms"), Some(&Value::Int(20_000)));
        assert_eq!(
            e.get("fields.target"),
            Some(&Value::from("redis://:***@127.0.0.1:1"))
        );
        let _ = st.events(&c, &sample(""), Timestamp(2));
        assert_eq!(st.failures(), 0);
    }
}
