//! Delivery: the [`Dispatcher`] holds the resolved receivers and the HTTP
//! clients and delivers one outbox item per call, blocking
//! ([`Dispatcher::deliver`], for the CLI and email) or async
//! ([`Dispatcher::deliver_async`], for the daemon's worker, which keeps many
//! sends in flight on one thread). It is `Sync`; the clients pool keep-alive
//! connections per receiver host. Workers record the [`Settlement`]s of many
//! attempts in one transaction.
//!
//! Classification: timeouts, connection errors, 408, 429 and 5xx (and SMTP
//! transient errors) are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; other 4xx (and SMTP permanent errors) go straight
//! to the dead-letter list, as does an item still undelivered `max_age` after
//! it was queued. Reasons never contain a secret: URLs are stripped from HTTP
//! errors and every secret value of the receiver is scrubbed from them.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use secmon_core::{Dur, Timestamp};

use crate::config::{NotifyConfig, OutboxConfig};
use crate::model::Message;
use crate::outbox::{Outbox, OutboxItem, Settlement};
use crate::render::email::SendError;
use crate::render::{HttpRequest, Receiver};
use crate::secret::EnvLookup;
use crate::{Error, Result};

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent,
    /// Try again; `after` is the server's `Retry-After` when it sent one.
    Retry {
        after: Option<Dur>,
        reason: String,
    },
    Permanent {
        reason: String,
    },
}

/// What [`Dispatcher::deliver_one`] did with an outbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Retrying { at: Timestamp, reason: String },
    Dead { reason: String },
}

pub struct Dispatcher {
    receivers: BTreeMap<String, Receiver>,
    /// Built on first use ([`Dispatcher::blocking_client`]).
    client: std::sync::OnceLock<std::result::Result<reqwest::blocking::Client, String>>,
    async_client: reqwest::Client,
    outbox: OutboxConfig,
    footer: String,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("receivers", &self.receivers.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn std_dur(d: Dur) -> Duration {
    Duration::from_millis(d.as_millis().max(1) as u64)
}

/// `Retry-After` as delta-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(v: &str, now: Timestamp) -> Option<Dur> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Dur::from_secs(secs.min(86_400 * 7) as i64));
    }
    let ts = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    Some(Timestamp(ts.as_millisecond()).since(now).max(Dur::ZERO))
}

impl Dispatcher {
    /// Resolves every receiver's secrets (via `env`) and builds the client.
    pub fn new(cfg: &NotifyConfig, env: EnvLookup<'_>) -> Result<Dispatcher> {
        cfg.validate()?;
        let mut warnings = Vec::new();
        let mut receivers = BTreeMap::new();
        for r in &cfg.receivers {
            let built = Receiver::build(r, cfg.outbox.timeout, env, &mut warnings)?;
            receivers.insert(r.name().to_string(), built);
        }
        let (timeout, connect) = timeouts(cfg.outbox.timeout);
        let async_client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| Error::Config(format!("http client: {}", e.without_url())))?;
        Ok(Dispatcher {
            receivers,
            client: std::sync::OnceLock::new(),
            async_client,
            outbox: cfg.outbox,
            footer: cfg.footer.clone(),
            warnings,
        })
    }

    /// Notes from building (e.g. secrets written literally in config).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.get(name)
    }

    pub fn receiver_names(&self) -> impl Iterator<Item = &str> {
        self.receivers.keys().map(String::as_str)
    }

    /// The request `msg` would produce (for `notify test --dry-run` and tests).
    pub fn render(&self, msg: &Message) -> Result<HttpRequest> {
        let r = self
            .receivers
            .get(&msg.receiver)
            .ok_or_else(|| Error::UnknownReceiver(msg.receiver.clone()))?;
        r.render_http(msg, &self.footer)
    }

    /// One attempt to deliver `msg`. `now` only serves `Retry-After` dates.
    pub fn deliver(&self, msg: &Message, now: Timestamp) -> DeliveryResult {
        let Some(r) = self.receivers.get(&msg.receiver) else {
            return DeliveryResult::Permanent {
                reason: format!("unknown receiver {:?}", msg.receiver),
            };
        };
        let res = match r {
            Receiver::Email(e) => match e.send(msg, &self.footer) {
                Ok(()) => DeliveryResult::Sent,
                Err(SendError::Transient(reason)) => DeliveryResult::Retry {
                    after: None,
                    reason,
                },
                Err(SendError::Permanent(reason)) => DeliveryResult::Permanent { reason },
            },
            _ => match r.render_http(msg, &self.footer) {
                Ok(req) => self.send_http(&req, now),
                Err(e) => DeliveryResult::Permanent {
                    reason: e.to_string(),
                },
            },
        };
        scrub(res, r)
    }

    fn send_http(&self, req: &HttpRequest, now: Timestamp) -> DeliveryResult {
        let client = match self.blocking_client() {
            Ok(c) => c,
            Err(reason) => {
                return DeliveryResult::Retry {
                    after: None,
                    reason,
                };
            }
        };
        let b = match request_parts(req) {
            Ok(method) => client.request(method, &req.url).body(req.body.clone()),
            Err(res) => return res,
        };
        let b = req.headers.iter().fold(b, |b, (k, v)| b.header(k, v));
        match b.send() {
            Ok(resp) => {
                let (status, after) = status_and_retry_after(resp.status(), resp.headers(), now);
                if status.is_success() {
                    return DeliveryResult::Sent;
                }
                classify_status(status, after, resp.text().unwrap_or_default())
            }
            Err(e) => classify_error(e),
        }
    }

    /// Whether `receiver` can only be sent to by blocking
    /// ([`Dispatcher::deliver`]): email, whose SMTP client is blocking.
    /// Every other kind is an HTTP request that
    /// [`Dispatcher::deliver_async`] sends without a thread of its own.
    pub fn is_blocking(&self, receiver: &str) -> bool {
        matches!(self.receivers.get(receiver), Some(Receiver::Email(_)))
    }

    /// [`Dispatcher::deliver`] for an async worker: one event loop can keep
    /// many sends in flight, where blocking sends need a thread each and a
    /// hand-off to the blocking client's own runtime per request (at 10,000
    /// notifications a second, more CPU than the sends themselves). Email
    /// receivers ([`Dispatcher::is_blocking`]) are sent blocking.
    pub async fn deliver_async(&self, msg: &Message, now: Timestamp) -> DeliveryResult {
        let Some(r) = self.receivers.get(&msg.receiver) else {
            return DeliveryResult::Permanent {
                reason: format!("unknown receiver {:?}", msg.receiver),
            };
        };
        if matches!(r, Receiver::Email(_)) {
            return self.deliver(msg, now);
        }
        let res = match r.render_http(msg, &self.footer) {
            Ok(req) => self.send_http_async(&req, now).await,
            Err(e) => DeliveryResult::Permanent {
                reason: e.to_string(),
            },
        };
        scrub(res, r)
    }

    async fn send_http_async(&self, req: &HttpRequest, now: Timestamp) -> DeliveryResult {
        let b = match request_parts(req) {
            Ok(method) => self
                .async_client
                .request(method, &req.url)
                .body(req.body.clone()),
            Err(res) => return res,
        };
        let b = req.headers.iter().fold(b, |b, (k, v)| b.header(k, v));
        match b.send().await {
            Ok(resp) => {
                let (status, after) = status_and_retry_after(resp.status(), resp.headers(), now);
                if status.is_success() {
                    return DeliveryResult::Sent;
                }
                classify_status(status, after, resp.text().await.unwrap_or_default())
            }
            Err(e) => classify_error(e),
        }
    }

    /// The blocking client, built on first use: it starts a runtime thread
    /// of its own, which a daemon sending through
    /// [`Dispatcher::deliver_async`] never needs.
    fn blocking_client(&self) -> std::result::Result<&reqwest::blocking::Client, String> {
        self.client
            .get_or_init(|| {
                let (timeout, connect) = timeouts(self.outbox.timeout);
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(connect)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(USER_AGENT)
                    .build()
                    .map_err(|e| format!("http client: {}", e.without_url()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The delay before retry number `attempts + 1`: full jitter over
    /// `min(backoff_max, backoff_base * 2^attempts)`.
    pub fn backoff(&self, attempts: u32) -> Dur {
        let base = self.outbox.backoff_base.as_millis().max(1);
        let cap = self.outbox.backoff_max.as_millis().max(base);
        let exp = base.saturating_mul(1i64 << attempts.min(40)).min(cap);
        Dur::from_millis(rand::rng().random_range(0..=exp))
    }

    /// Delivers one leased outbox item and records the outcome in `outbox`
    /// (its own transaction; see [`Dispatcher::settle`] for workers that
    /// record many outcomes at once).
    pub fn deliver_one(
        &self,
        outbox: &Outbox<'_>,
        item: &OutboxItem,
        now: Timestamp,
    ) -> Result<Outcome> {
        let res = self.deliver(&item.message, now);
        let (settlement, outcome) = self.settle(item, res, now);
        outbox.record(&settlement)?;
        Ok(outcome)
    }

    /// What to record for `item` after an attempt that ended with `res` at
    /// `now`: sent, retry with backoff (or at the server's `Retry-After`), or
    /// dead (permanent, or past `max_age`). Pure apart from the jitter.
    pub fn settle(
        &self,
        item: &OutboxItem,
        res: DeliveryResult,
        now: Timestamp,
    ) -> (Settlement, Outcome) {
        let id = item.id;
        match res {
            DeliveryResult::Sent => (Settlement::Sent { id, at: now }, Outcome::Sent),
            DeliveryResult::Permanent { reason } => (
                Settlement::Dead {
                    id,
                    reason: reason.clone(),
                    attempts: None,
                },
                Outcome::Dead { reason },
            ),
            DeliveryResult::Retry { after, reason } => {
                let delay = after.unwrap_or_else(|| self.backoff(item.attempts));
                let at = now.add(delay);
                if at.since(item.queued_at) > self.outbox.max_age {
                    let reason = format!(
                        "undelivered after {} ({} attempts): {reason}",
                        self.outbox.max_age,
                        item.attempts + 1
                    );
                    (
                        Settlement::Dead {
                            id,
                            reason: reason.clone(),
                            attempts: Some(item.attempts + 1),
                        },
                        Outcome::Dead { reason },
                    )
                } else {
                    (
                        Settlement::Retry {
                            id,
                            attempts: item.attempts + 1,
                            error: reason.clone(),
                            retry_at: at,
                        },
                        Outcome::Retrying { at, reason },
                    )
                }
            }
        }
    }

    /// Sends a test message to `receiver` right away (`notify test RECEIVER`).
    pub fn send_test(&self, receiver: &str, now: Timestamp) -> Result<DeliveryResult> {
        if !self.receivers.contains_key(receiver) {
            return Err(Error::UnknownReceiver(receiver.to_string()));
        }
        Ok(self.deliver(&Message::test(receiver, now), now))
    }
}

const USER_AGENT: &str = concat!("secmon-notify/", env!("CARGO_PKG_VERSION"));

/// (whole request, connect) timeouts of both clients.
fn timeouts(timeout: Dur) -> (Duration, Duration) {
    (std_dur(timeout), std_dur(timeout.min(Dur::from_secs(10))))
}

fn request_parts(req: &HttpRequest) -> std::result::Result<reqwest::Method, DeliveryResult> {
    reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| DeliveryResult::Permanent {
        reason: format!("bad method {}", req.method),
    })
}

fn status_and_retry_after(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    now: Timestamp,
) -> (reqwest::StatusCode, Option<Dur>) {
    let after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    (status, after)
}

/// A request that got no answer: a malformed request is permanent,
/// anything on the way (timeout, connection) is retried. The URL (which may
/// hold a secret, as a Slack webhook's does) is stripped.
fn classify_error(e: reqwest::Error) -> DeliveryResult {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    let builder = e.is_builder();
    let e = e.without_url();
    let mut reason = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        reason.push_str(&format!(": {s}"));
        src = s.source();
    }
    if builder {
        DeliveryResult::Permanent { reason }
    } else {
        DeliveryResult::Retry {
            after: None,
            reason,
        }
    }
}

/// A non-success answer: 5xx, 408 and 429 are retried (at `Retry-After`
/// when given), other codes are permanent. The body's start goes into the
/// reason.
fn classify_status(
    status: reqwest::StatusCode,
    after: Option<Dur>,
    mut body: String,
) -> DeliveryResult {
    if body.len() > 200 {
        let mut end = 200;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    let reason = format!("HTTP {}: {}", status.as_u16(), body.trim());
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        DeliveryResult::Retry { after, reason }
    } else {
        DeliveryResult::Permanent { reason }
    }
}

fn scrub(res: DeliveryResult, r: &Receiver) -> DeliveryResult {
    let clean = |mut s: String| {
        for secret in r.secrets() {
            if !secret.is_empty() {
                s = s.replace(secret, "***");
            }
        }
        s
    };
    match res {
        DeliveryResult::Sent => DeliveryResult::Sent,
        DeliveryResult::Retry { after, reason } => DeliveryResult::Retry {
            after,
            reason: clean(reason),
        },
        DeliveryResult::Permanent { reason } => DeliveryResult::Permanent {
            reason: clean(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = Timestamp::parse_rfc3339("2015-10-21T07:28:00Z").unwrap();
        assert_eq!(parse_retry_after("1", now), Some(Dur::from_secs(1)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Dur::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let cfg = NotifyConfig::default();
        let d = Dispatcher::new(&cfg, &|_| None).unwrap();
        for attempts in [0, 1, 5, 30, 100] {
            for _ in 0..50 {
                let b = d.backoff(attempts);
                let cap = (1000i64 << attempts.min(40)).min(300_000);
                assert!(b >= Dur::ZERO && b.as_millis() <= cap, "{attempts} {b}");
            }
        }
    }
}
