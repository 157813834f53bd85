//! The sshd brute-force rule on real logs (loghub's OpenSSH_2k.log) against
//! an independent reference: failed attempts counted with a plain regex in
//! this test, and the "≥ 5 within 10 minutes from one IP" window computed by
//! brute force.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;

fn reference_banned(log: &str, count: u64, window_ms: i64) -> BTreeSet<String> {
    let failed = regex::Regex::new(
        r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ sshd\[\d+\]: (?:message repeated (\d+) times: \[ )?Failed \S+ for (?:invalid user )?.*? from (\S+) port \d+",
    )
    .expect("regex");
    let mut attempts: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for line in log.lines() {
        if let Some(c) = failed.captures(line) {
            let month = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ]
            .iter()
            .position(|m| *m == &c[1])
            .expect("month") as i64;
            let num = |i: usize| c[i].parse::<i64>().expect("number");
            // Months of 31 days are fine here: only differences within a day matter.
            let t = (((month * 31 + num(2)) * 24 + num(3)) * 60 + num(4)) * 60_000 + num(5) * 1000;
            let weight = c.get(6).map_or(1, |m| m.as_str().parse().expect("repeat"));
            attempts
                .entry(c[7].to_string())
                .or_default()
                .push((t, weight));
        }
    }
    let mut banned = BTreeSet::new();
    for (ip, list) in attempts {
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
    let got: BTreeSet<String> = alerts(&out.stdout)
        .iter()
        .filter(|a| a["rule"] == "sshd-bruteforce")
        .map(|a| a["group"]["fields.ip"].as_str().expect("ip").to_string())
        .collect();
    assert_eq!(got, want);
}
