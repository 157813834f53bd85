//! The embedded SQLite store every response component persists into: alerts,
//! silences, decisions and incidents (and, through the same migration
//! convention, the notify crate's outbox).
//!
//! Durability is the point: WAL with `synchronous=FULL`, so a write whose
//! transaction returned `Ok` survives `kill -9` and power loss. The store has
//! one writer (the binary's respond task); it does not pool connections or
//! serialise access across threads — `Connection` is `!Sync` and that is the
//! contract. Schema changes are append-only lists of SQL per component,
//! recorded in `schema_migrations(component, version)` so several crates can
//! share one database file without fighting over `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{RespondError, Result};

/// This crate's component name in `schema_migrations`.
pub const COMPONENT: &str = "respond";

/// How long a writer waits on a lock held by another connection (an operator's
/// `sqlite3` shell, the notify crate's connection) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Append-only: never edit a shipped entry, add a new one. Version = index + 1.
const MIGRATIONS: &[&str] = &[
    // v1: alerts and silences.
    "CREATE TABLE alerts (
        id          INTEGER PRIMARY KEY,
        fingerprint TEXT    NOT NULL,
        rule        TEXT    NOT NULL,
        rule_name   TEXT    NOT NULL,
        severity    TEXT    NOT NULL,
        priority    TEXT,
        labels      TEXT    NOT NULL,
        grp         TEXT    NOT NULL,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        value       REAL,
        threshold   REAL,
        status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
        resolved_at INTEGER,
        silenced_by INTEGER
    );
    -- At most one firing alert per (rule, group): the dedup invariant, enforced
    -- by the database rather than trusted to the code.
    CREATE UNIQUE INDEX alerts_firing ON alerts(fingerprint) WHERE status = 'firing';
    CREATE INDEX alerts_last_seen ON alerts(last_seen);
    CREATE TABLE silences (
        id       INTEGER PRIMARY KEY,
        matchers TEXT    NOT NULL,
        starts   INTEGER NOT NULL,
        ends     INTEGER NOT NULL,
        author   TEXT    NOT NULL,
        comment  TEXT    NOT NULL,
        created  INTEGER NOT NULL
    );
    CREATE INDEX silences_ends ON silences(ends);",
    // v2: decisions, and the audit log of refused ones.
    "CREATE TABLE decisions (
        id          INTEGER PRIMARY KEY,
        scope       TEXT    NOT NULL,
        value       TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        origin_rule TEXT,
        alert_id    INTEGER,
        author      TEXT,
        created     INTEGER NOT NULL,
        expires     INTEGER NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN ('active', 'expired', 'deleted')),
        removed_at  INTEGER,
        removed_by  TEXT
    );
    CREATE INDEX decisions_key ON decisions(scope, value, created);
    CREATE INDEX decisions_active ON decisions(expires) WHERE state = 'active';
    CREATE TABLE decision_refusals (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        action      TEXT    NOT NULL,
        scope       TEXT    NOT NULL,
        value       TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        origin_rule TEXT,
        alert_id    INTEGER
    );",
    // v3: incidents with their alerts, timeline, evidence and checklist.
    "CREATE TABLE incidents (
        id               INTEGER PRIMARY KEY,
        priority         TEXT    NOT NULL,
        rule             TEXT    NOT NULL,
        fingerprint      TEXT    NOT NULL,
        title            TEXT    NOT NULL,
        labels           TEXT    NOT NULL,
        grp              TEXT    NOT NULL,
        state            TEXT    NOT NULL CHECK (state IN ('triggered', 'acknowledged', 'resolved')),
        opened           INTEGER NOT NULL,
        ack_deadline     INTEGER NOT NULL,
        escalation_level INTEGER NOT NULL DEFAULT 0,
        breached         INTEGER NOT NULL DEFAULT 0,
        acked_at         INTEGER,
        acked_by         TEXT,
        resolved_at      INTEGER,
        resolved_by      TEXT
    );
    CREATE UNIQUE INDEX incidents_open ON incidents(fingerprint) WHERE state != 'resolved';
    CREATE INDEX incidents_deadline ON incidents(ack_deadline) WHERE state = 'triggered';
    CREATE TABLE incident_alerts (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        alert_id    INTEGER NOT NULL REFERENCES alerts(id),
        PRIMARY KEY (incident_id, alert_id)
    );
    CREATE TABLE incident_timeline (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL,
        author      TEXT,
        text        TEXT    NOT NULL
    );
    CREATE INDEX incident_timeline_inc ON incident_timeline(incident_id, id);
    CREATE TABLE incident_evidence (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        alert_id    INTEGER,
        event       TEXT    NOT NULL
    );
    CREATE INDEX incident_evidence_inc ON incident_evidence(incident_id);
    CREATE TABLE incident_checklist (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        idx         INTEGER NOT NULL,
        text        TEXT    NOT NULL,
        done_at     INTEGER,
        done_by     TEXT,
        PRIMARY KEY (incident_id, idx)
    );",
    // v4: why an alert resolved, when it was not the engine seeing its
    // condition clear (its rule removed, its state lost at a restart).
    "ALTER TABLE alerts ADD COLUMN resolve_reason TEXT;",
];

/// An open SQLite database with this crate's schema applied.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, its parent
    /// directory included, and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |reason: String| RespondError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("creating {}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_err(format!("enabling WAL: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!(
                "journal_mode is {mode}, WAL unavailable (network filesystem?)"
            )));
        }
        Self::configure(&conn).map_err(|e| open_err(e.to_string()))?;
        let store = Store {
            conn,
            path: Some(path.to_path_buf()),
        };
        store.migrate(COMPONENT, MIGRATIONS)?;
        Ok(store)
    }

    /// A private database for tests and dry runs; gone when dropped.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        Self::configure(&conn)?;
        let store = Store { conn, path: None };
        store.migrate(COMPONENT, MIGRATIONS)?;
        Ok(store)
    }

    fn configure(conn: &Connection) -> rusqlite::Result<()> {
        // FULL: every commit fsyncs the WAL, which is what "a kill -9 or a
        // power cut loses nothing acknowledged" needs. NORMAL would lose the
        // last transactions on power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Applies `migrations[v..]` for `component`, each in its own immediate
    /// transaction together with its `schema_migrations` row, so a crash
    /// mid-migration leaves the previous version intact. Public so other
    /// crates sharing the file (notify) use the same convention.
    pub fn migrate(&self, component: &str, migrations: &[&str]) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                component TEXT    NOT NULL,
                version   INTEGER NOT NULL,
                PRIMARY KEY (component, version)
            )",
        )?;
        let known = migrations.len() as u32;
        let found = self.schema_version(component)?;
        if found > known {
            return Err(RespondError::SchemaTooNew {
                component: component.to_string(),
                found,
                known,
            });
        }
        for (i, sql) in migrations.iter().enumerate() {
            let version = i as u32 + 1;
            let mig_err = |source| RespondError::Migration {
                component: component.to_string(),
                version,
                source,
            };
            // Immediate: two processes starting at once serialise here, and
            // the second sees the first's row instead of re-running the SQL.
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                .map_err(mig_err)?;
            let applied = tx
                .query_row(
                    "SELECT 1 FROM schema_migrations WHERE component = ?1 AND version = ?2",
                    rusqlite::params![component, version],
                    |_| Ok(()),
                )
                .optional()
                .map_err(mig_err)?
                .is_some();
            if applied {
                continue;
            }
            tx.execute_batch(sql).map_err(mig_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2)",
                rusqlite::params![component, version],
            )
            .map_err(mig_err)?;
            tx.commit().map_err(mig_err)?;
        }
        Ok(())
    }

    /// Highest applied migration version of `component` (0 if none).
    pub fn schema_version(&self, component: &str) -> Result<u32> {
        let v: Option<u32> = self.conn.query_row(
            "SELECT MAX(version) FROM schema_migrations WHERE component = ?1",
            [component],
            |r| r.get(0),
        )?;
        Ok(v.unwrap_or(0))
    }

    /// `PRAGMA integrity_check`: `"ok"` or SQLite's list of problems.
    pub fn integrity_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out.join("\n"))
    }

    /// An immediate transaction: the write lock is taken up front, so a
    /// read-then-write sequence (dedup, ladder counting) cannot interleave with
    /// another connection's writes. Inside a [`Store::begin_batch`] it is a
    /// savepoint of the batch's transaction instead: atomic on its own, made
    /// durable by the batch's single commit.
    pub(crate) fn write_tx(&self) -> Result<WriteTx<'_>> {
        WriteTx::begin(&self.conn)
    }

    /// Group commit: until [`Store::commit_batch`], every change made through
    /// this store joins one transaction, so a burst of alerts costs one
    /// fsync instead of one each. Durability is the batch's: the caller
    /// commits before it acknowledges anything (sources, HTTP clients) that
    /// depends on the changes. A no-op if a batch is already open.
    pub fn begin_batch(&self) -> Result<()> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        Ok(())
    }

    /// Commits the open batch (one fsync under `synchronous=FULL`).
    pub fn commit_batch(&self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }
}

/// See [`Store::write_tx`]: a transaction, or a savepoint inside a batch.
pub(crate) struct WriteTx<'c> {
    conn: &'c Connection,
    nested: bool,
    done: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c Connection) -> Result<Self> {
        let nested = !conn.is_autocommit();
        conn.execute_batch(if nested {
            "SAVEPOINT secmon_write"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        Ok(WriteTx {
            conn,
            nested,
            done: false,
        })
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.execute_batch(if self.nested {
            "RELEASE secmon_write"
        } else {
            "COMMIT"
        })?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    /// Not committed (an error part-way): undo this write only.
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch(if self.nested {
                "ROLLBACK TO secmon_write; RELEASE secmon_write"
            } else {
                "ROLLBACK"
            });
        }
    }
}

/// Number of migrations this build knows for [`COMPONENT`].
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Statements the store keeps compiled: every distinct SQL text of the
/// alert, incident, decision and outbox paths fits.
const STATEMENT_CACHE: usize = 256;

/// `execute` and `query_row` through the connection's statement cache.
/// rusqlite's own prepare the SQL on every call, and parsing and planning
/// a statement cost more than running it: with a dozen statements per
/// alert, they were most of the response stage's time on the engine thread.
pub(crate) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_transaction_whose_failed_writes_roll_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).unwrap();
        store
            .conn()
            .execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        let other = Store::open(&path).unwrap();
        store.begin_batch().unwrap();
        let w = store.write_tx().unwrap();
        w.execute("INSERT INTO t VALUES (1)", []).unwrap();
        w.commit().unwrap();
        {
            // A write that fails part-way is undone; the batch goes on.
            let w = store.write_tx().unwrap();
            w.execute("INSERT INTO t VALUES (2)", []).unwrap();
            assert!(w.execute("INSERT INTO t VALUES (NULL)", []).is_err());
        }
        // Not visible to another connection before the batch commits.
        let n = |s: &Store| -> i64 {
            s.conn()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(n(&other), 0);
        store.commit_batch().unwrap();
        assert_eq!(n(&other), 1);
        // Outside a batch a write is its own transaction.
        let w = store.write_tx().unwrap();
        w.execute("INSERT INTO t VALUES (3)", []).unwrap();
        w.commit().unwrap();
        assert_eq!(n(&other), 2);
    }

    #[test]
    fn open_creates_parent_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/secmon.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version(COMPONENT).unwrap(), SCHEMA_VERSION);
        assert_eq!(s.path(), Some(path.as_path()));
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version(COMPONENT).unwrap(), SCHEMA_VERSION);
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn other_components_share_the_table() {
        let s = Store::open_in_memory().unwrap();
        s.migrate("notify", &["CREATE TABLE outbox (id INTEGER PRIMARY KEY)"])
            .unwrap();
        assert_eq!(s.schema_version("notify").unwrap(), 1);
        assert_eq!(s.schema_version(COMPONENT).unwrap(), SCHEMA_VERSION);
        // A build that knows fewer migrations refuses the newer database.
        let err = s.migrate("notify", &[]).unwrap_err();
        assert!(matches!(err, RespondError::SchemaTooNew { found: 1, .. }));
    }
}
