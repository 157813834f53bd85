//! What the engine says: a rule [`Fire`]d for a group at an event time, or a
//! firing group went quiet and [`Resolve`]d. Plain data for the alerts stage,
//! which dedups, tracks status and decides what to notify; the engine does
//! none of that.

use secmon_core::{Event, FieldPath, Timestamp, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Fire(Fire),
    Resolve(Resolve),
}

impl Verdict {
    pub fn rule(&self) -> usize {
        match self {
            Verdict::Fire(f) => f.rule,
            Verdict::Resolve(r) => r.rule,
        }
    }
    pub fn at(&self) -> secmon_core::Timestamp {
        match self {
            Verdict::Fire(f) => f.at,
            Verdict::Resolve(r) => r.at,
        }
    }
    pub fn group(&self) -> &[(FieldPath, Value)] {
        match self {
            Verdict::Fire(f) => &f.group,
            Verdict::Resolve(r) => &r.group,
        }
    }
    pub fn is_fire(&self) -> bool {
        matches!(self, Verdict::Fire(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// Index into the ruleset.
    pub rule: usize,
    /// The group_by paths with the group's values, as their key spellings
    /// (`Value::to_key`), so fires and resolves of one group compare equal.
    pub group: Vec<(FieldPath, Value)>,
    /// Event time at which the rule fired.
    pub at: Timestamp,
    /// The observed value: count, distinct count, metric value, silence seconds.
    pub value: f64,
    /// The value the rule compares against, when there is one.
    pub threshold: Option<f64>,
    /// The triggering event for event detectors; empty for metric and absence.
    pub evidence: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolve {
    pub rule: usize,
    pub group: Vec<(FieldPath, Value)>,
    pub at: Timestamp,
}
