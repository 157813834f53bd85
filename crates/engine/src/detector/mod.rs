//! Per-group detector state machines. Each is a small struct updated with an
//! event time (already in event-time order, already matched and grouped) and
//! answering "fire now?". They hold no keys, emit no verdicts and know
//! nothing of the watermark: the engine owns ordering, grouping, deadlines
//! and output.

pub(crate) mod absence;
pub(crate) mod distinct;
pub(crate) mod metric;
pub(crate) mod state;
pub(crate) mod threshold;

/// "No resolve pending" marker for `resolve_at` fields (keeps state at 8 bytes
/// instead of an `Option<i64>`'s 16).
pub(crate) const NONE: i64 = i64::MIN;
