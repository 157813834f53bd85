//! Health probes: run a check on a schedule and turn each run into one
//! `probe.result` event.
//!
//! A probe does not alert and keeps no alert state. It keeps only what a
//! single event cannot know: how many runs in a row have failed, and since
//! when. The engine's rules decide what that means (≥ 1 failure: P2
//! degraded; ≥ 3: P1 down; `fields.redis_connected = false`: P3 fallback;
//! recovery resolves), so the escalation policy lives in one place, in
//! config, next to every other rule.
//!
//! Why no separate `probe.down` / `probe.recovered` events: a rule over the
//! latest `probe.result` of each probe already fires and resolves on the
//! transitions, and a second event stream would have to be kept consistent
//! with the first. The transition is still visible on the result itself
//! (`fields.changed`, and on recovery `fields.downtime_ms` and
//! `fields.failures_before`) for notifications and dashboards.
//!
//! Submodules do the checking ([`http`], [`net`]); this module does the
//! bookkeeping and the schedule.

pub(crate) mod http;
pub(crate) mod net;

use std::time::Duration;

use secmon_core::{Event, Timestamp, Value};

use crate::assertion::Failure;
use crate::config::{Probe, ProbeSpec};
use crate::event::{EventBuilder, millis, names};

/// Why a run failed, as `fields.category`: coarse and stable, for rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Name resolution failed.
    Dns,
    /// Refused, unreachable, reset.
    Connect,
    /// The run did not finish within `timeout`.
    Timeout,
    /// TLS handshake or certificate problem.
    Tls,
    /// HTTP status not accepted.
    Status,
    /// A body assertion did not hold.
    Assertion,
    /// Body unreadable, too large, or not JSON while assertions need JSON.
    Body,
    /// Credentials refused (Redis `WRONGPASS`/`NOAUTH`, PostgreSQL class 28).
    Auth,
    /// Connected, but the answer made no sense (Redis not answering PONG).
    Protocol,
    /// PostgreSQL: connected and authenticated, the query failed
    /// (database missing, server shutting down, …).
    Query,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Dns => "dns",
            Category::Connect => "connect",
            Category::Timeout => "timeout",
            Category::Tls => "tls",
            Category::Status => "status",
            Category::Assertion => "assertion",
            Category::Body => "body",
            Category::Auth => "auth",
            Category::Protocol => "protocol",
            Category::Query => "query",
        }
    }
}

/// What one run found, before bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `None`: success.
    pub failure: Option<(Category, String)>,
    pub latency: Duration,
    pub status_code: Option<u16>,
    pub failed_assertions: Vec<Failure>,
    /// `extract:` values, `(field name, value)`.
    pub extracted: Vec<(String, Value)>,
}

impl Outcome {
    pub fn ok(latency: Duration) -> Self {
        Outcome {
            latency,
            ..Default::default()
        }
    }

    pub fn failed(latency: Duration, category: Category, error: impl Into<String>) -> Self {
        Outcome {
            failure: Some((category, error.into())),
            latency,
            ..Default::default()
        }
    }

    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The per-probe memory between runs.
#[derive(Debug, Clone, Default)]
pub struct ProbeState {
    consecutive_failures: u64,
    last_ok: Option<bool>,
    down_since: Option<Timestamp>,
}

impl ProbeState {
    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures
    }

    /// Folds one run into the state and describes it as a `probe.result`
    /// event stamped `now` (when the result became known: a run that timed
    /// out is stamped at the timeout, never before events the engine has
    /// already seen).
    pub fn record(&mut self, probe: &Probe, out: Outcome, now: Timestamp) -> Event {
        let ok = out.is_ok();
        let changed = match self.last_ok {
            Some(prev) => prev != ok,
            // The first run only "changes" something if it finds a problem.
            None => !ok,
        };
        let failures_before = self.consecutive_failures;
        let down_since = self.down_since;
        if ok {
            self.consecutive_failures = 0;
            self.down_since = None;
        } else {
            self.consecutive_failures += 1;
            self.down_since.get_or_insert(now);
        }
        self.last_ok = Some(ok);

        let level = match (ok, self.consecutive_failures) {
            (true, _) => "INFO",
            (false, n) if n >= 3 => "ERROR",
            (false, _) => "WARN",
        };
        let mut b = EventBuilder::new(names::PROBE_RESULT, level, &probe.service);
        b.field("probe", probe.name.as_str())
            .field("kind", probe.kind.as_str())
            .field("target", probe.target.as_str())
            .field("ok", ok)
            .field("up", i64::from(ok))
            .field("latency_ms", millis(out.latency))
            .field("consecutive_failures", self.consecutive_failures as i64)
            .field("changed", changed)
            .opt("status_code", out.status_code.map(i64::from));
        let message = match &out.failure {
            None => {
                if failures_before > 0 {
                    b.field("failures_before", failures_before as i64);
                    if let Some(since) = down_since {
                        b.field("downtime_ms", now.since(since).as_millis());
                    }
                    format!(
                        "probe {} recovered after {failures_before} failed runs ({:.1} ms)",
                        probe.name,
                        millis(out.latency)
                    )
                } else {
                    format!("probe {} ok ({:.1} ms)", probe.name, millis(out.latency))
                }
            }
            Some((cat, err)) => {
                b.field("category", cat.as_str())
                    .field("error", err.as_str());
                if let Some(since) = self.down_since {
                    b.field("down_since", since.to_rfc3339().as_str());
                }
                format!(
                    "probe {} failed ({}): {err} — {} in a row",
                    probe.name,
                    cat.as_str(),
                    self.consecutive_failures
                )
            }
        };
        if let Some(first) = out.failed_assertions.first() {
            b.field("failed_assertion", first.to_string().as_str());
            b.field(
                "failed_assertions",
                Value::Array(
                    out.failed_assertions
                        .iter()
                        .map(|f| Value::from(f.to_string().as_str()))
                        .collect(),
                ),
            );
        }
        for (k, v) in out.extracted {
            b.field(&k, v);
        }
        b.top("message", message.as_str());
        b.build(now)
    }
}

/// One probe with everything it needs between runs: the client built once
/// and the failure streak. [`crate::spawn`] drives one per probe on its
/// interval; tests and one-shot commands call [`Self::run_once`] directly.
pub struct ProbeRunner {
    probe: Probe,
    runner: Runner,
    state: ProbeState,
}

impl ProbeRunner {
    pub fn new(probe: Probe) -> Result<ProbeRunner, crate::WatchError> {
        let runner = Runner::new(&probe)?;
        Ok(ProbeRunner {
            probe,
            runner,
            state: ProbeState::default(),
        })
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn state(&self) -> &ProbeState {
        &self.state
    }

    /// Runs the check once (at most `timeout`) and returns its
    /// `probe.result`, stamped with `now()` taken when the result is known.
    pub async fn run_once(&mut self, now: impl FnOnce() -> Timestamp) -> Event {
        let out = self.runner.run(self.probe.timeout).await;
        self.state.record(&self.probe, out, now())
    }
}

/// A probe ready to run: its spec plus what is built once (the HTTP client).
pub(crate) enum Runner {
    Http(http::HttpRunner),
    Tcp { address: String },
    Redis(net::RedisRunner),
    Postgres(net::PostgresRunner),
}

impl Runner {
    pub fn new(probe: &Probe) -> Result<Runner, crate::WatchError> {
        Ok(match &probe.spec {
            ProbeSpec::Http(spec) => {
                Runner::Http(http::HttpRunner::new((**spec).clone(), probe.timeout)?)
            }
            ProbeSpec::Tcp { address } => Runner::Tcp {
                address: address.clone(),
            },
            ProbeSpec::Redis { url } => Runner::Redis(net::RedisRunner { url: url.clone() }),
            ProbeSpec::Postgres {
                config,
                password,
                query,
            } => Runner::Postgres(net::PostgresRunner {
                config: (**config).clone(),
                password: password.clone(),
                query: query.clone(),
            }),
        })
    }

    /// One run, never longer than `timeout` (every kind is also wrapped in
    /// an outer deadline so a client library's own timeouts need not be
    /// trusted).
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let start = tokio::time::Instant::now();
        let fut = async {
            match self {
                Runner::Http(h) => h.run().await,
                Runner::Tcp { address } => net::tcp(address).await,
                Runner::Redis(r) => r.run(timeout).await,
                Runner::Postgres(p) => p.run(timeout).await,
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(o) => o,
            Err(_) => Outcome::failed(
                start.elapsed(),
                Category::Timeout,
                format!("no answer within {} ms", timeout.as_millis()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WatchConfig;

    fn probe() -> Probe {
        let c: WatchConfig = serde_saphyr::from_str(
            "probes:\n  - {name: mgmt, type: http, url: 'http://u:pw@h/health', service: management-server}\n",
        )
        .unwrap();
        c.validate().unwrap().probes.remove(0)
    }

    fn get<'a>(e: &'a Event, k: &str) -> Option<&'a Value> {
        e.get(k)
    }

    #[test]
    fn consecutive_failures_escalate_and_reset() {
        let p = probe();
        let mut s = ProbeState::default();
        let ok = || Outcome::ok(Duration::from_millis(3));
        let bad = || Outcome::failed(Duration::from_millis(5), Category::Status, "status 500");

        let e = s.record(&p, ok(), Timestamp(1_000));
        assert_eq!(get(&e, "fields.ok"), Some(&Value::Bool(true)));
        assert_eq!(get(&e, "fields.changed"), Some(&Value::Bool(false)));
        assert_eq!(get(&e, "fields.consecutive_failures"), Some(&Value::Int(0)));
        assert_eq!(
            get(&e, "fields.target"),
            Some(&Value::from("http://u:***@h/health"))
        );
        assert_eq!(get(&e, "service"), Some(&Value::from("management-server")));
        assert_eq!(get(&e, "level"), Some(&Value::from("INFO")));
        assert_eq!(e.time, Timestamp(1_000));

        let levels = ["WARN", "WARN", "ERROR", "ERROR"];
        for (i, lvl) in levels.iter().enumerate() {
            let e = s.record(&p, bad(), Timestamp(2_000 + i as i64 * 1_000));
            let n = i as i64 + 1;
            assert_eq!(get(&e, "fields.consecutive_failures"), Some(&Value::Int(n)));
            assert_eq!(get(&e, "fields.changed"), Some(&Value::Bool(i == 0)));
            assert_eq!(get(&e, "fields.category"), Some(&Value::from("status")));
            assert_eq!(get(&e, "fields.error"), Some(&Value::from("status 500")));
            assert_eq!(get(&e, "fields.up"), Some(&Value::Int(0)));
            assert_eq!(get(&e, "level"), Some(&Value::from(*lvl)));
            assert_eq!(
                get(&e, "fields.down_since"),
                Some(&Value::from("1970-01-01T00:00:02.000Z"))
            );
        }
        let e = s.record(&p, ok(), Timestamp(9_000));
        assert_eq!(get(&e, "fields.consecutive_failures"), Some(&Value::Int(0)));
        assert_eq!(get(&e, "fields.changed"), Some(&Value::Bool(true)));
        assert_eq!(get(&e, "fields.failures_before"), Some(&Value::Int(4)));
        assert_eq!(get(&e, "fields.downtime_ms"), Some(&Value::Int(7_000)));
        assert!(get(&e, "fields.category").is_none());
        // And a fresh streak starts from one.
        let e = s.record(&p, bad(), Timestamp(10_000));
        assert_eq!(get(&e, "fields.consecutive_failures"), Some(&Value::Int(1)));
    }

    #[test]
    fn first_run_failing_is_a_change() {
        let p = probe();
        let mut s = ProbeState::default();
        let e = s.record(
            &p,
            Outcome::failed(Duration::ZERO, Category::Connect, "refused"),
            Timestamp(0),
        );
        assert_eq!(get(&e, "fields.changed"), Some(&Value::Bool(true)));
    }
}
