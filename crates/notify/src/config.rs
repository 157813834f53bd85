//! Notification config (the `notify:` section of secmon's config).
//!
//! ```yaml
//! footer: "secmon | production"          # default
//! receivers:
//!   - name: slack-sec
//!     kind: slack
//!     url: {env: SLACK_WEBHOOK_URL}
//!     channel: "#security-alerts"
//!   - name: pd
//!     kind: pagerduty
//!     routing_key: {file: /run/secrets/pd_key}
//!   - name: mail
//!     kind: email
//!     host: smtp.example.com
//!     security: starttls                 # default; or tls (port 465), none
//!     ca_file: /etc/secmon/smtp-ca.pem   # a private CA (optional)
//!     username: secmon
//!     password: {env: SMTP_PASSWORD}
//!     from: "secmon <secmon@example.com>"
//!     to: [security@example.com]
//! routes:
//!   - match: {min_severity: high}
//!     receivers: [pd, slack-sec]
//!   - match: {rule: [new_admin_action]}
//!     receivers: [slack-sec]
//!     digest: daily
//! rate_limit: {per_minute: 30, burst: 10}
//! outbox: {max_age: 24h, backoff_base: 1s, backoff_max: 5m, timeout: 10s, concurrency: 32}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use secmon_core::{Dur, Priority, Severity};
use serde::Deserialize;

use crate::model::DigestPeriod;
use crate::secret::Secret;
use crate::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Evaluated in order; the first match wins unless it sets `continue`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Default per-receiver rate limit (each receiver may override it).
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub digest: DigestConfig,
    /// Footer of Slack/Discord/email messages. Default `secmon | production`.
    #[serde(default = "default_footer")]
    pub footer: String,
}

fn default_footer() -> String {
    "secmon | production".to_string()
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: vec![],
            routes: vec![],
            rate_limit: RateLimitConfig::default(),
            outbox: OutboxConfig::default(),
            digest: DigestConfig::default(),
            footer: default_footer(),
        }
    }
}

impl NotifyConfig {
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name() == name)
    }

    /// Checks names and references: unique receiver names, routes naming
    /// existing receivers, no digest to PagerDuty/Alertmanager.
    pub fn validate(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.receivers {
            if r.name().is_empty() {
                return Err(Error::Config("a receiver has an empty name".into()));
            }
            if !seen.insert(r.name()) {
                return Err(Error::Config(format!(
                    "receiver {:?} is defined twice",
                    r.name()
                )));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            for name in &route.receivers {
                let Some(r) = self.receiver(name) else {
                    return Err(Error::Config(format!(
                        "route {i} names unknown receiver {name:?}"
                    )));
                };
                if route.digest.is_some()
                    && matches!(
                        r,
                        ReceiverConfig::PagerDuty(_) | ReceiverConfig::Alertmanager(_)
                    )
                {
                    return Err(Error::Config(format!(
                        "route {i}: a digest cannot go to {} receiver {name:?}",
                        r.kind()
                    )));
                }
            }
            if route.group_interval.as_millis() <= 0 || route.repeat_interval.as_millis() <= 0 {
                return Err(Error::Config(format!(
                    "route {i}: group_interval and repeat_interval must be positive"
                )));
            }
        }
        if self.rate_limit.per_minute == 0 {
            return Err(Error::Config("rate_limit.per_minute must be > 0".into()));
        }
        if !(1..=1024).contains(&self.outbox.concurrency) {
            return Err(Error::Config(
                "outbox.concurrency must be between 1 and 1024".into(),
            ));
        }
        DigestConfig::parse_time(&self.digest.daily_at)?;
        Ok(())
    }
}

/// Templates a receiver overrides, by name: `title`, `summary`, `text`,
/// `email_subject`, `email_text`, `email_html` (see [`crate::template`]).
pub type TemplateOverrides = BTreeMap<String, String>;

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ReceiverConfig {
    Slack(SlackConfig),
    Discord(DiscordConfig),
    PagerDuty(PagerDutyConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
}

/// Fields every receiver has.
#[derive(Clone, Debug, Default)]
pub struct Common {
    pub name: String,
    /// Overrides the top-level `rate_limit` for this receiver.
    pub rate_limit: Option<RateLimitConfig>,
    pub templates: TemplateOverrides,
    /// Send resolved notifications. Default true, false for email.
    pub send_resolved: Option<bool>,
}

macro_rules! receiver_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub name: String,
            #[serde(default)]
            pub rate_limit: Option<RateLimitConfig>,
            #[serde(default)]
            pub templates: TemplateOverrides,
            #[serde(default)]
            pub send_resolved: Option<bool>,
            $($(#[$fm])* pub $f: $t),*
        }
    };
}

receiver_struct!(
    /// Slack incoming webhook.
    SlackConfig {
        url: Secret,
        #[serde(default)]
        channel: Option<String>,
        #[serde(default)]
        username: Option<String>,
    }
);
receiver_struct!(
    /// Discord webhook (embeds).
    DiscordConfig {
        url: Secret,
        #[serde(default)]
        username: Option<String>,
    }
);
receiver_struct!(
    /// PagerDuty Events API v2.
    PagerDutyConfig {
        routing_key: Secret,
        /// Default `https://events.pagerduty.com/v2/enqueue`.
        #[serde(default = "default_pd_url")]
        url: String,
        /// `payload.source`. Default `secmon`.
        #[serde(default = "default_source")]
        source: String,
    }
);
receiver_struct!(
    /// Email over SMTP.
    EmailConfig {
        /// The server's name: the TLS certificate must be valid for it
        /// (a DNS name or an IP address in its subjectAltName).
        host: String,
        /// Default 587 for starttls, 465 for tls, 25 for none.
        #[serde(default)]
        port: Option<u16>,
        /// `starttls` (default): plain connection upgraded with STARTTLS,
        /// which must succeed (a server that does not offer it gets
        /// nothing, not even the credentials); `tls`: TLS from the first
        /// byte (port 465); `none`: plain text, for local relays only.
        #[serde(default)]
        security: SmtpSecurity,
        /// PEM file of the CA(s) that issued the server's certificate (a
        /// private CA). When set, only these are trusted, not the system's
        /// roots. Only with `starttls` or `tls`.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// With `password`: AUTH PLAIN or LOGIN, whichever the server
        /// offers, and only once the connection is encrypted (unless
        /// `security: none`).
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
    }
);
receiver_struct!(
    /// Generic JSON webhook with an HMAC-SHA256 signature.
    WebhookConfig {
        url: Secret,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Key for `X-Secmon-Signature: sha256=<hex>`; unsigned without it.
        #[serde(default)]
        secret: Option<Secret>,
    }
);
receiver_struct!(
    /// An existing Alertmanager (`POST {url}/api/v2/alerts`).
    AlertmanagerConfig {
        url: String,
        /// Base of `generatorURL` (`{generator_url}/alerts/{id}`), if any.
        #[serde(default)]
        generator_url: Option<String>,
    }
);

fn default_pd_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_string()
}
fn default_source() -> String {
    "secmon".to_string()
}

#[derive(Clone, Copy, Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    /// Plain text; for local relays and tests only.
    None,
}

impl ReceiverConfig {
    pub fn name(&self) -> &str {
        match self {
            ReceiverConfig::Slack(c) => &c.name,
            ReceiverConfig::Discord(c) => &c.name,
            ReceiverConfig::PagerDuty(c) => &c.name,
            ReceiverConfig::Email(c) => &c.name,
            ReceiverConfig::Webhook(c) => &c.name,
            ReceiverConfig::Alertmanager(c) => &c.name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Slack(_) => "slack",
            ReceiverConfig::Discord(_) => "discord",
            ReceiverConfig::PagerDuty(_) => "pagerduty",
            ReceiverConfig::Email(_) => "email",
            ReceiverConfig::Webhook(_) => "webhook",
            ReceiverConfig::Alertmanager(_) => "alertmanager",
        }
    }
    pub fn common(&self) -> Common {
        macro_rules! c {
            ($c:expr) => {
                Common {
                    name: $c.name.clone(),
                    rate_limit: $c.rate_limit,
                    templates: $c.templates.clone(),
                    send_resolved: $c.send_resolved,
                }
            };
        }
        match self {
            ReceiverConfig::Slack(x) => c!(x),
            ReceiverConfig::Discord(x) => c!(x),
            ReceiverConfig::PagerDuty(x) => c!(x),
            ReceiverConfig::Email(x) => c!(x),
            ReceiverConfig::Webhook(x) => c!(x),
            ReceiverConfig::Alertmanager(x) => c!(x),
        }
    }
    /// Whether resolved alerts are sent (default: all but email).
    pub fn send_resolved(&self) -> bool {
        let default = !matches!(self, ReceiverConfig::Email(_));
        self.common().send_resolved.unwrap_or(default)
    }
    /// PagerDuty takes one event per alert, so batches are split.
    pub fn one_alert_per_message(&self) -> bool {
        matches!(self, ReceiverConfig::PagerDuty(_))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Keep evaluating later routes after this one matched. Default false.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Alerts with equal values of these keys (group values, labels, `rule`,
    /// `severity`, ...) share one message. Default `[rule]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first message of a new group. Default 30s.
    #[serde(default = "default_group_wait")]
    pub group_wait: Dur,
    /// Wait between messages of one group. Default 5m.
    #[serde(default = "default_group_interval")]
    pub group_interval: Dur,
    /// Re-notify a still-firing alert after this long. Default 4h.
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: Dur,
    /// Collect into a daily digest / weekly summary instead of notifying.
    #[serde(default)]
    pub digest: Option<DigestPeriod>,
}

fn default_group_by() -> Vec<String> {
    vec!["rule".to_string()]
}
fn default_group_wait() -> Dur {
    Dur::from_secs(30)
}
fn default_group_interval() -> Dur {
    Dur::from_mins(5)
}
fn default_repeat_interval() -> Dur {
    Dur::from_mins(240)
}

impl RouteConfig {
    /// A route to `receivers` with every default.
    pub fn to(receivers: &[&str]) -> Self {
        RouteConfig {
            matcher: MatchConfig::default(),
            receivers: receivers.iter().map(|s| s.to_string()).collect(),
            continue_: false,
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
            digest: None,
        }
    }
}

/// All given conditions must hold; an empty matcher matches everything.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default)]
    pub severity: Option<Vec<Severity>>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub priority: Option<Vec<Priority>>,
    /// Rule ids or names.
    #[serde(default)]
    pub rule: Option<Vec<String>>,
    /// Exact values of labels or group keys.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Actions of the rule (`actions: [notify_security]` sends every alert
    /// of a rule listing `notify_security` down this route): a rule says
    /// who must hear of it by naming an action, the routes say how.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
}

/// Token bucket: `per_minute` tokens a minute, at most `burst` saved up.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Default 30.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// Default 10.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_per_minute() -> u32 {
    30
}
fn default_burst() -> u32 {
    10
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_minute: default_per_minute(),
            burst: default_burst(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Undelivered items older than this go to the dead-letter list. 24h.
    #[serde(default = "default_max_age")]
    pub max_age: Dur,
    /// First retry delay (before jitter). 1s.
    #[serde(default = "default_backoff_base")]
    pub backoff_base: Dur,
    /// Cap of the retry delay. 5m.
    #[serde(default = "default_backoff_max")]
    pub backoff_max: Dur,
    /// HTTP / SMTP timeout of one attempt. 10s.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// How long an item being sent stays leased; must exceed `timeout`. 2m.
    #[serde(default = "default_lease")]
    pub lease: Dur,
    /// Sends in flight at most (1–1024). 32: at 10,000 notifications a
    /// second and a millisecond or two per request, a dozen or more are on
    /// the wire at any moment; a slow receiver still holds only the slots of
    /// its own sends for up to `timeout`.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_max_age() -> Dur {
    Dur::from_mins(24 * 60)
}
fn default_backoff_base() -> Dur {
    Dur::from_secs(1)
}
fn default_backoff_max() -> Dur {
    Dur::from_mins(5)
}
fn default_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_lease() -> Dur {
    Dur::from_mins(2)
}
fn default_concurrency() -> usize {
    32
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_age: default_max_age(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            timeout: default_timeout(),
            lease: default_lease(),
            concurrency: default_concurrency(),
        }
    }
}

/// When digests go out (UTC).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// Time of day of the daily digest and weekly summary, `HH:MM` UTC.
    /// Default `09:00`.
    #[serde(default = "default_daily_at")]
    pub daily_at: String,
    /// Day of the weekly summary. Default monday.
    #[serde(default = "default_weekly_on")]
    pub weekly_on: Weekday,
}

fn default_daily_at() -> String {
    "09:00".to_string()
}
fn default_weekly_on() -> Weekday {
    Weekday::Monday
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            daily_at: default_daily_at(),
            weekly_on: default_weekly_on(),
        }
    }
}

impl DigestConfig {
    /// `HH:MM` → milliseconds after midnight.
    pub fn parse_time(s: &str) -> Result<i64> {
        let bad = || Error::Config(format!("digest.daily_at {s:?}: expected HH:MM (UTC)"));
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok((h * 60 + m) * 60_000)
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// 0 = Monday.
    pub fn index(self) -> i64 {
        self as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_rejects_unknown_fields() {
        let cfg: NotifyConfig = serde_json::from_value(serde_json::json!({
            "receivers": [
                {"name": "s", "kind": "slack", "url": {"env": "SLACK"}, "channel": "#security-alerts"},
                {"name": "pd", "kind": "pagerduty", "routing_key": {"file": "/run/pd"}},
                {"name": "m", "kind": "email", "host": "smtp", "from": "a@b", "to": ["c@d"]},
                {"name": "w", "kind": "webhook", "url": "http://x", "headers": {"X-A": "1"}, "secret": {"env": "K"}},
                {"name": "am", "kind": "alertmanager", "url": "http://am:9093"},
                {"name": "d", "kind": "discord", "url": {"env": "D"}}
            ],
            "routes": [
                {"match": {"min_severity": "high", "labels": {"env": "prod"}}, "receivers": ["pd"], "continue": true},
                {"receivers": ["s"], "group_wait": "10s"},
                {"match": {"rule": ["new_admin_action"]}, "receivers": ["m"], "digest": "daily"}
            ]
        }))
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.footer, "secmon | production");
        assert_eq!(cfg.routes[0].group_wait, Dur::from_secs(30));
        assert!(cfg.routes[0].continue_);
        assert_eq!(cfg.routes[1].group_wait, Dur::from_secs(10));
        assert_eq!(cfg.routes[1].repeat_interval, Dur::from_mins(240));
        assert_eq!(cfg.outbox.max_age, Dur::from_mins(1440));
        assert!(!cfg.receiver("m").unwrap().send_resolved());
        assert!(cfg.receiver("s").unwrap().send_resolved());
        assert_eq!(
            format!("{:?}", cfg.receiver("w").unwrap())
                .matches("http://x")
                .count(),
            0,
            "secrets must not print"
        );
        let bad = serde_json::from_value::<NotifyConfig>(serde_json::json!({
            "receivers": [{"name": "s", "kind": "slack", "url": "x", "colour": "red"}]
        }));
        assert!(bad.is_err());
        let bad = serde_json::from_value::<NotifyConfig>(
            serde_json::json!({"routes": [{"recievers": []}]}),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn validation_catches_bad_references() {
        let mut cfg = NotifyConfig::default();
        cfg.routes.push(RouteConfig::to(&["nobody"]));
        assert!(cfg.validate().unwrap_err().to_string().contains("nobody"));
        assert_eq!(DigestConfig::parse_time("09:30").unwrap(), 570 * 60_000);
        assert!(DigestConfig::parse_time("25:00").is_err());
    }
}
