use std::collections::BTreeMap;

use secmon_core::{Dur, Priority, Timestamp};
use secmon_respond::config::EscalationChain;
use secmon_respond::{
    Alert, AlertBook, AlertChange, IncidentChange, IncidentConfig, IncidentFilter, IncidentState,
    Incidents, RespondError, Store, TimelineKind,
};

use crate::common::{T0, at, fire};

fn fire_p(
    book: &mut AlertBook<'_>,
    rule: &str,
    group: &[(&str, &str)],
    p: Option<Priority>,
    t: Timestamp,
) -> AlertChange {
    let mut f = fire(rule, group, t);
    f.priority = p;
    book.fire(&f, t).unwrap()
}

fn ev(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| serde_json::json!({"event": "auth.login_failed", "n": i}))
        .collect()
}

fn feed(inc: &mut Incidents<'_>, c: &AlertChange, t: Timestamp) -> Option<IncidentChange> {
    inc.on_alert(c.alert(), c.event(), &ev(2), t).unwrap()
}

#[test]
fn open_attach_and_lifecycle() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let mut inc = Incidents::new(&store, &IncidentConfig::default());
    let g = [("fields.ip", "192.168.1.100")];

    // No priority, no incident.
    let c = fire_p(&mut book, "digest-only", &g, None, at(0));
    assert!(feed(&mut inc, &c, at(0)).is_none());

    let c1 = fire_p(&mut book, "failed-logins-ip", &g, Some(Priority::P2), at(0));
    let Some(IncidentChange::Opened(i)) = feed(&mut inc, &c1, at(0)) else {
        panic!()
    };
    assert_eq!(i.state, IncidentState::Triggered);
    assert_eq!(i.priority, Priority::P2);
    assert_eq!(i.ack_deadline, at(60));
    assert_eq!(i.alerts, vec![c1.alert().id]);
    assert_eq!(i.title, "failed-logins-ip (name)");

    // The same alert firing again updates the same incident.
    let c2 = fire_p(&mut book, "failed-logins-ip", &g, Some(Priority::P2), at(1));
    let Some(IncidentChange::Updated(u)) = feed(&mut inc, &c2, at(1)) else {
        panic!()
    };
    assert_eq!((u.id, u.alerts.len()), (i.id, 1));
    // Its resolve is on the timeline but does not close the incident.
    let group = c1.alert().group.clone();
    let r = book
        .resolve("failed-logins-ip", &group, at(5))
        .unwrap()
        .unwrap();
    let Some(IncidentChange::Updated(u)) = inc
        .on_alert(&r, secmon_respond::AlertEvent::Resolved, &[], at(5))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(u.state, IncidentState::Triggered);
    // A new alert of the same rule and group joins the open incident.
    let c3 = fire_p(&mut book, "failed-logins-ip", &g, Some(Priority::P2), at(6));
    assert!(matches!(c3, AlertChange::Opened(_)));
    let Some(IncidentChange::Attached(a)) = feed(&mut inc, &c3, at(6)) else {
        panic!()
    };
    assert_eq!(a.id, i.id);
    assert_eq!(a.alerts, vec![c1.alert().id, c3.alert().id]);
    // Another group is another incident.
    let other = fire_p(
        &mut book,
        "failed-logins-ip",
        &[("fields.ip", "10.0.0.9")],
        Some(Priority::P2),
        at(6),
    );
    let Some(IncidentChange::Opened(o)) = feed(&mut inc, &other, at(6)) else {
        panic!()
    };
    assert_ne!(o.id, i.id);

    // A more urgent alert on the same target raises the priority and deadline.
    let hot = fire_p(&mut book, "failed-logins-ip", &g, Some(Priority::P1), at(7));
    let Some(IncidentChange::Updated(h)) = feed(&mut inc, &hot, at(7)) else {
        panic!()
    };
    assert_eq!(h.priority, Priority::P1);
    assert_eq!(h.ack_deadline, at(22));

    // ack → resolve, with authors; notes; illegal transitions refused.
    let acked = inc.ack(i.id, "alice", at(10)).unwrap();
    assert_eq!(acked.state, IncidentState::Acknowledged);
    assert_eq!(
        (acked.acked_at, acked.acked_by.as_deref()),
        (Some(at(10)), Some("alice"))
    );
    assert!(matches!(
        inc.ack(i.id, "bob", at(11)),
        Err(RespondError::Conflict(_))
    ));
    inc.note(i.id, "alice", "blocked at the edge", at(12))
        .unwrap();
    assert!(inc.note(i.id, "alice", "  ", at(12)).is_err());
    inc.record(
        i.id,
        TimelineKind::Notification,
        "slack #security-alerts: sent",
        at(12),
    )
    .unwrap();
    inc.record(
        i.id,
        TimelineKind::Decision,
        "block_ip 192.168.1.100 for 1h",
        at(12),
    )
    .unwrap();
    inc.check(i.id, 1, "alice", at(12)).unwrap();
    assert!(inc.check(i.id, 99, "alice", at(12)).is_err());
    let res = inc.resolve(i.id, "bob", at(20)).unwrap();
    assert_eq!(res.state, IncidentState::Resolved);
    assert_eq!(res.resolved_by.as_deref(), Some("bob"));
    assert!(matches!(
        inc.resolve(i.id, "bob", at(21)),
        Err(RespondError::Conflict(_))
    ));
    assert!(inc.ack(9999, "x", at(21)).is_err());

    let d = inc.get(i.id).unwrap().unwrap();
    let kinds: Vec<TimelineKind> = d.timeline.iter().map(|e| e.kind).collect();
    use TimelineKind as K;
    assert_eq!(
        kinds,
        vec![
            K::Opened,
            K::Alert,
            K::Alert,
            K::Alert,
            K::Priority,
            K::Acknowledged,
            K::Note,
            K::Notification,
            K::Decision,
            K::Checklist,
            K::Resolved
        ]
    );
    let note = d.timeline.iter().find(|e| e.kind == K::Note).unwrap();
    assert_eq!(
        (note.author.as_deref(), note.text.as_str()),
        (Some("alice"), "blocked at the edge")
    );
    assert_eq!(d.checklist[0].done_by.as_deref(), Some("alice"));
    assert!(inc.get(9999).unwrap().is_none());

    // After resolution the next alert opens a fresh incident.
    let c4 = fire_p(
        &mut book,
        "failed-logins-ip",
        &g,
        Some(Priority::P2),
        at(30),
    );
    let Some(IncidentChange::Opened(n)) = feed(&mut inc, &c4, at(30)) else {
        panic!()
    };
    assert_ne!(n.id, i.id);
    let open = inc
        .list(&IncidentFilter {
            state: Some(IncidentState::Triggered),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        open.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![n.id, o.id]
    );
    assert_eq!(inc.list(&IncidentFilter::default()).unwrap().len(), 3);
}

#[test]
fn silenced_alerts_do_not_open_incidents() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let mut inc = Incidents::new(&store, &IncidentConfig::default());
    let mut a: Alert = fire_p(&mut book, "r", &[], Some(Priority::P1), at(0)).into_alert();
    a.silenced_by = Some(1);
    assert!(
        inc.on_alert(&a, secmon_respond::AlertEvent::Opened, &[], at(0))
            .unwrap()
            .is_none()
    );
}

#[test]
fn deadlines_per_priority_checklists_and_evidence_bound() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let cfg = IncidentConfig {
        evidence_limit: 3,
        ..IncidentConfig::default()
    };
    let mut inc = Incidents::new(&store, &cfg);
    let expect = [
        (Priority::P1, 15, 7),
        (Priority::P2, 60, 6),
        (Priority::P3, 240, 4),
        (Priority::P4, 1440, 4),
    ];
    for (p, mins, steps) in expect {
        let c = fire_p(&mut book, &format!("rule-{p}"), &[], Some(p), at(0));
        let Some(IncidentChange::Opened(i)) =
            inc.on_alert(c.alert(), c.event(), &ev(5), at(0)).unwrap()
        else {
            panic!()
        };
        assert_eq!(i.ack_deadline, at(mins), "{p}");
        let d = inc.get(i.id).unwrap().unwrap();
        assert_eq!(d.checklist.len(), steps, "{p}");
        assert_eq!(d.evidence.len(), 3, "evidence is bounded");
        assert_eq!(d.evidence[0]["n"], 0);
        // More fires add no more evidence beyond the bound.
        let c = fire_p(&mut book, &format!("rule-{p}"), &[], Some(p), at(1));
        inc.on_alert(c.alert(), c.event(), &ev(5), at(1)).unwrap();
        assert_eq!(inc.get(i.id).unwrap().unwrap().evidence.len(), 3);
    }
    let p1 = inc
        .list(&IncidentFilter {
            priority: Some(Priority::P1),
            ..Default::default()
        })
        .unwrap();
    let d = inc.get(p1[0].id).unwrap().unwrap();
    let texts: Vec<&str> = d.checklist.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "Acknowledge alert immediately",
            "Isolate affected systems",
            "Preserve logs and evidence",
            "Notify security team lead",
            "Begin incident investigation",
            "Communicate to affected users (if applicable)",
            "Document timeline and actions",
        ]
    );
    assert_eq!(d.checklist[0].idx, 1);
    let p2 = inc
        .list(&IncidentFilter {
            priority: Some(Priority::P2),
            ..Default::default()
        })
        .unwrap();
    let d = inc.get(p2[0].id).unwrap().unwrap();
    assert_eq!(
        d.checklist[2].text,
        "Apply immediate mitigations (block IP, lock account)"
    );
    let p4 = inc
        .list(&IncidentFilter {
            priority: Some(Priority::P4),
            ..Default::default()
        })
        .unwrap();
    let d = inc.get(p4[0].id).unwrap().unwrap();
    assert_eq!(d.checklist[3].text, "Include in weekly security review");

    // Configured deadlines override the seed's.
    let mut cfg = IncidentConfig::default();
    cfg.ack_deadlines.insert(Priority::P1, Dur::from_mins(5));
    let mut inc = Incidents::new(&store, &cfg);
    let c = fire_p(&mut book, "custom", &[], Some(Priority::P1), at(0));
    let i = inc
        .on_alert(c.alert(), c.event(), &[], at(0))
        .unwrap()
        .unwrap();
    assert_eq!(i.incident().ack_deadline, at(5));
}

#[test]
fn escalation_at_the_deadline_boundary_with_manual_clock() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let cfg = IncidentConfig {
        escalation: vec![
            EscalationChain {
                priorities: vec![Priority::P1],
                labels: BTreeMap::from([("team".into(), "security".into())]),
                receivers: vec![
                    "slack-security".into(),
                    "pagerduty-oncall".into(),
                    "security-lead".into(),
                ],
            },
            EscalationChain {
                priorities: vec![],
                labels: BTreeMap::new(),
                receivers: vec!["email-ops".into()],
            },
        ],
        ..IncidentConfig::default()
    };
    let mut inc = Incidents::new(&store, &cfg);
    let c = fire_p(
        &mut book,
        "admin-auth-failures",
        &[("fields.user_id", "admin-1")],
        Some(Priority::P1),
        at(0),
    );
    let i = inc
        .on_alert(c.alert(), c.event(), &[], at(0))
        .unwrap()
        .unwrap()
        .incident()
        .clone();
    assert_eq!(inc.receiver(&i, 0).as_deref(), Some("slack-security"));
    let p3 = fire_p(&mut book, "rate-limit-hits", &[], Some(Priority::P3), at(0));
    let j = inc
        .on_alert(p3.alert(), p3.event(), &[], at(0))
        .unwrap()
        .unwrap()
        .incident()
        .clone();

    // One millisecond before the deadline: nothing.
    let deadline = at(15);
    assert!(
        inc.due_escalations(Timestamp(deadline.0 - 1))
            .unwrap()
            .is_empty()
    );
    // Exactly at it: level 1, breached, the next receiver, a new deadline.
    let e = inc.due_escalations(deadline).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].incident_id, e[0].level), (i.id, 1));
    assert_eq!(e[0].receiver.as_deref(), Some("pagerduty-oncall"));
    assert_eq!(e[0].next_deadline, at(30));
    let now = inc.get(i.id).unwrap().unwrap();
    assert!(now.incident.breached);
    assert_eq!(now.incident.escalation_level, 1);
    assert_eq!(now.incident.ack_deadline, at(30));
    assert_eq!(now.timeline.last().unwrap().kind, TimelineKind::Escalated);
    // Not again until the new deadline.
    assert!(inc.due_escalations(at(29)).unwrap().is_empty());
    let e = inc.due_escalations(at(30)).unwrap();
    assert_eq!(
        (e[0].level, e[0].receiver.as_deref()),
        (2, Some("security-lead"))
    );
    // Past the end of the chain the last receiver keeps being paged.
    let e = inc.due_escalations(at(45)).unwrap();
    assert_eq!(
        (e[0].level, e[0].receiver.as_deref()),
        (3, Some("security-lead"))
    );
    // Acknowledged incidents stop escalating but stay marked as breached.
    let acked = inc.ack(i.id, "alice", at(50)).unwrap();
    assert!(acked.breached);
    assert!(
        inc.due_escalations(at(24 * 60))
            .unwrap()
            .iter()
            .all(|e| e.incident_id != i.id)
    );
    // The P3 incident (4h) used the catch-all chain.
    let e: Vec<_> = inc.due_escalations(at(240)).unwrap();
    assert!(e.is_empty(), "already escalated at 24h above: {e:?}");
    let jd = inc.get(j.id).unwrap().unwrap().incident;
    assert_eq!((jd.escalation_level, jd.breached), (1, true));
    assert_eq!(inc.receiver(&jd, 1).as_deref(), Some("email-ops"));
    // An incident without any matching chain escalates with no receiver.
    let mut inc2 = Incidents::new(&store, &IncidentConfig::default());
    let c = fire_p(&mut book, "lonely", &[], Some(Priority::P4), T0);
    inc2.on_alert(c.alert(), c.event(), &[], T0).unwrap();
    let e = inc2.due_escalations(at(24 * 60 + 60)).unwrap();
    assert!(
        e.iter()
            .any(|e| e.receiver.is_none() && e.priority == Priority::P4)
    );
}

#[test]
fn a_resolve_with_a_reason_records_it_on_the_alert_and_the_timeline() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let mut inc = Incidents::new(&store, &IncidentConfig::default());
    let g = [("fields.ip", "192.168.1.100")];
    let c = fire_p(&mut book, "r", &g, Some(Priority::P3), at(0));
    let Some(IncidentChange::Opened(i)) = feed(&mut inc, &c, at(0)) else {
        panic!()
    };
    let group = c.alert().group.clone();
    let why = "state lost at restart; no matching event within the window";
    let r = book
        .resolve_because("r", &group, at(5), Some(why))
        .unwrap()
        .unwrap();
    assert_eq!(r.resolve_reason.as_deref(), Some(why));
    // Read back as stored, and shown only when there is one.
    let stored = book.get(r.id).unwrap().unwrap();
    assert_eq!(stored.resolve_reason.as_deref(), Some(why));
    assert_eq!(
        serde_json::to_value(&stored).unwrap()["resolve_reason"],
        why
    );
    inc.on_alert(&r, secmon_respond::AlertEvent::Resolved, &[], at(5))
        .unwrap();
    let d = inc.get(i.id).unwrap().unwrap();
    let last = d.timeline.last().unwrap();
    assert_eq!(last.text, format!("alert #{} resolved ({why})", r.id));
    // A plain resolve has no reason, and none in its JSON.
    let c = fire_p(&mut book, "r", &g, Some(Priority::P3), at(10));
    let plain = book.resolve("r", &group, at(11)).unwrap().unwrap();
    assert_eq!(plain.id, c.alert().id);
    assert!(plain.resolve_reason.is_none());
    assert!(
        serde_json::to_value(&plain)
            .unwrap()
            .get("resolve_reason")
            .is_none()
    );
}
