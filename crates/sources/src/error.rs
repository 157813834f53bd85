//! The crate's error type. Every variant that comes from the filesystem names
//! the path involved, because "permission denied" alone is useless at 3 am.

use std::path::PathBuf;

/// Errors from sources: IO on a named path, a corrupt checkpoint file, a bad
/// glob pattern, or the file watcher failing to start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is corrupt: {source}")]
    CorruptCheckpoint {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid file pattern {pattern:?}: {source}")]
    Pattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("file watcher for {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

impl SourceError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;
