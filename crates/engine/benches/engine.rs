//! Engine throughput on seed-like traffic: 1 M events (auth.login_failed from
//! 100k distinct IPs and 50k emails, logins, cache rejections, SCAN timings,
//! admin actions, rate limits, noise) through ~20 rules resembling
//! examples/seeds.yaml (threshold by ip and by email, distinct, single,
//! metric rules). Also prints the resident memory of 1 M live groups.
//!
//! `cargo bench -p secmon-engine --bench engine`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use secmon_core::{Event, Fields, Timestamp, Value};
use secmon_engine::{Engine, EngineConfig, MetricConfig, RuleConfig, Ruleset};

const RULES: &str = r#"
- {id: brute.ip, severity: high, match: {event: auth.login_failed}, group_by: [fields.ip], detector: {type: threshold, count: 10, window: 5m}}
- {id: brute.user, severity: high, match: {event: auth.login_failed}, group_by: [fields.email], detector: {type: threshold, count: 5, window: 15m}}
- {id: spray, severity: high, match: event = auth.login_failed, group_by: [fields.ip], detector: {type: distinct, field: fields.email, count: 5, window: 10m}}
- {id: vault, severity: high, match: {event: vault.unlock_failed}, group_by: [fields.user_id], detector: {type: threshold, count: 5, window: 15m}}
- {id: admin.brute, severity: critical, match: {event: admin.auth_failed}, group_by: [fields.ip], detector: {type: threshold, count: 3, window: 5m}}
- {id: burst, severity: high, match: {event: ratelimit.burst}, detector: {type: single}}
- {id: rl.hits, severity: medium, match: {event: ratelimit.exceeded}, group_by: [fields.identifier], detector: {type: threshold, count: 50, window: 1h}}
- {id: denied, severity: medium, match: {event: authz.access_denied}, group_by: [fields.user_id], detector: {type: threshold, count: 20, window: 1h}}
- {id: admin.action, severity: medium, match: {event: authz.admin_action}, detector: {type: single}}
- {id: perm, severity: medium, match: {event: authz.permission_changed}, detector: {type: single}}
- {id: key.rotated, severity: low, match: {event: crypto.key_rotated}, detector: {type: single}}
- {id: timeouts, severity: low, match: 'event = auth.session_invalidated and fields.reason = timeout', detector: {type: single}}
- {id: cache.reject, severity: high, match: {event: cache.value_rejected}, detector: {type: threshold, more_than: 10, window: 5m}}
- {id: cache.reject.1m, severity: high, match: {event: cache.value_rejected}, detector: {type: threshold, more_than: 2, window: 1m}}
- {id: ttl, severity: medium, match: {event: cache.ttl_invalid}, detector: {type: threshold, more_than: 5, window: 10m}}
- {id: hmac, severity: high, match: {event: auth.api_key_hmac_failed}, detector: {type: threshold, more_than: 20, window: 1h}}
- {id: scan.slow, severity: medium, detector: {type: metric, expr: 'p95(redis.scan.duration.ms[5m]) > 100', for: 15m}}
- {id: reject.rate, severity: high, detector: {type: metric, expr: 'rate(cache.value.rejection.count[5m]) > 2', for: 5m}}
- {id: mem, severity: high, detector: {type: metric, expr: 'redis.memory.mb > 100 or redis.memory.percent > 80'}}
- {id: internal.ip, severity: low, match: 'event = auth.login_succeeded and fields.ip in 10.0.0.0/8 and fields.user_agent ~ "curl"', detector: {type: single}}
"#;

const METRICS: &str = r#"
- {name: cache.value.rejection.count, type: counter, match: {event: cache.value_rejected}}
- {name: redis.scan.duration.ms, type: histogram, match: {event: redis.scan}, field: fields.duration_ms}
- {name: redis.memory.mb, type: gauge, match: {event: redis.memory_sample}, field: fields.mb}
- {name: redis.memory.percent, type: gauge, match: {event: redis.memory_sample}, field: fields.percent}
- {name: auth.login.failed.count, type: counter, match: {event: auth.login_failed}}
"#;

fn ruleset() -> Arc<Ruleset> {
    let r: Vec<RuleConfig> = serde_saphyr::from_str(RULES).expect("rules");
    let m: Vec<MetricConfig> = serde_saphyr::from_str(METRICS).expect("metrics");
    Arc::new(Ruleset::build(&r, &m).expect("valid"))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event(t: i64, name: &str, fields: &[(&str, Value)]) -> Event {
    let mut f = Fields::with_capacity(fields.len() + 3);
    f.push("event".into(), Value::from(name));
    f.push("level".into(), Value::from("WARN"));
    f.push("service".into(), Value::from("lexikon-api"));
    for (k, v) in fields {
        f.push((*k).into(), v.clone());
    }
    Event::new(Timestamp(t), f)
}

fn ip_of(i: u64) -> Value {
    Value::from(
        format!(
            "{}.{}.{}.{}",
            10 + i % 200,
            (i >> 8) % 256,
            (i >> 16) % 256,
            i % 251
        )
        .as_str(),
    )
}

/// 1 M seed-like events over about an hour of event time (~3.6 ms apart).
fn events(n: usize) -> Vec<Event> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = 1_705_312_200_000i64;
    let mut t = t0;
    (0..n)
        .map(|_| {
            t += r.below(8) as i64;
            let k = r.below(100);
            match k {
                0..60 => event(
                    t,
                    "auth.login_failed",
                    &[
                        ("fields.ip", ip_of(r.below(100_000))),
                        (
                            "fields.email",
                            Value::from(format!("user{}@example.com", r.below(50_000)).as_str()),
                        ),
                        ("fields.reason", Value::from("invalid_password")),
                    ],
                ),
                60..78 => event(
                    t,
                    "auth.login_succeeded",
                    &[
                        ("fields.ip", ip_of(r.below(100_000))),
                        (
                            "fields.user_id",
                            Value::from(format!("u{}", r.below(50_000)).as_str()),
                        ),
                        ("fields.user_agent", Value::from("Mozilla/5.0")),
                    ],
                ),
                78..83 => event(
                    t,
                    "cache.value_rejected",
                    &[("fields.key", Value::from("export:123"))],
                ),
                83..88 => event(
                    t,
                    "redis.scan",
                    &[("fields.duration_ms", Value::Int(r.below(150) as i64))],
                ),
                88..91 => event(
                    t,
                    "ratelimit.exceeded",
                    &[
                        ("fields.identifier", ip_of(r.below(1000))),
                        ("fields.endpoint", Value::from("/api/login")),
                    ],
                ),
                91..93 => event(
                    t,
                    "vault.unlock_failed",
                    &[(
                        "fields.user_id",
                        Value::from(format!("u{}", r.below(5000)).as_str()),
                    )],
                ),
                93 => event(
                    t,
                    "authz.admin_action",
                    &[("fields.admin_id", Value::from("a1"))],
                ),
                94 => event(
                    t,
                    "redis.memory_sample",
                    &[
                        ("fields.mb", Value::Float(50.0)),
                        ("fields.percent", Value::Float(50.0)),
                    ],
                ),
                95 => event(
                    t,
                    "auth.session_invalidated",
                    &[("fields.reason", Value::from("logout"))],
                ),
                _ => event(
                    t,
                    "http.request",
                    &[("fields.path", Value::from("/health"))],
                ),
            }
        })
        .collect()
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Resident memory of one threshold rule holding 1 M live groups.
fn memory_report() {
    let r: Vec<RuleConfig> = serde_saphyr::from_str(
        "- {id: brute.ip, severity: high, match: {event: auth.login_failed}, group_by: [fields.ip], detector: {type: threshold, count: 10, window: 1h}}\n",
    )
    .expect("rule");
    let rs = Arc::new(Ruleset::build(&r, &[]).expect("valid"));
    let mut e = Engine::new(rs, EngineConfig::default());
    let mut out = Vec::new();
    let before = rss_bytes().unwrap_or(0);
    for i in 0..1_000_000u64 {
        let ip = format!(
            "{}.{}.{}.{}",
            1 + (i >> 24),
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
        e.observe(
            event(
                i as i64,
                "auth.login_failed",
                &[("fields.ip", Value::from(ip.as_str()))],
            ),
            &mut out,
        );
    }
    let after = rss_bytes().unwrap_or(0);
    let live = e.stats().rules[0].groups_live;
    eprintln!(
        "memory: {live} live groups, RSS +{:.1} MB = {:.0} bytes/group (entry size {} bytes)",
        (after.saturating_sub(before)) as f64 / 1e6,
        after.saturating_sub(before) as f64 / live.max(1) as f64,
        Engine::threshold_group_bytes()
    );
    black_box(&e);
}

/// User + system CPU seconds of this process (from /proc, 10 ms resolution).
fn cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// One pass timed by CPU time as well as wall time: on a shared machine the
/// wall clock also counts time the scheduler gave to other processes.
fn cpu_report(rs: &Arc<Ruleset>, evs: &[Event]) {
    let (c0, w0) = (cpu_secs(), std::time::Instant::now());
    let mut eng = Engine::new(rs.clone(), EngineConfig::default());
    let mut out = Vec::with_capacity(1024);
    let mut verdicts = 0usize;
    for e in evs {
        eng.observe(e.clone(), &mut out);
        verdicts += out.len();
        out.clear();
    }
    eng.flush(&mut out);
    verdicts += out.len();
    let wall = w0.elapsed().as_secs_f64();
    let cpu = match (c0, cpu_secs()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let s = eng.stats();
    let groups: u64 = s.rules.iter().map(|r| r.groups_live).sum();
    eprintln!(
        "seed ruleset: {} events, {verdicts} verdicts, {groups} live groups; wall {wall:.2}s = {:.0} ev/s; cpu {cpu:.2}s = {:.0} ev/s (clone included)",
        evs.len(),
        evs.len() as f64 / wall,
        evs.len() as f64 / cpu,
    );
    black_box(eng);
}

fn main() {
    memory_report();
    let rs = ruleset();
    const N: usize = 1_000_000;
    let evs = events(N);
    cpu_report(&rs, &evs);
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(N as u64));
    // Baseline: the per-event clone the engine bench below also pays.
    g.bench_function("clone_only_1M", |b| {
        b.iter(|| {
            for e in &evs {
                black_box(e.clone());
            }
        })
    });
    g.bench_function("seed_ruleset_1M", |b| {
        b.iter(|| {
            let mut eng = Engine::new(rs.clone(), EngineConfig::default());
            let mut out = Vec::with_capacity(1024);
            let mut fires = 0usize;
            for e in &evs {
                eng.observe(e.clone(), &mut out);
                fires += out.len();
                out.clear();
            }
            eng.flush(&mut out);
            black_box(fires + out.len())
        })
    });
    g.finish();
    c.final_summary();
}
