//! Builtin pattern sets, enabled by name in `parse.builtin` (default
//! `["sshd"]`). Their event names and field names are a contract with rule
//! files: rename nothing here without changing the rules.
//!
//! `sshd` covers OpenSSH's authentication messages as they appear in the
//! loghub OpenSSH and Linux samples and in fail2ban's `filter.d/sshd.conf`
//! (rewritten without look-around, which the regex crate does not have).
//! Every pattern is filtered on syslog program `sshd` (which also covers
//! `sshd(pam_unix)` and `sshd-session`), anchored at the start of the syslog
//! message, and captures `ip`, `user`, `port` (int) and `method` where the
//! line has them. Failures are level WARN, the rest INFO; all carry
//! `service: sshd`.
//!
//! This module only describes patterns; compiling and matching are in
//! [`pattern`](crate::pattern).

use std::collections::BTreeMap;
use std::net::IpAddr;

use secmon_core::{Fields, Str, Value};

use crate::config::FieldType;
use crate::fields::Kind;
use crate::pattern::{Post, Spec};
use crate::sshd::Fast;

/// Names of the builtin sets, in the order their patterns are numbered.
pub const BUILTIN_SETS: &[&str] = &["sshd"];

/// IPv4, or IPv6 (including `::ffff:1.2.3.4`), no zone.
const IP: &str = r"(?P<ip>[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*)";

struct Def {
    event: &'static str,
    level: &'static str,
    pattern: String,
    post: Option<Post>,
}

fn sshd() -> Vec<Def> {
    let d = |event, level, pattern: String| Def {
        event,
        level,
        pattern,
        post: None,
    };
    let user_from = r"(?P<invalid_user>invalid user )?(?P<user>.*?) from ";
    vec![
        d(
            "sshd.auth_failed",
            "WARN",
            format!(r"^Failed (?P<method>\S+) for {user_from}{IP} port (?P<port>[0-9]+)"),
        ),
        d(
            "sshd.auth_failed",
            "WARN",
            format!(
                r"^message repeated (?P<repeat>[0-9]+) times: \[ ?Failed (?P<method>\S+) for {user_from}{IP} port (?P<port>[0-9]+)"
            ),
        ),
        d(
            "sshd.invalid_user",
            "WARN",
            format!(r"^[Ii]nvalid user (?P<user>.*?) from {IP}(?: port (?P<port>[0-9]+))?"),
        ),
        Def {
            event: "sshd.pam_auth_failure",
            level: "WARN",
            pattern: r"^(?:pam_unix\(sshd:auth\): )?authentication failure; .*?rhost=(?P<rhost>\S+)(?:\s+user=(?P<user>\S+))?"
                .to_string(),
            post: Some(Post {
                run: rhost_ip,
                reads: &["fields.rhost"],
                writes: &["fields.ip"],
            }),
        },
        d(
            "sshd.accepted",
            "INFO",
            format!(r"^Accepted (?P<method>\S+) for (?P<user>.*?) from {IP} port (?P<port>[0-9]+)"),
        ),
        d(
            "sshd.max_auth_exceeded",
            "WARN",
            format!(
                r"^(?:error: )?maximum authentication attempts exceeded for {user_from}{IP} port (?P<port>[0-9]+)"
            ),
        ),
        d(
            "sshd.too_many_auth_failures",
            "WARN",
            r"^Disconnecting: Too many authentication failures(?: for (?P<invalid_user>invalid user )?(?P<user>\S*))?"
                .to_string(),
        ),
        d(
            "sshd.too_many_auth_failures",
            "WARN",
            format!(
                r"^Disconnecting (?:(?P<invalid_user>invalid)|authenticating) user (?P<user>\S*) {IP} port (?P<port>[0-9]+): Too many authentication failures"
            ),
        ),
        d(
            "sshd.reverse_mapping_failed",
            "WARN",
            format!(r"^reverse mapping checking getaddrinfo for (?P<rhost>\S+) \[{IP}\] failed"),
        ),
        d(
            "sshd.reverse_mapping_failed",
            "WARN",
            format!(r"^Address {IP} maps to (?P<rhost>\S+), but this does not map back to the address"),
        ),
        d(
            "sshd.connection_closed",
            "INFO",
            format!(
                r"^Connection (?:closed|reset) by (?:(?:(?P<invalid_user>invalid)|authenticating) user (?P<user>\S*) )?{IP}(?: port (?P<port>[0-9]+))?"
            ),
        ),
        d(
            "sshd.disconnect",
            "INFO",
            format!(
                r"^(?:error: )?Received disconnect from {IP}(?: port (?P<port>[0-9]+))?:\s*(?P<code>[0-9]+): (?P<reason>.*?)(?: \[preauth\])?$"
            ),
        ),
        d(
            "sshd.no_identification",
            "WARN",
            format!(r"^Did not receive identification string from {IP}(?: port (?P<port>[0-9]+))?"),
        ),
    ]
}

/// `rhost` may be a host name; `ip` is set only when it is an address.
/// Reads and writes only what its [`Post`] declares.
fn rhost_ip(fields: &mut Fields) {
    let ip = match fields.get("fields.rhost").and_then(Value::as_str) {
        Some(r) if r.parse::<IpAddr>().is_ok() => Str::from(r),
        _ => return,
    };
    fields.insert("fields.ip", Value::Str(ip));
}

/// The patterns of set `name`, numbered from `first_index`; `None` for an
/// unknown set.
pub(crate) fn specs(name: &str, set_pos: usize, first_index: u32) -> Option<Vec<Spec>> {
    let (defs, fast): (_, &[Fast]) = match name {
        "sshd" => (sshd(), &crate::sshd::SSHD),
        _ => return None,
    };
    Some(
        defs.into_iter()
            .enumerate()
            .map(|(j, d)| {
                let mut types = BTreeMap::new();
                for (k, t) in [
                    ("port", FieldType::Int),
                    ("repeat", FieldType::Int),
                    ("code", FieldType::Int),
                ] {
                    if d.pattern.contains(&format!("(?P<{k}>")) {
                        types.insert(k.to_string(), Kind::Typed(t));
                    }
                }
                if d.pattern.contains("(?P<invalid_user>") {
                    types.insert("invalid_user".to_string(), Kind::Flag);
                }
                Spec {
                    index: first_index + j as u32,
                    name: format!("{name}/{}", d.event.rsplit('.').next().unwrap_or(d.event)),
                    field: format!("parse.builtin[{set_pos}] ({name} pattern {j})"),
                    pattern: d.pattern,
                    event: Some(d.event.to_string()),
                    program: Some(name.to_string()),
                    ts: None,
                    types,
                    statics: vec![
                        ("service".to_string(), Value::from(name)),
                        ("level".to_string(), Value::from(d.level)),
                    ],
                    post: d.post,
                    fast: fast.get(j).copied(),
                }
            })
            .collect(),
    )
}

/// Number of patterns in set `name` (0 if unknown), for stable numbering.
pub(crate) fn len(name: &str) -> usize {
    match name {
        "sshd" => sshd().len(),
        _ => 0,
    }
}
