//! Dashboard users: people who log in to the web dashboard with a password,
//! each with one of the API key roles. Stored in the response store
//! (`dashboard_users`), passwords only as Argon2id PHC strings.
//!
//! Argon2id (memory-hard, salted) rather than the HMAC API keys use: a human
//! password is guessable, so a stolen database must make each guess cost
//! memory and time. It is checked once per login, never per request — the
//! session cookie carries the requests after that.
//!
//! This module does not log anyone in (see `login` in the parent module);
//! it is shared by the dashboard and by `secmon users`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, params};
use secmon_core::Timestamp;
use secmon_respond::Store;
use serde::Serialize;

use crate::api::keys::Role;

const MIGRATIONS: &[&str] = &["CREATE TABLE dashboard_users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        hash TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL
    )"];

/// Shortest password accepted (NIST SP 800-63B's minimum for user-chosen ones).
pub const MIN_PASSWORD: usize = 8;
/// Longest: Argon2 takes any length, but a megabyte "password" is a DoS.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("store: {0}")]
    Store(#[from] secmon_respond::RespondError),
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no dashboard user {0:?}")]
    NotFound(String),
    #[error("dashboard user {0:?} already exists (use `secmon users passwd`)")]
    Exists(String),
    #[error(
        "user name must be 1–64 characters of letters, digits and . _ @ + - (it is what the lock-account rule locks)"
    )]
    BadName,
    #[error("password must be {MIN_PASSWORD}–{MAX_PASSWORD} bytes")]
    BadPassword,
    #[error("role {0} cannot log in to the dashboard (use admin, responder or viewer)")]
    BadRole(Role),
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// A user as listed: never the hash.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UserInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A user loaded for verification.
#[derive(Clone, Debug)]
pub struct UserHash {
    pub name: String,
    pub role: Role,
    /// PHC string (`$argon2id$v=19$m=…`).
    pub hash: String,
    /// Changes with every password change: sessions made before it end.
    pub updated: Timestamp,
}

/// Canonical form of a user name: trimmed and lower-cased, so `Alice` and
/// `alice` are one account (and one lock).
pub fn normalize(name: &str) -> Result<String, UserError> {
    let n = name.trim().to_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok { Ok(n) } else { Err(UserError::BadName) }
}

/// Argon2id with the crate's defaults (RFC 9106 / OWASP: m = 19 MiB, t = 2,
/// p = 1) and a random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(UserError::BadPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Checks a password against a PHC string; false on any mismatch or a
/// malformed hash. Takes as long as the hash's parameters say, whatever the
/// outcome.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

pub struct Users<'s> {
    store: &'s Store,
}

impl<'s> Users<'s> {
    pub fn open(store: &'s Store) -> Result<Self, UserError> {
        store.migrate("dashboard_users", MIGRATIONS)?;
        Ok(Users { store })
    }

    pub fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now: Timestamp,
    ) -> Result<UserInfo, UserError> {
        let name = normalize(name)?;
        check_role(role)?;
        let hash = hash_password(password)?;
        let n = self.store.conn().execute(
            "INSERT OR IGNORE INTO dashboard_users (name, role, hash, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![name, role.as_str(), hash, now.0],
        )?;
        if n == 0 {
            return Err(UserError::Exists(name));
        }
        self.get(&name)
    }

    /// Sets a new password (and optionally a new role). Sessions of the user
    /// end: `updated` changes, which the dashboard checks.
    pub fn passwd(
        &self,
        name: &str,
        password: Option<&str>,
        role: Option<Role>,
        now: Timestamp,
    ) -> Result<UserInfo, UserError> {
        let name = normalize(name)?;
        let current = self.get(&name)?;
        let role = role.unwrap_or(current.role);
        check_role(role)?;
        // `updated` must move even within one millisecond of the last change.
        let updated = now.0.max(current.updated.0 + 1);
        match password {
            Some(p) => {
                let hash = hash_password(p)?;
                self.store.conn().execute(
                    "UPDATE dashboard_users SET hash = ?2, role = ?3, updated = ?4 WHERE name = ?1",
                    params![name, hash, role.as_str(), updated],
                )?;
            }
            None => {
                self.store.conn().execute(
                    "UPDATE dashboard_users SET role = ?2, updated = ?3 WHERE name = ?1",
                    params![name, role.as_str(), updated],
                )?;
            }
        }
        self.get(&name)
    }

    pub fn remove(&self, name: &str) -> Result<UserInfo, UserError> {
        let name = normalize(name)?;
        let u = self.get(&name)?;
        self.store
            .conn()
            .execute("DELETE FROM dashboard_users WHERE name = ?1", [&name])?;
        Ok(u)
    }

    pub fn get(&self, name: &str) -> Result<UserInfo, UserError> {
        self.list()?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| UserError::NotFound(name.to_string()))
    }

    pub fn list(&self) -> Result<Vec<UserInfo>, UserError> {
        let mut stmt = self.store.conn().prepare(
            "SELECT id, name, role, created, updated FROM dashboard_users ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, name, role, created, updated) = r?;
            let Some(role) = Role::parse(&role) else {
                continue;
            };
            out.push(UserInfo {
                id,
                name,
                role,
                created: Timestamp(created),
                updated: Timestamp(updated),
            });
        }
        Ok(out)
    }

    /// Every user with its hash, for the dashboard's in-memory copy.
    pub fn all_hashes(&self) -> Result<Vec<UserHash>, UserError> {
        let mut stmt = self
            .store
            .conn()
            .prepare("SELECT name, role, hash, updated FROM dashboard_users")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (name, role, hash, updated) = r?;
            if let Some(role) = Role::parse(&role) {
                out.push(UserHash {
                    name,
                    role,
                    hash,
                    updated: Timestamp(updated),
                });
            }
        }
        Ok(out)
    }

    /// One user's hash, if it exists.
    pub fn hash_of(&self, name: &str) -> Result<Option<UserHash>, UserError> {
        let row = self
            .store
            .conn()
            .query_row(
                "SELECT name, role, hash, updated FROM dashboard_users WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(name, role, hash, updated)| {
            Role::parse(&role).map(|role| UserHash {
                name,
                role,
                hash,
                updated: Timestamp(updated),
            })
        }))
    }
}

/// People log in as admin, responder or viewer; ingest and bouncer are roles
/// for programs and have nothing to look at.
fn check_role(role: Role) -> Result<(), UserError> {
    match role {
        Role::Admin | Role::Responder | Role::Viewer => Ok(()),
        other => Err(UserError::BadRole(other)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn add_verify_passwd_remove() {
        let store = Store::open_in_memory().unwrap();
        let users = Users::open(&store).unwrap();
        let u = users
            .add("Alice", Role::Responder, "correct horse", Timestamp(1))
            .unwrap();
        assert_eq!(u.name, "alice");
        assert!(matches!(
            users.add("alice", Role::Viewer, "another one", Timestamp(2)),
            Err(UserError::Exists(_))
        ));
        let h = users.hash_of("alice").unwrap().unwrap();
        assert!(h.hash.starts_with("$argon2id$v=19$"), "{}", h.hash);
        assert!(verify_password("correct horse", &h.hash));
        assert!(!verify_password("correct horsf", &h.hash));
        assert!(!verify_password("correct horse", "not a phc string"));
        // The clear password is stored nowhere.
        let dump: String = store
            .conn()
            .query_row("SELECT group_concat(hash) FROM dashboard_users", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!dump.contains("correct horse"));

        let p = users
            .passwd("alice", Some("battery staple"), None, Timestamp(1))
            .unwrap();
        assert!(p.updated > u.updated, "updated must move");
        let h2 = users.hash_of("alice").unwrap().unwrap();
        assert!(verify_password("battery staple", &h2.hash));
        assert!(!verify_password("correct horse", &h2.hash));
        let r = users
            .passwd("alice", None, Some(Role::Viewer), Timestamp(5))
            .unwrap();
        assert_eq!(r.role, Role::Viewer);
        assert_eq!(users.list().unwrap().len(), 1);
        users.remove("ALICE").unwrap();
        assert!(users.hash_of("alice").unwrap().is_none());
        assert!(matches!(users.remove("alice"), Err(UserError::NotFound(_))));
    }

    #[test]
    fn refuses_bad_names_passwords_and_program_roles() {
        let store = Store::open_in_memory().unwrap();
        let users = Users::open(&store).unwrap();
        for bad in ["", "a b", "x\u{0}", &"a".repeat(65), "bob;drop"] {
            assert!(matches!(
                users.add(bad, Role::Viewer, "long enough", Timestamp(1)),
                Err(UserError::BadName)
            ));
        }
        assert!(matches!(
            users.add("bob", Role::Viewer, "short", Timestamp(1)),
            Err(UserError::BadPassword)
        ));
        assert!(matches!(
            users.add("bob", Role::Bouncer, "long enough", Timestamp(1)),
            Err(UserError::BadRole(_))
        ));
        assert!(
            users
                .add("bob@example.com", Role::Admin, "long enough", Timestamp(1))
                .is_ok()
        );
    }
}
