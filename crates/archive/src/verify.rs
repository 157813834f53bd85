//! `verify`: proves the archive at rest is what its writer wrote. For every
//! category it checks each record's framing (CRC), sequence number, AEAD tag
//! and chain link, the continuity between consecutive segments, that a
//! missing oldest segment was removed by an audited prune, that the chain
//! passes through every signed checkpoint (the archive's own and an exported
//! copy), and that the key file was not rolled back.
//!
//! It reports problems as data ([`Problem`]: file, seq, offset, what) and
//! stops checking a category at its first problem, since everything after
//! it is unanchored. It needs the master key(s) and the *public* checkpoint
//! key only; it writes nothing (the [`crate::Archive::verify`] wrapper adds
//! the access-audit record). Run it on a quiescent archive or through the
//! writer: a concurrent append shows up as a torn tail.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::archive::{SEG_DIR, read_meta, seg_path};
use crate::checkpoint::{self, CHECKPOINTS_PATH, Checkpoint};
use crate::codec;
use crate::crypto::{Keys, hex, sha256, unhex32};
use crate::error::{Result, io_err};
use crate::format::{self, Frames, KIND_AUDIT, KIND_EVENT, Next, SegmentHeader};
use crate::keys::{KEYS_PATH, KeyStore};
use crate::policy::{AUDIT, valid_category_name};
use crate::storage::Storage;

/// Reported after each segment and every 64k records.
#[derive(Clone, Debug)]
pub struct Progress {
    pub file: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub records: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub seq: Option<u64>,
    pub offset: Option<u64>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::error::at(
            &self.file,
            self.seq,
            self.offset,
            &self.what,
        ))
    }
}

#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    /// Signed checkpoints checked (archive log and exported copy).
    pub checkpoints: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

struct Expect {
    hash: [u8; 32],
    source: String,
}

fn problem(file: &str, seq: Option<u64>, offset: Option<u64>, what: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        seq,
        offset,
        what: what.into(),
    }
}

/// Verifies the archive in `st`. `Err` only when it cannot be read at all
/// (IO error, not an archive); damage is reported in the result.
pub fn verify_archive(
    st: &dyn Storage,
    keys: &Keys,
    exported: Option<&[u8]>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<VerifyReport> {
    verify_archive_with(st, keys, exported, 1, progress)
}

/// [`verify_archive`] checking up to `threads` segments at once on scoped
/// threads (joined before it returns; the archive keeps no background work).
pub fn verify_archive_with(
    st: &dyn Storage,
    keys: &Keys,
    exported: Option<&[u8]>,
    threads: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let Some((id, vk)) = read_meta(st)? else {
        rep.problems
            .push(problem("meta", None, None, "missing: not an archive"));
        return Ok(rep);
    };
    if vk != keys.verifying.to_hex() {
        rep.problems.push(problem(
            "meta",
            None,
            None,
            format!(
                "the archive names checkpoint key {vk}, the configured verifying key is {}",
                keys.verifying.to_hex()
            ),
        ));
    }

    // Signed checkpoints, from the archive and from the exported copy.
    let mut cps: Vec<(Checkpoint, String)> = Vec::new();
    let mut by_n: HashMap<u64, Checkpoint> = HashMap::new();
    let own = if st
        .exists(CHECKPOINTS_PATH)
        .map_err(io_err(CHECKPOINTS_PATH))?
    {
        st.read(CHECKPOINTS_PATH)
            .map_err(io_err(CHECKPOINTS_PATH))?
    } else {
        Vec::new()
    };
    for (bytes, label) in [
        (Some(&own[..]), CHECKPOINTS_PATH),
        (exported, "exported checkpoints"),
    ] {
        let Some(bytes) = bytes else { continue };
        let (parsed, whole) = checkpoint::parse(bytes, Some(&keys.verifying));
        if whole < bytes.len() {
            rep.problems.push(problem(
                label,
                None,
                Some(whole as u64),
                "incomplete last line",
            ));
        }
        for p in parsed {
            let src = format!("{label} line {}", p.line);
            if let Some(why) = p.problem {
                rep.problems.push(problem(
                    label,
                    None,
                    None,
                    format!("line {}: {why}", p.line),
                ));
                continue;
            }
            let Some(c) = p.checkpoint else { continue };
            if c.archive != hex(&id) {
                rep.problems.push(problem(
                    label,
                    None,
                    None,
                    format!("line {}: checkpoint of another archive", p.line),
                ));
                continue;
            }
            if let Some(prev) = by_n.get(&c.n) {
                if prev != &c {
                    rep.problems.push(problem(
                        label,
                        None,
                        None,
                        format!("line {}: checkpoint #{} differs from the archive's own #{}: the checkpoint log was rewritten", p.line, c.n, c.n),
                    ));
                }
            } else {
                by_n.insert(c.n, c.clone());
            }
            rep.checkpoints += 1;
            cps.push((c, src));
        }
    }
    let latest = cps
        .iter()
        .max_by_key(|(c, _)| c.n)
        .map(|(c, s)| (c.clone(), s.clone()));
    let mut expect: HashMap<String, BTreeMap<u64, Vec<Expect>>> = HashMap::new();
    for (c, src) in &cps {
        for (cat, p) in &c.categories {
            let Some(hash) = unhex32(&p.hash) else {
                rep.problems
                    .push(problem(src, None, None, format!("bad hash for {cat}")));
                continue;
            };
            expect
                .entry(cat.clone())
                .or_default()
                .entry(p.seq)
                .or_default()
                .push(Expect {
                    hash,
                    source: format!("checkpoint #{} ({src})", c.n),
                });
        }
    }

    // The key file: loads, and is not older than the latest checkpoint says.
    let ks = match KeyStore::load(st, id, keys.clone()) {
        Ok((ks, torn)) => {
            if let Some(t) = torn {
                rep.problems.push(problem(
                    KEYS_PATH,
                    None,
                    Some(t.offset),
                    "incomplete last entry",
                ));
            }
            Some(ks)
        }
        Err(e) => {
            rep.problems
                .push(problem(KEYS_PATH, None, None, e.to_string()));
            None
        }
    };
    if let (Some(k), Some((c, src))) = (&ks, &latest) {
        let have = k.epoch();
        let want = &c.keys;
        if have < want.epoch {
            rep.problems.push(problem(
                KEYS_PATH,
                None,
                None,
                format!("epoch {have} is older than epoch {} recorded by checkpoint #{} ({src}): the key file was rolled back", want.epoch, c.n),
            ));
        } else if have == want.epoch {
            let bytes = st.read(KEYS_PATH).map_err(io_err(KEYS_PATH))?;
            let prefix = usize::try_from(want.len).ok().and_then(|n| bytes.get(..n));
            if prefix.is_none_or(|p| hex(&sha256(&[p])) != want.digest) {
                rep.problems.push(problem(
                    KEYS_PATH,
                    None,
                    None,
                    format!("does not extend the state recorded by checkpoint #{} ({src}): the key file was replaced or rolled back", c.n),
                ));
            }
        }
    }

    // Categories: on disk or named by a checkpoint; audit first, because its
    // prune records justify the segments missing elsewhere.
    let mut names: Vec<String> = st
        .list(SEG_DIR)
        .map_err(io_err(SEG_DIR))?
        .into_iter()
        .filter(|n| valid_category_name(n))
        .collect();
    for cat in expect.keys() {
        if !names.contains(cat) {
            names.push(cat.clone());
        }
    }
    names.sort_by_key(|n| (n != AUDIT, n.clone()));
    let mut files: Vec<(String, Vec<String>)> = Vec::new();
    let mut total = 0u64;
    for n in &names {
        let dir = format!("{SEG_DIR}/{n}");
        let segs: Vec<String> = st
            .list(&dir)
            .map_err(io_err(&dir))?
            .into_iter()
            .filter(|s| format::parse_segment_name(s).is_some())
            .collect();
        for s in &segs {
            total += st.size(&seg_path(n, s)).map_err(io_err(s))?;
        }
        files.push((n.clone(), segs));
    }

    let mut pruned: HashMap<String, Vec<(u64, [u8; 32])>> = HashMap::new();
    let mut deferred: Vec<(String, String, u64, [u8; 32])> = Vec::new();
    let mut done = 0u64;
    let threads = threads.max(1);
    let ks = ks.as_ref();
    for (name, segs) in &files {
        let empty = BTreeMap::new();
        let exp = expect.get(name).unwrap_or(&empty);
        let mut next = 0u64;
        let mut hash = format::genesis(&id, name);
        let mut last_path = format!("{SEG_DIR}/{name}");
        let mut stopped = false;
        let mut i = 0;
        // Segments are checked independently (each starts from its header),
        // `threads` at a time; continuity between them is checked here, in order.
        'chunks: for chunk in segs.chunks(threads) {
            let results: Vec<SegResult> = if chunk.len() == 1 {
                vec![check_segment(
                    st,
                    ks,
                    &id,
                    name,
                    &seg_path(name, &chunk[0]),
                    exp,
                )]
            } else {
                std::thread::scope(|sc| {
                    let hs: Vec<_> = chunk
                        .iter()
                        .map(|s| {
                            let path = seg_path(name, s);
                            sc.spawn(move || check_segment(st, ks, &id, name, &path, exp))
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| SegResult::failed("verifier thread panicked"))
                        })
                        .collect()
                })
            };
            for r in results {
                rep.segments += 1;
                if let Some(e) = r.io_error {
                    return Err(e);
                }
                if let Some((first, prev)) = r.start {
                    if i == 0 {
                        if (first, prev) != (0, format::genesis(&id, name)) {
                            deferred.push((name.clone(), r.path.clone(), first, prev));
                        }
                        if let Some(es) = exp.get(&first)
                            && let Some(e) = es.iter().find(|e| e.hash != prev)
                        {
                            rep.problems.push(problem(
                                &r.path,
                                Some(first),
                                Some(0),
                                format!("segment start differs from {}", e.source),
                            ));
                            stopped = true;
                            break 'chunks;
                        }
                    } else if first != next || prev != hash {
                        rep.problems.push(problem(
                            &r.path,
                            Some(first),
                            Some(0),
                            format!(
                                "does not continue {last_path}: expected seq {next} and its chain value, header says seq {first}{}: a segment is missing, truncated or replaced",
                                if first == next { " with another chain value" } else { "" }
                            ),
                        ));
                        stopped = true;
                        break 'chunks;
                    }
                }
                i += 1;
                rep.records += r.records;
                rep.bytes += r.bytes;
                done += r.bytes;
                if let Some(p) = r.problem {
                    rep.problems.push(p);
                    stopped = true;
                    break 'chunks;
                }
                for (c, e, h) in r.prunes {
                    pruned.entry(c).or_default().push((e, h));
                }
                (next, hash) = r.end;
                last_path = r.path;
            }
            progress(&Progress {
                file: last_path.clone(),
                bytes_done: done,
                bytes_total: total,
                records: rep.records,
            });
        }
        if !stopped && let Some((&seq, es)) = exp.range(next + 1..).next_back() {
            rep.problems.push(problem(
                &last_path,
                Some(next),
                None,
                format!(
                    "{} says category {name} reached seq {seq}; the archive ends at seq {next}: records or segments were removed",
                    es[0].source
                ),
            ));
        }
    }
    for (name, path, first, prev) in deferred {
        let ok = pruned
            .get(&name)
            .is_some_and(|v| v.iter().any(|(s, h)| *s == first && *h == prev));
        if !ok {
            rep.problems.push(problem(
                &path,
                Some(first),
                Some(0),
                format!("the oldest segment of {name} starts at seq {first}, but no audited prune removed the records before it: segments were deleted"),
            ));
        }
    }
    Ok(rep)
}

/// What checking one segment on its own found.
struct SegResult {
    path: String,
    bytes: u64,
    records: u64,
    /// Header's (first seq, previous chain value), when the header parsed.
    start: Option<(u64, [u8; 32])>,
    /// (next seq, chain value) after the last good record.
    end: (u64, [u8; 32]),
    problem: Option<Problem>,
    /// Prune records found (audit category): (category, end seq, end hash).
    prunes: Vec<(String, u64, [u8; 32])>,
    io_error: Option<crate::Error>,
}

impl SegResult {
    fn failed(why: &str) -> SegResult {
        SegResult {
            path: String::new(),
            bytes: 0,
            records: 0,
            start: None,
            end: (0, [0; 32]),
            problem: Some(problem("", None, None, why)),
            prunes: vec![],
            io_error: None,
        }
    }
}

/// Checks one segment: header, framing, sequence, kind, AEAD tag, chain
/// from its header's starting point, and the checkpoints that fall inside.
fn check_segment(
    st: &dyn Storage,
    ks: Option<&KeyStore>,
    id: &[u8; 16],
    name: &str,
    path: &str,
    exp: &BTreeMap<u64, Vec<Expect>>,
) -> SegResult {
    let mut r = SegResult {
        path: path.to_string(),
        bytes: 0,
        records: 0,
        start: None,
        end: (0, [0; 32]),
        problem: None,
        prunes: vec![],
        io_error: None,
    };
    let mut bytes = match st.read(path) {
        Ok(b) => b,
        Err(e) => {
            r.io_error = Some(io_err(path)(e));
            return r;
        }
    };
    r.bytes = bytes.len() as u64;
    let h = match SegmentHeader::parse(path, &bytes) {
        Ok(h) => h,
        Err(e) => {
            r.problem = Some(problem(path, None, Some(0), e.to_string()));
            return r;
        }
    };
    if &h.archive_id != id || h.category != name {
        r.problem = Some(problem(
            path,
            None,
            Some(0),
            "segment header names another archive or category",
        ));
        return r;
    }
    r.start = Some((h.first_seq, h.prev_hash));
    let (mut next, mut hash) = (h.first_seq, h.prev_hash);
    r.end = (next, hash);
    let Some(cipher) = ks.and_then(|k| k.data_cipher_uncached(&h.key_id)) else {
        r.problem = Some(problem(
            path,
            Some(next),
            Some(0),
            "its data key is not in the key file (or does not unwrap under the given master keys)",
        ));
        return r;
    };
    let is_audit = name == AUDIT;
    let want_kind = if is_audit { KIND_AUDIT } else { KIND_EVENT };
    let mut pos = h.len;
    loop {
        // Frame and hash first (borrowing the bytes), then decrypt in place.
        let (offset, seq, kind, frame_end) = match Frames::new(&bytes, pos).next_record() {
            Next::Record(rec) => {
                hash = format::chain(&hash, rec.frame);
                (rec.offset, rec.seq, rec.kind, pos + rec.frame.len() + 4)
            }
            Next::End => break,
            Next::Torn { offset, what } => {
                r.problem = Some(problem(
                    path,
                    Some(next),
                    Some(offset),
                    format!("{what} (segment truncated or torn)"),
                ));
                return r;
            }
            Next::Bad { offset, what } => {
                r.problem = Some(problem(path, Some(next), Some(offset), what));
                return r;
            }
        };
        if seq != next {
            r.problem = Some(problem(
                path,
                Some(next),
                Some(offset),
                format!(
                    "expected seq {next}, found seq {seq}: a record was removed, inserted or reordered"
                ),
            ));
            return r;
        }
        if kind != want_kind {
            r.problem = Some(problem(
                path,
                Some(next),
                Some(offset),
                format!("record kind {kind} in category {name}"),
            ));
            return r;
        }
        let mut aad = [0u8; format::REC_HEAD];
        aad.copy_from_slice(&bytes[pos..pos + format::REC_HEAD]);
        let sealed = &mut bytes[pos + format::REC_HEAD..frame_end - 4];
        let Some(pt) = cipher.open_in_place(&format::record_nonce(seq), &aad, sealed) else {
            r.problem = Some(problem(
                path,
                Some(next),
                Some(offset),
                "AEAD tag mismatch: the record was altered (or encrypted under another key)",
            ));
            return r;
        };
        if is_audit {
            match codec::decode_event(pt, &mut |_| None) {
                Ok(ev) => {
                    if ev.name() == Some("archive.prune")
                        && let (Some(c), Some(e), Some(hh)) = (
                            ev.get("archive.category").and_then(|v| v.as_str()),
                            ev.get("archive.end_seq").and_then(|v| v.as_i64()),
                            ev.get("archive.end_hash")
                                .and_then(|v| v.as_str())
                                .and_then(unhex32),
                        )
                    {
                        r.prunes.push((c.to_string(), e as u64, hh));
                    }
                }
                Err(why) => {
                    r.problem = Some(problem(
                        path,
                        Some(next),
                        Some(offset),
                        format!("audit record does not decode: {why}"),
                    ));
                    return r;
                }
            }
        }
        next += 1;
        r.records += 1;
        pos = frame_end;
        if let Some(e) = exp
            .get(&next)
            .and_then(|es| es.iter().find(|e| e.hash != hash))
        {
            r.problem = Some(problem(
                path,
                Some(seq),
                Some(offset),
                format!(
                    "chain value after this record differs from {}: records up to here were altered, replaced or re-chained",
                    e.source
                ),
            ));
            return r;
        }
        r.end = (next, hash);
    }
    r
}
