//! Parses one of the benchmark lines N times, for instruction counting:
//! `perf stat -e instructions target/release/examples/icount sshd 1000000`.
//! Cases: json, sshd, cache, header.

use std::hint::black_box;

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

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "sshd".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let pats: Vec<PatternConfig> = serde_saphyr::from_str(PATTERNS).expect("yaml");
    let p = LineParser::new(&ParseConfig::default(), &pats, None, Format::Auto).expect("valid");
    let line = match case.as_str() {
        "json" => SEED_JSON,
        "cache" => CACHE,
        "none" => "",
        _ => SSHD,
    };
    let mut ctx = LineCtx::new(
        SourceId(0),
        Timestamp::parse_rfc3339("2025-12-11T00:00:00Z").expect("t"),
    );
    let mut total = 0usize;
    for _ in 0..n {
        if let Ok(r) = p.parse_line(black_box(line.as_bytes()), &mut ctx) {
            total += r.event.fields.len();
        }
    }
    println!("{total}");
}
