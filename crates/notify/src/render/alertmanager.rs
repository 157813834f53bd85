//! Forwarding to an existing Alertmanager: `POST {url}/api/v2/alerts` with a
//! JSON array of postable alerts.

use serde_json::{Value, json};

use super::HttpRequest;
use crate::model::{AlertStatus, Message};
use crate::template::Templates;
use crate::{Error, Result};

#[derive(Debug)]
pub struct Alertmanager {
    pub url: String,
    pub generator_url: Option<String>,
    pub templates: Templates,
}

impl Alertmanager {
    pub fn render(&self, msg: &Message, footer: &str) -> Result<HttpRequest> {
        if msg.digest.is_some() {
            return Err(Error::Render("Alertmanager does not take digests".into()));
        }
        let mut out = Vec::new();
        for a in &msg.alerts {
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), a.rule.clone().into());
            labels.insert("severity".into(), a.severity.as_str().into());
            if let Some(p) = a.priority {
                labels.insert("priority".into(), p.as_str().into());
            }
            for (k, v) in &a.labels {
                labels.insert(k.clone(), v.clone().into());
            }
            for (k, v) in &a.group {
                labels.insert(k.clone(), v.clone().into());
            }
            let mut alert = serde_json::Map::new();
            alert.insert("labels".into(), Value::Object(labels));
            alert.insert(
                "annotations".into(),
                json!({
                    "summary": self.templates.alert("summary", a, msg, footer)?,
                    "description": self.templates.alert("text", a, msg, footer)?,
                }),
            );
            alert.insert("startsAt".into(), a.fired_at.to_rfc3339().into());
            if a.status == AlertStatus::Resolved {
                let end = a.resolved_at.unwrap_or(a.fired_at);
                alert.insert("endsAt".into(), end.to_rfc3339().into());
            }
            if let (Some(base), Some(id)) = (&self.generator_url, a.id) {
                alert.insert(
                    "generatorURL".into(),
                    format!("{}/alerts/{id}", base.trim_end_matches('/')).into(),
                );
            }
            out.push(Value::Object(alert));
        }
        let url = format!("{}/api/v2/alerts", self.url.trim_end_matches('/'));
        HttpRequest::post_json(&url, &Value::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    #[test]
    fn postable_alerts() {
        let am = Alertmanager {
            url: "http://am:9093/".into(),
            generator_url: Some("https://secmon.local".into()),
            templates: Templates::default(),
        };
        let mut r = alert();
        r.status = AlertStatus::Resolved;
        r.resolved_at = Some(secmon_core::Timestamp::from_millis(1_705_312_500_000));
        let req = am.render(&message(vec![alert(), r]), "f").unwrap();
        assert_eq!(req.url, "http://am:9093/api/v2/alerts");
        let v = req.json().unwrap();
        assert_eq!(
            v[0],
            json!({
                "labels": {"alertname": "failed_logins_ip", "severity": "high", "priority": "P2", "ip": "192.168.1.100"},
                "annotations": {
                    "summary": "HIGH: Multiple Failed Logins",
                    "description": "HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)"
                },
                "startsAt": "2024-01-15T09:50:00.000Z",
                "generatorURL": "https://secmon.local/alerts/7"
            })
        );
        assert_eq!(v[1]["endsAt"], "2024-01-15T09:55:00.000Z");
    }
}
