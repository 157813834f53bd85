//! End-to-end in-process benchmark: 1,000,000 seed-format JSON events with
//! 100,000 distinct IPs, parsed and evaluated through examples/seeds.yaml
//! (every seed rule) on one thread. The `secmon replay` binary parallelizes
//! parsing on top of this; bench/run.sh measures the binary itself.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secmon::config;
use secmon::pipeline::{self, Detector};
use secmon::summary::Summary;
use secmon_core::{SourceId, Timestamp};
use secmon_parse::LineCtx;

const EVENTS: usize = 1_000_000;
const IPS: u64 = 100_000;

/// splitmix64: deterministic, dependency-free.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn generate() -> Vec<String> {
    let mut s = 7u64;
    let start = Timestamp::parse_rfc3339("2025-11-21T00:00:00Z")
        .map(|t| t.as_millis())
        .unwrap_or(0);
    (0..EVENTS)
        .map(|i| {
            let r = next(&mut s);
            let ip = r % IPS;
            let ip = format!("10.{}.{}.{}", ip >> 16, (ip >> 8) & 255, ip & 255);
            let ts = Timestamp::from_millis(start + i as i64 * 20).to_rfc3339();
            match r % 10 {
                0..=3 => format!(
                    r#"{{"timestamp":"{ts}","level":"WARN","event":"auth.login_failed","service":"management-server","fields":{{"email":"user{}@example.com","ip":"{ip}","reason":"invalid_password","attempt":1}},"trace_id":"t{i}"}}"#,
                    r % 50_000
                ),
                4..=6 => format!(
                    r#"{{"timestamp":"{ts}","level":"INFO","event":"auth.login_succeeded","service":"management-server","fields":{{"user_id":"u{}","ip":"{ip}","user_agent":"Mozilla/5.0"}},"trace_id":"t{i}"}}"#,
                    r % 50_000
                ),
                7 => format!(
                    r#"{{"timestamp":"{ts}","level":"WARN","event":"ratelimit.exceeded","service":"api","fields":{{"identifier":"{ip}","endpoint":"/api/search","count":101,"limit":100,"retry_after":30}},"trace_id":"t{i}"}}"#
                ),
                8 => format!(
                    r#"{{"timestamp":"{ts}","level":"WARN","event":"authz.access_denied","service":"api","fields":{{"user_id":"u{}","resource":"/v/1","action":"read","reason":"not_owner"}},"trace_id":"t{i}"}}"#,
                    r % 50_000
                ),
                _ => format!(
                    r#"{{"timestamp":"{ts}","level":"INFO","event":"container.started","service":"agent","fields":{{"user_id":"u{}","container_id":"c{i}","wake_reason":"request"}},"trace_id":"t{i}"}}"#,
                    r % 50_000
                ),
            }
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let loaded = config::load(Some(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/seeds.yaml"
    ))))
    .unwrap_or_else(|e| panic!("{e}"));
    let runtime = config::build(&loaded).unwrap_or_else(|e| panic!("{e}"));
    let lines = generate();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("seed_json_1M_events_100k_ips_one_thread", |b| {
        b.iter(|| {
            let mut detector = Detector::new(runtime.ruleset.clone(), runtime.engine);
            let mut summary = Summary::new(5);
            let mut ctx = LineCtx::new(SourceId(0), Timestamp::from_millis(0));
            let mut events = Vec::with_capacity(1);
            let mut alerts = 0u64;
            let mut sink = |_: &secmon_engine::Rule, _: &secmon_engine::Fire| alerts += 1;
            for (i, l) in lines.iter().enumerate() {
                ctx.line_no = i as u64 + 1;
                pipeline::parse_line(
                    &runtime.default_parser,
                    &mut ctx,
                    l.as_bytes(),
                    "bench",
                    &mut events,
                    &mut summary,
                );
                for ev in events.drain(..) {
                    detector.observe(ev, &mut sink);
                }
            }
            detector.flush(&mut sink);
            alerts
        })
    });
    g.finish();
    eprintln!("input: {EVENTS} events, {} MB", bytes / 1_000_000);
}

criterion_group!(benches, replay);
criterion_main!(benches);
