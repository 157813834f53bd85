//! `secmon decisions …` and `secmon incidents …`: what responders do by hand
//! against the store in the data directory. Output is a readable table, or
//! JSON with `--json` for scripts.

use std::process::ExitCode;

use anyhow::{Context, bail};
use secmon_core::Dur;
use secmon_respond::{
    DecisionChange, DecisionOutcome, Decisions, IncidentFilter, IncidentState, Incidents, Scope,
    Store,
};

use crate::cli::{DecisionsCmd, IncidentsCmd, ManageArgs};
use crate::config::Runtime;

fn open(args: &ManageArgs) -> anyhow::Result<Result<(Runtime, Store), ExitCode>> {
    let (_, mut runtime) = match super::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(Err(code)),
    };
    if let Some(d) = &args.data_dir {
        runtime.data_dir = d.clone();
    }
    let db = runtime.data_dir.join("secmon.db");
    let store = Store::open(&db).with_context(|| format!("opening the store {}", db.display()))?;
    Ok(Ok((runtime, store)))
}

/// Who did it: `--author`, else the login name, else `cli`.
fn author(given: &Option<String>) -> String {
    given
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".to_string())
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn decisions(args: ManageArgs, cmd: DecisionsCmd) -> anyhow::Result<ExitCode> {
    let (runtime, store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let now = crate::clock::now();
    let mut decisions = Decisions::open(&store, &runtime.respond.allowlist)?;
    match cmd {
        DecisionsCmd::List { json } => {
            let active = decisions.list_active(now);
            if json {
                return print_json(&active).map(|_| ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>6}  {:<8} {:<40} {:<14} {:<24} reason",
                "id",
                "scope",
                "value",
                "action",
                "expires"
            );
            for d in &active {
                crate::outln!(
                    "{:>6}  {:<8} {:<40} {:<14} {:<24} {}",
                    d.id,
                    d.scope.as_str(),
                    d.value,
                    d.action,
                    d.expires.to_rfc3339(),
                    d.reason
                );
            }
            crate::outln!("{} active decision(s)", active.len());
        }
        DecisionsCmd::Add {
            scope,
            value,
            duration,
            reason,
            author: who,
        } => {
            let scope = Scope::parse(&scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            let duration = Dur::parse(&duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
            let outcome =
                decisions.add_manual(&scope, &value, duration, &reason, &author(&who), now)?;
            match &outcome {
                DecisionOutcome::Refused { reason } => {
                    eprintln!("refused: {reason}");
                    return Ok(ExitCode::from(1));
                }
                _ => {
                    if let Some(change) = outcome.change() {
                        publish(&runtime, &change, now)?;
                        print_json(change.decision())?;
                    }
                }
            }
        }
        DecisionsCmd::Delete { id, author: who } => {
            let change = decisions.delete(id, &author(&who), now)?;
            publish(&runtime, &change, now)?;
            print_json(change.decision())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A hand-made change reaches the enforcing side at once, as automated ones do.
fn publish(
    runtime: &Runtime,
    change: &DecisionChange,
    now: secmon_core::Timestamp,
) -> anyhow::Result<()> {
    for mut p in crate::respond::publishers(&runtime.respond)? {
        p.publish(change, now).context("publishing the decision")?;
    }
    Ok(())
}

pub fn incidents(args: ManageArgs, cmd: IncidentsCmd) -> anyhow::Result<ExitCode> {
    let (runtime, store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let now = crate::clock::now();
    let mut incidents = Incidents::new(&store, &runtime.respond.incidents);
    match cmd {
        IncidentsCmd::List { state, json } => {
            let state = match state.as_deref() {
                None => None,
                Some("triggered") => Some(IncidentState::Triggered),
                Some("acknowledged") => Some(IncidentState::Acknowledged),
                Some("resolved") => Some(IncidentState::Resolved),
                Some(other) => {
                    bail!("--state: unknown state {other:?} (triggered, acknowledged, resolved)")
                }
            };
            let list = incidents.list(&IncidentFilter {
                state,
                ..Default::default()
            })?;
            if json {
                return print_json(&list).map(|_| ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>6}  {:<3} {:<13} {:<28} {:<24} {:<8} title",
                "id",
                "pri",
                "state",
                "rule",
                "ack deadline",
                "breached"
            );
            for i in &list {
                crate::outln!(
                    "{:>6}  {:<3} {:<13} {:<28} {:<24} {:<8} {}",
                    i.id,
                    i.priority.as_str(),
                    i.state.as_str(),
                    i.rule,
                    i.ack_deadline.to_rfc3339(),
                    if i.breached { "BREACHED" } else { "" },
                    i.title
                );
            }
        }
        IncidentsCmd::Show { id } => match incidents.get(id)? {
            Some(detail) => print_json(&detail)?,
            None => {
                eprintln!("no incident {id}");
                return Ok(ExitCode::from(1));
            }
        },
        IncidentsCmd::Ack { id, author: who } => {
            print_json(&incidents.ack(id, &author(&who), now)?)?
        }
        IncidentsCmd::Resolve { id, author: who } => {
            print_json(&incidents.resolve(id, &author(&who), now)?)?
        }
        IncidentsCmd::Note {
            id,
            text,
            author: who,
        } => print_json(&incidents.note(id, &author(&who), &text, now)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
