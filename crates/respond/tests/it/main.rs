//! Integration tests of secmon-respond: one binary (link time on two cores
//! matters), one module per component, plus the kill -9 crash test.

mod alerts;
mod common;
