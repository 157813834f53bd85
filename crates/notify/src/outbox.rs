//! The durable outbox: every notification is written here (in the shared
//! SQLite database) before it is sent.
//!
//! Life of an item: `pending` → (`due` leases it) `sending` → `sent`, or back
//! to `pending` with a later `next_attempt_at` (`mark_failed`), or `dead`
//! (`dead_letter`: permanent failure or older than `max_age`). A `sending`
//! item whose lease has expired returns to `pending` in [`Outbox::due`], and
//! [`Outbox::recover`] returns every `sending` item at startup: a process
//! killed mid-send re-sends after restart (at least once; receivers dedupe on
//! the idempotency key).
//!
//! Beside the outbox: the digest collection (`notify_digest`) and the alerts
//! owed a message that still waits in a batch (`notify_owed`, see
//! [`crate::route`]), both restored at start.
//!
//! Migrations are recorded in `schema_migrations(component, version)` with
//! component `notify`, shared with the other components using the file.

use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, params};
use secmon_core::{Dur, Timestamp};

use crate::digest::{Digest, DigestEntry};
use crate::model::{DigestPeriod, Message};
use crate::route::{BatchChange, OwedAlert};
use crate::{Error, Result};

pub const COMPONENT: &str = "notify";

const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE notify_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        receiver TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        queued_at INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_until INTEGER,
        sent_at INTEGER,
        last_error TEXT,
        dead_reason TEXT
    );
    CREATE INDEX notify_outbox_due ON notify_outbox (status, next_attempt_at);",
    // v2
    "CREATE TABLE notify_digest (
        receiver TEXT NOT NULL,
        period TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        rule_name TEXT NOT NULL,
        severity TEXT NOT NULL,
        alert TEXT,
        since INTEGER NOT NULL,
        PRIMARY KEY (receiver, period, fingerprint)
    );",
    // v3: alerts owed a message that is still waiting in a batch
    // (group_wait / group_interval), so a kill -9 does not lose them; see
    // `route::Batcher::take_changes`.
    "CREATE TABLE notify_owed (
        route INTEGER NOT NULL,
        receiver TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        alert TEXT NOT NULL,
        due INTEGER NOT NULL,
        PRIMARY KEY (route, receiver, fingerprint)
    );",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
        }
    }
}

impl FromStr for OutboxStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => OutboxStatus::Pending,
            "sending" => OutboxStatus::Sending,
            "sent" => OutboxStatus::Sent,
            "dead" | "failed" => OutboxStatus::Dead,
            _ => {
                return Err(Error::Config(format!(
                    "unknown outbox status {s:?} (pending, sending, sent, dead)"
                )));
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub message: Message,
    pub status: OutboxStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    pub created_at: Timestamp,
    /// When the item was (re-)queued; `max_age` counts from here.
    pub queued_at: Timestamp,
    pub next_attempt_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
}

/// How one delivery attempt ended, as the outbox records it (see
/// [`crate::Dispatcher::settle`]). Outcomes carry absolute values (the
/// attempt count after this attempt), so recording one twice is harmless:
/// a worker that hands its outcomes to another writer can record them again
/// itself when unsure they were committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The receiver accepted it at `at`.
    Sent { id: i64, at: Timestamp },
    /// A failed attempt, the `attempts`-th; the next one is due at
    /// `retry_at`.
    Retry {
        id: i64,
        attempts: u32,
        error: String,
        retry_at: Timestamp,
    },
    /// Given up: a permanent failure, or (`attempts` set) a failed attempt
    /// past `max_age`, which also counts and is kept as the last error.
    Dead {
        id: i64,
        reason: String,
        attempts: Option<u32>,
    },
}

impl Settlement {
    pub fn id(&self) -> i64 {
        match self {
            Settlement::Sent { id, .. }
            | Settlement::Retry { id, .. }
            | Settlement::Dead { id, .. } => *id,
        }
    }
}

/// Which dead letters [`Outbox::retry`] re-queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryTarget {
    One(i64),
    All,
}

/// The outbox over a connection owned by the caller.
pub struct Outbox<'c> {
    conn: &'c Connection,
    lease: Dur,
}

const COLUMNS: &str = "id, message, status, attempts, created_at, queued_at, next_attempt_at, sent_at, last_error, dead_reason";

fn row_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxItem, String)> {
    let message: String = r.get(1)?;
    let status: String = r.get(2)?;
    let item = OutboxItem {
        id: r.get(0)?,
        message: Message {
            receiver: String::new(),
            alerts: vec![],
            status: crate::model::AlertStatus::Firing,
            kind: crate::model::MessageKind::Alert,
            idempotency_key: String::new(),
            suppressed: 0,
            digest: None,
        },
        status: status.parse().unwrap_or(OutboxStatus::Pending),
        attempts: r.get::<_, i64>(3)? as u32,
        created_at: Timestamp(r.get(4)?),
        queued_at: Timestamp(r.get(5)?),
        next_attempt_at: Timestamp(r.get(6)?),
        sent_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
        last_error: r.get(8)?,
        dead_reason: r.get(9)?,
    };
    Ok((item, message))
}

impl<'c> Outbox<'c> {
    /// Applies pending migrations. The lease is how long a `sending` item is
    /// reserved (must exceed the send timeout).
    pub fn new(conn: &'c Connection, lease: Dur) -> Result<Outbox<'c>> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                component TEXT NOT NULL,
                version INTEGER NOT NULL,
                PRIMARY KEY (component, version)
            )",
        )?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let done: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE component = ?1 AND version = ?2",
                    params![COMPONENT, version],
                    |r| r.get(0),
                )
                .optional()?;
            if done.is_none() {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2)",
                    params![COMPONENT, version],
                )?;
            }
            tx.commit()?;
        }
        Ok(Outbox { conn, lease })
    }

    fn load(&self, (mut item, json): (OutboxItem, String)) -> Result<OutboxItem> {
        item.message = serde_json::from_str(&json)?;
        Ok(item)
    }

    /// Stores `msg` as pending, due now. Enqueueing a message whose
    /// idempotency key is already stored returns the existing id and stores
    /// nothing (so replaying the same alerts does not notify twice).
    pub fn enqueue(&self, msg: &Message, now: Timestamp) -> Result<i64> {
        Ok(self.insert(msg, now)?.0)
    }

    /// [`Outbox::enqueue`], also telling whether a row was written (`false`:
    /// the idempotency key was already stored, the id is the existing one).
    pub fn insert(&self, msg: &Message, now: Timestamp) -> Result<(i64, bool)> {
        let json = serde_json::to_string(msg)?;
        let kind = serde_json::to_value(msg.kind)?;
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO notify_outbox
                (idempotency_key, receiver, kind, message, status, attempts, created_at, queued_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)
             ON CONFLICT (idempotency_key) DO NOTHING",
            )?
            .execute(params![
                msg.idempotency_key,
                msg.receiver,
                kind.as_str().unwrap_or("alert"),
                json,
                now.0
            ])?;
        if inserted == 1 {
            return Ok((self.conn.last_insert_rowid(), true));
        }
        let id = self.conn.query_row(
            "SELECT id FROM notify_outbox WHERE idempotency_key = ?1",
            params![msg.idempotency_key],
            |r| r.get(0),
        )?;
        Ok((id, false))
    }

    /// The item `id` as [`Outbox::insert`] just wrote it, without reading it
    /// back (for handing it to a delivery worker in memory).
    pub fn fresh_item(id: i64, msg: &Message, now: Timestamp) -> OutboxItem {
        OutboxItem {
            id,
            message: msg.clone(),
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at: now,
            queued_at: now,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            dead_reason: None,
        }
    }

    /// Ids of pending items due at `now`, oldest first, at most `limit`.
    /// Reads only: a worker that knows which items it already has in hand
    /// picks the others and loads them with [`Outbox::get`].
    pub fn due_ids(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id FROM notify_outbox
             WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2",
        )?;
        let ids = st
            .query_map(params![now.0, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    }

    /// Records outcomes inside the caller's transaction (the engine thread's
    /// group commit), or each on its own without one. Recording the same
    /// settlement twice leaves the same row.
    pub fn apply(&self, done: &[Settlement]) -> Result<()> {
        for s in done {
            settle(self.conn, s)?;
        }
        Ok(())
    }

    /// Returns every `sending` item to `pending` (call once at startup: a
    /// single process owns the outbox, so those sends died with it).
    pub fn recover(&self, now: Timestamp) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE notify_outbox SET status = 'pending', lease_until = NULL,
                 next_attempt_at = MIN(next_attempt_at, ?1)
             WHERE status = 'sending'",
            params![now.0],
        )?)
    }

    /// Leases up to `limit` items due at `now` (oldest first), marking them
    /// `sending` until `now + lease`. Expired leases are released first.
    pub fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>> {
        self.exchange(&[], now, limit)
    }

    /// Records the outcomes of finished sends and leases up to `limit` due
    /// items (as [`Outbox::due`]), all in one transaction: a delivery worker
    /// with many sends in flight pays one commit per round, not one per item.
    /// With `limit` 0 it only records.
    pub fn exchange(
        &self,
        done: &[Settlement],
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let tx = rusqlite::Transaction::new_unchecked(
            self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        for s in done {
            settle(&tx, s)?;
        }
        if limit == 0 {
            tx.commit()?;
            return Ok(Vec::new());
        }
        tx.execute(
            "UPDATE notify_outbox SET status = 'pending', lease_until = NULL
             WHERE status = 'sending' AND lease_until <= ?1",
            params![now.0],
        )?;
        let rows = {
            let mut st = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM notify_outbox
                 WHERE status = 'pending' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, id LIMIT ?2"
            ))?;
            st.query_map(params![now.0, limit as i64], row_item)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let lease_until = now.add(self.lease).0;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut item = self.load(row)?;
            tx.execute(
                "UPDATE notify_outbox SET status = 'sending', lease_until = ?2 WHERE id = ?1",
                params![item.id, lease_until],
            )?;
            item.status = OutboxStatus::Sending;
            out.push(item);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records one outcome in its own transaction.
    pub fn record(&self, s: &Settlement) -> Result<()> {
        self.exchange(std::slice::from_ref(s), Timestamp(0), 0)?;
        Ok(())
    }

    pub fn mark_sent(&self, id: i64, now: Timestamp) -> Result<()> {
        self.conn.execute(
            "UPDATE notify_outbox SET status = 'sent', sent_at = ?2, lease_until = NULL WHERE id = ?1",
            params![id, now.0],
        )?;
        Ok(())
    }

    /// Counts a failed attempt and schedules the next at `retry_at`.
    pub fn mark_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()> {
        self.conn.execute(
            "UPDATE notify_outbox SET status = 'pending', attempts = attempts + 1,
                 last_error = ?2, next_attempt_at = ?3, lease_until = NULL
             WHERE id = ?1",
            params![id, error, retry_at.0],
        )?;
        Ok(())
    }

    pub fn dead_letter(&self, id: i64, reason: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE notify_outbox SET status = 'dead', dead_reason = ?2, lease_until = NULL WHERE id = ?1",
            params![id, reason],
        )?;
        Ok(())
    }

    /// Items with `status`, oldest first.
    pub fn list(&self, status: OutboxStatus) -> Result<Vec<OutboxItem>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM notify_outbox WHERE status = ?1 ORDER BY id"
        ))?;
        let rows = st
            .query_map(params![status.as_str()], row_item)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|r| self.load(r)).collect()
    }

    pub fn get(&self, id: i64) -> Result<Option<OutboxItem>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM notify_outbox WHERE id = ?1"),
                params![id],
                row_item,
            )
            .optional()?;
        row.map(|r| self.load(r)).transpose()
    }

    /// Re-queues dead letters (one or all) as new: due now, attempts reset,
    /// `max_age` counted from now. Returns how many were re-queued.
    pub fn retry(&self, target: RetryTarget, now: Timestamp) -> Result<usize> {
        let set = "status = 'pending', attempts = 0, queued_at = ?1, next_attempt_at = ?1,
                   dead_reason = NULL, lease_until = NULL";
        Ok(match target {
            RetryTarget::One(id) => self.conn.execute(
                &format!("UPDATE notify_outbox SET {set} WHERE id = ?2 AND status = 'dead'"),
                params![now.0, id],
            )?,
            RetryTarget::All => self.conn.execute(
                &format!("UPDATE notify_outbox SET {set} WHERE status = 'dead'"),
                params![now.0],
            )?,
        })
    }

    /// Items not yet sent nor dead (pending + sending).
    pub fn depth(&self) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM notify_outbox WHERE status IN ('pending', 'sending')",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Dead letters waiting for an operator.
    pub fn dead_count(&self) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM notify_outbox WHERE status = 'dead'",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Replaces the stored digest collection with `digest`'s. Call after
    /// enqueueing the messages of a flush.
    ///
    /// Atomic on its own; inside a caller's open transaction (the response
    /// stage's group commit) it is a savepoint of that transaction.
    pub fn save_digest(&self, digest: &Digest) -> Result<()> {
        let nested = !self.conn.is_autocommit();
        self.conn.execute_batch(if nested {
            "SAVEPOINT notify_digest"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        let write = || -> Result<()> {
            self.conn.execute("DELETE FROM notify_digest", [])?;
            for e in digest.snapshot() {
                let alert = e.alert.as_ref().map(serde_json::to_string).transpose()?;
                self.conn.execute(
                    "INSERT INTO notify_digest (receiver, period, fingerprint, rule, rule_name, severity, alert, since)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![e.receiver, e.period.as_str(), e.fingerprint, e.rule, e.rule_name, e.severity.as_str(), alert, e.since.0],
                )?;
            }
            Ok(())
        };
        match write() {
            Ok(()) => {
                self.conn.execute_batch(if nested {
                    "RELEASE notify_digest"
                } else {
                    "COMMIT"
                })?;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch(if nested {
                    "ROLLBACK TO notify_digest; RELEASE notify_digest"
                } else {
                    "ROLLBACK"
                });
                Err(e)
            }
        }
    }

    /// Restores the stored digest collection into `digest` (at startup).
    pub fn load_digest(&self, digest: &mut Digest) -> Result<usize> {
        let mut st = self.conn.prepare(
            "SELECT receiver, period, fingerprint, rule, rule_name, severity, alert, since FROM notify_digest",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut entries = Vec::with_capacity(rows.len());
        for (receiver, period, fingerprint, rule, rule_name, severity, alert, since) in rows {
            entries.push(DigestEntry {
                receiver,
                period: if period == "weekly" {
                    DigestPeriod::Weekly
                } else {
                    DigestPeriod::Daily
                },
                fingerprint,
                rule,
                rule_name,
                severity: severity.parse().map_err(Error::Config)?,
                alert: alert.map(|a| serde_json::from_str(&a)).transpose()?,
                since: Timestamp(since),
            });
        }
        let n = entries.len();
        digest.restore(entries);
        Ok(n)
    }

    /// Records what the batcher owes (from
    /// [`crate::Batcher::take_changes`], applied in order) in the caller's
    /// transaction: the response stage calls it before each commit, after
    /// writing the outbox rows of the same flushes, so an alert is either
    /// owed here or in the outbox, never neither.
    pub fn save_batch_changes(&self, changes: &[BatchChange]) -> Result<()> {
        for c in changes {
            match c {
                BatchChange::Owed {
                    route,
                    receiver,
                    alert,
                    due,
                } => {
                    self.conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO notify_owed (route, receiver, fingerprint, alert, due)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![
                            *route as i64,
                            receiver,
                            alert.fingerprint,
                            serde_json::to_string(alert)?,
                            due.0
                        ])?;
                }
                BatchChange::Settled {
                    route,
                    receiver,
                    fingerprint,
                } => {
                    self.conn
                        .prepare_cached(
                            "DELETE FROM notify_owed
                             WHERE route = ?1 AND receiver = ?2 AND fingerprint = ?3",
                        )?
                        .execute(params![*route as i64, receiver, fingerprint])?;
                }
            }
        }
        Ok(())
    }

    /// Every owed alert, removed from the store (at start: the caller gives
    /// them to [`crate::Batcher::restore`] and writes back what the batcher
    /// then reports, in the same transaction).
    pub fn take_owed(&self) -> Result<Vec<OwedAlert>> {
        let rows = self
            .conn
            .prepare("SELECT route, receiver, alert, due FROM notify_owed ORDER BY due, route, receiver, fingerprint")?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (route, receiver, alert, due) in rows {
            out.push(OwedAlert {
                route: usize::try_from(route)
                    .map_err(|_| Error::Config(format!("notify_owed: route {route}")))?,
                receiver,
                alert: serde_json::from_str(&alert)?,
                due: Timestamp(due),
            });
        }
        self.conn.execute("DELETE FROM notify_owed", [])?;
        Ok(out)
    }

    /// Number of alerts owed a message that is still batched.
    pub fn owed_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM notify_owed", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Deletes sent items sent before `before`; returns how many.
    pub fn prune_sent(&self, before: Timestamp) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM notify_outbox WHERE status = 'sent' AND sent_at < ?1",
            params![before.0],
        )?)
    }
}

/// Writes one outcome (inside the caller's transaction, if any).
fn settle(conn: &Connection, s: &Settlement) -> Result<()> {
    match s {
        Settlement::Sent { id, at } => {
            conn.prepare_cached(
                "UPDATE notify_outbox SET status = 'sent', sent_at = ?2, lease_until = NULL WHERE id = ?1",
            )?
            .execute(params![id, at.0])?;
        }
        Settlement::Retry {
            id,
            attempts,
            error,
            retry_at,
        } => {
            conn.prepare_cached(
                "UPDATE notify_outbox SET status = 'pending', attempts = ?2,
                     last_error = ?3, next_attempt_at = ?4, lease_until = NULL
                 WHERE id = ?1",
            )?
            .execute(params![id, attempts, error, retry_at.0])?;
        }
        Settlement::Dead {
            id,
            reason,
            attempts,
        } => {
            if let Some(n) = attempts {
                conn.prepare_cached(
                    "UPDATE notify_outbox SET attempts = ?2, last_error = ?3 WHERE id = ?1",
                )?
                .execute(params![id, n, reason])?;
            }
            conn.prepare_cached(
                "UPDATE notify_outbox SET status = 'dead', dead_reason = ?2, lease_until = NULL WHERE id = ?1",
            )?
            .execute(params![id, reason])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("secmon.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        (dir, conn)
    }

    fn msg(key: &str) -> Message {
        let mut m = message(vec![alert()]);
        m.idempotency_key = key.into();
        m
    }

    #[test]
    fn lifecycle_leases_and_dead_letters() {
        let (_d, conn) = db();
        let ob = Outbox::new(&conn, Dur::from_secs(60)).unwrap();
        // Migrations are idempotent and recorded.
        Outbox::new(&conn, Dur::from_secs(60)).unwrap();
        let v: i64 = conn
            .query_row(
                "SELECT MAX(version) FROM schema_migrations WHERE component='notify'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(v, 3);
        let t = Timestamp(1_000_000);
        let a = ob.enqueue(&msg("a"), t).unwrap();
        let b = ob.enqueue(&msg("b"), t).unwrap();
        assert_eq!(ob.enqueue(&msg("a"), t).unwrap(), a, "same key, same item");
        assert_eq!(ob.depth().unwrap(), 2);

        let due = ob.due(t, 10).unwrap();
        assert_eq!(due.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(due[0].message, msg("a"));
        assert!(ob.due(t, 10).unwrap().is_empty(), "leased");
        ob.mark_sent(a, t).unwrap();
        ob.mark_failed(b, "HTTP 500", t.add(Dur::from_secs(5)))
            .unwrap();
        assert!(ob.due(t.add(Dur::from_secs(4)), 10).unwrap().is_empty());
        let again = ob.due(t.add(Dur::from_secs(5)), 10).unwrap();
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
        // Lease expiry returns it.
        assert!(ob.due(t.add(Dur::from_secs(30)), 10).unwrap().is_empty());
        assert_eq!(ob.due(t.add(Dur::from_secs(66)), 10).unwrap().len(), 1);
        ob.dead_letter(b, "too old").unwrap();
        assert_eq!(ob.depth().unwrap(), 0);
        let dead = ob.list(OutboxStatus::Dead).unwrap();
        assert_eq!(dead[0].dead_reason.as_deref(), Some("too old"));
        let later = t.add(Dur::from_mins(100));
        assert_eq!(ob.retry(RetryTarget::All, later).unwrap(), 1);
        let it = ob.get(b).unwrap().unwrap();
        assert_eq!(
            (it.status, it.attempts, it.queued_at),
            (OutboxStatus::Pending, 0, later)
        );
        assert_eq!(ob.list(OutboxStatus::Sent).unwrap().len(), 1);
    }

    #[test]
    fn digest_collection_survives_restart() {
        use crate::config::DigestConfig;
        let (_d, conn) = db();
        let ob = Outbox::new(&conn, Dur::from_secs(60)).unwrap();
        let t = Timestamp::parse_rfc3339("2024-01-15T10:00:00Z").unwrap();
        let mut d = Digest::new(&DigestConfig::default(), t).unwrap();
        d.push("mail", DigestPeriod::Daily, &alert(), t);
        d.push("mail", DigestPeriod::Weekly, &alert(), t);
        ob.save_digest(&d).unwrap();
        let mut d2 = Digest::new(&DigestConfig::default(), t).unwrap();
        assert_eq!(ob.load_digest(&mut d2).unwrap(), 2);
        assert_eq!(d2.snapshot(), d.snapshot());
    }

    #[test]
    fn recover_releases_all_sending() {
        let (_d, conn) = db();
        let ob = Outbox::new(&conn, Dur::from_mins(10)).unwrap();
        let t = Timestamp(5);
        ob.enqueue(&msg("x"), t).unwrap();
        assert_eq!(ob.due(t, 10).unwrap().len(), 1);
        let ob = Outbox::new(&conn, Dur::from_mins(10)).unwrap();
        assert_eq!(ob.recover(t).unwrap(), 1);
        assert_eq!(ob.due(t, 10).unwrap().len(), 1);
    }
}
