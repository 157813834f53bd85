//! Pure data shared by every stage of secmon: the [`Event`] that flows from the
//! parsers to the engine, its [`Value`]s and [`FieldPath`]s, event [`Timestamp`]s
//! and [`Dur`]ations, alert [`Severity`] and incident [`Priority`], and the
//! [`catalog`] of well-known security events.
//!
//! This crate does no IO and never reads the clock; it only defines shapes and
//! the small, exact operations on them (parsing a duration, formatting a time).

pub mod catalog;
pub mod event;
pub mod level;
pub mod path;
pub mod time;
pub mod value;

pub use event::{Event, Fields, SourceId};
pub use level::{Level, Priority, Severity};
pub use path::FieldPath;
pub use time::{Dur, Timestamp};
pub use value::Value;

/// Short strings (field names, IPs, event names) stay inline without a heap
/// allocation; this is what makes a million events a second affordable.
pub type Str = compact_str::CompactString;
