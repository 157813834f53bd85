use secmon_core::Timestamp;
use secmon_respond::alerts::fingerprint;
use secmon_respond::{
    AlertBook, AlertChange, AlertFilter, AlertStatus, Matcher, NewSilence, Store,
};

use crate::common::{T0, at, fire};

fn m(name: &str, value: &str) -> Matcher {
    Matcher {
        name: name.into(),
        value: value.into(),
        regex: false,
        negate: false,
    }
}

fn silence(matchers: Vec<Matcher>, starts: Timestamp, ends: Timestamp) -> NewSilence {
    NewSilence {
        matchers,
        starts,
        ends,
        author: "alice".into(),
        comment: "maintenance".into(),
    }
}

#[test]
fn same_rule_and_group_updates_different_group_opens() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let ip1 = [("fields.ip", "192.168.1.100")];
    let a = book
        .fire(&fire("failed-logins-ip", &ip1, at(0)), at(0))
        .unwrap();
    assert!(matches!(a, AlertChange::Opened(_)));
    let mut f = fire("failed-logins-ip", &ip1, at(2));
    f.value = 12.0;
    let b = book.fire(&f, at(2)).unwrap();
    let AlertChange::Updated(b) = b else {
        panic!("expected update, got {b:?}")
    };
    assert_eq!(b.id, a.alert().id);
    assert_eq!(b.count, 2);
    assert_eq!(b.first_seen, at(0));
    assert_eq!(b.last_seen, at(2));
    assert_eq!(b.value, 12.0);
    // Out-of-order fire: last_seen does not go backwards.
    let c = book
        .fire(&fire("failed-logins-ip", &ip1, at(1)), at(3))
        .unwrap();
    assert_eq!(c.alert().last_seen, at(2));
    assert_eq!(c.alert().count, 3);

    let other = book
        .fire(
            &fire("failed-logins-ip", &[("fields.ip", "10.0.0.1")], at(2)),
            at(2),
        )
        .unwrap();
    assert!(matches!(other, AlertChange::Opened(_)));
    assert_ne!(other.alert().id, a.alert().id);
    // Same group under another rule is another alert.
    let r2 = book
        .fire(&fire("rate-limit-burst", &ip1, at(2)), at(2))
        .unwrap();
    assert!(matches!(r2, AlertChange::Opened(_)));

    // Group order does not matter for identity.
    let g1 = [
        ("a".to_string(), "1".to_string()),
        ("b".to_string(), "2".to_string()),
    ];
    let g2 = [
        ("b".to_string(), "2".to_string()),
        ("a".to_string(), "1".to_string()),
    ];
    assert_eq!(fingerprint("r", &g1), fingerprint("r", &g2));
    // Length-prefixing: no ambiguity between ("ab","c") and ("a","bc").
    let x = [("ab".to_string(), "c".to_string())];
    let y = [("a".to_string(), "bc".to_string())];
    assert_ne!(fingerprint("r", &x), fingerprint("r", &y));
    assert_eq!(fingerprint("r", &x).len(), 32);
}

#[test]
fn resolve_closes_and_next_fire_reopens() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let g = [("fields.ip", "192.168.1.100")];
    let a = book
        .fire(&fire("r", &g, at(0)), at(0))
        .unwrap()
        .into_alert();
    let group: Vec<(String, String)> = vec![("fields.ip".into(), "192.168.1.100".into())];
    let r = book.resolve("r", &group, at(10)).unwrap().unwrap();
    assert_eq!(r.id, a.id);
    assert_eq!(r.status, AlertStatus::Resolved);
    assert_eq!(r.resolved_at, Some(at(10)));
    assert!(book.resolve("r", &group, at(11)).unwrap().is_none());
    assert!(book.resolve("unknown", &group, at(11)).unwrap().is_none());
    let again = book.fire(&fire("r", &g, at(20)), at(20)).unwrap();
    assert!(matches!(again, AlertChange::Opened(_)));
    assert_ne!(again.alert().id, a.id);
    assert_eq!(again.alert().fingerprint, a.fingerprint);

    let firing = book
        .list(&AlertFilter {
            status: Some(AlertStatus::Firing),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(firing.len(), 1);
    let all: Vec<i64> = book.all_firing().unwrap().iter().map(|a| a.id).collect();
    assert_eq!(all, [again.alert().id], "only the firing one, uncapped");
    assert_eq!(book.list(&AlertFilter::default()).unwrap().len(), 2);
    assert_eq!(
        book.get(a.id).unwrap().unwrap().status,
        AlertStatus::Resolved
    );
}

#[test]
fn silences_match_rule_label_group_and_regex() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let end = at(60);
    let by_rule = book
        .create_silence(&silence(vec![m("rule", "r-rule")], T0, end), T0)
        .unwrap();
    let by_label = book
        .create_silence(
            &silence(
                vec![m("rule", "r-label"), m("label.team", "security")],
                T0,
                end,
            ),
            T0,
        )
        .unwrap();
    let by_group = book
        .create_silence(&silence(vec![m("fields.ip", "10.9.9.9")], T0, end), T0)
        .unwrap();
    let mut re = m("fields.email", r".*@example\.com");
    re.regex = true;
    let by_regex = book
        .create_silence(&silence(vec![re], T0, end), T0)
        .unwrap();

    let s = |c: AlertChange| c.alert().silenced_by;
    assert_eq!(
        s(book
            .fire(&fire("r-rule", &[("fields.ip", "1.1.1.1")], at(1)), at(1))
            .unwrap()),
        Some(by_rule.id)
    );
    assert_eq!(
        s(book.fire(&fire("r-label", &[], at(1)), at(1)).unwrap()),
        Some(by_label.id)
    );
    assert_eq!(
        s(book
            .fire(&fire("x", &[("fields.ip", "10.9.9.9")], at(1)), at(1))
            .unwrap()),
        Some(by_group.id)
    );
    assert_eq!(
        s(book
            .fire(
                &fire("x", &[("fields.email", "bob@example.com")], at(1)),
                at(1)
            )
            .unwrap()),
        Some(by_regex.id)
    );
    // Anchored: a suffix match is not a match.
    let c = book
        .fire(
            &fire("x", &[("fields.email", "bob@example.com.evil")], at(1)),
            at(1),
        )
        .unwrap();
    assert!(!c.is_silenced());
    // Label present but different value.
    let mut f = fire("r-label", &[("k", "v")], at(1));
    f.labels.insert("team".into(), "ops".into());
    assert!(!book.fire(&f, at(1)).unwrap().is_silenced());
    // Negation.
    let mut neg = m("rule", "keep-me");
    neg.negate = true;
    let all_but = book
        .create_silence(&silence(vec![neg, m("label.team", "noisy")], T0, end), T0)
        .unwrap();
    let mut f = fire("other", &[("k", "1")], at(1));
    f.labels.insert("team".into(), "noisy".into());
    assert_eq!(s(book.fire(&f, at(1)).unwrap()), Some(all_but.id));
    let mut f = fire("keep-me", &[("k", "1")], at(1));
    f.labels.insert("team".into(), "noisy".into());
    assert!(!book.fire(&f, at(1)).unwrap().is_silenced());

    // Invalid silences.
    assert!(book.create_silence(&silence(vec![], T0, end), T0).is_err());
    assert!(
        book.create_silence(&silence(vec![m("rule", "x")], end, T0), T0)
            .is_err()
    );
    let mut bad = m("rule", "(");
    bad.regex = true;
    assert!(
        book.create_silence(&silence(vec![bad], T0, end), T0)
            .is_err()
    );
}

#[test]
fn silence_window_and_expiry_with_manual_clock() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let sil = book
        .create_silence(&silence(vec![m("rule", "r")], at(10), at(20)), T0)
        .unwrap();
    let g = [("fields.ip", "1.2.3.4")];
    // Before the window: notified.
    assert!(
        !book
            .fire(&fire("r", &g, at(5)), at(5))
            .unwrap()
            .is_silenced()
    );
    // Inside: recorded (count goes up) but silenced.
    let c = book.fire(&fire("r", &g, at(10)), at(10)).unwrap();
    assert_eq!(c.alert().silenced_by, Some(sil.id));
    assert_eq!(c.alert().count, 2);
    // The end is exclusive.
    assert!(
        !book
            .fire(&fire("r", &g, at(20)), at(20))
            .unwrap()
            .is_silenced()
    );
    // Expire early by hand.
    let s2 = book
        .create_silence(&silence(vec![m("rule", "r")], at(20), at(60)), at(20))
        .unwrap();
    assert!(
        book.fire(&fire("r", &g, at(21)), at(21))
            .unwrap()
            .is_silenced()
    );
    let expired = book.expire_silence(s2.id, at(22)).unwrap();
    assert_eq!(expired.ends, at(22));
    assert!(
        !book
            .fire(&fire("r", &g, at(22)), at(22))
            .unwrap()
            .is_silenced()
    );
    assert_eq!(book.list_silences(Some(at(22))).unwrap().len(), 0);
    assert_eq!(book.list_silences(None).unwrap().len(), 2);
    assert!(book.expire_silence(999, at(22)).is_err());
}

#[test]
fn alerts_and_silences_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/secmon.db");
    let (id, fp) = {
        let store = Store::open(&path).unwrap();
        let mut book = AlertBook::new(&store);
        book.create_silence(&silence(vec![m("rule", "quiet")], T0, at(60)), T0)
            .unwrap();
        let g = [("fields.ip", "192.168.1.100")];
        book.fire(&fire("r", &g, at(0)), at(0)).unwrap();
        let a = book
            .fire(&fire("r", &g, at(1)), at(1))
            .unwrap()
            .into_alert();
        (a.id, a.fingerprint)
    };
    let store = Store::open(&path).unwrap();
    let mut book = AlertBook::new(&store);
    let a = book.get(id).unwrap().unwrap();
    assert_eq!(a.count, 2);
    assert_eq!(
        a.group,
        vec![("fields.ip".to_string(), "192.168.1.100".to_string())]
    );
    assert_eq!(a.labels["team"], "security");
    assert_eq!(book.firing(&fp).unwrap().unwrap().id, id);
    // Dedup continues across the restart.
    let c = book
        .fire(&fire("r", &[("fields.ip", "192.168.1.100")], at(2)), at(2))
        .unwrap();
    assert!(matches!(c, AlertChange::Updated(_)));
    assert_eq!(c.alert().count, 3);
    assert!(
        book.fire(&fire("quiet", &[], at(2)), at(2))
            .unwrap()
            .is_silenced()
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn nan_value_round_trips() {
    let store = Store::open_in_memory().unwrap();
    let mut book = AlertBook::new(&store);
    let mut f = fire("r", &[], at(0));
    f.value = f64::NAN;
    let a = book.fire(&f, at(0)).unwrap().into_alert();
    assert!(book.get(a.id).unwrap().unwrap().value.is_nan());
}
