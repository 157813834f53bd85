//! The configuration of probes (`probes:`) and of the Redis collector
//! (`redis:`) as written in YAML, and `validate()`, which turns it into the
//! runtime [`Probe`] and [`RedisCollector`] or reports every problem at once,
//! each naming its field (`probes[2].assert[0]: at position 7: use == …`) so
//! the binary can prefix file and line.
//!
//! Serde structs deny unknown fields. One flat struct serves every probe type
//! (rather than an internally tagged enum): serde's tagged enums buffer their
//! input and lose the YAML parser's positions, and a flat struct lets
//! `validate` say "`address` is not used by http probes" instead of a generic
//! "unknown field".
//!
//! Validation is pure: no connection is opened, no name is resolved.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use secmon_core::Dur;

use crate::assertion::{Assertion, JsonPath};
use crate::redact::{Secret, password_of, redact_url, scrub};

/// One configuration problem: the field path (relative to the item that was
/// validated) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error under `prefix` (`probes[0]` + `url` → `probes[0].url`).
    pub fn under(self, prefix: &str) -> Self {
        FieldError {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}

fn yes() -> bool {
    true
}

/// Both sections together, for callers that keep them side by side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    #[serde(default)]
    pub redis: Option<RedisCollectorConfig>,
}

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// An HTTP(S) request: status and JSON body assertions.
    Http,
    /// A TCP connect.
    Tcp,
    /// Connect and `PING` (expects `PONG`).
    Redis,
    /// Connect and run a query (default `SELECT 1`), no TLS.
    Postgres,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Redis => "redis",
            ProbeKind::Postgres => "postgres",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default probe interval: 30s.
pub const DEFAULT_INTERVAL: Dur = Dur::from_secs(30);
/// Default probe timeout: 5s.
pub const DEFAULT_TIMEOUT: Dur = Dur::from_secs(5);
/// Default cap on the HTTP body read for assertions: 64 KiB.
pub const DEFAULT_MAX_BODY: u64 = 64 * 1024;
const MAX_MAX_BODY: u64 = 16 * 1024 * 1024;

fn default_interval() -> Dur {
    DEFAULT_INTERVAL
}
fn default_timeout() -> Dur {
    DEFAULT_TIMEOUT
}

/// One entry of `probes:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique among probes; `[A-Za-z0-9_.-]+`. Becomes `fields.probe` and the
    /// group key of the recommended rules.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ProbeKind,
    /// The event's top-level `service` (seed 003's `management-server`).
    /// Default: the probe's name.
    #[serde(default)]
    pub service: Option<String>,
    /// Time between the starts of two runs. Default 30s.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Whole-run deadline (connect, request, body). Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// http, redis, postgres: what to connect to. May carry credentials;
    /// they never appear in events or logs.
    #[serde(default)]
    pub url: Option<Secret>,
    /// tcp: `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// http: request method. Default `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// http: accepted status codes, one or a list. Default: any 2xx.
    #[serde(default, deserialize_with = "one_or_many")]
    pub expect_status: Vec<u16>,
    /// http: assertions on the JSON body, all must hold
    /// (`status == "ok"`, `containers >= 1`).
    #[serde(default, rename = "assert")]
    pub assertions: Vec<String>,
    /// http: body values copied into the event, `field_name: json.path`
    /// (`redis_connected: redis.connected` → `fields.redis_connected`).
    /// Informational: they never fail the probe.
    #[serde(default)]
    pub extract: BTreeMap<String, String>,
    /// http: request headers (values are treated as secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// http: most body bytes read. Default 64 KiB, at most 16 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// postgres: the query run after connecting. Default `SELECT 1`.
    #[serde(default)]
    pub query: Option<String>,
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `expect_status: 200` or `expect_status: [200, 204]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u16>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a status code or a list of status codes")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<u16>, E> {
            u16::try_from(v)
                .map(|c| vec![c])
                .map_err(|_| E::custom(format!("{v} is not an HTTP status")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<u16>, E> {
            u16::try_from(v)
                .map(|c| vec![c])
                .map_err(|_| E::custom(format!("{v} is not an HTTP status")))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<u16>, A::Error> {
            let mut out = Vec::new();
            while let Some(c) = s.next_element::<u16>()? {
                out.push(c);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// The runtime form of a probe, built by [`ProbeConfig::validate`].
#[derive(Clone)]
pub struct Probe {
    pub name: String,
    pub kind: ProbeKind,
    pub service: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// The target with credentials removed: safe for events and logs.
    pub target: String,
    pub(crate) spec: ProbeSpec,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) enum ProbeSpec {
    Http(Box<HttpSpec>),
    Tcp {
        address: String,
    },
    Redis {
        url: Secret,
    },
    Postgres {
        config: Box<tokio_postgres::Config>,
        password: Option<String>,
        query: String,
    },
}

#[derive(Clone)]
pub(crate) struct HttpSpec {
    pub url: url::Url,
    /// The URL's password, to scrub from error texts.
    pub password: Option<String>,
    pub method: reqwest::Method,
    pub expect_status: Vec<u16>,
    pub assertions: Vec<Assertion>,
    pub extract: Vec<(String, JsonPath)>,
    pub headers: reqwest::header::HeaderMap,
    pub max_body: u64,
}

/// Event field names a probe sets itself; `extract` may not reuse them.
pub(crate) const PROBE_FIELDS: &[&str] = &[
    "probe",
    "kind",
    "target",
    "ok",
    "up",
    "latency_ms",
    "status_code",
    "error",
    "category",
    "failed_assertion",
    "failed_assertions",
    "consecutive_failures",
    "changed",
    "down_since",
    "downtime_ms",
    "failures_before",
];

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn positive(errs: &mut Vec<FieldError>, field: &str, d: Dur) -> Duration {
    if d.as_millis() <= 0 {
        errs.push(FieldError::new(field, "must be positive"));
        Duration::from_millis(1)
    } else {
        Duration::from_millis(d.as_millis().unsigned_abs())
    }
}

/// What probes and the collector check alike: a usable name, a non-empty
/// service if given, positive interval and timeout.
fn check_common(
    errs: &mut Vec<FieldError>,
    (field, name): (&'static str, &str),
    service: Option<&str>,
    interval: Dur,
    timeout: Dur,
) -> (Duration, Duration) {
    if !valid_name(name) {
        errs.push(FieldError::new(
            field,
            "must be 1–128 characters of letters, digits, '_', '.', '-'",
        ));
    }
    if service.is_some_and(|s| s.trim().is_empty()) {
        errs.push(FieldError::new("service", "must not be empty"));
    }
    (
        positive(errs, "interval", interval),
        positive(errs, "timeout", timeout),
    )
}

impl ProbeConfig {
    /// Every problem of this probe, fields relative to the probe.
    pub fn validate(&self) -> Result<Probe, Vec<FieldError>> {
        let mut errs = Vec::new();
        let (interval, timeout) = check_common(
            &mut errs,
            ("name", &self.name),
            self.service.as_deref(),
            self.interval,
            self.timeout,
        );

        let kind = self.kind;
        let mut unused = |set: bool, field: &str| {
            if set {
                errs.push(FieldError::new(
                    field,
                    format!("is not used by {kind} probes"),
                ));
            }
        };
        let http = kind == ProbeKind::Http;
        unused(!http && self.method.is_some(), "method");
        unused(!http && !self.expect_status.is_empty(), "expect_status");
        unused(!http && !self.assertions.is_empty(), "assert");
        unused(!http && !self.extract.is_empty(), "extract");
        unused(!http && !self.headers.is_empty(), "headers");
        unused(!http && self.max_body_bytes.is_some(), "max_body_bytes");
        unused(kind != ProbeKind::Postgres && self.query.is_some(), "query");
        unused(kind != ProbeKind::Tcp && self.address.is_some(), "address");
        unused(kind == ProbeKind::Tcp && self.url.is_some(), "url");

        let spec = match kind {
            ProbeKind::Http => self.http_spec(&mut errs),
            ProbeKind::Tcp => match &self.address {
                None => {
                    errs.push(FieldError::new("address", "required for tcp probes"));
                    None
                }
                Some(a) => match check_address(a) {
                    Ok(()) => Some((ProbeSpec::Tcp { address: a.clone() }, format!("tcp://{a}"))),
                    Err(m) => {
                        errs.push(FieldError::new("address", m));
                        None
                    }
                },
            },
            ProbeKind::Redis => match &self.url {
                None => {
                    errs.push(FieldError::new("url", "required for redis probes"));
                    None
                }
                Some(u) => match check_redis_url(u) {
                    Ok(()) => Some((ProbeSpec::Redis { url: u.clone() }, redact_url(u.expose()))),
                    Err(m) => {
                        errs.push(FieldError::new("url", m));
                        None
                    }
                },
            },
            ProbeKind::Postgres => match &self.url {
                None => {
                    errs.push(FieldError::new("url", "required for postgres probes"));
                    None
                }
                Some(u) => match tokio_postgres::Config::from_str(u.expose()) {
                    Ok(config) => {
                        let target = postgres_target(&config);
                        let query = self.query.clone().unwrap_or_else(|| "SELECT 1".into());
                        if query.trim().is_empty() {
                            errs.push(FieldError::new("query", "must not be empty"));
                        }
                        if config.get_hosts().is_empty() {
                            errs.push(FieldError::new("url", "names no host"));
                        }
                        Some((
                            ProbeSpec::Postgres {
                                config: Box::new(config),
                                password: password_of(u.expose()),
                                query,
                            },
                            target,
                        ))
                    }
                    Err(e) => {
                        errs.push(FieldError::new(
                            "url",
                            format!(
                                "not a PostgreSQL connection string: {}",
                                scrub(&e.to_string(), password_of(u.expose()).as_deref())
                            ),
                        ));
                        None
                    }
                },
            },
        };
        match spec {
            Some((spec, target)) if errs.is_empty() => Ok(Probe {
                name: self.name.clone(),
                kind,
                service: self.service.clone().unwrap_or_else(|| self.name.clone()),
                interval,
                timeout,
                target,
                spec,
            }),
            _ => Err(errs),
        }
    }

    fn http_spec(&self, errs: &mut Vec<FieldError>) -> Option<(ProbeSpec, String)> {
        let url = match &self.url {
            None => {
                errs.push(FieldError::new("url", "required for http probes"));
                None
            }
            Some(u) => match url::Url::parse(u.expose()) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Some(p),
                Ok(_) => {
                    errs.push(FieldError::new(
                        "url",
                        "must be an http:// or https:// URL with a host",
                    ));
                    None
                }
                Err(e) => {
                    errs.push(FieldError::new("url", format!("not a URL: {e}")));
                    None
                }
            },
        };
        let method = match &self.method {
            None => reqwest::Method::GET,
            Some(m) => match reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    errs.push(FieldError::new(
                        "method",
                        format!("{m:?} is not an HTTP method"),
                    ));
                    reqwest::Method::GET
                }
            },
        };
        for (i, c) in self.expect_status.iter().enumerate() {
            if !(100..=599).contains(c) {
                errs.push(FieldError::new(
                    format!("expect_status[{i}]"),
                    format!("{c} is not an HTTP status (100–599)"),
                ));
            }
        }
        let mut assertions = Vec::new();
        for (i, a) in self.assertions.iter().enumerate() {
            match Assertion::parse(a) {
                Ok(a) => assertions.push(a),
                Err(e) => errs.push(FieldError::new(format!("assert[{i}]"), e.to_string())),
            }
        }
        let mut extract = Vec::new();
        for (name, path) in &self.extract {
            let field = format!("extract.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                errs.push(FieldError::new(
                    &field,
                    "field names are lowercase letters, digits and '_'",
                ));
            } else if PROBE_FIELDS.contains(&name.as_str()) {
                errs.push(FieldError::new(
                    &field,
                    format!("{name:?} is a field the probe sets itself"),
                ));
            }
            match JsonPath::parse(path) {
                Ok(p) => extract.push((name.clone(), p)),
                Err(e) => errs.push(FieldError::new(&field, e.to_string())),
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            let field = format!("headers.{k}");
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes());
            // The value is a secret: say what is wrong without quoting it.
            let value = reqwest::header::HeaderValue::from_str(v.expose());
            match (name, value) {
                (Ok(n), Ok(mut v)) => {
                    v.set_sensitive(true);
                    headers.insert(n, v);
                }
                (Err(_), _) => errs.push(FieldError::new(&field, "not a valid header name")),
                (_, Err(_)) => errs.push(FieldError::new(
                    &field,
                    "value has characters not allowed in a header",
                )),
            }
        }
        let max_body = self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if max_body == 0 || max_body > MAX_MAX_BODY {
            errs.push(FieldError::new(
                "max_body_bytes",
                format!("must be between 1 and {MAX_MAX_BODY}"),
            ));
        }
        let url = url?;
        let password = self.url.as_ref().and_then(|u| password_of(u.expose()));
        let target = redact_url(url.as_str());
        Some((
            ProbeSpec::Http(Box::new(HttpSpec {
                url,
                password,
                method,
                expect_status: self.expect_status.clone(),
                assertions,
                extract,
                headers,
                max_body,
            })),
            target,
        ))
    }
}

/// `host:port` or `[v6]:port`, port 1–65535.
fn check_address(a: &str) -> Result<(), String> {
    let Some((host, port)) = a.rsplit_once(':') else {
        return Err("expected host:port".into());
    };
    if host.is_empty() || host == "[]" {
        return Err("expected host:port (host is empty)".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{port:?} is not a port number")),
    }
}

fn check_redis_url(u: &Secret) -> Result<(), String> {
    let p = url::Url::parse(u.expose()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(p.scheme(), "redis" | "redis+unix" | "unix") {
        return Err(format!(
            "scheme {:?} is not supported (redis://, redis+unix://; TLS is not built in)",
            p.scheme()
        ));
    }
    redis::Client::open(u.expose())
        .map(|_| ())
        .map_err(|e| scrub(&e.to_string(), password_of(u.expose()).as_deref()))
}

/// `postgres://user@host:port/db`, built from the parsed config so a
/// password can never be part of it.
fn postgres_target(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .next()
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = c.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}

/// Default collector interval: 10s (the dashboard's sampling step).
pub const DEFAULT_COLLECT_INTERVAL: Dur = Dur::from_secs(10);
/// Default SCAN `COUNT`: 100, the seed application's page size.
pub const DEFAULT_SCAN_COUNT: u32 = 100;
/// Default longest wait between reconnection attempts: 1m.
pub const DEFAULT_MAX_BACKOFF: Dur = Dur::from_mins(1);

fn default_collect_interval() -> Dur {
    DEFAULT_COLLECT_INTERVAL
}
fn default_scan_count() -> u32 {
    DEFAULT_SCAN_COUNT
}
fn default_max_backoff() -> Dur {
    DEFAULT_MAX_BACKOFF
}
fn default_instance() -> String {
    "redis".into()
}

/// The `redis:` collector section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCollectorConfig {
    /// `redis://[:password@]host:port[/db]`. The password never appears in
    /// events or logs.
    pub url: Secret,
    /// `fields.instance` of every event. Default `redis`.
    #[serde(default = "default_instance")]
    pub instance: String,
    /// The events' top-level `service`. Default: the instance.
    #[serde(default)]
    pub service: Option<String>,
    /// Time between polls. Default 10s.
    #[serde(default = "default_collect_interval")]
    pub interval: Dur,
    /// Deadline of one poll (all commands). Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// `COUNT` of the timed SCAN. Default 100.
    #[serde(default = "default_scan_count")]
    pub scan_count: u32,
    /// `MATCH` pattern of the timed SCAN (the application's key pattern,
    /// e.g. `api_key:*`). Default: none (every key).
    #[serde(default)]
    pub scan_pattern: Option<String>,
    /// Longest wait between attempts while Redis is unreachable; the wait
    /// doubles from `interval` up to this. Default 1m.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The runtime form of the collector, built by [`RedisCollectorConfig::validate`].
#[derive(Clone)]
pub struct RedisCollector {
    pub instance: String,
    pub service: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_backoff: Duration,
    pub scan_count: u32,
    pub scan_pattern: Option<String>,
    /// Credentials removed.
    pub target: String,
    pub(crate) url: Secret,
}

impl fmt::Debug for RedisCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCollector")
            .field("instance", &self.instance)
            .field("target", &self.target)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl RedisCollectorConfig {
    pub fn validate(&self) -> Result<RedisCollector, Vec<FieldError>> {
        let mut errs = Vec::new();
        let (interval, timeout) = check_common(
            &mut errs,
            ("instance", &self.instance),
            self.service.as_deref(),
            self.interval,
            self.timeout,
        );
        let max_backoff = positive(&mut errs, "max_backoff", self.max_backoff);
        if self.scan_count == 0 {
            errs.push(FieldError::new("scan_count", "must be positive"));
        }
        if let Some(p) = &self.scan_pattern
            && p.is_empty()
        {
            errs.push(FieldError::new("scan_pattern", "must not be empty"));
        }
        if let Err(m) = check_redis_url(&self.url) {
            errs.push(FieldError::new("url", m));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(RedisCollector {
            instance: self.instance.clone(),
            service: self
                .service
                .clone()
                .unwrap_or_else(|| self.instance.clone()),
            interval,
            timeout,
            max_backoff: max_backoff.max(interval),
            scan_count: self.scan_count,
            scan_pattern: self.scan_pattern.clone().filter(|p| p != "*"),
            target: redact_url(self.url.expose()),
            url: self.url.clone(),
        })
    }
}

/// Everything [`crate::spawn`] runs: the enabled probes and the collector.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub probes: Vec<Probe>,
    pub redis: Option<RedisCollector>,
}

impl Watch {
    /// Assembles validated parts; the only cross-item check is that probe
    /// names are unique (they are the group key of the rules).
    /// `names[i]` errors are reported as `probes[i].name`.
    pub fn new(
        probes: Vec<Probe>,
        redis: Option<RedisCollector>,
    ) -> Result<Watch, Vec<FieldError>> {
        let mut seen = HashSet::new();
        let mut errs = Vec::new();
        for (i, p) in probes.iter().enumerate() {
            if !seen.insert(p.name.clone()) {
                errs.push(FieldError::new(
                    format!("probes[{i}].name"),
                    format!("duplicate probe name {:?}", p.name),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Watch { probes, redis })
        } else {
            Err(errs)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty() && self.redis.is_none()
    }
}

impl WatchConfig {
    /// Every problem of both sections; fields are `probes[i].…` and
    /// `redis.…`. Disabled items are validated too (a typo in a disabled
    /// probe is still a typo) but not run.
    pub fn validate(&self) -> Result<Watch, Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut probes = Vec::new();
        let mut names = HashSet::new();
        for (i, p) in self.probes.iter().enumerate() {
            let at = format!("probes[{i}]");
            if !names.insert(p.name.as_str()) {
                errs.push(FieldError::new(
                    format!("{at}.name"),
                    format!("duplicate probe name {:?}", p.name),
                ));
            }
            match p.validate() {
                Ok(probe) if p.enabled => probes.push(probe),
                Ok(_) => {}
                Err(e) => errs.extend(e.into_iter().map(|e| e.under(&at))),
            }
        }
        let redis = match &self.redis {
            Some(r) => match r.validate() {
                Ok(c) => r.enabled.then_some(c),
                Err(e) => {
                    errs.extend(e.into_iter().map(|e| e.under("redis")));
                    None
                }
            },
            None => None,
        };
        if errs.is_empty() {
            Ok(Watch { probes, redis })
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> WatchConfig {
        serde_saphyr::from_str(y).unwrap()
    }

    #[test]
    fn seed_probes_validate_with_defaults() {
        let c = parse(
            r#"
probes:
  - name: management
    type: http
    url: http://127.0.0.1:3000/health
    service: management-server
    assert: ['status == "ok"', 'relay.healthy == true']
    extract: {redis_connected: redis.connected}
  - name: agent
    type: http
    url: http://127.0.0.1:3001/health
    interval: 10s
    expect_status: 200
    assert: ['status == "ok"', 'containers >= 1']
  - name: nats
    type: tcp
    address: 127.0.0.1:4222
  - name: cache
    type: redis
    url: redis://:hunter2@127.0.0.1:6379/0
  - name: db
    type: postgres
    url: postgres://app:hunter2@127.0.0.1:5432/test
redis:
  url: redis://127.0.0.1:6379
  scan_pattern: "api_key:*"
"#,
        );
        let w = c.validate().unwrap();
        assert_eq!(w.probes.len(), 5);
        let m = &w.probes[0];
        assert_eq!(m.service, "management-server");
        assert_eq!(m.interval, Duration::from_secs(30));
        assert_eq!(m.timeout, Duration::from_secs(5));
        assert_eq!(w.probes[1].interval, Duration::from_secs(10));
        assert_eq!(w.probes[2].service, "nats");
        assert_eq!(w.probes[3].target, "redis://:***@127.0.0.1:6379/0");
        assert_eq!(w.probes[4].target, "postgres://app@127.0.0.1:5432/test");
        let r = w.redis.unwrap();
        assert_eq!(r.scan_count, 100);
        assert_eq!(r.interval, Duration::from_secs(10));
        assert_eq!(r.instance, "redis");
        // Nothing printed with {:?} carries the password.
        let dbg = format!("{c:?} {:?}", w.probes);
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn every_error_names_its_field() {
        let c = parse(
            r#"
probes:
  - name: bad name
    type: http
    url: ftp://x
    interval: 0s
    address: 1.2.3.4:80
    expect_status: [200, 700]
    assert: ['status = "ok"', 'containers >= 1']
    extract: {ok: status, Bad: x, fine: "a..b"}
    headers: {"bad header": "x", Authorization: "Bearer\nsecret"}
    max_body_bytes: 0
  - name: t
    type: tcp
    url: http://x
  - name: t
    type: tcp
    address: "nohost"
  - name: pg
    type: postgres
    url: "host=db port=notaport password=hunter2"
    method: GET
  - name: r
    type: redis
    url: https://x
redis:
  url: redis://x
  scan_count: 0
  interval: 0s
"#,
        );
        let errs = c.validate().unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "probes[0].name",
            "probes[0].url",
            "probes[0].interval",
            "probes[0].address",
            "probes[0].expect_status[1]",
            "probes[0].assert[0]",
            "probes[0].extract.ok",
            "probes[0].extract.Bad",
            "probes[0].extract.fine",
            "probes[0].headers.bad header",
            "probes[0].headers.Authorization",
            "probes[0].max_body_bytes",
            "probes[1].url",
            "probes[1].address",
            "probes[2].name",
            "probes[2].address",
            "probes[3].url",
            "probes[3].method",
            "probes[4].url",
            "redis.scan_count",
            "redis.interval",
        ] {
            assert!(fields.contains(&f), "missing {f} in {errs:#?}");
        }
        let all = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!all.contains("hunter2") && !all.contains("secret"), "{all}");
        assert!(all.contains("probes[0].assert[0]: at position 7: use == for equality"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<WatchConfig, _> =
            serde_saphyr::from_str("probes:\n  - name: a\n    type: tcp\n    adress: x:1\n");
        assert!(r.is_err());
        let r: Result<WatchConfig, _> =
            serde_saphyr::from_str("redis:\n  url: redis://x\n  intervall: 5s\n");
        assert!(r.is_err());
        let r: Result<WatchConfig, _> =
            serde_saphyr::from_str("probes:\n  - name: a\n    type: icmp\n");
        assert!(r.is_err());
    }

    #[test]
    fn disabled_items_are_checked_but_not_run() {
        let c = parse(
            "probes:\n  - {name: a, type: tcp, address: 'h:1', enabled: false}\nredis: {url: 'redis://h', enabled: false}\n",
        );
        let w = c.validate().unwrap();
        assert!(w.is_empty());
        let c = parse("probes:\n  - {name: a, type: tcp, address: 'h', enabled: false}\n");
        assert!(c.validate().is_err());
    }

    #[test]
    fn watch_new_rejects_duplicate_names() {
        let p = |n: &str| {
            ProbeConfig {
                name: n.into(),
                kind: ProbeKind::Tcp,
                service: None,
                interval: DEFAULT_INTERVAL,
                timeout: DEFAULT_TIMEOUT,
                url: None,
                address: Some("h:1".into()),
                method: None,
                expect_status: vec![],
                assertions: vec![],
                extract: BTreeMap::new(),
                headers: BTreeMap::new(),
                max_body_bytes: None,
                query: None,
                enabled: true,
            }
            .validate()
            .unwrap()
        };
        let e = Watch::new(vec![p("a"), p("b"), p("a")], None).unwrap_err();
        assert_eq!(e[0].field, "probes[2].name");
    }
}
