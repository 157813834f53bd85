//! kill -9 in the middle of a write stream loses nothing acknowledged.
//!
//! The test binary re-runs itself (`current_exe`) with `CRASH_WRITER_DB` set,
//! selecting [`writer_mode`], which writes alerts and decisions and prints an
//! `ACK` line after each committed write. The parent SIGKILLs it after a
//! varying number of acknowledgements, reopens the store and checks that
//! every acknowledged write is there and the database is intact.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use secmon_core::{Dur, Timestamp};
use secmon_respond::{AlertBook, DecisionOutcome, Decisions, Scope, Store};

use crate::common::{at, fire};

const ENV: &str = "CRASH_WRITER_DB";

/// Writer mode; a no-op in a normal test run.
#[test]
fn writer_mode() {
    let Ok(path) = std::env::var(ENV) else { return };
    let store = Store::open(std::path::Path::new(&path)).unwrap();
    let mut book = AlertBook::new(&store);
    let mut ds = Decisions::open(&store, &Default::default()).unwrap();
    let start: u32 = std::env::var("CRASH_WRITER_START")
        .unwrap()
        .parse()
        .unwrap();
    for i in start..start + 100_000 {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let t = Timestamp(at(0).0 + i64::from(i));
        let a = book
            .fire(&fire("crash", &[("fields.ip", &ip)], t), t)
            .unwrap();
        println!("ACK alert {}", a.alert().id);
        match ds
            .add_manual(&Scope::Ip, &ip, Dur::from_mins(60), "crash", "t", t)
            .unwrap()
        {
            DecisionOutcome::Created(d) => println!("ACK decision {} {}", d.id, d.value),
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash/secmon.db");
    let exe = std::env::current_exe().unwrap();
    let mut alerts = HashSet::new();
    let mut decisions = HashSet::new();
    let mut next_start = 0u32;
    for round in 0..6u32 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::writer_mode",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, &db)
            .env("CRASH_WRITER_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a varying number of acknowledgements (including 0: while opening).
        let kill_after = [0usize, 3, 17, 40, 81, 150][round as usize];
        let mut seen = 0;
        while seen < kill_after {
            let Some(line) = lines.next() else { break };
            let line = line.unwrap();
            if record(&line, &mut alerts, &mut decisions) {
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Lines acknowledged before the kill are still in the pipe: they count.
        for line in lines {
            let Ok(line) = line else { break };
            record(&line, &mut alerts, &mut decisions);
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: writer ended on its own");
        next_start += 10_000;

        let store = Store::open(&db).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
        let book = AlertBook::new(&store);
        for id in &alerts {
            assert!(
                book.get(*id).unwrap().is_some(),
                "round {round}: alert {id} lost"
            );
        }
        let ds = Decisions::open(&store, &Default::default()).unwrap();
        for (id, value) in &decisions {
            let d = ds
                .get(&Scope::Ip, value, at(0))
                .unwrap_or_else(|| panic!("round {round}: decision {id} lost"));
            assert_eq!(d.id, *id);
        }
    }
    // Every round but the first waited for its acknowledgements.
    assert!(
        alerts.len() + decisions.len() >= 291,
        "only {} + {} acknowledged writes",
        alerts.len(),
        decisions.len()
    );
}

fn record(line: &str, alerts: &mut HashSet<i64>, decisions: &mut HashSet<(i64, String)>) -> bool {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["ACK", "alert", id] => {
            alerts.insert(id.parse().unwrap());
            true
        }
        ["ACK", "decision", id, value] => {
            decisions.insert((id.parse().unwrap(), value.to_string()));
            true
        }
        _ => false,
    }
}
