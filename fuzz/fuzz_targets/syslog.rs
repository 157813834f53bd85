//! Syslog lines (RFC 3164 and 5424) through Format::Syslog.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secmon_parse::Format;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::run(common::parser(Format::Syslog), data);
});
