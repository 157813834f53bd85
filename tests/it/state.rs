//! Detection state across a SIGHUP reload and a restart of `secmon run`:
//! a reload that changes other rules leaves an alert's rule its windows
//! (the alert still resolves after its quiet window, a partly filled window
//! still fires), an alert whose rule changed or went away is settled, and
//! an alert left firing by a stopped process resolves after its window
//! instead of repeating its notification forever.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{Daemon, key};

/// The rules of these tests, with `spray` firing at `spray_count` and the
/// `gone` rule present or not. `brute` (3 failures from one IP within 6 s)
/// is never changed.
fn write_config(dir: &Path, url: &str, spray_count: u32, gone: bool) -> PathBuf {
    let cfg = dir.join("secmon.yaml");
    let gone = if gone {
        "  - {id: gone, severity: low, match: {event: admin.action}, detector: {type: single}}\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            r#"engine: {{lateness: 0s}}
notify:
  receivers:
    - {{name: hook, kind: webhook, url: "{url}/hook"}}
  routes:
    - {{receivers: [hook], group_by: [rule], group_wait: 0s, group_interval: 1s, repeat_interval: 2s}}
rules:
  - id: brute
    severity: high
    priority: P3
    match: {{event: auth.login_failed}}
    group_by: [fields.ip]
    detector: {{type: threshold, count: 3, window: 6s}}
  - id: spray
    severity: medium
    match: {{event: auth.login_failed}}
    group_by: [fields.user]
    detector: {{type: threshold, count: {spray_count}, window: 3s}}
{gone}"#
        ),
    )
    .unwrap();
    cfg
}

/// Posts events stamped a second ahead (with `lateness: 0s`, an event
/// overtaken by an idle tick of the wall clock on its way in would be late).
fn post(d: &Daemon, key: &str, events: &[&str]) {
    let ts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    let body: String = events
        .iter()
        .map(|e| format!("{{\"timestamp\":\"{ts}\",{e}}}\n"))
        .collect();
    let (status, v) = d.ingest(key, &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], events.len(), "{v}");
}

fn failed(ip: &str, user: &str) -> String {
    format!(r#""event":"auth.login_failed","fields":{{"ip":"{ip}","user":"{user}"}}"#)
}

/// The alerts of `rule` whose group has `value`, newest first.
fn alerts(d: &Daemon, key: &str, rule: &str, value: &str) -> Vec<Value> {
    d.get(&format!("/v1/alerts?rule={rule}"), key)
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["group"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kv| kv[1] == value)
                || value.is_empty()
        })
        .cloned()
        .collect()
}

/// Waits up to `within` for the alert of `rule` / `value` to be in
/// `status`, and returns it.
fn wait_status(
    d: &Daemon,
    key: &str,
    rule: &str,
    value: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let list = alerts(d, key, rule, value);
        if let Some(a) = list.first().filter(|a| a["status"] == status) {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} alert of {rule} {value} within {within:?}: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (message status, rule) of every webhook message within `window`.
fn messages(rx: &Receiver<(String, Value)>, window: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok((_, body)) = rx.recv_timeout(left) else {
            break;
        };
        for a in body["alerts"].as_array().into_iter().flatten() {
            out.push((
                a["status"].as_str().unwrap_or("?").to_string(),
                a["rule"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    out
}

#[test]
fn sighup_keeps_unchanged_rules_state_and_settles_changed_and_removed_rules_alerts() {
    let (url, _rx) = crate::notify::server(200);
    let data = tempfile::tempdir().unwrap();
    let admin = key(data.path(), "admin");
    let cfg = write_config(data.path(), &url, 2, true);
    let d = Daemon::start(data, &cfg);

    let a = failed("198.51.100.1", "u");
    post(&d, &admin, &[&a, &a, &a, r#""event":"admin.action""#]);
    wait_status(&d, &admin, "brute", "198.51.100.1", "firing", secs(10));
    wait_status(&d, &admin, "spray", "u", "firing", secs(10));
    wait_status(&d, &admin, "gone", "", "firing", secs(10));
    // Two of brute's three for another address, just before the reload.
    let b = |user| failed("198.51.100.2", user);
    post(&d, &admin, &[&b("v1"), &b("v2")]);

    // The reload changes spray and removes gone; brute is as it was.
    write_config(cfg.parent().unwrap(), &url, 4, false);
    d.signal("-HUP");
    let log = d.wait_log("secmon.reloaded");
    assert_eq!(log["fields"]["kept"], 1, "{log}");
    assert!(
        log["fields"]["fresh"].as_str().unwrap().contains("spray"),
        "{log}"
    );
    assert!(
        log["fields"]["removed"].as_str().unwrap().contains("gone"),
        "{log}"
    );

    // The removed rule's alert resolves at once, saying why.
    let gone = wait_status(&d, &admin, "gone", "", "resolved", secs(5));
    assert_eq!(gone["resolve_reason"], "rule removed by a reload", "{gone}");

    // The partly filled window survived: the third failure fires.
    post(&d, &admin, &[&b("v3")]);
    wait_status(&d, &admin, "brute", "198.51.100.2", "firing", secs(5));

    // brute's first alert resolves as if nothing had happened: after its
    // quiet window, with no reason of its own.
    let first = wait_status(&d, &admin, "brute", "198.51.100.1", "resolved", secs(15));
    assert!(first.get("resolve_reason").is_none(), "{first}");
    let quiet = first["resolved_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        - first["last_seen"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
    assert_eq!(
        quiet.get_seconds(),
        6,
        "resolved a window after its last event: {first}"
    );

    // The changed rule's alert is taken over by its new state and resolves
    // after the (new) rule's quiet window.
    let spray = wait_status(&d, &admin, "spray", "u", "resolved", secs(15));
    assert_eq!(
        spray["resolve_reason"], "rule changed by a reload; no matching event within the window",
        "{spray}"
    );
    d.stop();
}

#[test]
fn an_alert_firing_at_a_restart_resolves_after_its_window_and_stops_repeating() {
    let (url, rx) = crate::notify::server(200);
    let data = tempfile::tempdir().unwrap();
    let admin = key(data.path(), "admin");
    let cfg = write_config(data.path(), &url, 2, true);
    let d = Daemon::start(data, &cfg);
    let a = failed("203.0.113.7", "u");
    post(&d, &admin, &[&a, &a, &a, r#""event":"admin.action""#]);
    let fired = wait_status(&d, &admin, "brute", "203.0.113.7", "firing", secs(10));
    wait_status(&d, &admin, "gone", "", "firing", secs(10));
    let told = messages(&rx, secs(2));
    assert!(
        told.contains(&("firing".into(), "brute".into())),
        "{told:?}"
    );
    let data = d.stop();

    // While stopped, the `gone` rule is removed from the configuration.
    write_config(data.path(), &url, 2, false);
    let started = Instant::now();
    let d = Daemon::start(data, &cfg);
    let gone = wait_status(&d, &admin, "gone", "", "resolved", secs(5));
    assert_eq!(
        gone["resolve_reason"], "rule removed while secmon was stopped",
        "{gone}"
    );
    let resolved = wait_status(&d, &admin, "brute", "203.0.113.7", "resolved", secs(20));
    assert_eq!(resolved["id"], fired["id"], "the same alert, not a new one");
    assert_eq!(
        resolved["resolve_reason"], "state lost at restart; no matching event within the window",
        "{resolved}"
    );
    assert!(
        started.elapsed() >= secs(6),
        "not before a full window after the restart: {:?}",
        started.elapsed()
    );
    // The resolve went the normal way: incident timeline and a resolved
    // message, and then the repeats (every 2 s while firing) stop.
    let incidents = d.get("/v1/incidents?rule=brute", &admin);
    let id = incidents.as_array().unwrap()[0]["id"].as_i64().unwrap();
    let detail = d.get(&format!("/v1/incidents/{id}"), &admin);
    let timeline = detail["timeline"].to_string();
    assert!(
        timeline.contains("resolved (state lost at restart"),
        "{timeline}"
    );
    let got = messages(&rx, secs(2));
    assert!(
        got.contains(&("resolved".into(), "brute".into())),
        "a resolved message for brute: {got:?}"
    );
    let later = messages(&rx, secs(5));
    assert!(
        later.is_empty(),
        "nothing repeats after the resolve: {later:?}"
    );
    d.stop();
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
