//! `secmon run` live over files: rename rotation, copytruncate, and restart
//! resume (including a rotation while stopped) lose no line and read none
//! twice. Each line carries a number `n` in a `single` rule's group, so the
//! alerts say exactly which lines were processed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::support::*;

struct Running {
    child: Child,
    lines: Receiver<serde_json::Value>,
}

fn start(cfg: &Path) -> Running {
    let mut child = bin()
        .args(["run", "--no-api", "-c"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn secmon run");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    Running { child, lines: rx }
}

impl Running {
    /// Collects the line numbers alerted until `want` distinct ones are seen
    /// (or a timeout), then keeps listening briefly to catch duplicates.
    fn collect(&self, want: usize) -> Vec<u64> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < want && Instant::now() < deadline {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                seen.push(line_no(&v));
            }
        }
        let grace = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < grace {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                seen.push(line_no(&v));
            }
        }
        seen
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let code = self.child.wait().expect("wait");
        assert!(
            code.success(),
            "secmon run exits 0 on SIGTERM, got {code:?}"
        );
    }
}

/// The `n` of the line an alert was raised for (group values are keys, so strings).
fn line_no(alert: &serde_json::Value) -> u64 {
    let n = &alert["group"]["fields.n"];
    n.as_u64()
        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("alert without fields.n: {alert}"))
}

fn append(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    for n in range {
        let ts = jiff::Timestamp::now();
        writeln!(
            f,
            r#"{{"timestamp":"{ts}","event":"line","fields":{{"n":{n}}}}}"#
        )
        .expect("write");
    }
    f.sync_all().expect("sync");
}

fn seq(r: std::ops::Range<u64>) -> Vec<u64> {
    r.collect()
}

#[test]
fn follows_rotation_and_truncation_and_resumes_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let cfg = dir.path().join("secmon.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}\nengine: {{lateness: 0s}}\nsources:\n  - {{type: file, paths: ['{}'], format: json}}\nrules:\n  - id: each-line\n    severity: low\n    match: {{event: line}}\n    group_by: [fields.n]\n    detector: {{type: single}}\n",
            dir.path().join("data").display(),
            log.display()
        ),
    )
    .expect("write config");

    append(&log, 0..10);
    let run = start(&cfg);
    assert_eq!(run.collect(10), seq(0..10), "initial lines");

    // Rename rotation: the old file is finished, the new one read from 0.
    std::fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    append(&log, 10..15);
    assert_eq!(run.collect(5), seq(10..15), "after rename rotation");

    // copytruncate: the file shrinks under us; restart from its start.
    std::fs::copy(&log, dir.path().join("app.log.2")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .expect("truncate");
    std::thread::sleep(Duration::from_millis(800));
    append(&log, 15..20);
    assert_eq!(run.collect(5), seq(15..20), "after copytruncate");
    run.stop();

    // Lines written while stopped are read after restart, and only those.
    append(&log, 20..25);
    let run = start(&cfg);
    assert_eq!(run.collect(5), seq(20..25), "resume after restart");
    run.stop();

    // Rotation while stopped: the rest of the old file, then the new one.
    append(&log, 25..28);
    std::fs::rename(&log, dir.path().join("app.log.3")).expect("rename");
    append(&log, 28..31);
    let run = start(&cfg);
    assert_eq!(run.collect(6), seq(25..31), "resume across a rotation");
    run.stop();
}
