//! `threshold`: fire when the weighted count of a group's events within
//! `window` reaches `count`; the window then starts empty.
//!
//! An event at `t` keeps entries with `t − time <= window`, so the first and
//! the Nth event exactly `window` apart fire and `window + 1 ms` apart do not.
//! Entries are at most `count − 1` (each weighs at least 1). An entry is one
//! `i64`: the time shifted left 16 bits with the weight (saturated at 65,535)
//! in the low bits; times are clamped to ±2^47 ms (±4,400 years) to make room.
//!
//! The state is 16 bytes, so a group entry (key, last-seen time, state) is 48
//! bytes for the million-group target. Two facts make that possible, both
//! because the engine releases events in time order:
//! - the newest entry is always at the group's previous last-seen time, so
//!   only its weight is stored (the caller passes that time back in);
//! - a pending resolve is always due at last-seen + window (every matching
//!   event while it is pending moves it there), so it is one flag.
//!
//! One or two entries are inline; three or more spill to the heap. The
//! resolve deadline is bookkept here, but scheduled by the engine.

use super::NONE;

#[derive(Debug, Clone)]
pub(crate) enum ThresholdState {
    /// No entries in the window.
    Empty { pending: bool },
    /// One entry: weight `w` at the group's last-seen time.
    One { w: u16, pending: bool },
    /// Packed entry `older`, then weight `w` at last-seen.
    Two { older: i64, w: u16, pending: bool },
    /// Packed entries `older` (oldest first, at least two), then weight `w`
    /// at last-seen. Boxed so the variant holds one pointer, not a 24-byte
    /// `Vec`: the rare spilled window pays an extra allocation so that
    /// every group stays at 16 bytes.
    #[allow(clippy::box_collection)]
    Many {
        older: Box<Vec<i64>>,
        w: u16,
        pending: bool,
    },
}

impl Default for ThresholdState {
    fn default() -> Self {
        ThresholdState::Empty { pending: false }
    }
}

const TIME_LIMIT: i64 = 1 << 47;
const MAX_WEIGHT: u32 = 0xFFFF;

fn pack(t: i64, weight: u32) -> i64 {
    (t.clamp(-TIME_LIMIT, TIME_LIMIT - 1) << 16) | i64::from(weight.min(MAX_WEIGHT))
}

fn time_of(e: i64) -> i64 {
    e >> 16
}

fn weight_of_entry(e: i64) -> u64 {
    (e & 0xFFFF) as u64
}

/// Drops the entries (oldest first) that are out of the window at `t` and
/// returns the weighted count of the rest.
fn prune(entries: &mut Vec<i64>, t: i64, window: i64) -> u64 {
    let cut = entries
        .iter()
        .position(|&e| t.saturating_sub(time_of(e)) <= window)
        .unwrap_or(entries.len());
    if cut > 0 {
        entries.drain(..cut);
    }
    entries.iter().map(|&e| weight_of_entry(e)).sum()
}

impl ThresholdState {
    fn pending(&self) -> bool {
        match self {
            ThresholdState::Empty { pending }
            | ThresholdState::One { pending, .. }
            | ThresholdState::Two { pending, .. }
            | ThresholdState::Many { pending, .. } => *pending,
        }
    }

    fn set_pending(&mut self, p: bool) {
        match self {
            ThresholdState::Empty { pending }
            | ThresholdState::One { pending, .. }
            | ThresholdState::Two { pending, .. }
            | ThresholdState::Many { pending, .. } => *pending = p,
        }
    }

    /// Time of the pending resolve (last matching event + window) after a
    /// fire, or [`NONE`]; `last_seen` is the group's last-seen time.
    #[inline]
    pub fn resolve_at(&self, last_seen: i64, window: i64) -> i64 {
        if self.pending() {
            last_seen.saturating_add(window)
        } else {
            NONE
        }
    }

    /// Marks a resolve pending (due at last-seen + window) or clears it.
    pub fn set_resolve_pending(&mut self, pending: bool) {
        self.set_pending(pending);
    }

    /// Adds an event at `t` (not before `prev`, the group's last-seen time
    /// before this event); returns the window's weighted count when it
    /// fires.
    pub fn observe(
        &mut self,
        prev: i64,
        t: i64,
        weight: u32,
        count: u64,
        window: i64,
    ) -> Option<u64> {
        let t = t.clamp(-TIME_LIMIT, TIME_LIMIT - 1);
        let new = pack(t, weight);
        let pending = self.pending();
        // Every entry, oldest first, the new one last: inline up to three.
        let mut buf = [0i64; 3];
        let n = match std::mem::replace(self, ThresholdState::Empty { pending }) {
            ThresholdState::Empty { .. } => {
                buf[0] = new;
                1
            }
            ThresholdState::One { w, .. } => {
                debug_assert!(t >= prev.min(TIME_LIMIT - 1), "events out of time order");
                buf[0] = pack(prev, u32::from(w));
                buf[1] = new;
                2
            }
            ThresholdState::Two { older, w, .. } => {
                debug_assert!(t >= prev.min(TIME_LIMIT - 1), "events out of time order");
                buf = [older, pack(prev, u32::from(w)), new];
                3
            }
            ThresholdState::Many { mut older, w, .. } => {
                debug_assert!(t >= prev.min(TIME_LIMIT - 1), "events out of time order");
                older.push(pack(prev, u32::from(w)));
                older.push(new);
                let sum = prune(&mut older, t, window);
                if sum >= count {
                    return Some(sum);
                }
                if older.len() >= 3 {
                    let w = older.pop().map_or(0, weight_of_entry) as u16;
                    *self = ThresholdState::Many { older, w, pending };
                } else {
                    // Back inline; the heap block is freed.
                    *self = Self::inline(&older, pending);
                }
                return None;
            }
        };
        let all = &buf[..n];
        let cut = all
            .iter()
            .position(|&e| t.saturating_sub(time_of(e)) <= window)
            .unwrap_or(n);
        let live = &all[cut..];
        let sum: u64 = live.iter().map(|&e| weight_of_entry(e)).sum();
        if sum >= count {
            return Some(sum);
        }
        *self = if live.len() == 3 {
            let mut older = Box::new(Vec::with_capacity(4));
            older.extend_from_slice(&live[..2]);
            ThresholdState::Many {
                older,
                w: weight_of_entry(live[2]) as u16,
                pending,
            }
        } else {
            Self::inline(live, pending)
        };
        None
    }

    /// The state for at most two entries, oldest first.
    fn inline(live: &[i64], pending: bool) -> ThresholdState {
        match *live {
            [] => ThresholdState::Empty { pending },
            [a] => ThresholdState::One {
                w: weight_of_entry(a) as u16,
                pending,
            },
            [a, b, ..] => ThresholdState::Two {
                older: a,
                w: weight_of_entry(b) as u16,
                pending,
            },
        }
    }
}

/// How many occurrences an event stands for: the weight field as a number,
/// at least 1; missing or invalid counts 1.
pub(crate) fn weight_of(v: Option<&secmon_core::Value>) -> u32 {
    match v.and_then(secmon_core::Value::as_f64) {
        Some(w) if w >= 1.0 => {
            if w >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                w as u32
            }
        }
        _ => 1,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A state plus the group's last-seen time, as the group table keeps it.
    #[derive(Default)]
    struct G {
        s: ThresholdState,
        last: i64,
    }

    impl G {
        fn observe(&mut self, t: i64, w: u32, count: u64, window: i64) -> Option<u64> {
            let r = self.s.observe(self.last, t, w, count, window);
            self.last = t;
            r
        }
    }

    #[test]
    fn state_is_16_bytes() {
        assert_eq!(std::mem::size_of::<ThresholdState>(), 16);
    }

    #[test]
    fn boundaries() {
        // N-1 never fires.
        let mut s = G::default();
        assert_eq!(s.observe(0, 1, 3, 100), None);
        assert_eq!(s.observe(50, 1, 3, 100), None);
        // Nth exactly window after the first fires.
        assert_eq!(s.observe(100, 1, 3, 100), Some(3));
        // Empty after firing.
        assert_eq!(s.observe(101, 1, 3, 100), None);
        // window + 1 apart never fires.
        let mut s = G::default();
        s.observe(0, 1, 3, 100);
        s.observe(50, 1, 3, 100);
        assert_eq!(s.observe(101, 1, 3, 100), None);
    }

    #[test]
    fn weights() {
        let mut s = G::default();
        assert_eq!(s.observe(0, 3, 5, 100), None);
        assert_eq!(s.observe(1, 3, 5, 100), Some(6));
        assert_eq!(weight_of(None), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from("x"))), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from(0i64))), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from("4"))), 4);
        assert_eq!(weight_of(Some(&secmon_core::Value::from(1e30))), u32::MAX);
        // Huge weights saturate at 65,535 per event.
        let mut s = G::default();
        assert_eq!(s.observe(0, u32::MAX, 100_000, 100), None);
        assert_eq!(s.observe(0, u32::MAX, 100_000, 100), Some(131_070));
        // Negative and extreme times keep their order.
        let mut s = G::default();
        assert_eq!(s.observe(-1_000, 1, 2, 1_000), None);
        assert_eq!(s.observe(0, 1, 2, 1_000), Some(2));
        let mut s = G::default();
        assert_eq!(s.observe(i64::MAX - 5, 1, 2, 10), None);
        assert_eq!(s.observe(i64::MAX, 1, 2, 10), Some(2));
        let mut s = G::default();
        assert_eq!(s.observe(i64::MIN, 1, 2, 10), None);
        assert_eq!(s.observe(i64::MIN + 3, 1, 2, 10), Some(2));
    }

    #[test]
    fn pending_resolve_follows_last_seen() {
        let mut s = ThresholdState::default();
        assert_eq!(s.resolve_at(500, 100), NONE);
        s.set_resolve_pending(true);
        assert_eq!(s.resolve_at(500, 100), 600);
        // Survives entries coming and going.
        assert_eq!(s.observe(500, 510, 1, 3, 100), None);
        assert_eq!(s.resolve_at(510, 100), 610);
        s.set_resolve_pending(false);
        assert_eq!(s.resolve_at(510, 100), NONE);
    }

    /// The entries as a plain list, the way the state was first written.
    fn naive(
        entries: &mut Vec<(i64, u64)>,
        t: i64,
        w: u32,
        count: u64,
        window: i64,
    ) -> Option<u64> {
        let t = t.clamp(-TIME_LIMIT, TIME_LIMIT - 1);
        entries.push((t, u64::from(w.min(MAX_WEIGHT))));
        let cut = entries
            .iter()
            .position(|&(x, _)| t.saturating_sub(x) <= window)
            .unwrap_or(entries.len());
        entries.drain(..cut);
        let sum = entries.iter().map(|e| e.1).sum();
        if sum >= count {
            entries.clear();
            Some(sum)
        } else {
            None
        }
    }

    #[test]
    fn matches_a_plain_list() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for round in 0..2_000 {
            let count = 1 + next(12);
            let window = next(60) as i64 - 2;
            let mut g = G::default();
            let mut reference = Vec::new();
            let mut t = next(1_000) as i64 - 500;
            for _ in 0..200 {
                t += next(if round % 2 == 0 { 8 } else { 40 }) as i64;
                let w = if next(10) == 0 {
                    next(70_000) as u32
                } else {
                    1
                };
                assert_eq!(
                    g.observe(t, w, count, window),
                    naive(&mut reference, t, w, count, window),
                    "round {round} t {t} count {count} window {window}"
                );
            }
        }
    }
}
