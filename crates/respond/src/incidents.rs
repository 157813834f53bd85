//! Incidents: what a human works on. Alerts with a priority open one (or
//! join the open incident of the same rule and group); it moves
//! triggered → acknowledged → resolved with author and time, carries notes,
//! a timeline of everything that happened to it, a bounded sample of the
//! events that caused it, and seed 003's response steps as a checklist.
//! An incident nobody acknowledges in time escalates along its chain and is
//! marked as breached.
//!
//! This module decides *who* an escalation goes to but sends nothing (the
//! notify layer does, then calls [`Incidents::record`]); it never resolves an
//! incident on its own when alerts clear (a person closes it); it never reads
//! the clock.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use secmon_core::{Priority, Timestamp};
use serde::Serialize;

use crate::alerts::{Alert, AlertEvent, from_json, json, parse_priority};
use crate::config::IncidentConfig;
use crate::error::{RespondError, Result};
use crate::store::Cached;
use crate::store::Store;

/// Seed 003, "Incident Response → Response Steps", verbatim.
pub const STEPS_P1: [&str; 7] = [
    "Acknowledge alert immediately",
    "Isolate affected systems",
    "Preserve logs and evidence",
    "Notify security team lead",
    "Begin incident investigation",
    "Communicate to affected users (if applicable)",
    "Document timeline and actions",
];
pub const STEPS_P2: [&str; 6] = [
    "Acknowledge alert within 15 minutes",
    "Assess scope and impact",
    "Apply immediate mitigations (block IP, lock account)",
    "Investigate root cause",
    "Document findings",
    "Schedule post-incident review",
];
pub const STEPS_P3_P4: [&str; 4] = [
    "Review during business hours",
    "Document in security log",
    "Apply fixes if needed",
    "Include in weekly security review",
];

pub fn response_steps(p: Priority) -> &'static [&'static str] {
    match p {
        Priority::P1 => &STEPS_P1,
        Priority::P2 => &STEPS_P2,
        Priority::P3 | Priority::P4 => &STEPS_P3_P4,
    }
}

/// One evidence event larger than this is stored as a stub: evidence is a
/// sample for a human, not an archive (the archive has the full events).
const EVIDENCE_MAX_BYTES: usize = 64 * 1024;
/// Notes are typed by people; a bigger one is a paste accident.
const NOTE_MAX_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Triggered => "triggered",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Resolved => "resolved",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "triggered" => Ok(IncidentState::Triggered),
            "acknowledged" => Ok(IncidentState::Acknowledged),
            "resolved" => Ok(IncidentState::Resolved),
            o => Err(RespondError::corrupt("incidents", format!("state {o:?}"))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Opened,
    Alert,
    Notification,
    Decision,
    Acknowledged,
    Resolved,
    Escalated,
    Note,
    Checklist,
    Priority,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Opened => "opened",
            TimelineKind::Alert => "alert",
            TimelineKind::Notification => "notification",
            TimelineKind::Decision => "decision",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Resolved => "resolved",
            TimelineKind::Escalated => "escalated",
            TimelineKind::Note => "note",
            TimelineKind::Checklist => "checklist",
            TimelineKind::Priority => "priority",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "opened" => TimelineKind::Opened,
            "alert" => TimelineKind::Alert,
            "notification" => TimelineKind::Notification,
            "decision" => TimelineKind::Decision,
            "acknowledged" => TimelineKind::Acknowledged,
            "resolved" => TimelineKind::Resolved,
            "escalated" => TimelineKind::Escalated,
            "note" => TimelineKind::Note,
            "checklist" => TimelineKind::Checklist,
            "priority" => TimelineKind::Priority,
            o => {
                return Err(RespondError::corrupt(
                    "incident_timeline",
                    format!("kind {o:?}"),
                ));
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub priority: Priority,
    pub rule: String,
    /// The (rule, group) fingerprint shared with its alerts.
    pub fingerprint: String,
    pub title: String,
    pub labels: BTreeMap<String, String>,
    pub group: Vec<(String, String)>,
    pub state: IncidentState,
    pub opened: Timestamp,
    pub ack_deadline: Timestamp,
    /// 0 until the first missed deadline.
    pub escalation_level: u32,
    /// A deadline was missed at least once.
    pub breached: bool,
    pub acked_at: Option<Timestamp>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    /// Ids of the alerts attached, oldest first.
    pub alerts: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub id: i64,
    pub at: Timestamp,
    pub kind: TimelineKind,
    pub author: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChecklistItem {
    /// 1-based, as the seed numbers its steps.
    pub idx: u32,
    pub text: String,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub timeline: Vec<TimelineEntry>,
    pub evidence: Vec<serde_json::Value>,
    pub checklist: Vec<ChecklistItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IncidentChange {
    Opened(Incident),
    /// Another alert (a new firing of the same rule and group) joined it.
    Attached(Incident),
    /// The same alert fired again or resolved.
    Updated(Incident),
}

impl IncidentChange {
    pub fn incident(&self) -> &Incident {
        match self {
            IncidentChange::Opened(i)
            | IncidentChange::Attached(i)
            | IncidentChange::Updated(i) => i,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub incident_id: i64,
    pub priority: Priority,
    /// The new level (1 at the first missed deadline).
    pub level: u32,
    /// Whom to page; `None` if no chain applies to the incident.
    pub receiver: Option<String>,
    pub next_deadline: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    pub state: Option<IncidentState>,
    pub priority: Option<Priority>,
    /// Newest first; 0 means 100.
    pub limit: usize,
}

const INCIDENT_COLS: &str = "id, priority, rule, fingerprint, title, labels, grp, state, opened, \
     ack_deadline, escalation_level, breached, acked_at, acked_by, resolved_at, resolved_by";

pub struct Incidents<'s> {
    store: &'s Store,
    cfg: IncidentConfig,
}

impl<'s> Incidents<'s> {
    pub fn new(store: &'s Store, cfg: &IncidentConfig) -> Self {
        Incidents {
            store,
            cfg: cfg.clone(),
        }
    }

    /// Feeds an alert change in. Alerts without a priority never make
    /// incidents. A silenced alert joins an open incident but does not open
    /// one: an incident pages through escalation, which a silence must prevent.
    pub fn on_alert(
        &mut self,
        alert: &Alert,
        event: AlertEvent,
        evidence: &[serde_json::Value],
        now: Timestamp,
    ) -> Result<Option<IncidentChange>> {
        let Some(priority) = alert.priority else {
            return Ok(None);
        };
        let tx = self.store.write_tx()?;
        let open: Option<i64> = tx
            .row(
                "SELECT id FROM incidents WHERE fingerprint = ?1 AND state != 'resolved'",
                [&alert.fingerprint],
                |r| r.get(0),
            )
            .optional()?;
        let change = match (open, event) {
            (None, AlertEvent::Resolved) => return Ok(None),
            (None, _) if alert.silenced_by.is_some() => return Ok(None),
            (None, _) => {
                let deadline = now.add(self.cfg.deadline(priority));
                tx.exec(
                    "INSERT INTO incidents (priority, rule, fingerprint, title, labels, grp, state,
                         opened, ack_deadline)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'triggered', ?7, ?8)",
                    params![
                        priority.as_str(),
                        alert.rule,
                        alert.fingerprint,
                        alert.rule_name,
                        json(&alert.labels)?,
                        json(&alert.group)?,
                        now.0,
                        deadline.0
                    ],
                )?;
                let id = tx.last_insert_rowid();
                for (i, step) in response_steps(priority).iter().enumerate() {
                    tx.exec(
                        "INSERT INTO incident_checklist (incident_id, idx, text) VALUES (?1, ?2, ?3)",
                        params![id, i as i64 + 1, step],
                    )?;
                }
                timeline(
                    &tx,
                    id,
                    now,
                    TimelineKind::Opened,
                    None,
                    &format!(
                        "{priority} incident opened by alert #{} ({}); acknowledge by {deadline}",
                        alert.id, alert.rule
                    ),
                )?;
                attach(&tx, id, alert, now)?;
                self.add_evidence(&tx, id, alert.id, evidence)?;
                IncidentChange::Opened(load(&tx, id)?)
            }
            (Some(id), AlertEvent::Resolved) => {
                timeline(
                    &tx,
                    id,
                    now,
                    TimelineKind::Alert,
                    None,
                    &match &alert.resolve_reason {
                        Some(why) => format!("alert #{} resolved ({why})", alert.id),
                        None => format!("alert #{} resolved", alert.id),
                    },
                )?;
                IncidentChange::Updated(load(&tx, id)?)
            }
            (Some(id), _) => {
                let joined = attach(&tx, id, alert, now)?;
                self.add_evidence(&tx, id, alert.id, evidence)?;
                let inc = load(&tx, id)?;
                // A more urgent alert on the same target raises the incident
                // (and tightens an open deadline); it is never lowered.
                if priority < inc.priority {
                    let deadline = inc.ack_deadline.min(now.add(self.cfg.deadline(priority)));
                    tx.exec(
                        "UPDATE incidents SET priority = ?2, ack_deadline = ?3 WHERE id = ?1",
                        params![id, priority.as_str(), deadline.0],
                    )?;
                    timeline(
                        &tx,
                        id,
                        now,
                        TimelineKind::Priority,
                        None,
                        &format!(
                            "priority raised {} → {priority} by alert #{}",
                            inc.priority, alert.id
                        ),
                    )?;
                }
                let inc = load(&tx, id)?;
                if joined {
                    IncidentChange::Attached(inc)
                } else {
                    IncidentChange::Updated(inc)
                }
            }
        };
        tx.commit()?;
        Ok(Some(change))
    }

    fn add_evidence(
        &self,
        tx: &rusqlite::Connection,
        id: i64,
        alert_id: i64,
        evidence: &[serde_json::Value],
    ) -> Result<()> {
        let have: i64 = tx.row(
            "SELECT COUNT(*) FROM incident_evidence WHERE incident_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let room = self
            .cfg
            .evidence_limit
            .saturating_sub(usize::try_from(have).unwrap_or(usize::MAX));
        for ev in evidence.iter().take(room) {
            let mut text = json(ev)?;
            if text.len() > EVIDENCE_MAX_BYTES {
                text = json(&serde_json::json!({"truncated": true, "bytes": text.len()}))?;
            }
            tx.exec(
                "INSERT INTO incident_evidence (incident_id, alert_id, event) VALUES (?1, ?2, ?3)",
                params![id, alert_id, text],
            )?;
        }
        Ok(())
    }

    pub fn ack(&mut self, id: i64, author: &str, now: Timestamp) -> Result<Incident> {
        let tx = self.store.write_tx()?;
        let inc = load(&tx, id)?;
        if inc.state != IncidentState::Triggered {
            return Err(RespondError::Conflict(format!(
                "incident {id} is {}, only a triggered incident can be acknowledged",
                inc.state.as_str()
            )));
        }
        tx.exec(
            "UPDATE incidents SET state = 'acknowledged', acked_at = ?2, acked_by = ?3 WHERE id = ?1",
            params![id, now.0, author],
        )?;
        let late = if now > inc.ack_deadline || inc.breached {
            " (after the deadline)"
        } else {
            ""
        };
        timeline(
            &tx,
            id,
            now,
            TimelineKind::Acknowledged,
            Some(author),
            &format!("acknowledged by {author}{late}"),
        )?;
        let inc = load(&tx, id)?;
        tx.commit()?;
        Ok(inc)
    }

    pub fn resolve(&mut self, id: i64, author: &str, now: Timestamp) -> Result<Incident> {
        let tx = self.store.write_tx()?;
        let inc = load(&tx, id)?;
        if inc.state == IncidentState::Resolved {
            return Err(RespondError::Conflict(format!(
                "incident {id} is already resolved"
            )));
        }
        tx.exec(
            "UPDATE incidents SET state = 'resolved', resolved_at = ?2, resolved_by = ?3 WHERE id = ?1",
            params![id, now.0, author],
        )?;
        timeline(
            &tx,
            id,
            now,
            TimelineKind::Resolved,
            Some(author),
            &format!("resolved by {author}"),
        )?;
        let inc = load(&tx, id)?;
        tx.commit()?;
        Ok(inc)
    }

    pub fn note(
        &mut self,
        id: i64,
        author: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<TimelineEntry> {
        if text.trim().is_empty() {
            return Err(RespondError::invalid("note", "empty"));
        }
        if text.len() > NOTE_MAX_BYTES {
            return Err(RespondError::invalid(
                "note",
                format!("longer than {NOTE_MAX_BYTES} bytes"),
            ));
        }
        self.entry(id, TimelineKind::Note, Some(author), text, now)
    }

    /// A timeline entry from another component: a notification sent, a
    /// decision made for this incident's alert.
    pub fn record(
        &mut self,
        id: i64,
        kind: TimelineKind,
        text: &str,
        now: Timestamp,
    ) -> Result<TimelineEntry> {
        self.entry(id, kind, None, text, now)
    }

    fn entry(
        &mut self,
        id: i64,
        kind: TimelineKind,
        author: Option<&str>,
        text: &str,
        now: Timestamp,
    ) -> Result<TimelineEntry> {
        let tx = self.store.write_tx()?;
        load(&tx, id)?;
        let entry_id = timeline(&tx, id, now, kind, author, text)?;
        tx.commit()?;
        Ok(TimelineEntry {
            id: entry_id,
            at: now,
            kind,
            author: author.map(str::to_string),
            text: text.to_string(),
        })
    }

    /// Ticks off checklist step `idx` (1-based).
    pub fn check(
        &mut self,
        id: i64,
        idx: u32,
        author: &str,
        now: Timestamp,
    ) -> Result<ChecklistItem> {
        let tx = self.store.write_tx()?;
        load(&tx, id)?;
        let text: Option<String> = tx
            .row(
                "SELECT text FROM incident_checklist WHERE incident_id = ?1 AND idx = ?2",
                params![id, idx],
                |r| r.get(0),
            )
            .optional()?;
        let Some(text) = text else {
            return Err(RespondError::NotFound {
                what: "checklist step",
                id: i64::from(idx),
            });
        };
        tx.exec(
            "UPDATE incident_checklist SET done_at = ?3, done_by = ?4 WHERE incident_id = ?1 AND idx = ?2",
            params![id, idx, now.0, author],
        )?;
        timeline(
            &tx,
            id,
            now,
            TimelineKind::Checklist,
            Some(author),
            &format!("step {idx} done: {text}"),
        )?;
        tx.commit()?;
        Ok(ChecklistItem {
            idx,
            text,
            done_at: Some(now),
            done_by: Some(author.to_string()),
        })
    }

    pub fn get(&self, id: i64) -> Result<Option<IncidentDetail>> {
        let conn = self.store.conn();
        let exists: Option<i64> = conn
            .row("SELECT id FROM incidents WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let incident = load(conn, id)?;
        let mut stmt = conn.prepare(
            "SELECT id, at, kind, author, text FROM incident_timeline WHERE incident_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut tl = Vec::new();
        for row in rows {
            let (eid, at, kind, author, text) = row?;
            tl.push(TimelineEntry {
                id: eid,
                at: Timestamp(at),
                kind: TimelineKind::parse(&kind)?,
                author,
                text,
            });
        }
        let mut stmt =
            conn.prepare("SELECT event FROM incident_evidence WHERE incident_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
        let mut evidence = Vec::new();
        for row in rows {
            evidence.push(from_json("incident_evidence", &row?)?);
        }
        let mut stmt = conn.prepare(
            "SELECT idx, text, done_at, done_by FROM incident_checklist WHERE incident_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(ChecklistItem {
                idx: r.get(0)?,
                text: r.get(1)?,
                done_at: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                done_by: r.get(3)?,
            })
        })?;
        let checklist = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(IncidentDetail {
            incident,
            timeline: tl,
            evidence,
            checklist,
        }))
    }

    pub fn list(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut sql = "SELECT id FROM incidents WHERE 1=1".to_string();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = filter.state {
            sql.push_str(" AND state = ?");
            args.push(s.as_str().to_string().into());
        }
        if let Some(p) = filter.priority {
            sql.push_str(" AND priority = ?");
            args.push(p.as_str().to_string().into());
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push((limit.min(i64::MAX as usize) as i64).into());
        let conn = self.store.conn();
        let mut stmt = conn.prepare(&sql)?;
        let ids = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.into_iter().map(|id| load(conn, id)).collect()
    }

    /// The receiver for `level` of an incident's chain: the first configured
    /// chain whose priorities and labels match; past its end, its last entry.
    pub fn receiver(&self, inc: &Incident, level: u32) -> Option<String> {
        let chain = self.cfg.escalation.iter().find(|c| {
            (c.priorities.is_empty() || c.priorities.contains(&inc.priority))
                && c.labels.iter().all(|(k, v)| inc.labels.get(k) == Some(v))
        })?;
        let i = usize::try_from(level).unwrap_or(usize::MAX);
        chain.receivers.get(i).or(chain.receivers.last()).cloned()
    }

    /// Triggered incidents whose deadline is at or before `now` move up one
    /// escalation level, are marked breached and get a new deadline
    /// (`now` + their priority's deadline) for the next level.
    pub fn due_escalations(&mut self, now: Timestamp) -> Result<Vec<Escalation>> {
        let tx = self.store.write_tx()?;
        let ids = {
            let mut stmt = tx.prepare(
                "SELECT id FROM incidents WHERE state = 'triggered' AND ack_deadline <= ?1
                 ORDER BY ack_deadline, id",
            )?;
            stmt.query_map([now.0], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let inc = load(&tx, id)?;
            let level = inc.escalation_level.saturating_add(1);
            let next = now.add(self.cfg.deadline(inc.priority));
            let receiver = self.receiver(&inc, level);
            tx.exec(
                "UPDATE incidents SET escalation_level = ?2, breached = 1, ack_deadline = ?3 WHERE id = ?1",
                params![id, level, next.0],
            )?;
            timeline(
                &tx,
                id,
                now,
                TimelineKind::Escalated,
                None,
                &format!(
                    "not acknowledged by {}: escalated to level {level}{}; next deadline {next}",
                    inc.ack_deadline,
                    receiver
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            )?;
            out.push(Escalation {
                incident_id: id,
                priority: inc.priority,
                level,
                receiver,
                next_deadline: next,
            });
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Links the alert; true if it was not linked yet (and writes the timeline).
fn attach(tx: &rusqlite::Connection, id: i64, alert: &Alert, now: Timestamp) -> Result<bool> {
    let n = tx.exec(
        "INSERT OR IGNORE INTO incident_alerts (incident_id, alert_id) VALUES (?1, ?2)",
        params![id, alert.id],
    )?;
    if n == 1 {
        let group: Vec<String> = alert
            .group
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        timeline(
            tx,
            id,
            now,
            TimelineKind::Alert,
            None,
            &format!(
                "alert #{} {} [{}] value {} at {}",
                alert.id,
                alert.rule,
                group.join(", "),
                alert.value,
                alert.last_seen
            ),
        )?;
    }
    Ok(n == 1)
}

fn timeline(
    conn: &rusqlite::Connection,
    id: i64,
    at: Timestamp,
    kind: TimelineKind,
    author: Option<&str>,
    text: &str,
) -> Result<i64> {
    conn.exec(
        "INSERT INTO incident_timeline (incident_id, at, kind, author, text) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, at.0, kind.as_str(), author, text],
    )?;
    Ok(conn.last_insert_rowid())
}

fn load(conn: &rusqlite::Connection, id: i64) -> Result<Incident> {
    let raw = conn
        .row(
            &format!("SELECT {INCIDENT_COLS} FROM incidents WHERE id = ?1"),
            [id],
            raw_incident,
        )
        .optional()?
        .ok_or(RespondError::NotFound {
            what: "incident",
            id,
        })?;
    let mut stmt = conn.prepare_cached(
        "SELECT alert_id FROM incident_alerts WHERE incident_id = ?1 ORDER BY alert_id",
    )?;
    let alerts = stmt
        .query_map([id], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_incident(alerts)
}

struct RawIncident {
    id: i64,
    priority: String,
    rule: String,
    fingerprint: String,
    title: String,
    labels: String,
    group: String,
    state: String,
    opened: i64,
    ack_deadline: i64,
    escalation_level: i64,
    breached: bool,
    acked_at: Option<i64>,
    acked_by: Option<String>,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
}

fn raw_incident(r: &Row<'_>) -> rusqlite::Result<RawIncident> {
    Ok(RawIncident {
        id: r.get(0)?,
        priority: r.get(1)?,
        rule: r.get(2)?,
        fingerprint: r.get(3)?,
        title: r.get(4)?,
        labels: r.get(5)?,
        group: r.get(6)?,
        state: r.get(7)?,
        opened: r.get(8)?,
        ack_deadline: r.get(9)?,
        escalation_level: r.get(10)?,
        breached: r.get(11)?,
        acked_at: r.get(12)?,
        acked_by: r.get(13)?,
        resolved_at: r.get(14)?,
        resolved_by: r.get(15)?,
    })
}

impl RawIncident {
    fn into_incident(self, alerts: Vec<i64>) -> Result<Incident> {
        Ok(Incident {
            id: self.id,
            priority: parse_priority("incidents", Some(&self.priority))?
                .ok_or_else(|| RespondError::corrupt("incidents", "priority"))?,
            rule: self.rule,
            fingerprint: self.fingerprint,
            title: self.title,
            labels: from_json("incidents", &self.labels)?,
            group: from_json("incidents", &self.group)?,
            state: IncidentState::parse(&self.state)?,
            opened: Timestamp(self.opened),
            ack_deadline: Timestamp(self.ack_deadline),
            escalation_level: u32::try_from(self.escalation_level).unwrap_or(u32::MAX),
            breached: self.breached,
            acked_at: self.acked_at.map(Timestamp),
            acked_by: self.acked_by,
            resolved_at: self.resolved_at.map(Timestamp),
            resolved_by: self.resolved_by,
            alerts,
        })
    }
}
