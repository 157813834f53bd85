//! secmon-notify: tells people about alerts.
//!
//! * [`model`]: the [`AlertView`] a notification is about and the [`Message`]
//!   sent to one receiver.
//! * [`config`]: receivers, routes, rate limits, outbox and digest settings.
//! * [`render`]: one pure renderer per receiver producing the exact wire
//!   format ([`render::HttpRequest`] or an email).
//! * [`route`]: ordered routes, group_wait / group_interval / repeat_interval
//!   batching and a per-receiver token bucket ([`route::Batcher`]).
//! * [`outbox`]: the durable SQLite outbox (enqueue before send, leases,
//!   backoff, dead letters), and what batches still owe, so that a
//!   `kill -9` during `group_wait` loses nothing.
//! * [`dispatch`]: the [`dispatch::Dispatcher`] that delivers outbox items
//!   (callable from several threads) and classifies the outcome.
//! * [`digest`]: daily digests and weekly summaries.
//!
//! Nothing here reads the wall clock: every time is a `now: Timestamp`
//! parameter; sleeping and threads belong to the caller.

pub mod config;
pub mod digest;
pub mod dispatch;
pub mod model;
pub mod outbox;
pub mod render;
pub mod route;
pub mod secret;
pub mod template;

pub use config::NotifyConfig;

pub use dispatch::{DeliveryResult, Dispatcher, Outcome};
pub use model::{AlertStatus, AlertView, Message, MessageKind};
pub use outbox::{Outbox, OutboxItem, OutboxStatus, RetryTarget, Settlement};
pub use route::{BatchChange, Batcher, OwedAlert, Restored, Router};

pub use secret::{Secret, SecretString};

/// Errors of this crate. None of them ever contains a secret value: secret
/// errors name the environment variable or file, HTTP errors have their URL
/// stripped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("notify config: {0}")]
    Config(String),
    #[error("secret: {0}")]
    Secret(String),
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("render: {0}")]
    Render(String),
    #[error("outbox store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown receiver {0:?}")]
    UnknownReceiver(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
