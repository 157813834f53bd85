//! OpenSSH auth.log lines (RFC 3164, the shapes of loghub's OpenSSH_2k.log)
//! from a discrete-event simulation of legitimate users, scanners and
//! attackers. Ground truth comes from the simulation's own record of
//! authentication attempts, not from re-parsing the text.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};

use serde_json::json;

use crate::util::{Out, Rng, YEAR_SECS, ip_string, keys_reaching, rfc3164, spread_ip};

/// User names: attackers' favourites (from OpenSSH_2k.log), then legit users.
const NAMES: &[&str] = &[
    "root",
    "admin",
    "test",
    "oracle",
    "support",
    "user",
    "webmaster",
    "guest",
    "ftpuser",
    "postgres",
    "ubuntu",
    "git",
    "pi",
    "nagios",
    "mysql",
    "www",
    "uucp",
    "operator",
    "chen",
    "deploy",
    "jenkins",
    "hadoop",
    "ftp",
    "tomcat",
    // legit users
    "fztu",
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
];
const ATTACK_NAMES: u64 = 24;
const LEGIT_BASE: u8 = 24;
const LEGIT_NAMES: u32 = 10;
const NO_NUM: u32 = u32::MAX;
const ROOT: User = User { base: 0, n: NO_NUM };
const ADMIN: User = User { base: 1, n: NO_NUM };

const LEGIT_USERS: u64 = 300;
const LEGIT_PREFIXES: &[u8] = &[119, 120];
const SCAN_PREFIXES: &[u8] = &[
    23, 45, 61, 77, 91, 103, 112, 118, 121, 150, 173, 183, 202, 211, 218, 222,
];
const SCAN_POOL: u64 = 200_000;
const BRUTE_PREFIX: &[u8] = &[185];
const STUFF_PREFIX: &[u8] = &[5];
const SLOW_PREFIX: &[u8] = &[194];
const MEDIUM_PREFIX: &[u8] = &[195];
const PROBE_PREFIX: &[u8] = &[89];

const BRUTE_ROOT: u64 = 30;
const BRUTE_INVALID: u64 = 10;
const STUFFERS: u64 = 5;
const LOW_SLOW: u64 = 20;
const MEDIUM: u64 = 10;
const PROBERS: u64 = 15;

const H: u32 = 3600;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum K {
    ReverseMap,
    InvalidUser,
    InputUserauth,
    CheckPass,
    /// `inv`: no `user=` suffix (unknown user).
    PamAuthFail,
    /// `inv`: `for invalid user X`.
    Failed,
    /// Counts `n`.
    Repeated,
    TooMany,
    PamMore,
    PamIgnoring,
    ByeBye,
    ClosedUserRequest,
    ConnClosed,
    NoIdent,
    Accepted,
    SessOpen,
    DisconnectedByUser,
    SessClose,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct User {
    pub base: u8,
    pub n: u32,
}

/// One log line to be written at its scheduled time.
#[derive(Clone, Copy, Debug)]
pub struct L {
    pub kind: K,
    pub pid: u32,
    pub ip: u32,
    pub port: u16,
    pub user: User,
    pub n: u8,
    pub inv: bool,
    /// Last line of its connection.
    pub last: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Legit,
    Scanner,
    Brute { invalid: bool },
    Stuffer,
    LowSlow,
    Medium,
    Prober,
}

struct Actor {
    class: Class,
    ip: u32,
    /// Attempts / connections left in the current episode.
    left: u32,
}

enum Item {
    Actor(u32),
    Line(L),
}

struct Entry {
    t: u32,
    seq: u64,
    item: Item,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: BinaryHeap pops the earliest (time, sequence) first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

struct Open {
    ip: u32,
    t: u32,
    failed: bool,
}

pub struct Sim {
    rng: Rng,
    heap: BinaryHeap<Entry>,
    seq: u64,
    pid: u32,
    actors: Vec<Actor>,
    /// (ip, time) per counted authentication attempt.
    attempts: Vec<(u32, i64)>,
    /// Connections that logged `Invalid user` and are still open, by pid.
    open: HashMap<u32, Open>,
}

/// Everything the truth file reports about one run.
pub struct SshdTruth {
    pub ban_5_in_10m: Vec<u32>,
    pub ban_10_in_5m: Vec<u32>,
    pub attempts: usize,
    pub last_time: u32,
    pub actors: Vec<(&'static str, Vec<u32>)>,
}

impl Sim {
    /// An empty simulation (no actors): for hand-written scenarios.
    pub fn empty(seed: u64) -> Self {
        Sim {
            rng: Rng::new(seed),
            heap: BinaryHeap::new(),
            seq: 0,
            pid: 24_200,
            actors: Vec::new(),
            attempts: Vec::new(),
            open: HashMap::new(),
        }
    }

    /// The benchmark population.
    pub fn standard(seed: u64) -> Self {
        let mut s = Sim::empty(seed);
        s.add(Class::Legit, 0, 0, 0);
        s.add(Class::Scanner, 0, 0, 0);
        for i in 0..BRUTE_ROOT + BRUTE_INVALID {
            let start = s.rng.below(u64::from(6 * H)) as u32;
            let left = s.rng.range(10, 150) as u32;
            s.add(
                Class::Brute {
                    invalid: i >= BRUTE_ROOT,
                },
                spread_ip(BRUTE_PREFIX, i),
                start,
                left,
            );
        }
        for i in 0..STUFFERS {
            let start = s.rng.below(u64::from(4 * H)) as u32;
            let left = s.rng.range(20, 400) as u32;
            s.add(Class::Stuffer, spread_ip(STUFF_PREFIX, i), start, left);
        }
        for i in 0..LOW_SLOW {
            let start = s.rng.below(600) as u32;
            s.add(Class::LowSlow, spread_ip(SLOW_PREFIX, i), start, 0);
        }
        for i in 0..MEDIUM {
            let start = s.rng.below(u64::from(2 * H)) as u32;
            let left = s.rng.range(5, 9) as u32;
            s.add(Class::Medium, spread_ip(MEDIUM_PREFIX, i), start, left);
        }
        for i in 0..PROBERS {
            let start = s.rng.below(u64::from(2 * H)) as u32;
            let left = s.rng.range(2, 12) as u32;
            s.add(Class::Prober, spread_ip(PROBE_PREFIX, i), start, left);
        }
        s
    }

    fn add(&mut self, class: Class, ip: u32, start: u32, left: u32) {
        let id = self.actors.len() as u32;
        self.actors.push(Actor { class, ip, left });
        self.push(start, Item::Actor(id));
    }

    fn push(&mut self, t: u32, item: Item) {
        self.seq += 1;
        self.heap.push(Entry {
            t,
            seq: self.seq,
            item,
        });
    }

    /// Schedules one line (public for hand-written scenarios).
    pub fn line(&mut self, t: u32, l: L) {
        self.push(t, Item::Line(l));
    }

    /// A new connection: fresh pid and source port.
    pub fn conn(&mut self) -> (u32, u16) {
        self.pid += 1 + self.rng.below(3) as u32;
        if self.pid > 65_000 {
            self.pid = 1_000 + self.pid % 1000;
        }
        (self.pid, self.rng.range(1024, 65_535) as u16)
    }

    /// Writes `lines` lines (fewer only if the simulation runs dry).
    pub fn run<W: Write>(mut self, lines: u64, out: &mut Out<W>) -> io::Result<SshdTruth> {
        let mut last_time = 0;
        while out.lines < lines {
            let Some(e) = self.heap.pop() else { break };
            if e.t >= YEAR_SECS {
                return Err(io::Error::other(format!(
                    "simulated time passed Dec 31 after {} lines: ask for fewer lines",
                    out.lines
                )));
            }
            match e.item {
                Item::Actor(id) => self.step(id, e.t),
                Item::Line(l) => {
                    self.record(&l, e.t);
                    write_line(out, &l, e.t)?;
                    last_time = e.t;
                }
            }
        }
        let mut attempts = std::mem::take(&mut self.attempts);
        // Connections cut off by the end of the log count at its last line.
        let mut cut: Vec<&Open> = self.open.values().filter(|o| !o.failed).collect();
        cut.sort_by_key(|o| (o.t, o.ip));
        attempts.extend(cut.iter().map(|o| (o.ip, i64::from(last_time))));
        let mut actors: Vec<(&'static str, Vec<u32>)> = Vec::new();
        for (name, pred) in [
            (
                "brute_force",
                (|c: Class| matches!(c, Class::Brute { .. })) as fn(Class) -> bool,
            ),
            ("credential_stuffing", |c| c == Class::Stuffer),
            ("low_and_slow", |c| c == Class::LowSlow),
            ("medium_slow", |c| c == Class::Medium),
            ("invalid_user_probes", |c| c == Class::Prober),
        ] {
            actors.push((
                name,
                self.actors
                    .iter()
                    .filter(|a| pred(a.class))
                    .map(|a| a.ip)
                    .collect(),
            ));
        }
        Ok(SshdTruth {
            attempts: attempts.len(),
            ban_5_in_10m: keys_reaching(attempts.clone(), 5, 600),
            ban_10_in_5m: keys_reaching(attempts, 10, 300),
            last_time,
            actors,
        })
    }

    /// fail2ban sshd semantics: a `Failed` line counts 1, `message repeated N
    /// times: [ Failed …` counts N, a connection with `Invalid user` and no
    /// `Failed` line counts 1, at the time its connection ends (its last
    /// line; the last line of the log if the log stops first): that is when
    /// a reader of the log learns no password attempt followed.
    fn record(&mut self, l: &L, t: u32) {
        match l.kind {
            K::Failed | K::Repeated => {
                let n = if l.kind == K::Failed { 1 } else { l.n.max(1) };
                for _ in 0..n {
                    self.attempts.push((l.ip, i64::from(t)));
                }
                if let Some(o) = self.open.get_mut(&l.pid) {
                    o.failed = true;
                }
            }
            K::InvalidUser => {
                let old = self.open.insert(
                    l.pid,
                    Open {
                        ip: l.ip,
                        t,
                        failed: false,
                    },
                );
                // A reused pid ends the previous connection.
                if let Some(o) = old
                    && !o.failed
                {
                    self.attempts.push((o.ip, i64::from(t)));
                }
            }
            _ => {}
        }
        if l.last
            && let Some(o) = self.open.remove(&l.pid)
            && !o.failed
        {
            self.attempts.push((o.ip, i64::from(t)));
        }
    }

    fn step(&mut self, id: u32, t: u32) {
        let a = &self.actors[id as usize];
        let (class, ip, left) = (a.class, a.ip, a.left);
        let r = &mut self.rng;
        // Episode boundaries: `left == 0` means the episode is over → pause.
        let pause = match class {
            Class::Brute { .. } => Some((H, 12 * H, 10, 150)),
            Class::Stuffer => Some((2 * H, 24 * H, 20, 400)),
            Class::Medium => Some((H, 6 * H, 5, 9)),
            Class::Prober => Some((H / 2, 8 * H, 2, 12)),
            _ => None,
        };
        if let Some((p0, p1, n0, n1)) = pause
            && left == 0
        {
            let p = r.range(u64::from(p0), u64::from(p1)) as u32;
            self.actors[id as usize].left = r.range(n0, n1) as u32;
            self.push(t + p, Item::Actor(id));
            return;
        }
        let (next, used) = match class {
            Class::Legit => (self.legit(t), 0),
            Class::Scanner => (self.scanner(t), 0),
            Class::Brute { invalid: false } => self.brute_root(t, ip),
            Class::Brute { invalid: true } => {
                let user = if self.rng.pct(60) {
                    ADMIN
                } else {
                    self.attack_user()
                };
                (self.invalid_attempt(t, ip, user), 1)
            }
            Class::Stuffer => {
                let user = self.attack_user();
                (self.invalid_attempt(t, ip, user), 1)
            }
            Class::LowSlow => {
                self.root_once(t, ip);
                (t + self.rng.range(160, 240) as u32, 0)
            }
            Class::Medium => {
                self.root_once(t, ip);
                (t + self.rng.range(45, 70) as u32, 1)
            }
            Class::Prober => (self.probe(t, ip), 1),
        };
        let a = &mut self.actors[id as usize];
        a.left = a.left.saturating_sub(used);
        self.push(next, Item::Actor(id));
    }

    fn attack_user(&mut self) -> User {
        let base = self.rng.below(ATTACK_NAMES) as u8;
        let n = if self.rng.pct(40) {
            self.rng.below(1000) as u32
        } else {
            NO_NUM
        };
        User { base, n }
    }

    fn mk(kind: K, pid: u32, ip: u32, port: u16, user: User) -> L {
        L {
            kind,
            pid,
            ip,
            port,
            user,
            n: 0,
            inv: false,
            last: false,
        }
    }

    /// A legitimate login (sometimes after one typo) and its session.
    fn legit(&mut self, t: u32) -> u32 {
        let i = self.rng.below(LEGIT_USERS);
        let ip = spread_ip(LEGIT_PREFIXES, i * 2 + self.rng.below(2));
        let user = User {
            base: LEGIT_BASE + (i % u64::from(LEGIT_NAMES)) as u8,
            n: if i < u64::from(LEGIT_NAMES) {
                NO_NUM
            } else {
                (i / u64::from(LEGIT_NAMES)) as u32
            },
        };
        let (pid, port) = self.conn();
        let mut at = t;
        if self.rng.pct(8) {
            self.line(at, Self::mk(K::PamAuthFail, pid, ip, port, user));
            at += 2;
            self.line(at, Self::mk(K::Failed, pid, ip, port, user));
            at += self.rng.range(2, 6) as u32;
        }
        self.line(at, Self::mk(K::Accepted, pid, ip, port, user));
        self.line(at, Self::mk(K::SessOpen, pid, ip, port, user));
        let end = at + self.rng.range(30, u64::from(2 * H)) as u32;
        self.line(end, Self::mk(K::DisconnectedByUser, pid, ip, port, user));
        self.line(
            end,
            L {
                last: true,
                ..Self::mk(K::SessClose, pid, ip, port, user)
            },
        );
        t + self.rng.range(5, 60) as u32
    }

    /// Internet background noise: each connection from a random address.
    fn scanner(&mut self, t: u32) -> u32 {
        let ip = spread_ip(SCAN_PREFIXES, self.rng.below(SCAN_POOL));
        let roll = self.rng.below(100);
        if roll < 30 {
            let (pid, port) = self.conn();
            self.line(
                t,
                L {
                    last: true,
                    ..Self::mk(K::NoIdent, pid, ip, port, ROOT)
                },
            );
        } else if roll < 50 {
            let (pid, port) = self.conn();
            self.line(
                t,
                L {
                    last: true,
                    ..Self::mk(K::ConnClosed, pid, ip, port, ROOT)
                },
            );
        } else if roll < 80 {
            self.root_once(t, ip);
        } else {
            self.probe(t, ip);
        }
        t + self.rng.range(3, 40) as u32
    }

    /// One root password failure in its own connection.
    fn root_once(&mut self, t: u32, ip: u32) {
        let (pid, port) = self.conn();
        self.line(t, Self::mk(K::PamAuthFail, pid, ip, port, ROOT));
        self.line(t + 1, Self::mk(K::Failed, pid, ip, port, ROOT));
        self.line(
            t + 1,
            L {
                last: true,
                ..Self::mk(K::ByeBye, pid, ip, port, ROOT)
            },
        );
    }

    /// Root brute force: 1–6 attempts per connection. Returns (next, attempts).
    fn brute_root(&mut self, t: u32, ip: u32) -> (u32, u32) {
        let (pid, port) = self.conn();
        let k = if self.rng.pct(50) {
            1
        } else {
            self.rng.range(2, 6) as u8
        };
        if self.rng.pct(30) {
            self.line(t, Self::mk(K::ReverseMap, pid, ip, port, ROOT));
        }
        self.line(t, Self::mk(K::PamAuthFail, pid, ip, port, ROOT));
        let mut at = t + self.rng.range(1, 3) as u32;
        self.line(at, Self::mk(K::Failed, pid, ip, port, ROOT));
        if k > 1 {
            at += 2 * u32::from(k - 1);
            self.line(
                at,
                L {
                    n: k - 1,
                    ..Self::mk(K::Repeated, pid, ip, port, ROOT)
                },
            );
        }
        if k >= 6 {
            self.line(at, Self::mk(K::TooMany, pid, ip, port, ROOT));
            self.line(
                at,
                L {
                    n: k - 1,
                    ..Self::mk(K::PamMore, pid, ip, port, ROOT)
                },
            );
            self.line(
                at,
                L {
                    n: k,
                    last: true,
                    ..Self::mk(K::PamIgnoring, pid, ip, port, ROOT)
                },
            );
        } else {
            self.line(
                at,
                L {
                    last: true,
                    ..Self::mk(K::ByeBye, pid, ip, port, ROOT)
                },
            );
        }
        (at + self.rng.range(1, 8) as u32, u32::from(k))
    }

    /// An invalid user with one failed password (counts 1).
    fn invalid_attempt(&mut self, t: u32, ip: u32, user: User) -> u32 {
        let (pid, port) = self.conn();
        let inv = |k| L {
            inv: true,
            ..Self::mk(k, pid, ip, port, user)
        };
        self.line(t, inv(K::InvalidUser));
        self.line(t, inv(K::InputUserauth));
        self.line(t, inv(K::CheckPass));
        self.line(t, inv(K::PamAuthFail));
        let at = t + self.rng.range(2, 7) as u32;
        self.line(at, inv(K::Failed));
        let close = if self.rng.pct(80) {
            K::ByeBye
        } else {
            K::ConnClosed
        };
        self.line(
            at,
            L {
                last: true,
                ..inv(close)
            },
        );
        at + self.rng.range(2, 12) as u32
    }

    /// `Invalid user` and disconnect without a password attempt (counts 1).
    fn probe(&mut self, t: u32, ip: u32) -> u32 {
        let (pid, port) = self.conn();
        let user = self.attack_user();
        let inv = |k| L {
            inv: true,
            ..Self::mk(k, pid, ip, port, user)
        };
        if self.rng.pct(30) {
            self.line(t, inv(K::ReverseMap));
        }
        self.line(t, inv(K::InvalidUser));
        self.line(t, inv(K::InputUserauth));
        let close = if self.rng.pct(50) {
            K::ConnClosed
        } else {
            K::ClosedUserRequest
        };
        self.line(
            t + 1,
            L {
                last: true,
                ..inv(close)
            },
        );
        t + self.rng.range(5, 60) as u32
    }
}

fn user<W: Write>(out: &mut Out<W>, u: User) {
    out.s(NAMES[usize::from(u.base) % NAMES.len()]);
    if u.n != NO_NUM {
        out.u(u64::from(u.n));
    }
}

fn from_ip_port<W: Write>(out: &mut Out<W>, l: &L) {
    out.s(if l.inv { "invalid user " } else { "" });
    user(out, l.user);
    out.s(" from ");
    out.ip(l.ip);
    out.s(" port ");
    out.u(u64::from(l.port));
    out.s(" ssh2");
}

const PAM_PREFIX: &str = "logname= uid=0 euid=0 tty=ssh ruser= rhost=";

pub fn write_line<W: Write>(out: &mut Out<W>, l: &L, t: u32) -> io::Result<()> {
    out.bytes(&rfc3164(t));
    out.s(" LabSZ sshd[");
    out.u(u64::from(l.pid));
    out.s("]: ");
    match l.kind {
        K::ReverseMap => {
            let o = l.ip.to_be_bytes();
            out.s("reverse mapping checking getaddrinfo for host-");
            for (i, b) in o.iter().enumerate() {
                if i > 0 {
                    out.s("-");
                }
                out.u(u64::from(*b));
            }
            out.s(".example.net [");
            out.ip(l.ip);
            out.s("] failed - POSSIBLE BREAK-IN ATTEMPT!");
        }
        K::InvalidUser => {
            out.s("Invalid user ");
            user(out, l.user);
            out.s(" from ");
            out.ip(l.ip);
        }
        K::InputUserauth => {
            out.s("input_userauth_request: invalid user ");
            user(out, l.user);
            out.s(" [preauth]");
        }
        K::CheckPass => out.s("pam_unix(sshd:auth): check pass; user unknown"),
        K::PamAuthFail | K::PamMore => {
            if l.kind == K::PamAuthFail {
                out.s("pam_unix(sshd:auth): authentication failure; ");
            } else {
                out.s("PAM ");
                out.u(u64::from(l.n));
                out.s(" more authentication failures; ");
            }
            out.s(PAM_PREFIX);
            out.ip(l.ip);
            out.s(" ");
            if !l.inv {
                out.s(" user=");
                user(out, l.user);
            }
        }
        K::Failed => {
            out.s("Failed password for ");
            from_ip_port(out, l);
        }
        K::Repeated => {
            out.s("message repeated ");
            out.u(u64::from(l.n));
            out.s(" times: [ Failed password for ");
            from_ip_port(out, l);
            out.s("]");
        }
        K::TooMany => {
            out.s("Disconnecting: Too many authentication failures for ");
            user(out, l.user);
            out.s(" [preauth]");
        }
        K::PamIgnoring => {
            out.s("PAM service(sshd) ignoring max retries; ");
            out.u(u64::from(l.n));
            out.s(" > 3");
        }
        K::ByeBye | K::ClosedUserRequest | K::DisconnectedByUser => {
            out.s("Received disconnect from ");
            out.ip(l.ip);
            out.s(match l.kind {
                K::ByeBye => ": 11: Bye Bye [preauth]",
                K::ClosedUserRequest => ": 11: Closed due to user request. [preauth]",
                _ => ": 11: disconnected by user",
            });
        }
        K::ConnClosed => {
            out.s("Connection closed by ");
            out.ip(l.ip);
            out.s(" [preauth]");
        }
        K::NoIdent => {
            out.s("Did not receive identification string from ");
            out.ip(l.ip);
        }
        K::Accepted => {
            out.s("Accepted password for ");
            from_ip_port(out, l);
        }
        K::SessOpen => {
            out.s("pam_unix(sshd:session): session opened for user ");
            user(out, l.user);
            out.s(" by (uid=0)");
        }
        K::SessClose => {
            out.s("pam_unix(sshd:session): session closed for user ");
            user(out, l.user);
        }
    }
    out.nl()
}

pub fn truth_json(seed: u64, lines: u64, t: &SshdTruth) -> serde_json::Value {
    let ips = |v: &[u32]| v.iter().map(|&ip| ip_string(ip)).collect::<Vec<_>>();
    let actors: serde_json::Map<String, serde_json::Value> = t
        .actors
        .iter()
        .map(|(name, v)| ((*name).to_string(), json!(ips(v))))
        .collect();
    json!({
        "generator": "secmon-gen sshd",
        "seed": seed,
        "lines": lines,
        "first": "Jan  1 00:00:00",
        "last": String::from_utf8_lossy(&rfc3164(t.last_time)),
        "counting": "one attempt per `Failed … from IP` line; `message repeated N times: [ Failed …` counts N; \
                     a connection (pid) with `Invalid user … from IP` and no Failed line counts 1, at the time of its last line \
                     (the log's last line if it is cut off); \
                     window check: first and last of N attempts at most T apart, inclusive",
        "attempts": t.attempts,
        "bans": {
            "a": {
                "description": ">= 5 failed authentication attempts within 10 min from one IP (fail2ban sshd: maxretry 5, findtime 600 s)",
                "count": 5, "window_s": 600,
                "ips": ips(&t.ban_5_in_10m),
            },
            "b": {
                "description": ">= 10 failed authentication attempts within 5 min from one IP",
                "count": 10, "window_s": 300,
                "ips": ips(&t.ban_10_in_5m),
            },
        },
        "actors": actors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate_all(seed: u64, lines: u64) -> (Vec<u8>, SshdTruth) {
        let mut out = Out::new(Vec::new());
        let t = Sim::standard(seed).run(lines, &mut out).expect("run");
        (out.finish().expect("finish"), t)
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, ta) = generate_all(7, 20_000);
        let (b, tb) = generate_all(7, 20_000);
        assert_eq!(a, b);
        assert_eq!(ta.ban_5_in_10m, tb.ban_5_in_10m);
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 20_000);
        let (c, _) = generate_all(8, 20_000);
        assert_ne!(a, c);
    }

    #[test]
    fn lines_have_loghub_shapes_and_increasing_time() {
        let (a, t) = generate_all(1, 50_000);
        let text = String::from_utf8(a).expect("utf8");
        let mut prev = String::new();
        for line in text.lines() {
            assert!(line.contains(" LabSZ sshd["), "{line}");
            let ts = &line[..15];
            let key = |s: &str| {
                (
                    months(&s[..3]),
                    s[4..6].trim().parse::<u32>().unwrap_or(0),
                    s[7..].to_string(),
                )
            };
            if !prev.is_empty() {
                assert!(key(&prev) <= key(ts), "{prev} > {ts}");
            }
            prev = ts.to_string();
        }
        assert!(text.contains("]: message repeated "));
        assert!(text.contains(" user=root\n"));
        assert!(text.contains("rhost=185."));
        assert!(!t.ban_10_in_5m.is_empty());
        // b implies a
        assert!(t.ban_10_in_5m.iter().all(|ip| t.ban_5_in_10m.contains(ip)));
    }

    fn months(m: &str) -> usize {
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|x| *x == m)
        .unwrap_or(99)
    }

    /// Hand-checked scenario, counted the fail2ban way.
    #[test]
    fn truth_of_a_tiny_scenario() {
        let ip = |d: u8| u32::from_be_bytes([10, 0, 0, d]);
        let mut s = Sim::empty(1);
        let conn = |s: &mut Sim, t: u32, ip: u32, kinds: &[(K, u8, bool)]| {
            let (pid, port) = s.conn();
            let n = kinds.len();
            for (i, &(k, n_rep, inv)) in kinds.iter().enumerate() {
                s.line(
                    t,
                    L {
                        kind: k,
                        pid,
                        ip,
                        port,
                        user: ROOT,
                        n: n_rep,
                        inv,
                        last: i + 1 == n,
                    },
                );
            }
        };
        let fail = [
            (K::PamAuthFail, 0, false),
            (K::Failed, 0, false),
            (K::ByeBye, 0, false),
        ];
        // A: 5 single failures, first and last exactly 600 s apart → a.
        for t in [0, 100, 200, 300, 600] {
            conn(&mut s, 1000 + t, ip(1), &fail);
        }
        // B: 1 + "repeated 3" = 4 at once, the 5th 601 s later → neither.
        conn(
            &mut s,
            1000,
            ip(2),
            &[
                (K::Failed, 0, false),
                (K::Repeated, 3, false),
                (K::ByeBye, 0, false),
            ],
        );
        conn(&mut s, 1601, ip(2), &fail);
        // C: 5 invalid-user probes without Failed lines in 400 s → a.
        let probe = [
            (K::InvalidUser, 0, true),
            (K::InputUserauth, 0, true),
            (K::ConnClosed, 0, true),
        ];
        for t in [0, 100, 200, 300, 400] {
            conn(&mut s, 1000 + t, ip(3), &probe);
        }
        // D: 4 invalid users each with one Failed line: 4, not 8 → neither.
        let stuff = [
            (K::InvalidUser, 0, true),
            (K::Failed, 0, true),
            (K::ByeBye, 0, true),
        ];
        for t in [0, 10, 20, 30] {
            conn(&mut s, 1000 + t, ip(4), &stuff);
        }
        // E: 1 + "repeated 5" + 1 + "repeated 3" = 10 within 300 s → a and b.
        conn(
            &mut s,
            1000,
            ip(5),
            &[
                (K::Failed, 0, false),
                (K::Repeated, 5, false),
                (K::TooMany, 0, false),
            ],
        );
        conn(
            &mut s,
            1300,
            ip(5),
            &[
                (K::Failed, 0, false),
                (K::Repeated, 3, false),
                (K::ByeBye, 0, false),
            ],
        );
        // F: 10 failures spanning 301 s → a only.
        for i in 0..10u32 {
            conn(
                &mut s,
                1000 + if i == 9 { 301 } else { i * 10 },
                ip(6),
                &fail,
            );
        }
        // G: an accepted login and a scanner that never tries → nothing.
        conn(
            &mut s,
            1000,
            ip(7),
            &[(K::Accepted, 0, false), (K::SessOpen, 0, false)],
        );
        conn(&mut s, 1000, ip(8), &[(K::NoIdent, 0, false)]);

        let mut out = Out::new(Vec::new());
        let t = s.run(1_000, &mut out).expect("run");
        let text = String::from_utf8(out.finish().expect("finish")).expect("utf8");
        assert_eq!(t.ban_5_in_10m, vec![ip(1), ip(3), ip(5), ip(6)]);
        assert_eq!(t.ban_10_in_5m, vec![ip(5)]);
        assert_eq!(t.attempts, 5 + 5 + 5 + 4 + 10 + 10);
        assert!(text.starts_with("Jan  1 00:16:40 LabSZ sshd["));
        assert!(text.contains(
            "]: message repeated 3 times: [ Failed password for root from 10.0.0.2 port "
        ));
        assert!(text.contains("]: Invalid user root from 10.0.0.3\n"));
        assert!(text.contains("]: Failed password for invalid user root from 10.0.0.4 port "));
    }

    #[test]
    fn truncation_mid_connection_counts_open_invalid_user() {
        let mut s = Sim::empty(1);
        let (pid, port) = s.conn();
        let ip = u32::from_be_bytes([10, 0, 0, 9]);
        let mk = |kind, last| L {
            kind,
            pid,
            ip,
            port,
            user: ROOT,
            n: 0,
            inv: true,
            last,
        };
        for t in 0..5 {
            s.line(t * 10, mk(K::InvalidUser, false));
        }
        s.line(100, mk(K::Failed, true));
        // Only the first line is written: its connection never logs Failed.
        let mut out = Out::new(Vec::new());
        let t = s.run(1, &mut out).expect("run");
        assert_eq!(t.attempts, 1);
    }
}
