//! The response stage of the binary: turns the engine's verdicts into alert
//! lifecycle changes, incidents and automated decisions (via
//! `secmon-respond`), publishes decisions to the enforcing side, and reports
//! everything it did as [`PlanItem`]s. `replay --respond dry-run` prints
//! those items against an in-memory store; `run` executes them against the
//! persistent store in the data directory.
//!
//! It owns no storage itself: the components borrow a [`Store`] that lives in
//! the caller's frame, which keeps the single-writer rule of SQLite visible in
//! the types.

use anyhow::Context;
use serde::Serialize;

use secmon_core::{Dur, Timestamp};
use secmon_engine::{Fire, Resolve, Rule, Ruleset};
use secmon_notify::{
    AlertStatus, AlertView, Batcher, Message, MessageKind, NotifyConfig, Outbox, OutboxItem,
    Restored, RetryTarget, Settlement,
};
use secmon_respond::{
    Alert, AlertBook, AlertChange, Decision, DecisionChange, DecisionOutcome, DecisionPublisher,
    Decisions, ExecPublisher, FireInput, Incident, IncidentChange, Incidents, Matcher, NewSilence,
    RedisPublisher, RespondConfig, RespondError, Scope, Store, TimelineKind,
};

/// A change an operator asks for through the API; see [`Responder::manual`].
#[derive(Debug)]
pub enum ManualOp {
    AddDecision {
        scope: Scope,
        value: String,
        duration: Dur,
        reason: String,
    },
    DeleteDecision {
        id: i64,
    },
    AckIncident {
        id: i64,
    },
    ResolveIncident {
        id: i64,
    },
    NoteIncident {
        id: i64,
        text: String,
    },
    CreateSilence {
        matchers: Vec<Matcher>,
        duration: Dur,
        comment: String,
    },
    ExpireSilence {
        id: i64,
    },
    /// Re-queue one dead letter, or all of them.
    RetryNotifications {
        id: Option<i64>,
    },
}

mod erased {
    /// Serialises anything to JSON without a generic parameter at the call site.
    pub trait Ser {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// One thing the response stage did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanItem {
    Alert {
        change: &'static str,
        silenced: bool,
        alert: Alert,
    },
    Decision {
        change: &'static str,
        decision: Decision,
    },
    Refusal {
        action: String,
        rule: String,
        reason: String,
    },
    Incident {
        change: &'static str,
        incident: Incident,
    },
    Escalation {
        incident_id: i64,
        level: u32,
        receiver: Option<String>,
        next_deadline: Timestamp,
    },
    /// A message written to the durable outbox (delivered by the outbox worker).
    Notification {
        outbox_id: i64,
        receiver: String,
        status: AlertStatus,
        message_kind: MessageKind,
        alerts: Vec<String>,
        idempotency_key: String,
    },
}

pub struct Responder<'s> {
    store: &'s Store,
    cfg: &'s RespondConfig,
    book: AlertBook<'s>,
    decisions: Decisions<'s>,
    incidents: Incidents<'s>,
    publishers: Vec<Box<dyn DecisionPublisher>>,
    /// Routing and batching of alerts into messages; messages go to the
    /// outbox in the same store before anything is sent.
    batcher: Batcher,
    outbox: Outbox<'s>,
    /// Alert fingerprint → its incident, so notifications can be written to
    /// the incident's timeline. Bounded: cleared past `INCIDENT_MEMORY`
    /// entries (older incidents then simply miss later notification entries).
    incident_of: std::collections::HashMap<String, i64>,
    /// Outbox rows written since [`Responder::take_queued`] last asked,
    /// kept only when [`Responder::hand_over_queued`] asked for them: after
    /// the commit, `run` hands them to the delivery worker in memory.
    queued: Option<Vec<OutboxItem>>,
    /// Dead letters were re-queued (the worker finds them by polling).
    requeued: bool,
    /// The digest revision last saved (see [`secmon_notify::digest::Digest::revision`]).
    digest_saved: u64,
}

const INCIDENT_MEMORY: usize = 100_000;

/// The publishers a configuration asks for (Redis, exec hook). Connecting
/// happens here, so an unreachable Redis fails at start, not at the first ban.
pub fn publishers(cfg: &RespondConfig) -> anyhow::Result<Vec<Box<dyn DecisionPublisher>>> {
    let mut out: Vec<Box<dyn DecisionPublisher>> = Vec::new();
    if let Some(r) = &cfg.publish.redis {
        out.push(Box::new(
            RedisPublisher::connect(r).context("connecting the Redis decision publisher")?,
        ));
    }
    if let Some(e) = &cfg.publish.exec {
        out.push(Box::new(
            ExecPublisher::new(e).context("setting up the exec decision hook")?,
        ));
    }
    Ok(out)
}

impl<'s> Responder<'s> {
    pub fn new(
        store: &'s Store,
        cfg: &'s RespondConfig,
        notify: &NotifyConfig,
        publishers: Vec<Box<dyn DecisionPublisher>>,
        now: Timestamp,
    ) -> anyhow::Result<Self> {
        let outbox =
            Outbox::new(store.conn(), notify.outbox.lease).context("opening the outbox")?;
        let mut batcher = Batcher::new(notify, now).context("setting up notification routes")?;
        outbox
            .load_digest(batcher.digest_mut())
            .context("loading digest")?;
        let digest_saved = batcher.digest().revision();
        Ok(Responder {
            store,
            cfg,
            book: AlertBook::new(store),
            decisions: Decisions::open(store, &cfg.allowlist).context("loading decisions")?,
            incidents: Incidents::new(store, &cfg.incidents),
            publishers,
            batcher,
            outbox,
            incident_of: std::collections::HashMap::new(),
            queued: None,
            requeued: false,
            digest_saved,
        })
    }

    /// Publishes every active decision, so the enforcing side is complete
    /// after a restart or an outage of the publisher's target.
    pub fn republish(&mut self, now: Timestamp) -> anyhow::Result<usize> {
        let active = self.decisions.list_active(now);
        for d in &active {
            self.publish(&DecisionChange::Added(d.clone()), now);
        }
        Ok(active.len())
    }

    pub fn on_fire(
        &mut self,
        rule: &Rule,
        fire: &Fire,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        let input = FireInput {
            rule: rule.id().to_string(),
            rule_name: rule.name().to_string(),
            severity: rule.severity(),
            priority: rule.priority(),
            labels: rule.labels().clone(),
            group: fire
                .group
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_key().to_string()))
                .collect(),
            at: fire.at,
            value: fire.value,
            threshold: fire.threshold,
            evidence: fire.evidence.iter().map(|e| e.to_json()).collect(),
        };
        let change = self.book.fire(&input, now).context("recording alert")?;
        let silenced = change.is_silenced();
        let event = change.event();
        let label = match &change {
            AlertChange::Opened(_) => "opened",
            AlertChange::Updated(_) => "updated",
        };
        let alert = change.into_alert();
        plan.push(PlanItem::Alert {
            change: label,
            silenced,
            alert: alert.clone(),
        });

        let incident = self
            .incidents
            .on_alert(&alert, event, &input.evidence, now)
            .context("updating incident")?;
        let incident_id = incident.as_ref().map(|c| c.incident().id);
        if let Some(id) = incident_id {
            if self.incident_of.len() >= INCIDENT_MEMORY {
                self.incident_of.clear();
            }
            self.incident_of.insert(alert.fingerprint.clone(), id);
        }
        if let Some(c) = incident {
            let label = match &c {
                IncidentChange::Opened(_) => "opened",
                IncidentChange::Attached(_) => "attached",
                IncidentChange::Updated(_) => "updated",
            };
            plan.push(PlanItem::Incident {
                change: label,
                incident: c.incident().clone(),
            });
        }

        let mut taken = Vec::new();
        for action in rule.actions() {
            let Some(ac) = self.cfg.actions.get(action) else {
                continue;
            };
            let outcome = self
                .decisions
                .from_action(action, ac, &alert, now)
                .context("making decision")?;
            let (label, decision) = match outcome {
                DecisionOutcome::Created(d) => ("created", d),
                DecisionOutcome::Extended(d) => ("extended", d),
                DecisionOutcome::AlreadyActive(_) | DecisionOutcome::NotApplicable => continue,
                DecisionOutcome::Refused { reason } => {
                    tracing::warn!(action = %action, rule = rule.id(), reason = %reason, "decision refused");
                    plan.push(PlanItem::Refusal {
                        action: action.clone(),
                        rule: rule.id().to_string(),
                        reason,
                    });
                    continue;
                }
            };
            self.publish(&DecisionChange::Added(decision.clone()), now);
            if let Some(id) = incident_id {
                let text = format!(
                    "{} {} {} until {} ({})",
                    action,
                    decision.scope.as_str(),
                    decision.value,
                    decision.expires,
                    label
                );
                self.incidents
                    .record(id, TimelineKind::Decision, &text, now)
                    .context("incident timeline")?;
            }
            taken.push(action_taken(&decision));
            plan.push(PlanItem::Decision {
                change: label,
                decision,
            });
        }
        if !silenced {
            self.batcher.push(&view(rule, &alert, taken), now);
        }
        Ok(())
    }

    pub fn on_resolve(
        &mut self,
        rule: &Rule,
        r: &Resolve,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        self.on_resolve_because(rule, r, None, now, plan)
    }

    /// [`Responder::on_resolve`] with the reason recorded on the alert and
    /// in its incident's timeline, for an alert the engine took over after
    /// its own state was lost (see `Engine::adopt`). Everything else —
    /// incident, resolved notification — is as for any resolve.
    pub fn on_resolve_because(
        &mut self,
        rule: &Rule,
        r: &Resolve,
        reason: Option<&str>,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        let group: Vec<(String, String)> = r
            .group
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_key().to_string()))
            .collect();
        if let Some(alert) = self
            .book
            .resolve_because(rule.id(), &group, r.at, reason)
            .context("resolving alert")?
        {
            self.resolved(Some(rule), alert, now, plan)?;
        }
        Ok(())
    }

    /// Resolves a firing alert that no engine rule can judge any more (its
    /// rule was removed or disabled, or its group no longer fits the rule)
    /// at `now`, with `reason`, through the same steps as any resolve.
    /// `rule` is the rule as it was, when known (a reload); after a restart
    /// it is not, and the resolved message carries what the alert itself
    /// records (no description, window or actions to route by).
    pub fn resolve_orphan(
        &mut self,
        alert: &Alert,
        rule: Option<&Rule>,
        reason: &str,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        if let Some(alert) = self
            .book
            .resolve_because(&alert.rule, &alert.group, now, Some(reason))
            .context("resolving alert")?
        {
            self.resolved(rule, alert, now, plan)?;
        }
        Ok(())
    }

    /// Every firing alert in the store, oldest first.
    pub fn firing_alerts(&self) -> anyhow::Result<Vec<Alert>> {
        self.book.all_firing().context("reading firing alerts")
    }

    /// What follows a resolve in the store: the incident's timeline, the
    /// resolved notification (unless silenced), the plan.
    fn resolved(
        &mut self,
        rule: Option<&Rule>,
        alert: Alert,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        if let Some(c) =
            self.incidents
                .on_alert(&alert, secmon_respond::AlertEvent::Resolved, &[], now)?
        {
            plan.push(PlanItem::Incident {
                change: "updated",
                incident: c.incident().clone(),
            });
        }
        if alert.silenced_by.is_none() {
            let v = match rule {
                Some(rule) => view(rule, &alert, Vec::new()),
                None => bare_view(&alert),
            };
            self.batcher.push(&v, now);
        }
        plan.push(PlanItem::Alert {
            change: "resolved",
            silenced: alert.silenced_by.is_some(),
            alert,
        });
        Ok(())
    }

    /// Time-driven work: expired decisions are withdrawn, unacknowledged
    /// incidents past their deadline escalate.
    pub fn tick(&mut self, now: Timestamp, plan: &mut Vec<PlanItem>) -> anyhow::Result<()> {
        for d in self
            .decisions
            .expire_due(now)
            .context("expiring decisions")?
        {
            self.publish(&DecisionChange::Removed(d.clone()), now);
            plan.push(PlanItem::Decision {
                change: "expired",
                decision: d,
            });
        }
        for e in self
            .incidents
            .due_escalations(now)
            .context("escalating incidents")?
        {
            if let Some(receiver) = &e.receiver
                && let Some(detail) = self.incidents.get(e.incident_id)?
            {
                let msg = escalation_message(receiver, &detail.incident, e.level);
                self.enqueue(&msg, now, plan)?;
            }
            plan.push(PlanItem::Escalation {
                incident_id: e.incident_id,
                level: e.level,
                receiver: e.receiver,
                next_deadline: e.next_deadline,
            });
        }
        for m in self.batcher.flush_due(now) {
            self.enqueue(&m, now, plan)?;
        }
        self.save_batches()?;
        self.save_digest()
    }

    /// Puts the alert messages due by `now` into the outbox (digests wait for
    /// [`Responder::tick`]). The engine thread calls this before every group
    /// commit, so an alert routed with `group_wait: 0s` is durable in the
    /// outbox, and the worker woken, within the cycle that produced it rather
    /// than at the next tick. Returns how many messages it queued.
    pub fn flush_notifications(
        &mut self,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<usize> {
        let messages = self.batcher.flush_groups_due(now);
        for m in &messages {
            self.enqueue(m, now, plan)?;
        }
        self.save_batches()?;
        Ok(messages.len())
    }

    /// Records in the store what the batcher owes and no longer owes (see
    /// `secmon_notify::route`): called after the outbox writes of each
    /// flush, in the same transaction, so an alert that fired is always
    /// either owed in the store or in the outbox, and a `kill -9` during
    /// `group_wait` loses no notification. Alerts flushed in the cycle that
    /// pushed them write nothing here.
    fn save_batches(&mut self) -> anyhow::Result<()> {
        let changes = self.batcher.take_changes();
        if !changes.is_empty() {
            self.outbox
                .save_batch_changes(&changes)
                .context("recording batched notifications")?;
        }
        Ok(())
    }

    /// At start (`run`, before any input): gives the batcher back what it
    /// owed when the last process stopped, however it stopped, and the
    /// alerts still firing, which were told (so they repeat, resolve and
    /// update as if secmon had never stopped, and no one is told twice).
    /// One transaction: the stored owed rows are replaced by what the
    /// batcher reports under the current routes. Firing alerts of rules no
    /// longer configured are routed by what they record themselves (rule
    /// id, severity, labels, group; not the actions their rule listed).
    pub fn restore_notifications(
        &mut self,
        rules: &Ruleset,
        now: Timestamp,
    ) -> anyhow::Result<Restored> {
        // Our own transaction, unless the caller has one open.
        let own = self.store.conn().is_autocommit();
        self.store
            .begin_batch()
            .context("restoring notifications")?;
        let restored = (|| -> anyhow::Result<Restored> {
            let owed = self
                .outbox
                .take_owed()
                .context("reading batched notifications")?;
            let firing: Vec<AlertView> = self
                .book
                .all_firing()
                .context("reading firing alerts")?
                .iter()
                .filter(|a| a.silenced_by.is_none())
                .map(|a| match rules.position(&a.rule) {
                    Some(i) => view(rules.rule(i), a, Vec::new()),
                    // Its rule is gone; `run` resolves it right after, and
                    // its resolve should reach whom the firing reached.
                    None => bare_view(a),
                })
                .collect();
            let restored = self.batcher.restore(owed, &firing, now);
            self.save_batches()?;
            Ok(restored)
        })();
        match restored {
            Ok(r) => {
                if own {
                    self.store
                        .commit_batch()
                        .context("restoring notifications")?;
                }
                if r.owed > 0 {
                    tracing::info!(
                        event = "secmon.notifications_restored",
                        owed = r.owed,
                        told = r.told,
                        "batched notifications restored: they go out when their batch is due"
                    );
                }
                Ok(r)
            }
            Err(e) => {
                if own {
                    let _ = self.store.conn().execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// Keep every outbox row written from now on for [`Responder::take_queued`]
    /// (`run` does; a replay does not, it has no worker).
    pub fn hand_over_queued(&mut self) {
        self.queued.get_or_insert_with(Vec::new);
    }

    /// The outbox rows written since the last call, and whether dead letters
    /// were re-queued. Valid once the current transaction has committed; on
    /// a failed commit the caller drops them.
    pub fn take_queued(&mut self) -> (Vec<OutboxItem>, bool) {
        let items = match &mut self.queued {
            Some(q) => std::mem::replace(q, Vec::with_capacity(q.capacity())),
            None => Vec::new(),
        };
        (items, std::mem::take(&mut self.requeued))
    }

    /// Records the outcomes of deliveries (the worker's [`Settlement`]s) in
    /// the current transaction: the store keeps one writer, and a burst of
    /// outcomes costs no commit of its own.
    pub fn record_deliveries(&mut self, done: &[Settlement]) -> anyhow::Result<()> {
        self.outbox
            .apply(done)
            .context("recording notification outcomes")
    }

    /// Saves the digest collection when it changed since the last save, so a
    /// restart keeps the day's collection without rewriting it every tick.
    fn save_digest(&mut self) -> anyhow::Result<()> {
        let revision = self.batcher.digest().revision();
        if revision != self.digest_saved {
            self.outbox
                .save_digest(self.batcher.digest())
                .context("saving digest")?;
            self.digest_saved = revision;
        }
        Ok(())
    }

    /// Puts every message still waiting in a batch into the outbox now, so
    /// that nothing known is only in memory (shutdown, end of a replay).
    ///
    /// Digests due within a day are flushed too; repeats of alerts still
    /// firing are not (they are not waiting, and would be invented: at a
    /// shutdown with many firing alerts, a day of repeats for each).
    pub fn flush_all(&mut self, now: Timestamp, plan: &mut Vec<PlanItem>) -> anyhow::Result<()> {
        for m in self.batcher.flush_waiting(now) {
            self.enqueue(&m, now, plan)?;
        }
        self.save_batches()?;
        let horizon = now.add(Dur::from_mins(24 * 60));
        let mut t = self.batcher.digest().next_due();
        while t <= horizon {
            for m in self.batcher.digest_mut().due(t) {
                self.enqueue(&m, now, plan)?;
            }
            let next = self.batcher.digest().next_due();
            if next <= t {
                break;
            }
            t = next;
        }
        self.outbox
            .save_digest(self.batcher.digest())
            .context("saving digest")?;
        self.digest_saved = self.batcher.digest().revision();
        Ok(())
    }

    /// An operator's change (from the HTTP API), made here so the store keeps
    /// a single writer and every change reaches the plan, the decision index
    /// and the publishers exactly as automated ones do.
    pub fn manual(
        &mut self,
        op: ManualOp,
        author: &str,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> Result<serde_json::Value, RespondError> {
        let json = |v: &dyn erased::Ser| v.to_json();
        match op {
            ManualOp::AddDecision {
                scope,
                value,
                duration,
                reason,
            } => {
                let outcome = self
                    .decisions
                    .add_manual(&scope, &value, duration, &reason, author, now)?;
                let (label, d) = match outcome {
                    DecisionOutcome::Created(d) => ("created", d),
                    DecisionOutcome::Extended(d) | DecisionOutcome::AlreadyActive(d) => {
                        ("extended", d)
                    }
                    DecisionOutcome::Refused { reason } => {
                        return Err(RespondError::Invalid {
                            what: "decision",
                            reason,
                        });
                    }
                    DecisionOutcome::NotApplicable => {
                        return Err(RespondError::Invalid {
                            what: "decision",
                            reason: "not applicable".into(),
                        });
                    }
                };
                self.publish(&DecisionChange::Added(d.clone()), now);
                let out = json(&d);
                plan.push(PlanItem::Decision {
                    change: label,
                    decision: d,
                });
                Ok(out)
            }
            ManualOp::DeleteDecision { id } => {
                let change = self.decisions.delete(id, author, now)?;
                self.publish(&change, now);
                let d = change.decision().clone();
                let out = json(&d);
                plan.push(PlanItem::Decision {
                    change: "deleted",
                    decision: d,
                });
                Ok(out)
            }
            ManualOp::AckIncident { id } => {
                let inc = self.incidents.ack(id, author, now)?;
                let out = json(&inc);
                plan.push(PlanItem::Incident {
                    change: "acknowledged",
                    incident: inc,
                });
                Ok(out)
            }
            ManualOp::ResolveIncident { id } => {
                let inc = self.incidents.resolve(id, author, now)?;
                let out = json(&inc);
                plan.push(PlanItem::Incident {
                    change: "resolved",
                    incident: inc,
                });
                Ok(out)
            }
            ManualOp::NoteIncident { id, text } => {
                Ok(json(&self.incidents.note(id, author, &text, now)?))
            }
            ManualOp::CreateSilence {
                matchers,
                duration,
                comment,
            } => {
                if duration <= Dur::ZERO {
                    return Err(RespondError::Invalid {
                        what: "silence",
                        reason: "duration must be positive".into(),
                    });
                }
                let s = self.book.create_silence(
                    &NewSilence {
                        matchers,
                        starts: now,
                        ends: now.add(duration),
                        author: author.to_string(),
                        comment,
                    },
                    now,
                )?;
                Ok(json(&s))
            }
            ManualOp::ExpireSilence { id } => Ok(json(&self.book.expire_silence(id, now)?)),
            ManualOp::RetryNotifications { id } => {
                let target = match id {
                    Some(id) => RetryTarget::One(id),
                    None => RetryTarget::All,
                };
                let n = self
                    .outbox
                    .retry(target, now)
                    .map_err(|e| RespondError::Conflict(e.to_string()))?;
                self.requeued |= n > 0;
                Ok(serde_json::json!({ "requeued": n }))
            }
        }
    }

    /// Reloads the decisions from the store: another process (`secmon
    /// decisions add|delete`) may have changed them.
    pub fn reload_decisions(&mut self) -> anyhow::Result<()> {
        self.decisions =
            Decisions::open(self.store, &self.cfg.allowlist).context("reloading decisions")?;
        Ok(())
    }

    /// Decisions in force now (to seed the API's in-memory index).
    pub fn active_decisions(&self, now: Timestamp) -> Vec<Decision> {
        self.decisions.list_active(now)
    }

    fn enqueue(
        &mut self,
        m: &Message,
        now: Timestamp,
        plan: &mut Vec<PlanItem>,
    ) -> anyhow::Result<()> {
        let (id, inserted) = self
            .outbox
            .insert(m, now)
            .context("writing to the outbox")?;
        if inserted && let Some(q) = &mut self.queued {
            q.push(Outbox::fresh_item(id, m, now));
        }
        let mut recorded = Vec::new();
        for a in &m.alerts {
            if let Some(&incident) = self.incident_of.get(&a.fingerprint)
                && !recorded.contains(&incident)
            {
                recorded.push(incident);
                let text = format!(
                    "{} notification to {} queued (outbox #{id})",
                    m.status.as_str(),
                    m.receiver
                );
                self.incidents
                    .record(incident, TimelineKind::Notification, &text, now)
                    .context("incident timeline")?;
            }
        }
        plan.push(PlanItem::Notification {
            outbox_id: id,
            receiver: m.receiver.clone(),
            status: m.status,
            message_kind: m.kind,
            alerts: m.alerts.iter().map(|a| a.rule.clone()).collect(),
            idempotency_key: m.idempotency_key.clone(),
        });
        Ok(())
    }

    /// Publishing failures are logged, not fatal: the decision is stored and
    /// `republish` restores the enforcing side once the target is back.
    fn publish(&mut self, change: &DecisionChange, now: Timestamp) {
        for p in &mut self.publishers {
            if let Err(e) = p.publish(change, now) {
                tracing::error!(error = %e, decision = change.decision().id, "publishing decision failed");
            }
        }
    }
}

/// The alert as receivers show it, from what the alert records itself (all
/// there is once its rule is gone). Group keys lose their `fields.` prefix
/// (`ip`, `email`): that is how people and the Slack layout name them.
fn bare_view(alert: &Alert) -> AlertView {
    AlertView {
        id: Some(alert.id),
        fingerprint: alert.fingerprint.clone(),
        rule: alert.rule.clone(),
        rule_name: alert.rule_name.clone(),
        description: String::new(),
        severity: alert.severity,
        priority: alert.priority,
        labels: alert.labels.clone(),
        group: display_group(&alert.group),
        value: alert.value,
        threshold: alert.threshold,
        window: None,
        count: if alert.value.is_finite() && alert.value >= 0.0 {
            alert.value as u64
        } else {
            alert.count
        },
        status: match alert.status {
            secmon_respond::AlertStatus::Firing => AlertStatus::Firing,
            secmon_respond::AlertStatus::Resolved => AlertStatus::Resolved,
        },
        fired_at: alert.last_seen,
        resolved_at: alert.resolved_at,
        actions_taken: Vec::new(),
        actions: Vec::new(),
    }
}

/// The alert as receivers show it, with what its rule adds.
fn view(rule: &Rule, alert: &Alert, actions_taken: Vec<String>) -> AlertView {
    let window = rule.detector().window();
    AlertView {
        description: rule.description().unwrap_or_default().to_string(),
        window: (window.as_millis() > 0).then_some(window),
        actions_taken,
        actions: rule.actions().to_vec(),
        ..bare_view(alert)
    }
}

/// The page sent to the next receiver of an escalation chain.
fn escalation_message(receiver: &str, inc: &Incident, level: u32) -> Message {
    let alert = AlertView {
        id: None,
        fingerprint: inc.fingerprint.clone(),
        rule: inc.rule.clone(),
        rule_name: format!("ESCALATED (level {level}): {}", inc.title),
        description: format!(
            "Incident #{} ({}) was not acknowledged within its deadline.",
            inc.id,
            inc.priority.as_str()
        ),
        severity: secmon_core::Severity::Critical,
        priority: Some(inc.priority),
        labels: inc.labels.clone(),
        group: display_group(&inc.group),
        value: 0.0,
        threshold: None,
        window: None,
        count: 0,
        status: AlertStatus::Firing,
        fired_at: inc.opened,
        resolved_at: None,
        actions_taken: Vec::new(),
        actions: Vec::new(),
    };
    Message {
        receiver: receiver.to_string(),
        alerts: vec![alert],
        status: AlertStatus::Firing,
        kind: MessageKind::Alert,
        idempotency_key: format!("escalation-{}-{level}", inc.id),
        suppressed: 0,
        digest: None,
    }
}

fn display_group(group: &[(String, String)]) -> Vec<(String, String)> {
    group
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("fields.").unwrap_or(k).to_string(),
                v.clone(),
            )
        })
        .collect()
}

/// "IP blocked for 1 hour", as the seed's Slack example says it.
fn action_taken(d: &Decision) -> String {
    let what = match d.scope.as_str() {
        "ip" => "IP blocked".to_string(),
        "user" => "Account locked".to_string(),
        "vault" => "Vault locked".to_string(),
        "admin" => "Admin endpoint locked".to_string(),
        other => format!("{other} {} blocked", d.value),
    };
    format!("{what} for {}", human(d.expires.since(d.created)))
}

fn human(d: Dur) -> String {
    let ms = d.as_millis();
    let (n, unit) = if ms % 86_400_000 == 0 {
        (ms / 86_400_000, "day")
    } else if ms % 3_600_000 == 0 {
        (ms / 3_600_000, "hour")
    } else if ms % 60_000 == 0 {
        (ms / 60_000, "minute")
    } else {
        return d.to_string();
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_seed() {
        assert_eq!(human(Dur::from_mins(60)), "1 hour");
        assert_eq!(human(Dur::from_mins(30)), "30 minutes");
        assert_eq!(human(Dur::from_mins(7 * 24 * 60)), "7 days");
        assert_eq!(human(Dur::from_millis(1500)), "1s500ms");
    }
}
