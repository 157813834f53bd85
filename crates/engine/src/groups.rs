//! The bounded per-rule group table: group key → detector state plus the
//! event time the group was last seen.
//!
//! Keys are one `Str` (the group_by values joined by U+001F), so a lookup is
//! by `&str` from the engine's reusable scratch buffer and allocates nothing
//! unless the group is new. Memory is bounded two ways: an amortized sweep
//! drops idle groups (nothing in their window any more), and a hard cap
//! evicts the least recently seen groups in a batch. Both are counted. The
//! table does not know what the state means; callers say what to keep.

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;
use secmon_core::Str;

/// Separates group_by values inside a key. A control character that log
/// values practically never contain; a value containing it could alias
/// another multi-field key, which only merges two groups' counts.
pub const KEY_SEP: char = '\u{1f}';

#[derive(Debug, Clone)]
pub(crate) struct Group<S> {
    /// Event time (ms) of the group's latest matching event.
    pub last_seen: i64,
    pub state: S,
}

#[derive(Debug)]
pub(crate) struct GroupTable<S> {
    map: HashMap<Str, Group<S>, FxBuildHasher>,
    max: usize,
    pub evicted: u64,
    /// Watermark at the last idle sweep.
    last_sweep: i64,
    len_after_sweep: usize,
}

impl<S> GroupTable<S> {
    pub fn new(max: usize) -> Self {
        GroupTable {
            map: HashMap::with_hasher(FxBuildHasher),
            max: max.max(1),
            evicted: 0,
            last_sweep: i64::MIN,
            len_after_sweep: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The group for `key`, created with `init` if new; marks it seen at `t`.
    /// Returns whether it was created.
    #[inline]
    pub fn touch(&mut self, key: &str, t: i64, init: impl FnOnce() -> S) -> (&mut Group<S>, bool) {
        let mut created = false;
        let g = match self.map.entry_ref(key) {
            hashbrown::hash_map::EntryRef::Occupied(o) => o.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(v) => {
                created = true;
                v.insert_with_key(
                    Str::from(key),
                    Group {
                        last_seen: t,
                        state: init(),
                    },
                )
            }
        };
        g.last_seen = g.last_seen.max(t);
        (g, created)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Group<S>> {
        self.map.get_mut(key)
    }

    /// Evicts the least recently seen groups down to 90% of the cap when the
    /// cap is exceeded. Batching makes the O(n) selection amortized O(1) per
    /// insert.
    pub fn enforce_cap(&mut self) {
        if self.map.len() <= self.max {
            return;
        }
        let target = self.max - self.max / 10;
        let target = if target >= self.max {
            self.max - 1
        } else {
            target
        };
        let need = self.map.len() - target;
        let mut seen: Vec<i64> = self.map.values().map(|g| g.last_seen).collect();
        let (_, cutoff, _) = seen.select_nth_unstable(need - 1);
        let cutoff = *cutoff;
        let below = seen.iter().filter(|&&t| t < cutoff).count();
        let mut ties = need - below;
        let before = self.map.len();
        self.map.retain(|_, g| {
            if g.last_seen < cutoff {
                false
            } else if g.last_seen == cutoff && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += (before - self.map.len()) as u64;
        self.len_after_sweep = self.map.len();
    }

    /// Drops groups idle for longer than `window` (last seen before
    /// `watermark - window`) unless `keep` says their state still matters.
    /// Runs only when the watermark moved a full window since the last sweep
    /// or the table doubled, so its cost is amortized over the inserts.
    pub fn maybe_sweep(&mut self, watermark: i64, window: i64, keep: impl Fn(&S) -> bool) {
        let moved = watermark.saturating_sub(self.last_sweep) >= window.max(1);
        let grew = self.map.len() >= 2 * self.len_after_sweep.max(1024);
        if !(moved || grew) {
            return;
        }
        let horizon = watermark.saturating_sub(window);
        self.map
            .retain(|_, g| g.last_seen >= horizon || keep(&g.state));
        self.last_sweep = watermark;
        self.len_after_sweep = self.map.len();
    }

    /// Bytes one entry occupies in the table's storage (key, time, state),
    /// excluding hash control bytes and spilled heap data.
    pub fn entry_size() -> usize {
        std::mem::size_of::<(Str, Group<S>)>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cap_evicts_least_recent_in_batch() {
        let mut t: GroupTable<()> = GroupTable::new(100);
        for i in 0..150 {
            t.touch(&format!("k{i}"), i, || ());
            t.enforce_cap();
            assert!(t.len() <= 100);
        }
        assert!(t.evicted >= 50);
        // The most recent key survives.
        assert!(t.get_mut("k149").is_some());
        assert!(t.get_mut("k0").is_none());
    }

    #[test]
    fn sweep_drops_idle_but_keeps_flagged() {
        let mut t: GroupTable<bool> = GroupTable::new(1000);
        t.touch("old", 0, || false);
        t.touch("old-pending", 0, || true);
        t.touch("new", 900, || false);
        t.maybe_sweep(1000, 100, |s| *s);
        assert!(t.get_mut("old").is_none());
        assert!(t.get_mut("old-pending").is_some());
        assert!(t.get_mut("new").is_some());
    }
}
