//! Discord webhook: one embed per alert (Discord allows 10 per message).

use secmon_core::Severity;
use serde_json::{Value, json};

use super::{HttpRequest, is_resolved, shown};
use crate::Result;
use crate::model::{AlertView, Message, MessageKind};
use crate::secret::SecretString;
use crate::template::Templates;

#[derive(Debug)]
pub struct Discord {
    pub url: SecretString,
    pub username: Option<String>,
    pub templates: Templates,
}

/// Embed colours (decimal RGB): red, orange, blue; green once resolved.
pub fn color(a: &AlertView) -> u32 {
    if is_resolved(a) {
        return 0x2ECC71;
    }
    match a.severity {
        Severity::Critical | Severity::High => 0xE01E5A,
        Severity::Medium => 0xECB22E,
        Severity::Low => 0x439FE0,
    }
}

impl Discord {
    pub fn render(&self, msg: &Message, footer: &str) -> Result<HttpRequest> {
        let mut body = serde_json::Map::new();
        if let Some(u) = &self.username {
            body.insert("username".into(), u.clone().into());
        }
        let (alerts, hidden) = shown(msg);
        let mut embeds = Vec::new();
        let mut content = Vec::new();
        if msg.kind == MessageKind::Digest
            && let Some(d) = &msg.digest
        {
            content.push(format!(
                "secmon {} digest: {} alerts from {} to {}",
                d.period.as_str(),
                d.total,
                d.from,
                d.to
            ));
            embeds.push(json!({
                "title": format!("Alerts per rule and severity ({})", d.period.as_str()),
                "color": 0x439FE0,
                "fields": d.counts.iter().take(25).map(|c| json!({
                    "name": format!("{} ({})", c.rule_name, c.severity),
                    "value": c.count.to_string(),
                    "inline": true,
                })).collect::<Vec<_>>(),
                "footer": {"text": footer},
                "timestamp": d.to.to_rfc3339(),
            }));
        }
        for a in alerts.iter().take(10 - embeds.len()) {
            let fields: Vec<Value> = super::slack::fields(a)
                .into_iter()
                .map(|f| json!({"name": f["title"], "value": f["value"], "inline": true}))
                .collect();
            embeds.push(json!({
                "title": self.templates.alert("title", a, msg, footer)?,
                "description": self.templates.alert("text", a, msg, footer)?,
                "color": color(a),
                "fields": fields,
                "footer": {"text": footer},
                "timestamp": a.status_time().to_rfc3339(),
            }));
        }
        let hidden = hidden
            + (alerts.len() + usize::from(msg.digest.is_some())).saturating_sub(embeds.len())
                as u64;
        if hidden > 0 {
            content.push(format!(
                "+{hidden} more alert{}",
                if hidden == 1 { "" } else { "s" }
            ));
        }
        if !content.is_empty() {
            body.insert("content".into(), content.join("\n").into());
        }
        body.insert("embeds".into(), embeds.into());
        HttpRequest::post_json(self.url.expose(), &Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    #[test]
    fn embeds_exact() {
        let d = Discord {
            url: SecretString::new("https://discord.com/api/webhooks/1/tok"),
            username: Some("secmon".into()),
            templates: Templates::default(),
        };
        let v = d
            .render(&message(vec![alert()]), "secmon | production")
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            v,
            json!({
                "username": "secmon",
                "embeds": [{
                    "title": "Security Alert: Multiple Failed Logins",
                    "description": "HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)",
                    "color": 0xE01E5A,
                    "fields": [
                        {"name": "IP Address", "value": "192.168.1.100", "inline": true},
                        {"name": "Attempts", "value": "10", "inline": true},
                        {"name": "Time Window", "value": "5 minutes", "inline": true},
                        {"name": "Action Taken", "value": "IP blocked for 1 hour", "inline": true}
                    ],
                    "footer": {"text": "secmon | production"},
                    "timestamp": "2024-01-15T09:50:00.000Z"
                }]
            })
        );
    }
}
