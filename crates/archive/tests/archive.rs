//! The archive end to end over the in-memory storage with a manual clock:
//! round trip, group commit, audit, retention, legal holds, erasure, key
//! rotation, recovery and power loss.

mod common;

use std::sync::Arc;

use common::*;
use secmon_archive::{
    AUDIT, Archive, ERASED, Error, Keys, MasterKey, MemStorage, Query, SigningKey, Storage,
};
use secmon_core::{Event, Timestamp, Value};

#[test]
fn round_trip_routes_and_audits_search() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 100, T0);
    let got = all(&mut a, T0 + 200_000);
    assert_eq!(got.len(), 100);
    let mut ns: Vec<i64> = got.iter().map(n_of).collect();
    ns.sort();
    assert_eq!(ns, (0..100).collect::<Vec<_>>());
    assert_eq!(
        got.iter().find(|e| n_of(e) == 5).unwrap(),
        &event(5, T0 + 5000)
    );
    for cat in ["auth", "access", "security", "debug", AUDIT] {
        assert!(!segs(&st, cat).is_empty(), "{cat}");
    }
    // No personal data in clear on disk.
    for p in st.paths() {
        let b = st.read(&p).unwrap();
        assert!(!b.windows(5).any(|w| w == b"alice"), "{p}");
    }
    // Category, time range, predicate and limit.
    let q = Query {
        categories: vec!["auth".into()],
        from: Some(Timestamp(T0 + 10_000)),
        to: Some(Timestamp(T0 + 50_000)),
        text: "event = auth.login_failed".into(),
        ..Default::default()
    };
    let pred = |e: &Event| e.get("fields.user_id") == Some(&Value::from("alice"));
    let (hits, sum) = a
        .search_collect(&q, &pred, "ops@example.com", Timestamp(T0 + 300_000))
        .unwrap();
    let ns: Vec<i64> = hits.iter().map(|h| n_of(&h.event)).collect();
    assert_eq!(ns, vec![12, 24, 36, 48]);
    assert_eq!(sum.hits, 4);
    assert_eq!(sum.scanned, 10);
    // The search itself is in the audit category.
    let q = Query {
        categories: vec![AUDIT.into()],
        ..Default::default()
    };
    let (audit, _) = a
        .search_collect(&q, &|_| true, "t", Timestamp(T0 + 400_000))
        .unwrap();
    let s = audit
        .iter()
        .find(|h| h.event.get("archive.who") == Some(&Value::from("ops@example.com")))
        .expect("search audited");
    assert_eq!(s.event.get("archive.records"), Some(&Value::Int(4)));
    assert_eq!(
        s.event.get("archive.query"),
        Some(&Value::from("event = auth.login_failed"))
    );
    assert!(verify(&st, None).ok());
}

#[test]
fn group_commit_acknowledges_after_the_interval() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    let lsn = a
        .append(&[event(0, T0), event(1, T0)], Timestamp(T0))
        .unwrap();
    assert_eq!(lsn, 2);
    assert_eq!(a.durable_lsn(), 0);
    assert_eq!(a.next_deadline(), Some(Timestamp(T0 + 100)));
    assert_eq!(a.tick(Timestamp(T0 + 50)).unwrap(), 0);
    a.append(&[event(2, T0)], Timestamp(T0 + 60)).unwrap();
    assert_eq!(a.tick(Timestamp(T0 + 100)).unwrap(), 3);
    assert_eq!(a.next_deadline(), None);
    // What was acknowledged survives a power loss; what was not may not.
    a.append(&[event(3, T0)], Timestamp(T0 + 120)).unwrap();
    drop(a);
    st.power_loss();
    let mut a = open(&st, T0 + 1000);
    let ns: Vec<i64> = all(&mut a, T0 + 2000).iter().map(n_of).collect();
    assert_eq!(ns.len(), 3, "{ns:?}");
    assert!(verify(&st, None).ok());
}

#[test]
fn second_writer_is_refused() {
    let st = MemStorage::new();
    let _a = open(&st, T0);
    let e = Archive::open(Arc::new(st.clone()), policy(), keys(), Timestamp(T0))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Locked(_)), "{e}");
}

#[test]
fn reopen_continues_chain_in_new_segments() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 40, T0);
    a.close(Timestamp(T0 + 50_000)).unwrap();
    let mut a = open(&st, T0 + 60_000);
    fill(&mut a, 40, T0 + 60_000);
    a.close(Timestamp(T0 + 200_000)).unwrap();
    assert!(segs(&st, "auth").len() >= 2);
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.checkpoints >= 4);
    assert!(r.records >= 80);
}

#[test]
fn day_rollover_opens_new_segments_with_checkpoints() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    for d in 0..3 {
        let t = T0 + d * DAY;
        a.append(&[event(0, t), event(1, t)], Timestamp(t)).unwrap();
        a.sync(Timestamp(t)).unwrap();
    }
    assert_eq!(segs(&st, "auth").len(), 3);
    assert!(verify(&st, None).ok());
}

#[test]
fn torn_tail_is_truncated_and_audited_at_every_offset() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 20, T0);
    // One more auth event, synced: its record is the last of the segment.
    a.append(&[event(20, T0 + 100_000)], Timestamp(T0 + 100_000))
        .unwrap();
    a.sync(Timestamp(T0 + 100_000)).unwrap();
    drop(a);
    st.crash();
    let path = segs(&st, "auth").pop().unwrap();
    let full = st.read(&path).unwrap();
    let before = st.snapshot();
    // A crash mid-write leaves part of a record (never synced, never
    // checkpointed) after the last complete one: model it with every
    // prefix of a copy of the last record.
    use secmon_archive::internals::{Frames, Next, SegmentHeader};
    let h = SegmentHeader::parse(&path, &full).unwrap();
    let mut f = Frames::new(&full, h.len);
    let mut last = 0;
    while let Next::Record(r) = f.next_record() {
        last = r.offset as usize;
    }
    let rec = full[last..].to_vec();
    for k in (1..rec.len()).step_by(17) {
        let s = before.snapshot();
        let mut torn = full.clone();
        torn.extend_from_slice(&rec[..k]);
        s.put(&path, torn);
        let (mut a, rep) =
            Archive::open(Arc::new(s.clone()), policy(), keys(), Timestamp(T0 + DAY)).unwrap();
        assert_eq!(rep.repairs.len(), 1, "{:?}", rep.repairs);
        assert!(
            rep.repairs[0].contains(&format!("offset {}", full.len())),
            "{}",
            rep.repairs[0]
        );
        assert_eq!(s.read(&path).unwrap(), full);
        let ns: Vec<i64> = all(&mut a, T0 + DAY).iter().map(n_of).collect();
        assert_eq!(ns.len(), 21);
        let q = Query {
            categories: vec![AUDIT.into()],
            ..Default::default()
        };
        let (audit, _) = a
            .search_collect(&q, &|_| true, "t", Timestamp(T0 + DAY))
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|h| h.event.name() == Some("archive.recover"))
        );
        drop(a);
        let r = verify(&s, None);
        assert!(r.ok(), "k {k}: {:?}", r.problems);
    }
}

#[test]
fn power_loss_keeps_every_acknowledged_event() {
    // Seeded pseudo-random workload: batches, syncs at random points, power loss.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..4 {
        let st = MemStorage::new();
        let mut acked = 0u64;
        let mut written = 0u64;
        let mut now = T0;
        for life in 0..3 {
            let mut a = open(&st, now);
            let base = written;
            let mut lsn0 = 0;
            for _ in 0..(next() % 20) {
                let k = 1 + next() % 30;
                let evs: Vec<Event> = (0..k).map(|i| event(written + i, now)).collect();
                written += k;
                a.append(&evs, Timestamp(now)).unwrap();
                now += (next() % 80) as i64;
                let d = a.tick(Timestamp(now)).unwrap();
                lsn0 = lsn0.max(d);
            }
            acked = acked.max(base + a.durable_lsn());
            drop(a);
            st.power_loss();
            // Recovered: a prefix of what was written, containing every acked event.
            let mut a = open(&st, now);
            let mut ns: Vec<i64> = all(&mut a, now).iter().map(n_of).collect();
            ns.sort();
            let n = ns.len() as u64;
            assert!(n >= acked, "round {round} life {life}: {n} < {acked}");
            assert_eq!(ns, (0..n as i64).collect::<Vec<_>>());
            written = n;
            drop(a);
            st.crash();
            let r = verify(&st, None);
            assert!(r.ok(), "round {round}: {:?}", r.problems);
        }
    }
}

#[test]
fn retention_prunes_per_category_with_audit_and_holds() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    for d in 0..10 {
        let t = T0 + d * DAY;
        let evs: Vec<Event> = (0..8).map(|i| event(i, t)).collect();
        a.append(&evs, Timestamp(t)).unwrap();
        a.sync(Timestamp(t)).unwrap();
    }
    let debug_before = segs(&st, "debug").len();
    assert_eq!(debug_before, 10);
    // A hold on debug for day 2 blocks pruning from there on.
    let hold = a
        .add_hold(
            Some("debug"),
            Some(Timestamp(T0 + 2 * DAY)),
            Some(Timestamp(T0 + 2 * DAY + HOUR)),
            "case 17",
            "legal",
            Timestamp(T0 + 10 * DAY),
        )
        .unwrap();
    let now = Timestamp(T0 + 16 * DAY);
    let rep = a.prune("retention", now).unwrap();
    // debug 7d: days 0..=8 expired at day 16 (newest event + 7d <= now),
    // but day 2 is held, so only days 0 and 1 go.
    assert_eq!(rep.removed.len(), 2, "{rep:?}");
    assert!(rep.removed.iter().all(|p| p.starts_with("seg/debug/")));
    assert_eq!(rep.held.len(), 1);
    assert_eq!(rep.held[0].1, hold);
    assert!(verify(&st, None).ok(), "{:?}", verify(&st, None).problems);
    a.release_hold(hold, "legal", now).unwrap();
    let rep = a.prune("retention", now).unwrap();
    // Days 2..=9 (the quiet day-9 segment is closed and an empty segment
    // carries the chain on).
    assert_eq!(rep.removed.len(), 8, "{rep:?}");
    assert_eq!(segs(&st, "debug").len(), 1);
    // access (30d) after 45 days: every segment goes, an empty one anchors the chain.
    let later = Timestamp(T0 + 45 * DAY);
    let rep = a.prune("retention", later).unwrap();
    assert!(rep.removed.iter().any(|p| p.starts_with("seg/access/")));
    assert!(!rep.removed.iter().any(|p| p.starts_with("seg/auth/")));
    assert!(!rep.removed.iter().any(|p| p.starts_with("seg/security/")));
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    // Each removal is an audit record.
    let q = Query {
        categories: vec![AUDIT.into()],
        ..Default::default()
    };
    let (audit, _) = a.search_collect(&q, &|_| true, "t", later).unwrap();
    let prunes = audit
        .iter()
        .filter(|h| h.event.name() == Some("archive.prune"))
        .count();
    assert_eq!(prunes, 2 + 8 + 10, "{prunes}");
    // Chain continues after pruning everything of a category.
    a.append(&[event(1, later.0)], later).unwrap();
    a.close(later).unwrap();
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
}

#[test]
fn six_year_retention_category() {
    let mut c = config();
    c.categories.insert(
        0,
        serde_json::from_value(serde_json::json!({"name": "hipaa", "retention": "2190d", "routes": [{"event": "http.*"}]})).unwrap(),
    );
    let p = c.validate(&[]).unwrap();
    let st = MemStorage::new();
    let (mut a, _) = Archive::open(Arc::new(st.clone()), p, keys(), Timestamp(T0)).unwrap();
    a.append(&[event(1, T0)], Timestamp(T0)).unwrap();
    a.sync(Timestamp(T0)).unwrap();
    a.append(&[event(1, T0 + DAY)], Timestamp(T0 + DAY))
        .unwrap();
    a.sync(Timestamp(T0 + DAY)).unwrap();
    let five_years = Timestamp(T0 + 5 * 365 * DAY);
    assert!(a.prune("r", five_years).unwrap().removed.is_empty());
    let six_years = Timestamp(T0 + 2190 * DAY + 1);
    let rep = a.prune("r", six_years).unwrap();
    assert_eq!(rep.removed, segs_removed(&rep.removed, "hipaa"));
    assert_eq!(rep.removed.len(), 1);
}

fn segs_removed(v: &[String], cat: &str) -> Vec<String> {
    v.iter()
        .filter(|p| p.starts_with(&format!("seg/{cat}/")))
        .cloned()
        .collect()
}

#[test]
fn erasure_shreds_one_subject_and_keeps_the_chain() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 30, T0);
    let backup = st.snapshot();
    let hold = a
        .add_hold(None, None, None, "litigation", "legal", Timestamp(T0 + DAY))
        .unwrap();
    let e = a.erase("alice", "dpo", Timestamp(T0 + DAY)).unwrap_err();
    assert!(matches!(e, Error::Held { id, .. } if id == hold), "{e}");
    a.release_hold(hold, "legal", Timestamp(T0 + DAY)).unwrap();
    let rep = a.erase("alice", "dpo", Timestamp(T0 + DAY)).unwrap();
    assert!(rep.found);
    assert_eq!(rep.key_epoch, 1);
    assert!(!a.erase("alice", "dpo", Timestamp(T0 + DAY)).unwrap().found);
    let evs = all(&mut a, T0 + DAY);
    assert_eq!(evs.len(), 30);
    for e in &evs {
        let alice = n_of(e) % 3 == 0;
        let email = e.get("fields.email").and_then(|v| v.as_str()).unwrap();
        if alice {
            assert_eq!(email, ERASED);
            assert_eq!(e.get("fields.ip"), Some(&Value::from(ERASED)));
            assert_eq!(e.get("fields.user_id"), Some(&Value::from(ERASED)));
            assert_eq!(e.raw.as_deref(), Some(ERASED));
            assert_eq!(e.get("fields.path"), Some(&Value::from("/api/v1/login")));
        } else {
            assert!(email.ends_with("@example.com"), "{email}");
        }
    }
    // New alice events get a new key; chain and signatures still verify.
    a.append(&[event(30, T0 + DAY)], Timestamp(T0 + DAY))
        .unwrap();
    a.close(Timestamp(T0 + DAY)).unwrap();
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    // Rolled-back key file (restoring the pre-erasure keys): detected.
    st.put("keys", backup.read("keys").unwrap());
    let r = verify(&st, None);
    let p = r.first_problem().expect("rollback detected");
    assert_eq!(p.file, "keys");
    assert!(p.what.contains("rolled back"), "{p}");
}

#[test]
fn key_rotation_rewraps_old_data_keys() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 20, T0);
    a.close(Timestamp(T0 + 100_000)).unwrap();
    let new_master = MasterKey::from_bytes([9; 32]);
    let mut k = Keys::new(new_master.clone(), SigningKey::from_bytes([2; 32]));
    k.previous = vec![MasterKey::from_bytes([1; 32])];
    let (mut a, _) = Archive::open(
        Arc::new(st.clone()),
        policy(),
        k.clone(),
        Timestamp(T0 + DAY),
    )
    .unwrap();
    fill(&mut a, 20, T0 + DAY);
    let n = a.rotate_key("ops", Timestamp(T0 + DAY + 1000)).unwrap();
    assert!(n > 5, "{n}");
    assert_eq!(a.rotate_key("ops", Timestamp(T0 + DAY + 2000)).unwrap(), 0);
    a.close(Timestamp(T0 + DAY + 3000)).unwrap();
    // The old master key is no longer needed.
    let only_new = Keys::new(new_master, SigningKey::from_bytes([2; 32]));
    let r = secmon_archive::verify_archive(&st, &only_new, None, &mut |_| {});
    let r = r.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    let (mut a, _) = Archive::open(
        Arc::new(st.clone()),
        policy(),
        only_new,
        Timestamp(T0 + 2 * DAY),
    )
    .unwrap();
    assert_eq!(all(&mut a, T0 + 2 * DAY).len(), 40);
    // And the old key alone cannot open it.
    drop(a);
    assert!(
        Archive::open(
            Arc::new(st.clone()),
            policy(),
            keys(),
            Timestamp(T0 + 3 * DAY)
        )
        .is_err()
    );
}

#[test]
fn verify_reports_progress_and_is_audited() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    fill(&mut a, 50, T0);
    let mut calls = Vec::new();
    let r = a
        .verify(None, 2, "auditor", Timestamp(T0 + DAY), &mut |p| {
            calls.push((p.bytes_done, p.bytes_total))
        })
        .unwrap();
    assert!(r.ok());
    assert!(!calls.is_empty());
    let (done, total) = *calls.last().unwrap();
    assert_eq!(done, total);
    let ckpts = a
        .export_checkpoints("auditor", Timestamp(T0 + DAY))
        .unwrap();
    assert!(!ckpts.is_empty());
    let q = Query {
        categories: vec![AUDIT.into()],
        ..Default::default()
    };
    let (audit, _) = a
        .search_collect(&q, &|_| true, "t", Timestamp(T0 + DAY))
        .unwrap();
    let names: Vec<_> = audit
        .iter()
        .filter_map(|h| h.event.name().map(str::to_string))
        .collect();
    assert!(names.contains(&"archive.verify".to_string()));
    assert!(names.contains(&"archive.export_checkpoints".to_string()));
}

#[test]
fn fs_storage_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(secmon_archive::FsStorage::new(dir.path().join("archive")).unwrap());
    let (mut a, rep) = Archive::open(st.clone(), policy(), keys(), Timestamp(T0)).unwrap();
    assert!(rep.created);
    fill(&mut a, 30, T0);
    a.close(Timestamp(T0 + 100_000)).unwrap();
    let (mut a, _) = Archive::open(st.clone(), policy(), keys(), Timestamp(T0 + DAY)).unwrap();
    assert_eq!(all(&mut a, T0 + DAY).len(), 30);
    drop(a);
    let r = secmon_archive::verify_archive(&*st, &keys(), None, &mut |_| {}).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
}

#[test]
fn overlapped_group_commit_on_another_thread() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    a.append(&[event(0, T0), event(1, T0)], Timestamp(T0))
        .unwrap();
    let job = a.begin_sync(Timestamp(T0)).unwrap();
    assert_eq!(job.lsn(), 2);
    // Appends continue while the fsync runs elsewhere.
    a.append(&[event(2, T0)], Timestamp(T0 + 1)).unwrap();
    let done = std::thread::spawn(move || job.run().unwrap())
        .join()
        .unwrap();
    assert_eq!(a.durable_lsn(), 0);
    assert_eq!(a.finish_sync(done, Timestamp(T0 + 2)).unwrap(), 2);
    drop(a);
    st.power_loss();
    let mut a = open(&st, T0 + 10);
    let mut ns: Vec<i64> = all(&mut a, T0 + 20).iter().map(n_of).collect();
    ns.sort();
    assert_eq!(ns, vec![0, 1]);
    drop(a);
    st.crash();
    assert!(verify(&st, None).ok());
}

#[test]
fn oversized_event_is_refused_not_written() {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    let mut e = event(0, T0);
    e.raw = Some(Arc::from("x".repeat(17 << 20).as_str()));
    assert!(matches!(
        a.append(&[e], Timestamp(T0)),
        Err(Error::Invalid(_))
    ));
    a.append(&[event(1, T0)], Timestamp(T0)).unwrap();
    a.close(Timestamp(T0 + 1)).unwrap();
    assert!(verify(&st, None).ok());
}

#[test]
fn crash_during_creation_is_recoverable() {
    let st = MemStorage::new();
    drop(open(&st, T0));
    // Lose `meta` (written last): the next open starts afresh.
    st.remove("meta").unwrap();
    st.crash();
    let (mut a, rep) =
        Archive::open(Arc::new(st.clone()), policy(), keys(), Timestamp(T0)).unwrap();
    assert!(rep.created);
    fill(&mut a, 5, T0);
    a.close(Timestamp(T0 + 10_000)).unwrap();
    assert!(verify(&st, None).ok());
    // With segments present, a missing meta is an error, not a fresh start.
    st.remove("meta").unwrap();
    assert!(Archive::open(Arc::new(st.clone()), policy(), keys(), Timestamp(T0)).is_err());
}

#[test]
fn writer_types_can_move_to_threads() {
    fn send<T: Send>() {}
    send::<Archive>();
    send::<secmon_archive::SyncJob>();
    send::<secmon_archive::SyncDone>();
    fn sync<T: Send + Sync>() {}
    sync::<secmon_archive::FsStorage>();
    sync::<MemStorage>();
}

#[test]
fn empty_archive_verifies() {
    let st = MemStorage::new();
    open(&st, T0).close(Timestamp(T0)).unwrap();
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records, 0);
}
