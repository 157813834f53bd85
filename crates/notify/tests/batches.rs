//! What a batch owes survives a crash: alerts waiting for `group_wait` /
//! `group_interval` are recorded in the store with the outbox writes of the
//! same cycle, and a new batcher takes them back (with the firing alerts
//! already told) so that every alert is notified exactly once.

mod common;

use std::collections::BTreeMap;

use common::{alert, config};
use rusqlite::Connection;
use secmon_core::{Dur, Timestamp};
use secmon_notify::{AlertStatus, AlertView, Batcher, Message, Outbox};
use serde_json::json;

const T0: Timestamp = Timestamp(1_705_312_200_000);

fn t(s: i64) -> Timestamp {
    T0.add(Dur::from_secs(s))
}

fn cfg() -> secmon_notify::NotifyConfig {
    config(json!({
        "receivers": [
            {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"},
            {"name": "mail", "kind": "email", "host": "127.0.0.1", "security": "none",
             "from": "a@example.com", "to": ["b@example.com"]},
            {"name": "now", "kind": "webhook", "url": "http://127.0.0.1:9/y"}
        ],
        "routes": [
            {"receivers": ["now"], "group_wait": "0s", "continue": true},
            {"receivers": ["hook", "mail"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}
        ],
        "rate_limit": {"per_minute": 1000, "burst": 1000}
    }))
}

fn a(fp: &str, ip: &str, status: AlertStatus) -> AlertView {
    let mut a = alert();
    a.fingerprint = fp.into();
    a.group = vec![("ip".into(), ip.into())];
    a.status = status;
    a
}

/// One cycle of the response stage: flush what is due, write the messages
/// and the batcher's changes in one transaction.
fn cycle(b: &mut Batcher, ob: &Outbox<'_>, conn: &Connection, now: Timestamp) -> Vec<Message> {
    conn.execute_batch("BEGIN IMMEDIATE").expect("store");
    let msgs = b.flush_due(now);
    for m in &msgs {
        ob.enqueue(m, now).expect("store");
    }
    ob.save_batch_changes(&b.take_changes()).expect("store");
    conn.execute_batch("COMMIT").expect("store");
    msgs
}

/// (receiver, [(fingerprint, status)]) of each message.
fn summary(msgs: &[Message]) -> Vec<(String, Vec<(String, AlertStatus)>)> {
    msgs.iter()
        .map(|m| {
            (
                m.receiver.clone(),
                m.alerts
                    .iter()
                    .map(|a| (a.fingerprint.clone(), a.status))
                    .collect(),
            )
        })
        .collect()
}

fn restart(
    conn: &Connection,
    ob: &Outbox<'_>,
    firing: &[AlertView],
    now: Timestamp,
) -> (Batcher, secmon_notify::Restored) {
    let mut b = Batcher::new(&cfg(), now).expect("store");
    conn.execute_batch("BEGIN IMMEDIATE").expect("store");
    let owed = ob.take_owed().expect("store");
    let r = b.restore(owed, firing, now);
    ob.save_batch_changes(&b.take_changes()).expect("store");
    conn.execute_batch("COMMIT").expect("store");
    (b, r)
}

#[test]
fn group_wait_zero_costs_no_store_write() {
    let conn = Connection::open_in_memory().unwrap();
    let ob = Outbox::new(&conn, Dur::from_mins(2)).unwrap();
    let c = config(json!({
        "receivers": [{"name": "now", "kind": "webhook", "url": "http://127.0.0.1:9/y"}],
        "routes": [{"receivers": ["now"], "group_wait": "0s", "group_by": ["ip"]}],
        "rate_limit": {"per_minute": 1000, "burst": 1000}
    }));
    let mut b = Batcher::new(&c, t(0)).unwrap();
    for i in 0..100 {
        b.push(
            &a(
                &format!("f{i}"),
                &format!("10.0.0.{i}"),
                AlertStatus::Firing,
            ),
            t(0),
        );
    }
    assert_eq!(b.flush_groups_due(t(0)).len(), 100);
    assert!(b.take_changes().is_empty(), "flushed in the same cycle");
    assert_eq!(ob.owed_count().unwrap(), 0);
}

#[test]
fn a_crash_during_group_wait_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("secmon.db")).unwrap();
    let ob = Outbox::new(&conn, Dur::from_mins(2)).unwrap();
    let mut b = Batcher::new(&cfg(), t(0)).unwrap();

    // f1 and f2 fire together and are told after group_wait.
    b.push(&a("f1", "10.0.0.1", AlertStatus::Firing), t(0));
    b.push(&a("f2", "10.0.0.2", AlertStatus::Firing), t(0));
    let m = cycle(&mut b, &ob, &conn, t(0));
    assert_eq!(
        summary(&m),
        [(
            "now".into(),
            vec![
                ("f1".into(), AlertStatus::Firing),
                ("f2".into(), AlertStatus::Firing)
            ]
        )],
        "the group_wait 0 route at once"
    );
    assert_eq!(ob.owed_count().unwrap(), 4, "f1, f2 owed to hook and mail");
    let m = cycle(&mut b, &ob, &conn, t(30));
    assert_eq!(
        summary(&m),
        [
            (
                "hook".into(),
                vec![
                    ("f1".into(), AlertStatus::Firing),
                    ("f2".into(), AlertStatus::Firing)
                ]
            ),
            (
                "mail".into(),
                vec![
                    ("f1".into(), AlertStatus::Firing),
                    ("f2".into(), AlertStatus::Firing)
                ]
            ),
        ]
    );
    assert_eq!(ob.owed_count().unwrap(), 0, "told: nothing owed");

    // Then f3 fires and f1 resolves: both wait for group_interval (t(330)).
    b.push(&a("f3", "10.0.0.3", AlertStatus::Firing), t(40));
    b.push(&a("f1", "10.0.0.1", AlertStatus::Resolved), t(50));
    cycle(&mut b, &ob, &conn, t(50));
    // hook and now owe f3 and f1 (resolved), mail only f3 (it takes no
    // resolved). now's group_interval is 5m too.
    assert_eq!(ob.owed_count().unwrap(), 5);
    let queued_before = ob.depth().unwrap();

    // kill -9: the batcher is gone. The store's firing alerts are f2, f3.
    drop(b);
    let firing = [
        a("f2", "10.0.0.2", AlertStatus::Firing),
        a("f3", "10.0.0.3", AlertStatus::Firing),
    ];
    let (mut b, restored) = restart(&conn, &ob, &firing, t(100));
    assert_eq!(restored.owed, 5);
    assert_eq!(restored.told, 3, "f2 on hook, mail and now");
    assert_eq!(ob.owed_count().unwrap(), 5, "still owed after the restart");

    // Not before each batch was due; then exactly the owed messages.
    assert!(cycle(&mut b, &ob, &conn, t(299)).is_empty());
    let m = cycle(&mut b, &ob, &conn, t(300));
    assert_eq!(
        summary(&m),
        [(
            "now".into(),
            vec![
                ("f1".into(), AlertStatus::Resolved),
                ("f3".into(), AlertStatus::Firing)
            ]
        )]
    );
    assert!(cycle(&mut b, &ob, &conn, t(329)).is_empty());
    let m = cycle(&mut b, &ob, &conn, t(330));
    assert_eq!(
        summary(&m),
        [
            (
                "hook".into(),
                vec![
                    ("f1".into(), AlertStatus::Resolved),
                    ("f3".into(), AlertStatus::Firing)
                ]
            ),
            ("mail".into(), vec![("f3".into(), AlertStatus::Firing)]),
        ]
    );
    assert_eq!(ob.depth().unwrap(), queued_before + 3);
    assert_eq!(ob.owed_count().unwrap(), 0);

    // Further fires of told alerts notify no one again; f2's resolve is
    // sent to hook (not to mail) after group_interval.
    b.push(&a("f2", "10.0.0.2", AlertStatus::Firing), t(400));
    b.push(&a("f3", "10.0.0.3", AlertStatus::Firing), t(400));
    assert!(cycle(&mut b, &ob, &conn, t(1000)).is_empty());
    b.push(&a("f2", "10.0.0.2", AlertStatus::Resolved), t(1100));
    let m = cycle(&mut b, &ob, &conn, t(1100));
    let m: BTreeMap<_, _> = summary(&m).into_iter().collect();
    assert_eq!(
        m.get("hook"),
        Some(&vec![("f2".into(), AlertStatus::Resolved)])
    );
    assert_eq!(m.get("mail"), None, "email takes no resolved");
    // f3 repeats an hour after it was told (f3 at 330 on hook and mail).
    assert!(cycle(&mut b, &ob, &conn, t(330 + 3599)).is_empty());
    let m = cycle(&mut b, &ob, &conn, t(330 + 3600));
    let receivers: Vec<String> = summary(&m).into_iter().map(|(r, _)| r).collect();
    assert_eq!(receivers, ["hook", "mail"]);
}

#[test]
fn a_restart_after_the_due_time_sends_at_once_and_dropped_routes_are_forgotten() {
    let conn = Connection::open_in_memory().unwrap();
    let ob = Outbox::new(&conn, Dur::from_mins(2)).unwrap();
    let mut b = Batcher::new(&cfg(), t(0)).unwrap();
    b.push(&a("f1", "10.0.0.1", AlertStatus::Firing), t(0));
    cycle(&mut b, &ob, &conn, t(0));
    drop(b);
    // Down for an hour: the batch (due at t(30)) goes out at the restart.
    let firing = [a("f1", "10.0.0.1", AlertStatus::Firing)];
    let (mut b, r) = restart(&conn, &ob, &firing, t(3600));
    assert_eq!((r.owed, r.told), (2, 1));
    let m = cycle(&mut b, &ob, &conn, t(3600));
    assert_eq!(summary(&m).len(), 2, "hook and mail");

    // An owed alert whose receiver no longer routes it is dropped.
    let mut b = Batcher::new(&cfg(), t(0)).unwrap();
    b.push(&a("f9", "10.0.0.9", AlertStatus::Firing), t(4000));
    cycle(&mut b, &ob, &conn, t(4000));
    assert_eq!(ob.owed_count().unwrap(), 2);
    let other = config(json!({
        "receivers": [{"name": "now", "kind": "webhook", "url": "http://127.0.0.1:9/y"}],
        "routes": [{"receivers": ["now"], "group_wait": "0s"}]
    }));
    let mut b = Batcher::new(&other, t(5000)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = b.restore(ob.take_owed().unwrap(), &[], t(5000));
    ob.save_batch_changes(&b.take_changes()).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(r.owed, 0);
    assert_eq!(ob.owed_count().unwrap(), 0);
    assert!(b.flush_due(t(6000)).is_empty());
}

/// Two routes to one receiver: the one that already sent its message is
/// told, only the one still waiting is owed; after the routes were edited
/// (the stored route no longer sends to the receiver) the alert is owed on
/// the receiver's current route instead of being lost.
#[test]
fn owed_entries_follow_their_route_or_the_receivers_current_one() {
    let two = config(json!({
        "receivers": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
        "routes": [
            {"receivers": ["hook"], "group_wait": "0s", "continue": true},
            {"receivers": ["hook"], "group_wait": "30s", "group_by": ["ip"]}
        ]
    }));
    let one = config(json!({
        "receivers": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
        "routes": [{"receivers": ["hook"], "group_wait": "10s"}]
    }));
    let f1 = a("f1", "10.0.0.1", AlertStatus::Firing);
    let reopen = |c: &secmon_notify::NotifyConfig, conn: &Connection, ob: &Outbox<'_>, now| {
        let mut b = Batcher::new(c, now).expect("batcher");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let r = b.restore(
            ob.take_owed().expect("owed"),
            std::slice::from_ref(&f1),
            now,
        );
        ob.save_batch_changes(&b.take_changes()).expect("save");
        conn.execute_batch("COMMIT").expect("commit");
        (b, r)
    };
    for (after, due) in [(&two, t(30)), (&one, t(30))] {
        let conn = Connection::open_in_memory().unwrap();
        let ob = Outbox::new(&conn, Dur::from_mins(2)).unwrap();
        let mut b = Batcher::new(&two, t(0)).unwrap();
        b.push(&f1, t(0));
        assert_eq!(cycle(&mut b, &ob, &conn, t(0)).len(), 1, "route 0 at once");
        assert_eq!(ob.owed_count().unwrap(), 1, "route 1 waits");
        drop(b);
        let (mut b, r) = reopen(after, &conn, &ob, t(5));
        assert_eq!(r.owed, 1);
        assert!(cycle(&mut b, &ob, &conn, due.sub(Dur::from_millis(1))).is_empty());
        let m = cycle(&mut b, &ob, &conn, due);
        assert_eq!(
            summary(&m),
            [("hook".into(), vec![("f1".into(), AlertStatus::Firing)])],
            "one message, from the route that owed it"
        );
        assert!(cycle(&mut b, &ob, &conn, t(1000)).is_empty());
    }
}
