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

use secmon_core::Timestamp;
use secmon_engine::{Fire, Resolve, Rule};
use secmon_respond::{
    Alert, AlertBook, AlertChange, Decision, DecisionChange, DecisionOutcome, DecisionPublisher,
    Decisions, ExecPublisher, FireInput, Incident, IncidentChange, Incidents, RedisPublisher,
    RespondConfig, Store, TimelineKind,
};

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
}

pub struct Responder<'s> {
    cfg: &'s RespondConfig,
    book: AlertBook<'s>,
    decisions: Decisions<'s>,
    incidents: Incidents<'s>,
    publishers: Vec<Box<dyn DecisionPublisher>>,
}

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
        publishers: Vec<Box<dyn DecisionPublisher>>,
    ) -> anyhow::Result<Self> {
        Ok(Responder {
            cfg,
            book: AlertBook::new(store),
            decisions: Decisions::open(store, &cfg.allowlist).context("loading decisions")?,
            incidents: Incidents::new(store, &cfg.incidents),
            publishers,
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
            plan.push(PlanItem::Decision {
                change: label,
                decision,
            });
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
        let group: Vec<(String, String)> = r
            .group
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_key().to_string()))
            .collect();
        if let Some(alert) = self
            .book
            .resolve(rule.id(), &group, r.at)
            .context("resolving alert")?
        {
            if let Some(c) =
                self.incidents
                    .on_alert(&alert, secmon_respond::AlertEvent::Resolved, &[], now)?
            {
                plan.push(PlanItem::Incident {
                    change: "updated",
                    incident: c.incident().clone(),
                });
            }
            plan.push(PlanItem::Alert {
                change: "resolved",
                silenced: alert.silenced_by.is_some(),
                alert,
            });
        }
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
            plan.push(PlanItem::Escalation {
                incident_id: e.incident_id,
                level: e.level,
                receiver: e.receiver,
                next_deadline: e.next_deadline,
            });
        }
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
