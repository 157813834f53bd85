//! The sshd brute-force rule on real logs (loghub's OpenSSH_2k.log) against
//! an independent reference: failed attempts counted with a plain regex in
//! this test, and the "≥ 5 within 10 minutes from one IP" window computed by
//! brute force.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;

/// Failed authentication attempts per IP, counted the fail2ban-jail way
/// with plain regexes: a `Failed … from IP` line counts 1, `message repeated
/// N times: [ Failed …` counts N, and an `Invalid user … from IP`
/// connection (same pid) that ends without a `Failed` line counts 1 at the
/// line that ends it (`Connection closed`, `Received disconnect`,
/// `Disconnecting: Too many …`, `maximum authentication attempts …`), or at
/// the last line of the log if it never ends.
fn reference_attempts(log: &str) -> BTreeMap<String, Vec<(i64, u64)>> {
    let head = regex::Regex::new(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ sshd\[(\d+)\]: (.*)$")
        .expect("regex");
    let failed = regex::Regex::new(
        r"^(?:message repeated (\d+) times: \[ )?Failed \S+ for (?:invalid user )?.*? from (\S+) port \d+",
    )
    .expect("regex");
    let invalid = regex::Regex::new(r"^[Ii]nvalid user .*? from (\S+)").expect("regex");
    let ends = regex::Regex::new(
        r"^(?:error: )?(?:Connection (?:closed|reset) by|Received disconnect from|Disconnecting: Too many authentication failures|maximum authentication attempts exceeded)",
    )
    .expect("regex");
    let mut attempts: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    let mut open: BTreeMap<String, String> = BTreeMap::new(); // pid → ip
    let mut last = 0;
    for line in log.lines() {
        let Some(c) = head.captures(line) else {
            continue;
        };
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|m| *m == &c[1])
        .expect("month") as i64;
        let num = |i: usize| c[i].parse::<i64>().expect("number");
        // Months of 31 days are fine here: only differences within a day matter.
        let t = (((month * 31 + num(2)) * 24 + num(3)) * 60 + num(4)) * 60_000 + num(5) * 1000;
        last = t;
        let (pid, msg) = (c[6].to_string(), &c[7]);
        if let Some(f) = failed.captures(msg) {
            let weight = f.get(1).map_or(1, |m| m.as_str().parse().expect("repeat"));
            attempts
                .entry(f[2].to_string())
                .or_default()
                .push((t, weight));
            open.remove(&pid);
        } else if let Some(i) = invalid.captures(msg) {
            if let Some(ip) = open.insert(pid, i[1].to_string()) {
                attempts.entry(ip).or_default().push((t, 1));
            }
        } else if ends.is_match(msg)
            && let Some(ip) = open.remove(&pid)
        {
            attempts.entry(ip).or_default().push((t, 1));
        }
    }
    for ip in open.into_values() {
        attempts.entry(ip).or_default().push((last, 1));
    }
    attempts
}

fn reference_banned(log: &str, count: u64, window_ms: i64) -> BTreeSet<String> {
    let mut banned = BTreeSet::new();
    for (ip, mut list) in reference_attempts(log) {
        list.sort();
        // Any window [t_i, t_i + T] holding `count` attempts bans the IP.
        for (i, (t0, _)) in list.iter().enumerate() {
            let n: u64 = list[i..]
                .iter()
                .take_while(|(t, _)| t - t0 <= window_ms)
                .map(|(_, w)| w)
                .sum();
            if n >= count {
                banned.insert(ip.clone());
                break;
            }
        }
    }
    banned
}

fn fired(stdout: &[u8], rule: &str) -> BTreeSet<String> {
    alerts(stdout)
        .iter()
        .filter(|a| a["rule"] == rule)
        .map(|a| a["group"]["fields.ip"].as_str().expect("ip").to_string())
        .collect()
}

#[test]
fn sshd_bruteforce_on_openssh_2k_matches_the_reference() {
    let path = fixture("loghub/OpenSSH_2k.log");
    let log = std::fs::read_to_string(&path).expect("fixture");
    let want = reference_banned(&log, 5, 600_000);
    assert!(!want.is_empty(), "the sample contains brute force");
    let out = run_ok(
        bin()
            .args(["replay", "--year", "2025", "-c"])
            .arg(example("sshd.yaml"))
            .arg(&path),
    );
    assert_eq!(fired(&out.stdout, "sshd-bruteforce"), want);
    assert_eq!(
        fired(&out.stdout, "ssh-bf"),
        reference_banned(&log, 10, 300_000)
    );
}

/// A log with every way an attempt is counted: invalid-user probes that
/// never send a password (closed, disconnected, cut off by the end of the
/// log), invalid users who do (counted once), and repeated failures.
fn probe_log() -> String {
    let mut log = Vec::new();
    let mut pid = 1000;
    let mut line = |min: u32, sec: u32, msg: String, pid: u32| {
        log.push(format!(
            "Jan  3 10:{min:02}:{sec:02} host1 sshd[{pid}]: {msg}"
        ));
    };
    // 89.0.0.1: 5 probes 2 min apart, ended by a close → 5 in 8 min: banned (a).
    for k in 0..5 {
        pid += 1;
        line(k * 2, 0, "Invalid user admin from 89.0.0.1".into(), pid);
        line(
            k * 2,
            0,
            "input_userauth_request: invalid user admin [preauth]".into(),
            pid,
        );
        let end = if k % 2 == 0 {
            "Connection closed by 89.0.0.1 [preauth]".to_string()
        } else {
            "Received disconnect from 89.0.0.1: 11: Closed due to user request. [preauth]".into()
        };
        line(k * 2, 1, end, pid);
    }
    // 5.0.0.1: 5 invalid users each with a Failed line → 5, not 10.
    for k in 0..5 {
        pid += 1;
        line(20 + k, 0, format!("Invalid user u{k} from 5.0.0.1"), pid);
        line(
            20 + k,
            3,
            format!("Failed password for invalid user u{k} from 5.0.0.1 port 4000 ssh2"),
            pid,
        );
        line(
            20 + k,
            3,
            "Received disconnect from 5.0.0.1: 11: Bye Bye [preauth]".into(),
            pid,
        );
    }
    // 5.0.0.2: 4 invalid users with Failed lines: 4 attempts, not banned
    // (fail2ban counts 8 here).
    for k in 0..4 {
        pid += 1;
        line(30 + k, 0, format!("Invalid user v{k} from 5.0.0.2"), pid);
        line(
            30 + k,
            2,
            format!("Failed password for invalid user v{k} from 5.0.0.2 port 4000 ssh2"),
            pid,
        );
    }
    // 194.0.0.1: 3 failures + "repeated 1" + a probe still open at the end = 5.
    for k in 0..3 {
        pid += 1;
        line(
            40 + k,
            0,
            "Failed password for root from 194.0.0.1 port 22 ssh2".into(),
            pid,
        );
    }
    line(
        43,
        0,
        "message repeated 1 times: [ Failed password for root from 194.0.0.1 port 22 ssh2]".into(),
        pid,
    );
    line(44, 0, "Invalid user oracle from 194.0.0.1".into(), pid + 1);
    log.join("\n") + "\n"
}

#[test]
fn invalid_user_connections_without_failed_lines_count_once_in_replay_and_run() {
    let log = probe_log();
    let want = reference_banned(&log, 5, 600_000);
    let expected: BTreeSet<String> = ["89.0.0.1", "5.0.0.1", "194.0.0.1"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(want, expected, "the reference itself");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth.log");
    std::fs::write(&path, &log).expect("write log");
    let out = run_ok(
        bin()
            .args(["replay", "--year", "2025", "-c"])
            .arg(example("sshd.yaml"))
            .arg(&path),
    );
    assert_eq!(fired(&out.stdout, "sshd-bruteforce"), want, "replay");

    // `run` on stdin alone: the example's file source left out.
    let example_cfg = std::fs::read_to_string(example("sshd.yaml")).expect("example");
    let source = "sources:\n  - type: file\n    paths: [/var/log/auth.log]\n    format: syslog\n";
    assert!(example_cfg.contains(source));
    let cfg = dir.path().join("sshd.yaml");
    std::fs::write(&cfg, example_cfg.replace(source, "")).expect("write config");
    let lines: Vec<String> = log.lines().map(String::from).collect();
    let dd = dir.path().join("data");
    let out = run_with_stdin(
        &[
            "-c".as_ref(),
            cfg.as_os_str(),
            "--data-dir".as_ref(),
            dd.as_os_str(),
        ],
        &lines,
    );
    assert_eq!(fired(&out.stdout, "sshd-bruteforce"), want, "run");
}
