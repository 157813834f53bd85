//! The one error type of this crate. It names what failed (store, validation,
//! a missing row, a publisher) so the binary can map it to a log line or an
//! API status; it deliberately carries no HTTP or exit-code policy itself.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot open store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("migration {component} v{version}: {source}")]
    Migration {
        component: String,
        version: u32,
        source: rusqlite::Error,
    },
    #[error(
        "database schema for {component} is at v{found}, newer than this build knows (v{known}); refusing to run an older secmon on it"
    )]
    SchemaTooNew {
        component: String,
        found: u32,
        known: u32,
    },
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("config: {0}")]
    Config(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("exec {program}: {reason}")]
    Exec { program: String, reason: String },
}

pub type Result<T> = std::result::Result<T, RespondError>;

impl RespondError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        RespondError::Invalid {
            what,
            reason: reason.into(),
        }
    }
    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        RespondError::Corrupt {
            table,
            reason: reason.into(),
        }
    }
}
