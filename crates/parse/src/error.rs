//! Errors of the crate: [`ConfigError`] for a configuration that cannot be
//! compiled (reported all at once, each naming the field it is about), and
//! [`ParseError`] for one line that cannot become an event.
//!
//! Parse errors are data, not failures: the caller counts and logs them with
//! the source and line number and goes on with the next line. They quote the
//! offending input only in truncated form, so a hostile megabyte line never
//! ends up whole in a log.

/// One problem in the parse configuration. `field` is the path of the
/// offending setting (`parsers[2].pattern`, `parse.builtin[0]`), so the
/// binary can map it back to the file and line it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why one line did not become an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The line looked like (or was required to be) JSON but is not valid
    /// JSON. `column` is 1-based, in bytes, as serde_json counts it.
    #[error("invalid JSON at column {column}: {message}")]
    InvalidJson { column: usize, message: String },
    /// Valid JSON, but not an object (`[1,2]`, `"text"`, `42`).
    #[error("JSON line is not an object")]
    NotAnObject,
    /// No timestamp where one is required (the JSON field, or the pattern's
    /// timestamp capture for a text line).
    #[error("missing timestamp field {field:?}")]
    MissingTimestamp { field: String },
    /// A timestamp was there but could not be read.
    #[error("cannot parse timestamp field {field:?} value {value:?}: {reason}")]
    BadTimestamp {
        field: String,
        value: String,
        reason: String,
    },
    /// A captured value does not convert to the type the pattern declares.
    #[error("field {field:?}: cannot convert {value:?} to {expected}")]
    BadField {
        field: String,
        value: String,
        expected: &'static str,
    },
    /// A text line (neither JSON nor syslog) that no pattern matched.
    #[error("no parser matched the line")]
    NoMatch,
    /// The source is declared syslog but the line has no valid syslog header.
    #[error("not a syslog line: {reason}")]
    NotSyslog { reason: &'static str },
    /// The line is not UTF-8; `offset` is the byte where decoding fails.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    /// The line is longer than the parser accepts.
    #[error("line of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong { len: usize, max: usize },
    /// The line is empty or only whitespace.
    #[error("empty line")]
    Empty,
}

impl ParseError {
    /// A short, fixed name for the kind of error, for counting errors by
    /// kind without the per-line details.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::InvalidJson { .. } => "invalid JSON",
            ParseError::NotAnObject => "JSON not an object",
            ParseError::MissingTimestamp { .. } => "missing timestamp",
            ParseError::BadTimestamp { .. } => "bad timestamp",
            ParseError::BadField { .. } => "bad field value",
            ParseError::NoMatch => "no parser matched",
            ParseError::NotSyslog { .. } => "not syslog",
            ParseError::InvalidUtf8 { .. } => "invalid UTF-8",
            ParseError::TooLong { .. } => "line too long",
            ParseError::Empty => "empty line",
        }
    }
}
