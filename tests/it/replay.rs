//! `secmon replay` on the seed fixtures: the exact alerts, bad input
//! reported with line numbers, catalog violations listed.

use crate::support::*;

fn key(a: &serde_json::Value) -> String {
    serde_json::to_string(&serde_json::json!([a["fired_at"], a["rule"], a["group"]]))
        .unwrap_or_default()
}

#[test]
fn seed_fixtures_give_exactly_the_expected_alerts() {
    let out = run_ok(
        bin()
            .args(["replay", "--summary"])
            .arg(fixture("seeds/app-events.jsonl"))
            .arg(fixture("seeds/application.log")),
    );
    let mut got = alerts(&out.stdout);
    let expected_text =
        std::fs::read_to_string(fixture("seeds/expected-alerts.jsonl")).expect("expected alerts");
    let mut want = alerts(expected_text.as_bytes());
    got.sort_by_key(key);
    want.sort_by_key(key);
    let got_s: Vec<String> = got.iter().map(|a| a.to_string()).collect();
    let want_s: Vec<String> = want.iter().map(|a| a.to_string()).collect();
    assert_eq!(got_s, want_s, "stderr:\n{}", stderr(&out));
}

#[test]
fn bad_lines_are_reported_with_file_and_line_and_do_not_stop_the_stream() {
    let out = run_ok(
        bin()
            .args(["replay", "--summary"])
            .arg(fixture("seeds/app-events.jsonl")),
    );
    let err = stderr(&out);
    assert!(
        err.contains("app-events.jsonl:101:"),
        "invalid JSON at line 101 reported:\n{err}"
    );
    assert!(
        err.contains("app-events.jsonl:201:"),
        "bad timestamp at line 201 reported:\n{err}"
    );
    assert!(
        err.contains("app-events.jsonl:301:"),
        "unmatched line 301 reported:\n{err}"
    );
    assert!(err.contains("3 parse errors"), "{err}");
    // Alerts after the bad lines still fire.
    assert!(
        alerts(&out.stdout)
            .iter()
            .any(|a| a["rule"] == "access-denied")
    );
}

#[test]
fn catalog_violations_are_listed_and_the_event_still_processed() {
    let out = run_ok(
        bin()
            .args(["replay", "--summary"])
            .arg(fixture("seeds/app-events.jsonl")),
    );
    let err = stderr(&out);
    assert!(
        err.contains("auth.login_failed: missing fields.reason: 1"),
        "{err}"
    );
}

#[test]
fn reads_stdin_and_accepts_huge_lines() {
    use std::io::Write;
    let mut child = bin()
        .args(["replay", "--summary", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let big = vec![b'x'; 3 << 20];
        stdin
            .write_all(&big)
            .and_then(|_| stdin.write_all(b"\n"))
            .expect("write big line");
        for k in 0..3 {
            writeln!(
                stdin,
                r#"{{"timestamp":"2024-01-15T10:0{k}:00.000Z","event":"admin.auth_failed","fields":{{"user_id":"a","ip":"1.2.3.4"}}}}"#
            )
            .expect("write");
        }
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = alerts(&out.stdout);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "admin-auth-failures");
    assert_eq!(got[0]["fired_at"], "2024-01-15T10:02:00.000Z");
    assert!(
        stderr(&out).contains("-:1:"),
        "the long line is reported at line 1:\n{}",
        stderr(&out)
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = bin()
        .args(["replay", "/nonexistent/secmon.log"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("/nonexistent/secmon.log"),
        "{}",
        stderr(&out)
    );
}
