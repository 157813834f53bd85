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

/// `secmon run` taking events over its HTTP API (acknowledged once
/// committed, so nothing is read twice after a restart, unlike a tailed file
/// whose checkpoint may lag), with a webhook receiver whose route batches
/// for `group_wait` / `group_interval`, and two rules: a threshold (3 failed
/// logins from one IP) and a state rule (`fields.down = true`) that
/// resolves when the service reports back.
struct Daemon {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    child: Option<std::process::Child>,
    api: String,
    client: reqwest::blocking::Client,
}

impl Daemon {
    fn new(url: &str, group_wait: &str, group_interval: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("secmon.yaml");
        std::fs::write(
            &cfg,
            format!(
                r#"
data_dir: {data}
engine: {{lateness: 0s}}
notify:
  receivers:
    - {{name: hook, kind: webhook, url: "{url}/hook"}}
  routes:
    - {{receivers: [hook], group_by: [rule], group_wait: {group_wait}, group_interval: {group_interval}}}
rules:
  - id: failed-logins-per-ip
    severity: high
    match: {{event: auth.login_failed}}
    group_by: [fields.ip]
    detector: {{type: threshold, count: 3, window: 5m}}
  - id: service-down
    severity: high
    match: {{event: probe.result}}
    group_by: [fields.probe]
    detector: {{type: state, when: 'fields.down = true'}}
"#,
                data = dir.path().join("data").display(),
            ),
        )
        .expect("write config");
        Daemon {
            dir,
            cfg,
            child: None,
            api: String::new(),
            client: reqwest::blocking::Client::new(),
        }
    }

    /// Starts `secmon run` on an ephemeral loopback port (no API key
    /// exists, so none is needed) and waits for the API to listen. Its log
    /// goes to `secmon.log` in the test's directory (shown on failures).
    fn start(&mut self) {
        let log = self.dir.path().join("secmon.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let skip = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
        let child = bin()
            .args([
                "run",
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "info",
                "-c",
            ])
            .arg(&self.cfg)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn secmon run");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        self.api = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let url = text.get(skip..).unwrap_or("").lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["event"] == "secmon.api_listening")
                    .then(|| v["fields"]["url"].as_str().map(str::to_string))?
            });
            if let Some(url) = url {
                break url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "secmon did not report the API address:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("secmon.log")).unwrap_or_default()
    }

    /// Posts events; the answer comes once they are committed. They are
    /// stamped a second ahead: while input is idle the daemon moves event
    /// time with the wall clock every second, and with `lateness: 0s` an
    /// event overtaken by such a tick on its way in would count as late.
    fn post(&self, events: &[&str]) {
        let ts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
        let body: String = events
            .iter()
            .map(|e| format!("{{\"timestamp\":\"{ts}\",{e}}}\n"))
            .collect();
        let resp = self
            .client
            .post(format!("{}/v1/events", self.api))
            .body(body)
            .send()
            .expect("POST /v1/events");
        assert!(resp.status().is_success(), "{:?}", resp.status());
        let v: serde_json::Value = resp.json().expect("json");
        assert_eq!(v["accepted"], events.len(), "{v}");
    }

    /// Waits until the store has committed an alert of `rule` in `status`
    /// (the response stage writes the alert, and what its batch owes, in
    /// one transaction).
    fn wait_for_alert(&self, rule: &str, status: &str) {
        let db = self.dir.path().join("data/secmon.db");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let n = rusqlite::Connection::open(&db)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM alerts WHERE rule = ?1 AND status = ?2",
                        [rule, status],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or(0);
            if n > 0 {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let rows: Vec<String> = rusqlite::Connection::open(&db)
                    .and_then(|c| {
                        c.prepare("SELECT rule, status FROM alerts")?
                            .query_map([], |r| {
                                Ok(format!(
                                    "{}={}",
                                    r.get::<_, String>(0)?,
                                    r.get::<_, String>(1)?
                                ))
                            })?
                            .collect()
                    })
                    .unwrap_or_default();
                panic!(
                    "no {status} alert of {rule} committed: {rows:?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert!(!status.success(), "killed, not exited: {status:?}");
    }

    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        assert!(child.wait().expect("wait").success(), "clean stop");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// (status, [rule of each alert and its status]) of every message the
/// webhook receives within `window`.
fn messages(
    rx: &std::sync::mpsc::Receiver<(String, serde_json::Value)>,
    window: std::time::Duration,
) -> Vec<(String, Vec<(String, String)>)> {
    let deadline = std::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok((path, body)) = rx.recv_timeout(left) else {
            break;
        };
        assert_eq!(path, "/hook");
        let alerts = body["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|a| {
                        (
                            a["rule"].as_str().unwrap_or("?").to_string(),
                            a["status"].as_str().unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((body["status"].as_str().unwrap_or("?").to_string(), alerts));
    }
    out
}

/// The issue's promise, "notifications are never lost": an alert fires, the
/// process is killed with SIGKILL while its batch waits for `group_wait`,
/// and after a restart the receiver gets exactly one firing message (when
/// the batch was due, not sooner), and no second one later.
#[test]
fn a_kill_during_group_wait_loses_no_notification() {
    let (url, rx) = crate::notify::server(200);
    let mut d = Daemon::new(&url, "4s", "5m");
    d.start();
    d.post(&[r#""event":"auth.login_failed","fields":{"ip":"203.0.113.9"}"#; 3]);
    d.wait_for_alert("failed-logins-per-ip", "firing");
    d.kill9();
    assert!(
        rx.try_recv().is_err(),
        "nothing was sent before group_wait ended"
    );

    d.start();
    let got = messages(&rx, std::time::Duration::from_secs(8));
    assert_eq!(
        got,
        [(
            "firing".to_string(),
            vec![("failed-logins-per-ip".to_string(), "firing".to_string())]
        )],
        "exactly one firing message after the restart"
    );
    // A clean stop flushes nothing more: the alert was told.
    d.stop();
    assert!(messages(&rx, std::time::Duration::from_millis(500)).is_empty());
    // Nor does another start (it knows the alert was told).
    d.start();
    assert!(messages(&rx, std::time::Duration::from_secs(2)).is_empty());
    d.stop();
}

/// The resolved case: the firing message went out, the alert resolves, and
/// the process is killed while the resolved message waits for
/// `group_interval`. After the restart the receiver gets that resolved
/// message once, and never the firing one again.
#[test]
fn a_kill_before_a_batched_resolve_loses_no_notification() {
    let (url, rx) = crate::notify::server(200);
    let mut d = Daemon::new(&url, "1s", "6s");
    d.start();
    d.post(&[r#""event":"probe.result","fields":{"probe":"db","down":true}"#]);
    let got = messages(&rx, std::time::Duration::from_secs(5));
    assert_eq!(
        got,
        [(
            "firing".to_string(),
            vec![("service-down".to_string(), "firing".to_string())]
        )]
    );
    d.post(&[r#""event":"probe.result","fields":{"probe":"db","down":false}"#]);
    d.wait_for_alert("service-down", "resolved");
    d.kill9();
    assert!(
        rx.try_recv().is_err(),
        "the resolve waits for group_interval"
    );

    d.start();
    let got = messages(&rx, std::time::Duration::from_secs(10));
    assert_eq!(
        got,
        [(
            "resolved".to_string(),
            vec![("service-down".to_string(), "resolved".to_string())]
        )],
        "exactly the resolved message after the restart"
    );
    d.stop();
}
