//! Digests: alerts routed to `digest: daily` are collected and sent once a
//! day at `digest.daily_at` (UTC); `digest: weekly` routes produce a weekly
//! review summary (counts per rule and severity) on `digest.weekly_on` at the
//! same time of day. Time comes in as `now`; nothing here reads the clock.

use std::collections::BTreeMap;

use secmon_core::{Severity, Timestamp};

use crate::Result;
use crate::config::{DigestConfig, Weekday};
use crate::model::{
    AlertStatus, AlertView, DigestCount, DigestPeriod, DigestSummary, Message, MessageKind,
    stable_key,
};

const DAY: i64 = 86_400_000;
/// Alerts listed in full in a daily digest; the counts cover all of them.
pub const MAX_DIGEST_ALERTS: usize = 100;

#[derive(Debug, Default)]
struct Bucket {
    since: Option<Timestamp>,
    /// Full alerts (daily digests only).
    alerts: BTreeMap<String, AlertView>,
    /// fingerprint → (rule, rule name, severity) of every alert counted.
    seen: BTreeMap<String, (String, String, Severity)>,
}

/// One collected alert, as stored by [`crate::Outbox::save_digest`] so that a
/// restart does not lose a day's collection.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry {
    pub receiver: String,
    pub period: DigestPeriod,
    pub fingerprint: String,
    pub rule: String,
    pub rule_name: String,
    pub severity: Severity,
    /// The alert itself for daily digests.
    pub alert: Option<AlertView>,
    pub since: Timestamp,
}

#[derive(Debug)]
pub struct Digest {
    at: i64,
    weekly_on: Weekday,
    buckets: BTreeMap<(String, DigestPeriod), Bucket>,
    next_daily: Timestamp,
    next_weekly: Timestamp,
    started: Timestamp,
    /// Bumped by every change of the collection, so the caller saves the
    /// snapshot only when there is something new to save.
    revision: u64,
}

/// The first `at` (ms after midnight UTC) strictly after `t`.
pub fn next_daily(t: Timestamp, at: i64) -> Timestamp {
    let mut d = t.as_millis().div_euclid(DAY) * DAY + at;
    if d <= t.as_millis() {
        d += DAY;
    }
    Timestamp(d)
}

/// Monday = 0 for the day containing `t` (1970-01-01 was a Thursday).
pub fn weekday(t: Timestamp) -> i64 {
    (t.as_millis().div_euclid(DAY) + 3).rem_euclid(7)
}

/// The first `weekday` at `at` strictly after `t`.
pub fn next_weekly(t: Timestamp, at: i64, on: Weekday) -> Timestamp {
    let mut d = next_daily(t, at);
    while weekday(d) != on.index() {
        d = Timestamp(d.as_millis() + DAY);
    }
    d
}

impl Digest {
    pub fn new(cfg: &DigestConfig, now: Timestamp) -> Result<Digest> {
        let at = DigestConfig::parse_time(&cfg.daily_at)?;
        Ok(Digest {
            at,
            weekly_on: cfg.weekly_on,
            buckets: BTreeMap::new(),
            next_daily: next_daily(now, at),
            next_weekly: next_weekly(now, at, cfg.weekly_on),
            started: now,
            revision: 0,
        })
    }

    /// Collects `alert` for `receiver`'s digest of `period`. Each alert
    /// (fingerprint) counts once per period, however often it is updated.
    pub fn push(
        &mut self,
        receiver: &str,
        period: DigestPeriod,
        alert: &AlertView,
        now: Timestamp,
    ) {
        self.revision += 1;
        let b = self
            .buckets
            .entry((receiver.to_string(), period))
            .or_default();
        b.since.get_or_insert(now);
        b.seen
            .entry(alert.fingerprint.clone())
            .or_insert_with(|| (alert.rule.clone(), alert.rule_name.clone(), alert.severity));
        if period == DigestPeriod::Daily {
            b.alerts.insert(alert.fingerprint.clone(), alert.clone());
        }
    }

    /// Changes with every push and every digest sent: compare it with the
    /// revision last saved to know whether [`crate::Outbox::save_digest`] has
    /// anything to do.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Everything collected and not yet sent.
    pub fn snapshot(&self) -> Vec<DigestEntry> {
        let mut out = Vec::new();
        for ((receiver, period), b) in &self.buckets {
            for (fp, (rule, rule_name, severity)) in &b.seen {
                out.push(DigestEntry {
                    receiver: receiver.clone(),
                    period: *period,
                    fingerprint: fp.clone(),
                    rule: rule.clone(),
                    rule_name: rule_name.clone(),
                    severity: *severity,
                    alert: b.alerts.get(fp).cloned(),
                    since: b.since.unwrap_or(self.started),
                });
            }
        }
        out
    }

    /// Adds back what [`Digest::snapshot`] returned before a restart.
    pub fn restore(&mut self, entries: Vec<DigestEntry>) {
        for e in entries {
            let b = self.buckets.entry((e.receiver, e.period)).or_default();
            b.since = Some(b.since.map_or(e.since, |s| s.min(e.since)));
            b.seen
                .entry(e.fingerprint.clone())
                .or_insert((e.rule, e.rule_name, e.severity));
            if let Some(a) = e.alert {
                b.alerts.entry(e.fingerprint).or_insert(a);
            }
        }
    }

    /// When the next digest is due.
    pub fn next_due(&self) -> Timestamp {
        self.next_daily.min(self.next_weekly)
    }

    /// Digest messages due at `now`: one per receiver with something collected.
    pub fn due(&mut self, now: Timestamp) -> Vec<Message> {
        let mut out = Vec::new();
        for (period, when) in [
            (DigestPeriod::Daily, self.next_daily),
            (DigestPeriod::Weekly, self.next_weekly),
        ] {
            if now < when {
                continue;
            }
            let from_default = match period {
                DigestPeriod::Daily => Timestamp(when.as_millis() - DAY),
                DigestPeriod::Weekly => Timestamp(when.as_millis() - 7 * DAY),
            }
            .max(self.started);
            for ((receiver, p), b) in self.buckets.iter_mut() {
                if *p != period || b.seen.is_empty() {
                    continue;
                }
                let b = std::mem::take(b);
                self.revision += 1;
                out.push(digest_message(receiver, period, b, from_default, when));
            }
            match period {
                DigestPeriod::Daily => self.next_daily = next_daily(now, self.at),
                DigestPeriod::Weekly => {
                    self.next_weekly = next_weekly(now, self.at, self.weekly_on)
                }
            }
        }
        self.buckets.retain(|_, b| !b.seen.is_empty());
        out
    }
}

fn digest_message(
    receiver: &str,
    period: DigestPeriod,
    b: Bucket,
    from: Timestamp,
    to: Timestamp,
) -> Message {
    let mut per: BTreeMap<(String, Severity), (String, u64)> = BTreeMap::new();
    for (rule, rule_name, severity) in b.seen.into_values() {
        per.entry((rule, severity)).or_insert((rule_name, 0)).1 += 1;
    }
    let mut counts: Vec<DigestCount> = per
        .into_iter()
        .map(|((rule, severity), (rule_name, count))| DigestCount {
            rule,
            rule_name,
            severity,
            count,
        })
        .collect();
    counts.sort_by(|a, b| a.rule.cmp(&b.rule).then(b.severity.cmp(&a.severity)));
    let total = counts.iter().map(|c| c.count).sum();
    let mut alerts: Vec<AlertView> = b.alerts.into_values().collect();
    alerts.sort_by(|a, b| {
        a.fired_at
            .cmp(&b.fired_at)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    alerts.truncate(MAX_DIGEST_ALERTS);
    let to_ms = to.as_millis().to_string();
    Message {
        receiver: receiver.to_string(),
        status: if alerts.iter().any(|a| a.status == AlertStatus::Firing) || alerts.is_empty() {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        },
        alerts,
        kind: MessageKind::Digest,
        idempotency_key: stable_key(&["digest", receiver, period.as_str(), &to_ms]),
        suppressed: 0,
        digest: Some(DigestSummary {
            period,
            from: b.since.unwrap_or(from).min(to),
            to,
            counts,
            total,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::alert;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn schedule_is_utc_and_weekday_aware() {
        assert_eq!(weekday(ts("2024-01-15T10:00:00Z")), 0, "a Monday");
        assert_eq!(
            next_daily(ts("2024-01-15T08:00:00Z"), 9 * 3_600_000),
            ts("2024-01-15T09:00:00Z")
        );
        assert_eq!(
            next_daily(ts("2024-01-15T09:00:00Z"), 9 * 3_600_000),
            ts("2024-01-16T09:00:00Z")
        );
        assert_eq!(
            next_weekly(ts("2024-01-15T09:00:00Z"), 9 * 3_600_000, Weekday::Monday),
            ts("2024-01-22T09:00:00Z")
        );
    }

    #[test]
    fn daily_digest_and_weekly_summary_with_manual_clock() {
        let mut d = Digest::new(&DigestConfig::default(), ts("2024-01-15T10:00:00Z")).unwrap();
        let mut a = alert();
        a.rule = "new_admin_action".into();
        a.rule_name = "New admin action".into();
        a.severity = Severity::Medium;
        for i in 0..3 {
            a.fingerprint = format!("fp{i}");
            let now = ts("2024-01-15T12:00:00Z");
            d.push("mail", DigestPeriod::Daily, &a, now);
            d.push("mail", DigestPeriod::Daily, &a, now); // updates count once
            d.push("slack", DigestPeriod::Weekly, &a, now);
        }
        a.severity = Severity::High;
        a.fingerprint = "fp-high".into();
        d.push(
            "slack",
            DigestPeriod::Weekly,
            &a,
            ts("2024-01-16T12:00:00Z"),
        );
        assert!(d.due(ts("2024-01-16T08:59:59Z")).is_empty());
        let m = d.due(ts("2024-01-16T09:00:00Z"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].receiver, "mail");
        assert_eq!(m[0].kind, MessageKind::Digest);
        assert_eq!(m[0].alerts.len(), 3);
        let s = m[0].digest.as_ref().unwrap();
        assert_eq!((s.total, s.counts.len(), s.counts[0].count), (3, 1, 3));
        assert_eq!(s.to, ts("2024-01-16T09:00:00Z"));
        // Sent once a day.
        assert!(d.due(ts("2024-01-16T18:00:00Z")).is_empty());
        assert!(
            d.due(ts("2024-01-17T09:00:00Z")).is_empty(),
            "nothing collected"
        );
        let w = d.due(ts("2024-01-22T09:00:00Z"));
        assert_eq!(w.len(), 1);
        let s = w[0].digest.as_ref().unwrap();
        assert_eq!(s.period, DigestPeriod::Weekly);
        assert!(w[0].alerts.is_empty());
        assert_eq!(
            s.counts
                .iter()
                .map(|c| (c.severity, c.count))
                .collect::<Vec<_>>(),
            vec![(Severity::High, 1), (Severity::Medium, 3)]
        );
        assert_eq!(s.total, 4);
        assert_ne!(w[0].idempotency_key, m[0].idempotency_key);
    }

    #[test]
    fn snapshot_restores_after_restart() {
        let start = ts("2024-01-15T10:00:00Z");
        let mut d = Digest::new(&DigestConfig::default(), start).unwrap();
        d.push("mail", DigestPeriod::Daily, &alert(), start);
        d.push("slack", DigestPeriod::Weekly, &alert(), start);
        let snap = d.snapshot();
        assert_eq!(snap.len(), 2);
        let mut d2 = Digest::new(&DigestConfig::default(), ts("2024-01-15T11:00:00Z")).unwrap();
        d2.restore(snap);
        let m = d2.due(ts("2024-01-16T09:00:00Z"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].alerts, vec![alert()]);
        assert_eq!(m[0].digest.as_ref().unwrap().from, start);
        assert!(
            d2.snapshot()
                .iter()
                .all(|e| e.period == DigestPeriod::Weekly)
        );
    }
}
