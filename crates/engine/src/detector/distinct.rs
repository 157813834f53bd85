//! `distinct`: fire when a group has seen `count` distinct values of a field
//! within `window` (each value kept with its latest time); the set then
//! starts empty. At most `count − 1` values are held per group.

use secmon_core::Str;
use smallvec::SmallVec;

use super::NONE;

#[derive(Debug, Clone)]
pub(crate) struct DistinctState {
    values: SmallVec<[(Str, i64); 1]>,
    pub resolve_at: i64,
}

impl Default for DistinctState {
    fn default() -> Self {
        DistinctState {
            values: SmallVec::new(),
            resolve_at: NONE,
        }
    }
}

impl DistinctState {
    /// Adds `value` seen at `t`; returns the distinct count when it fires.
    pub fn observe(&mut self, value: &str, t: i64, count: u64, window: i64) -> Option<u64> {
        self.values.retain(|(_, x)| t.saturating_sub(*x) <= window);
        match self.values.iter_mut().find(|(v, _)| v == value) {
            Some(e) => e.1 = t,
            None => self.values.push((Str::from(value), t)),
        }
        let n = self.values.len() as u64;
        if n >= count {
            self.values.clear();
            self.values.shrink_to_fit();
            Some(n)
        } else {
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_only() {
        let mut s = DistinctState::default();
        assert_eq!(s.observe("a", 0, 3, 100), None);
        assert_eq!(s.observe("a", 1, 3, 100), None);
        assert_eq!(s.observe("b", 2, 3, 100), None);
        assert_eq!(s.observe("b", 3, 3, 100), None);
        assert_eq!(s.observe("c", 100, 3, 100), Some(3));
        assert_eq!(s.observe("d", 101, 3, 100), None);
    }

    #[test]
    fn latest_time_per_value() {
        let mut s = DistinctState::default();
        s.observe("a", 0, 3, 100);
        s.observe("b", 10, 3, 100);
        s.observe("a", 90, 3, 100); // refreshes a
        assert_eq!(s.observe("c", 150, 3, 100), None); // b at 10 is 140 old: out, a refreshed at 90 stays
        assert_eq!(s.observe("d", 151, 3, 100), Some(3));
    }
}
