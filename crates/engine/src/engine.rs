//! The [`Engine`]: runs a [`Ruleset`] over a stream of events on event time.
//!
//! Arriving events go through the lateness buffer ([`crate::reorder`]);
//! released events (in time order) update the derived metrics and are handed,
//! by event-name dispatch, only to the rules that can match them. Timers —
//! resolve and absence deadlines, metric ticks — run interleaved with the
//! released events in time order, so the verdicts of one call come out in
//! event-time order and replaying a file gives the same verdicts as watching
//! it live.
//!
//! The engine is pure: no IO, no threads, no clock. `advance_to(now)` is how
//! the caller says wall time moved while nothing arrived; `flush()` is the
//! end of a replay. It does not dedup, notify or remember alerts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;
use secmon_core::{Event, FieldPath, Fields, Str, Timestamp, Value};

use crate::config::EngineConfig;
use crate::detector::NONE;
use crate::detector::absence::AbsenceState;
use crate::detector::distinct::DistinctState;
use crate::detector::metric::{MetricState, Transition};
use crate::detector::state::StateState;
use crate::detector::threshold::{ThresholdState, weight_of};
use crate::groups::{GroupTable, KEY_SEP};
use crate::metric_expr::MetricExpr;
use crate::metrics::{MetricSample, Store};
use crate::reorder::Reorder;
use crate::rule::{Detector, Ruleset};
use crate::verdict::{Fire, Resolve, Verdict};

mod carry;
pub use carry::{Adoption, Carried};

/// Counters for one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Events that matched the condition and had every group_by field.
    pub matched: u64,
    pub fired: u64,
    pub resolved: u64,
    /// Matching events lacking a group_by field (not counted as matched).
    pub ungrouped: u64,
    pub groups_live: u64,
    /// Groups dropped by the max_groups cap (idle sweeps are not counted).
    pub groups_evicted: u64,
}

/// Counters for the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events_in: u64,
    /// Arrived older than the watermark; not seen by detectors or metrics.
    pub late_events: u64,
    /// Released to detectors and metrics.
    pub released: u64,
    /// Waiting in the lateness buffer.
    pub buffered: u64,
    /// Per rule, in ruleset order.
    pub rules: Vec<RuleStats>,
}

/// Per-rule runtime state.
#[derive(Debug)]
enum RuleRt {
    Off,
    Single,
    Threshold(GroupTable<ThresholdState>),
    Distinct(GroupTable<DistinctState>),
    Absence(GroupTable<AbsenceState>),
    State(GroupTable<StateState>),
    Metric(MetricState),
}

/// A resolve or absence deadline. The heap holds at most one live entry per
/// group; entries made stale by newer events are re-checked when popped
/// (re-pushed at the group's current deadline, or dropped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: i64,
    rule: u32,
    key: Str,
}

/// Event name → indices of the rules (or metrics) that can match it, each list
/// already merged with the rules that match any name, in index order.
#[derive(Debug, Default)]
struct Dispatch {
    by_name: HashMap<Str, Box<[u32]>, FxBuildHasher>,
    /// The same entries when there are few: comparing a handful of names
    /// (most differ in length) is cheaper than hashing the event's name.
    few: Option<Vec<NameRules>>,
    always: Box<[u32]>,
}

/// An event name and the rules (or metrics) it is dispatched to.
type NameRules = (Box<str>, Box<[u32]>);

/// Most names [`Dispatch`] looks up by comparison rather than hashing.
const FEW_NAMES: usize = 8;

impl Dispatch {
    fn build<'a>(conds: impl Iterator<Item = (usize, Option<Vec<Str>>)> + 'a) -> Dispatch {
        let mut named: Vec<(usize, Vec<Str>)> = Vec::new();
        let mut always = Vec::new();
        for (i, names) in conds {
            match names {
                Some(n) => named.push((i, n)),
                None => always.push(i as u32),
            }
        }
        let mut by_name: HashMap<Str, Vec<u32>, FxBuildHasher> =
            HashMap::with_hasher(FxBuildHasher);
        for (i, names) in &named {
            for n in names {
                let v = by_name.entry(n.clone()).or_insert_with(|| always.clone());
                if !v.contains(&(*i as u32)) {
                    v.push(*i as u32);
                }
            }
        }
        let by_name: HashMap<Str, Box<[u32]>, FxBuildHasher> = by_name
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                (k, v.into_boxed_slice())
            })
            .collect();
        let few = (by_name.len() <= FEW_NAMES).then(|| {
            by_name
                .iter()
                .map(|(k, v)| (Box::from(k.as_str()), v.clone()))
                .collect()
        });
        Dispatch {
            by_name,
            few,
            always: always.into_boxed_slice(),
        }
    }

    #[inline]
    fn get(&self, name: Option<&str>) -> &[u32] {
        let Some(n) = name else {
            return &self.always;
        };
        let found = match &self.few {
            Some(few) => few
                .iter()
                .find(|(k, _)| k.len() == n.len() && **k == *n)
                .map(|(_, v)| v),
            None => self.by_name.get(n),
        };
        found.map_or(&self.always, |v| v)
    }
}

/// The rule engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    rs: Arc<Ruleset>,
    cfg: EngineConfig,
    rules: Vec<RuleRt>,
    /// Each rule's detector window in ms (precomputed: the idle sweep reads it per call).
    windows: Vec<i64>,
    stats: Vec<RuleStats>,
    dispatch: Dispatch,
    metric_dispatch: Dispatch,
    stores: Vec<Store>,
    buffer: Reorder,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Metric rule indices; ticks run only when there is one.
    metric_rules: Vec<usize>,
    /// Next metric tick (a multiple of eval_interval), once time started.
    next_tick: Option<i64>,
    /// The last tick was evaluated with every observation outside every
    /// window: from then on, until new data, every tick gives the same result.
    quiet_evaluated: bool,
    /// Longest metric window, rounded up to buckets, plus one bucket of margin.
    skip_horizon: i64,
    /// Time of the newest metric observation.
    last_metric_data: Option<i64>,
    clock_started: bool,
    /// Newest event time accepted (not late).
    max_time: Option<i64>,
    /// Newest time released or reached by a timer; "now" for snapshots.
    latest: i64,
    events_in: u64,
    late_events: u64,
    released: u64,
    /// Scratch for group keys, reused so a lookup allocates nothing.
    key: String,
    /// Per rule: whether its condition is only the event-name test that
    /// dispatch already made (see [`Condition::is_name_test`]), so applying
    /// the rule skips evaluating it.
    ///
    /// [`Condition::is_name_test`]: crate::Condition::is_name_test
    name_only: Vec<bool>,
    /// Per rule: the first rule with the same `group_by` list. Rules that
    /// share one (every sshd rule groups by `fields.ip`) reuse the key built
    /// for the event instead of building it again.
    key_class: Vec<u32>,
    /// Which key class `key` holds for the event being released
    /// ([`NO_KEY`]: none yet), and whether every group_by field was there.
    key_built: u32,
    key_ok: bool,
    /// Per threshold rule: the first rule weighing events by the same
    /// field; its weight, once read for the event being released, is
    /// reused ([`NO_KEY`] in `weight_built`: not read yet).
    weight_class: Vec<u32>,
    weight_built: u32,
    weight: u32,
    /// Whether fires carry the triggering event as evidence (see
    /// [`Engine::set_evidence`]).
    evidence: bool,
    /// Field buffers of released events, handed back to the caller (see
    /// [`Engine::recycle_fields`]); `None` when not asked for.
    spent: Option<Vec<Fields>>,
}

/// `key_built` before any key was built for the current event.
const NO_KEY: u32 = u32::MAX;

/// Most spent field buffers kept for a caller that does not take them.
const SPENT_MAX: usize = 1 << 16;

/// `ceil(t / step) * step`.
fn ceil_to(t: i64, step: i64) -> i64 {
    let f = t.div_euclid(step).saturating_mul(step);
    if f == t { t } else { f.saturating_add(step) }
}

impl Engine {
    pub fn new(ruleset: Arc<Ruleset>, cfg: EngineConfig) -> Engine {
        // Normalize rather than panic: a zero step would never advance.
        let mut cfg = cfg;
        if cfg.eval_interval.as_millis() <= 0 {
            cfg.eval_interval = EngineConfig::default().eval_interval;
        }
        cfg.max_groups = cfg.max_groups.max(1);
        let step = cfg.eval_interval.as_millis();
        let rules: Vec<RuleRt> = ruleset
            .rules()
            .iter()
            .map(|r| {
                if !r.enabled() {
                    return RuleRt::Off;
                }
                match r.detector() {
                    Detector::Single => RuleRt::Single,
                    Detector::Threshold { .. } => {
                        RuleRt::Threshold(GroupTable::new(cfg.max_groups))
                    }
                    Detector::Distinct { .. } => RuleRt::Distinct(GroupTable::new(cfg.max_groups)),
                    Detector::Absence { .. } => RuleRt::Absence(GroupTable::new(cfg.max_groups)),
                    Detector::State { .. } => RuleRt::State(GroupTable::new(cfg.max_groups)),
                    Detector::Metric { .. } => RuleRt::Metric(MetricState::default()),
                }
            })
            .collect();
        let dispatch = Dispatch::build(
            ruleset
                .rules()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.enabled() && !matches!(r.detector(), Detector::Metric { .. }))
                .map(|(i, r)| (i, r.condition().event_names())),
        );
        let metric_dispatch = Dispatch::build(
            ruleset
                .metrics()
                .iter()
                .enumerate()
                .map(|(i, m)| (i, m.condition.event_names())),
        );
        let mut spans = vec![0i64; ruleset.metrics().len()];
        let mut metric_rules = Vec::new();
        let mut max_window = 0i64;
        for (i, r) in ruleset.rules().iter().enumerate() {
            if let (true, Detector::Metric { expr, .. }) = (r.enabled(), r.detector()) {
                metric_rules.push(i);
                for c in expr.comparisons() {
                    if let Some(s) = spans.get_mut(c.metric_idx) {
                        *s = (*s).max(c.window.as_millis());
                    }
                    max_window = max_window.max(c.window.as_millis());
                }
            }
        }
        let stores = ruleset
            .metrics()
            .iter()
            .zip(&spans)
            .map(|(m, span)| Store::new(m.name.clone(), m.kind, step, *span))
            .collect();
        let n = rules.len();
        let windows = ruleset
            .rules()
            .iter()
            .map(|r| r.detector().window().as_millis())
            .collect();
        let name_only = ruleset
            .rules()
            .iter()
            .map(|r| r.condition().is_name_test())
            .collect();
        let key_class = ruleset
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let first = ruleset
                    .rules()
                    .iter()
                    .position(|o| o.group_by() == r.group_by());
                first.unwrap_or(i) as u32
            })
            .collect();
        let weight_path = |r: &crate::Rule| match r.detector() {
            Detector::Threshold { weight, .. } => Some(weight.clone()),
            _ => None,
        };
        let weight_class = ruleset
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let w = weight_path(r);
                let first = ruleset
                    .rules()
                    .iter()
                    .position(|o| w.is_some() && weight_path(o) == w);
                first.unwrap_or(i) as u32
            })
            .collect();
        Engine {
            cfg,
            rules,
            windows,
            stats: vec![RuleStats::default(); n],
            dispatch,
            metric_dispatch,
            stores,
            buffer: Reorder::new(cfg.lateness.as_millis()),
            deadlines: BinaryHeap::new(),
            metric_rules,
            next_tick: None,
            quiet_evaluated: false,
            skip_horizon: ceil_to(max_window, step).saturating_add(step),
            last_metric_data: None,
            clock_started: false,
            max_time: None,
            latest: i64::MIN,
            events_in: 0,
            late_events: 0,
            released: 0,
            key: String::with_capacity(64),
            name_only,
            key_class,
            key_built: NO_KEY,
            key_ok: false,
            weight_class,
            weight_built: NO_KEY,
            weight: 1,
            evidence: true,
            spent: None,
            rs: ruleset,
        }
    }

    pub fn ruleset(&self) -> &Arc<Ruleset> {
        &self.rs
    }

    /// Whether fires carry the triggering event in [`Fire::evidence`]
    /// (default true). A caller that never reads evidence (`replay`
    /// printing alerts) turns it off, saving a copy of the event per fire.
    pub fn set_evidence(&mut self, keep: bool) {
        self.evidence = keep;
    }

    /// From now on, keeps the field buffers of released events for
    /// [`Engine::take_spent`] instead of freeing them. Events are usually
    /// built on another thread (the parser's); handing their buffers back
    /// for reuse spares both threads an allocator round trip, and the
    /// engine's the cost of freeing memory another thread allocated.
    pub fn recycle_fields(&mut self) {
        self.spent.get_or_insert_with(Vec::new);
    }

    /// Moves the field buffers kept since the last call into `out` (their
    /// contents are stale: clear before reuse).
    pub fn take_spent(&mut self, out: &mut Vec<Fields>) {
        if let Some(s) = &mut self.spent {
            out.append(s);
        }
    }

    /// Current watermark (`Timestamp::MIN` before anything arrived).
    pub fn watermark(&self) -> Timestamp {
        Timestamp(self.buffer.watermark())
    }

    /// Takes one event in arrival order.
    pub fn observe(&mut self, ev: Event, out: &mut Vec<Verdict>) {
        self.events_in += 1;
        let t = ev.time.as_millis();
        if self.buffer.push(ev).is_err() {
            self.late_events += 1;
            return;
        }
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        let w = self.buffer.watermark();
        self.run(w, false, out);
    }

    /// Wall time moved to `now` (live idle tick): the watermark rises to at
    /// least `now − lateness`, releasing events and running due timers.
    pub fn advance_to(&mut self, now: Timestamp, out: &mut Vec<Verdict>) {
        self.buffer.raise(
            now.as_millis()
                .saturating_sub(self.cfg.lateness.as_millis()),
        );
        let w = self.buffer.watermark();
        if !self.clock_started {
            self.start_clock(w);
        }
        self.run(w, false, out);
    }

    /// End of input: releases everything, then runs metric ticks up to
    /// `floor_to(max_time, eval_interval)` and deadlines up to `max_time` —
    /// not beyond, so a replay does not invent a future.
    pub fn flush(&mut self, out: &mut Vec<Verdict>) {
        let bound = match self.max_time {
            Some(m) => m.max(self.buffer.watermark()),
            None => self.buffer.watermark(),
        };
        self.run(bound.saturating_add(1), true, out);
        self.buffer.raise(bound);
    }

    pub fn stats(&self) -> EngineStats {
        let mut rules = self.stats.clone();
        for (s, rt) in rules.iter_mut().zip(&self.rules) {
            let (live, evicted) = match rt {
                RuleRt::Threshold(t) => (t.len(), t.evicted),
                RuleRt::Distinct(t) => (t.len(), t.evicted),
                RuleRt::Absence(t) => (t.len(), t.evicted),
                RuleRt::State(t) => (t.len(), t.evicted),
                _ => (0, 0),
            };
            s.groups_live = live as u64;
            s.groups_evicted = evicted;
        }
        EngineStats {
            events_in: self.events_in,
            late_events: self.late_events,
            released: self.released,
            buffered: self.buffer.len() as u64,
            rules,
        }
    }

    pub fn metrics_snapshot(&self) -> Vec<MetricSample> {
        self.stores.iter().map(|s| s.sample(self.latest)).collect()
    }

    /// Bytes of one threshold group entry in its table (key, last-seen time,
    /// state), excluding the index (a 4-byte slot plus a control byte per
    /// bucket) and spilled windows.
    pub fn threshold_group_bytes() -> usize {
        GroupTable::<ThresholdState>::entry_size()
    }

    /// Same for distinct and absence groups.
    pub fn distinct_group_bytes() -> usize {
        GroupTable::<DistinctState>::entry_size()
    }
    pub fn absence_group_bytes() -> usize {
        GroupTable::<AbsenceState>::entry_size()
    }

    /// Releases events (all of them when `all`, else those `<= watermark`)
    /// and runs timers `< bound`, all interleaved in time order. At equal
    /// times events go first: an event at a deadline cancels it, and an
    /// event at a tick is inside that tick's window.
    fn run(&mut self, bound: i64, all: bool, out: &mut Vec<Verdict>) {
        let w = self.buffer.watermark();
        loop {
            let ev_t = self.buffer.front_time().filter(|&t| all || t <= w);
            let limit = ev_t.unwrap_or(bound);
            self.skip_idle_ticks(limit);
            let dl = self.deadlines.peek().map(|d| d.0.at);
            let tick = if self.metric_rules.is_empty() {
                None
            } else {
                self.next_tick
            };
            let timer = match (dl, tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match timer {
                Some(tm) if tm < limit => {
                    if dl == Some(tm) {
                        self.pop_deadline(out);
                    } else {
                        self.tick(tm, out);
                    }
                }
                _ => match ev_t {
                    Some(_) => {
                        if let Some(ev) = self.buffer.pop_front() {
                            self.release(ev, out);
                        }
                    }
                    None => break,
                },
            }
        }
        self.latest = self.latest.max(w.min(bound));
        self.sweep(w);
    }

    /// Global absence rules start their silence clock at the first time the
    /// engine knows (first released event, or first advance_to).
    fn start_clock(&mut self, t: i64) {
        if t == i64::MIN {
            return;
        }
        self.clock_started = true;
        for (i, r) in self.rs.rules().iter().enumerate() {
            if let (RuleRt::Absence(table), Detector::Absence { window }) =
                (&mut self.rules[i], r.detector())
                && r.group_by().is_empty()
            {
                let (_, prev) = table.touch("", t, AbsenceState::default);
                if prev.is_none() {
                    self.deadlines.push(Reverse(Deadline {
                        at: t.saturating_add(window.as_millis()),
                        rule: i as u32,
                        key: Str::default(),
                    }));
                }
            }
        }
    }

    /// Jumps the metric tick over stretches where nothing can change: the
    /// last tick already saw every window empty (so windowed functions stay
    /// "no data" and bare values stay as they are until new data) and every
    /// metric rule is settled (idle or firing, not part-way through a hold).
    /// The verdicts are the same as ticking through; a replay with a
    /// year-long gap does not evaluate millions of ticks.
    fn skip_idle_ticks(&mut self, limit: i64) {
        let Some(next) = self.next_tick else { return };
        if next >= limit || !self.quiet_evaluated || self.metric_rules.is_empty() {
            return;
        }
        let settled = self.metric_rules.iter().all(|&i| match &self.rules[i] {
            RuleRt::Metric(s) => s.settled(),
            _ => true,
        });
        if settled {
            self.next_tick = Some(next.max(ceil_to(limit, self.cfg.eval_interval.as_millis())));
        }
    }

    fn group_values(&self, rule: usize, key: &str) -> Vec<(FieldPath, Value)> {
        let gb = self.rs.rules()[rule].group_by();
        if gb.is_empty() {
            return Vec::new();
        }
        gb.iter()
            .cloned()
            .zip(key.split(KEY_SEP).map(Value::from))
            .collect()
    }

    fn release(&mut self, ev: Event, out: &mut Vec<Verdict>) {
        self.released += 1;
        let t = ev.time.as_millis();
        self.latest = self.latest.max(t);
        if !self.clock_started {
            self.start_clock(t);
        }
        if self.next_tick.is_none() {
            self.next_tick = Some(ceil_to(t, self.cfg.eval_interval.as_millis()));
        }
        let name = ev.name();
        // No metrics (the usual case): no lookup at all.
        let metrics: &[u32] = if self.stores.is_empty() {
            &[]
        } else {
            self.metric_dispatch.get(name)
        };
        for &mi in metrics {
            let m = &self.rs.metrics()[mi as usize];
            if !m.condition.matches(&ev) {
                continue;
            }
            let v = match (&m.field, m.kind) {
                (_, crate::config::MetricKind::UpDown) => m.step(&ev),
                (Some(f), crate::config::MetricKind::Counter) => {
                    ev.get(f.as_str()).and_then(Value::as_f64).unwrap_or(1.0)
                }
                (None, _) => 1.0,
                (Some(f), _) => match ev.get(f.as_str()).and_then(Value::as_f64) {
                    Some(v) => v,
                    None => continue,
                },
            };
            self.stores[mi as usize].record(t, v);
            self.last_metric_data = Some(t);
            self.quiet_evaluated = false;
        }
        // Taken out for the loop so `apply` can borrow the engine mutably.
        let dispatch = std::mem::take(&mut self.dispatch);
        self.key_built = NO_KEY;
        self.weight_built = NO_KEY;
        for &ri in dispatch.get(name) {
            self.apply(ri as usize, &ev, t, out);
        }
        self.dispatch = dispatch;
        if let Some(spent) = &mut self.spent
            && spent.len() < SPENT_MAX
        {
            spent.push(ev.fields);
        }
    }

    /// Builds the group key into the scratch buffer; false if a field is missing.
    fn build_key(key: &mut String, ev: &Event, group_by: &[FieldPath]) -> bool {
        key.clear();
        for (i, p) in group_by.iter().enumerate() {
            let Some(v) = ev.get(p.as_str()) else {
                return false;
            };
            if i > 0 {
                key.push(KEY_SEP);
            }
            match v {
                Value::Str(s) => key.push_str(s),
                other => key.push_str(&other.to_key()),
            }
        }
        true
    }

    /// Borrows the rule from `self.rs` field-wise rather than through a
    /// cloned `Arc`: two atomic operations per event were a tenth of the
    /// engine's own time on sshd logs.
    fn apply(&mut self, i: usize, ev: &Event, t: i64, out: &mut Vec<Verdict>) {
        let rule = &self.rs.rules()[i];
        if !self.name_only[i] && !rule.condition().matches(ev) {
            return;
        }
        let class = self.key_class[i];
        if class != self.key_built {
            self.key_ok = Self::build_key(&mut self.key, ev, rule.group_by());
            self.key_built = class;
        }
        if !self.key_ok {
            self.stats[i].ungrouped += 1;
            return;
        }
        let mut fire: Option<(f64, Option<f64>)> = None;
        let mut resolve = false;
        let mut push_deadline: Option<i64> = None;
        match (&mut self.rules[i], rule.detector()) {
            (RuleRt::Single, _) => fire = Some((1.0, None)),
            (
                RuleRt::Threshold(table),
                Detector::Threshold {
                    count,
                    window,
                    weight,
                },
            ) => {
                let class = self.weight_class[i];
                if class != self.weight_built {
                    self.weight = weight_of(weight.as_ref().and_then(|f| ev.get(f.as_str())));
                    self.weight_built = class;
                }
                let w = self.weight;
                let win = window.as_millis();
                let (g, prev) = table.touch(&self.key, t, ThresholdState::default);
                // The resolve due before this event (it moves with last-seen).
                let due = prev.map_or(NONE, |p| g.state.resolve_at(p, win));
                if let Some(sum) = g.state.observe(prev.unwrap_or(t), t, w, *count, win) {
                    fire = Some((sum as f64, Some(*count as f64)));
                    if due == NONE {
                        push_deadline = Some(t.saturating_add(win));
                    }
                }
                if fire.is_some() || due != NONE {
                    // Now due at last-seen (t) + window.
                    g.state.set_resolve_pending(true);
                }
                table.enforce_cap();
            }
            (
                RuleRt::Distinct(table),
                Detector::Distinct {
                    field,
                    count,
                    window,
                },
            ) => {
                let Some(v) = ev.get(field.as_str()) else {
                    return;
                };
                let win = window.as_millis();
                let (g, _) = table.touch(&self.key, t, DistinctState::default);
                let fired = match v {
                    Value::Str(s) => g.state.observe(s, t, *count, win),
                    other => g.state.observe(&other.to_key(), t, *count, win),
                };
                if let Some(n) = fired {
                    fire = Some((n as f64, Some(*count as f64)));
                    if g.state.resolve_at == NONE {
                        push_deadline = Some(t.saturating_add(win));
                    }
                }
                if fire.is_some() || g.state.resolve_at != NONE {
                    g.state.resolve_at = t.saturating_add(win);
                }
                table.enforce_cap();
            }
            (RuleRt::Absence(table), Detector::Absence { window }) => {
                let (g, prev) = table.touch(&self.key, t, AbsenceState::default);
                if prev.is_none() {
                    push_deadline = Some(t.saturating_add(window.as_millis()));
                } else if g.state.fired {
                    g.state.fired = false;
                    resolve = true;
                    push_deadline = Some(t.saturating_add(window.as_millis()));
                }
                table.enforce_cap();
            }
            (RuleRt::State(table), Detector::State { when }) => {
                let holds = when.matches(ev);
                let (g, _) = table.touch(&self.key, t, StateState::default);
                if holds && !g.state.firing {
                    g.state.firing = true;
                    fire = Some((1.0, None));
                } else if !holds && g.state.firing {
                    g.state.firing = false;
                    resolve = true;
                }
                table.enforce_cap();
            }
            _ => return,
        }
        self.stats[i].matched += 1;
        if let Some(at) = push_deadline {
            self.deadlines.push(Reverse(Deadline {
                at,
                rule: i as u32,
                key: Str::from(self.key.as_str()),
            }));
        }
        if resolve {
            self.stats[i].resolved += 1;
            out.push(Verdict::Resolve(Resolve {
                rule: i,
                group: self.group_values(i, &self.key),
                at: ev.time,
            }));
        }
        if let Some((value, threshold)) = fire {
            self.stats[i].fired += 1;
            out.push(Verdict::Fire(Fire {
                rule: i,
                group: self.group_values(i, &self.key),
                at: ev.time,
                value,
                threshold,
                evidence: if self.evidence {
                    vec![ev.clone()]
                } else {
                    Vec::new()
                },
            }));
        }
    }

    fn pop_deadline(&mut self, out: &mut Vec<Verdict>) {
        let Some(Reverse(d)) = self.deadlines.pop() else {
            return;
        };
        let i = d.rule as usize;
        self.latest = self.latest.max(d.at);
        let window = self.windows[i];
        // Some(true): emit resolve; Some(false): emit absence fire; None: nothing.
        let mut emit: Option<bool> = None;
        let mut repush: Option<i64> = None;
        match &mut self.rules[i] {
            RuleRt::Threshold(table) => {
                if let Some(g) = table.get_mut(&d.key) {
                    let ra = g.state.resolve_at(g.last_seen, window);
                    if ra == d.at {
                        g.state.set_resolve_pending(false);
                        emit = Some(true);
                    } else if ra != NONE && ra > d.at {
                        repush = Some(ra);
                    }
                }
            }
            RuleRt::Distinct(table) => {
                if let Some(g) = table.get_mut(&d.key) {
                    let ra = g.state.resolve_at;
                    if ra == d.at {
                        g.state.resolve_at = NONE;
                        emit = Some(true);
                    } else if ra != NONE && ra > d.at {
                        repush = Some(ra);
                    }
                }
            }
            RuleRt::Absence(table) => {
                if let Some(g) = table.get_mut(&d.key)
                    && !g.state.fired
                {
                    let due = g.last_seen.saturating_add(window);
                    if due == d.at {
                        g.state.fired = true;
                        emit = Some(false);
                    } else if due > d.at {
                        repush = Some(due);
                    }
                }
            }
            _ => {}
        }
        if let Some(at) = repush {
            self.deadlines.push(Reverse(Deadline { at, ..d }));
            return;
        }
        match emit {
            Some(true) => {
                self.stats[i].resolved += 1;
                out.push(Verdict::Resolve(Resolve {
                    rule: i,
                    group: self.group_values(i, &d.key),
                    at: Timestamp(d.at),
                }));
            }
            Some(false) => {
                self.stats[i].fired += 1;
                out.push(Verdict::Fire(Fire {
                    rule: i,
                    group: self.group_values(i, &d.key),
                    at: Timestamp(d.at),
                    value: window as f64 / 1000.0,
                    threshold: None,
                    evidence: Vec::new(),
                }));
            }
            None => {}
        }
    }

    fn tick(&mut self, t: i64, out: &mut Vec<Verdict>) {
        self.next_tick = Some(t.saturating_add(self.cfg.eval_interval.as_millis()));
        self.latest = self.latest.max(t);
        for k in 0..self.metric_rules.len() {
            let i = self.metric_rules[k];
            let Detector::Metric { expr, hold } = self.rs.rules()[i].detector() else {
                continue;
            };
            let result = eval(expr, &self.stores, t);
            let RuleRt::Metric(state) = &mut self.rules[i] else {
                continue;
            };
            match state.tick(t, result.is_some(), hold.as_millis()) {
                Transition::Fire => {
                    let (value, threshold) = result.unwrap_or((0.0, 0.0));
                    self.stats[i].fired += 1;
                    out.push(Verdict::Fire(Fire {
                        rule: i,
                        group: Vec::new(),
                        at: Timestamp(t),
                        value,
                        threshold: Some(threshold),
                        evidence: Vec::new(),
                    }));
                }
                Transition::Resolve => {
                    self.stats[i].resolved += 1;
                    out.push(Verdict::Resolve(Resolve {
                        rule: i,
                        group: Vec::new(),
                        at: Timestamp(t),
                    }));
                }
                Transition::None => {}
            }
        }
        self.quiet_evaluated = self
            .last_metric_data
            .is_none_or(|d| d <= t.saturating_sub(self.skip_horizon));
    }

    /// Amortized idle sweep of every group table.
    fn sweep(&mut self, w: i64) {
        if w == i64::MIN {
            return;
        }
        for (rt, &win) in self.rules.iter_mut().zip(&self.windows) {
            match rt {
                RuleRt::Threshold(t) => {
                    t.maybe_sweep(w, win, |g| g.state.resolve_at(g.last_seen, win) != NONE)
                }
                RuleRt::Distinct(t) => t.maybe_sweep(w, win, |g| g.state.resolve_at != NONE),
                // Absence and state groups are the state being watched; only
                // the cap bounds them.
                _ => {}
            }
        }
    }
}

/// Evaluates a metric expression at tick `t`: `Some((lhs, threshold))` of the
/// first satisfied comparison when true.
fn eval(e: &MetricExpr, stores: &[Store], t: i64) -> Option<(f64, f64)> {
    match e {
        MetricExpr::Cmp(c) => {
            let v = stores
                .get(c.metric_idx)?
                .eval(c.func, c.window.as_millis(), t)?;
            c.op.holds(v, c.threshold).then_some((v, c.threshold))
        }
        MetricExpr::Or(xs) => xs.iter().find_map(|x| eval(x, stores, t)),
        MetricExpr::And(xs) => {
            let mut first = None;
            for x in xs {
                let r = eval(x, stores, t)?;
                first.get_or_insert(r);
            }
            first
        }
    }
}
