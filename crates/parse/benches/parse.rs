//! Parse throughput for the three line shapes secmon sees most: a seed
//! JSON event, an sshd syslog line (Failed password, builtin set), and a
//! python logging line matched by a user pattern (cache rejection).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secmon_core::{SourceId, Timestamp};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig, PatternConfig};

const SEED_JSON: &str = r#"{"timestamp":"2024-01-15T10:30:00.000Z","level":"WARN","event":"auth.login_failed","service":"management-server","fields":{"email":"user@example.com","ip":"192.168.1.100","reason":"invalid_password","attempt":3},"trace_id":"abc123"}"#;
const SSHD: &str = "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2";
const CACHE: &str = "2025-11-21 10:00:00,123 - cache - ERROR - Error setting cache key user:42: value size 12582912 exceeds maximum 10485760";

const PATTERNS: &str = r#"
- name: cache_value_rejected
  pattern: '^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<service>\S+) - (?P<level>[A-Z]+) - Error setting cache key (?P<key>\S+): value size (?P<size>\d+) exceeds maximum (?P<max>\d+)'
  event: cache.value_rejected
  types: {size: int, max: int}
- name: cache_ttl_invalid
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*(?:TTL must be at least (?P<min_ttl>\d+)|TTL (?P<ttl>-?\d+).*exceeds maximum (?P<max_ttl>\d+)).*)'
  event: cache.ttl_invalid
  types: {min_ttl: int, ttl: int, max_ttl: int}
- name: redis_scan
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - SCAN duration: (?P<duration>\S+)'
  event: redis.scan
  types: {duration: duration}
"#;

fn bench(c: &mut Criterion) {
    let pats: Vec<PatternConfig> = serde_saphyr::from_str(PATTERNS).expect("yaml");
    let p = LineParser::new(&ParseConfig::default(), &pats, None, Format::Auto).expect("valid");
    let mut ctx = LineCtx::new(
        SourceId(0),
        Timestamp::parse_rfc3339("2025-12-11T00:00:00Z").expect("t"),
    );
    let mut g = c.benchmark_group("parse_line");
    for (name, line) in [
        ("seed_json", SEED_JSON),
        ("sshd_failed_password", SSHD),
        ("python_cache_rejected", CACHE),
    ] {
        assert!(p.parse_line(line.as_bytes(), &mut ctx).is_ok(), "{name}");
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                p.parse_line(black_box(line.as_bytes()), &mut ctx)
                    .map(|r| r.event.fields.len())
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("syslog_header");
    g.throughput(Throughput::Elements(1));
    let pnone = LineParser::new(
        &ParseConfig {
            builtin: vec![],
            ..Default::default()
        },
        &[],
        None,
        Format::Syslog,
    )
    .expect("valid");
    g.bench_function("sshd_header_only", |b| {
        b.iter(|| {
            pnone
                .parse_line(black_box(SSHD.as_bytes()), &mut ctx)
                .map(|r| r.event.fields.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
