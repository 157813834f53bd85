//! Every way of tampering with the archive the issue lists, each detected by
//! `verify` with the first bad place named (file, seq, offset).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic as assertions

mod common;

use common::*;
use secmon_archive::internals::{Frames, Next, SegmentHeader, rechain};
use secmon_archive::{MemStorage, Problem, Storage};
use secmon_core::{Timestamp, Value};

/// An archive with four closed `auth` segments (one per day), 40 auth records.
fn archive() -> MemStorage {
    let st = MemStorage::new();
    let mut a = open(&st, T0);
    for d in 0..4 {
        let t = T0 + d * DAY;
        let evs: Vec<_> = (0..40)
            .map(|i| event(d as u64 * 40 + i, t + i as i64))
            .collect();
        a.append(&evs, Timestamp(t)).unwrap();
        a.sync(Timestamp(t + 1000)).unwrap();
    }
    a.close(Timestamp(T0 + 4 * DAY)).unwrap();
    assert_eq!(segs(&st, "auth").len(), 4);
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    st
}

/// (offset, len, seq) of each record of a segment.
fn records(b: &[u8]) -> Vec<(usize, usize, u64)> {
    let h = SegmentHeader::parse("x", b).unwrap();
    let mut f = Frames::new(b, h.len);
    let mut out = Vec::new();
    let mut prev = h.len;
    while let Next::Record(r) = f.next_record() {
        let _ = prev;
        out.push((r.offset as usize, r.frame.len() + 4, r.seq));
        prev = r.offset as usize;
    }
    out
}

fn first_problem(st: &MemStorage, exported: Option<&[u8]>) -> Problem {
    let r = verify(st, exported);
    r.first_problem()
        .cloned()
        .expect("tampering must be detected")
}

fn fix_crc(b: &mut [u8], off: usize, len: usize) {
    let crc = crc32(&b[off..off + len - 4]);
    b[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
}

fn crc32(b: &[u8]) -> u32 {
    // Plain bitwise CRC-32 (IEEE), as crc32fast computes: the attacker's tool.
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn flipped_byte_is_detected_by_crc_and_by_aead() {
    let st = archive();
    let path = segs(&st, "auth")[1].clone();
    let b = st.read(&path).unwrap();
    let recs = records(&b);
    let (off, len, seq) = recs[3];
    let mut t = b.clone();
    t[off + 30] ^= 0x01;
    st.put(&path, t.clone());
    let p = first_problem(&st, None);
    assert_eq!(
        (p.file.as_str(), p.seq, p.offset),
        (path.as_str(), Some(seq), Some(off as u64)),
        "{p}"
    );
    assert!(p.what.contains("checksum"), "{p}");
    // With the CRC recomputed the AEAD tag catches it.
    fix_crc(&mut t, off, len);
    st.put(&path, t);
    let p = first_problem(&st, None);
    assert_eq!((p.seq, p.offset), (Some(seq), Some(off as u64)), "{p}");
    assert!(p.what.contains("AEAD"), "{p}");
}

#[test]
fn deleted_record_is_detected() {
    let st = archive();
    let path = segs(&st, "auth")[0].clone();
    let b = st.read(&path).unwrap();
    let (off, len, seq) = records(&b)[4];
    let mut t = b[..off].to_vec();
    t.extend_from_slice(&b[off + len..]);
    st.put(&path, t);
    let p = first_problem(&st, None);
    assert_eq!(
        (p.file.as_str(), p.seq, p.offset),
        (path.as_str(), Some(seq), Some(off as u64)),
        "{p}"
    );
    assert!(p.what.contains("removed"), "{p}");
}

#[test]
fn swapped_records_are_detected() {
    let st = archive();
    let path = segs(&st, "auth")[2].clone();
    let b = st.read(&path).unwrap();
    let recs = records(&b);
    let (o1, l1, s1) = recs[5];
    let (o2, l2, _) = recs[6];
    let mut t = b[..o1].to_vec();
    t.extend_from_slice(&b[o2..o2 + l2]);
    t.extend_from_slice(&b[o1..o1 + l1]);
    t.extend_from_slice(&b[o2 + l2..]);
    st.put(&path, t);
    let p = first_problem(&st, None);
    assert_eq!((p.seq, p.offset), (Some(s1), Some(o1 as u64)), "{p}");
    assert!(p.what.contains("reordered"), "{p}");
}

#[test]
fn truncated_segments_are_detected() {
    // A middle segment cut at a record boundary: the next one does not continue it.
    let st = archive();
    let all_segs = segs(&st, "auth");
    let b = st.read(&all_segs[1]).unwrap();
    let (off, _, _) = records(&b)[7];
    st.put(&all_segs[1], b[..off].to_vec());
    let p = first_problem(&st, None);
    assert_eq!(p.file, all_segs[2], "{p}");
    assert!(p.what.contains("does not continue"), "{p}");

    // The last segment cut at a record boundary: the signed checkpoint at its
    // close says more records existed.
    let st = archive();
    let last = segs(&st, "auth").pop().unwrap();
    let b = st.read(&last).unwrap();
    let (off, _, _) = records(&b)[9];
    st.put(&last, b[..off].to_vec());
    let p = first_problem(&st, None);
    assert_eq!(p.file, last, "{p}");
    assert!(p.what.contains("records or segments were removed"), "{p}");

    // Cut inside a record: a torn tail, named with its offset.
    let st = archive();
    let b = st.read(&last).unwrap();
    let (off, _, seq) = records(&b)[9];
    st.put(&last, b[..off + 11].to_vec());
    let p = first_problem(&st, None);
    assert_eq!((p.seq, p.offset), (Some(seq), Some(off as u64)), "{p}");
}

#[test]
fn segment_deleted_from_the_middle_or_the_start_is_detected() {
    let st = archive();
    let all_segs = segs(&st, "auth");
    st.remove(&all_segs[2]).unwrap();
    let p = first_problem(&st, None);
    assert_eq!(p.file, all_segs[3], "{p}");
    assert!(p.what.contains("segment is missing"), "{p}");

    // The oldest one, without an audited prune.
    let st = archive();
    st.remove(&all_segs[0]).unwrap();
    let r = verify(&st, None);
    assert!(
        r.problems
            .iter()
            .any(|p| p.file == all_segs[1] && p.what.contains("no audited prune")),
        "{:?}",
        r.problems
    );
}

#[test]
fn segment_reencrypted_and_rechained_without_the_signing_key_is_detected() {
    let st = archive();
    let all_segs = segs(&st, "auth");
    // The forger holds the master key: alters one event of segment 1 and
    // re-chains it and every later segment consistently.
    rechain(&st, &keys(), "auth", 1, &mut |seq, ev| {
        if seq == 45 {
            ev.fields.insert("fields.user_id", Value::from("mallory"));
        }
        true
    })
    .unwrap();
    let p = first_problem(&st, None);
    assert_eq!(p.file, all_segs[1], "{p}");
    assert!(p.what.contains("differs from checkpoint"), "{p}");

    // Dropping a record and renumbering is caught the same way.
    let st = archive();
    rechain(&st, &keys(), "auth", 2, &mut |seq, _| seq != 85).unwrap();
    let p = first_problem(&st, None);
    assert!(p.what.contains("differs from checkpoint"), "{p}");
}

#[test]
fn forged_checkpoint_line_is_detected() {
    let st = archive();
    let b = String::from_utf8(st.read("checkpoints").unwrap()).unwrap();
    let forged = b.replacen(
        "\\\"reason\\\":\\\"open\\\"",
        "\\\"reason\\\":\\\"opem\\\"",
        1,
    );
    assert_ne!(forged, b);
    st.put("checkpoints", forged.into_bytes());
    let p = first_problem(&st, None);
    assert_eq!(p.file, "checkpoints");
    assert!(p.what.contains("signature"), "{p}");
}

#[test]
fn whole_archive_rewritten_is_detected_against_exported_checkpoints() {
    let st = archive();
    // Kept elsewhere by the operator.
    let exported = {
        let mut a = open(&st, T0 + 5 * DAY);
        let e = a
            .export_checkpoints("ops", Timestamp(T0 + 5 * DAY))
            .unwrap();
        a.close(Timestamp(T0 + 5 * DAY)).unwrap();
        e
    };
    assert!(verify(&st, Some(&exported)).ok());
    // An attacker with every key (master and signing) rebuilds history
    // without event 45, re-signing fresh checkpoints.
    for p in st.paths() {
        if p.starts_with("seg/") || p == "checkpoints" {
            st.remove(&p).unwrap();
        }
    }
    let mut a = open(&st, T0);
    for d in 0..4 {
        let t = T0 + d * DAY;
        let evs: Vec<_> = (0..40)
            .map(|i| event(d as u64 * 40 + i, t + i as i64))
            .filter(|e| n_of(e) != 45)
            .collect();
        a.append(&evs, Timestamp(t)).unwrap();
        a.sync(Timestamp(t + 1000)).unwrap();
    }
    a.close(Timestamp(T0 + 4 * DAY)).unwrap();
    // Self-consistent …
    let r = verify(&st, None);
    assert!(r.ok(), "{:?}", r.problems);
    // … but not the archive whose checkpoints were exported.
    let r = verify(&st, Some(&exported));
    assert!(!r.ok());
    assert!(
        r.problems
            .iter()
            .any(|p| p.what.contains("differs from checkpoint")
                || p.what.contains("differs from the archive's own")),
        "{:?}",
        r.problems
    );
}

#[test]
fn rolled_back_key_file_after_rotation_is_detected() {
    let st = archive();
    let old_keys = st.read("keys").unwrap();
    let mut a = open(&st, T0 + 5 * DAY);
    a.rotate_key("ops", Timestamp(T0 + 5 * DAY)).unwrap();
    a.close(Timestamp(T0 + 5 * DAY)).unwrap();
    assert!(verify(&st, None).ok());
    st.put("keys", old_keys);
    let p = first_problem(&st, None);
    assert_eq!(p.file, "keys");
    assert!(p.what.contains("rolled back"), "{p}");
}

#[test]
fn wrong_verifying_key_is_reported() {
    let st = archive();
    let mut k = keys();
    k.verifying = secmon_archive::SigningKey::from_bytes([3; 32]).verifying();
    let r = secmon_archive::verify_archive(&st, &k, None, &mut |_| {}).unwrap();
    assert!(!r.ok());
    assert_eq!(r.problems[0].file, "meta");
}
