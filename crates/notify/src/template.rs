//! Message templates (minijinja).
//!
//! Per-alert templates (`title`, `summary`, `text`) see the alert's fields plus
//! `status`, `kind`, `window` ("5 minutes"), `ip`, `actions`, `footer`;
//! `value` and `threshold` are numbers (`10`, not `10.0`). Message templates
//! (`email_subject`, `email_text`, `email_html`) see `alerts` (each with its
//! rendered `title`, `summary` and `text`), `status`, `kind`, `suppressed`,
//! `digest` and `footer`. Auto-escaping is on for `email_html` only; Slack and
//! JSON payloads are built with serde, so template output is never spliced
//! into JSON by hand.
//!
//! The defaults reproduce the seed texts: titles `Security Alert: <rule>`,
//! summaries `CRITICAL: <description>`, texts
//! `CRITICAL: {{ value }} <rule> in 5 minutes (threshold {{ threshold }})` and
//! `RESOLVED: ...` once resolved.

use minijinja::{AutoEscape, Environment, Value};
use serde_json::{Map, json};

use crate::config::TemplateOverrides;
use crate::model::{AlertView, Message, fmt_num, human_dur};
use crate::{Error, Result};

pub const DEFAULT_TITLE: &str = "{% if kind == 'test' %}[TEST] {% endif %}\
{% if status == 'resolved' %}Resolved: {% else %}Security Alert: {% endif %}{{ rule_name }}";

pub const DEFAULT_SUMMARY: &str = "{% if kind == 'test' %}[TEST] {% endif %}\
{% if status == 'resolved' %}RESOLVED{% else %}{{ severity|upper }}{% endif %}: {{ description or rule_name }}";

pub const DEFAULT_TEXT: &str = "{% if status == 'resolved' %}RESOLVED: {{ rule_name }} (value {{ value }}\
{% if threshold is not none %}, threshold {{ threshold }}{% endif %}){% else %}\
{{ severity|upper }}: {{ value }} {{ rule_name }}{% if window %} in {{ window }}{% endif %}\
{% if threshold is not none %} (threshold {{ threshold }}){% endif %}{% endif %}";

pub const DEFAULT_EMAIL_SUBJECT: &str = "[secmon] {% if kind == 'digest' %}\
{{ digest.period|capitalize }} digest: {{ digest.total }} alert{{ 's' if digest.total != 1 }}\
{% elif alerts|length == 1 %}{{ alerts[0].summary }}\
{% else %}{{ alerts|length }} alerts: {{ alerts[0].rule_name }}{% endif %}";

pub const DEFAULT_EMAIL_TEXT: &str = r#"{% for a in alerts %}
{{ a.title }}
{{ a.text }}
{% if a.description %}
{{ a.description }}
{% endif %}
{% if a.ip %}
IP Address: {{ a.ip }}
{% endif %}
Attempts: {{ a.count }}
{% if a.window %}
Time Window: {{ a.window }}
{% endif %}
{% if a.actions %}
Action Taken: {{ a.actions }}
{% endif %}
Severity: {{ a.severity }}{% if a.priority %} ({{ a.priority }}){% endif %}

Fired at: {{ a.fired_at }}
{% if a.resolved_at %}
Resolved at: {{ a.resolved_at }}
{% endif %}

{% endfor %}
{% if digest %}
{{ digest.period|capitalize }} digest {{ digest.from }} to {{ digest.to }}: {{ digest.total }} alerts
{% for c in digest.counts %}
  {{ c.rule_name }} ({{ c.severity }}): {{ c.count }}
{% endfor %}

{% endif %}
{% if suppressed %}
+{{ suppressed }} more alerts suppressed by rate limit

{% endif %}
-- 
{{ footer }}
"#;

pub const DEFAULT_EMAIL_HTML: &str = r#"<!DOCTYPE html>
<html><body style="font-family: sans-serif">
{% for a in alerts %}
<h2 style="color: {{ a.color }}">{{ a.title }}</h2>
<p>{{ a.text }}</p>
{% if a.description %}
<p>{{ a.description }}</p>
{% endif %}
<table>
{% if a.ip %}
<tr><th align="left">IP Address</th><td>{{ a.ip }}</td></tr>
{% endif %}
<tr><th align="left">Attempts</th><td>{{ a.count }}</td></tr>
{% if a.window %}
<tr><th align="left">Time Window</th><td>{{ a.window }}</td></tr>
{% endif %}
{% if a.actions %}
<tr><th align="left">Action Taken</th><td>{{ a.actions }}</td></tr>
{% endif %}
<tr><th align="left">Severity</th><td>{{ a.severity }}{% if a.priority %} ({{ a.priority }}){% endif %}</td></tr>
<tr><th align="left">Fired at</th><td>{{ a.fired_at }}</td></tr>
{% if a.resolved_at %}
<tr><th align="left">Resolved at</th><td>{{ a.resolved_at }}</td></tr>
{% endif %}
</table>
{% endfor %}
{% if digest %}
<h2>{{ digest.period|capitalize }} digest: {{ digest.total }} alerts</h2>
<p>{{ digest.from }} to {{ digest.to }}</p>
<table>
<tr><th align="left">Rule</th><th align="left">Severity</th><th align="right">Count</th></tr>
{% for c in digest.counts %}
<tr><td>{{ c.rule_name }}</td><td>{{ c.severity }}</td><td align="right">{{ c.count }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if suppressed %}
<p>+{{ suppressed }} more alerts suppressed by rate limit</p>
{% endif %}
<p style="color: #888">{{ footer }}</p>
</body></html>
"#;

/// Names of the templates a receiver can override.
pub const NAMES: &[&str] = &[
    "title",
    "summary",
    "text",
    "email_subject",
    "email_text",
    "email_html",
];

fn default_source(name: &str) -> &'static str {
    match name {
        "title" => DEFAULT_TITLE,
        "summary" => DEFAULT_SUMMARY,
        "text" => DEFAULT_TEXT,
        "email_subject" => DEFAULT_EMAIL_SUBJECT,
        "email_text" => DEFAULT_EMAIL_TEXT,
        _ => DEFAULT_EMAIL_HTML,
    }
}

/// A receiver's compiled templates (defaults plus its overrides).
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        // The defaults are tested to compile.
        Templates::new(&TemplateOverrides::new()).unwrap_or_else(|_| Templates {
            env: Environment::new(),
        })
    }
}

impl Templates {
    pub fn new(overrides: &TemplateOverrides) -> Result<Templates> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true);
        env.set_syntax(syntax.build().map_err(|e| Error::Template {
            name: "syntax".into(),
            reason: e.to_string(),
        })?);
        env.set_auto_escape_callback(|name| {
            if name == "email_html" {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        for name in overrides.keys() {
            if !NAMES.contains(&name.as_str()) {
                return Err(Error::Template {
                    name: name.clone(),
                    reason: format!("unknown template (known: {})", NAMES.join(", ")),
                });
            }
        }
        for name in NAMES {
            let src = overrides
                .get(*name)
                .cloned()
                .unwrap_or_else(|| default_source(name).to_string());
            env.add_template_owned(name.to_string(), src)
                .map_err(|e| Error::Template {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Templates { env })
    }

    fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<String> {
        let err = |e: minijinja::Error| Error::Template {
            name: name.to_string(),
            reason: e.to_string(),
        };
        let t = self.env.get_template(name).map_err(err)?;
        t.render(Value::from(minijinja::value::Serde(ctx)))
            .map_err(err)
    }

    /// Renders a per-alert template (`title`, `summary`, `text`).
    pub fn alert(&self, name: &str, a: &AlertView, msg: &Message, footer: &str) -> Result<String> {
        self.render(name, &alert_ctx(a, msg, footer))
    }

    /// Renders a message template (`email_subject`, `email_text`, `email_html`).
    pub fn message(&self, name: &str, msg: &Message, footer: &str) -> Result<String> {
        let ctx = self.message_ctx(msg, footer)?;
        self.render(name, &ctx)
    }

    fn message_ctx(&self, msg: &Message, footer: &str) -> Result<serde_json::Value> {
        let mut alerts = Vec::with_capacity(msg.alerts.len());
        for a in &msg.alerts {
            let mut ctx = alert_ctx(a, msg, footer);
            for name in ["title", "summary", "text"] {
                let s = self.render(name, &ctx)?;
                if let Some(m) = ctx.as_object_mut() {
                    m.insert(name.to_string(), s.into());
                }
            }
            alerts.push(ctx);
        }
        Ok(json!({
            "receiver": msg.receiver,
            "status": msg.status.as_str(),
            "kind": msg.kind,
            "suppressed": msg.suppressed,
            "alerts": alerts,
            "digest": msg.digest.as_ref().map(|d| json!({
                "period": d.period.as_str(),
                "from": d.from.to_rfc3339(),
                "to": d.to.to_rfc3339(),
                "total": d.total,
                "counts": d.counts.iter().map(|c| json!({
                    "rule": c.rule, "rule_name": c.rule_name,
                    "severity": c.severity.as_str(), "count": c.count,
                })).collect::<Vec<_>>(),
            })),
            "footer": footer,
        }))
    }
}

/// A number as JSON: integral values without `.0`.
pub fn num(v: f64) -> serde_json::Value {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| fmt_num(v).into())
    }
}

/// Template context of one alert.
pub fn alert_ctx(a: &AlertView, msg: &Message, footer: &str) -> serde_json::Value {
    let mut m = Map::new();
    m.insert("fingerprint".into(), a.fingerprint.clone().into());
    m.insert("rule".into(), a.rule.clone().into());
    m.insert("rule_name".into(), a.rule_name.clone().into());
    m.insert("description".into(), a.description.clone().into());
    m.insert("severity".into(), a.severity.as_str().into());
    m.insert(
        "priority".into(),
        a.priority
            .map(|p| p.as_str().into())
            .unwrap_or(serde_json::Value::Null),
    );
    m.insert("labels".into(), json!(a.labels));
    m.insert(
        "group".into(),
        serde_json::Value::Object(
            a.group
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
        ),
    );
    m.insert("value".into(), num(a.value));
    m.insert(
        "threshold".into(),
        a.threshold.map(num).unwrap_or(serde_json::Value::Null),
    );
    m.insert(
        "window".into(),
        a.window
            .map(|w| human_dur(w).into())
            .unwrap_or(serde_json::Value::Null),
    );
    m.insert("count".into(), a.count.into());
    m.insert("status".into(), a.status.as_str().into());
    m.insert("kind".into(), json!(msg.kind));
    m.insert("fired_at".into(), a.fired_at.to_rfc3339().into());
    m.insert(
        "resolved_at".into(),
        a.resolved_at
            .map(|t| t.to_rfc3339().into())
            .unwrap_or(serde_json::Value::Null),
    );
    m.insert(
        "ip".into(),
        a.ip().map(Into::into).unwrap_or(serde_json::Value::Null),
    );
    m.insert("actions".into(), a.actions_taken.join(", ").into());
    m.insert("actions_taken".into(), json!(a.actions_taken));
    m.insert("color".into(), html_color(a).into());
    m.insert("footer".into(), footer.into());
    serde_json::Value::Object(m)
}

fn html_color(a: &AlertView) -> &'static str {
    use secmon_core::Severity::*;
    if a.status == crate::model::AlertStatus::Resolved {
        return "#2eb886";
    }
    match a.severity {
        Critical | High => "#a30200",
        Medium => "#daa038",
        Low => "#439fe0",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{AlertStatus, MessageKind};
    use secmon_core::{Dur, Severity, Timestamp};

    pub fn alert() -> AlertView {
        AlertView {
            id: Some(7),
            fingerprint: "fp-1".into(),
            rule: "failed_logins_ip".into(),
            rule_name: "Multiple Failed Logins".into(),
            description: String::new(),
            severity: Severity::High,
            priority: Some(secmon_core::Priority::P2),
            labels: Default::default(),
            group: vec![("ip".into(), "192.168.1.100".into())],
            value: 10.0,
            threshold: Some(10.0),
            window: Some(Dur::from_mins(5)),
            count: 10,
            status: AlertStatus::Firing,
            fired_at: Timestamp::from_millis(1_705_312_200_000),
            resolved_at: None,
            actions_taken: vec!["IP blocked for 1 hour".into()],
            actions: Vec::new(),
        }
    }

    pub fn message(alerts: Vec<AlertView>) -> Message {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Message {
            receiver: "r".into(),
            alerts,
            status,
            kind: MessageKind::Alert,
            idempotency_key: "key-1".into(),
            suppressed: 0,
            digest: None,
        }
    }

    #[test]
    fn defaults_reproduce_seed_texts() {
        let t = Templates::default();
        let mut a = alert();
        let m = message(vec![a.clone()]);
        assert_eq!(
            t.alert("title", &a, &m, "f").unwrap(),
            "Security Alert: Multiple Failed Logins"
        );
        assert_eq!(
            t.alert("summary", &a, &m, "f").unwrap(),
            "HIGH: Multiple Failed Logins"
        );
        assert_eq!(
            t.alert("text", &a, &m, "f").unwrap(),
            "HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)"
        );
        a.description = "Admin authentication brute force detected".into();
        a.severity = Severity::Critical;
        assert_eq!(
            t.alert("summary", &a, &m, "f").unwrap(),
            "CRITICAL: Admin authentication brute force detected"
        );
        a.status = AlertStatus::Resolved;
        a.value = 2.5;
        assert_eq!(
            t.alert("text", &a, &m, "f").unwrap(),
            "RESOLVED: Multiple Failed Logins (value 2.5, threshold 10)"
        );
        assert_eq!(
            t.alert("title", &a, &m, "f").unwrap(),
            "Resolved: Multiple Failed Logins"
        );
    }

    #[test]
    fn overrides_and_html_escaping() {
        let mut o = TemplateOverrides::new();
        o.insert(
            "text".into(),
            "CRITICAL: {{ value }} auth failures in 5min".into(),
        );
        let t = Templates::new(&o).unwrap();
        let mut a = alert();
        a.rule_name = "<b>x</b>".into();
        let m = message(vec![a.clone()]);
        assert_eq!(
            t.alert("text", &a, &m, "f").unwrap(),
            "CRITICAL: 10 auth failures in 5min"
        );
        let html = t.message("email_html", &m, "f").unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"), "{html}");
        let text = t.message("email_text", &m, "f").unwrap();
        assert!(text.contains("<b>x</b>"), "{text}");
        assert!(text.contains("IP Address: 192.168.1.100\nAttempts: 10\nTime Window: 5 minutes\nAction Taken: IP blocked for 1 hour\nSeverity: high (P2)\n"), "{text}");
        o.insert("nope".into(), "x".into());
        assert!(Templates::new(&o).is_err());
        let mut bad = TemplateOverrides::new();
        bad.insert("title".into(), "{% if %}".into());
        assert!(Templates::new(&bad).is_err());
    }
}
