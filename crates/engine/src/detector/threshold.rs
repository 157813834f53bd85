//! `threshold`: fire when the weighted count of a group's events within
//! `window` reaches `count`; the window then starts empty.
//!
//! An event at `t` keeps entries with `t − time <= window`, so the first and
//! the Nth event exactly `window` apart fire and `window + 1 ms` apart do not.
//! Entries are at most `count − 1` (each weighs at least 1), inline for the
//! common one- or two-event group. Each entry is one `i64`: the time shifted
//! left 16 bits with the weight (saturated at 65,535) in the low bits, which
//! keeps a group entry at 64 bytes — one cache line — for the million-group
//! target. Times are clamped to ±2^47 ms (±4,400 years) to make room. The resolve deadline is bookkept here, but
//! scheduled by the engine.

use smallvec::SmallVec;

use super::NONE;

#[derive(Debug, Clone)]
pub(crate) struct ThresholdState {
    /// Packed (event time ms, weight), oldest first; see [`pack`].
    entries: SmallVec<[i64; 2]>,
    /// Time of the pending resolve (last matching event + window) after a
    /// fire, or [`NONE`].
    pub resolve_at: i64,
}

impl Default for ThresholdState {
    fn default() -> Self {
        ThresholdState {
            entries: SmallVec::new(),
            resolve_at: NONE,
        }
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

impl ThresholdState {
    /// Adds an event; returns the window's weighted count when it fires.
    pub fn observe(&mut self, t: i64, weight: u32, count: u64, window: i64) -> Option<u64> {
        let t = t.clamp(-TIME_LIMIT, TIME_LIMIT - 1);
        self.entries.push(pack(t, weight));
        let cut = self
            .entries
            .iter()
            .position(|&e| t.saturating_sub(time_of(e)) <= window)
            .unwrap_or(self.entries.len());
        if cut > 0 {
            self.entries.drain(..cut);
        }
        let sum: u64 = self.entries.iter().map(|&e| weight_of_entry(e)).sum();
        if sum >= count {
            self.entries.clear();
            // A spilled window gives its heap memory back once it empties.
            self.entries.shrink_to_fit();
            Some(sum)
        } else {
            None
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

    #[test]
    fn boundaries() {
        // N-1 never fires.
        let mut s = ThresholdState::default();
        assert_eq!(s.observe(0, 1, 3, 100), None);
        assert_eq!(s.observe(50, 1, 3, 100), None);
        // Nth exactly window after the first fires.
        assert_eq!(s.observe(100, 1, 3, 100), Some(3));
        // Empty after firing.
        assert_eq!(s.observe(101, 1, 3, 100), None);
        // window + 1 apart never fires.
        let mut s = ThresholdState::default();
        s.observe(0, 1, 3, 100);
        s.observe(50, 1, 3, 100);
        assert_eq!(s.observe(101, 1, 3, 100), None);
    }

    #[test]
    fn weights() {
        let mut s = ThresholdState::default();
        assert_eq!(s.observe(0, 3, 5, 100), None);
        assert_eq!(s.observe(1, 3, 5, 100), Some(6));
        assert_eq!(weight_of(None), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from("x"))), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from(0i64))), 1);
        assert_eq!(weight_of(Some(&secmon_core::Value::from("4"))), 4);
        assert_eq!(weight_of(Some(&secmon_core::Value::from(1e30))), u32::MAX);
        // Huge weights saturate at 65,535 per event.
        let mut s = ThresholdState::default();
        assert_eq!(s.observe(0, u32::MAX, 100_000, 100), None);
        assert_eq!(s.observe(0, u32::MAX, 100_000, 100), Some(131_070));
        // Negative and extreme times keep their order.
        let mut s = ThresholdState::default();
        assert_eq!(s.observe(-1_000, 1, 2, 1_000), None);
        assert_eq!(s.observe(0, 1, 2, 1_000), Some(2));
        let mut s = ThresholdState::default();
        assert_eq!(s.observe(i64::MAX - 5, 1, 2, 10), None);
        assert_eq!(s.observe(i64::MAX, 1, 2, 10), Some(2));
    }
}
