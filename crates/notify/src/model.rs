//! What a notification is about ([`AlertView`]) and what is sent to one
//! receiver ([`Message`]).

use std::collections::BTreeMap;

use secmon_core::{Dur, Priority, Severity, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// An alert as the notifier sees it (built by the binary from the engine's or
/// the respond crate's alert).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Row id in the respond store, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Stable identity of the alert (rule + group values); PagerDuty's
    /// `dedup_key`.
    pub fingerprint: String,
    /// Rule id.
    pub rule: String,
    /// Human rule name ("Multiple Failed Logins").
    pub rule_name: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The group-by values of the rule, e.g. `[("ip", "192.168.1.100")]`.
    #[serde(default)]
    pub group: Vec<(String, String)>,
    pub value: f64,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub window: Option<Dur>,
    /// Number of events behind the alert ("Attempts").
    #[serde(default)]
    pub count: u64,
    pub status: AlertStatus,
    pub fired_at: Timestamp,
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// What the response engine did, e.g. "IP blocked for 1 hour".
    #[serde(default)]
    pub actions_taken: Vec<String>,
    /// The actions the rule lists (`block_ip`, `notify_security`), which
    /// routes can match on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// Keys under which an IP address is recognised in `group` / `labels`.
pub const IP_KEYS: &[&str] = &[
    "ip",
    "ip_address",
    "src_ip",
    "source_ip",
    "client_ip",
    "remote_ip",
    "source.ip",
    "client.ip",
];

impl AlertView {
    /// The alert's IP address, from its group values, then its labels.
    pub fn ip(&self) -> Option<&str> {
        for (k, v) in &self.group {
            if IP_KEYS.contains(&k.as_str()) {
                return Some(v);
            }
        }
        IP_KEYS
            .iter()
            .find_map(|k| self.labels.get(*k).map(String::as_str))
    }

    /// Looks up a label-like key: group values, labels, then `rule`,
    /// `rule_name`, `severity`, `priority`, `fingerprint`.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some((_, v)) = self.group.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        if let Some(v) = self.labels.get(key) {
            return Some(v.clone());
        }
        match key {
            "rule" => Some(self.rule.clone()),
            "rule_name" | "alertname" => Some(self.rule_name.clone()),
            "severity" => Some(self.severity.as_str().to_string()),
            "priority" => self.priority.map(|p| p.as_str().to_string()),
            "fingerprint" => Some(self.fingerprint.clone()),
            _ => None,
        }
    }

    /// The time the alert's latest status took effect.
    pub fn status_time(&self) -> Timestamp {
        match self.status {
            AlertStatus::Resolved => self.resolved_at.unwrap_or(self.fired_at),
            AlertStatus::Firing => self.fired_at,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Alert,
    Test,
    Digest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DigestPeriod {
    Daily,
    Weekly,
}

impl DigestPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestPeriod::Daily => "daily",
            DigestPeriod::Weekly => "weekly",
        }
    }
}

/// One row of a digest's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestCount {
    pub rule: String,
    pub rule_name: String,
    pub severity: Severity,
    pub count: u64,
}

/// The summary carried by a [`MessageKind::Digest`] message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestSummary {
    pub period: DigestPeriod,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Alerts per rule and severity, sorted by rule then severity (highest
    /// first).
    pub counts: Vec<DigestCount>,
    pub total: u64,
}

/// What is sent to one receiver: one alert, a batch of alerts sharing a route
/// group, a test message or a digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub receiver: String,
    pub alerts: Vec<AlertView>,
    pub status: AlertStatus,
    pub kind: MessageKind,
    /// Unique per message and stable across retries and restarts; sent as
    /// `Idempotency-Key` so receivers can drop duplicates.
    pub idempotency_key: String,
    /// Alerts dropped by the receiver's rate limit since its previous message
    /// ("+N more").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestSummary>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Message {
    /// The message `notify test RECEIVER` sends.
    pub fn test(receiver: &str, now: Timestamp) -> Message {
        let alert = AlertView {
            id: None,
            fingerprint: format!("secmon-test-{}", now.as_millis()),
            rule: "secmon_test".into(),
            rule_name: "Test notification".into(),
            description: "This is a test notification from secmon.".into(),
            severity: Severity::Low,
            priority: None,
            labels: BTreeMap::new(),
            group: vec![],
            value: 0.0,
            threshold: None,
            window: None,
            count: 0,
            status: AlertStatus::Firing,
            fired_at: now,
            resolved_at: None,
            actions_taken: vec![],
            actions: Vec::new(),
        };
        Message {
            receiver: receiver.to_string(),
            alerts: vec![alert],
            status: AlertStatus::Firing,
            kind: MessageKind::Test,
            idempotency_key: format!("test-{receiver}-{}", now.as_millis()),
            suppressed: 0,
            digest: None,
        }
    }
}

/// `10` for 10.0, `2.5` for 2.5: how numbers appear in notifications.
pub fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `5 minutes`, `1 hour`, `90 minutes`, `30 seconds`: a window as people say it.
pub fn human_dur(d: Dur) -> String {
    let ms = d.as_millis();
    let units: [(&str, i64); 4] = [
        ("day", 86_400_000),
        ("hour", 3_600_000),
        ("minute", 60_000),
        ("second", 1_000),
    ];
    for (name, size) in units {
        if ms != 0 && ms % size == 0 {
            let n = ms / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} ms")
}

/// [`stable_key`] whose first 12 hex digits are `at` (milliseconds since
/// the epoch), the other 52 the hash's start: as unique and as stable, but
/// keys made later sort later. The outbox's unique index on the key then
/// grows at its end, one page for a whole commit's messages, where hashed
/// keys dirtied a random page of it per message (a write of its own to the
/// WAL at every commit).
pub fn time_ordered_key(at: Timestamp, parts: &[&str]) -> String {
    let hash = stable_key(parts);
    let ms = at.as_millis().clamp(0, 0xffff_ffff_ffff);
    format!("{ms:012x}{}", &hash[12..])
}

/// Hex SHA-256 of the parts, separated so that ("ab","c") != ("a","bc").
pub fn stable_key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_windows_read_naturally() {
        assert_eq!(fmt_num(10.0), "10");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(human_dur(Dur::from_mins(5)), "5 minutes");
        assert_eq!(human_dur(Dur::from_mins(60)), "1 hour");
        assert_eq!(human_dur(Dur::from_mins(90)), "90 minutes");
        assert_eq!(human_dur(Dur::from_secs(1)), "1 second");
        assert_ne!(stable_key(&["ab", "c"]), stable_key(&["a", "bc"]));
        assert_eq!(stable_key(&["x"]).len(), 64);
        let (t1, t2) = (Timestamp(1_700_000_000_000), Timestamp(1_700_000_000_001));
        let k1 = time_ordered_key(t1, &["b"]);
        assert_eq!(k1.len(), 64);
        assert_eq!(k1, time_ordered_key(t1, &["b"]), "stable");
        assert_ne!(k1, time_ordered_key(t1, &["c"]));
        assert!(time_ordered_key(t2, &["a"]) > k1, "later sorts later");
    }
}
