//! Helpers shared by the integration tests: local service URLs, a manual
//! clock, probe construction from YAML.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use secmon_core::{Event, Timestamp, Value};
use secmon_watch::{Clock, ProbeRunner, Watch, WatchConfig};

/// The URL of a local test service from the environment. Unset: the test
/// skips with a note (a developer without the service). Set: the test runs
/// and fails if the service is unreachable (CI sets it, see .ci/run).
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            eprintln!(
                "note: {var} is not set; skipping this test (set it to run against a real server)"
            );
            None
        }
    }
}

/// A clock the test moves by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
    pub fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || Timestamp(c.load(Ordering::SeqCst)))
    }
}

pub fn watch(yaml: &str) -> Watch {
    let c: WatchConfig = serde_saphyr::from_str(yaml).expect("yaml");
    c.validate().expect("valid config")
}

/// The single probe of `yaml` (a `probes:` list), ready to run.
pub fn runner(yaml: &str) -> ProbeRunner {
    let mut w = watch(yaml);
    assert_eq!(w.probes.len(), 1);
    ProbeRunner::new(w.probes.remove(0)).expect("runner")
}

pub fn field<'a>(e: &'a Event, k: &str) -> &'a Value {
    e.get(k)
        .unwrap_or_else(|| panic!("no {k} in {}", e.to_json()))
}

pub fn int(e: &Event, k: &str) -> i64 {
    field(e, k)
        .as_i64()
        .unwrap_or_else(|| panic!("{k} not an int in {}", e.to_json()))
}

pub fn float(e: &Event, k: &str) -> f64 {
    field(e, k)
        .as_f64()
        .unwrap_or_else(|| panic!("{k} not a number in {}", e.to_json()))
}

pub fn string<'a>(e: &'a Event, k: &str) -> &'a str {
    field(e, k)
        .as_str()
        .unwrap_or_else(|| panic!("{k} not a string in {}", e.to_json()))
}

pub fn boolean(e: &Event, k: &str) -> bool {
    match field(e, k) {
        Value::Bool(b) => *b,
        _ => panic!("{k} not a bool in {}", e.to_json()),
    }
}

/// A local port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}
