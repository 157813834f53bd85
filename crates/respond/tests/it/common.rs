use std::collections::BTreeMap;

use secmon_core::{Priority, Severity, Timestamp};
use secmon_respond::FireInput;

/// 2024-01-15T10:00:00Z, the seed's example day.
pub const T0: Timestamp = Timestamp(1_705_312_800_000);

pub fn at(mins: i64) -> Timestamp {
    Timestamp(T0.0 + mins * 60_000)
}

pub fn fire(rule: &str, group: &[(&str, &str)], t: Timestamp) -> FireInput {
    FireInput {
        rule: rule.to_string(),
        rule_name: format!("{rule} (name)"),
        severity: Severity::High,
        priority: Some(Priority::P2),
        labels: BTreeMap::from([("team".to_string(), "security".to_string())]),
        group: group
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        at: t,
        value: 10.0,
        threshold: Some(10.0),
        evidence: vec![serde_json::json!({"event": "auth.login_failed"})],
    }
}
