//! The only place secmon reads the wall clock. Everything below the binary
//! takes time as a parameter, so tests can drive time by hand.

use secmon_core::Timestamp;

#[allow(clippy::disallowed_methods)]
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
