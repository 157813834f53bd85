//! The crate's error type. Every error that comes from bytes on disk names
//! the file, and where it applies the record sequence number and byte offset,
//! so an operator can find the damage without a debugger. Problems found by
//! `verify` are not errors but data (`verify::Problem`).

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Bytes that do not parse or do not authenticate.
    #[error("{}", at(file, *seq, *offset, what))]
    Corrupt {
        file: String,
        seq: Option<u64>,
        offset: Option<u64>,
        what: String,
    },
    #[error("invalid archive configuration: {0}")]
    Config(String),
    #[error("invalid key: {0}")]
    Key(String),
    #[error("the archive is locked: {0}")]
    Locked(String),
    /// A legal hold forbids the operation.
    #[error("blocked by legal hold {id} ({reason})")]
    Held { id: u64, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn at(file: &str, seq: Option<u64>, offset: Option<u64>, what: &str) -> String {
    let mut s = file.to_string();
    if let Some(q) = seq {
        s.push_str(&format!(" seq {q}"));
    }
    if let Some(o) = offset {
        s.push_str(&format!(" offset {o}"));
    }
    s.push_str(": ");
    s.push_str(what);
    s
}

pub(crate) fn io_err(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::WouldBlock {
            return Error::Locked(source.to_string());
        }
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub(crate) fn corrupt(
    file: &str,
    seq: Option<u64>,
    offset: Option<u64>,
    what: impl Into<String>,
) -> Error {
    Error::Corrupt {
        file: file.to_string(),
        seq,
        offset,
        what: what.into(),
    }
}
