//! Where lines come from: a bounded [`LineReader`] over any byte stream, a
//! rotation-safe [`FileTailer`] (`tail -F` with persisted checkpoints) and a
//! [`stdin_reader`].
//!
//! This crate does blocking file IO but spawns no threads (the binary's
//! topology owns threads; only an optional `notify` watcher runs its own), and
//! never reads the wall clock. It does not parse: lines leave as bytes.

pub mod checkpoint;
pub mod error;
pub mod lines;
pub mod stdin;
pub mod tail;

pub use checkpoint::{Checkpoint, CheckpointStore, fingerprint};
pub use error::SourceError;
pub use lines::{BatchLine, DEFAULT_MAX_LINE, Item, LineBatch, LineReader};
pub use stdin::{stdin_reader, stdin_reader_with};
pub use tail::{FileKey, FileTailer, PollStats, StartAt, TailLine, TailOptions};
