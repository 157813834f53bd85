//! Crash consistency with real processes: this test binary re-executes
//! itself as a writer (the `child_writer` test, which only runs when
//! `SECMON_ARCHIVE_CRASH_DIR` is set) that appends a seeded workload and
//! prints `ACK n` whenever events up to n are durable. The parent SIGKILLs
//! it at a random moment, reopens the archive (recovering any torn tail) and
//! checks that what is there is a gap-free prefix of the workload holding
//! every acknowledged event, and that `verify` passes.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic as assertions

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use secmon_archive::{Archive, FsStorage, Query};
use secmon_core::{Event, Timestamp};

const DIR_VAR: &str = "SECMON_ARCHIVE_CRASH_DIR";

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return; // only as the child
    };
    let start: u64 = std::env::var("START").unwrap().parse().unwrap();
    let mut rng: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let st = Arc::new(FsStorage::new(dir).unwrap());
    let mut now = T0 + start as i64 * 10;
    let (mut a, _) = Archive::open(st, policy(), keys(), Timestamp(now)).unwrap();
    let mut next = start;
    let mut acked = 0;
    let out = std::io::stdout();
    loop {
        let k = 1 + xorshift(&mut rng) % 3;
        let evs: Vec<Event> = (0..k).map(|i| event(next + i, now)).collect();
        next += k;
        a.append(&evs, Timestamp(now)).unwrap();
        now += 1 + (xorshift(&mut rng) % 20) as i64;
        let d = a.tick(Timestamp(now)).unwrap();
        if d > acked {
            acked = d;
            let mut o = out.lock();
            writeln!(o, "ACK {}", start + d).unwrap();
            o.flush().unwrap();
        }
    }
}

#[allow(clippy::unwrap_used)]
fn recovered(dir: &std::path::Path, now: i64) -> Vec<i64> {
    let st = Arc::new(FsStorage::new(dir).unwrap());
    let (mut a, _) = Archive::open(st.clone(), policy(), keys(), Timestamp(now)).unwrap();
    let q = Query::default();
    let (hits, _) = a
        .search_collect(&q, &|_| true, "crash-test", Timestamp(now))
        .unwrap();
    a.close(Timestamp(now)).unwrap();
    let mut ns: Vec<i64> = hits.iter().map(|h| n_of(&h.event)).collect();
    ns.sort_unstable();
    let r = secmon_archive::verify_archive(&*st, &keys(), None, &mut |_| {}).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    ns
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_event() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut beyond_ack = 0;
    // Twenty-five archives, four lives each: 100 kills. Small archives keep the
    // debug-build recovery and verify of each life fast.
    let rounds = std::env::var("CRASH_ROUNDS").map_or(25, |v| v.parse().unwrap());
    for round in 0..rounds {
        // SIGKILL keeps the page cache, so tmpfs behaves like a disk here and
        // spares the test fsync latency.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let mut prev: Vec<i64> = Vec::new();
        let mut start = 0u64;
        for life in 0..4 {
            let mut child = Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(DIR_VAR, dir.path())
                .env("START", start.to_string())
                .env("SEED", (xorshift(&mut rng) | 1).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Kill at a random moment after the first acknowledgement.
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let mut acked = start;
            for l in lines.by_ref() {
                if let Some(n) = l.unwrap().strip_prefix("ACK ") {
                    acked = n.parse().unwrap();
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(xorshift(&mut rng) % 10_000));
            child.kill().unwrap();
            for l in lines {
                let Ok(l) = l else { break };
                if let Some(n) = l.strip_prefix("ACK ") {
                    acked = acked.max(n.parse().unwrap());
                }
            }
            child.wait().unwrap();
            let ns = recovered(dir.path(), T0 + (round * 4 + life) * 1000);
            let ctx = format!("round {round} life {life} (start {start}, acked {acked})");
            // Earlier lives are untouched; this life added only its own events.
            let (old, new): (Vec<i64>, Vec<i64>) = ns.iter().partition(|n| (**n as u64) < start);
            assert_eq!(old, prev, "{ctx}: earlier events changed");
            // Every acknowledged event is there.
            for n in start..acked {
                assert!(
                    new.binary_search(&(n as i64)).is_ok(),
                    "{ctx}: acknowledged event {n} lost"
                );
            }
            // Each category (events route by n % 4) recovered to a prefix of
            // its own records: a sync interrupted between segment files may
            // leave some categories further ahead than the acknowledgement.
            for c in 0..4 {
                let got: Vec<i64> = new.iter().copied().filter(|n| n % 4 == c).collect();
                let want: Vec<i64> = (start as i64..)
                    .filter(|n| n % 4 == c)
                    .take(got.len())
                    .collect();
                assert_eq!(got, want, "{ctx}: category {c} is not a prefix");
            }
            if new.len() as u64 > acked - start {
                beyond_ack += 1;
            }
            start = ns.last().map_or(start, |m| *m as u64 + 1);
            prev = ns;
        }
    }
    eprintln!(
        "{} kills; {beyond_ack} lives recovered durable but unacknowledged events",
        rounds * 4
    );
}
