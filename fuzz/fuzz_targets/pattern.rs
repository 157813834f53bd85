//! Any line through Format::Auto and Format::Text with the seed 000
//! patterns and the builtin sshd set.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secmon_parse::Format;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::run(common::parser(Format::Auto), data);
    common::run(common::parser(Format::Text), data);
});
