//! The archive's segment reader: header and record framing, the payload
//! decoder, and recovery + search + verify of an archive whose newest
//! segment is the input (first byte picks the mode; see
//! `secmon_archive::internals::fuzz_one`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmon_archive::internals::fuzz_one(data);
});
