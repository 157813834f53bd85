//! secmon's response layer: it turns the engine's verdicts into persisted
//! [`alerts`] (deduplicated, silenceable), automated [`decisions`] (block an
//! IP, lock an account, published to Redis or an exec hook) and
//! [`incidents`] (P1–P4, acknowledgement deadlines, escalation), all in one
//! SQLite [`store`] so a restart or `kill -9` loses nothing acknowledged.
//!
//! Deliberately not here: the engine (the binary converts its `Fire` and
//! `Resolve` into [`alerts::FireInput`]), notification delivery (secmon-notify),
//! the wall clock (every method takes `now`), threads and async runtimes.

pub mod alerts;
pub mod config;
pub mod decisions;
pub mod error;
pub mod incidents;
pub mod publish;
pub mod store;

pub use alerts::{
    Alert, AlertBook, AlertChange, AlertEvent, AlertFilter, AlertStatus, FireInput, Matcher,
    NewSilence, Silence,
};
pub use config::{
    ActionConfig, AllowlistConfig, DecisionAction, EscalationChain, ExecConfig, IncidentConfig,
    PublishConfig, RedisPublishConfig, RespondConfig, Scope,
};
pub use decisions::{
    Decision, DecisionChange, DecisionOutcome, DecisionState, Decisions, Refusal, validate_value,
};
pub use error::{RespondError, Result};
pub use incidents::{
    ChecklistItem, Escalation, Incident, IncidentChange, IncidentDetail, IncidentFilter,
    IncidentState, Incidents, TimelineEntry, TimelineKind,
};
pub use publish::{DecisionPublisher, ExecPublisher, RedisPublisher};
pub use store::Store;
