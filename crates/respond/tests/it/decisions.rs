use secmon_core::{Dur, Priority, Severity, Timestamp};
use secmon_respond::{
    Alert, AlertBook, AllowlistConfig, DecisionChange, DecisionOutcome, DecisionState, Decisions,
    RespondConfig, Scope, Store,
};

use crate::common::{at, fire};

const H: i64 = 60;

fn alert(store: &Store, rule: &str, group: &[(&str, &str)], t: Timestamp) -> Alert {
    let mut book = AlertBook::new(store);
    let mut f = fire(rule, group, t);
    f.severity = Severity::Critical;
    f.priority = Some(Priority::P1);
    book.fire(&f, t).unwrap().into_alert()
}

fn created(o: DecisionOutcome) -> secmon_respond::Decision {
    match o {
        DecisionOutcome::Created(d) => d,
        other => panic!("expected Created, got {other:?}"),
    }
}

#[test]
fn each_seed_action_makes_its_decision() {
    let store = Store::open_in_memory().unwrap();
    let cfg = RespondConfig::seed_defaults();
    let mut ds = Decisions::open(&store, &cfg.allowlist).unwrap();
    let cases: [(&str, &str, &str, Scope, i64); 5] = [
        ("block_ip", "fields.ip", "192.168.1.100", Scope::Ip, H),
        ("block_ip", "fields.identifier", "203.0.113.9", Scope::Ip, H),
        (
            "lock_account",
            "fields.email",
            "user@example.com",
            Scope::User,
            30,
        ),
        ("lock_vault", "fields.user_id", "u-42", Scope::Vault, 30),
        ("lock_admin", "fields.user_id", "admin-1", Scope::Admin, H),
    ];
    for (action, field, value, scope, mins) in cases {
        let a = alert(&store, action, &[(field, value)], at(0));
        let d = created(
            ds.from_action(action, &cfg.actions[action], &a, at(0))
                .unwrap(),
        );
        assert_eq!(d.scope, scope, "{action}");
        assert_eq!(d.value, value);
        assert_eq!(d.action, action);
        assert_eq!(d.origin_rule.as_deref(), Some(action));
        assert_eq!(d.alert_id, Some(a.id));
        assert_eq!(d.expires, at(mins), "{action}");
        assert!(d.reason.contains(action));
        assert_eq!(ds.get(&scope, value, at(1)).unwrap().id, d.id);
    }
    assert_eq!(ds.list_active(at(1)).len(), 5);
    // An alert without the value's field: nothing to decide.
    let a = alert(&store, "x", &[("fields.endpoint", "/login")], at(0));
    assert_eq!(
        ds.from_action("block_ip", &cfg.actions["block_ip"], &a, at(0))
            .unwrap(),
        DecisionOutcome::NotApplicable
    );
    // A rate-limit identifier that is not an IP cannot be blocked as one.
    let a = alert(&store, "y", &[("fields.identifier", "api-key-7")], at(0));
    assert!(matches!(
        ds.from_action("block_ip", &cfg.actions["block_ip"], &a, at(0))
            .unwrap(),
        DecisionOutcome::Refused { .. }
    ));
}

#[test]
fn allowlist_always_wins_and_refusals_are_logged() {
    let store = Store::open_in_memory().unwrap();
    let cfg = RespondConfig::seed_defaults();
    let allow = AllowlistConfig {
        cidrs: vec![
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "192.0.2.7".into(),
        ],
        users: vec!["Ops@Example.com".into(), "admin-1".into()],
    };
    let mut ds = Decisions::open(&store, &allow).unwrap();
    for (action, field, value) in [
        ("block_ip", "fields.ip", "10.20.30.40"),
        ("block_ip", "fields.ip", "::ffff:10.1.1.1"),
        ("block_ip", "fields.ip", "2001:db8::dead"),
        ("block_ip", "fields.ip", "192.0.2.7"),
        ("lock_account", "fields.email", "ops@example.com"),
        ("lock_admin", "fields.user_id", "admin-1"),
    ] {
        let a = alert(&store, "r", &[(field, value)], at(0));
        let o = ds
            .from_action(action, &cfg.actions[action], &a, at(0))
            .unwrap();
        assert_eq!(
            o,
            DecisionOutcome::Refused {
                reason: "allowlisted".into()
            },
            "{value}"
        );
    }
    // Manual decisions too.
    let o = ds
        .add_manual(
            &Scope::Ip,
            "10.0.0.1",
            Dur::from_mins(5),
            "test",
            "alice",
            at(0),
        )
        .unwrap();
    assert!(matches!(o, DecisionOutcome::Refused { .. }));
    assert!(ds.list_active(at(0)).is_empty());
    let refusals = ds.refusals(100).unwrap();
    assert_eq!(refusals.len(), 7);
    assert!(refusals.iter().all(|r| r.reason == "allowlisted"));
    // Just outside the allowlist is blocked.
    let a = alert(&store, "r", &[("fields.ip", "11.0.0.1")], at(0));
    created(
        ds.from_action("block_ip", &cfg.actions["block_ip"], &a, at(0))
            .unwrap(),
    );
}

#[test]
fn injection_attempts_are_refused() {
    let store = Store::open_in_memory().unwrap();
    let cfg = RespondConfig::seed_defaults();
    let mut ds = Decisions::open(&store, &cfg.allowlist).unwrap();
    let huge = "A".repeat(10 * 1024);
    let huge_ip = format!("1.2.3.4{}", " ".repeat(10 * 1024));
    let attempts: Vec<(&str, &str, &str)> = vec![
        ("block_ip", "fields.ip", "1.2.3.4; rm -rf /"),
        ("block_ip", "fields.ip", "../../etc"),
        ("block_ip", "fields.ip", "1.2.3.4\n5.6.7.8"),
        ("block_ip", "fields.ip", "$(reboot)"),
        ("block_ip", "fields.ip", &huge_ip),
        ("block_ip", "fields.ip", "127.0.0.1"),
        ("lock_account", "fields.email", "../../etc"),
        (
            "lock_account",
            "fields.email",
            "bob@example.com\nadmin@example.com",
        ),
        ("lock_account", "fields.email", "bob; rm -rf /"),
        ("lock_account", "fields.email", "--help"),
        ("lock_account", "fields.email", &huge),
        ("lock_vault", "fields.user_id", "u-1`id`"),
        ("lock_admin", "fields.user_id", "admin\u{0}"),
    ];
    for (action, field, value) in &attempts {
        let a = alert(&store, "inj", &[(field, value)], at(0));
        let o = ds
            .from_action(action, &cfg.actions[*action], &a, at(0))
            .unwrap();
        let DecisionOutcome::Refused { reason } = o else {
            panic!("{value:?} was not refused: {o:?}")
        };
        assert!(
            reason.len() < 100,
            "reason must not echo the value: {reason}"
        );
    }
    assert!(ds.list_active(at(0)).is_empty());
    let count: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
    // The audit log keeps an escaped, bounded excerpt.
    let refusals = ds.refusals(100).unwrap();
    assert_eq!(refusals.len(), attempts.len());
    for r in &refusals {
        assert!(!r.value.contains('\n'), "{:?}", r.value);
        assert!(r.value.len() < 300);
    }
    // Manual input goes through the same gate.
    assert!(matches!(
        ds.add_manual(
            &Scope::Ip,
            "1.2.3.4 ; reboot",
            Dur::from_mins(1),
            "x",
            "eve",
            at(0)
        )
        .unwrap(),
        DecisionOutcome::Refused { .. }
    ));
}

#[test]
fn ladder_escalates_repeat_offenders() {
    let store = Store::open_in_memory().unwrap();
    let cfg = RespondConfig::seed_defaults();
    let act = &cfg.actions["block_ip"];
    let mut ds = Decisions::open(&store, &cfg.allowlist).unwrap();
    let g = [("fields.ip", "192.168.1.100")];
    let mut t = at(0);
    let mut got = Vec::new();
    for _ in 0..5 {
        let a = alert(&store, "failed-logins-ip", &g, t);
        let d = created(ds.from_action("block_ip", act, &a, t).unwrap());
        let len = d.expires.since(d.created);
        got.push(len.as_millis() / 60_000);
        // The ban runs out, the address comes back and offends again.
        let expired = ds.expire_due(d.expires).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].state, DecisionState::Expired);
        t = d.expires.add(Dur::from_mins(1));
        if got.len() == 3 {
            break;
        }
    }
    assert_eq!(got, vec![60, 6 * 60, 24 * 60]);
    // Repeat fires during a standing ban neither climb the ladder nor duplicate it.
    let store2 = Store::open_in_memory().unwrap();
    let mut ds2 = Decisions::open(&store2, &cfg.allowlist).unwrap();
    let a = alert(&store2, "r", &g, at(0));
    let d = created(ds2.from_action("block_ip", act, &a, at(0)).unwrap());
    let o = ds2.from_action("block_ip", act, &a, at(0)).unwrap();
    assert_eq!(o, DecisionOutcome::AlreadyActive(d.clone()));
    // Later in the ban, the same offence extends it to a full hour from now.
    let o = ds2.from_action("block_ip", act, &a, at(30)).unwrap();
    let DecisionOutcome::Extended(e) = o else {
        panic!("{o:?}")
    };
    assert_eq!((e.id, e.expires), (d.id, at(90)));
    assert!(matches!(o_change(&ds2, &e), DecisionChange::Added(_)));
    // Outside the lookback the ladder starts over.
    ds2.expire_due(at(24 * H + 200)).unwrap();
    let a = alert(&store2, "r", &g, at(24 * H + 200));
    let d = created(
        ds2.from_action("block_ip", act, &a, at(24 * H + 200))
            .unwrap(),
    );
    assert_eq!(d.expires.since(d.created), Dur::from_mins(H));
}

fn o_change(_ds: &Decisions<'_>, d: &secmon_respond::Decision) -> DecisionChange {
    DecisionOutcome::Extended(d.clone()).change().unwrap()
}

#[test]
fn expiry_manual_add_delete_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secmon.db");
    let cfg = RespondConfig::seed_defaults();
    let (auto_id, manual_id, deleted_id) = {
        let store = Store::open(&path).unwrap();
        let mut ds = Decisions::open(&store, &cfg.allowlist).unwrap();
        let a = alert(&store, "r", &[("fields.email", "bob@example.com")], at(0));
        let auto = created(
            ds.from_action("lock_account", &cfg.actions["lock_account"], &a, at(0))
                .unwrap(),
        );
        let manual = created(
            ds.add_manual(
                &Scope::Ip,
                "198.51.100.4",
                Dur::from_mins(120),
                "scanner",
                "alice",
                at(0),
            )
            .unwrap(),
        );
        assert_eq!(manual.author.as_deref(), Some("alice"));
        assert_eq!(manual.action, "manual");
        let gone = created(
            ds.add_manual(
                &Scope::Custom("api_key".into()),
                "key_123",
                Dur::from_mins(60),
                "leak",
                "bob",
                at(0),
            )
            .unwrap(),
        );
        let ch = ds.delete(gone.id, "bob", at(5)).unwrap();
        let DecisionChange::Removed(r) = ch else {
            panic!()
        };
        assert_eq!(r.state, DecisionState::Deleted);
        assert_eq!(r.removed_by.as_deref(), Some("bob"));
        assert!(ds.delete(gone.id, "bob", at(6)).is_err());
        assert!(ds.delete(12345, "bob", at(6)).is_err());
        // Nothing due before the end; exactly at the end it is due.
        assert!(ds.expire_due(at(29)).unwrap().is_empty());
        assert!(ds.get(&Scope::User, "bob@example.com", at(29)).is_some());
        assert!(ds.get(&Scope::User, "bob@example.com", at(30)).is_none());
        (auto.id, manual.id, gone.id)
    };
    // Reopen: the index is rebuilt from disk, including the decision whose
    // time ran out while secmon was down, so expire_due can un-publish it.
    let store = Store::open(&path).unwrap();
    let mut ds = Decisions::open(&store, &cfg.allowlist).unwrap();
    let active: Vec<i64> = ds.list_active(at(10)).iter().map(|d| d.id).collect();
    assert_eq!(active, vec![auto_id, manual_id]);
    assert_eq!(
        ds.get(&Scope::Ip, "::ffff:198.51.100.4", at(10))
            .unwrap()
            .id,
        manual_id
    );
    let due = ds.expire_due(at(31)).unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![auto_id]);
    assert_eq!(
        ds.by_id(auto_id).unwrap().unwrap().state,
        DecisionState::Expired
    );
    assert_eq!(
        ds.by_id(deleted_id).unwrap().unwrap().state,
        DecisionState::Deleted
    );
    assert_eq!(ds.list_active(at(31)).len(), 1);
    // Manual re-add on an active target extends it.
    let o = ds
        .add_manual(
            &Scope::Ip,
            "198.51.100.4",
            Dur::from_mins(600),
            "again",
            "carol",
            at(40),
        )
        .unwrap();
    let DecisionOutcome::Extended(e) = o else {
        panic!("{o:?}")
    };
    assert_eq!((e.id, e.expires), (manual_id, at(640)));
    assert_eq!(ds.history(&Scope::Ip, "198.51.100.4").unwrap().len(), 1);
    drop(ds);
    let ds = Decisions::open(&store, &cfg.allowlist).unwrap();
    assert_eq!(
        ds.get(&Scope::Ip, "198.51.100.4", at(600)).unwrap().expires,
        at(640)
    );
}
