//! Lines from standard input, through the same bounded [`LineReader`].
//!
//! Whole-stream mode: a last line without a newline is yielded at end of
//! input. Non-goals: no checkpoints (stdin cannot be re-read), no threads.

use std::io::{self, StdinLock};

use crate::lines::{DEFAULT_MAX_LINE, LineReader};

/// A line reader over locked stdin with the default 1 MiB line limit.
pub fn stdin_reader() -> LineReader<StdinLock<'static>> {
    stdin_reader_with(DEFAULT_MAX_LINE)
}

/// A line reader over locked stdin with a custom line limit.
pub fn stdin_reader_with(max_line: usize) -> LineReader<StdinLock<'static>> {
    LineReader::new(io::stdin().lock()).max_line(max_line)
}
