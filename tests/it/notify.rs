//! Notifications end to end: `secmon run` detects a brute force, blocks the
//! IP, and a Slack message in seed 003's attachment layout reaches a real
//! HTTP server on loopback; `notify test` and the outbox CLI work on the same
//! configuration.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use crate::support::*;

/// A minimal HTTP/1.1 server: answers `status` to every request and hands
/// each (path, body) to the test.
fn server(status: u16) -> (String, Receiver<(String, serde_json::Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let _ = tx.send((
                path,
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            ));
            let _ = write!(
                conn,
                "HTTP/1.1 {status} OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    (format!("http://{addr}"), rx)
}

fn config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let cfg = dir.join("secmon.yaml");
    std::fs::write(
        &cfg,
        format!(
            r##"
data_dir: {data}
engine: {{lateness: 0s}}
notify:
  receivers:
    - {{name: security-slack, kind: slack, url: "{url}/services/T0/B0/x", channel: "#security-alerts"}}
  routes:
    - {{match: {{actions: [notify_security]}}, receivers: [security-slack], group_wait: 0s}}
  footer: "OCMT Security | Production"
rules:
  - id: failed-logins-per-ip
    name: Multiple Failed Logins
    severity: high
    priority: P2
    match: {{event: auth.login_failed}}
    group_by: [fields.ip]
    detector: {{type: threshold, count: 10, window: 5m}}
    actions: [block_ip, notify_security]
"##,
            data = dir.join("data").display()
        ),
    )
    .expect("write config");
    cfg
}

#[test]
fn a_brute_force_reaches_slack_in_the_seed_layout() {
    let (url, requests) = server(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &url);
    let lines: Vec<String> = (0..10)
        .map(|k| {
            format!(
                r#"{{"timestamp":"2024-01-15T10:30:{k:02}.000Z","level":"WARN","event":"auth.login_failed","service":"management-server","fields":{{"email":"user@example.com","ip":"192.168.1.100","reason":"invalid_password","attempt":{k}}},"trace_id":"abc123"}}"#
            )
        })
        .collect();
    run_with_stdin(&["-c".as_ref(), cfg.as_os_str()], &lines);
    let (path, body) = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("Slack webhook called");
    assert_eq!(path, "/services/T0/B0/x");
    assert_eq!(body["channel"], "#security-alerts");
    let att = &body["attachments"][0];
    assert_eq!(att["color"], "danger");
    assert_eq!(att["title"], "Security Alert: Multiple Failed Logins");
    assert_eq!(att["footer"], "OCMT Security | Production");
    let field = |title: &str| {
        att["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["title"] == title))
            .map(|x| x["value"].clone())
            .unwrap_or_else(|| panic!("no field {title:?} in {att}"))
    };
    assert_eq!(field("IP Address"), "192.168.1.100");
    assert_eq!(field("Attempts"), "10");
    assert_eq!(field("Time Window"), "5 minutes");
    assert_eq!(field("Action Taken"), "IP blocked for 1 hour");

    // The incident's timeline records the notification next to the decision.
    let data = dir.path().join("data");
    let dd = data.to_str().expect("utf8");
    let list = run_ok(bin().args(["incidents", "-c"]).arg(&cfg).args([
        "--data-dir",
        dd,
        "list",
        "--json",
    ]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    let id = list[0]["id"].as_i64().expect("incident").to_string();
    let show =
        run_ok(
            bin()
                .args(["incidents", "-c"])
                .arg(&cfg)
                .args(["--data-dir", dd, "show", &id]),
        );
    let timeline = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        timeline.contains("notification to security-slack"),
        "{timeline}"
    );
    assert!(timeline.contains("block_ip ip 192.168.1.100"), "{timeline}");

    // Delivered once: nothing pending, nothing dead.
    for flag in [&[][..], &["--failed"][..]] {
        let list = run_ok(
            bin()
                .args(["notifications", "-c"])
                .arg(&cfg)
                .args(["--data-dir", dd, "list", "--json"])
                .args(flag),
        );
        let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
        assert!(list.is_empty(), "{flag:?}: {list:?}");
    }
}

#[test]
fn notify_test_sends_to_the_named_receiver() {
    let (url, requests) = server(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &url);
    let out = run_ok(
        bin()
            .args(["notify", "-c"])
            .arg(&cfg)
            .args(["test", "security-slack"]),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"));
    let (path, _) = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("test message");
    assert_eq!(path, "/services/T0/B0/x");
    let bad = bin()
        .args(["notify", "-c"])
        .arg(&cfg)
        .args(["test", "nobody"])
        .output()
        .expect("spawn");
    assert!(!bad.status.success());
}

#[test]
fn a_silenced_alert_is_recorded_but_not_notified() {
    let (url, requests) = server(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &url);
    let data = dir.path().join("data");
    let dd = data.to_str().expect("utf8");
    let out = run_ok(bin().args(["silences", "-c"]).arg(&cfg).args([
        "--data-dir",
        dd,
        "add",
        "--match",
        "fields.ip=~192\\.168\\..*",
        "--match",
        "rule=failed-logins-per-ip",
        "--duration",
        "1h",
        "--comment",
        "pen test",
    ]));
    let silence: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(silence["comment"], "pen test");

    let lines: Vec<String> = (0..10)
        .map(|k| {
            format!(
                r#"{{"timestamp":"2024-01-15T10:30:{k:02}.000Z","event":"auth.login_failed","fields":{{"email":"u@example.com","ip":"192.168.1.100","reason":"x"}}}}"#
            )
        })
        .collect();
    let out = run_with_stdin(&["-c".as_ref(), cfg.as_os_str()], &lines);
    assert_eq!(alerts(&out.stdout).len(), 1, "the alert itself still fires");
    assert!(
        requests.recv_timeout(Duration::from_secs(2)).is_err(),
        "silenced: no Slack message"
    );
    // The decision is still made: silences mute people, not defences.
    let list = run_ok(bin().args(["decisions", "--data-dir", dd, "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("json");
    assert!(
        list.iter().any(|d| d["value"] == "192.168.1.100"),
        "{list:?}"
    );
    let expired = run_ok(bin().args(["silences", "--data-dir", dd, "expire", "1"]));
    assert!(String::from_utf8_lossy(&expired.stdout).contains("pen test"));
}
