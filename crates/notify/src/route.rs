//! Routing, batching and rate limiting.
//!
//! [`Router`] maps an alert to `(route index, receiver)` pairs: routes are
//! tried in order and the first match wins unless it sets `continue`.
//! [`Batcher`] groups alerts per (route, receiver, `group_by` values): a new
//! group waits `group_wait` before its first message, later changes wait until
//! `group_interval` after the previous message, and still-firing alerts are
//! repeated every `repeat_interval`. Resolved alerts go out as resolved
//! messages to receivers that take them (`send_resolved`). Each receiver has a
//! token bucket; messages over the limit are dropped and counted, and the count
//! rides on the receiver's next message as `suppressed` ("+N more").
//! Routes with `digest` feed the [`Digest`] instead.
//!
//! The batcher is called after every group commit of the engine thread (so a
//! `group_wait: 0s` alert is in the outbox within one engine cycle), with
//! every alert that ever fired still tracked for `repeat_interval`. Finding
//! what is due therefore must not cost a walk over all groups: each group
//! with something scheduled sits in an ordered index under the earliest time
//! it may be due (`min(next flush, earliest repeat)`), and
//! [`Batcher::flush_due`] and [`Batcher::next_wakeup`] only look at the front
//! of that index.
//!
//! Durability: an alert waiting in a batch exists only here until its
//! message is written to the outbox, so a `kill -9` during `group_wait`
//! would lose it. The batcher therefore reports what it owes:
//! [`Batcher::take_changes`] lists the alerts that became owed (new, or
//! changed status, and not flushed yet) and those no longer owed (their
//! message was made, or they left the batch) since the last call. The
//! caller writes them to the store ([`crate::Outbox::save_batch_changes`])
//! in the transaction that writes the outbox rows, so the store always
//! holds exactly what is owed. At start, [`Batcher::restore`] takes those
//! alerts back (they go out when their batch was due, never before the
//! restart) together with the alerts still firing, which are known to have
//! been told (repeats and resolved messages carry on as if secmon had
//! never stopped, and no one is told twice). An alert flushed in the cycle
//! that pushed it (`group_wait: 0s`) costs no store write at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use secmon_core::Timestamp;

use crate::Result;
use crate::config::{MatchConfig, NotifyConfig, RateLimitConfig, RouteConfig};
use crate::digest::Digest;
use crate::model::{AlertStatus, AlertView, Message, MessageKind, time_ordered_key};

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

/// Whether `m` matches `a` (all given conditions).
pub fn matches(m: &MatchConfig, a: &AlertView) -> bool {
    if let Some(s) = &m.severity
        && !s.contains(&a.severity)
    {
        return false;
    }
    if let Some(min) = m.min_severity
        && a.severity < min
    {
        return false;
    }
    if let Some(p) = &m.priority {
        match a.priority {
            Some(ap) if p.contains(&ap) => {}
            _ => return false,
        }
    }
    if let Some(r) = &m.rule
        && !r.iter().any(|r| *r == a.rule || *r == a.rule_name)
    {
        return false;
    }
    if let Some(wanted) = &m.actions
        && !wanted.iter().any(|w| a.actions.contains(w))
    {
        return false;
    }
    m.labels
        .iter()
        .all(|(k, v)| a.get(k).as_deref() == Some(v.as_str()))
}

impl Router {
    pub fn new(cfg: &NotifyConfig) -> Router {
        Router {
            routes: cfg.routes.clone(),
        }
    }

    /// `(route index, receiver)` for every receiver the alert goes to, in
    /// route order; a receiver reached by two routes appears twice.
    pub fn route(&self, a: &AlertView) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if matches(&r.matcher, a) {
                out.extend(r.receivers.iter().map(|name| (i, name.clone())));
                if !r.continue_ {
                    break;
                }
            }
        }
        out
    }

    pub fn routes(&self) -> &[RouteConfig] {
        &self.routes
    }
}

/// A token bucket: `per_minute` tokens a minute, `burst` at most.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_ms: f64,
    burst: f64,
    tokens: f64,
    last: Option<Timestamp>,
}

impl TokenBucket {
    pub fn new(cfg: RateLimitConfig) -> TokenBucket {
        let burst = cfg.burst.max(1) as f64;
        TokenBucket {
            per_ms: cfg.per_minute as f64 / 60_000.0,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn try_take(&mut self, now: Timestamp) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.since(last).as_millis().max(0) as f64;
            self.tokens = (self.tokens + elapsed * self.per_ms).min(self.burst);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct ReceiverState {
    send_resolved: bool,
    one_per_message: bool,
    exempt_resolved: bool,
    bucket: TokenBucket,
    dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    route: usize,
    receiver: String,
    values: Vec<String>,
}

#[derive(Debug)]
struct Tracked {
    alert: AlertView,
    /// When and as what it was last notified.
    notified: Option<(Timestamp, AlertStatus)>,
    dirty: bool,
    /// The store holds it as owed (see [`Batcher::take_changes`]).
    journaled: bool,
}

/// A change of what the batcher owes, for the store (see
/// [`Batcher::take_changes`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchChange {
    /// `alert` waits in a batch of (`route`, `receiver`) that is due at
    /// `due`: store it (replacing an earlier version).
    Owed {
        route: usize,
        receiver: String,
        alert: Box<AlertView>,
        due: Timestamp,
    },
    /// Nothing is owed any more for this alert on (`route`, `receiver`):
    /// its message was made (or dropped by the rate limit), or it left.
    Settled {
        route: usize,
        receiver: String,
        fingerprint: String,
    },
}

/// An owed alert as the store gives it back at start (see
/// [`Batcher::restore`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OwedAlert {
    pub route: usize,
    pub receiver: String,
    pub alert: AlertView,
    pub due: Timestamp,
}

/// What [`Batcher::restore`] took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// (alert, route receiver) pairs still owing a message.
    pub owed: usize,
    /// (alert, route receiver) pairs of firing alerts already told.
    pub told: usize,
}

#[derive(Debug, Default)]
struct Group {
    alerts: BTreeMap<String, Tracked>,
    next_flush: Option<Timestamp>,
    last_flush: Option<Timestamp>,
    /// No later than the earliest repeat of a firing, notified alert (exact
    /// after each flush of the group; may be early after a push removed or
    /// resolved an alert, which only costs a flush that finds nothing).
    repeat_at: Option<Timestamp>,
    /// The time this group is filed under in [`Batcher::schedule`].
    scheduled: Option<Timestamp>,
}

impl Group {
    fn due_at(&self) -> Option<Timestamp> {
        match (self.next_flush, self.repeat_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Files `group` under its current due time in `schedule` (and nowhere
/// else).
fn reschedule(schedule: &mut BTreeSet<(Timestamp, GroupKey)>, key: &GroupKey, group: &mut Group) {
    let due = group.due_at();
    if due == group.scheduled {
        return;
    }
    if let Some(old) = group.scheduled.take() {
        schedule.remove(&(old, key.clone()));
    }
    if let Some(t) = due {
        schedule.insert((t, key.clone()));
    }
    group.scheduled = due;
}

/// Routing + grouping + rate limiting + digests: push alerts in, take
/// messages out.
#[derive(Debug)]
pub struct Batcher {
    router: Router,
    receivers: BTreeMap<String, ReceiverState>,
    groups: BTreeMap<GroupKey, Group>,
    /// (due time, group) of every group with a flush or repeat ahead.
    schedule: BTreeSet<(Timestamp, GroupKey)>,
    digest: Digest,
    /// Alerts that may have become owed since [`Batcher::take_changes`].
    touched: Vec<(GroupKey, String)>,
    /// Journaled alerts no longer owed since [`Batcher::take_changes`].
    settled: Vec<(GroupKey, String)>,
}

impl Batcher {
    pub fn new(cfg: &NotifyConfig, now: Timestamp) -> Result<Batcher> {
        cfg.validate()?;
        let receivers = cfg
            .receivers
            .iter()
            .map(|r| {
                let kind = r.kind();
                (
                    r.name().to_string(),
                    ReceiverState {
                        send_resolved: r.send_resolved(),
                        one_per_message: r.one_alert_per_message(),
                        exempt_resolved: kind == "pagerduty" || kind == "alertmanager",
                        bucket: TokenBucket::new(r.common().rate_limit.unwrap_or(cfg.rate_limit)),
                        dropped: 0,
                    },
                )
            })
            .collect();
        Ok(Batcher {
            router: Router::new(cfg),
            receivers,
            groups: BTreeMap::new(),
            schedule: BTreeSet::new(),
            digest: Digest::new(&cfg.digest, now)?,
            touched: Vec::new(),
            settled: Vec::new(),
        })
    }

    /// The digest collector (snapshot it with [`crate::Outbox::save_digest`]
    /// after each flush so a restart keeps the day's collection).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn digest_mut(&mut self) -> &mut Digest {
        &mut self.digest
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Takes in a new or updated alert (firing or resolved).
    pub fn push(&mut self, alert: &AlertView, now: Timestamp) {
        for (ri, receiver) in self.router.route(alert) {
            let route = &self.router.routes[ri];
            if let Some(period) = route.digest {
                self.digest.push(&receiver, period, alert, now);
                continue;
            }
            if let Some(key) = self.group_key(ri, receiver, alert) {
                self.track(key, alert.clone(), now, now);
            }
        }
    }

    /// The batch `alert` joins on route `ri` to `receiver` (`None` for an
    /// unknown receiver).
    fn group_key(&self, ri: usize, receiver: String, alert: &AlertView) -> Option<GroupKey> {
        let rs = self.receivers.get(&receiver)?;
        let route = &self.router.routes[ri];
        let mut values: Vec<String> = route
            .group_by
            .iter()
            .map(|k| alert.get(k).unwrap_or_default())
            .collect();
        if rs.one_per_message {
            values.push(alert.fingerprint.clone());
        }
        Some(GroupKey {
            route: ri,
            receiver,
            values,
        })
    }

    /// [`Batcher::push`] into one batch. A new batch starts at `start` and
    /// is due `group_wait` later (`start` is `now` for a push; a restore
    /// picks it so that the batch is due when it was before the stop).
    fn track(&mut self, key: GroupKey, alert: AlertView, now: Timestamp, start: Timestamp) {
        let route = &self.router.routes[key.route];
        let Some(rs) = self.receivers.get(&key.receiver) else {
            return;
        };
        let resolved = alert.status == AlertStatus::Resolved;
        let fingerprint = alert.fingerprint.clone();
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            next_flush: Some(start.add(route.group_wait)),
            ..Group::default()
        });
        let mut changed = true;
        match group.alerts.get_mut(&fingerprint) {
            Some(t) => {
                let status_changed = t.alert.status != alert.status;
                t.alert = alert;
                if resolved && !rs.send_resolved && t.notified.is_some() {
                    // Already told as firing; this receiver takes no resolved.
                    if let Some(t) = group.alerts.remove(&fingerprint)
                        && t.journaled
                    {
                        self.settled.push((key.clone(), fingerprint.clone()));
                    }
                    changed = false;
                } else if status_changed {
                    t.dirty = true;
                } else {
                    changed = false;
                }
            }
            None => {
                group.alerts.insert(
                    fingerprint.clone(),
                    Tracked {
                        alert,
                        notified: None,
                        dirty: true,
                        journaled: false,
                    },
                );
            }
        }
        if changed && group.next_flush.is_none() {
            let at = match group.last_flush {
                Some(last) => last.add(route.group_interval).max(now),
                None => start.add(route.group_wait),
            };
            group.next_flush = Some(at);
        }
        // Owed past this cycle: the store must learn of it. A batch due
        // now is flushed before the caller's commit (`group_wait: 0s`), so
        // it is not worth a write. (Should the caller's clock step back
        // between push and flush, such an alert is only in memory until
        // its batch goes out, a moment later.)
        if changed && group.next_flush.is_some_and(|t| t > now) {
            self.touched.push((key.clone(), fingerprint));
        }
        if group.alerts.is_empty() && group.next_flush.is_none() {
            if let Some(t) = group.scheduled {
                self.schedule.remove(&(t, key.clone()));
            }
            self.groups.remove(&key);
        } else {
            reschedule(&mut self.schedule, &key, group);
        }
    }

    /// What is owed and what no longer is, since the last call (see the
    /// module header): write it to the store in the transaction that writes
    /// the outbox rows of the same flushes. Settled entries come first, so
    /// applying the list in order leaves the latest state.
    pub fn take_changes(&mut self) -> Vec<BatchChange> {
        let mut out: Vec<BatchChange> = self
            .settled
            .drain(..)
            .map(|(key, fingerprint)| BatchChange::Settled {
                route: key.route,
                receiver: key.receiver,
                fingerprint,
            })
            .collect();
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for (key, fp) in touched {
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            let due = group.next_flush.unwrap_or(Timestamp(0));
            let Some(t) = group.alerts.get_mut(&fp) else {
                continue;
            };
            if !t.dirty {
                continue;
            }
            t.journaled = true;
            out.push(BatchChange::Owed {
                route: key.route,
                receiver: key.receiver,
                alert: Box::new(t.alert.clone()),
                due,
            });
        }
        out
    }

    /// Takes back, at start, what the store says is owed (`owed`, from
    /// [`crate::Outbox::take_owed`]) and the alerts still firing (`firing`,
    /// from the alert store, silenced ones left out), routed with the
    /// current configuration:
    ///
    /// * an owed alert joins its batch again, due when it was due before
    ///   the stop, or now if that has passed (never sooner), and is
    ///   reported by the next [`Batcher::take_changes`] (the caller drops
    ///   the stored rows and writes those back in one transaction);
    /// * a firing alert with nothing owed to a receiver was told: it is
    ///   tracked as notified now, so it repeats after `repeat_interval`,
    ///   its resolve is sent (or not, by `send_resolved`) as usual, and a
    ///   further fire does not notify again.
    ///
    /// Owed entries whose receiver no longer routes the alert are dropped,
    /// as are digest routes (the digest keeps its own collection).
    pub fn restore(
        &mut self,
        owed: Vec<OwedAlert>,
        firing: &[AlertView],
        now: Timestamp,
    ) -> Restored {
        let mut stats = Restored::default();
        // (fingerprint, receiver) → the alert and its (route, due) entries.
        type Entries = (AlertView, Vec<(usize, Timestamp)>);
        let mut owed_by: HashMap<(String, String), Entries> = HashMap::new();
        for o in owed {
            owed_by
                .entry((o.alert.fingerprint.clone(), o.receiver))
                .or_insert_with(|| (o.alert, Vec::new()))
                .1
                .push((o.route, o.due));
        }
        for alert in firing {
            for (ri, receiver) in self.router.route(alert) {
                if self.router.routes[ri].digest.is_some() {
                    continue;
                }
                let owes = owed_by
                    .get(&(alert.fingerprint.clone(), receiver.clone()))
                    .is_some_and(|(_, e)| {
                        self.owing_routes(alert, &receiver, e)
                            .iter()
                            .any(|(r, _)| *r == ri)
                    });
                if owes {
                    continue;
                }
                if let Some(key) = self.group_key(ri, receiver, alert) {
                    stats.told += usize::from(self.told(key, alert, now));
                }
            }
        }
        let mut owed_by: Vec<_> = owed_by.into_iter().collect();
        owed_by.sort_by(|a, b| a.0.cmp(&b.0));
        for ((_, receiver), (alert, entries)) in owed_by {
            for (ri, due) in self.owing_routes(&alert, &receiver, &entries) {
                let Some(key) = self.group_key(ri, receiver.clone(), &alert) else {
                    continue;
                };
                let due = due.max(now);
                // `track` adds group_wait to a new batch's start.
                let start = due.sub(self.router.routes[ri].group_wait);
                let fp = alert.fingerprint.clone();
                self.track(key.clone(), alert.clone(), now, start);
                if let Some(g) = self.groups.get_mut(&key) {
                    // Joining a batch restored earlier: the earliest due wins.
                    if g.next_flush.is_some_and(|t| due < t) {
                        g.next_flush = Some(due);
                        reschedule(&mut self.schedule, &key, g);
                    }
                }
                self.touched.push((key, fp));
                stats.owed += 1;
            }
        }
        stats
    }

    /// The current routes (index, due) on which `alert` owes `receiver` a
    /// message, given the stored `(route, due)` entries: those whose route
    /// still sends it there; if none does (the routes were edited since),
    /// every current route to `receiver`, due at the earliest stored time.
    fn owing_routes(
        &self,
        alert: &AlertView,
        receiver: &str,
        entries: &[(usize, Timestamp)],
    ) -> Vec<(usize, Timestamp)> {
        let current: Vec<usize> = self
            .router
            .route(alert)
            .into_iter()
            .filter(|(ri, r)| r == receiver && self.router.routes[*ri].digest.is_none())
            .map(|(ri, _)| ri)
            .collect();
        let exact: Vec<(usize, Timestamp)> = entries
            .iter()
            .filter(|(ri, _)| current.contains(ri))
            .copied()
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        let Some(due) = entries.iter().map(|(_, d)| *d).min() else {
            return Vec::new();
        };
        current.into_iter().map(|ri| (ri, due)).collect()
    }

    /// Tracks `alert` on the batch at `key` as told (firing) at `now`;
    /// false if that batch already has it.
    fn told(&mut self, key: GroupKey, alert: &AlertView, now: Timestamp) -> bool {
        let repeat = self.router.routes[key.route].repeat_interval;
        let group = self.groups.entry(key.clone()).or_default();
        if group.alerts.contains_key(&alert.fingerprint) {
            return false;
        }
        group.alerts.insert(
            alert.fingerprint.clone(),
            Tracked {
                alert: alert.clone(),
                notified: Some((now, AlertStatus::Firing)),
                dirty: false,
                journaled: false,
            },
        );
        let at = now.add(repeat);
        group.repeat_at = Some(group.repeat_at.map_or(at, |r| r.min(at)));
        reschedule(&mut self.schedule, &key, group);
        true
    }

    /// The earliest time something may become due (for the caller's sleep).
    pub fn next_wakeup(&self) -> Timestamp {
        let t = self.digest.next_due();
        match self.schedule.first() {
            Some((g, _)) => t.min(*g),
            None => t,
        }
    }

    /// Messages due at `now`: grouped alert messages (rate limited) and
    /// digests.
    pub fn flush_due(&mut self, now: Timestamp) -> Vec<Message> {
        let mut out = self.flush_groups_due(now);
        out.extend(self.digest.due(now));
        out
    }

    /// Every batch still waiting for its `group_wait` / `group_interval`,
    /// flushed now (rate limited), with the repeats due by `now` and without
    /// digests: what a shutdown or the end of a replay must not keep only in
    /// memory. Repeats after `now` are not pending work (after a restart
    /// they follow from the alerts still firing), so none are invented.
    pub fn flush_waiting(&mut self, now: Timestamp) -> Vec<Message> {
        let waiting: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush.is_some_and(|t| t > now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            if let Some(g) = self.groups.get_mut(&key) {
                g.next_flush = Some(now);
                reschedule(&mut self.schedule, &key, g);
            }
        }
        self.flush_groups_due(now)
    }

    /// Grouped alert messages due at `now` (rate limited), without digests:
    /// the engine thread calls this after every group commit; digests go out
    /// from the once-a-second tick ([`Batcher::flush_due`]).
    pub fn flush_groups_due(&mut self, now: Timestamp) -> Vec<Message> {
        let mut out = Vec::new();
        let routes = &self.router.routes;
        // Groups in key order, as a walk over all of them would meet them.
        let mut due: Vec<GroupKey> = Vec::new();
        while let Some((t, _)) = self.schedule.first() {
            if *t > now {
                break;
            }
            if let Some((_, key)) = self.schedule.pop_first() {
                due.push(key);
            }
        }
        due.sort();
        for key in due {
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            group.scheduled = None;
            let route = &routes[key.route];
            let flush_time = group.next_flush.is_some_and(|t| t <= now);
            let repeat_due = |t: &Tracked| {
                t.alert.status == AlertStatus::Firing
                    && matches!(t.notified, Some((at, _)) if at.add(route.repeat_interval) <= now)
            };
            let send: Vec<String> = group
                .alerts
                .iter()
                .filter(|(_, t)| (flush_time && t.dirty) || repeat_due(t))
                .map(|(fp, _)| fp.clone())
                .collect();
            if flush_time {
                group.next_flush = None;
            }
            if send.is_empty() {
                Self::settle_group(&mut self.schedule, &mut self.groups, key, route);
                continue;
            }
            let mut alerts: Vec<AlertView> = send
                .iter()
                .filter_map(|fp| group.alerts.get(fp).map(|t| t.alert.clone()))
                .collect();
            alerts.sort_by(|a, b| {
                a.fired_at
                    .cmp(&b.fired_at)
                    .then(a.fingerprint.cmp(&b.fingerprint))
            });
            for fp in &send {
                let done = match group.alerts.get_mut(fp) {
                    Some(t) => {
                        t.notified = Some((now, t.alert.status));
                        t.dirty = false;
                        if std::mem::take(&mut t.journaled) {
                            self.settled.push((key.clone(), fp.clone()));
                        }
                        t.alert.status == AlertStatus::Resolved
                    }
                    None => false,
                };
                if done {
                    group.alerts.remove(fp);
                }
            }
            group.last_flush = Some(now);
            let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            let now_ms = now.as_millis().to_string();
            let route_s = key.route.to_string();
            let mut parts: Vec<&str> = vec!["alert", &key.receiver, &route_s, &now_ms];
            parts.extend(key.values.iter().map(String::as_str));
            let states: Vec<String> = alerts
                .iter()
                .map(|a| format!("{}={}", a.fingerprint, a.status.as_str()))
                .collect();
            parts.extend(states.iter().map(String::as_str));
            let idempotency_key = time_ordered_key(now, &parts);
            out.push(Message {
                receiver: key.receiver.clone(),
                idempotency_key,
                alerts,
                status,
                kind: MessageKind::Alert,
                suppressed: 0,
                digest: None,
            });
            Self::settle_group(&mut self.schedule, &mut self.groups, key, route);
        }

        let mut kept = Vec::with_capacity(out.len());
        for mut m in out {
            let Some(rs) = self.receivers.get_mut(&m.receiver) else {
                continue;
            };
            let exempt = rs.exempt_resolved && m.status == AlertStatus::Resolved;
            if exempt || rs.bucket.try_take(now) {
                m.suppressed = std::mem::take(&mut rs.dropped);
                kept.push(m);
            } else {
                rs.dropped += m.alerts.len() as u64;
            }
        }
        kept
    }

    /// After a flush of the group at `key`: its exact earliest repeat, then
    /// either filed again under its next due time or dropped when nothing is
    /// left in it.
    fn settle_group(
        schedule: &mut BTreeSet<(Timestamp, GroupKey)>,
        groups: &mut BTreeMap<GroupKey, Group>,
        key: GroupKey,
        route: &RouteConfig,
    ) {
        let Some(group) = groups.get_mut(&key) else {
            return;
        };
        group.repeat_at = group
            .alerts
            .values()
            .filter(|t| t.alert.status == AlertStatus::Firing)
            .filter_map(|t| t.notified.map(|(at, _)| at.add(route.repeat_interval)))
            .min();
        if group.alerts.is_empty() && group.next_flush.is_none() {
            if let Some(t) = group.scheduled.take() {
                schedule.remove(&(t, key.clone()));
            }
            groups.remove(&key);
        } else {
            reschedule(schedule, &key, group);
        }
    }

    /// Alerts dropped by `receiver`'s rate limit and not yet reported.
    pub fn dropped(&self, receiver: &str) -> u64 {
        self.receivers.get(receiver).map_or(0, |r| r.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::alert;
    use secmon_core::{Dur, Severity};

    fn cfg(v: serde_json::Value) -> NotifyConfig {
        serde_json::from_value(v).unwrap()
    }

    fn receivers() -> serde_json::Value {
        serde_json::json!([
            {"name": "pd", "kind": "pagerduty", "routing_key": "k"},
            {"name": "slack", "kind": "slack", "url": "u"},
            {"name": "mail", "kind": "email", "host": "h", "from": "a@b.c", "to": ["d@e.f"]},
            {"name": "hook", "kind": "webhook", "url": "u"}
        ])
    }

    fn t(s: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + s * 1000)
    }

    fn fp(a: &AlertView, f: &str, ip: &str) -> AlertView {
        let mut a = a.clone();
        a.fingerprint = f.into();
        a.group = vec![("ip".into(), ip.into())];
        a
    }

    #[test]
    fn routes_match_the_actions_a_rule_lists() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [
                {"match": {"actions": ["notify_security", "page"]}, "receivers": ["slack"], "continue": true},
                {"receivers": ["mail"]}
            ]
        }));
        let r = Router::new(&c);
        let mut a = alert();
        assert_eq!(r.route(&a), vec![(1, "mail".to_string())]);
        a.actions = vec!["block_ip".into(), "notify_security".into()];
        assert_eq!(
            r.route(&a),
            vec![(0, "slack".to_string()), (1, "mail".to_string())]
        );
        a.actions = vec!["block_ip".into()];
        assert_eq!(r.route(&a), vec![(1, "mail".to_string())]);
    }

    #[test]
    fn routes_in_order_with_continue() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [
                {"match": {"min_severity": "critical"}, "receivers": ["pd"], "continue": true},
                {"match": {"rule": ["Multiple Failed Logins"], "labels": {"ip": "192.168.1.100"}}, "receivers": ["slack"]},
                {"match": {"priority": ["P2"]}, "receivers": ["hook"]},
                {"receivers": ["mail"]}
            ]
        }));
        let r = Router::new(&c);
        let mut a = alert();
        assert_eq!(r.route(&a), vec![(1, "slack".to_string())]);
        a.severity = Severity::Critical;
        assert_eq!(
            r.route(&a),
            vec![(0, "pd".to_string()), (1, "slack".to_string())]
        );
        a.group = vec![("ip".into(), "10.0.0.1".into())];
        assert_eq!(
            r.route(&a),
            vec![(0, "pd".to_string()), (2, "hook".to_string())]
        );
        a.priority = None;
        a.severity = Severity::Low;
        assert_eq!(r.route(&a), vec![(3, "mail".to_string())]);
    }

    #[test]
    fn group_wait_interval_repeat_and_resolved() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [{"receivers": ["slack", "pd"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}]
        }));
        let mut b = Batcher::new(&c, t(0)).unwrap();
        let a = alert();
        b.push(&fp(&a, "f1", "1.1.1.1"), t(0));
        b.push(&fp(&a, "f2", "2.2.2.2"), t(0));
        assert!(b.flush_due(t(29)).is_empty(), "group_wait");
        assert_eq!(b.next_wakeup(), t(30));
        let m = b.flush_due(t(30));
        let slack: Vec<_> = m.iter().filter(|m| m.receiver == "slack").collect();
        let pd: Vec<_> = m.iter().filter(|m| m.receiver == "pd").collect();
        assert_eq!(slack.len(), 1, "one batched message");
        assert_eq!(slack[0].alerts.len(), 2);
        assert_eq!(pd.len(), 2, "PagerDuty gets one event per alert");
        assert!(pd.iter().all(|m| m.alerts.len() == 1));
        // An update without status change does not notify.
        b.push(&fp(&a, "f1", "1.1.1.1"), t(40));
        assert!(b.flush_due(t(400)).is_empty());
        // A new alert in the group waits for group_interval after the last message.
        b.push(&fp(&a, "f3", "3.3.3.3"), t(60));
        assert!(b.flush_due(t(329)).iter().all(|m| m.receiver != "slack"));
        let m = b.flush_due(t(330));
        let s: Vec<_> = m.iter().filter(|m| m.receiver == "slack").collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].alerts[0].fingerprint, "f3");
        // Resolved goes out as resolved.
        let mut r = fp(&a, "f2", "2.2.2.2");
        r.status = AlertStatus::Resolved;
        b.push(&r, t(700));
        let m = b.flush_due(t(700));
        let s: Vec<_> = m.iter().filter(|m| m.receiver == "slack").collect();
        assert_eq!(s[0].status, AlertStatus::Resolved);
        assert_eq!(s[0].alerts.len(), 1);
        // Repeat: f1 notified at 30s, still firing after 1h.
        assert!(b.flush_due(t(3629)).is_empty());
        let m = b.flush_due(t(3630));
        let s: Vec<_> = m.iter().filter(|m| m.receiver == "slack").collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].alerts
                .iter()
                .map(|a| a.fingerprint.as_str())
                .collect::<Vec<_>>(),
            ["f1"]
        );
        // Keys are unique per message.
        let mut keys: Vec<_> = m.iter().map(|m| m.idempotency_key.clone()).collect();
        keys.dedup();
        assert_eq!(keys.len(), m.len());
    }

    #[test]
    fn only_due_groups_are_visited_and_no_repeats_are_invented() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [{"receivers": ["hook"], "group_wait": "0s", "group_by": ["ip"], "repeat_interval": "1h"}],
            "rate_limit": {"per_minute": 1000000, "burst": 1000000}
        }));
        let mut b = Batcher::new(&c, t(0)).unwrap();
        for i in 0..1000 {
            b.push(
                &fp(
                    &alert(),
                    &format!("f{i}"),
                    &format!("10.0.{}.{}", i / 256, i % 256),
                ),
                t(0),
            );
        }
        assert_eq!(b.flush_groups_due(t(0)).len(), 1000, "one message per ip");
        assert!(b.flush_groups_due(t(1)).is_empty(), "nothing twice");
        assert_eq!(b.next_wakeup(), t(3600), "next is the repeat");
        // A shutdown flushes what waits, not a day of future repeats.
        b.push(&fp(&alert(), "late", "10.9.9.9"), t(2));
        assert_eq!(b.flush_waiting(t(2)).len(), 1);
        assert!(b.flush_waiting(t(3)).is_empty());
        assert_eq!(b.flush_groups_due(t(3600)).len(), 1000, "repeats when due");
    }

    #[test]
    fn email_gets_no_resolved_once_told() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [{"receivers": ["mail"], "group_wait": "0s"}]
        }));
        let mut b = Batcher::new(&c, t(0)).unwrap();
        let a = fp(&alert(), "f1", "1.1.1.1");
        b.push(&a, t(0));
        assert_eq!(b.flush_due(t(0)).len(), 1);
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        b.push(&r, t(10));
        assert!(b.flush_due(t(1000)).is_empty());
        assert!(
            b.flush_due(t(100_000)).is_empty(),
            "no repeats after resolve"
        );
    }

    #[test]
    fn rate_limit_drops_and_reports_plus_n_more() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [{"receivers": ["slack"], "group_wait": "0s", "group_by": ["ip"]}],
            "rate_limit": {"per_minute": 6, "burst": 2}
        }));
        let mut b = Batcher::new(&c, t(0)).unwrap();
        for i in 0..5 {
            b.push(
                &fp(&alert(), &format!("f{i}"), &format!("10.0.0.{i}")),
                t(0),
            );
        }
        let m = b.flush_due(t(0));
        assert_eq!(m.len(), 2, "burst of 2");
        assert_eq!(b.dropped("slack"), 3);
        // 10 s later a token is back: the next message carries "+3 more".
        b.push(&fp(&alert(), "f9", "10.0.0.9"), t(10));
        let m = b.flush_due(t(10));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].suppressed, 3);
        assert_eq!(b.dropped("slack"), 0);
    }

    #[test]
    fn token_bucket_refills() {
        let mut tb = TokenBucket::new(RateLimitConfig {
            per_minute: 60,
            burst: 1,
        });
        assert!(tb.try_take(t(0)));
        assert!(!tb.try_take(t(0)));
        assert!(tb.try_take(t(0).add(Dur::from_secs(1))));
    }

    #[test]
    fn digest_routes_feed_the_digest() {
        let c = cfg(serde_json::json!({
            "receivers": receivers(),
            "routes": [
                {"match": {"rule": ["new_admin_action"]}, "receivers": ["mail"], "digest": "daily"},
                {"receivers": ["slack"]}
            ]
        }));
        let start = Timestamp::parse_rfc3339("2024-01-15T10:00:00Z").unwrap();
        let mut b = Batcher::new(&c, start).unwrap();
        let mut a = alert();
        a.rule = "new_admin_action".into();
        b.push(&a, start);
        assert!(b.flush_due(start.add(Dur::from_mins(60))).is_empty());
        let m = b.flush_due(Timestamp::parse_rfc3339("2024-01-16T09:00:00Z").unwrap());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, MessageKind::Digest);
        assert_eq!(m[0].receiver, "mail");
    }
}
