//! Receivers and their wire formats. Every HTTP renderer is pure: it turns a
//! [`Message`] into an [`HttpRequest`] that tests compare byte for byte.

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::fmt;

use secmon_core::Dur;

use crate::config::ReceiverConfig;
use crate::model::{AlertStatus, AlertView, Message};
use crate::secret::EnvLookup;
use crate::template::Templates;
use crate::{Error, Result};

pub use alertmanager::Alertmanager;
pub use discord::Discord;
pub use email::Email;
pub use pagerduty::PagerDuty;
pub use slack::Slack;
pub use webhook::Webhook;

/// A request to send. `Debug` shows only the URL's scheme and host (webhook
/// URLs are secrets) and the body's length (it may hold a routing key).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn post_json(url: &str, body: &serde_json::Value) -> Result<HttpRequest> {
        Ok(HttpRequest {
            method: "POST",
            url: url.to_string(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body)?,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// `https://hooks.slack.com/services/T/B/X` → `https://hooks.slack.com/…`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if scheme.is_empty() {
        "…".to_string()
    } else {
        format!("{scheme}://{host}/…")
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A receiver with its secrets resolved and templates compiled.
#[derive(Debug)]
pub enum Receiver {
    Slack(Slack),
    Discord(Discord),
    PagerDuty(PagerDuty),
    Email(Box<Email>),
    Webhook(Webhook),
    Alertmanager(Alertmanager),
}

impl Receiver {
    /// Resolves secrets and compiles templates. `warnings` collects notes such
    /// as literal secrets in config.
    pub fn build(
        cfg: &ReceiverConfig,
        timeout: Dur,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Receiver> {
        let what = |field: &str| format!("receiver {:?} {field}", cfg.name());
        let templates = Templates::new(&cfg.common().templates)?;
        Ok(match cfg {
            ReceiverConfig::Slack(c) => Receiver::Slack(Slack {
                url: c.url.resolve(&what("url"), env, warnings)?,
                channel: c.channel.clone(),
                username: c.username.clone(),
                templates,
            }),
            ReceiverConfig::Discord(c) => Receiver::Discord(Discord {
                url: c.url.resolve(&what("url"), env, warnings)?,
                username: c.username.clone(),
                templates,
            }),
            ReceiverConfig::PagerDuty(c) => Receiver::PagerDuty(PagerDuty {
                routing_key: c.routing_key.resolve(&what("routing_key"), env, warnings)?,
                url: c.url.clone(),
                source: c.source.clone(),
                templates,
            }),
            ReceiverConfig::Webhook(c) => Receiver::Webhook(Webhook {
                url: c.url.resolve(&what("url"), env, warnings)?,
                headers: c.headers.clone().into_iter().collect(),
                secret: c
                    .secret
                    .as_ref()
                    .map(|s| s.resolve(&what("secret"), env, warnings))
                    .transpose()?,
            }),
            ReceiverConfig::Alertmanager(c) => Receiver::Alertmanager(Alertmanager {
                url: c.url.clone(),
                generator_url: c.generator_url.clone(),
                templates,
            }),
            ReceiverConfig::Email(c) => Receiver::Email(Box::new(Email::build(
                c, timeout, env, warnings, templates,
            )?)),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Receiver::Slack(_) => "slack",
            Receiver::Discord(_) => "discord",
            Receiver::PagerDuty(_) => "pagerduty",
            Receiver::Email(_) => "email",
            Receiver::Webhook(_) => "webhook",
            Receiver::Alertmanager(_) => "alertmanager",
        }
    }

    /// Secret values of this receiver, to scrub from error reasons.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Receiver::Slack(r) => vec![r.url.expose()],
            Receiver::Discord(r) => vec![r.url.expose()],
            Receiver::PagerDuty(r) => vec![r.routing_key.expose()],
            Receiver::Webhook(r) => {
                let mut v = vec![r.url.expose()];
                v.extend(r.secret.as_ref().map(|s| s.expose()));
                v
            }
            Receiver::Email(r) => r.secrets().collect(),
            Receiver::Alertmanager(_) => vec![],
        }
    }

    /// The HTTP request for `msg` (every receiver but email).
    pub fn render_http(&self, msg: &Message, footer: &str) -> Result<HttpRequest> {
        match self {
            Receiver::Slack(r) => r.render(msg, footer),
            Receiver::Discord(r) => r.render(msg, footer),
            Receiver::PagerDuty(r) => r.render(msg, footer),
            Receiver::Webhook(r) => r.render(msg, footer),
            Receiver::Alertmanager(r) => r.render(msg, footer),
            Receiver::Email(_) => Err(Error::Render("email is not sent over HTTP".into())),
        }
    }
}

/// Alerts shown in full in one chat message; the rest are summarised.
pub const MAX_ALERTS_SHOWN: usize = 10;

/// The alerts a chat message shows and how many more it only counts
/// (over [`MAX_ALERTS_SHOWN`] plus those dropped by the rate limit).
pub fn shown(msg: &Message) -> (&[AlertView], u64) {
    let n = msg.alerts.len().min(MAX_ALERTS_SHOWN);
    let hidden = (msg.alerts.len() - n) as u64 + msg.suppressed;
    (&msg.alerts[..n], hidden)
}

/// `Ip` → `IP Address`, `user` → `User`, `src_host` → `Src host`.
pub fn field_title(key: &str) -> String {
    if crate::model::IP_KEYS.contains(&key) {
        return "IP Address".to_string();
    }
    let s = key.replace(['_', '.'], " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(crate) fn is_resolved(a: &AlertView) -> bool {
    a.status == AlertStatus::Resolved
}
