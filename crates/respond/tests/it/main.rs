//! Integration tests of secmon-respond: one binary (link time on two cores
//! matters), one module per component, plus the kill -9 crash test.
// Helpers outside #[test] functions panic on purpose too: a panic is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod common;
mod crash;
mod decisions;
mod incidents;
mod publish;
