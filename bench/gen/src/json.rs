//! Seed-003-format JSON events (one per line) with attackers and ground truth.

use std::io::{self, Write};

use serde_json::json;

use crate::util::{Out, Rng, days_from_civil, ip_string, keys_reaching, rfc3339_ms, spread_ip};

pub struct JsonParams {
    pub events: u64,
    pub ips: u64,
    /// Every event gets the next of this many distinct IPs / users / emails
    /// (round robin); no attackers.
    pub distinct_keys: Option<u64>,
    /// Distinct users / emails: default 200,000, or the distinct-key count
    /// with `distinct_keys` (then event i uses user i mod this).
    pub users: Option<u64>,
    /// "Live groups" worst case, with `distinct_keys`: every event is an
    /// `auth.login_failed`, evenly spread over this many ms, so every group
    /// is inside its window at once.
    pub span_ms: Option<i64>,
    pub seed: u64,
}

/// First octets of background IPs; attackers use other ones.
const BG_PREFIXES: &[u8] = &[
    23, 45, 61, 77, 91, 103, 112, 118, 121, 150, 173, 183, 202, 211, 218, 222,
];
const ATTACK_PREFIXES: &[u8] = &[185, 5, 194];
const NEAR_MISS_PREFIXES: &[u8] = &[89];
/// Emails / user ids of ordinary users.
const USERS: u64 = 200_000;
/// Email index offset of brute-forced victims.
const VICTIM_BASE: u64 = 10_000_000;
const ATTACKERS: u64 = 40;
const NEAR_MISSES: u64 = 20;

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "okhttp/4.12.0",
    "secmon-agent/0.1",
];

#[derive(Clone, Copy)]
enum Ev {
    LoginFailed,
    LoginSucceeded,
    SessionCreated,
    SessionInvalidated,
    MfaSucceeded,
    MfaFailed,
    VaultUnlockSucceeded,
    VaultUnlockFailed,
    VaultLocked,
    AccessDenied,
    RatelimitWarning,
    ContainerStarted,
    ContainerHibernated,
}

/// Cumulative percentages of the background mix.
const MIX: &[(u64, Ev)] = &[
    (40, Ev::LoginFailed),
    (65, Ev::LoginSucceeded),
    (73, Ev::SessionCreated),
    (78, Ev::SessionInvalidated),
    (82, Ev::MfaSucceeded),
    (83, Ev::MfaFailed),
    (87, Ev::VaultUnlockSucceeded),
    (88, Ev::VaultUnlockFailed),
    (90, Ev::VaultLocked),
    (93, Ev::AccessDenied),
    (95, Ev::RatelimitWarning),
    (98, Ev::ContainerStarted),
    (100, Ev::ContainerHibernated),
];

/// One attacker failure: time, IP, email index, attempt number.
struct Attack {
    t: i64,
    ip: u32,
    email: u64,
    attempt: u64,
}

pub struct JsonTruth {
    pub attacker_ips: Vec<u32>,
    pub near_miss_ips: Vec<u32>,
    pub per_ip_10_in_5m: Vec<u32>,
    pub per_email_5_in_15m: Vec<u64>,
}

pub fn start_ms() -> i64 {
    days_from_civil(2025, 11, 21) * 86_400_000 + 10 * 3_600_000
}

/// Mean background gap is 12 ms: 5,000 events per simulated minute.
const MAX_GAP_MS: u64 = 24;

pub fn generate<W: Write>(p: &JsonParams, out: &mut Out<W>) -> io::Result<JsonTruth> {
    let mut rng = Rng::new(p.seed);
    let t0 = start_ms();
    let span_ms = (p.events as i64) * (MAX_GAP_MS as i64) / 2;
    let ips = p.ips.max(1);
    let users = p.users.unwrap_or(USERS).max(1);
    let live_span = p.span_ms.filter(|_| p.distinct_keys.is_some());

    let mut attacks = Vec::new();
    let mut attacker_ips = Vec::new();
    let mut near_miss_ips = Vec::new();
    if p.distinct_keys.is_none() {
        for a in 0..ATTACKERS {
            let ip = spread_ip(ATTACK_PREFIXES, a);
            attacker_ips.push(ip);
            // Half hammer one victim account, half spray many accounts.
            let victim = VICTIM_BASE + a;
            let bursts = rng.range(1, 3);
            for _ in 0..bursts {
                let mut t = t0 + rng.below(span_ms.max(1) as u64) as i64;
                let n = rng.range(10, 40);
                for k in 0..n {
                    let email = if a % 2 == 0 { victim } else { rng.below(users) };
                    attacks.push(Attack {
                        t,
                        ip,
                        email,
                        attempt: k + 1,
                    });
                    t += rng.range(1_000, 20_000) as i64;
                }
            }
        }
        // 9 failures within 5 minutes, once: never 10.
        for a in 0..NEAR_MISSES {
            let ip = spread_ip(NEAR_MISS_PREFIXES, a);
            near_miss_ips.push(ip);
            let mut t = t0 + rng.below(span_ms.max(1) as u64) as i64;
            for k in 0..9 {
                attacks.push(Attack {
                    t,
                    ip,
                    email: rng.below(users),
                    attempt: k + 1,
                });
                t += rng.range(10_000, 30_000) as i64;
            }
        }
        attacks.sort_by_key(|a| a.t);
        attacks.truncate((p.events / 10) as usize);
    }

    let background = p.events - attacks.len() as u64;
    let mut ip_fail: Vec<(u32, i64)> = Vec::new();
    let mut email_fail: Vec<(u32, i64)> = Vec::new();
    let mut next_attack = 0;
    let mut t = t0;
    for i in 0..background {
        if let Some(s) = live_span {
            t = t0 + (i128::from(i) * i128::from(s) / i128::from(background.max(1))) as i64;
        } else {
            t += rng.below(MAX_GAP_MS + 1) as i64;
        }
        while next_attack < attacks.len() && attacks[next_attack].t <= t {
            let a = &attacks[next_attack];
            write_failed(out, &mut rng, a.t, a.ip, a.email, a.attempt)?;
            ip_fail.push((a.ip, a.t));
            email_fail.push((a.email as u32, a.t));
            next_attack += 1;
        }
        let (ip, user) = match p.distinct_keys {
            Some(k) => {
                let key = i % k.max(1);
                (
                    spread_ip(BG_PREFIXES, key),
                    p.users.map_or(key, |u| i % u.max(1)),
                )
            }
            None => (spread_ip(BG_PREFIXES, rng.below(ips)), rng.below(users)),
        };
        let roll = if live_span.is_some() {
            0
        } else {
            rng.below(100)
        };
        let ev = MIX
            .iter()
            .find(|(c, _)| roll < *c)
            .map_or(Ev::LoginFailed, |(_, e)| *e);
        if let Ev::LoginFailed = ev {
            let attempt = rng.range(1, 3);
            write_failed(out, &mut rng, t, ip, user, attempt)?;
            ip_fail.push((ip, t));
            email_fail.push((user as u32, t));
        } else {
            write_other(out, &mut rng, ev, t, ip, user)?;
        }
    }
    for a in &attacks[next_attack..] {
        write_failed(out, &mut rng, a.t, a.ip, a.email, a.attempt)?;
        ip_fail.push((a.ip, a.t));
        email_fail.push((a.email as u32, a.t));
    }

    Ok(JsonTruth {
        attacker_ips,
        near_miss_ips,
        per_ip_10_in_5m: keys_reaching(ip_fail, 10, 300_000),
        per_email_5_in_15m: keys_reaching(email_fail, 5, 900_000)
            .into_iter()
            .map(u64::from)
            .collect(),
    })
}

fn head<W: Write>(out: &mut Out<W>, t: i64, level: &str, event: &str) {
    out.s("{\"timestamp\":\"");
    out.bytes(&rfc3339_ms(t));
    out.s("\",\"level\":\"");
    out.s(level);
    out.s("\",\"event\":\"");
    out.s(event);
    out.s("\",\"service\":\"management-server\",\"fields\":{");
}

fn tail<W: Write>(out: &mut Out<W>, rng: &mut Rng) -> io::Result<()> {
    out.s("},\"trace_id\":\"");
    out.hex(rng.next_u64(), 16);
    out.s("\"}");
    out.nl()
}

fn email<W: Write>(out: &mut Out<W>, e: u64) {
    out.s("\"email\":\"");
    if e >= VICTIM_BASE {
        out.s("victim");
        out.u(e - VICTIM_BASE);
    } else {
        out.s("u");
        out.u(e);
    }
    out.s("@example.com\"");
}

fn user_id<W: Write>(out: &mut Out<W>, u: u64) {
    out.s("\"user_id\":\"usr_");
    out.u(u);
    out.s("\"");
}

fn ip_field<W: Write>(out: &mut Out<W>, name: &str, ip: u32) {
    out.s(",\"");
    out.s(name);
    out.s("\":\"");
    out.ip(ip);
    out.s("\"");
}

fn str_field<W: Write>(out: &mut Out<W>, name: &str, v: &str) {
    out.s(",\"");
    out.s(name);
    out.s("\":\"");
    out.s(v);
    out.s("\"");
}

fn num_field<W: Write>(out: &mut Out<W>, name: &str, v: u64) {
    out.s(",\"");
    out.s(name);
    out.s("\":");
    out.u(v);
}

fn write_failed<W: Write>(
    out: &mut Out<W>,
    rng: &mut Rng,
    t: i64,
    ip: u32,
    e: u64,
    attempt: u64,
) -> io::Result<()> {
    head(out, t, "WARN", "auth.login_failed");
    email(out, e);
    ip_field(out, "ip", ip);
    let reason = *rng.pick(&[
        "invalid_password",
        "invalid_password",
        "invalid_password",
        "user_not_found",
    ]);
    str_field(out, "reason", reason);
    num_field(out, "attempt", attempt);
    tail(out, rng)
}

fn write_other<W: Write>(
    out: &mut Out<W>,
    rng: &mut Rng,
    ev: Ev,
    t: i64,
    ip: u32,
    u: u64,
) -> io::Result<()> {
    match ev {
        Ev::LoginFailed => return write_failed(out, rng, t, ip, u, 1),
        Ev::LoginSucceeded => {
            head(out, t, "INFO", "auth.login_succeeded");
            user_id(out, u);
            ip_field(out, "ip", ip);
            let ua = *rng.pick(USER_AGENTS);
            str_field(out, "user_agent", ua);
        }
        Ev::SessionCreated => {
            head(out, t, "INFO", "auth.session_created");
            user_id(out, u);
            out.s(",\"session_id_prefix\":\"");
            out.hex(rng.next_u64(), 8);
            out.s("\"");
            ip_field(out, "ip", ip);
        }
        Ev::SessionInvalidated => {
            head(out, t, "INFO", "auth.session_invalidated");
            user_id(out, u);
            let r = *rng.pick(&["logout", "timeout", "revoked"]);
            str_field(out, "reason", r);
        }
        Ev::MfaSucceeded => {
            head(out, t, "INFO", "auth.mfa_succeeded");
            user_id(out, u);
            let m = *rng.pick(&["totp", "totp", "backup_code"]);
            str_field(out, "method", m);
        }
        Ev::MfaFailed => {
            head(out, t, "WARN", "auth.mfa_failed");
            user_id(out, u);
            str_field(out, "method", "totp");
            str_field(out, "reason", "invalid_code");
        }
        Ev::VaultUnlockSucceeded => {
            head(out, t, "INFO", "vault.unlock_succeeded");
            user_id(out, u);
            let m = *rng.pick(&["password", "biometric"]);
            str_field(out, "method", m);
        }
        Ev::VaultUnlockFailed => {
            head(out, t, "WARN", "vault.unlock_failed");
            user_id(out, u);
            str_field(out, "method", "password");
            num_field(out, "attempt_count", rng.range(1, 3));
        }
        Ev::VaultLocked => {
            head(out, t, "INFO", "vault.locked");
            user_id(out, u);
            num_field(out, "idle_duration", rng.range(300, 3600));
        }
        Ev::AccessDenied => {
            head(out, t, "WARN", "authz.access_denied");
            user_id(out, u);
            out.s(",\"resource\":\"/api/containers/ctr_");
            out.hex(rng.next_u64(), 8);
            out.s("\"");
            let a = *rng.pick(&["read", "write", "delete"]);
            str_field(out, "action", a);
            str_field(out, "reason", "not_owner");
        }
        Ev::RatelimitWarning => {
            head(out, t, "INFO", "ratelimit.warning");
            out.s("\"identifier\":\"");
            out.ip(ip);
            out.s("\"");
            str_field(out, "endpoint", "/api/auth/login");
            num_field(out, "count", rng.range(80, 99));
            num_field(out, "limit", 100);
        }
        Ev::ContainerStarted | Ev::ContainerHibernated => {
            let started = matches!(ev, Ev::ContainerStarted);
            head(
                out,
                t,
                "INFO",
                if started {
                    "container.started"
                } else {
                    "container.hibernated"
                },
            );
            user_id(out, u);
            out.s(",\"container_id\":\"ctr_");
            out.hex(u.wrapping_mul(0x9E37_79B9_7F4A_7C15), 12);
            out.s("\"");
            if started {
                let w = *rng.pick(&["request", "schedule", "webhook"]);
                str_field(out, "wake_reason", w);
            } else {
                let m = *rng.pick(&["pause", "stop"]);
                str_field(out, "mode", m);
            }
        }
    }
    tail(out, rng)
}

pub fn truth_json(p: &JsonParams, t: &JsonTruth) -> serde_json::Value {
    let ips = |v: &[u32]| v.iter().map(|&ip| ip_string(ip)).collect::<Vec<_>>();
    let emails: Vec<String> = t
        .per_email_5_in_15m
        .iter()
        .map(|&e| {
            if e >= VICTIM_BASE {
                format!("victim{}@example.com", e - VICTIM_BASE)
            } else {
                format!("u{e}@example.com")
            }
        })
        .collect();
    json!({
        "generator": "secmon-gen json",
        "seed": p.seed,
        "events": p.events,
        "ips": p.ips,
        "distinct_keys": p.distinct_keys,
        "users": p.users,
        "span_ms": p.span_ms,
        "start": String::from_utf8_lossy(&rfc3339_ms(start_ms())),
        "attacker_ips": ips(&t.attacker_ips),
        "near_miss_ips": ips(&t.near_miss_ips),
        "alerts": {
            "failed-logins-per-ip": {
                "description": "auth.login_failed >= 10 within 5 min (inclusive) per fields.ip",
                "count": 10, "window_s": 300,
                "keys": ips(&t.per_ip_10_in_5m),
            },
            "failed-logins-per-user": {
                "description": "auth.login_failed >= 5 within 15 min (inclusive) per fields.email",
                "count": 5, "window_s": 900,
                "keys": emails,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate_all(p: &JsonParams) -> (Vec<u8>, JsonTruth) {
        let mut out = Out::new(Vec::new());
        let t = generate(p, &mut out).expect("generate");
        (out.finish().expect("finish"), t)
    }

    #[test]
    fn same_seed_same_bytes_and_valid_json() {
        let p = JsonParams {
            events: 50_000,
            ips: 100_000,
            distinct_keys: None,
            users: None,
            span_ms: None,
            seed: 3,
        };
        let (a, ta) = generate_all(&p);
        let (b, _) = generate_all(&p);
        assert_eq!(a, b);
        let (c, _) = generate_all(&JsonParams { seed: 4, ..p });
        assert_ne!(a, c);
        let text = String::from_utf8(a).expect("utf8");
        let mut prev = String::new();
        let mut n = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect(line);
            let ts = v["timestamp"].as_str().expect("timestamp").to_string();
            assert!(prev <= ts);
            prev = ts;
            assert_eq!(v["service"], "management-server");
            if v["event"] == "auth.login_failed" {
                for f in ["email", "ip", "reason", "attempt"] {
                    assert!(v["fields"].get(f).is_some(), "{line}");
                }
            }
            n += 1;
        }
        assert_eq!(n, 50_000);
        // Every attacker whose bursts fit in the run is found by the truth.
        assert!(!ta.per_ip_10_in_5m.is_empty());
        assert!(
            ta.per_ip_10_in_5m
                .iter()
                .all(|ip| ta.attacker_ips.contains(ip))
        );
        assert!(
            ta.near_miss_ips
                .iter()
                .all(|ip| !ta.per_ip_10_in_5m.contains(ip))
        );
    }

    #[test]
    fn distinct_keys_mode_uses_fresh_ips() {
        let p = JsonParams {
            events: 10_000,
            ips: 0,
            distinct_keys: Some(10_000),
            users: None,
            span_ms: None,
            seed: 1,
        };
        let (a, t) = generate_all(&p);
        let text = String::from_utf8(a).expect("utf8");
        let ips: std::collections::HashSet<String> = text
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v["fields"]["ip"].as_str().map(str::to_string)
            })
            .collect();
        let with_ip = text.lines().filter(|l| l.contains("\"ip\":")).count();
        assert_eq!(ips.len(), with_ip);
        assert!(t.per_ip_10_in_5m.is_empty());
    }

    #[test]
    fn live_span_packs_failures_into_the_span() {
        let p = JsonParams {
            events: 10_000,
            ips: 0,
            distinct_keys: Some(1_000),
            users: Some(10),
            span_ms: Some(240_000),
            seed: 1,
        };
        let (a, t) = generate_all(&p);
        let text = String::from_utf8(a).expect("utf8");
        let mut emails = std::collections::HashSet::new();
        let mut n = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect(line);
            assert_eq!(v["event"], "auth.login_failed");
            let ts = v["timestamp"].as_str().expect("timestamp");
            assert!(("2025-11-21T10:00:00.000Z"..="2025-11-21T10:04:00.000Z").contains(&ts));
            emails.insert(v["fields"]["email"].as_str().expect("email").to_string());
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert_eq!(emails.len(), 10);
        // Each IP fails 10 times within 4 minutes: all 1,000 reach 10 in 5m.
        assert_eq!(t.per_ip_10_in_5m.len(), 1_000);
        assert_eq!(t.per_email_5_in_15m.len(), 10);
        assert_eq!(generate_all(&p).0, text.into_bytes());
    }
}
