//! Slack incoming webhook, in the attachment layout of the seed example:
//!
//! ```json
//! {"channel": "#security-alerts",
//!  "attachments": [{"color": "danger", "title": "Security Alert: Multiple Failed Logins",
//!    "fields": [{"title": "IP Address", "value": "192.168.1.100", "short": true},
//!               {"title": "Attempts", "value": "10", "short": true},
//!               {"title": "Time Window", "value": "5 minutes", "short": true},
//!               {"title": "Action Taken", "value": "IP blocked for 1 hour", "short": true}],
//!    "footer": "OCMT Security | Production", "ts": 1705312200}]}
//! ```
//!
//! One attachment per alert (at most 10); a top-level `text` appears only when
//! alerts are summarised ("+N more").

use secmon_core::Severity;
use serde_json::{Value, json};

use super::{HttpRequest, field_title, is_resolved, shown};
use crate::Result;
use crate::model::{AlertView, Message, MessageKind, fmt_num, human_dur};
use crate::secret::SecretString;
use crate::template::Templates;

#[derive(Debug)]
pub struct Slack {
    pub url: SecretString,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub templates: Templates,
}

/// `danger` for high and critical, `warning` for medium, blue for low,
/// `good` once resolved.
pub fn color(a: &AlertView) -> &'static str {
    if is_resolved(a) {
        return "good";
    }
    match a.severity {
        Severity::Critical | Severity::High => "danger",
        Severity::Medium => "warning",
        Severity::Low => "#439FE0",
    }
}

/// The seed's fields: group values (IP Address first), Attempts, Value when it
/// differs from the count, Time Window, Action Taken.
pub fn fields(a: &AlertView) -> Vec<Value> {
    let f = |title: &str, value: String| json!({"title": title, "value": value, "short": true});
    let mut out = Vec::new();
    if let Some(ip) = a.ip() {
        out.push(f("IP Address", ip.to_string()));
    }
    for (k, v) in &a.group {
        if !crate::model::IP_KEYS.contains(&k.as_str()) {
            out.push(f(&field_title(k), v.clone()));
        }
    }
    out.push(f("Attempts", a.count.to_string()));
    if a.value != a.count as f64 {
        let v = match a.threshold {
            Some(t) => format!("{} (threshold {})", fmt_num(a.value), fmt_num(t)),
            None => fmt_num(a.value),
        };
        out.push(f("Value", v));
    }
    if let Some(w) = a.window {
        out.push(f("Time Window", human_dur(w)));
    }
    if !a.actions_taken.is_empty() {
        out.push(f("Action Taken", a.actions_taken.join(", ")));
    }
    out
}

impl Slack {
    pub fn render(&self, msg: &Message, footer: &str) -> Result<HttpRequest> {
        let mut body = serde_json::Map::new();
        if let Some(c) = &self.channel {
            body.insert("channel".into(), c.clone().into());
        }
        if let Some(u) = &self.username {
            body.insert("username".into(), u.clone().into());
        }
        let (alerts, hidden) = shown(msg);
        let mut attachments = Vec::new();
        if msg.kind == MessageKind::Digest
            && let Some(d) = &msg.digest
        {
            body.insert(
                "text".into(),
                format!(
                    "secmon {} digest: {} alert{} from {} to {}",
                    d.period.as_str(),
                    d.total,
                    if d.total == 1 { "" } else { "s" },
                    d.from,
                    d.to
                )
                .into(),
            );
            attachments.push(json!({
                "color": "#439FE0",
                "title": format!("Alerts per rule and severity ({})", d.period.as_str()),
                "fields": d.counts.iter().map(|c| json!({
                    "title": format!("{} ({})", c.rule_name, c.severity),
                    "value": c.count.to_string(),
                    "short": true,
                })).collect::<Vec<_>>(),
                "footer": footer,
                "ts": d.to.as_secs(),
            }));
        }
        for a in alerts {
            attachments.push(json!({
                "color": color(a),
                "title": self.templates.alert("title", a, msg, footer)?,
                "fields": fields(a),
                "footer": footer,
                "ts": a.status_time().as_secs(),
            }));
        }
        if hidden > 0 {
            let text = format!("+{hidden} more alert{}", if hidden == 1 { "" } else { "s" });
            let t = match body.get("text").and_then(Value::as_str) {
                Some(prev) => format!("{prev}\n{text}"),
                None => text,
            };
            body.insert("text".into(), t.into());
        }
        body.insert("attachments".into(), attachments.into());
        HttpRequest::post_json(self.url.expose(), &Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    fn slack() -> Slack {
        Slack {
            url: SecretString::new("https://hooks.slack.com/services/T0/B0/XXXX"),
            channel: Some("#security-alerts".into()),
            username: None,
            templates: Templates::default(),
        }
    }

    #[test]
    fn matches_the_seed_example_field_by_field() {
        let req = slack()
            .render(&message(vec![alert()]), "OCMT Security | Production")
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://hooks.slack.com/services/T0/B0/XXXX");
        assert_eq!(req.header("content-type"), Some("application/json"));
        let expected = json!({
          "channel": "#security-alerts",
          "attachments": [{
            "color": "danger",
            "title": "Security Alert: Multiple Failed Logins",
            "fields": [
              { "title": "IP Address", "value": "192.168.1.100", "short": true },
              { "title": "Attempts", "value": "10", "short": true },
              { "title": "Time Window", "value": "5 minutes", "short": true },
              { "title": "Action Taken", "value": "IP blocked for 1 hour", "short": true }
            ],
            "footer": "OCMT Security | Production",
            "ts": 1705312200
          }]
        });
        assert_eq!(req.json().unwrap(), expected);
        assert!(!format!("{req:?}").contains("XXXX"));
    }

    #[test]
    fn colors_resolved_and_overflow() {
        let mut a = alert();
        a.severity = Severity::Medium;
        assert_eq!(color(&a), "warning");
        a.status = crate::model::AlertStatus::Resolved;
        a.resolved_at = Some(secmon_core::Timestamp::from_millis(1_705_312_500_000));
        let mut m = message(vec![a.clone(); 12]);
        m.suppressed = 3;
        let v = slack().render(&m, "f").unwrap().json().unwrap();
        assert_eq!(v["attachments"].as_array().unwrap().len(), 10);
        assert_eq!(v["attachments"][0]["color"], "good");
        assert_eq!(
            v["attachments"][0]["title"],
            "Resolved: Multiple Failed Logins"
        );
        assert_eq!(v["attachments"][0]["ts"], 1705312500);
        assert_eq!(v["text"], "+5 more alerts");
    }
}
