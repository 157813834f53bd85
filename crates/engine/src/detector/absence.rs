//! `absence`: a group (or the whole stream, for a rule without group_by)
//! that goes `window` without a matching event fires once at
//! `last + window`; its next matching event resolves it.
//!
//! The group's last event time is the group table's `last_seen`; this state
//! only remembers whether the current silence already fired. Deadlines are
//! scheduled and checked by the engine.

#[derive(Debug, Clone, Default)]
pub(crate) struct AbsenceState {
    pub fired: bool,
}
