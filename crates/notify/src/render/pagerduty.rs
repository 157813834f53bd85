//! PagerDuty Events API v2: `trigger` while firing, `resolve` once resolved,
//! `dedup_key` = the alert's fingerprint. One event per message (the batcher
//! never groups alerts for PagerDuty).

use secmon_core::Severity;
use serde_json::json;

use super::{HttpRequest, is_resolved};
use crate::model::{Message, MessageKind, human_dur};
use crate::secret::SecretString;
use crate::template::{Templates, num};
use crate::{Error, Result};

pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug)]
pub struct PagerDuty {
    pub routing_key: SecretString,
    pub url: String,
    pub source: String,
    pub templates: Templates,
}

/// critical → critical, high → error, medium → warning, low → info.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

impl PagerDuty {
    pub fn render(&self, msg: &Message, footer: &str) -> Result<HttpRequest> {
        if msg.kind == MessageKind::Digest {
            return Err(Error::Render("PagerDuty does not take digests".into()));
        }
        let a = msg
            .alerts
            .first()
            .ok_or_else(|| Error::Render("message without alerts".into()))?;
        let body = if is_resolved(a) {
            json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": a.fingerprint,
            })
        } else {
            let mut details = serde_json::Map::new();
            if let Some(ip) = a.ip() {
                details.insert("ip_address".into(), ip.into());
            }
            details.insert("attempts".into(), a.count.into());
            if !a.actions_taken.is_empty() {
                details.insert("action".into(), a.actions_taken.join(", ").into());
            }
            details.insert("rule".into(), a.rule.clone().into());
            details.insert("value".into(), num(a.value));
            if let Some(t) = a.threshold {
                details.insert("threshold".into(), num(t));
            }
            if let Some(w) = a.window {
                details.insert("window".into(), human_dur(w).into());
            }
            if let Some(p) = a.priority {
                details.insert("priority".into(), p.as_str().into());
            }
            for (k, v) in &a.group {
                if !crate::model::IP_KEYS.contains(&k.as_str()) {
                    details.insert(k.clone(), v.clone().into());
                }
            }
            if !a.labels.is_empty() {
                details.insert("labels".into(), json!(a.labels));
            }
            details.insert("fired_at".into(), a.fired_at.to_rfc3339().into());
            if msg.suppressed > 0 {
                details.insert("suppressed".into(), msg.suppressed.into());
            }
            json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "trigger",
                "dedup_key": a.fingerprint,
                "payload": {
                    "summary": self.templates.alert("summary", a, msg, footer)?,
                    "source": self.source,
                    "severity": severity(a.severity),
                    "custom_details": details,
                }
            })
        };
        HttpRequest::post_json(&self.url, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertStatus;
    use crate::template::tests::{alert, message};

    fn pd() -> PagerDuty {
        PagerDuty {
            routing_key: SecretString::new("your-pagerduty-key"),
            url: DEFAULT_URL.into(),
            source: "ocmt-management-server".into(),
            templates: Templates::default(),
        }
    }

    #[test]
    fn trigger_matches_seed_shape() {
        let mut a = alert();
        a.severity = Severity::Critical;
        a.rule = "admin_bruteforce".into();
        a.rule_name = "Admin auth failures".into();
        a.description = "Admin authentication brute force detected".into();
        a.actions_taken = vec!["Admin endpoint locked".into()];
        a.priority = None;
        let req = pd().render(&message(vec![a]), "f").unwrap();
        assert_eq!(req.url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(
            req.json().unwrap(),
            json!({
                "routing_key": "your-pagerduty-key",
                "event_action": "trigger",
                "dedup_key": "fp-1",
                "payload": {
                    "summary": "CRITICAL: Admin authentication brute force detected",
                    "source": "ocmt-management-server",
                    "severity": "critical",
                    "custom_details": {
                        "ip_address": "192.168.1.100",
                        "attempts": 10,
                        "action": "Admin endpoint locked",
                        "rule": "admin_bruteforce",
                        "value": 10,
                        "threshold": 10,
                        "window": "5 minutes",
                        "fired_at": "2024-01-15T09:50:00.000Z"
                    }
                }
            })
        );
        assert!(!format!("{req:?}").contains("your-pagerduty-key"));
    }

    #[test]
    fn resolve_event() {
        let mut a = alert();
        a.status = AlertStatus::Resolved;
        let v = pd().render(&message(vec![a]), "f").unwrap().json().unwrap();
        assert_eq!(
            v,
            json!({"routing_key": "your-pagerduty-key", "event_action": "resolve", "dedup_key": "fp-1"})
        );
    }
}
