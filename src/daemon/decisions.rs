//! The decisions enforcing code asks about, in memory: `GET /v1/decisions?ip=…`
//! is a hash lookup under a read lock, never a database query, so a bouncer
//! in front of every request costs microseconds.
//!
//! The index is a copy. The response stage (the single writer of the store)
//! reports every change it makes as a plan item; the engine thread applies
//! those here. Each change also gets a sequence number in a bounded change
//! log, which is what the bouncer stream (`/v1/decisions/stream`, CrowdSec
//! LAPI style) serves: the full set at start, then only what changed since
//! that bouncer's last pull. A bouncer whose position fell off the log, or
//! that secmon does not know (after a restart), gets the full set again —
//! bouncers treat `new` as an upsert, so that is always safe.
//!
//! It does not decide anything and never touches the store.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

use secmon_core::Timestamp;
use secmon_respond::{Decision, Scope, validate_value};
use serde::Serialize;

/// Changes kept for bouncers that pull incrementally.
const CHANGE_LOG: usize = 100_000;
/// Bouncer positions remembered (one per API key that pulls the stream).
const MAX_CURSORS: usize = 10_000;

/// A decision as bouncers read it: CrowdSec LAPI's field names (so existing
/// bouncers can use secmon), plus secmon's own.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BouncerDecision {
    pub id: i64,
    pub origin: &'static str,
    /// What to do: the action that made it (`block_ip`, `lock_account`, `manual`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// `Ip`, `User`, `Vault`, `Admin` or a custom scope, capitalised as CrowdSec does.
    pub scope: String,
    pub value: String,
    /// Time left, Go-style (`3h59m12s`), as CrowdSec bouncers parse it.
    pub duration: String,
    pub until: Timestamp,
    /// The rule that made it, or `manual`.
    pub scenario: String,
    pub reason: String,
}

impl BouncerDecision {
    pub fn new(d: &Decision, now: Timestamp) -> Self {
        let s = d.scope.as_str();
        let mut scope = String::with_capacity(s.len());
        let mut chars = s.chars();
        if let Some(c) = chars.next() {
            scope.extend(c.to_uppercase());
            scope.push_str(chars.as_str());
        }
        BouncerDecision {
            id: d.id,
            origin: "secmon",
            kind: d.action.clone(),
            scope,
            value: d.value.clone(),
            duration: go_duration(d.expires.0.saturating_sub(now.0).max(0)),
            until: d.expires,
            scenario: d.origin_rule.clone().unwrap_or_else(|| "manual".into()),
            reason: d.reason.clone(),
        }
    }
}

/// `1h2m3s` (Go's `time.Duration` format, which CrowdSec bouncers parse).
fn go_duration(ms: i64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[derive(Debug, Serialize, Default, PartialEq)]
pub struct StreamBatch {
    pub new: Vec<BouncerDecision>,
    pub deleted: Vec<BouncerDecision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Upsert,
    Remove,
}

#[derive(Default)]
struct Inner {
    active: HashMap<(Scope, String), Decision>,
    log: VecDeque<(u64, Change, Decision)>,
    seq: u64,
    /// API key id → the last sequence number that bouncer has seen.
    cursors: HashMap<i64, u64>,
}

#[derive(Default)]
pub struct DecisionIndex {
    inner: RwLock<Inner>,
}

impl DecisionIndex {
    pub fn new(active: Vec<Decision>) -> Self {
        let idx = DecisionIndex::default();
        if let Ok(mut g) = idx.inner.write() {
            for d in active {
                g.active.insert((d.scope.clone(), d.value.clone()), d);
            }
        }
        idx
    }

    /// Applies one change the response stage made (`created`, `extended`,
    /// `expired`, `deleted`).
    pub fn apply(&self, change: &str, d: &Decision) {
        let Ok(mut g) = self.inner.write() else {
            return;
        };
        let key = (d.scope.clone(), d.value.clone());
        let kind = match change {
            "created" | "extended" => {
                g.active.insert(key, d.clone());
                Change::Upsert
            }
            _ => {
                g.active.remove(&key);
                Change::Remove
            }
        };
        g.seq += 1;
        let seq = g.seq;
        g.log.push_back((seq, kind, d.clone()));
        while g.log.len() > CHANGE_LOG {
            g.log.pop_front();
        }
    }

    /// Brings the index to exactly `active` (reloaded from the store after
    /// another process changed it), recording each difference as a change so
    /// bouncers pulling the stream get only what moved.
    pub fn sync(&self, active: &[Decision]) {
        let current: Vec<Decision> = match self.inner.read() {
            Ok(g) => g.active.values().cloned().collect(),
            Err(_) => return,
        };
        let key = |d: &Decision| (d.scope.clone(), d.value.clone());
        let wanted: HashMap<(Scope, String), &Decision> =
            active.iter().map(|d| (key(d), d)).collect();
        for d in &current {
            if !wanted.contains_key(&key(d)) {
                self.apply("deleted", d);
            }
        }
        for d in active {
            if !current.iter().any(|c| c == d) {
                self.apply("created", d);
            }
        }
    }

    /// The decision in force on (scope, value), if any. Values are
    /// normalised as the store normalises them (`::ffff:1.2.3.4` is `1.2.3.4`).
    pub fn lookup(&self, scope: &Scope, value: &str, now: Timestamp) -> Option<Decision> {
        let v = validate_value(scope, value).ok()?;
        let g = self.inner.read().ok()?;
        g.active
            .get(&(scope.clone(), v))
            .filter(|d| d.is_active(now))
            .cloned()
    }

    /// Every decision in force, soonest expiry first.
    pub fn list(&self, now: Timestamp) -> Vec<Decision> {
        let Ok(g) = self.inner.read() else {
            return Vec::new();
        };
        let mut v: Vec<Decision> = g
            .active
            .values()
            .filter(|d| d.is_active(now))
            .cloned()
            .collect();
        v.sort_by_key(|d| (d.expires, d.id));
        v
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|g| g.active.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One pull of the bouncer stream for the bouncer `key`.
    pub fn stream(&self, key: i64, startup: bool, now: Timestamp) -> StreamBatch {
        let Ok(mut g) = self.inner.write() else {
            return StreamBatch::default();
        };
        let seq = g.seq;
        let since = if startup {
            None
        } else {
            g.cursors.get(&key).copied()
        };
        // A position older than the log's start cannot be served incrementally.
        let since = since.filter(|s| g.log.front().is_none_or(|(first, _, _)| *first <= s + 1));
        let mut out = StreamBatch::default();
        match since {
            None => {
                out.new = g
                    .active
                    .values()
                    .filter(|d| d.is_active(now))
                    .map(|d| BouncerDecision::new(d, now))
                    .collect();
                out.new.sort_by_key(|d| d.id);
            }
            Some(since) => {
                // Only the latest change of each target matters.
                let mut last: HashMap<(&Scope, &str), (Change, &Decision)> = HashMap::new();
                for (s, c, d) in g.log.iter().filter(|(s, _, _)| *s > since) {
                    let _ = s;
                    last.insert((&d.scope, d.value.as_str()), (*c, d));
                }
                for (c, d) in last.into_values() {
                    match c {
                        Change::Upsert if d.is_active(now) => {
                            out.new.push(BouncerDecision::new(d, now))
                        }
                        _ => out.deleted.push(BouncerDecision::new(d, now)),
                    }
                }
                out.new.sort_by_key(|d| d.id);
                out.deleted.sort_by_key(|d| d.id);
            }
        }
        if g.cursors.len() >= MAX_CURSORS && !g.cursors.contains_key(&key) {
            g.cursors.clear(); // everyone gets a full set next time: safe
        }
        g.cursors.insert(key, seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmon_respond::DecisionState;

    fn dec(id: i64, ip: &str, expires: i64) -> Decision {
        Decision {
            id,
            scope: Scope::Ip,
            value: ip.into(),
            action: "block_ip".into(),
            reason: "r".into(),
            origin_rule: Some("failed-logins-per-ip".into()),
            alert_id: None,
            author: None,
            created: Timestamp(0),
            expires: Timestamp(expires),
            state: DecisionState::Active,
            removed_at: None,
            removed_by: None,
        }
    }

    #[test]
    fn lookup_normalises_and_respects_expiry() {
        let idx = DecisionIndex::new(vec![dec(1, "1.2.3.4", 10_000)]);
        assert!(
            idx.lookup(&Scope::Ip, "::ffff:1.2.3.4", Timestamp(5))
                .is_some()
        );
        assert!(
            idx.lookup(&Scope::Ip, "1.2.3.4", Timestamp(10_000))
                .is_none()
        );
        assert!(idx.lookup(&Scope::Ip, "not an ip", Timestamp(5)).is_none());
        assert!(idx.lookup(&Scope::User, "1.2.3.4", Timestamp(5)).is_none());
    }

    #[test]
    fn stream_gives_full_set_then_changes_only() {
        let idx = DecisionIndex::new(vec![dec(1, "1.1.1.1", 3_600_000)]);
        let first = idx.stream(7, true, Timestamp(0));
        assert_eq!(first.new.len(), 1);
        assert_eq!(first.new[0].duration, "1h0m0s");
        assert_eq!(first.new[0].scope, "Ip");
        assert!(idx.stream(7, false, Timestamp(0)).new.is_empty());
        idx.apply("created", &dec(2, "2.2.2.2", 60_000));
        idx.apply("deleted", &dec(1, "1.1.1.1", 3_600_000));
        let next = idx.stream(7, false, Timestamp(0));
        assert_eq!(next.new.iter().map(|d| d.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(
            next.deleted.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![1]
        );
        // Another bouncer, never seen: the full current set.
        let other = idx.stream(8, false, Timestamp(0));
        assert_eq!(other.new.iter().map(|d| d.id).collect::<Vec<_>>(), vec![2]);
        assert!(other.deleted.is_empty());
    }

    #[test]
    fn sync_records_only_the_differences() {
        let idx = DecisionIndex::new(vec![dec(1, "1.1.1.1", 60_000), dec(2, "2.2.2.2", 60_000)]);
        idx.stream(9, true, Timestamp(0));
        idx.sync(&[dec(2, "2.2.2.2", 60_000), dec(3, "3.3.3.3", 60_000)]);
        let b = idx.stream(9, false, Timestamp(0));
        assert_eq!(b.new.iter().map(|d| d.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(b.deleted.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1]);
        assert!(idx.lookup(&Scope::Ip, "1.1.1.1", Timestamp(0)).is_none());
        assert!(idx.lookup(&Scope::Ip, "3.3.3.3", Timestamp(0)).is_some());
    }

    #[test]
    fn create_then_delete_between_pulls_is_a_delete() {
        let idx = DecisionIndex::new(vec![]);
        idx.stream(1, true, Timestamp(0));
        idx.apply("created", &dec(3, "3.3.3.3", 60_000));
        idx.apply("expired", &dec(3, "3.3.3.3", 60_000));
        let b = idx.stream(1, false, Timestamp(0));
        assert!(b.new.is_empty());
        assert_eq!(b.deleted.len(), 1);
    }
}
