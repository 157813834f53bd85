//! API keys: creation, listing and revocation, in the response store.
//!
//! A key is `smk_<prefix>_<secret>`: the 8-character prefix identifies it
//! (it is what lists and logs show), the 32-character secret is random. The
//! store keeps only HMAC-SHA256(server secret, whole key): a stolen database
//! yields no usable key, and without `SECMON_API_KEY_SECRET` not even a way
//! to test guesses offline. HMAC rather than Argon2 because it is checked on
//! every request: a slow hash would be a denial-of-service lever.
//!
//! This module does not authenticate requests (see `auth`); it is shared by
//! the API and by `secmon keys`.

use std::fmt;

use hmac::{KeyInit, Mac};
use rand::Rng;
use rusqlite::{OptionalExtension, params};
use secmon_core::Timestamp;
use secmon_respond::Store;
use serde::Serialize;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub const SECRET_ENV: &str = "SECMON_API_KEY_SECRET";
const MIN_SECRET_BYTES: usize = 16;
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const MIGRATIONS: &[&str] = &["CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        prefix TEXT NOT NULL UNIQUE,
        hash BLOB NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        created INTEGER NOT NULL,
        revoked INTEGER
    )"];

/// What a key may do. Ordered from most to least powerful only for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including rules and notifications administration.
    Admin,
    /// Read everything; acknowledge and resolve incidents, silence alerts,
    /// add and remove decisions.
    Responder,
    /// Read everything.
    Viewer,
    /// Only `POST /v1/events`.
    Ingest,
    /// Only read decisions (enforcing code: a bouncer, a middleware).
    Bouncer,
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Respond,
    Ingest,
    Decisions,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Responder => "responder",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
            Role::Bouncer => "bouncer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "responder" => Role::Responder,
            "viewer" => Role::Viewer,
            "ingest" => Role::Ingest,
            "bouncer" => Role::Bouncer,
            _ => return None,
        })
    }

    pub fn allows(self, a: Access) -> bool {
        match self {
            Role::Admin => true,
            Role::Responder => matches!(a, Access::Read | Access::Respond | Access::Decisions),
            Role::Viewer => matches!(a, Access::Read | Access::Decisions),
            Role::Ingest => a == Access::Ingest,
            Role::Bouncer => a == Access::Decisions,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server secret keys are hashed with. Never printed.
#[derive(Clone)]
pub struct ServerSecret(Vec<u8>);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{SECRET_ENV} is not set: API keys are hashed with it; set it to a random string of at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`) and keep it stable"
    )]
    NoSecret,
    #[error("{SECRET_ENV} is too short: use at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("store: {0}")]
    Store(#[from] secmon_respond::RespondError),
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no API key with prefix or id {0:?}")]
    NotFound(String),
    #[error("key name must be 1–64 printable characters")]
    BadName,
}

impl ServerSecret {
    pub fn from_value(v: &str) -> Result<Self, KeyError> {
        if v.len() < MIN_SECRET_BYTES {
            return Err(KeyError::ShortSecret);
        }
        Ok(ServerSecret(v.as_bytes().to_vec()))
    }

    /// From the environment; `Ok(None)` when unset.
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        match std::env::var(SECRET_ENV) {
            Ok(v) if !v.is_empty() => Self::from_value(&v).map(Some),
            _ => Ok(None),
        }
    }

    pub fn hash(&self, key: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail here.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        mac.update(key);
        mac.finalize().into_bytes().into()
    }
}

/// A key as listed: never the key itself.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KeyInfo {
    pub id: i64,
    pub prefix: String,
    pub role: Role,
    pub name: String,
    pub created: Timestamp,
    pub revoked: Option<Timestamp>,
}

/// A key loaded for verification.
#[derive(Clone, Debug)]
pub struct KeyHash {
    pub id: i64,
    pub prefix: String,
    pub hash: [u8; 32],
    pub role: Role,
    pub name: String,
}

/// Splits `smk_<prefix>_<secret>` into its prefix; `None` if malformed.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("smk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(prefix, PREFIX_LEN) && ok(secret, SECRET_LEN)).then_some(prefix)
}

fn random(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub struct Keys<'s> {
    store: &'s Store,
}

impl<'s> Keys<'s> {
    pub fn open(store: &'s Store) -> Result<Self, KeyError> {
        store.migrate("api_keys", MIGRATIONS)?;
        Ok(Keys { store })
    }

    /// Creates a key; returns it in clear, the only time it exists so.
    pub fn create(
        &self,
        secret: &ServerSecret,
        role: Role,
        name: &str,
        now: Timestamp,
    ) -> Result<(KeyInfo, String), KeyError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(KeyError::BadName);
        }
        loop {
            let prefix = random(PREFIX_LEN);
            let key = format!("smk_{prefix}_{}", random(SECRET_LEN));
            let hash = secret.hash(key.as_bytes());
            let inserted = self.store.conn().execute(
                "INSERT OR IGNORE INTO api_keys (prefix, hash, role, name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![prefix, hash.as_slice(), role.as_str(), name, now.0],
            )?;
            if inserted == 1 {
                let id = self.store.conn().last_insert_rowid();
                let info = KeyInfo {
                    id,
                    prefix,
                    role,
                    name: name.to_string(),
                    created: now,
                    revoked: None,
                };
                return Ok((info, key));
            }
        }
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let mut stmt = self
            .store
            .conn()
            .prepare("SELECT id, prefix, role, name, created, revoked FROM api_keys ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, prefix, role, name, created, revoked) = r?;
            let Some(role) = Role::parse(&role) else {
                continue; // a role this build does not know grants nothing
            };
            out.push(KeyInfo {
                id,
                prefix,
                role,
                name,
                created: Timestamp(created),
                revoked: revoked.map(Timestamp),
            });
        }
        Ok(out)
    }

    /// Keys not revoked, with their hashes, for the verifier.
    pub fn active(&self) -> Result<Vec<KeyHash>, KeyError> {
        let mut stmt = self
            .store
            .conn()
            .prepare("SELECT id, prefix, hash, role, name FROM api_keys WHERE revoked IS NULL")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, prefix, hash, role, name) = r?;
            let (Some(role), Ok(hash)) = (Role::parse(&role), <[u8; 32]>::try_from(hash)) else {
                continue;
            };
            out.push(KeyHash {
                id,
                prefix,
                hash,
                role,
                name,
            });
        }
        Ok(out)
    }

    /// Revokes by prefix or numeric id.
    pub fn revoke(&self, which: &str, now: Timestamp) -> Result<KeyInfo, KeyError> {
        let which = which.strip_prefix("smk_").unwrap_or(which);
        let which = which.split('_').next().unwrap_or(which);
        let id: Option<i64> = self
            .store
            .conn()
            .query_row(
                "SELECT id FROM api_keys WHERE prefix = ?1 OR CAST(id AS TEXT) = ?1",
                [which],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Err(KeyError::NotFound(which.to_string()));
        };
        self.store.conn().execute(
            "UPDATE api_keys SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
            params![id, now.0],
        )?;
        self.list()?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyError::NotFound(which.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let store = Store::open_in_memory().unwrap();
        let keys = Keys::open(&store).unwrap();
        let secret = ServerSecret::from_value("0123456789abcdef0123").unwrap();
        let (info, key) = keys
            .create(&secret, Role::Bouncer, "edge", Timestamp(1))
            .unwrap();
        assert_eq!(prefix_of(&key), Some(info.prefix.as_str()));
        let active = keys.active().unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].hash, secret.hash(key.as_bytes()));
        // The clear key is stored nowhere.
        let dump: Vec<u8> = store
            .conn()
            .query_row("SELECT hash FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert_ne!(dump, key.as_bytes());
        let r = keys.revoke(&info.prefix, Timestamp(2)).unwrap();
        assert_eq!(r.revoked, Some(Timestamp(2)));
        assert!(keys.active().unwrap().is_empty());
        assert!(matches!(
            keys.revoke("nope", Timestamp(3)),
            Err(KeyError::NotFound(_))
        ));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        assert_eq!(prefix_of("smk_abc_def"), None);
        assert_eq!(prefix_of(""), None);
        assert_eq!(
            prefix_of("smk_ABCDEFGH_0123456789abcdef0123456789abcdef"),
            Some("ABCDEFGH")
        );
        assert_eq!(
            prefix_of("smk_ABCDEFG!_0123456789abcdef0123456789abcdef"),
            None
        );
    }

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Access::Admin));
        assert!(Role::Responder.allows(Access::Respond));
        assert!(!Role::Responder.allows(Access::Admin));
        assert!(!Role::Viewer.allows(Access::Respond));
        assert!(!Role::Ingest.allows(Access::Read));
        assert!(Role::Bouncer.allows(Access::Decisions));
        assert!(!Role::Bouncer.allows(Access::Read));
        assert!(!Role::Bouncer.allows(Access::Ingest));
    }

    #[test]
    fn short_secret_refused() {
        assert!(matches!(
            ServerSecret::from_value("short"),
            Err(KeyError::ShortSecret)
        ));
    }
}
