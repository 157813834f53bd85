//! The catalog of security events from seed 003 ("What to Log"): every event
//! name applications are asked to emit, its expected level and the fields it
//! must carry. secmon processes events that break the catalog anyway (a
//! missing field is a logging bug, not a reason to go blind) but counts and
//! reports them, so the logging gap gets fixed.
//!
//! Field names are the canonical ones after alias resolution (`ip`, not
//! `ip_address`; `email`, not `email_attempted`; `reason`, not
//! `failure_reason`), all under `fields.`. `timestamp` is implied by every
//! event and not listed.

use crate::{Event, Level};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    pub name: &'static str,
    pub level: Level,
    /// Required field names, relative to `fields.`.
    pub required: &'static [&'static str],
    pub description: &'static str,
}

macro_rules! spec {
    ($name:literal, $level:ident, [$($f:literal),*], $desc:literal) => {
        EventSpec { name: $name, level: Level::$level, required: &[$($f),*], description: $desc }
    };
}

pub const CATALOG: &[EventSpec] = &[
    // Authentication
    spec!(
        "auth.login_succeeded",
        Info,
        ["user_id", "ip", "user_agent"],
        "Successful login"
    ),
    spec!(
        "auth.login_failed",
        Warn,
        ["email", "ip", "reason"],
        "Failed login"
    ),
    spec!(
        "auth.password_reset_requested",
        Info,
        ["email", "ip"],
        "Password reset request"
    ),
    spec!(
        "auth.session_created",
        Info,
        ["user_id", "session_id_prefix", "ip"],
        "Session created"
    ),
    spec!(
        "auth.session_invalidated",
        Info,
        ["user_id", "reason"],
        "Session invalidated (logout/timeout/revoked)"
    ),
    spec!(
        "auth.mfa_succeeded",
        Info,
        ["user_id", "method"],
        "MFA success (totp/backup_code)"
    ),
    spec!(
        "auth.mfa_failed",
        Warn,
        ["user_id", "method", "reason"],
        "MFA failure"
    ),
    spec!(
        "admin.auth_failed",
        Warn,
        ["user_id", "ip"],
        "Admin authentication failure"
    ),
    // Authorization
    spec!(
        "authz.access_denied",
        Warn,
        ["user_id", "resource", "action", "reason"],
        "Access denied"
    ),
    spec!(
        "authz.admin_action",
        Info,
        ["admin_id", "action", "target", "details"],
        "Admin action"
    ),
    spec!(
        "authz.permission_changed",
        Info,
        ["user_id", "target_user", "permission", "change"],
        "Permission change"
    ),
    spec!(
        "authz.api_key_created",
        Info,
        ["user_id", "key_prefix", "scopes"],
        "API key created"
    ),
    spec!(
        "authz.api_key_revoked",
        Info,
        ["user_id", "key_prefix", "reason"],
        "API key revoked"
    ),
    // Rate limiting
    spec!(
        "ratelimit.warning",
        Info,
        ["identifier", "endpoint", "count", "limit"],
        "Rate limit warning (80%)"
    ),
    spec!(
        "ratelimit.exceeded",
        Warn,
        ["identifier", "endpoint", "count", "limit", "retry_after"],
        "Rate limit exceeded"
    ),
    spec!(
        "ratelimit.burst",
        Error,
        ["identifier", "endpoint", "requests_in_window"],
        "Rate limit burst"
    ),
    // Vault and encryption
    spec!(
        "vault.unlock_succeeded",
        Info,
        ["user_id", "method"],
        "Vault unlock success (password/biometric)"
    ),
    spec!(
        "vault.unlock_failed",
        Warn,
        ["user_id", "method", "attempt_count"],
        "Vault unlock failure"
    ),
    spec!(
        "vault.locked",
        Info,
        ["user_id", "idle_duration"],
        "Vault locked (timeout)"
    ),
    spec!(
        "crypto.key_rotated",
        Info,
        ["old_version", "new_version", "migrated_count"],
        "Encryption key rotation"
    ),
    spec!(
        "crypto.decryption_failed",
        Error,
        ["context", "error_type"],
        "Decryption failure"
    ),
    // Containers
    spec!(
        "container.created",
        Info,
        ["user_id", "container_id"],
        "Container created"
    ),
    spec!(
        "container.started",
        Info,
        ["user_id", "container_id", "wake_reason"],
        "Container started"
    ),
    spec!(
        "container.hibernated",
        Info,
        ["user_id", "container_id", "mode"],
        "Container hibernated (pause/stop)"
    ),
    spec!(
        "container.error",
        Error,
        ["user_id", "container_id", "error"],
        "Container error"
    ),
    spec!(
        "container.resource_limit",
        Warn,
        ["user_id", "container_id", "resource"],
        "Resource limit hit (memory/cpu)"
    ),
];

pub fn lookup(name: &str) -> Option<&'static EventSpec> {
    CATALOG.iter().find(|s| s.name == name)
}

/// Required fields of the event's catalog entry that the event lacks, or an
/// empty iterator for complete or uncatalogued events. Checks `fields.<name>`.
pub fn missing_fields(event: &Event) -> impl Iterator<Item = &'static str> + '_ {
    let spec = event.name().and_then(lookup);
    spec.into_iter().flat_map(move |s| {
        s.required.iter().copied().filter(move |f| {
            let mut buf = [0u8; 64];
            let key = prefixed(&mut buf, f);
            event.get(key).is_none()
        })
    })
}

/// `fields.` + name without allocating (names in the catalog are short).
fn prefixed<'a>(buf: &'a mut [u8; 64], name: &str) -> &'a str {
    const P: &[u8] = b"fields.";
    let n = P.len() + name.len();
    if n > buf.len() {
        return "";
    }
    buf[..P.len()].copy_from_slice(P);
    buf[P.len()..n].copy_from_slice(name.as_bytes());
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fields, Timestamp, Value};

    #[test]
    fn catalog_has_all_26_events_unique() {
        assert_eq!(CATALOG.len(), 26);
        let mut names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 26);
    }

    #[test]
    fn reports_missing_required_fields() {
        let mut f = Fields::new();
        f.insert("event", Value::from("auth.login_failed"));
        f.insert("fields.ip", Value::from("1.2.3.4"));
        let e = Event::new(Timestamp(0), f);
        let missing: Vec<_> = missing_fields(&e).collect();
        assert_eq!(missing, vec!["email", "reason"]);
    }

    #[test]
    fn unknown_events_have_no_requirements() {
        let mut f = Fields::new();
        f.insert("event", Value::from("custom.thing"));
        assert_eq!(missing_fields(&Event::new(Timestamp(0), f)).count(), 0);
    }
}
