//! JSON lines through Format::Json and Format::Auto.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secmon_parse::Format;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::run(common::parser(Format::Json), data);
    common::run(common::parser(Format::Auto), data);
});
