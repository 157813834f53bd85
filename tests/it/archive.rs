//! The archive end to end: `secmon run` archives what it accepts, the API
//! searches it, and `secmon archive` verifies, searches, exports checkpoints,
//! erases a subject and catches tampering.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::api::{Daemon, config, key, login_failed_as};
use super::support::bin;

fn archive_cmd(data: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .arg("archive")
        .arg("-c")
        .arg(data.join("secmon.yaml"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn run_archives_events_then_cli_verifies_searches_erases_and_catches_tampering() {
    let data = tempfile::tempdir().unwrap();
    let ingest = key(data.path(), "ingest");
    let viewer = key(data.path(), "viewer");
    let cfg = config(data.path(), 5, "");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "archive:\n  policy:\n    personal_fields: [fields.email, fields.ip]\n    subject_fields: [fields.email]\n";
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(data, &cfg);
    let mut body: Vec<String> = (0..6)
        .map(|i| login_failed_as("203.0.113.9", "alice@example.com", i))
        .collect();
    body.extend((0..4).map(|i| login_failed_as("198.51.100.4", "bob@example.com", i)));
    assert_eq!(d.ingest(&ingest, &body.join("\n")).0, 200);
    // Searched through the running daemon (which owns the archive).
    let q = "/v1/archive/search?since=1000d&where=event%20%3D%20auth.login_failed%20and%20fields.ip%20%3D%20203.0.113.9";
    let mut hits = Value::Null;
    for _ in 0..50 {
        hits = d.get(q, &viewer);
        if hits["hits"].as_array().is_some_and(|h| h.len() == 6) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(hits["hits"].as_array().unwrap().len(), 6, "{hits}");
    assert_eq!(hits["hits"][0]["category"], "auth");
    assert_eq!(
        hits["hits"][0]["event"]["fields"]["email"],
        "alice@example.com"
    );
    let data = d.stop();
    let dir = data.path();

    // Nothing personal in clear on disk.
    let mut clear = false;
    for e in walk(&dir.join("archive")) {
        let bytes = std::fs::read(&e).unwrap();
        clear |= bytes.windows(17).any(|w| w == b"alice@example.com");
    }
    assert!(!clear, "an email is stored in clear");

    let out = archive_cmd(dir, &["verify", "--no-progress"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("archive OK"));

    let cp = dir.join("checkpoints.export");
    let out = archive_cmd(dir, &["checkpoints", "--export", cp.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = archive_cmd(
        dir,
        &[
            "search",
            "--since",
            "1000d",
            "--where",
            "fields.email = bob@example.com",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);

    // Erasure: alice's fields read as erased, the archive still verifies.
    let out = archive_cmd(dir, &["erase", "--subject", "alice@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = archive_cmd(
        dir,
        &[
            "search",
            "--since",
            "1000d",
            "--where",
            "event = auth.login_failed",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("alice@example.com"), "{text}");
    assert!(text.contains(secmon_archive::ERASED), "{text}");
    assert!(text.contains("bob@example.com"));
    let out = archive_cmd(
        dir,
        &[
            "verify",
            "--no-progress",
            "--checkpoints",
            cp.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A flipped byte in a segment is found and named.
    let seg = walk(&dir.join("archive"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/auth/"))
        .expect("an auth segment");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, bytes).unwrap();
    let out = archive_cmd(dir, &["verify", "--no-progress"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED") && err.contains("auth"), "{err}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
