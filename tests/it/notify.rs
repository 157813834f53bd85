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
pub(crate) fn server(status: u16) -> (String, Receiver<(String, serde_json::Value)>) {
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

/// A plain SMTP server that refuses every login with a 535 echoing what it
/// was sent (the base64 credentials and the password they decode to), as
/// some servers do. Each AUTH line it got goes to the test.
fn rejecting_smtp() -> (u16, Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let _ = conn.write_all(b"220 test ESMTP\r\n");
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let answer = if cmd.starts_with("EHLO") {
                        "250-test\r\n250 AUTH PLAIN LOGIN\r\n".to_string()
                    } else if let Some(b64) = cmd.strip_prefix("AUTH PLAIN ") {
                        let _ = tx.send(cmd.clone());
                        let decoded = decode_b64(b64);
                        let password = decoded.rsplit('\0').next().unwrap_or_default();
                        format!("535 5.7.8 credentials {b64} ({password}) rejected\r\n")
                    } else if cmd == "QUIT" {
                        let _ = conn.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        "502 5.5.2 no\r\n".to_string()
                    };
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

/// Standard base64 (the test's own, so that it checks the wire form
/// independently of the code under test).
fn decode_b64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().take_while(|&c| c != b'=') {
        let Some(v) = ABC.iter().position(|&a| a == c) else {
            break;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SMTP password reaches the server and nothing else: not `notify
/// test`'s error, not `run`'s logs, not the dead letter `notifications
/// list --failed` shows — even when the server echoes it back.
#[test]
fn the_smtp_password_never_appears_in_logs_or_errors() {
    const PASSWORD: &str = "Tr0ub4dor&3-smtp";
    let (port, auths) = rejecting_smtp();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("secmon.yaml");
    std::fs::write(
        &cfg,
        format!(
            r##"
data_dir: {data}
engine: {{lateness: 0s}}
notify:
  receivers:
    - {{name: mail, kind: email, host: 127.0.0.1, port: {port}, security: none,
       username: secmon, password: {{env: SECMON_TEST_SMTP_PASSWORD}},
       from: "secmon@example.com", to: [security@example.com]}}
  routes:
    - {{receivers: [mail], group_wait: 0s}}
rules:
  - id: failed-logins-per-ip
    severity: high
    match: {{event: auth.login_failed}}
    group_by: [fields.ip]
    detector: {{type: threshold, count: 3, window: 5m}}
"##,
            data = dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let leaks = |what: &str, text: &str| {
        let plain_b64 = "AHNlY21vbgBUcjB1YjRkb3ImMy1zbXRw"; // "\0secmon\0" + password
        assert!(
            !text.contains(PASSWORD),
            "{what} shows the password:\n{text}"
        );
        assert!(
            !text.contains(plain_b64),
            "{what} shows AUTH PLAIN:\n{text}"
        );
    };

    let out = bin()
        .args(["notify", "-c"])
        .arg(&cfg)
        .args(["test", "mail"])
        .env("SECMON_TEST_SMTP_PASSWORD", PASSWORD)
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("535"), "{err}");
    leaks("notify test", &err);
    leaks(
        "notify test (stdout)",
        &String::from_utf8_lossy(&out.stdout),
    );
    let auth = auths
        .recv_timeout(Duration::from_secs(5))
        .expect("AUTH sent");
    assert_eq!(
        decode_b64(auth.trim_start_matches("AUTH PLAIN ")),
        format!("\0secmon\0{PASSWORD}")
    );

    let mut child = bin()
        .args(["run", "--no-api", "--stdin", "-c"])
        .arg(&cfg)
        .env("SECMON_TEST_SMTP_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn secmon run");
    {
        // Closed at once: the stdin source hands its lines over at the end
        // of input, and `run` then delivers what is due before it stops.
        let mut stdin = child.stdin.take().expect("stdin");
        for k in 0..3 {
            writeln!(
                stdin,
                r#"{{"timestamp":"2024-01-15T10:30:0{k}.000Z","event":"auth.login_failed","fields":{{"ip":"192.0.2.7"}}}}"#
            )
            .expect("write");
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    auths
        .recv_timeout(Duration::from_secs(5))
        .expect("run sent the alert by email");
    let logs = stderr(&out);
    assert!(logs.contains("535"), "the failure is logged:\n{logs}");
    leaks("run's logs", &logs);
    leaks("run's stdout", &String::from_utf8_lossy(&out.stdout));

    let data = dir.path().join("data");
    let dead = run_ok(bin().args(["notifications", "-c"]).arg(&cfg).args([
        "--data-dir",
        data.to_str().expect("utf8"),
        "list",
        "--failed",
        "--json",
    ]));
    let text = String::from_utf8_lossy(&dead.stdout).into_owned();
    assert!(text.contains("535"), "dead letter with its reason: {text}");
    leaks("notifications list --failed", &text);
}
