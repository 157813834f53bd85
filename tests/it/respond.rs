//! The response stage end to end: the dry-run plan of a replay, incidents
//! and decisions made by `secmon run` and handled with the CLI.

use crate::support::*;

fn plan(stdout: &[u8]) -> Vec<serde_json::Value> {
    alerts(stdout)
}

#[test]
fn dry_run_plans_decisions_incidents_and_expiry() {
    let out = run_ok(
        bin()
            .args(["replay", "--respond", "dry-run"])
            .arg(fixture("seeds/app-events.jsonl")),
    );
    let items = plan(&out.stdout);
    let decision = |action: &str, value: &str| {
        items
            .iter()
            .find(|i| {
                i["kind"] == "decision"
                    && i["change"] == "created"
                    && i["decision"]["action"] == action
                    && i["decision"]["value"] == value
            })
            .cloned()
    };
    // Seed 003: 10 failed logins from one IP → block the IP for 1 hour.
    let block = decision("block_ip", "203.0.113.50").expect("IP blocked");
    assert_eq!(block["decision"]["created"], "2025-11-21T09:12:15.000Z");
    assert_eq!(block["decision"]["expires"], "2025-11-21T10:12:15.000Z");
    assert!(
        decision("lock_account", "alice@example.com").is_some(),
        "account locked"
    );
    assert!(decision("lock_vault", "u-1001").is_some(), "vault locked");
    assert!(decision("lock_admin", "admin").is_some(), "admin locked");
    // Every alert with a priority opens an incident with the seed deadline.
    let admin = items
        .iter()
        .find(|i| {
            i["kind"] == "incident"
                && i["change"] == "opened"
                && i["incident"]["rule"] == "admin-auth-failures"
        })
        .expect("P1 incident");
    assert_eq!(admin["incident"]["priority"], "P1");
    assert_eq!(
        admin["incident"]["ack_deadline"], "2025-11-21T10:02:00.000Z",
        "P1: 15 minutes after 09:47"
    );
    // Decisions expire on (event) time, and nothing acknowledges a replay's incidents.
    assert!(
        items
            .iter()
            .any(|i| i["kind"] == "decision" && i["change"] == "expired")
    );
    assert!(items.iter().any(|i| i["kind"] == "escalation"));
}

#[test]
fn manual_decisions_are_validated_listed_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dd = dir.path().to_str().expect("utf8");
    let out = run_ok(bin().args([
        "decisions",
        "--data-dir",
        dd,
        "add",
        "--scope",
        "ip",
        "--value",
        "198.51.100.7",
        "--duration",
        "2h",
    ]));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(d["value"], "198.51.100.7");
    // Log injection or a shell payload never becomes a decision.
    let bad = bin()
        .args([
            "decisions",
            "--data-dir",
            dd,
            "add",
            "--scope",
            "ip",
            "--value",
            "1.2.3.4; rm -rf /",
        ])
        .output()
        .expect("spawn");
    assert_eq!(bad.status.code(), Some(1));
    let list = run_ok(bin().args(["decisions", "--data-dir", dd, "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_i64().expect("id").to_string();
    run_ok(bin().args(["decisions", "--data-dir", dd, "delete", &id]));
    let list = run_ok(bin().args(["decisions", "--data-dir", dd, "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    assert!(list.is_empty());
}

#[test]
fn run_opens_incidents_that_responders_ack_and_resolve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dd = dir.path().to_str().expect("utf8");
    let lines: Vec<String> = (0..3)
        .map(|k| {
            format!(
                r#"{{"timestamp":"2025-11-21T10:0{k}:00.000Z","event":"admin.auth_failed","fields":{{"user_id":"admin","ip":"192.0.2.10"}}}}"#
            )
        })
        .collect();
    let out = run_with_stdin(&["--data-dir".as_ref(), dd.as_ref()], &lines);
    assert_eq!(alerts(&out.stdout).len(), 1, "one alert printed");

    let list = run_ok(bin().args(["incidents", "--data-dir", dd, "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["priority"], "P1");
    assert_eq!(list[0]["state"], "triggered");
    let id = list[0]["id"].as_i64().expect("id").to_string();
    run_ok(bin().args([
        "incidents",
        "--data-dir",
        dd,
        "ack",
        &id,
        "--author",
        "alice",
    ]));
    run_ok(bin().args([
        "incidents",
        "--data-dir",
        dd,
        "note",
        &id,
        "blocked at the firewall",
        "--author",
        "alice",
    ]));
    let show = run_ok(bin().args(["incidents", "--data-dir", dd, "show", &id]));
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(detail["incident"]["state"], "acknowledged");
    assert_eq!(
        detail["checklist"].as_array().map(Vec::len),
        Some(7),
        "P1 response steps"
    );
    assert!(
        detail["evidence"].as_array().is_some_and(|e| !e.is_empty()),
        "evidence kept"
    );
    let timeline = detail["timeline"].to_string();
    assert!(
        timeline.contains("blocked at the firewall") && timeline.contains("lock_admin"),
        "{timeline}"
    );
    run_ok(bin().args(["incidents", "--data-dir", dd, "resolve", &id]));
    // The admin lock is a decision in force.
    let list = run_ok(bin().args(["decisions", "--data-dir", dd, "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    assert!(
        list.iter()
            .any(|d| d["scope"] == "admin" && d["value"] == "admin"),
        "{list:?}"
    );
}
