//! Decisions: time-bounded sanctions (block an IP, lock an account, a vault,
//! an admin, or a custom scope) made from alerts by configured actions or by
//! hand, persisted, and served from an in-memory index of the active ones.
//!
//! Safety comes first here because values come from attacker-controlled logs:
//! every value is validated (an IP must parse as an IP; identifiers have a
//! bounded length and a small charset, no leading `-`), and the allowlist is
//! checked before anything is written; refusals are persisted for audit.
//! Repeat offenders get escalating durations (a ladder over a lookback).
//!
//! This module does not publish (see [`crate::publish`]): every change is
//! returned as a [`DecisionChange`] for the caller to hand to publishers, so
//! the database commit comes first and a publish failure can be retried.
//! It never reads the clock.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::{OptionalExtension, Row, params};
use secmon_core::{Dur, Timestamp};
use serde::Serialize;

use crate::alerts::Alert;
use crate::config::{ActionConfig, AllowlistConfig, Scope, parse_cidr};
use crate::error::{RespondError, Result};
use crate::store::Cached;
use crate::store::Store;

/// Longest identifier accepted as a decision value.
pub const MAX_VALUE_LEN: usize = 256;
/// How much of a refused value is kept in the audit log.
const REFUSAL_VALUE_KEEP: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionState {
    Active,
    Expired,
    Deleted,
}

impl DecisionState {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionState::Active => "active",
            DecisionState::Expired => "expired",
            DecisionState::Deleted => "deleted",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(DecisionState::Active),
            "expired" => Ok(DecisionState::Expired),
            "deleted" => Ok(DecisionState::Deleted),
            o => Err(RespondError::corrupt("decisions", format!("state {o:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub id: i64,
    pub scope: Scope,
    /// Validated and normalised (IPs in canonical form).
    pub value: String,
    /// The action that made it (`block_ip`), or `manual`.
    pub action: String,
    pub reason: String,
    /// The rule whose alert caused it; `None` for manual decisions.
    pub origin_rule: Option<String>,
    pub alert_id: Option<i64>,
    /// Who made it by hand; `None` for automated decisions.
    pub author: Option<String>,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub state: DecisionState,
    pub removed_at: Option<Timestamp>,
    pub removed_by: Option<String>,
}

impl Decision {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.state == DecisionState::Active && self.expires > now
    }
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Timestamp) -> Dur {
        let d = self.expires.since(now);
        if d > Dur::ZERO { d } else { Dur::ZERO }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum DecisionOutcome {
    Created(Decision),
    /// An active decision on the same target got a later expiry.
    Extended(Decision),
    /// An active decision already covers the target at least as long.
    AlreadyActive(Decision),
    /// Not made: allowlisted or an invalid value. Logged in `decision_refusals`.
    Refused {
        reason: String,
    },
    /// The action makes no decision, or the alert lacks the value's field.
    NotApplicable,
}

impl DecisionOutcome {
    /// What publishers must be told, if anything.
    pub fn change(&self) -> Option<DecisionChange> {
        match self {
            DecisionOutcome::Created(d) | DecisionOutcome::Extended(d) => {
                Some(DecisionChange::Added(d.clone()))
            }
            _ => None,
        }
    }
}

/// A change for the enforcing side: `Added` is also sent for an extension
/// (publishers overwrite with the new expiry).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", content = "decision", rename_all = "lowercase")]
pub enum DecisionChange {
    Added(Decision),
    Removed(Decision),
}

impl DecisionChange {
    pub fn decision(&self) -> &Decision {
        match self {
            DecisionChange::Added(d) | DecisionChange::Removed(d) => d,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refusal {
    pub id: i64,
    pub at: Timestamp,
    pub action: String,
    pub scope: String,
    /// Escaped and truncated: the audit log must not become an injection vector.
    pub value: String,
    pub reason: String,
    pub origin_rule: Option<String>,
    pub alert_id: Option<i64>,
}

/// Checks and normalises a value for `scope`. The error is a reason fit for
/// a log line: it never repeats the raw value.
pub fn validate_value(scope: &Scope, value: &str) -> std::result::Result<String, String> {
    match scope {
        Scope::Ip => {
            // IPv6 text is at most 45 bytes; bound before parsing anything.
            if value.len() > 64 {
                return Err("invalid ip: too long".to_string());
            }
            let ip: IpAddr = value
                .parse()
                .map_err(|_| "invalid ip: not an IP address".to_string())?;
            // `::ffff:1.2.3.4` and `1.2.3.4` are one host: one key.
            let ip = ip.to_canonical();
            if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                return Err("invalid ip: unspecified, loopback or multicast address".to_string());
            }
            if let IpAddr::V4(v4) = ip
                && v4.is_broadcast()
            {
                return Err("invalid ip: broadcast address".to_string());
            }
            Ok(ip.to_string())
        }
        _ => {
            if value.is_empty() {
                return Err("invalid value: empty".to_string());
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(format!("invalid value: longer than {MAX_VALUE_LEN} bytes"));
            }
            if !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
            {
                return Err("invalid value: characters outside [A-Za-z0-9._@+-]".to_string());
            }
            // A leading '-' would be read as an option by an exec hook's program.
            if value.starts_with('-') {
                return Err("invalid value: starts with '-'".to_string());
            }
            if value.bytes().all(|b| b == b'.') {
                return Err("invalid value: only dots".to_string());
            }
            Ok(value.to_string())
        }
    }
}

/// The allowlist in matchable form.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    nets: Vec<IpNet>,
    users: Vec<String>,
}

impl Allowlist {
    /// Invalid CIDRs are a config error, never silently dropped: an allowlist
    /// that quietly lost an entry would let secmon block a protected host.
    pub fn new(cfg: &AllowlistConfig) -> Result<Allowlist> {
        let mut nets = Vec::new();
        for c in &cfg.cidrs {
            nets.push(parse_cidr(c).ok_or_else(|| {
                RespondError::Config(format!("allowlist.cidrs: {c:?} is not a CIDR or IP"))
            })?);
        }
        Ok(Allowlist {
            nets,
            users: cfg.users.iter().map(|u| u.to_ascii_lowercase()).collect(),
        })
    }

    /// `value` is already validated and normalised. Users compare without
    /// ASCII case: emails are case-insensitive in practice, and erring
    /// towards "allowlisted" is the safe direction.
    pub fn contains(&self, scope: &Scope, value: &str) -> bool {
        match scope {
            Scope::Ip => match value.parse::<IpAddr>() {
                Ok(ip) => self.nets.iter().any(|n| n.contains(&ip)),
                Err(_) => false,
            },
            _ => self.users.iter().any(|u| u.eq_ignore_ascii_case(value)),
        }
    }
}

const DECISION_COLS: &str = "id, scope, value, action, reason, origin_rule, alert_id, author, \
     created, expires, state, removed_at, removed_by";

/// Decisions over a [`Store`], with the active ones indexed in memory.
pub struct Decisions<'s> {
    store: &'s Store,
    allow: Allowlist,
    index: HashMap<(Scope, String), Decision>,
}

struct Request<'a> {
    scope: &'a Scope,
    raw_value: &'a str,
    action: &'a str,
    origin_rule: Option<&'a str>,
    alert_id: Option<i64>,
    author: Option<&'a str>,
}

impl<'s> Decisions<'s> {
    /// Loads every active decision into the index (including ones already
    /// past their expiry: [`Decisions::expire_due`] un-publishes those).
    pub fn open(store: &'s Store, allowlist: &AllowlistConfig) -> Result<Self> {
        let allow = Allowlist::new(allowlist)?;
        let mut index = HashMap::new();
        {
            let mut stmt = store.conn().prepare(&format!(
                "SELECT {DECISION_COLS} FROM decisions WHERE state = 'active' ORDER BY id"
            ))?;
            let rows = stmt.query_map([], raw_decision)?;
            for r in rows {
                let d = r?.into_decision()?;
                index.insert((d.scope.clone(), d.value.clone()), d);
            }
        }
        Ok(Decisions {
            store,
            allow,
            index,
        })
    }

    /// Applies a configured action to an alert.
    pub fn from_action(
        &mut self,
        action_name: &str,
        action: &ActionConfig,
        alert: &Alert,
        now: Timestamp,
    ) -> Result<DecisionOutcome> {
        let Some(da) = &action.decision else {
            return Ok(DecisionOutcome::NotApplicable);
        };
        let raw = match &da.from {
            Some(f) => alert.group_value(f.as_str()),
            None => da
                .scope
                .default_fields()
                .iter()
                .find_map(|f| alert.group_value(f)),
        };
        let Some(raw) = raw else {
            return Ok(DecisionOutcome::NotApplicable);
        };
        let req = Request {
            scope: &da.scope,
            raw_value: raw,
            action: action_name,
            origin_rule: Some(&alert.rule),
            alert_id: Some(alert.id),
            author: None,
        };
        let value = match self.admit(&req, now)? {
            Ok(v) => v,
            Err(refused) => return Ok(refused),
        };
        let tx = self.store.write_tx()?;
        // Offences: every decision on this target within the lookback, in any
        // state, so an expired or deleted ban still makes the next one longer.
        let since = now.sub(da.lookback);
        let prior: i64 = tx.row(
            "SELECT COUNT(*) FROM decisions WHERE scope = ?1 AND value = ?2 AND created >= ?3",
            params![da.scope.as_str(), value, since.0],
            |r| r.get(0),
        )?;
        let key = (da.scope.clone(), value.clone());
        let active = self.index.get(&key).filter(|d| d.is_active(now)).cloned();
        // A repeat fire while a decision stands is the same offence, not a
        // new one: it may extend to that step's duration but not climb the ladder.
        let step = if active.is_some() { prior - 1 } else { prior };
        let duration = ladder_step(da.duration, &da.ladder, step);
        let expires = now.add(duration);
        let reason = format!(
            "{action_name}: {} ({}) fired {}x, value {}",
            alert.rule_name, alert.rule, alert.count, alert.value
        );
        let outcome = match active {
            Some(mut d) => {
                if expires <= d.expires {
                    return Ok(DecisionOutcome::AlreadyActive(d));
                }
                d.expires = expires;
                d.reason = reason;
                tx.exec(
                    "UPDATE decisions SET expires = ?2, reason = ?3 WHERE id = ?1",
                    params![d.id, d.expires.0, d.reason],
                )?;
                DecisionOutcome::Extended(d)
            }
            None => {
                let d = insert(&tx, &req, value, reason, now, expires)?;
                DecisionOutcome::Created(d)
            }
        };
        tx.commit()?;
        if let DecisionOutcome::Created(d) | DecisionOutcome::Extended(d) = &outcome {
            self.index.insert(key, d.clone());
        }
        Ok(outcome)
    }

    /// A decision made by an operator. Validation and the allowlist apply as
    /// to automated ones; an active decision on the target gets the new
    /// expiry and reason (the operator's word replaces the automatic one).
    pub fn add_manual(
        &mut self,
        scope: &Scope,
        value: &str,
        duration: Dur,
        reason: &str,
        author: &str,
        now: Timestamp,
    ) -> Result<DecisionOutcome> {
        if duration <= Dur::ZERO {
            return Err(RespondError::invalid(
                "decision",
                "duration must be positive",
            ));
        }
        let req = Request {
            scope,
            raw_value: value,
            action: "manual",
            origin_rule: None,
            alert_id: None,
            author: Some(author),
        };
        let value = match self.admit(&req, now)? {
            Ok(v) => v,
            Err(refused) => return Ok(refused),
        };
        let key = (scope.clone(), value.clone());
        let expires = now.add(duration);
        let reason = format!("manual by {author}: {reason}");
        let tx = self.store.write_tx()?;
        let outcome = match self.index.get(&key).filter(|d| d.is_active(now)).cloned() {
            Some(mut d) => {
                d.expires = expires;
                d.reason = reason;
                d.author = Some(author.to_string());
                tx.exec(
                    "UPDATE decisions SET expires = ?2, reason = ?3, author = ?4 WHERE id = ?1",
                    params![d.id, d.expires.0, d.reason, d.author],
                )?;
                DecisionOutcome::Extended(d)
            }
            None => DecisionOutcome::Created(insert(&tx, &req, value, reason, now, expires)?),
        };
        tx.commit()?;
        if let DecisionOutcome::Created(d) | DecisionOutcome::Extended(d) = &outcome {
            self.index.insert(key, d.clone());
        }
        Ok(outcome)
    }

    /// Lifts an active decision by hand.
    pub fn delete(&mut self, id: i64, author: &str, now: Timestamp) -> Result<DecisionChange> {
        let mut d = self.by_id(id)?.ok_or(RespondError::NotFound {
            what: "decision",
            id,
        })?;
        if d.state != DecisionState::Active {
            return Err(RespondError::Conflict(format!(
                "decision {id} is already {}",
                d.state.as_str()
            )));
        }
        d.state = DecisionState::Deleted;
        d.removed_at = Some(now);
        d.removed_by = Some(author.to_string());
        self.store.conn().exec(
            "UPDATE decisions SET state = 'deleted', removed_at = ?2, removed_by = ?3
             WHERE id = ?1 AND state = 'active'",
            params![id, now.0, author],
        )?;
        self.index.remove(&(d.scope.clone(), d.value.clone()));
        Ok(DecisionChange::Removed(d))
    }

    /// Marks every active decision whose time is up as expired and returns
    /// them, for publishers to un-publish.
    pub fn expire_due(&mut self, now: Timestamp) -> Result<Vec<Decision>> {
        let mut due: Vec<Decision> = self
            .index
            .values()
            .filter(|d| d.expires <= now)
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        due.sort_by_key(|d| (d.expires, d.id));
        let tx = self.store.write_tx()?;
        for d in &mut due {
            tx.exec(
                "UPDATE decisions SET state = 'expired', removed_at = ?2 WHERE id = ?1 AND state = 'active'",
                params![d.id, now.0],
            )?;
            d.state = DecisionState::Expired;
            d.removed_at = Some(now);
        }
        tx.commit()?;
        for d in &due {
            self.index.remove(&(d.scope.clone(), d.value.clone()));
        }
        Ok(due)
    }

    /// The decision in force on (scope, value) at `now`, from memory. The
    /// value is looked up as given after normalisation (so `::ffff:1.2.3.4`
    /// finds `1.2.3.4`); an invalid value has no decision.
    pub fn get(&self, scope: &Scope, value: &str, now: Timestamp) -> Option<&Decision> {
        let v = validate_value(scope, value).ok()?;
        self.index
            .get(&(scope.clone(), v))
            .filter(|d| d.is_active(now))
    }

    /// Decisions in force at `now`, soonest expiry first.
    pub fn list_active(&self, now: Timestamp) -> Vec<Decision> {
        let mut v: Vec<Decision> = self
            .index
            .values()
            .filter(|d| d.is_active(now))
            .cloned()
            .collect();
        v.sort_by_key(|d| (d.expires, d.id));
        v
    }

    pub fn by_id(&self, id: i64) -> Result<Option<Decision>> {
        self.store
            .conn()
            .row(
                &format!("SELECT {DECISION_COLS} FROM decisions WHERE id = ?1"),
                [id],
                raw_decision,
            )
            .optional()?
            .map(RawDecision::into_decision)
            .transpose()
    }

    /// Every decision ever made on a target, newest first.
    pub fn history(&self, scope: &Scope, value: &str) -> Result<Vec<Decision>> {
        let mut stmt = self.store.conn().prepare(&format!(
            "SELECT {DECISION_COLS} FROM decisions WHERE scope = ?1 AND value = ?2 ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map(params![scope.as_str(), value], raw_decision)?;
        rows.map(|r| r?.into_decision()).collect()
    }

    /// The newest refusals.
    pub fn refusals(&self, limit: usize) -> Result<Vec<Refusal>> {
        let mut stmt = self.store.conn().prepare(
            "SELECT id, at, action, scope, value, reason, origin_rule, alert_id
             FROM decision_refusals ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit.min(i64::MAX as usize) as i64], |r| {
            Ok(Refusal {
                id: r.get(0)?,
                at: Timestamp(r.get(1)?),
                action: r.get(2)?,
                scope: r.get(3)?,
                value: r.get(4)?,
                reason: r.get(5)?,
                origin_rule: r.get(6)?,
                alert_id: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Validation, then the allowlist; a refusal is persisted before it is
    /// returned. `Ok(Err(outcome))` is a refusal, `Err` a store failure.
    fn admit(
        &mut self,
        req: &Request<'_>,
        now: Timestamp,
    ) -> Result<std::result::Result<String, DecisionOutcome>> {
        let reason = match validate_value(req.scope, req.raw_value) {
            Ok(v) if self.allow.contains(req.scope, &v) => "allowlisted".to_string(),
            Ok(v) => return Ok(Ok(v)),
            Err(reason) => reason,
        };
        self.store.conn().exec(
            "INSERT INTO decision_refusals (at, action, scope, value, reason, origin_rule, alert_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                now.0,
                req.action,
                req.scope.as_str(),
                escape_excerpt(req.raw_value),
                reason,
                req.origin_rule,
                req.alert_id
            ],
        )?;
        Ok(Err(DecisionOutcome::Refused { reason }))
    }
}

/// `k` previous offences: 0 → `base`, k → `ladder[min(k-1, len-1)]`.
pub fn ladder_step(base: Dur, ladder: &[Dur], k: i64) -> Dur {
    if k <= 0 || ladder.is_empty() {
        return base;
    }
    let i = usize::try_from(k - 1)
        .unwrap_or(usize::MAX)
        .min(ladder.len() - 1);
    ladder[i]
}

fn insert(
    tx: &rusqlite::Connection,
    req: &Request<'_>,
    value: String,
    reason: String,
    now: Timestamp,
    expires: Timestamp,
) -> Result<Decision> {
    tx.exec(
        "INSERT INTO decisions (scope, value, action, reason, origin_rule, alert_id, author,
             created, expires, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'active')",
        params![
            req.scope.as_str(),
            value,
            req.action,
            reason,
            req.origin_rule,
            req.alert_id,
            req.author,
            now.0,
            expires.0
        ],
    )?;
    Ok(Decision {
        id: tx.last_insert_rowid(),
        scope: req.scope.clone(),
        value,
        action: req.action.to_string(),
        reason,
        origin_rule: req.origin_rule.map(str::to_string),
        alert_id: req.alert_id,
        author: req.author.map(str::to_string),
        created: now,
        expires,
        state: DecisionState::Active,
        removed_at: None,
        removed_by: None,
    })
}

/// Debug-escaped and cut: newlines and control bytes from a log line must not
/// forge entries in whatever later prints the audit log.
fn escape_excerpt(s: &str) -> String {
    let mut cut = s.len().min(REFUSAL_VALUE_KEEP);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = s[..cut].escape_debug().to_string();
    if cut < s.len() {
        out.push_str(&format!("…(+{} bytes)", s.len() - cut));
    }
    out
}

struct RawDecision {
    id: i64,
    scope: String,
    value: String,
    action: String,
    reason: String,
    origin_rule: Option<String>,
    alert_id: Option<i64>,
    author: Option<String>,
    created: i64,
    expires: i64,
    state: String,
    removed_at: Option<i64>,
    removed_by: Option<String>,
}

fn raw_decision(r: &Row<'_>) -> rusqlite::Result<RawDecision> {
    Ok(RawDecision {
        id: r.get(0)?,
        scope: r.get(1)?,
        value: r.get(2)?,
        action: r.get(3)?,
        reason: r.get(4)?,
        origin_rule: r.get(5)?,
        alert_id: r.get(6)?,
        author: r.get(7)?,
        created: r.get(8)?,
        expires: r.get(9)?,
        state: r.get(10)?,
        removed_at: r.get(11)?,
        removed_by: r.get(12)?,
    })
}

impl RawDecision {
    fn into_decision(self) -> Result<Decision> {
        Ok(Decision {
            id: self.id,
            scope: Scope::parse(&self.scope).map_err(|e| RespondError::corrupt("decisions", e))?,
            value: self.value,
            action: self.action,
            reason: self.reason,
            origin_rule: self.origin_rule,
            alert_id: self.alert_id,
            author: self.author,
            created: Timestamp(self.created),
            expires: Timestamp(self.expires),
            state: DecisionState::parse(&self.state)?,
            removed_at: self.removed_at.map(Timestamp),
            removed_by: self.removed_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(
            validate_value(&Scope::Ip, "::ffff:1.2.3.4").unwrap(),
            "1.2.3.4"
        );
        assert_eq!(
            validate_value(&Scope::Ip, "2001:DB8::1").unwrap(),
            "2001:db8::1"
        );
        for bad in [
            "1.2.3.4; rm -rf /",
            "../../etc",
            "1.2.3.4\n",
            " 1.2.3.4",
            "01.2.3.4",
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "",
        ] {
            assert!(validate_value(&Scope::Ip, bad).is_err(), "{bad:?}");
        }
        assert!(validate_value(&Scope::User, "bob+tag@example.com").is_ok());
        let long = "a".repeat(10 * 1024);
        for bad in [
            "../../etc",
            "a b",
            "bob\nroot",
            "-rf",
            "..",
            "",
            "x;y",
            "ü",
            long.as_str(),
        ] {
            let err = validate_value(&Scope::User, bad).unwrap_err();
            assert!(!err.contains(bad) || bad.is_empty() || bad == "..", "{err}");
        }
        assert_eq!(ladder_step(Dur(1), &[Dur(6), Dur(24)], 0), Dur(1));
        assert_eq!(ladder_step(Dur(1), &[Dur(6), Dur(24)], 1), Dur(6));
        assert_eq!(ladder_step(Dur(1), &[Dur(6), Dur(24)], 9), Dur(24));
        assert_eq!(ladder_step(Dur(1), &[], 9), Dur(1));
        assert_eq!(escape_excerpt("a\nb"), "a\\nb");
    }
}
