//! Alerts: the deduplicated, persisted form of the engine's verdicts, and
//! silences over them.
//!
//! An alert is identified by its fingerprint, a stable hash of the rule id and
//! the sorted group. While one is firing, further fires update it (count,
//! last_seen, value) instead of opening another; a resolve closes it, and the
//! next fire of the same group opens a fresh alert. A silenced alert is still
//! recorded in full; the silence only tells the notify layer not to send it.
//!
//! This module does not notify, decide or open incidents, and never reads the
//! clock: callers pass `now`, which is what silences are evaluated against.

use std::collections::{BTreeMap, HashMap};

use regex::Regex;
use rusqlite::{OptionalExtension, Row, params};
use secmon_core::{Priority, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{RespondError, Result};
use crate::store::Cached;
use crate::store::Store;

/// What the binary hands over for an engine `Fire` (the engine's rule index,
/// group paths and events already turned into names, strings and JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct FireInput {
    /// The rule's id (`failed-logins-ip`).
    pub rule: String,
    /// The rule's human name, for display.
    pub rule_name: String,
    pub severity: Severity,
    pub priority: Option<Priority>,
    pub labels: BTreeMap<String, String>,
    /// Group field paths (`fields.ip`) and their key spellings.
    pub group: Vec<(String, String)>,
    /// Event time at which the rule fired.
    pub at: Timestamp,
    pub value: f64,
    pub threshold: Option<f64>,
    /// The events that made it fire (the incident layer keeps a bounded sample).
    pub evidence: Vec<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "firing" => Ok(AlertStatus::Firing),
            "resolved" => Ok(AlertStatus::Resolved),
            other => Err(RespondError::corrupt("alerts", format!("status {other:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub fingerprint: String,
    pub rule: String,
    pub rule_name: String,
    pub severity: Severity,
    pub priority: Option<Priority>,
    pub labels: BTreeMap<String, String>,
    /// Sorted by field path.
    pub group: Vec<(String, String)>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// Latest observed value (NaN if the engine reported a non-number).
    pub value: f64,
    pub threshold: Option<f64>,
    pub status: AlertStatus,
    pub resolved_at: Option<Timestamp>,
    /// The silence that covered the alert at its last change, if any.
    pub silenced_by: Option<i64>,
    /// Why it resolved, when that was not its condition seen clear by the
    /// engine that fired it: "rule removed", "state lost at restart; …".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_reason: Option<String>,
}

impl Alert {
    /// The value of a group field (`fields.ip`), if the alert is grouped by it.
    pub fn group_value(&self, field: &str) -> Option<&str> {
        self.group
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to an alert; the kind the incident layer is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    Opened,
    Updated,
    Resolved,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    Opened(Alert),
    Updated(Alert),
}

impl AlertChange {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertChange::Opened(a) | AlertChange::Updated(a) => a,
        }
    }
    pub fn into_alert(self) -> Alert {
        match self {
            AlertChange::Opened(a) | AlertChange::Updated(a) => a,
        }
    }
    /// Recorded, but not to be notified.
    pub fn is_silenced(&self) -> bool {
        self.alert().silenced_by.is_some()
    }
    pub fn event(&self) -> AlertEvent {
        match self {
            AlertChange::Opened(_) => AlertEvent::Opened,
            AlertChange::Updated(_) => AlertEvent::Updated,
        }
    }
}

/// Stable across builds and platforms (unlike `std`'s hasher): SHA-256 over
/// length-prefixed rule and sorted group pairs, so `("a","bc")` and
/// `("ab","c")` differ; first 16 bytes in hex.
pub fn fingerprint(rule: &str, group: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = group.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(rule);
    for (k, v) in sorted {
        put(k);
        put(v);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn sorted_group(group: &[(String, String)]) -> Vec<(String, String)> {
    let mut g = group.to_vec();
    g.sort();
    g
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub rule: Option<String>,
    /// Alerts whose last_seen is at or after this time.
    pub since: Option<Timestamp>,
    /// Newest first; 0 means the default of 100.
    pub limit: usize,
}

/// One condition of a silence. `name` is `rule`, `rule_name`, `severity`,
/// `priority`, `label.<key>`, or a group field such as `fields.ip`. A missing
/// field matches as the empty string (Alertmanager's convention), so
/// `fields.ip != ""` means "has an ip". Regexes are anchored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub regex: bool,
    #[serde(default)]
    pub negate: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts: Timestamp,
    pub ends: Timestamp,
    pub author: String,
    pub comment: String,
}

/// A silence as an operator submits it (the store assigns the id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts: Timestamp,
    pub ends: Timestamp,
    pub author: String,
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts <= now && now < self.ends
    }
}

/// Bound on compiled silence regexes kept; silences are few and human-made,
/// the cap only keeps a runaway API client from growing it forever.
const REGEX_CACHE_MAX: usize = 1024;
/// Patterns are written by people; a bigger one is a mistake or an attack.
const REGEX_MAX_LEN: usize = 4096;
const ALERT_COLS: &str = "id, fingerprint, rule, rule_name, severity, priority, labels, grp, \
     first_seen, last_seen, count, value, threshold, status, resolved_at, silenced_by, resolve_reason";

/// Alerts and silences over a [`Store`].
pub struct AlertBook<'s> {
    store: &'s Store,
    regexes: HashMap<String, Regex>,
}

impl<'s> AlertBook<'s> {
    pub fn new(store: &'s Store) -> Self {
        AlertBook {
            store,
            regexes: HashMap::new(),
        }
    }

    /// Records a fire: updates the firing alert of (rule, group) or opens one.
    /// Durable when it returns `Ok`.
    pub fn fire(&mut self, f: &FireInput, now: Timestamp) -> Result<AlertChange> {
        if f.rule.is_empty() {
            return Err(RespondError::invalid("fire", "empty rule id"));
        }
        let group = sorted_group(&f.group);
        let fp = fingerprint(&f.rule, &group);
        let tx = self.store.write_tx()?;
        let existing = tx
            .row(
                &format!(
                    "SELECT {ALERT_COLS} FROM alerts WHERE fingerprint = ?1 AND status = 'firing'"
                ),
                [&fp],
                raw_alert,
            )
            .optional()?
            .map(RawAlert::into_alert)
            .transpose()?;
        let change = match existing {
            Some(mut a) => {
                a.count = a.count.saturating_add(1);
                // Fires can arrive out of order (parallel sources); last_seen
                // only moves forward, first_seen only backward.
                a.last_seen = a.last_seen.max(f.at);
                a.first_seen = a.first_seen.min(f.at);
                a.value = f.value;
                a.threshold = f.threshold;
                a.severity = f.severity;
                a.priority = f.priority;
                a.rule_name = f.rule_name.clone();
                a.labels = f.labels.clone();
                a.silenced_by = self.silenced_in(&tx, &a, now)?;
                tx.exec(
                    "UPDATE alerts SET count = ?2, first_seen = ?3, last_seen = ?4, value = ?5,
                         threshold = ?6, severity = ?7, priority = ?8, rule_name = ?9,
                         labels = ?10, silenced_by = ?11 WHERE id = ?1",
                    params![
                        a.id,
                        a.count as i64,
                        a.first_seen.0,
                        a.last_seen.0,
                        finite(a.value),
                        a.threshold.and_then(finite),
                        a.severity.as_str(),
                        a.priority.map(|p| p.as_str()),
                        a.rule_name,
                        json(&a.labels)?,
                        a.silenced_by,
                    ],
                )?;
                AlertChange::Updated(a)
            }
            None => {
                let mut a = Alert {
                    id: 0,
                    fingerprint: fp,
                    rule: f.rule.clone(),
                    rule_name: f.rule_name.clone(),
                    severity: f.severity,
                    priority: f.priority,
                    labels: f.labels.clone(),
                    group,
                    first_seen: f.at,
                    last_seen: f.at,
                    count: 1,
                    value: f.value,
                    threshold: f.threshold,
                    status: AlertStatus::Firing,
                    resolved_at: None,
                    silenced_by: None,
                    resolve_reason: None,
                };
                a.silenced_by = self.silenced_in(&tx, &a, now)?;
                tx.exec(
                    "INSERT INTO alerts (fingerprint, rule, rule_name, severity, priority, labels,
                         grp, first_seen, last_seen, count, value, threshold, status, silenced_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?11, 'firing', ?12)",
                    params![
                        a.fingerprint,
                        a.rule,
                        a.rule_name,
                        a.severity.as_str(),
                        a.priority.map(|p| p.as_str()),
                        json(&a.labels)?,
                        json(&a.group)?,
                        a.first_seen.0,
                        a.last_seen.0,
                        finite(a.value),
                        a.threshold.and_then(finite),
                        a.silenced_by,
                    ],
                )?;
                a.id = tx.last_insert_rowid();
                AlertChange::Opened(a)
            }
        };
        tx.commit()?;
        Ok(change)
    }

    /// Resolves the firing alert of (rule, group), if there is one. A resolve
    /// for an unknown or already resolved alert is `Ok(None)`: the engine may
    /// resolve groups whose fire predates the store (or was silenced away).
    pub fn resolve(
        &mut self,
        rule: &str,
        group: &[(String, String)],
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        self.resolve_because(rule, group, at, None)
    }

    /// [`AlertBook::resolve`], recording `reason` with the alert when the
    /// resolve is not the engine seeing the condition clear by itself.
    pub fn resolve_because(
        &mut self,
        rule: &str,
        group: &[(String, String)],
        at: Timestamp,
        reason: Option<&str>,
    ) -> Result<Option<Alert>> {
        let fp = fingerprint(rule, group);
        let tx = self.store.write_tx()?;
        let Some(mut a) = tx
            .row(
                &format!(
                    "SELECT {ALERT_COLS} FROM alerts WHERE fingerprint = ?1 AND status = 'firing'"
                ),
                [&fp],
                raw_alert,
            )
            .optional()?
            .map(RawAlert::into_alert)
            .transpose()?
        else {
            return Ok(None);
        };
        a.status = AlertStatus::Resolved;
        a.resolved_at = Some(at);
        a.resolve_reason = reason.map(str::to_string);
        tx.exec(
            "UPDATE alerts SET status = 'resolved', resolved_at = ?2, resolve_reason = ?3
             WHERE id = ?1",
            params![a.id, at.0, a.resolve_reason],
        )?;
        tx.commit()?;
        Ok(Some(a))
    }

    pub fn get(&self, id: i64) -> Result<Option<Alert>> {
        self.store
            .conn()
            .row(
                &format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?1"),
                [id],
                raw_alert,
            )
            .optional()?
            .map(RawAlert::into_alert)
            .transpose()
    }

    /// The firing alert with this fingerprint, if any.
    pub fn firing(&self, fingerprint: &str) -> Result<Option<Alert>> {
        self.store
            .conn()
            .row(
                &format!(
                    "SELECT {ALERT_COLS} FROM alerts WHERE fingerprint = ?1 AND status = 'firing'"
                ),
                [fingerprint],
                raw_alert,
            )
            .optional()?
            .map(RawAlert::into_alert)
            .transpose()
    }

    /// Every firing alert, oldest first: what the notifier must know to be
    /// told after a restart (repeats, resolves), however many there are
    /// (`list` caps its answer).
    pub fn all_firing(&self) -> Result<Vec<Alert>> {
        let mut stmt = self.store.conn().prepare(&format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE status = 'firing' ORDER BY id"
        ))?;
        let rows = stmt.query_map([], raw_alert)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.into_alert()?);
        }
        Ok(out)
    }

    /// Newest (by last_seen) first.
    pub fn list(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let mut sql = format!("SELECT {ALERT_COLS} FROM alerts WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(s.as_str().to_string().into());
        }
        if let Some(r) = &filter.rule {
            sql.push_str(" AND rule = ?");
            args.push(r.clone().into());
        }
        if let Some(t) = filter.since {
            sql.push_str(" AND last_seen >= ?");
            args.push(t.0.into());
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        sql.push_str(" ORDER BY last_seen DESC, id DESC LIMIT ?");
        args.push((limit.min(i64::MAX as usize) as i64).into());
        let mut stmt = self.store.conn().prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), raw_alert)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.into_alert()?);
        }
        Ok(out)
    }

    /// Validates and stores a silence. Rejects a silence without matchers
    /// (it would mute everything), an empty window and bad regexes.
    pub fn create_silence(&mut self, s: &NewSilence, now: Timestamp) -> Result<Silence> {
        if s.matchers.is_empty() {
            return Err(RespondError::invalid(
                "silence",
                "at least one matcher is required",
            ));
        }
        if s.ends <= s.starts {
            return Err(RespondError::invalid(
                "silence",
                "ends must be after starts",
            ));
        }
        if s.author.trim().is_empty() {
            return Err(RespondError::invalid("silence", "author is required"));
        }
        for m in &s.matchers {
            if m.name.is_empty() {
                return Err(RespondError::invalid("silence", "matcher with empty name"));
            }
            if m.regex {
                self.regex(&m.value)?;
            }
        }
        self.store.conn().exec(
            "INSERT INTO silences (matchers, starts, ends, author, comment, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                json(&s.matchers)?,
                s.starts.0,
                s.ends.0,
                s.author,
                s.comment,
                now.0
            ],
        )?;
        Ok(Silence {
            id: self.store.conn().last_insert_rowid(),
            matchers: s.matchers.clone(),
            starts: s.starts,
            ends: s.ends,
            author: s.author.clone(),
            comment: s.comment.clone(),
        })
    }

    /// Ends a silence now (kept for the record, with `ends = now`).
    pub fn expire_silence(&mut self, id: i64, now: Timestamp) -> Result<Silence> {
        let mut s = self.silence(id)?.ok_or(RespondError::NotFound {
            what: "silence",
            id,
        })?;
        if s.ends > now {
            s.ends = now.max(s.starts);
            self.store.conn().exec(
                "UPDATE silences SET ends = ?2 WHERE id = ?1",
                params![id, s.ends.0],
            )?;
        }
        Ok(s)
    }

    pub fn silence(&self, id: i64) -> Result<Option<Silence>> {
        self.store
            .conn()
            .row(
                "SELECT id, matchers, starts, ends, author, comment FROM silences WHERE id = ?1",
                [id],
                raw_silence,
            )
            .optional()?
            .map(RawSilence::into_silence)
            .transpose()
    }

    /// Silences still active or upcoming at `now` (`None`: all, newest first).
    pub fn list_silences(&self, now: Option<Timestamp>) -> Result<Vec<Silence>> {
        let (sql, arg) = match now {
            Some(t) => (
                "SELECT id, matchers, starts, ends, author, comment FROM silences
                 WHERE ends > ?1 ORDER BY id DESC",
                t.0,
            ),
            None => (
                "SELECT id, matchers, starts, ends, author, comment FROM silences
                 WHERE ?1 = ?1 ORDER BY id DESC",
                0,
            ),
        };
        let mut stmt = self.store.conn().prepare(sql)?;
        let rows = stmt.query_map([arg], raw_silence)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.into_silence()?);
        }
        Ok(out)
    }

    /// The id of the lowest-numbered silence covering `alert` at `now`.
    pub fn is_silenced(&mut self, alert: &Alert, now: Timestamp) -> Result<Option<i64>> {
        self.silenced_in(self.store.conn(), alert, now)
    }

    fn silenced_in(
        &mut self,
        conn: &rusqlite::Connection,
        alert: &Alert,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, matchers, starts, ends, author, comment FROM silences
             WHERE starts <= ?1 AND ends > ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([now.0], raw_silence)?;
        for r in rows {
            let s = r?.into_silence()?;
            if self.matches_all(&s.matchers, alert)? {
                return Ok(Some(s.id));
            }
        }
        Ok(None)
    }

    fn matches_all(&mut self, matchers: &[Matcher], alert: &Alert) -> Result<bool> {
        for m in matchers {
            let actual: &str = match m.name.as_str() {
                "rule" => &alert.rule,
                "rule_name" => &alert.rule_name,
                "severity" => alert.severity.as_str(),
                "priority" => alert.priority.map(|p| p.as_str()).unwrap_or(""),
                name => match name.strip_prefix("label.") {
                    Some(k) => alert.labels.get(k).map(String::as_str).unwrap_or(""),
                    None => alert.group_value(name).unwrap_or(""),
                },
            };
            let hit = if m.regex {
                self.regex(&m.value)?.is_match(actual)
            } else {
                m.value == actual
            };
            if hit == m.negate {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn regex(&mut self, pattern: &str) -> Result<&Regex> {
        if !self.regexes.contains_key(pattern) {
            if pattern.len() > REGEX_MAX_LEN {
                return Err(RespondError::invalid("silence regex", "pattern too long"));
            }
            let re = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| RespondError::invalid("silence regex", e.to_string()))?;
            if self.regexes.len() >= REGEX_CACHE_MAX {
                self.regexes.clear();
            }
            self.regexes.insert(pattern.to_string(), re);
        }
        self.regexes
            .get(pattern)
            .ok_or_else(|| RespondError::invalid("silence regex", "cache miss"))
    }
}

/// SQLite stores NaN as NULL; keep that explicit so the column reads back as NaN.
fn finite(v: f64) -> Option<f64> {
    if v.is_nan() { None } else { Some(v) }
}

pub(crate) fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| RespondError::invalid("json", e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(table: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| RespondError::corrupt(table, e.to_string()))
}

/// Row as stored; parsed into an [`Alert`] outside rusqlite's closure so that
/// corrupt text yields our error rather than a panic or a rusqlite type error.
struct RawAlert {
    id: i64,
    fingerprint: String,
    rule: String,
    rule_name: String,
    severity: String,
    priority: Option<String>,
    labels: String,
    group: String,
    first_seen: i64,
    last_seen: i64,
    count: i64,
    value: Option<f64>,
    threshold: Option<f64>,
    status: String,
    resolved_at: Option<i64>,
    silenced_by: Option<i64>,
    resolve_reason: Option<String>,
}

fn raw_alert(r: &Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok(RawAlert {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        rule: r.get(2)?,
        rule_name: r.get(3)?,
        severity: r.get(4)?,
        priority: r.get(5)?,
        labels: r.get(6)?,
        group: r.get(7)?,
        first_seen: r.get(8)?,
        last_seen: r.get(9)?,
        count: r.get(10)?,
        value: r.get(11)?,
        threshold: r.get(12)?,
        status: r.get(13)?,
        resolved_at: r.get(14)?,
        silenced_by: r.get(15)?,
        resolve_reason: r.get(16)?,
    })
}

impl RawAlert {
    fn into_alert(self) -> Result<Alert> {
        Ok(Alert {
            id: self.id,
            fingerprint: self.fingerprint,
            rule: self.rule,
            rule_name: self.rule_name,
            severity: self
                .severity
                .parse()
                .map_err(|_| RespondError::corrupt("alerts", "severity"))?,
            priority: parse_priority("alerts", self.priority.as_deref())?,
            labels: from_json("alerts", &self.labels)?,
            group: from_json("alerts", &self.group)?,
            first_seen: Timestamp(self.first_seen),
            last_seen: Timestamp(self.last_seen),
            count: self.count.max(0) as u64,
            value: self.value.unwrap_or(f64::NAN),
            threshold: self.threshold,
            status: AlertStatus::parse(&self.status)?,
            resolved_at: self.resolved_at.map(Timestamp),
            silenced_by: self.silenced_by,
            resolve_reason: self.resolve_reason,
        })
    }
}

pub(crate) fn parse_priority(table: &'static str, s: Option<&str>) -> Result<Option<Priority>> {
    s.map(|p| {
        p.parse::<Priority>()
            .map_err(|_| RespondError::corrupt(table, format!("priority {p:?}")))
    })
    .transpose()
}

struct RawSilence {
    id: i64,
    matchers: String,
    starts: i64,
    ends: i64,
    author: String,
    comment: String,
}

fn raw_silence(r: &Row<'_>) -> rusqlite::Result<RawSilence> {
    Ok(RawSilence {
        id: r.get(0)?,
        matchers: r.get(1)?,
        starts: r.get(2)?,
        ends: r.get(3)?,
        author: r.get(4)?,
        comment: r.get(5)?,
    })
}

impl RawSilence {
    fn into_silence(self) -> Result<Silence> {
        Ok(Silence {
            id: self.id,
            matchers: from_json("silences", &self.matchers)?,
            starts: Timestamp(self.starts),
            ends: Timestamp(self.ends),
            author: self.author,
            comment: self.comment,
        })
    }
}
