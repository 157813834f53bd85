//! Per-connection correlation of sshd events: which `Invalid user … from IP`
//! connections never logged a `Failed …` line.
//!
//! fail2ban's sshd jail counts one failure per authentication attempt. An
//! invalid user who then sends a password logs both `Invalid user X from IP`
//! and `Failed password for invalid user X from IP`: one attempt, counted via
//! the `Failed` line (`sshd.auth_failed`). A client that names an invalid
//! user and disconnects (or times out) without a password attempt logs only
//! the `Invalid user` line: one attempt too, but no `Failed` line to count.
//! Telling the two apart needs the later lines of the same sshd process, so
//! it is done here, in order, on parsed events: [`SshdConns::observe`] sees
//! every event, and when an `Invalid user` connection (same `host` and `pid`)
//! ends without a `Failed` line it emits one derived event
//! [`UNANSWERED`] (`sshd.invalid_user_unanswered`) carrying the `Invalid
//! user` line's `fields.ip`, `fields.user`, `host` and `pid`, which rules
//! count like a failed attempt.
//!
//! A pending connection ends:
//! - answered (nothing emitted) at an `sshd.auth_failed` of the same
//!   host + pid (it is counted there), or at an `sshd.accepted`;
//! - unanswered (one event emitted) at a connection-ending event of the same
//!   host + pid (`sshd.connection_closed`, `sshd.disconnect`,
//!   `sshd.too_many_auth_failures`, `sshd.max_auth_exceeded`), at a second
//!   `sshd.invalid_user` of the same host + pid (the pid was reused), when
//!   event time passes its `Invalid user` line by [`ConnConfig::timeout`]
//!   (sshd's LoginGraceTime is 120 s by default), when it is evicted because
//!   [`ConnConfig::max_open`] connections are pending (the oldest goes,
//!   counted in [`ConnStats::evicted`]), and at [`SshdConns::flush`] (end of
//!   input).
//!
//! The derived event is stamped with the time the correlator learns the
//! connection was unanswered: the ending event's time, or the newest event
//! time seen for timeouts, evictions and the flush. It is therefore never
//! older than the events around it, so the engine's reorder buffer never
//! drops it as late.
//!
//! Pure and bounded: no clock reads (event time drives timeouts; `advance`
//! takes a time from the caller), at most `max_open` pending connections.
//! Events without a `pid` cannot be correlated and are left alone.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use secmon_core::{Event, Fields, Str, Timestamp, Value};

/// Name of the derived event.
pub const UNANSWERED: &str = "sshd.invalid_user_unanswered";

/// The fields the correlator itself reads (the name and the connection
/// key). What it copies into derived events beyond these matters only to
/// the rules, which say so themselves.
pub const READS: [&str; 3] = ["event", "host", "pid"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// A pending connection older than this (by event time) is unanswered.
    pub timeout_ms: i64,
    /// Most pending connections kept; the oldest is evicted beyond.
    pub max_open: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            timeout_ms: 600_000,
            max_open: 100_000,
        }
    }
}

/// Counters, for the summary and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// `Invalid user` connections seen (with a pid).
    pub opened: u64,
    /// Ended by a `Failed` (or `Accepted`) line: nothing emitted.
    pub answered: u64,
    /// Derived events emitted, for whatever reason.
    pub unanswered: u64,
    /// Of those: ended by the timeout.
    pub timed_out: u64,
    /// Of those: evicted to stay within `max_open`.
    pub evicted: u64,
    /// Of those: still pending at the flush.
    pub flushed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    host: Str,
    pid: i64,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    t: Timestamp,
    ev: Event,
}

/// The correlator. Feed it every event in order; it appends derived events
/// to `out`.
#[derive(Debug)]
pub struct SshdConns {
    cfg: ConnConfig,
    /// Fx, not SipHash: keys come from the logged host and pid, and the
    /// map is bounded by `max_open`, so hash flooding cannot grow it.
    open: FxHashMap<Key, Pending>,
    /// (seq, key) in insertion order; entries whose seq no longer matches
    /// `open` are stale and skipped.
    order: VecDeque<(u64, Key)>,
    seq: u64,
    now: Timestamp,
    stats: ConnStats,
}

impl Default for SshdConns {
    fn default() -> Self {
        SshdConns::new(ConnConfig::default())
    }
}

enum Kind {
    Invalid,
    Answer,
    End,
    Other,
}

fn kind(name: &str) -> Kind {
    match name {
        "sshd.invalid_user" => Kind::Invalid,
        "sshd.auth_failed" | "sshd.accepted" => Kind::Answer,
        "sshd.connection_closed"
        | "sshd.disconnect"
        | "sshd.too_many_auth_failures"
        | "sshd.max_auth_exceeded" => Kind::End,
        _ => Kind::Other,
    }
}

impl SshdConns {
    pub fn new(cfg: ConnConfig) -> Self {
        SshdConns {
            cfg: ConnConfig {
                max_open: cfg.max_open.max(1),
                ..cfg
            },
            open: FxHashMap::default(),
            order: VecDeque::new(),
            seq: 0,
            now: Timestamp::MIN,
            stats: ConnStats::default(),
        }
    }

    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// Connections currently pending.
    pub fn pending(&self) -> usize {
        self.open.len()
    }

    /// Looks at one event (which the caller passes on unchanged) and appends
    /// the derived events it causes to `out`.
    pub fn observe(&mut self, ev: &Event, out: &mut Vec<Event>) {
        let Some(name) = ev.name() else {
            return;
        };
        if !name.starts_with("sshd.") {
            return;
        }
        if ev.time > self.now {
            self.now = ev.time;
            self.expire(out);
        }
        let k = kind(name);
        if matches!(k, Kind::Other) {
            return;
        }
        let Some(key) = key_of(ev) else {
            return;
        };
        match k {
            Kind::Invalid => {
                if let Some(old) = self.open.remove(&key) {
                    self.emit(old, ev.time, out);
                }
                if self.open.len() >= self.cfg.max_open {
                    self.evict_oldest(out);
                }
                self.seq += 1;
                self.stats.opened += 1;
                self.order.push_back((self.seq, key.clone()));
                self.open.insert(
                    key,
                    Pending {
                        seq: self.seq,
                        t: ev.time,
                        ev: derived(ev),
                    },
                );
                self.compact();
            }
            Kind::Answer => {
                if self.open.remove(&key).is_some() {
                    self.stats.answered += 1;
                }
            }
            Kind::End => {
                if let Some(p) = self.open.remove(&key) {
                    self.emit(p, ev.time, out);
                }
            }
            Kind::Other => {}
        }
    }

    /// Time passes without events (a live source is idle): connections
    /// older than the timeout at `now` end unanswered.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        if now > self.now {
            self.now = now;
            self.expire(out);
        }
    }

    /// End of input: every pending connection is unanswered, in the order
    /// they were opened, stamped with the newest event time seen.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.open.get(&key).is_some_and(|p| p.seq == seq)
                && let Some(p) = self.open.remove(&key)
            {
                self.stats.flushed += 1;
                let now = self.now;
                self.emit(p, now, out);
            }
        }
    }

    fn emit(&mut self, p: Pending, at: Timestamp, out: &mut Vec<Event>) {
        self.stats.unanswered += 1;
        let mut ev = p.ev;
        ev.time = at.max(p.t);
        out.push(ev);
    }

    /// Ends connections whose `Invalid user` line is older than the timeout.
    fn expire(&mut self, out: &mut Vec<Event>) {
        let limit = self.now.0.saturating_sub(self.cfg.timeout_ms);
        while let Some((seq, key)) = self.order.pop_front() {
            let due = match self.open.get(&key) {
                Some(p) if p.seq == seq => p.t.0 <= limit,
                _ => continue, // stale
            };
            if !due {
                self.order.push_front((seq, key));
                break;
            }
            if let Some(p) = self.open.remove(&key) {
                self.stats.timed_out += 1;
                let now = self.now;
                self.emit(p, now, out);
            }
        }
    }

    fn evict_oldest(&mut self, out: &mut Vec<Event>) {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.open.get(&key).is_some_and(|p| p.seq == seq)
                && let Some(p) = self.open.remove(&key)
            {
                self.stats.evicted += 1;
                let now = self.now;
                self.emit(p, now, out);
                return;
            }
        }
    }

    /// Drops stale order entries once they outnumber the live ones, so the
    /// queue stays within twice `max_open` however time moves.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.open.len() + 64 {
            let open = &self.open;
            self.order
                .retain(|(seq, key)| open.get(key).is_some_and(|p| p.seq == *seq));
        }
    }
}

fn key_of(ev: &Event) -> Option<Key> {
    let pid = ev.get("pid")?.as_i64()?;
    let host = ev
        .get("host")
        .and_then(Value::as_str)
        .map(Str::from)
        .unwrap_or_default();
    Some(Key { host, pid })
}

/// The derived event: the `Invalid user` line's identity, renamed.
fn derived(ev: &Event) -> Event {
    let mut f = Fields::with_capacity(8);
    f.push(Str::const_new("event"), Value::from(UNANSWERED));
    for k in [
        "service",
        "level",
        "host",
        "program",
        "pid",
        "fields.ip",
        "fields.user",
        "fields.port",
    ] {
        if let Some(v) = ev.get(k) {
            f.push(Str::from(k), v.clone());
        }
    }
    Event {
        time: ev.time,
        received: ev.received,
        source: ev.source,
        line: ev.line,
        fields: f,
        raw: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, name: &str, pid: i64, ip: &str) -> Event {
        let mut f = Fields::new();
        f.push(Str::const_new("event"), Value::from(name));
        f.push(Str::const_new("host"), Value::from("h"));
        f.push(Str::const_new("pid"), Value::Int(pid));
        f.push(Str::const_new("fields.ip"), Value::from(ip));
        f.push(Str::const_new("fields.user"), Value::from("admin"));
        Event::new(Timestamp(t * 1000), f)
    }

    fn feed(c: &mut SshdConns, evs: &[Event]) -> Vec<Event> {
        let mut out = Vec::new();
        for e in evs {
            c.observe(e, &mut out);
        }
        out
    }

    fn summary(out: &[Event]) -> Vec<(i64, String, i64)> {
        out.iter()
            .map(|e| {
                assert_eq!(e.name(), Some(UNANSWERED));
                (
                    e.time.0 / 1000,
                    e.get("fields.ip")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    e.get("pid").and_then(Value::as_i64).unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn invalid_user_then_failed_counts_nothing_here() {
        let mut c = SshdConns::default();
        let out = feed(
            &mut c,
            &[
                ev(0, "sshd.invalid_user", 1, "1.1.1.1"),
                ev(2, "sshd.pam_auth_failure", 1, "1.1.1.1"),
                ev(3, "sshd.auth_failed", 1, "1.1.1.1"),
                ev(3, "sshd.disconnect", 1, "1.1.1.1"),
            ],
        );
        assert!(out.is_empty());
        assert_eq!(c.stats().answered, 1);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn invalid_user_then_close_counts_once_at_the_close() {
        let mut c = SshdConns::default();
        let out = feed(
            &mut c,
            &[
                ev(0, "sshd.invalid_user", 1, "1.1.1.1"),
                ev(0, "sshd.invalid_user", 2, "2.2.2.2"),
                ev(1, "sshd.connection_closed", 1, "1.1.1.1"),
                // another pid's close does not end pid 2
                ev(2, "sshd.disconnect", 3, "2.2.2.2"),
                ev(4, "sshd.disconnect", 2, "2.2.2.2"),
                // a second close of the same pid counts nothing more
                ev(5, "sshd.connection_closed", 2, "2.2.2.2"),
            ],
        );
        assert_eq!(
            summary(&out),
            vec![(1, "1.1.1.1".into(), 1), (4, "2.2.2.2".into(), 2)]
        );
    }

    #[test]
    fn hosts_are_separate() {
        let mut c = SshdConns::default();
        let mut other = ev(1, "sshd.auth_failed", 1, "1.1.1.1");
        other.fields.insert("host", Value::from("other"));
        let out = feed(
            &mut c,
            &[
                ev(0, "sshd.invalid_user", 1, "1.1.1.1"),
                other,
                ev(2, "sshd.connection_closed", 1, "1.1.1.1"),
            ],
        );
        assert_eq!(summary(&out), vec![(2, "1.1.1.1".into(), 1)]);
    }

    #[test]
    fn timeout_reuse_and_flush() {
        let mut c = SshdConns::new(ConnConfig {
            timeout_ms: 120_000,
            max_open: 10,
        });
        let mut out = feed(
            &mut c,
            &[
                ev(0, "sshd.invalid_user", 1, "1.1.1.1"),
                ev(10, "sshd.invalid_user", 2, "2.2.2.2"),
                // pid 2 reused: the first connection ended unanswered
                ev(20, "sshd.invalid_user", 2, "3.3.3.3"),
                // unrelated sshd traffic moves time: pid 1 times out at 120
                ev(119, "sshd.accepted", 9, "9.9.9.9"),
                ev(125, "sshd.accepted", 9, "9.9.9.9"),
                ev(130, "sshd.invalid_user", 4, "4.4.4.4"),
            ],
        );
        c.advance(Timestamp(141_000), &mut out); // pid 2 (t=20) times out
        c.flush(&mut out);
        assert_eq!(
            summary(&out),
            vec![
                (20, "2.2.2.2".into(), 2),
                (125, "1.1.1.1".into(), 1),
                (141, "3.3.3.3".into(), 2),
                (141, "4.4.4.4".into(), 4),
            ]
        );
        let s = c.stats();
        assert_eq!(
            (s.opened, s.unanswered, s.timed_out, s.flushed),
            (4, 4, 2, 1)
        );
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn bounded_with_counted_eviction() {
        let mut c = SshdConns::new(ConnConfig {
            timeout_ms: 600_000,
            max_open: 3,
        });
        let evs: Vec<Event> = (0..10)
            .map(|i| ev(i, "sshd.invalid_user", 100 + i, "1.1.1.1"))
            .collect();
        let out = feed(&mut c, &evs);
        assert_eq!(c.pending(), 3);
        assert_eq!(c.stats().evicted, 7);
        assert_eq!(out.len(), 7);
        // the oldest go first
        assert_eq!(
            summary(&out).iter().map(|x| x.2).collect::<Vec<_>>(),
            (100..107).collect::<Vec<_>>()
        );
    }

    #[test]
    fn order_queue_stays_bounded_without_time_passing() {
        let mut c = SshdConns::new(ConnConfig {
            timeout_ms: 600_000,
            max_open: 1000,
        });
        let mut out = Vec::new();
        for i in 0..100_000 {
            c.observe(&ev(0, "sshd.invalid_user", i, "1.1.1.1"), &mut out);
            c.observe(&ev(0, "sshd.auth_failed", i, "1.1.1.1"), &mut out);
        }
        assert!(out.is_empty());
        assert!(c.order.len() <= 2 * c.open.len() + 65);
    }

    #[test]
    fn events_without_pid_or_name_are_ignored() {
        let mut c = SshdConns::default();
        let mut e = ev(0, "sshd.invalid_user", 1, "1.1.1.1");
        e.fields.remove("pid");
        let mut json = Fields::new();
        json.insert("event", Value::from("auth.login_failed"));
        let out = feed(
            &mut c,
            &[e, Event::new(Timestamp(5), json), Event::default()],
        );
        assert!(out.is_empty());
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn derived_event_keeps_identity() {
        let mut c = SshdConns::default();
        let mut out = Vec::new();
        c.observe(&ev(7, "sshd.invalid_user", 42, "5.6.7.8"), &mut out);
        c.flush(&mut out);
        let d = &out[0];
        assert_eq!(d.get("fields.user").and_then(Value::as_str), Some("admin"));
        assert_eq!(d.get("host").and_then(Value::as_str), Some("h"));
        assert_eq!(d.time, Timestamp(7000));
    }
}
