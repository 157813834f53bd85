//! Pattern parsers for the log lines seed 000 greps for (python `logging`
//! format, `2025-11-21 10:00:00,123 - logger - LEVEL - message`), written
//! as a user would in YAML: proves typed extraction (int, duration in ms)
//! and the python timestamp.

use secmon_core::{SourceId, Timestamp, Value};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig, ParseError, PatternConfig};

const PARSERS: &str = r#"
- name: cache_value_rejected
  # grep "Error setting cache key.*exceeds maximum"
  pattern: '^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<service>\S+) - (?P<level>[A-Z]+) - Error setting cache key (?P<key>\S+): value size (?P<size>\d+) exceeds maximum (?P<max>\d+)'
  event: cache.value_rejected
  types: {size: int, max: int}
- name: cache_ttl_invalid
  # grep "TTL must be at least\|TTL.*exceeds maximum"
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*(?:TTL must be at least (?P<min_ttl>\d+)|TTL (?P<ttl>-?\d+).*exceeds maximum (?P<max_ttl>\d+)).*)'
  event: cache.ttl_invalid
  types: {min_ttl: int, ttl: int, max_ttl: int}
- name: api_key_hmac_failed
  # grep "verify_api_key.*failed\|HMAC verification"
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - .*(?:verify_api_key.*failed|HMAC verification)(?:.* for key (?P<key_prefix>\w+))?'
  event: auth.api_key_hmac_failed
  fields: {fields.check: hmac}
- name: redis_scan
  # logger.debug(f"SCAN duration: {duration_ms}ms")
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - SCAN duration: (?P<duration>\S+)'
  event: redis.scan
  types: {duration: duration}
- name: login_timing
  # grep "login.*duration_ms"
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - .*login(?:.*?user_id=(?P<user_id>\S+))?.*?duration_ms[=:] ?(?P<duration_ms>[\d.]+)'
  event: auth.login_timing
  types: {duration_ms: float}
"#;

fn parser() -> LineParser {
    let patterns: Vec<PatternConfig> = serde_saphyr::from_str(PARSERS).expect("yaml");
    assert!(secmon_parse::validate(&ParseConfig::default(), &patterns).is_empty());
    LineParser::new(&ParseConfig::default(), &patterns, None, Format::Auto).expect("valid")
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("time")
}

fn parse(p: &LineParser, line: &str) -> Result<secmon_parse::Parsed, ParseError> {
    let mut ctx = LineCtx::new(SourceId(1), ts("2025-11-22T00:00:00Z"));
    p.parse_line(line.as_bytes(), &mut ctx)
}

#[test]
fn cache_rejection_typed() {
    let p = parser();
    let r = parse(
        &p,
        "2025-11-21 10:00:00,123 - cache - ERROR - Error setting cache key user:42: value size 12582912 exceeds maximum 10485760",
    )
    .expect("ok");
    let e = r.event;
    assert_eq!(r.matched, Some(0));
    assert_eq!(e.time, ts("2025-11-21T10:00:00.123Z"));
    assert_eq!(e.name(), Some("cache.value_rejected"));
    assert_eq!(e.get("service"), Some(&Value::from("cache")));
    assert_eq!(e.get("level"), Some(&Value::from("ERROR")));
    assert_eq!(e.get("fields.key"), Some(&Value::from("user:42")));
    assert_eq!(e.get("fields.size"), Some(&Value::Int(12_582_912)));
    assert_eq!(e.get("fields.max"), Some(&Value::Int(10_485_760)));
}

#[test]
fn ttl_errors_both_shapes() {
    let p = parser();
    let e = parse(&p, "2025-11-21 10:00:01,000 - cache - ERROR - Invalid TTL: TTL must be at least 1 second(s), got 0")
        .expect("ok")
        .event;
    assert_eq!(e.name(), Some("cache.ttl_invalid"));
    assert_eq!(e.get("fields.min_ttl"), Some(&Value::Int(1)));
    assert_eq!(
        e.get("fields.ttl"),
        None,
        "unmatched optional captures are omitted"
    );
    let e = parse(
        &p,
        "2025-11-21 10:00:02,500 - cache - ERROR - TTL 90000 exceeds maximum 86400 seconds",
    )
    .expect("ok")
    .event;
    assert_eq!(e.get("fields.ttl"), Some(&Value::Int(90_000)));
    assert_eq!(e.get("fields.max_ttl"), Some(&Value::Int(86_400)));
    assert_eq!(e.time, ts("2025-11-21T10:00:02.500Z"));
}

#[test]
fn hmac_failure() {
    let p = parser();
    let e = parse(
        &p,
        "2025-11-21 10:00:03,001 - auth - WARNING - verify_api_key failed: HMAC verification failed for key sk_ab12",
    )
    .expect("ok")
    .event;
    assert_eq!(e.name(), Some("auth.api_key_hmac_failed"));
    assert_eq!(e.get("fields.key_prefix"), Some(&Value::from("sk_ab12")));
    assert_eq!(e.get("fields.check"), Some(&Value::from("hmac")));
    assert_eq!(e.get("level"), Some(&Value::from("WARNING")));
}

#[test]
fn scan_duration_in_ms() {
    let p = parser();
    let e = parse(
        &p,
        "2025-11-21 10:00:04,250 - cache_redis_client - DEBUG - SCAN duration: 12.5ms",
    )
    .expect("ok")
    .event;
    assert_eq!(e.name(), Some("redis.scan"));
    assert_eq!(e.get("fields.duration"), Some(&Value::Float(12.5)));
    let e = parse(
        &p,
        "2025-11-21 10:00:04,250 - cache_redis_client - DEBUG - SCAN duration: 1.5s",
    )
    .expect("ok")
    .event;
    assert_eq!(e.get("fields.duration"), Some(&Value::Float(1500.0)));
    match parse(
        &p,
        "2025-11-21 10:00:04,250 - cache_redis_client - DEBUG - SCAN duration: slow",
    ) {
        Err(ParseError::BadField {
            field, expected, ..
        }) => {
            assert_eq!(field, "fields.duration");
            assert!(expected.starts_with("duration"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn login_duration() {
    let p = parser();
    let e = parse(
        &p,
        "2025-11-21 10:00:05,000 - auth - INFO - login succeeded user_id=u-17 duration_ms=123",
    )
    .expect("ok")
    .event;
    assert_eq!(e.name(), Some("auth.login_timing"));
    assert_eq!(e.get("fields.duration_ms"), Some(&Value::Float(123.0)));
    assert_eq!(e.get("fields.user_id"), Some(&Value::from("u-17")));
}

#[test]
fn other_python_lines_match_nothing() {
    let p = parser();
    assert_eq!(
        parse(&p, "2025-11-21 10:00:06,000 - cache - INFO - cache warmed").map(|r| r.matched),
        Err(ParseError::NoMatch)
    );
}
