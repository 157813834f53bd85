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

use crate::api::keys::{Keys, ServerSecret};
use crate::cli::{
    DecisionsCmd, IncidentsCmd, KeysCmd, ManageArgs, NotificationsCmd, NotifyCmd, SilencesCmd,
};
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

pub fn notify(args: ManageArgs, cmd: NotifyCmd) -> anyhow::Result<ExitCode> {
    let (runtime, _store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let NotifyCmd::Test { receiver } = cmd;
    let dispatcher =
        secmon_notify::Dispatcher::new(&runtime.notify, &secmon_notify::secret::process_env)
            .context("setting up receivers")?;
    match dispatcher.send_test(&receiver, crate::clock::now())? {
        secmon_notify::DeliveryResult::Sent => {
            crate::outln!("{receiver}: test message accepted");
            Ok(ExitCode::SUCCESS)
        }
        secmon_notify::DeliveryResult::Retry { reason, .. }
        | secmon_notify::DeliveryResult::Permanent { reason } => {
            eprintln!("{receiver}: test message not accepted: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn notifications(args: ManageArgs, cmd: NotificationsCmd) -> anyhow::Result<ExitCode> {
    let (runtime, store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let outbox = secmon_notify::Outbox::new(store.conn(), runtime.notify.outbox.lease)?;
    match cmd {
        NotificationsCmd::List { failed, json } => {
            let status = if failed {
                secmon_notify::OutboxStatus::Dead
            } else {
                secmon_notify::OutboxStatus::Pending
            };
            let items = outbox.list(status)?;
            if json {
                let v: Vec<serde_json::Value> = items.iter().map(crate::api::outbox_json).collect();
                return print_json(&v).map(|_| ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>6}  {:<16} {:>8}  {:<24} reason",
                "id",
                "receiver",
                "attempts",
                "created"
            );
            for i in &items {
                crate::outln!(
                    "{:>6}  {:<16} {:>8}  {:<24} {}",
                    i.id,
                    i.message.receiver,
                    i.attempts,
                    i.created_at.to_rfc3339(),
                    i.dead_reason
                        .as_deref()
                        .or(i.last_error.as_deref())
                        .unwrap_or("")
                );
            }
            crate::outln!(
                "{} {}",
                items.len(),
                if failed { "dead letter(s)" } else { "pending" }
            );
        }
        NotificationsCmd::Retry { id, all } => {
            let target = match (id, all) {
                (Some(id), false) => secmon_notify::RetryTarget::One(id),
                (None, true) => secmon_notify::RetryTarget::All,
                _ => bail!("give an outbox id, or --all"),
            };
            let n = outbox.retry(target, crate::clock::now())?;
            crate::outln!("{n} notification(s) re-queued; a running secmon delivers them");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME=VALUE`, `NAME!=VALUE`, `NAME=~REGEX`, `NAME!~REGEX`.
fn parse_matcher(s: &str) -> anyhow::Result<secmon_respond::Matcher> {
    for (op, regex, negate) in [
        ("!~", true, true),
        ("=~", true, false),
        ("!=", false, true),
        ("=", false, false),
    ] {
        if let Some((name, value)) = s.split_once(op)
            && !name.is_empty()
        {
            return Ok(secmon_respond::Matcher {
                name: name.trim().to_string(),
                value: value.to_string(),
                regex,
                negate,
            });
        }
    }
    bail!("--match {s:?}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
}

pub fn silences(args: ManageArgs, cmd: SilencesCmd) -> anyhow::Result<ExitCode> {
    let (_runtime, store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let now = crate::clock::now();
    let mut book = secmon_respond::AlertBook::new(&store);
    match cmd {
        SilencesCmd::Add {
            matchers,
            duration,
            comment,
            author: who,
        } => {
            let matchers = matchers
                .iter()
                .map(|m| parse_matcher(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let duration = Dur::parse(&duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
            let s = book.create_silence(
                &secmon_respond::NewSilence {
                    matchers,
                    starts: now,
                    ends: now.add(duration),
                    author: author(&who),
                    comment,
                },
                now,
            )?;
            print_json(&s)?;
        }
        SilencesCmd::List { all, json } => {
            let list = book.list_silences(if all { None } else { Some(now) })?;
            if json {
                return print_json(&list).map(|_| ExitCode::SUCCESS);
            }
            for s in &list {
                let m: Vec<String> = s
                    .matchers
                    .iter()
                    .map(|m| {
                        let op = match (m.regex, m.negate) {
                            (false, false) => "=",
                            (false, true) => "!=",
                            (true, false) => "=~",
                            (true, true) => "!~",
                        };
                        format!("{}{op}{}", m.name, m.value)
                    })
                    .collect();
                crate::outln!(
                    "{:>5}  until {}  by {}  {}  {}",
                    s.id,
                    s.ends.to_rfc3339(),
                    s.author,
                    m.join(" "),
                    s.comment
                );
            }
            crate::outln!("{} silence(s)", list.len());
        }
        SilencesCmd::Expire { id } => print_json(&book.expire_silence(id, now)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn keys(args: ManageArgs, cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    let (_runtime, store) = match open(&args)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let keys = Keys::open(&store)?;
    let now = crate::clock::now();
    match cmd {
        KeysCmd::Create { role, name, json } => {
            let secret = ServerSecret::from_env()?.ok_or(crate::api::keys::KeyError::NoSecret)?;
            let (info, key) = keys.create(&secret, role, &name, now)?;
            if json {
                let mut v = serde_json::to_value(&info)?;
                v["key"] = key.into();
                print_json(&v)?;
            } else {
                crate::outln!("{key}");
                eprintln!(
                    "created {} key {:?} (prefix {}); it is shown only now: store it safely",
                    info.role, info.name, info.prefix
                );
            }
        }
        KeysCmd::List { json } => {
            let list = keys.list()?;
            if json {
                return print_json(&list).map(|_| ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:>4}  {:<10} {:<10} {:<24} {:<10} name",
                "id",
                "prefix",
                "role",
                "created",
                "state"
            );
            for k in &list {
                crate::outln!(
                    "{:>4}  {:<10} {:<10} {:<24} {:<10} {}",
                    k.id,
                    k.prefix,
                    k.role.as_str(),
                    k.created.to_rfc3339(),
                    if k.revoked.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    k.name
                );
            }
        }
        KeysCmd::Revoke { key } => {
            let info = keys.revoke(&key, now)?;
            print_json(&info)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
