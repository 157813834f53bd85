//! `state`: the latest matching event of a group decides. The group fires
//! on the first event satisfying the rule's `when` condition and resolves on
//! the first later event that does not; events that keep the state say
//! nothing new. Health probes use it: `consecutive_failures >= 3` fires
//! "service down" once, and the first successful probe resolves it.
//!
//! State lives as long as the group (the cap bounds it; idle groups are not
//! swept, since a silent firing group is still firing).

#[derive(Debug, Clone, Default)]
pub(crate) struct StateState {
    pub firing: bool,
}
