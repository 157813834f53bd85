//! The secmon binary's library half: configuration loading, the pipeline
//! that drives parsers and the engine, and the CLI verbs. `main.rs` is a thin
//! shell over it; benches and tests call it in-process.

pub mod api;
pub mod archive;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod deliver;
pub mod output;
pub mod pipeline;
pub mod respond;
pub mod summary;
pub mod telemetry;
