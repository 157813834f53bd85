//! Shared by the fuzz targets: parsers built once, a line run through them
//! with a context whose received time varies with the input.

use std::sync::OnceLock;

use secmon_core::{SourceId, Timestamp};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig, PatternConfig};

/// The seed 000 patterns (python logging lines) plus the builtin sshd set.
const SEED_PATTERNS: &str = r#"
- name: cache_value_rejected
  pattern: '^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<service>\S+) - (?P<level>[A-Z]+) - Error setting cache key (?P<key>\S+): value size (?P<size>\d+) exceeds maximum (?P<max>\d+)'
  event: cache.value_rejected
  types: {size: int, max: int}
- name: cache_ttl_invalid
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*(?:TTL must be at least (?P<min_ttl>\d+)|TTL (?P<ttl>-?\d+).*exceeds maximum (?P<max_ttl>\d+)).*)'
  event: cache.ttl_invalid
  types: {min_ttl: int, ttl: int, max_ttl: int}
- name: api_key_hmac_failed
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - .*(?:verify_api_key.*failed|HMAC verification)(?:.* for key (?P<key_prefix>\w+))?'
  event: auth.api_key_hmac_failed
- name: redis_scan
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - SCAN duration: (?P<duration>\S+)'
  event: redis.scan
  types: {duration: duration}
- name: login_timing
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - .*login(?:.*?user_id=(?P<user_id>\S+))?.*?duration_ms[=:] ?(?P<duration_ms>[\d.]+)'
  event: auth.login_timing
  types: {duration_ms: float, user_id: bool}
- name: unix_ts
  pattern: '^(?P<t>\d+(?:\.\d+)?) (?P<msg>.*)'
  timestamp: {field: t, format: unix}
- name: strftime_ts
  pattern: '^\[(?P<t>[^\]]+)\] (?P<msg>.*)'
  timestamp: {field: t, format: '%d/%b/%Y:%H:%M:%S %z'}
"#;

pub fn parser(format: Format) -> &'static LineParser {
    static P: OnceLock<Vec<(Format, LineParser)>> = OnceLock::new();
    let all = P.get_or_init(|| {
        let pats: Vec<PatternConfig> = serde_saphyr::from_str(SEED_PATTERNS).expect("yaml");
        let mut cfg = ParseConfig::default();
        cfg.keep_raw = true;
        [Format::Auto, Format::Json, Format::Syslog, Format::Text]
            .into_iter()
            .map(|f| (f, LineParser::new(&cfg, &pats, None, f).expect("valid")))
            .collect()
    });
    &all.iter().find(|(f, _)| *f == format).expect("built").1
}

/// Runs `data` as a few lines (split on `\n`) through `p`, with a received
/// time taken from the first bytes so year inference is exercised too.
pub fn run(p: &LineParser, data: &[u8]) {
    let mut t = [0u8; 8];
    let n = data.len().min(8);
    t[..n].copy_from_slice(&data[..n]);
    let received = Timestamp(i64::from_le_bytes(t) >> 16);
    let mut ctx = LineCtx::new(SourceId(0), received);
    for line in data.split(|&b| b == b'\n').take(16) {
        ctx.line_no += 1;
        if let Ok(parsed) = p.parse_line(line, &mut ctx) {
            // Exercise the output path as the binary would.
            let _ = parsed.event.to_json();
        }
    }
}
