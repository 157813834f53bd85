//! Hand-written matchers for the builtin `sshd` patterns.
//!
//! Each function here decides exactly what its regex in
//! [`builtin`](crate::builtin) decides — whether the message matches, and
//! the span of every capture group — by walking the line with the same
//! priorities the regex engine uses (greedy and lazy repetition, optional
//! groups tried before skipping them, alternatives in order), but with
//! literal comparisons instead of an automaton. A regex capture search costs
//! microseconds on an sshd line; these cost tens of nanoseconds, and sshd
//! auth logs are the highest-volume syslog input secmon reads.
//!
//! Only the shapes the patterns need are here: `\S+`/`\S*` (Unicode
//! White_Space, as the regex crate's `\s`), `.*?` (any char but `\n`),
//! ASCII digit runs and the `IP` alternation of [`builtin`](crate::builtin).
//! A test runs every matcher and its regex side by side over real and
//! generated logs and random token soups and requires identical results.
//!
//! Captures are written into a fixed array indexed by [`NAMES`].

use memchr::{memchr, memchr2};

/// A capture span, `None` when the group did not participate.
pub(crate) type Span = Option<(usize, usize)>;

/// Capture names the matchers fill, by slot.
pub(crate) const NAMES: [&str; 9] = [
    "method",
    "invalid_user",
    "user",
    "ip",
    "port",
    "repeat",
    "rhost",
    "code",
    "reason",
];
const METHOD: usize = 0;
const INVALID: usize = 1;
const USER: usize = 2;
const IP: usize = 3;
const PORT: usize = 4;
const REPEAT: usize = 5;
const RHOST: usize = 6;
const CODE: usize = 7;
const REASON: usize = 8;

pub(crate) type Caps = [Span; 9];

/// A matcher: does the message match, and if so its captures.
pub(crate) type FastFn = fn(&str, &mut Caps) -> bool;

/// A matcher with the bytes a matching message can start with. Every
/// pattern is anchored at the start of the message and begins with a
/// literal, so most lines can be ruled out by their first byte without
/// calling the matcher (an sshd line would otherwise try up to a dozen
/// matchers before its own). The side-by-side tests against the regexes
/// check these sets too: a wrong one would make a line match differently.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fast {
    pub run: FastFn,
    /// Bit `b` set: a matching message can start with ASCII byte `b`.
    first: u128,
}

impl Fast {
    /// Whether a message starting with `b` can match.
    #[inline]
    pub fn admits(&self, b: u8) -> bool {
        b < 128 && (self.first >> b) & 1 == 1
    }
}

const fn fast(run: FastFn, first: &[u8]) -> Fast {
    let mut mask = 0u128;
    let mut i = 0;
    while i < first.len() {
        mask |= 1 << first[i];
        i += 1;
    }
    Fast { run, first: mask }
}

/// The matchers of the builtin `sshd` set, in pattern order.
pub(crate) const SSHD: [Fast; 13] = [
    fast(failed, b"F"),
    fast(repeated, b"m"),
    fast(invalid_user, b"Ii"),
    // `(?:pam_unix\(sshd:auth\): )?authentication failure`
    fast(pam, b"pa"),
    fast(accepted, b"A"),
    // `(?:error: )?maximum authentication`
    fast(max_auth, b"em"),
    fast(too_many, b"D"),
    fast(too_many_user, b"D"),
    fast(reverse, b"r"),
    fast(address, b"A"),
    fast(closed, b"C"),
    // `(?:error: )?Received disconnect`
    fast(disconnect, b"eR"),
    fast(no_ident, b"D"),
];

#[inline]
fn lit(b: &[u8], p: usize, l: &[u8]) -> Option<usize> {
    b.get(p..)?.starts_with(l).then_some(p + l.len())
}

#[inline]
fn digits(b: &[u8], p: usize) -> usize {
    b.get(p..)
        .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
}

#[inline]
fn is_ws_at(s: &str, i: usize) -> Option<(bool, usize)> {
    let c = *s.as_bytes().get(i)?;
    if c < 0x80 {
        Some((matches!(c, b'\t'..=b'\r' | b' '), 1))
    } else {
        let ch = s.get(i..)?.chars().next()?;
        Some((ch.is_whitespace(), ch.len_utf8()))
    }
}

/// End of the longest run of non-whitespace chars from `p` (`\S*`).
#[inline]
fn non_ws_end(s: &str, mut p: usize) -> usize {
    while let Some((ws, n)) = is_ws_at(s, p) {
        if ws {
            break;
        }
        p += n;
    }
    p
}

/// End of the longest run of whitespace chars from `p` (`\s*`).
#[inline]
fn ws_end(s: &str, mut p: usize) -> usize {
    while let Some((ws, n)) = is_ws_at(s, p) {
        if !ws {
            break;
        }
        p += n;
    }
    p
}

/// `.*?` from `p` followed by `l`: calls `k` with each position `q` where
/// `l` starts, in increasing order, while `[p, q)` has no `\n`; stops at
/// the first `k` that returns true.
#[inline]
fn lazy_to(b: &[u8], p: usize, l: &[u8], mut k: impl FnMut(usize) -> bool) -> bool {
    let Some((&first, _)) = l.split_first() else {
        return false;
    };
    let mut q = p;
    while let Some(rest) = b.get(q..) {
        // Candidates start with `first`; a `\n` before one ends the search.
        let Some(i) = memchr2(first, b'\n', rest) else {
            return false;
        };
        let at = q + i;
        if b[at] == b'\n' && first != b'\n' {
            return false;
        }
        if b[at..].starts_with(l) && k(at) {
            return true;
        }
        q = at + 1;
    }
    false
}

/// The builtin `IP` alternation at `p`: calls `k` with each possible end,
/// in the order the regex engine tries them, until `k` returns true.
#[inline]
fn ip(b: &[u8], p: usize, mut k: impl FnMut(usize) -> bool) -> bool {
    // [0-9]{1,3}(?:\.[0-9]{1,3}){3}
    let mut q = p;
    let mut v4 = true;
    for _ in 0..3 {
        let r = digits(b, q);
        if r == 0 || r > 3 || b.get(q + r) != Some(&b'.') {
            v4 = false;
            break;
        }
        q += r + 1;
    }
    if v4 {
        let r = digits(b, q).min(3);
        for n in (1..=r).rev() {
            if k(q + n) {
                return true;
            }
        }
    }
    // [0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*
    let r = b.get(p..).map_or(0, |x| {
        x.iter().take_while(|c| c.is_ascii_hexdigit()).count()
    });
    if r <= 4 && b.get(p + r) == Some(&b':') {
        let s = p + r + 1;
        let m = s + b.get(s..).map_or(0, |x| {
            x.iter()
                .take_while(|&&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
                .count()
        });
        for e in (s..=m).rev() {
            if k(e) {
                return true;
            }
        }
    }
    false
}

/// `(?: port (?P<port>[0-9]+))?` at `e` with nothing required after it.
#[inline]
fn opt_port(b: &[u8], e: usize) -> Span {
    let x = lit(b, e, b" port ")?;
    let d = digits(b, x);
    (d > 0).then_some((x, x + d))
}

/// `(?P<user>.*?) from {IP} port (?P<port>[0-9]+)` from `us`.
#[inline]
fn user_ip_port(b: &[u8], us: usize, c: &mut Caps) -> bool {
    lazy_to(b, us, b" from ", |f| {
        let ip0 = f + 6;
        ip(b, ip0, |e| {
            let Some(x) = lit(b, e, b" port ") else {
                return false;
            };
            let d = digits(b, x);
            if d == 0 {
                return false;
            }
            c[USER] = Some((us, f));
            c[IP] = Some((ip0, e));
            c[PORT] = Some((x, x + d));
            true
        })
    })
}

/// `(?P<invalid_user>invalid user )?(?P<user>.*?) from {IP} port
/// (?P<port>[0-9]+)` from `q`.
#[inline]
fn user_from_ip_port(b: &[u8], q: usize, c: &mut Caps) -> bool {
    if let Some(us) = lit(b, q, b"invalid user ")
        && user_ip_port(b, us, c)
    {
        c[INVALID] = Some((q, us));
        return true;
    }
    c[INVALID] = None;
    user_ip_port(b, q, c)
}

/// `(?P<method>\S+) for {user_from}{IP} port (?P<port>[0-9]+)` from `p`.
#[inline]
fn failed_tail(s: &str, p: usize, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let e = non_ws_end(s, p);
    if e == p {
        return false;
    }
    let Some(q) = lit(b, e, b" for ") else {
        return false;
    };
    c[METHOD] = Some((p, e));
    user_from_ip_port(b, q, c)
}

fn failed(s: &str, c: &mut Caps) -> bool {
    match lit(s.as_bytes(), 0, b"Failed ") {
        Some(p) => failed_tail(s, p, c),
        None => false,
    }
}

fn repeated(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"message repeated ") else {
        return false;
    };
    let d = digits(b, p);
    if d == 0 {
        return false;
    }
    let Some(mut q) = lit(b, p + d, b" times: [") else {
        return false;
    };
    if b.get(q) == Some(&b' ') {
        q += 1;
    }
    let Some(q) = lit(b, q, b"Failed ") else {
        return false;
    };
    c[REPEAT] = Some((p, p + d));
    failed_tail(s, q, c)
}

fn invalid_user(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'I' | b'i')) {
        return false;
    }
    let Some(us) = lit(b, 1, b"nvalid user ") else {
        return false;
    };
    lazy_to(b, us, b" from ", |f| {
        let ip0 = f + 6;
        ip(b, ip0, |e| {
            c[USER] = Some((us, f));
            c[IP] = Some((ip0, e));
            c[PORT] = opt_port(b, e);
            true
        })
    })
}

fn pam(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let p = lit(b, 0, b"pam_unix(sshd:auth): ").unwrap_or(0);
    let Some(q) = lit(b, p, b"authentication failure; ") else {
        return false;
    };
    lazy_to(b, q, b"rhost=", |f| {
        let r0 = f + 6;
        let re = non_ws_end(s, r0);
        if re == r0 {
            return false;
        }
        c[RHOST] = Some((r0, re));
        let w = ws_end(s, re);
        c[USER] = None;
        if w > re
            && let Some(u0) = lit(b, w, b"user=")
        {
            let ue = non_ws_end(s, u0);
            if ue > u0 {
                c[USER] = Some((u0, ue));
            }
        }
        true
    })
}

fn accepted(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"Accepted ") else {
        return false;
    };
    let e = non_ws_end(s, p);
    if e == p {
        return false;
    }
    let Some(q) = lit(b, e, b" for ") else {
        return false;
    };
    c[METHOD] = Some((p, e));
    user_ip_port(b, q, c)
}

fn max_auth(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let p = lit(b, 0, b"error: ").unwrap_or(0);
    match lit(b, p, b"maximum authentication attempts exceeded for ") {
        Some(q) => user_from_ip_port(b, q, c),
        None => false,
    }
}

fn too_many(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"Disconnecting: Too many authentication failures") else {
        return false;
    };
    if let Some(q) = lit(b, p, b" for ") {
        let u0 = match lit(b, q, b"invalid user ") {
            Some(u0) => {
                c[INVALID] = Some((q, u0));
                u0
            }
            None => q,
        };
        c[USER] = Some((u0, non_ws_end(s, u0)));
    }
    true
}

fn too_many_user(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"Disconnecting ") else {
        return false;
    };
    let (iu, q) = if let Some(q) = lit(b, p, b"invalid") {
        (Some((p, q)), q)
    } else if let Some(q) = lit(b, p, b"authenticating") {
        (None, q)
    } else {
        return false;
    };
    let Some(u0) = lit(b, q, b" user ") else {
        return false;
    };
    let ue = non_ws_end(s, u0);
    let Some(ip0) = lit(b, ue, b" ") else {
        return false;
    };
    ip(b, ip0, |e| {
        let Some(x) = lit(b, e, b" port ") else {
            return false;
        };
        let d = digits(b, x);
        if d == 0 || lit(b, x + d, b": Too many authentication failures").is_none() {
            return false;
        }
        c[INVALID] = iu;
        c[USER] = Some((u0, ue));
        c[IP] = Some((ip0, e));
        c[PORT] = Some((x, x + d));
        true
    })
}

fn reverse(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"reverse mapping checking getaddrinfo for ") else {
        return false;
    };
    let re = non_ws_end(s, p);
    if re == p {
        return false;
    }
    let Some(ip0) = lit(b, re, b" [") else {
        return false;
    };
    ip(b, ip0, |e| {
        if lit(b, e, b"] failed").is_none() {
            return false;
        }
        c[RHOST] = Some((p, re));
        c[IP] = Some((ip0, e));
        true
    })
}

fn address(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(ip0) = lit(b, 0, b"Address ") else {
        return false;
    };
    ip(b, ip0, |e| {
        let Some(r0) = lit(b, e, b" maps to ") else {
            return false;
        };
        let m = non_ws_end(s, r0);
        // `\S+` backs off one char at a time; the literal after it starts
        // with ASCII ',', which never sits inside a multi-byte char.
        for re in (r0 + 1..=m).rev() {
            if lit(b, re, b", but this does not map back to the address").is_some() {
                c[IP] = Some((ip0, e));
                c[RHOST] = Some((r0, re));
                return true;
            }
        }
        false
    })
}

fn closed(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(p) = lit(b, 0, b"Connection ") else {
        return false;
    };
    let Some(q) = lit(b, p, b"closed").or_else(|| lit(b, p, b"reset")) else {
        return false;
    };
    let Some(r) = lit(b, q, b" by ") else {
        return false;
    };
    let (iu, q2) = if let Some(q2) = lit(b, r, b"invalid") {
        (Some((r, q2)), Some(q2))
    } else {
        (None, lit(b, r, b"authenticating"))
    };
    if let Some(q2) = q2
        && let Some(u0) = lit(b, q2, b" user ")
    {
        let ue = non_ws_end(s, u0);
        if let Some(ip0) = lit(b, ue, b" ")
            && ip(b, ip0, |e| {
                c[IP] = Some((ip0, e));
                c[PORT] = opt_port(b, e);
                true
            })
        {
            c[INVALID] = iu;
            c[USER] = Some((u0, ue));
            return true;
        }
    }
    c[INVALID] = None;
    c[USER] = None;
    ip(b, r, |e| {
        c[IP] = Some((r, e));
        c[PORT] = opt_port(b, e);
        true
    })
}

fn disconnect(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let p = lit(b, 0, b"error: ").unwrap_or(0);
    let Some(ip0) = lit(b, p, b"Received disconnect from ") else {
        return false;
    };
    // `:\s*(?P<code>[0-9]+): (?P<reason>.*?)(?: \[preauth\])?$` at `p`.
    let rest = |p: usize, c: &mut Caps| -> bool {
        if b.get(p) != Some(&b':') {
            return false;
        }
        let w = ws_end(s, p + 1);
        let d = digits(b, w);
        if d == 0 {
            return false;
        }
        let Some(r) = lit(b, w + d, b": ") else {
            return false;
        };
        const PRE: &[u8] = b" [preauth]";
        let n = b.len();
        let end = if n >= r + PRE.len() && b.ends_with(PRE) {
            n - PRE.len()
        } else {
            n
        };
        if memchr(b'\n', &b[r..end]).is_some() {
            return false;
        }
        c[CODE] = Some((w, w + d));
        c[REASON] = Some((r, end));
        true
    };
    ip(b, ip0, |e| {
        if let Some(x) = lit(b, e, b" port ") {
            let d = digits(b, x);
            if d > 0 && rest(x + d, c) {
                c[IP] = Some((ip0, e));
                c[PORT] = Some((x, x + d));
                return true;
            }
        }
        if rest(e, c) {
            c[IP] = Some((ip0, e));
            c[PORT] = None;
            return true;
        }
        false
    })
}

fn no_ident(s: &str, c: &mut Caps) -> bool {
    let b = s.as_bytes();
    let Some(ip0) = lit(b, 0, b"Did not receive identification string from ") else {
        return false;
    };
    ip(b, ip0, |e| {
        c[IP] = Some((ip0, e));
        c[PORT] = opt_port(b, e);
        true
    })
}

#[cfg(test)]
mod tests {
    use secmon_core::Fields;

    use crate::fields::Aliases;
    use crate::pattern::{Patterns, Scratch, compile};

    /// The builtin set compiled twice: with its fast matchers, and with
    /// regexes only.
    fn both() -> (Patterns, Patterns) {
        let aliases = Aliases::new(&crate::config::default_aliases(), &mut Vec::new());
        let mut errs = Vec::new();
        let specs = crate::builtin::specs("sshd", 0, 0).expect("sshd");
        let fast: Vec<_> = specs
            .iter()
            .map(|s| compile(s, &aliases, &mut errs).expect("compiles"))
            .collect();
        let slow: Vec<_> = specs
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.fast = None;
                compile(&s, &aliases, &mut errs).expect("compiles")
            })
            .collect();
        assert!(errs.is_empty(), "{errs:?}");
        assert!(
            fast.iter().all(|c| c.has_fast()),
            "every sshd pattern is fast"
        );
        (
            Patterns::build(1, fast).expect("build"),
            Patterns::build(2, slow).expect("build"),
        )
    }

    fn run(p: &Patterns, msg: &str, sc: &mut Scratch) -> Option<(usize, Result<Fields, String>)> {
        let pos = p.find(msg, Some("sshd"), sc)?;
        let mut f = Fields::new();
        let r = p
            .apply(pos, msg, sc, &mut f, None)
            .map(|_| f)
            .map_err(|e| e.to_string());
        Some((pos, r))
    }

    fn check(fast: &Patterns, slow: &Patterns, msgs: impl IntoIterator<Item = String>) -> usize {
        let (mut a, mut b) = (Scratch::default(), Scratch::default());
        let mut matched = 0;
        for m in msgs {
            let x = run(fast, &m, &mut a);
            let y = run(slow, &m, &mut b);
            assert_eq!(x, y, "message {m:?}");
            matched += usize::from(x.is_some());
        }
        matched
    }

    fn messages(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| match crate::syslog::parse(l) {
                Ok(h) => h.message.to_string(),
                Err(_) => l.to_string(),
            })
            .collect()
    }

    #[test]
    fn same_as_regex_on_loghub() {
        let (fast, slow) = both();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/loghub/");
        for f in ["OpenSSH_2k.log", "Linux_2k.log"] {
            let text = std::fs::read_to_string(format!("{dir}{f}")).expect("fixture");
            let n = check(&fast, &slow, messages(&text));
            assert!(n > 100, "{f}: {n} matches");
        }
    }

    /// Set `SECMON_SSHD_LOG` to an auth.log (e.g. from `secmon-gen sshd`)
    /// to compare on it too.
    #[test]
    fn same_as_regex_on_external_log() {
        let Ok(path) = std::env::var("SECMON_SSHD_LOG") else {
            return;
        };
        let (fast, slow) = both();
        let text = std::fs::read_to_string(path).expect("log");
        check(&fast, &slow, messages(&text));
    }

    #[test]
    fn same_as_regex_on_token_soup() {
        const HEADS: &[&str] = &[
            "Failed ",
            "message repeated 3 times: [ Failed ",
            "message repeated 12 times: [",
            "Invalid user ",
            "invalid user ",
            "pam_unix(sshd:auth): authentication failure; ",
            "authentication failure; ",
            "Accepted ",
            "error: maximum authentication attempts exceeded for ",
            "maximum authentication attempts exceeded for ",
            "Disconnecting: Too many authentication failures",
            "Disconnecting invalid user ",
            "Disconnecting authenticating user ",
            "reverse mapping checking getaddrinfo for ",
            "Address ",
            "Connection closed by ",
            "Connection reset by ",
            "error: Received disconnect from ",
            "Received disconnect from ",
            "Did not receive identification string from ",
            "",
        ];
        const TOKENS: &[&str] = &[
            "password",
            "publickey",
            " for ",
            "invalid user ",
            "invalid",
            "authenticating",
            " user ",
            "root",
            "a b",
            " from ",
            " from",
            "from ",
            "1.2.3.4",
            "10.0.0.255",
            "1234.5.6.7",
            "1.2.3.4567",
            "::1",
            "::ffff:1.2.3.4",
            "fe80::1:2",
            "abcde:1",
            ":",
            "::",
            ".",
            " port ",
            " port",
            "22",
            "65536",
            "99999999999999999999",
            " ",
            "  ",
            "\t",
            "\n",
            "\u{a0}",
            "é",
            "ü",
            "\u{3000}",
            "[",
            "]",
            " [",
            "] failed",
            " maps to ",
            "host.example",
            ", but this does not map back to the address",
            ",",
            "rhost=",
            "rhost= ",
            " user=",
            "user=",
            "logname= uid=0",
            ": ",
            ":11: ",
            ": 11: ",
            "11",
            "Bye Bye",
            " [preauth]",
            "[preauth]",
            ": Too many authentication failures",
            "ssh2",
            "x",
            "ruser=",
        ];
        const TEMPLATES: &[&str] = &[
            "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2",
            "Failed publickey for root from ::ffff:10.0.0.1 port 5022 ssh2",
            "message repeated 5 times: [ Failed password for root from 5.6.7.8 port 4242 ssh2]",
            "Invalid user test from 9.8.7.6 port 1234",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host.example.com",
            "Accepted password for bob from 10.1.2.3 port 5555 ssh2",
            "error: maximum authentication attempts exceeded for invalid user x from 1.1.1.1 port 2 ssh2 [preauth]",
            "Disconnecting: Too many authentication failures for invalid user admin [preauth]",
            "Disconnecting invalid user admin 1.2.3.4 port 22: Too many authentication failures [preauth]",
            "reverse mapping checking getaddrinfo for host.example [1.2.3.4] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "Address 1.2.3.4 maps to host.example, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
            "Connection closed by authenticating user root 1.2.3.4 port 22 [preauth]",
            "Connection reset by 1.2.3.4 port 22",
            "Received disconnect from 1.2.3.4 port 22:11: Bye Bye [preauth]",
            "error: Received disconnect from ::1: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
            "Did not receive identification string from 1.2.3.4 port 22",
        ];
        let (fast, slow) = both();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut msgs = Vec::new();
        for _ in 0..50_000 {
            let mut m = String::from(HEADS[rnd(HEADS.len())]);
            for _ in 0..rnd(12) {
                m.push_str(TOKENS[rnd(TOKENS.len())]);
            }
            msgs.push(m);
        }
        // Mutated real shapes: splice tokens in, cut pieces out.
        for _ in 0..100_000 {
            let mut m = TEMPLATES[rnd(TEMPLATES.len())].to_string();
            for _ in 0..1 + rnd(3) {
                let cuts: Vec<usize> = (0..=m.len()).filter(|&i| m.is_char_boundary(i)).collect();
                let a = cuts[rnd(cuts.len())];
                let b = cuts[rnd(cuts.len())];
                let (a, b) = (a.min(b), a.max(b));
                let b = if rnd(2) == 0 { a } else { b.min(a + 8) };
                let b = if m.is_char_boundary(b) { b } else { a };
                m.replace_range(
                    a..b,
                    if rnd(4) == 0 {
                        ""
                    } else {
                        TOKENS[rnd(TOKENS.len())]
                    },
                );
            }
            msgs.push(m);
        }
        let n = check(&fast, &slow, msgs);
        assert!(n > 10_000, "{n} matches");
    }
}
