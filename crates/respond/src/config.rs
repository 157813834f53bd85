//! Configuration of the response layer: which actions make which decisions,
//! who may never be acted against, incident deadlines and escalation chains,
//! and where decisions are published. Serde types with documented defaults;
//! [`RespondConfig::seed_defaults`] reproduces seed 003.
//!
//! This module only describes; [`RespondConfig::validate`] checks what serde
//! cannot (CIDRs parse, custom scopes name their field), and the runtime
//! components build their own indexes from it.

use std::collections::BTreeMap;
use std::fmt;

use secmon_core::{Dur, FieldPath, Priority};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a decision applies to. Closed for the seed's scopes, open through
/// `Custom` for an operator's own (e.g. `api_key`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Ip,
    User,
    Vault,
    Admin,
    Custom(String),
}

impl Scope {
    pub fn as_str(&self) -> &str {
        match self {
            Scope::Ip => "ip",
            Scope::User => "user",
            Scope::Vault => "vault",
            Scope::Admin => "admin",
            Scope::Custom(s) => s,
        }
    }

    /// Parses a scope name. Custom names are restricted to `[a-z0-9_-]{1,64}`
    /// because they become part of Redis keys and exec arguments.
    pub fn parse(s: &str) -> Result<Scope, String> {
        Ok(match s {
            "ip" => Scope::Ip,
            "user" => Scope::User,
            "vault" => Scope::Vault,
            "admin" => Scope::Admin,
            other => {
                if other.is_empty()
                    || other.len() > 64
                    || !other.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    return Err(format!(
                        "invalid scope {:?}: use ip, user, vault, admin or [a-z0-9_-]{{1,64}}",
                        secmon_core::time::truncate(other)
                    ));
                }
                Scope::Custom(other.to_string())
            }
        })
    }

    /// The group fields a value is taken from when the action names none,
    /// in order of preference.
    pub fn default_fields(&self) -> &'static [&'static str] {
        match self {
            Scope::Ip => &["fields.ip", "fields.identifier"],
            Scope::User => &["fields.email", "fields.user_id"],
            Scope::Vault | Scope::Admin => &["fields.user_id"],
            Scope::Custom(_) => &[],
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// Action name (as rules list them, e.g. `block_ip`) → what it does.
    pub actions: BTreeMap<String, ActionConfig>,
    pub allowlist: AllowlistConfig,
    pub incidents: IncidentConfig,
    pub publish: PublishConfig,
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// The decision this action makes, if any (an action without one only
    /// labels the alert; who is told is decided by `notify.routes`).
    pub decision: Option<DecisionAction>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionAction {
    pub scope: Scope,
    /// The alert group field holding the value. Default by scope: ip →
    /// `fields.ip` or `fields.identifier`; user → `fields.email` or
    /// `fields.user_id`; vault/admin → `fields.user_id`. Required for custom scopes.
    #[serde(default)]
    pub from: Option<FieldPath>,
    /// Duration of a first offence.
    pub duration: Dur,
    /// Durations of the 2nd, 3rd, … offence within `lookback`; the last entry
    /// repeats (fail2ban's `bantime.increment`). Empty: always `duration`.
    #[serde(default)]
    pub ladder: Vec<Dur>,
    /// How far back previous decisions count as offences. Default 24h.
    #[serde(default = "default_lookback")]
    pub lookback: Dur,
}

fn default_lookback() -> Dur {
    Dur::from_mins(24 * 60)
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowlistConfig {
    /// CIDRs (`10.0.0.0/8`) or single addresses never blocked.
    pub cidrs: Vec<String>,
    /// User ids / emails never locked (exact match).
    pub users: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Time to acknowledge per priority. Default from seed 003's response
    /// times: P1 15m, P2 1h, P3 4h, P4 24h.
    pub ack_deadlines: BTreeMap<Priority, Dur>,
    /// Escalation chains; the first whose selector matches an incident is its
    /// chain (see [`EscalationChain`]).
    pub escalation: Vec<EscalationChain>,
    /// Events kept as evidence per incident. Default 20.
    pub evidence_limit: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            ack_deadlines: default_ack_deadlines(),
            escalation: Vec::new(),
            evidence_limit: 20,
        }
    }
}

fn default_ack_deadlines() -> BTreeMap<Priority, Dur> {
    [Priority::P1, Priority::P2, Priority::P3, Priority::P4]
        .into_iter()
        .map(|p| (p, seed_deadline(p)))
        .collect()
}

impl IncidentConfig {
    /// The deadline for `p`; falls back to the seed's value for a priority
    /// the operator's map leaves out.
    pub fn deadline(&self, p: Priority) -> Dur {
        match self.ack_deadlines.get(&p) {
            Some(d) if *d > Dur::ZERO => *d,
            _ => seed_deadline(p),
        }
    }
}

/// Seed 003 "Incident Response → Classification → Response Time".
fn seed_deadline(p: Priority) -> Dur {
    match p {
        Priority::P1 => Dur::from_mins(15),
        Priority::P2 => Dur::from_mins(60),
        Priority::P3 => Dur::from_mins(4 * 60),
        Priority::P4 => Dur::from_mins(24 * 60),
    }
}

/// A chain of receivers to page in turn while an incident stays
/// unacknowledged: escalation level n pages `receivers[n]`. Level 0 is the
/// incident's first receiver (paged when it opens), level 1 the one paged at
/// the first missed deadline, and so on; past the end the last receiver is
/// paged again, so a long-ignored incident keeps paging someone.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationChain {
    /// Applies to incidents of these priorities (empty: any).
    pub priorities: Vec<Priority>,
    /// And carrying all these labels (empty: any).
    pub labels: BTreeMap<String, String>,
    pub receivers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    pub redis: Option<RedisPublishConfig>,
    pub exec: Option<ExecConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisPublishConfig {
    pub url: String,
    /// Default `secmon:decision:`; the key is `<prefix><scope>:<value>`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Default `secmon:decisions`.
    #[serde(default = "default_channel")]
    pub channel: String,
}

fn default_key_prefix() -> String {
    "secmon:decision:".to_string()
}
fn default_channel() -> String {
    "secmon:decisions".to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments, run directly (never through a shell). Elements
    /// may contain `{scope}`, `{value}`, `{duration_secs}`, `{action}` and
    /// `{op}` (`add` or `del`).
    pub argv: Vec<String>,
    /// Killed after this long. Default 10s.
    #[serde(default = "default_exec_timeout")]
    pub timeout: Dur,
}

fn default_exec_timeout() -> Dur {
    Dur::from_secs(10)
}

impl RespondConfig {
    /// Seed 003's "Alert Thresholds → Action" column: block IP for 1 hour
    /// (repeat offenders 6h, 24h, 7d), lock account and vault for 30 minutes,
    /// lock admin for 1 hour; incident deadlines from its classification table.
    pub fn seed_defaults() -> RespondConfig {
        let decision = |scope: Scope, duration: Dur, ladder: Vec<Dur>| ActionConfig {
            decision: Some(DecisionAction {
                scope,
                from: None,
                duration,
                ladder,
                lookback: default_lookback(),
            }),
        };
        let h = |n: i64| Dur::from_mins(60 * n);
        RespondConfig {
            actions: BTreeMap::from([
                (
                    "block_ip".to_string(),
                    decision(Scope::Ip, h(1), vec![h(6), h(24), h(24 * 7)]),
                ),
                (
                    "lock_account".to_string(),
                    decision(Scope::User, Dur::from_mins(30), Vec::new()),
                ),
                (
                    "lock_vault".to_string(),
                    decision(Scope::Vault, Dur::from_mins(30), Vec::new()),
                ),
                (
                    "lock_admin".to_string(),
                    decision(Scope::Admin, h(1), Vec::new()),
                ),
            ]),
            allowlist: AllowlistConfig::default(),
            incidents: IncidentConfig::default(),
            publish: PublishConfig::default(),
        }
    }

    /// Every problem serde cannot see, all at once, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        for (name, a) in &self.actions {
            let Some(d) = &a.decision else { continue };
            let at = format!("actions.{name}.decision");
            if d.duration <= Dur::ZERO {
                errs.push(format!("{at}.duration: must be positive"));
            }
            if d.ladder.iter().any(|x| *x <= Dur::ZERO) {
                errs.push(format!("{at}.ladder: durations must be positive"));
            }
            if d.lookback < Dur::ZERO {
                errs.push(format!("{at}.lookback: must not be negative"));
            }
            if matches!(d.scope, Scope::Custom(_)) && d.from.is_none() {
                errs.push(format!("{at}.from: required for custom scope {}", d.scope));
            }
        }
        for (i, c) in self.allowlist.cidrs.iter().enumerate() {
            if parse_cidr(c).is_none() {
                errs.push(format!(
                    "allowlist.cidrs[{i}]: {c:?} is not a CIDR or IP address"
                ));
            }
        }
        for (p, d) in &self.incidents.ack_deadlines {
            if *d <= Dur::ZERO {
                errs.push(format!("incidents.ack_deadlines.{p}: must be positive"));
            }
        }
        for (i, c) in self.incidents.escalation.iter().enumerate() {
            if c.receivers.is_empty() {
                errs.push(format!("incidents.escalation[{i}].receivers: empty"));
            }
        }
        if let Some(r) = &self.publish.redis {
            if r.url.is_empty() {
                errs.push("publish.redis.url: empty".to_string());
            }
            if r.channel.is_empty() {
                errs.push("publish.redis.channel: empty".to_string());
            }
        }
        if let Some(e) = &self.publish.exec {
            if e.argv.is_empty() || e.argv[0].is_empty() {
                errs.push("publish.exec.argv: needs a program".to_string());
            } else if e.argv[0].contains('{') {
                // The program itself must never come from a log line.
                errs.push("publish.exec.argv[0]: the program cannot be a template".to_string());
            }
            if e.timeout <= Dur::ZERO {
                errs.push("publish.exec.timeout: must be positive".to_string());
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// A CIDR (`10.0.0.0/8`) or a bare address (a /32 or /128). Host bits are
/// truncated so `10.1.2.3/8` means `10.0.0.0/8`.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_defaults_validate_and_roundtrip() {
        let c = RespondConfig::seed_defaults();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: RespondConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let bi = c.actions["block_ip"].decision.as_ref().unwrap();
        assert_eq!(bi.duration, Dur::from_mins(60));
        assert_eq!(bi.ladder.len(), 3);
        assert_eq!(c.incidents.deadline(Priority::P1), Dur::from_mins(15));
        assert_eq!(c.incidents.deadline(Priority::P4), Dur::from_mins(1440));
    }

    #[test]
    fn unknown_fields_and_bad_scopes_rejected() {
        let bad = r#"{"actions": {"x": {"decision": {"scope": "IP; rm", "duration": "1h"}}}}"#;
        assert!(serde_json::from_str::<RespondConfig>(bad).is_err());
        let bad = r#"{"allowlist": {"cidr": []}}"#;
        assert!(serde_json::from_str::<RespondConfig>(bad).is_err());
        let ok = r#"{"actions": {"x": {"decision": {"scope": "api_key", "duration": "1h"}}},
                     "allowlist": {"cidrs": ["10.0.0.0/8", "nope"]}}"#;
        let c: RespondConfig = serde_json::from_str(ok).unwrap();
        let errs = c.validate().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
