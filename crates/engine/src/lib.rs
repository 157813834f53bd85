//! secmon's rule engine: validated rules ([`Ruleset`]), compiled conditions,
//! windows and detectors, run on event time by the [`Engine`].
//!
//! Pure by design: no IO, no threads, no clock. Time comes in with events and
//! through [`Engine::advance_to`], so replaying a file gives the same verdicts
//! as watching it live. Alerting (dedup, status, notification) is downstream.

pub mod condition;
pub mod config;
mod detector;
pub mod engine;
mod groups;
pub mod metric_expr;
pub mod metrics;
mod reorder;
pub mod rule;
pub mod verdict;

pub use condition::{CondError, Condition, ExprError, compile_config, parse_expr};
pub use config::{
    ConditionConfig, DetectorConfig, EngineConfig, MetricConfig, MetricKind, RuleConfig,
};
pub use engine::{Adoption, Carried, Engine, EngineStats, RuleStats};
pub use metric_expr::{MetricExpr, MetricExprError, parse_metric_expr};
pub use metrics::{MetricSample, SKETCH_ALPHA};
pub use rule::{BuildError, Detector, DetectorKind, Item, Metric, Rule, Ruleset};
pub use verdict::{Fire, Resolve, Verdict};
