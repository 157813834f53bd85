//! The bounded per-rule group table: group key → detector state plus the
//! event time the group was last seen.
//!
//! Keys are one `Str` (the group_by values joined by U+001F), so a lookup is
//! by `&str` from the engine's reusable scratch buffer and allocates nothing
//! unless the group is new. Memory is bounded two ways: an amortized sweep
//! drops idle groups (nothing in their window any more), and a hard cap
//! evicts the least recently seen groups in a batch. Both are counted. The
//! table does not know what the state means; callers say what to keep.
//!
//! Storage is two-level: the groups live densely in a slab (`Vec`), and a
//! `hashbrown::HashTable<u32>` maps a key's hash to its slab index. Growing
//! the index moves 4-byte slots, not whole entries, and growing the slab is
//! one realloc, so the transient peak while the table grows (old + new
//! storage alive at once) is a fraction of a one-level map's: at a million
//! groups that was ~190 MB of 64-byte buckets for a hashbrown `HashMap`.
//! Removal is `swap_remove` plus re-pointing the moved entry's index slot.

use std::hash::BuildHasher;

use hashbrown::HashTable;
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

#[derive(Debug, Clone)]
struct Entry<S> {
    key: Str,
    group: Group<S>,
}

/// Largest number of groups the `u32` index can address.
const MAX_LEN: usize = u32::MAX as usize;

#[inline]
fn hash_key(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

#[derive(Debug)]
pub(crate) struct GroupTable<S> {
    /// Hash of the key → index into `slab`.
    index: HashTable<u32>,
    slab: Vec<Entry<S>>,
    max: usize,
    pub evicted: u64,
    /// Watermark at the last idle sweep.
    last_sweep: i64,
    len_after_sweep: usize,
}

impl<S> GroupTable<S> {
    pub fn new(max: usize) -> Self {
        GroupTable {
            index: HashTable::new(),
            slab: Vec::new(),
            max: max.clamp(1, MAX_LEN - 1),
            evicted: 0,
            last_sweep: i64::MIN,
            len_after_sweep: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Changes the cap (a reload with another `max_groups`); the next
    /// [`GroupTable::enforce_cap`] applies it.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.clamp(1, MAX_LEN - 1);
    }

    /// The group for `key`, created with `init` if new; marks it seen at `t`.
    /// Returns its last-seen time before, or `None` if it was created.
    #[inline]
    pub fn touch(
        &mut self,
        key: &str,
        t: i64,
        init: impl FnOnce() -> S,
    ) -> (&mut Group<S>, Option<i64>) {
        let hash = hash_key(key);
        let slab = &self.slab;
        let found = self
            .index
            .find(hash, |&i| slab[i as usize].key == key)
            .copied();
        match found {
            Some(i) => {
                let g = &mut self.slab[i as usize].group;
                let prev = g.last_seen;
                g.last_seen = prev.max(t);
                (g, Some(prev))
            }
            None => {
                let i = self.slab.len();
                self.slab.push(Entry {
                    key: Str::from(key),
                    group: Group {
                        last_seen: t,
                        state: init(),
                    },
                });
                let slab = &self.slab;
                self.index
                    .insert_unique(hash, i as u32, |&j| hash_key(&slab[j as usize].key));
                (&mut self.slab[i].group, None)
            }
        }
    }

    /// The group for `key`; if new, created with `init` and last seen at
    /// `t`. Unlike [`GroupTable::touch`], an existing group's last-seen
    /// time is left alone (taking over an alert is not seeing an event).
    pub fn get_or_insert(&mut self, key: &str, t: i64, init: impl FnOnce() -> S) -> &mut Group<S> {
        let slab = &self.slab;
        let found = self
            .index
            .find(hash_key(key), |&i| slab[i as usize].key == key)
            .copied();
        match found {
            Some(i) => &mut self.slab[i as usize].group,
            None => self.touch(key, t, init).0,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Group<S>> {
        let slab = &self.slab;
        let i = *self
            .index
            .find(hash_key(key), |&i| slab[i as usize].key == key)?;
        Some(&mut self.slab[i as usize].group)
    }

    /// Removes the entry at slab position `i` (swap_remove), keeping the
    /// index consistent.
    fn remove_at(&mut self, i: usize) {
        let slab = &self.slab;
        if let Ok(o) = self
            .index
            .find_entry(hash_key(&slab[i].key), |&j| j as usize == i)
        {
            o.remove();
        }
        let last = self.slab.len() - 1;
        self.slab.swap_remove(i);
        if i != last {
            // The former last entry now lives at `i`: re-point its slot.
            let h = hash_key(&self.slab[i].key);
            if let Some(slot) = self.index.find_mut(h, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
    }

    /// Removes every entry for which `drop` is true, in one pass.
    fn remove_where(&mut self, mut drop: impl FnMut(&Group<S>) -> bool) {
        let mut i = 0;
        while i < self.slab.len() {
            if drop(&self.slab[i].group) {
                // The entry swapped into `i` is examined next.
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        self.shrink_if_sparse();
    }

    /// Gives memory back once the table is mostly empty (a burst of groups
    /// swept away), keeping room to double again without reallocating.
    fn shrink_if_sparse(&mut self) {
        let len = self.slab.len();
        if self.slab.capacity() >= 4096 && len < self.slab.capacity() / 4 {
            self.slab.shrink_to(2 * len);
            let slab = &self.slab;
            self.index
                .shrink_to(2 * len, |&j| hash_key(&slab[j as usize].key));
        }
    }

    /// Evicts the least recently seen groups down to 90% of the cap when the
    /// cap is exceeded. Batching makes the O(n) selection amortized O(1) per
    /// insert.
    pub fn enforce_cap(&mut self) {
        if self.slab.len() <= self.max {
            return;
        }
        let target = self.max - self.max / 10;
        let target = if target >= self.max {
            self.max - 1
        } else {
            target
        };
        let need = self.slab.len() - target;
        let mut seen: Vec<i64> = self.slab.iter().map(|e| e.group.last_seen).collect();
        let (_, cutoff, _) = seen.select_nth_unstable(need - 1);
        let cutoff = *cutoff;
        let below = seen.iter().filter(|&&t| t < cutoff).count();
        drop(seen);
        let mut ties = need - below;
        let before = self.slab.len();
        self.remove_where(|g| {
            if g.last_seen < cutoff {
                true
            } else if g.last_seen == cutoff && ties > 0 {
                ties -= 1;
                true
            } else {
                false
            }
        });
        self.evicted += (before - self.slab.len()) as u64;
        self.len_after_sweep = self.slab.len();
    }

    /// Drops groups idle for longer than `window` (last seen before
    /// `watermark - window`) unless `keep` says their state still matters.
    /// Runs only when the watermark moved a full window since the last sweep
    /// or the table doubled, so its cost is amortized over the inserts.
    pub fn maybe_sweep(&mut self, watermark: i64, window: i64, keep: impl Fn(&Group<S>) -> bool) {
        let moved = watermark.saturating_sub(self.last_sweep) >= window.max(1);
        let grew = self.slab.len() >= 2 * self.len_after_sweep.max(1024);
        if !(moved || grew) {
            return;
        }
        let horizon = watermark.saturating_sub(window);
        self.remove_where(|g| g.last_seen < horizon && !keep(g));
        self.last_sweep = watermark;
        self.len_after_sweep = self.slab.len();
    }

    /// Bytes one entry occupies in the table's storage (key, time, state),
    /// excluding the 4-byte index slot, hash control bytes and spilled heap
    /// data.
    pub fn entry_size() -> usize {
        std::mem::size_of::<Entry<S>>()
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
        t.maybe_sweep(1000, 100, |g| g.state);
        assert!(t.get_mut("old").is_none());
        assert!(t.get_mut("old-pending").is_some());
        assert!(t.get_mut("new").is_some());
    }

    /// Every slab entry is reachable through the index and nothing else is.
    fn check_consistent<S>(t: &GroupTable<S>) {
        assert_eq!(t.index.len(), t.slab.len());
        for (i, e) in t.slab.iter().enumerate() {
            let found = t
                .index
                .find(hash_key(&e.key), |&j| t.slab[j as usize].key == e.key);
            assert_eq!(found.copied(), Some(i as u32), "key {}", e.key);
        }
    }

    #[test]
    fn two_level_table_matches_a_hashmap() {
        // Random touches, sweeps and (tie-free) cap evictions against a
        // std HashMap doing the same by brute force.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t: GroupTable<u64> = GroupTable::new(3_000);
        let mut model: std::collections::HashMap<String, (i64, u64)> = Default::default();
        let mut now = 0i64;
        for step in 0..60_000u64 {
            now += 1;
            let key = format!("k{}", next() % 5_000);
            let (g, prev) = t.touch(&key, now, || step);
            assert_eq!(prev.is_none(), !model.contains_key(&key));
            let m = model.entry(key).or_insert((now, step));
            m.0 = now;
            assert_eq!((g.last_seen, g.state), *m);
            t.enforce_cap();
            if model.len() > 3_000 {
                // Times are unique, so the evicted set is exact.
                let mut times: Vec<i64> = model.values().map(|v| v.0).collect();
                times.sort_unstable();
                let cutoff = times[model.len() - 2_700];
                model.retain(|_, v| v.0 >= cutoff);
            }
            if step % 997 == 0 {
                let w = (next() % 2_000) as i64;
                t.last_sweep = i64::MIN;
                t.maybe_sweep(now, w, |g| g.state % 3 == 0);
                model.retain(|_, v| v.0 >= now - w || v.1 % 3 == 0);
                check_consistent(&t);
            }
            assert_eq!(t.len(), model.len());
        }
        check_consistent(&t);
        for (k, v) in &model {
            let g = t.get_mut(k).unwrap();
            assert_eq!((g.last_seen, g.state), *v);
        }
        // Sweeping everything empties the table and gives memory back.
        t.maybe_sweep(i64::MAX, 0, |_| false);
        assert_eq!(t.len(), 0);
        check_consistent(&t);
        assert!(t.get_mut("k1").is_none());
    }
}
