//! Detection state across a configuration reload, and alerts taken over
//! from the response store.
//!
//! [`Engine::carry_over`] builds the engine for a new ruleset out of the
//! running one. A rule whose definition is unchanged (same id, and the same
//! match, group_by, detector and enabled flag: [`Rule::same_definition`];
//! for a metric rule also every metric it reads kept) keeps its per-rule
//! state — group tables with their partial windows, pending resolves and
//! firing flags — moved whole, not copied group by group, with its pending
//! deadlines renumbered; changed and new rules start empty; removed rules'
//! state is dropped. Time moves over as it is: the lateness buffer with the
//! events waiting in it, the watermark, the next metric tick and the
//! counters, so for an unchanged rule a reload is invisible. A metric's
//! store is kept when its definition and the bucket width (`eval_interval`)
//! are unchanged, re-ringed if the windows read from it changed.
//!
//! [`Engine::adopt`] goes the other way: an alert the response store says is
//! firing but the engine knows nothing of (its state was lost in a restart,
//! or a reload changed its rule) becomes firing state of its group, so it
//! resolves by the engine's normal path as if the engine had fired it:
//! threshold and distinct after a quiet window with no matching event,
//! metric rules at the first false evaluation once their windows have had
//! time to fill again, absence when a matching event returns, state when an
//! event (or the latest one already seen) says the condition is clear.

use std::cmp::Reverse;
use std::sync::Arc;

use secmon_core::{Str, Timestamp};

use super::{Deadline, Engine, RuleRt, ceil_to};
use crate::config::EngineConfig;
use crate::detector::NONE;
use crate::detector::absence::AbsenceState;
use crate::detector::distinct::DistinctState;
use crate::detector::state::StateState;
use crate::detector::threshold::ThresholdState;
use crate::groups::KEY_SEP;
use crate::rule::{Detector, Rule, Ruleset};
use crate::verdict::{Resolve, Verdict};

/// What [`Engine::carry_over`] kept and what it did not, by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Unchanged rules whose state moved over.
    pub kept: Vec<String>,
    /// Rules that start empty: new, or changed (in definition or in a
    /// metric they read).
    pub fresh: Vec<String>,
    /// Rules no longer in the ruleset; their state is gone.
    pub removed: Vec<String>,
    /// Metric stores moved over, and those starting empty.
    pub metrics_kept: usize,
    pub metrics_fresh: usize,
}

/// What [`Engine::adopt`] made of a firing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// The engine already tracks the group as firing (its state was
    /// carried over): nothing changed.
    Known,
    /// The group is now firing state of the engine, which will resolve it
    /// by its normal path.
    Adopted,
    /// The engine's state already shows the condition clear (a state
    /// rule whose group's latest event does not satisfy `when`): a
    /// resolve verdict was emitted.
    Resolved,
    /// A `single` rule keeps no state; nothing ever resolves its alerts.
    Stateless,
    /// The rule is disabled: it will not judge the alert.
    Disabled,
    /// The alert's group does not fit the rule's group_by (it changed), or
    /// there is no such rule index.
    GroupMismatch,
    /// The engine has no time yet (nothing arrived, no `advance_to`):
    /// adopt once it has, so the group's window starts at a time no later
    /// event can precede.
    NoTime,
}

impl Engine {
    /// The engine for `ruleset` and `cfg`, taking over `previous`'s state
    /// for every rule whose definition is unchanged (see the module docs).
    /// Nothing is evaluated here: events waiting in the lateness buffer are
    /// released by the next `observe` or `advance_to`, under the new rules.
    pub fn carry_over(
        ruleset: Arc<Ruleset>,
        cfg: EngineConfig,
        previous: Engine,
    ) -> (Engine, Carried) {
        let mut new = Engine::new(ruleset, cfg);
        let mut old = previous;
        let (new_rs, old_rs) = (new.rs.clone(), old.rs.clone());
        let mut report = Carried::default();

        // Metric stores, by name.
        let mut old_stores: Vec<_> = std::mem::take(&mut old.stores)
            .into_iter()
            .map(Some)
            .collect();
        let mut store_kept = vec![false; new.stores.len()];
        for (i, store) in new.stores.iter_mut().enumerate() {
            let name = &new_rs.metrics()[i].name;
            let kept = old_rs
                .metrics()
                .iter()
                .position(|m| m.name == *name)
                .filter(|&j| new_rs.same_metric(i, &old_rs, j))
                .and_then(|j| old_stores[j].take_if(|o| o.width() == store.width()));
            if let Some(o) = kept {
                store.take_over(o);
                store_kept[i] = true;
            }
        }
        report.metrics_kept = store_kept.iter().filter(|&&k| k).count();
        report.metrics_fresh = store_kept.len() - report.metrics_kept;

        // Rules, by id: old index → new index of the kept ones.
        let mut renumber: Vec<Option<u32>> = vec![None; old_rs.rules().len()];
        for (i, rule) in new_rs.rules().iter().enumerate() {
            let reads_kept = match rule.detector() {
                Detector::Metric { expr, .. } => expr
                    .comparisons()
                    .iter()
                    .all(|c| store_kept.get(c.metric_idx).copied().unwrap_or(false)),
                _ => true,
            };
            let Some(j) = old_rs
                .position(rule.id())
                .filter(|&j| reads_kept && rule.same_definition(old_rs.rule(j)))
            else {
                report.fresh.push(rule.id().to_string());
                continue;
            };
            let mut rt = std::mem::replace(&mut old.rules[j], RuleRt::Off);
            set_cap(&mut rt, new.cfg.max_groups);
            new.rules[i] = rt;
            new.stats[i] = std::mem::take(&mut old.stats[j]);
            renumber[j] = Some(i as u32);
            report.kept.push(rule.id().to_string());
        }
        report.removed = old_rs
            .rules()
            .iter()
            .filter(|r| new_rs.position(r.id()).is_none())
            .map(|r| r.id().to_string())
            .collect();
        new.deadlines = std::mem::take(&mut old.deadlines)
            .into_vec()
            .into_iter()
            .filter_map(|Reverse(d)| {
                let rule = renumber.get(d.rule as usize).copied().flatten()?;
                Some(Reverse(Deadline { rule, ..d }))
            })
            .collect();

        // Time. Buffered events are newer than the watermark and come out
        // in time order, so none of them can be refused as late here, even
        // with a shorter lateness.
        new.buffer.raise(old.buffer.watermark());
        while let Some(ev) = old.buffer.pop_front() {
            if new.buffer.push(ev).is_err() {
                new.late_events += 1;
            }
        }
        // The caller's choices about what verdicts carry and what it takes back.
        new.evidence = old.evidence;
        new.spent = old.spent.take();
        new.max_time = old.max_time;
        new.latest = old.latest;
        new.events_in = old.events_in;
        new.late_events += old.late_events;
        new.released = old.released;
        new.last_metric_data = old.last_metric_data;
        new.next_tick = old
            .next_tick
            .map(|t| ceil_to(t, new.cfg.eval_interval.as_millis()));
        if old.clock_started {
            // New global absence rules start their silence now.
            new.start_clock(new.buffer.watermark().max(new.latest));
        }
        (new, report)
    }

    /// Takes over an alert of rule `rule` (an index into this engine's
    /// ruleset) for `group` (field path → key spelling, as the response
    /// store keeps it) that is firing outside the engine: see the module
    /// docs and [`Adoption`]. The group's quiet window starts at the
    /// current watermark, since what happened before is not known; an
    /// existing group (events arrived since) keeps its last-seen time. A
    /// verdict it emits (only [`Adoption::Resolved`]) goes to `out`.
    pub fn adopt(
        &mut self,
        rule: usize,
        group: &[(String, String)],
        out: &mut Vec<Verdict>,
    ) -> Adoption {
        let Some(r) = self.rs.rules().get(rule) else {
            return Adoption::GroupMismatch;
        };
        let Some(key) = group_key(r, group) else {
            return Adoption::GroupMismatch;
        };
        let t0 = self.buffer.watermark();
        if matches!(self.rules[rule], RuleRt::Off) {
            return Adoption::Disabled;
        }
        if matches!(self.rules[rule], RuleRt::Single) {
            return Adoption::Stateless;
        }
        if t0 == i64::MIN {
            return Adoption::NoTime;
        }
        let window = self.windows[rule];
        let mut deadline = None;
        let outcome = match &mut self.rules[rule] {
            RuleRt::Off => Adoption::Disabled,
            RuleRt::Single => Adoption::Stateless,
            RuleRt::Threshold(table) => {
                let g = table.get_or_insert(&key, t0, ThresholdState::default);
                let known = g.state.resolve_at(g.last_seen, window) != NONE;
                if !known {
                    g.state.set_resolve_pending(true);
                    deadline = Some(g.last_seen.saturating_add(window));
                }
                table.enforce_cap();
                if known {
                    Adoption::Known
                } else {
                    Adoption::Adopted
                }
            }
            RuleRt::Distinct(table) => {
                let g = table.get_or_insert(&key, t0, DistinctState::default);
                let known = g.state.resolve_at != NONE;
                if !known {
                    g.state.resolve_at = g.last_seen.saturating_add(window);
                    deadline = Some(g.state.resolve_at);
                }
                table.enforce_cap();
                if known {
                    Adoption::Known
                } else {
                    Adoption::Adopted
                }
            }
            RuleRt::Absence(table) => {
                // Firing until a matching event returns. A group that
                // exists without having fired may only be the silence clock
                // started for a global rule, so it is not taken as clear.
                let g = table.get_or_insert(&key, t0, AbsenceState::default);
                let known = g.state.fired;
                g.state.fired = true;
                table.enforce_cap();
                if known {
                    Adoption::Known
                } else {
                    Adoption::Adopted
                }
            }
            RuleRt::State(table) => match table.get_mut(&key) {
                Some(g) if g.state.firing => Adoption::Known,
                // The group's latest event did not satisfy `when`.
                Some(_) => Adoption::Resolved,
                None => {
                    table.touch(&key, t0, StateState::default).0.state.firing = true;
                    table.enforce_cap();
                    Adoption::Adopted
                }
            },
            RuleRt::Metric(state) => {
                if state.firing {
                    Adoption::Known
                } else {
                    state.firing = true;
                    state.true_since = None;
                    state.resolve_from = Some(t0.saturating_add(window));
                    Adoption::Adopted
                }
            }
        };
        if let Some(at) = deadline {
            self.deadlines.push(Reverse(Deadline {
                at,
                rule: rule as u32,
                key: Str::from(key.as_str()),
            }));
        }
        if outcome == Adoption::Adopted
            && matches!(self.rules[rule], RuleRt::Metric(_))
            && self.next_tick.is_none()
        {
            // Nothing released yet: metric ticks start now, so the alert is
            // judged even if no event ever comes.
            self.next_tick = Some(ceil_to(t0, self.cfg.eval_interval.as_millis()));
        }
        if outcome == Adoption::Resolved {
            self.stats[rule].resolved += 1;
            out.push(Verdict::Resolve(Resolve {
                rule,
                group: self.group_values(rule, &key),
                at: Timestamp(t0),
            }));
        }
        outcome
    }
}

/// The engine's group key for a stored group: its values in the rule's
/// group_by order. `None` when the paths differ from the rule's.
fn group_key(rule: &Rule, group: &[(String, String)]) -> Option<String> {
    let paths = rule.group_by();
    if group.len() != paths.len() {
        return None;
    }
    let mut key = String::new();
    for (i, p) in paths.iter().enumerate() {
        let (_, v) = group.iter().find(|(k, _)| k == p.as_str())?;
        if i > 0 {
            key.push(KEY_SEP);
        }
        key.push_str(v);
    }
    Some(key)
}

/// Applies a changed `max_groups` to a kept rule's table.
fn set_cap(rt: &mut RuleRt, max: usize) {
    match rt {
        RuleRt::Threshold(t) => {
            t.set_max(max);
            t.enforce_cap();
        }
        RuleRt::Distinct(t) => {
            t.set_max(max);
            t.enforce_cap();
        }
        RuleRt::Absence(t) => {
            t.set_max(max);
            t.enforce_cap();
        }
        RuleRt::State(t) => {
            t.set_max(max);
            t.enforce_cap();
        }
        RuleRt::Off | RuleRt::Single | RuleRt::Metric(_) => {}
    }
}
