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
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::archive::{SEG_DIR, read_meta, seg_path};
use crate::checkpoint::{self, CHECKPOINTS_PATH, Checkpoint};
use crate::codec;
use crate::crypto::{Keys, TagBatch, hex, sha256, unhex32};
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
    verify_chunked(st, keys, exported, threads, READ_CHUNK, progress)
}

/// [`verify_archive_with`] reading segments `chunk` bytes at a time (tests
/// use tiny chunks so records straddle reads).
fn verify_chunked(
    st: &dyn Storage,
    keys: &Keys,
    exported: Option<&[u8]>,
    threads: usize,
    chunk: usize,
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
    let mut files: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    let mut total = 0u64;
    for n in &names {
        let dir = format!("{SEG_DIR}/{n}");
        let mut segs = Vec::new();
        for s in st.list(&dir).map_err(io_err(&dir))? {
            if format::parse_segment_name(&s).is_some() {
                let size = st.size(&seg_path(n, &s)).map_err(io_err(&s))?;
                total += size;
                segs.push((s, size));
            }
        }
        files.push((n.clone(), segs));
    }

    // Every segment is checked on its own (each starts from its header), all
    // categories' segments together on `threads` threads; continuity between
    // segments and the per-category stop at the first problem are decided
    // afterwards, in order.
    let empty = BTreeMap::new();
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for (ci, (name, segs)) in files.iter().enumerate() {
        for (s, size) in segs {
            jobs.push(Job {
                cat: ci,
                name,
                path: seg_path(name, s),
                size: *size,
                exp: expect.get(name).unwrap_or(&empty),
            });
        }
    }
    let cx = Ctx {
        st,
        ks: ks.as_ref(),
        id: &id,
        chunk,
    };
    let mut results = run_jobs(cx, &jobs, threads.max(1), total, progress);

    let mut pruned: HashMap<String, Vec<(u64, [u8; 32])>> = HashMap::new();
    let mut deferred: Vec<(String, String, u64, [u8; 32])> = Vec::new();
    let mut jobs_done = 0;
    for (ci, (name, segs)) in files.iter().enumerate() {
        let exp = expect.get(name).unwrap_or(&empty);
        let mut next = 0u64;
        let mut hash = format::genesis(&id, name);
        let mut last_path = format!("{SEG_DIR}/{name}");
        let mut stopped = false;
        let first_job = jobs_done;
        jobs_done += segs.len();
        for (i, r) in results[first_job..jobs_done].iter_mut().enumerate() {
            debug_assert_eq!(jobs[first_job + i].cat, ci);
            let r = std::mem::replace(r, SegResult::failed(""));
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
                        break;
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
                    break;
                }
            }
            rep.records += r.records;
            rep.bytes += r.bytes;
            if let Some(p) = r.problem {
                rep.problems.push(p);
                stopped = true;
                break;
            }
            for (c, e, h) in r.prunes {
                pruned.entry(c).or_default().push((e, h));
            }
            (next, hash) = r.end;
            last_path = r.path;
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

/// One segment to check.
struct Job<'a> {
    cat: usize,
    name: &'a str,
    path: String,
    size: u64,
    exp: &'a BTreeMap<u64, Vec<Expect>>,
}

/// What a worker tells the thread that reports progress.
enum Msg {
    /// Bytes of job `.0` read so far (a delta).
    Bytes(usize, u64),
    Done(usize, Box<SegResult>),
}

/// What every segment check reads from.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    st: &'a dyn Storage,
    ks: Option<&'a KeyStore>,
    id: &'a [u8; 16],
    /// Bytes read at a time.
    chunk: usize,
}

/// Checks every job, on up to `threads` scoped threads (largest segments
/// first, so the last one to finish is a small one), reporting progress
/// from the calling thread; results in job order.
fn run_jobs(
    cx: Ctx<'_>,
    jobs: &[Job<'_>],
    threads: usize,
    total: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Vec<SegResult> {
    let mut results: Vec<Option<SegResult>> = jobs.iter().map(|_| None).collect();
    let mut reported = vec![0u64; jobs.len()];
    let mut done = 0u64;
    let mut records = 0u64;
    let mut on_msg = |m: Msg, results: &mut Vec<Option<SegResult>>| {
        let (i, n) = match &m {
            Msg::Bytes(i, n) => (*i, *n),
            // Whatever of the file was not read (stopped at a problem) counts
            // as done too, so the bar ends at its total.
            Msg::Done(i, _) => (*i, jobs[*i].size.saturating_sub(reported[*i])),
        };
        reported[i] += n;
        done += n;
        if let Msg::Done(i, r) = m {
            records += r.records;
            results[i] = Some(*r);
        }
        progress(&Progress {
            file: jobs[i].path.clone(),
            bytes_done: done,
            bytes_total: total,
            records,
        });
    };
    if threads <= 1 || jobs.len() <= 1 {
        for (i, j) in jobs.iter().enumerate() {
            let mut bytes = Vec::new();
            let r = check_segment(cx, j, &mut |n| bytes.push(n));
            for n in bytes {
                on_msg(Msg::Bytes(i, n), &mut results);
            }
            on_msg(Msg::Done(i, Box::new(r)), &mut results);
        }
    } else {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].size));
        let next = AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::scope(|sc| {
            let workers: Vec<_> = (0..threads.min(jobs.len()))
                .map(|_| {
                    let tx = tx.clone();
                    let (order, next) = (&order, &next);
                    sc.spawn(move || {
                        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let r = check_segment(cx, &jobs[i], &mut |n| {
                                let _ = tx.send(Msg::Bytes(i, n));
                            });
                            if tx.send(Msg::Done(i, Box::new(r))).is_err() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            for m in rx {
                on_msg(m, &mut results);
            }
            // Joined here so a panicking worker becomes a reported problem
            // (its segments have no result) instead of a panic of verify.
            for w in workers {
                let _ = w.join();
            }
        });
    }
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, j)| {
            r.unwrap_or_else(|| {
                let mut f = SegResult::failed("verifier thread panicked");
                f.path = j.path.clone();
                f
            })
        })
        .collect()
}

/// Bytes read from a segment at a time: large enough that read calls cost
/// nothing, small enough to stay in cache while its records are checked
/// (reading a whole segment of up to `max_segment_bytes` into a fresh buffer
/// cost more in page faults than the read itself).
const READ_CHUNK: usize = 1 << 20;

/// A segment file seen through a buffer that slides forward; a record may
/// straddle two reads, and a record larger than the buffer grows it (records
/// are at most [`format::REC_MAX_LEN`], and a larger length field is
/// rejected before the buffer would grow for it).
struct Window<'a> {
    src: Box<dyn Read + Send + 'a>,
    buf: Vec<u8>,
    /// `buf[..end]` holds file bytes.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<'a> Window<'a> {
    fn open(st: &'a dyn Storage, path: &str, chunk: usize) -> std::io::Result<Self> {
        let mut w = Window {
            src: st.open_read(path)?,
            // A header fits in the first read.
            buf: vec![0; chunk.max(256)],
            end: 0,
            base: 0,
            eof: false,
        };
        w.refill(0)?;
        Ok(w)
    }

    /// Drops `buf[..keep_from]` and reads until the buffer is full or the
    /// file ends; returns the bytes read.
    fn refill(&mut self, keep_from: usize) -> std::io::Result<u64> {
        self.buf.copy_within(keep_from..self.end, 0);
        self.end -= keep_from;
        self.base += keep_from as u64;
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let before = self.end;
        while self.end < self.buf.len() {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((self.end - before) as u64)
    }
}

/// Records whose tags are queued in a [`TagBatch`]: (seq, file offset).
struct Pending {
    batch: TagBatch,
    recs: Vec<(u64, u64)>,
}

impl Pending {
    /// Queues the tag check of record `seq` at file offset `offset`;
    /// `false` (nothing queued) when the batch is full or the record is
    /// shorter than a tag.
    fn push(&mut self, seq: u64, offset: u64, aad: &[u8], sealed: &[u8]) -> bool {
        let ok = self.batch.push(&format::record_nonce(seq), aad, sealed);
        if ok {
            self.recs.push((seq, offset));
        }
        ok
    }

    /// Checks the queued tags; the problem of the first bad one (its seq)
    /// if any. Called when the batch is full, at the end of the segment and
    /// before any other problem is reported, so the first problem in file
    /// order is the one reported.
    fn check(&mut self, path: &str) -> Option<(u64, Problem)> {
        let bad = self.batch.check();
        let recs = std::mem::take(&mut self.recs);
        let (seq, offset) = *recs.get(bad?)?;
        Some((
            seq,
            problem(
                path,
                Some(seq),
                Some(offset),
                "AEAD tag mismatch: the record was altered (or encrypted under another key)",
            ),
        ))
    }
}

/// Checks one segment: header, framing, sequence, kind, AEAD tag, chain
/// from its header's starting point, and the checkpoints that fall inside.
///
/// Per record this costs a CRC, a SHA-256 (chain) and a GHASH (tag); the
/// block cipher runs once per 64 records for their tag masks, and event
/// records are not decrypted at all (only audit records are, for their
/// prune records). `read` is told how many bytes were read, as they are.
fn check_segment(cx: Ctx<'_>, job: &Job<'_>, read: &mut dyn FnMut(u64)) -> SegResult {
    let Ctx { st, ks, id, chunk } = cx;
    let (name, path, exp) = (job.name, job.path.as_str(), job.exp);
    let mut r = SegResult {
        path: path.to_string(),
        bytes: job.size,
        records: 0,
        start: None,
        end: (0, [0; 32]),
        problem: None,
        prunes: vec![],
        io_error: None,
    };
    let mut w = match Window::open(st, path, chunk) {
        Ok(w) => w,
        Err(e) => {
            r.io_error = Some(io_err(path)(e));
            return r;
        }
    };
    read(w.end as u64);
    let h = match SegmentHeader::parse(path, &w.buf[..w.end]) {
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
    let mut pending = Pending {
        batch: TagBatch::new(cipher.clone()),
        recs: Vec::with_capacity(64),
    };
    // A problem at record `seq` is reported unless a queued record before
    // it has a bad tag; `records` counts the records before the reported one.
    let first = h.first_seq;
    let fail = |r: &mut SegResult, pending: &mut Pending, p: Problem| {
        let p = match pending.check(path) {
            Some((seq, tag)) => {
                r.records = seq - first;
                tag
            }
            None => p,
        };
        r.problem = Some(p);
    };
    let mut pos = h.len;
    loop {
        let (offset, seq, kind, frame_end, queued) =
            match Frames::new(&w.buf[..w.end], pos).next_record() {
                Next::Record(rec) => {
                    hash = format::chain(&hash, rec.frame);
                    let sealed = (!is_audit)
                        .then_some(rec.sealed)
                        .filter(|_| rec.kind == want_kind && rec.seq == next);
                    // `Frames` only yields records long enough for a tag, and a
                    // full batch was checked after the previous record, so the
                    // push cannot fail; if it did, the record is reported below.
                    let queued = sealed.is_none_or(|sealed| {
                        pending.push(rec.seq, w.base + rec.offset, rec.aad(), sealed)
                    });
                    (
                        w.base + rec.offset,
                        rec.seq,
                        rec.kind,
                        pos + rec.frame.len() + 4,
                        queued,
                    )
                }
                Next::End | Next::Torn { .. } if !w.eof => {
                    match w.refill(pos) {
                        Ok(n) => read(n),
                        Err(e) => {
                            r.io_error = Some(io_err(path)(e));
                            return r;
                        }
                    }
                    pos = 0;
                    continue;
                }
                Next::End => break,
                Next::Torn { offset, what } => {
                    let p = problem(
                        path,
                        Some(next),
                        Some(w.base + offset),
                        format!("{what} (segment truncated or torn)"),
                    );
                    fail(&mut r, &mut pending, p);
                    return r;
                }
                Next::Bad { offset, what } => {
                    let p = problem(path, Some(next), Some(w.base + offset), what);
                    fail(&mut r, &mut pending, p);
                    return r;
                }
            };
        if seq != next {
            let p = problem(
                path,
                Some(next),
                Some(offset),
                format!(
                    "expected seq {next}, found seq {seq}: a record was removed, inserted or reordered"
                ),
            );
            fail(&mut r, &mut pending, p);
            return r;
        }
        if kind != want_kind {
            let p = problem(
                path,
                Some(next),
                Some(offset),
                format!("record kind {kind} in category {name}"),
            );
            fail(&mut r, &mut pending, p);
            return r;
        }
        if !queued {
            let p = problem(
                path,
                Some(next),
                Some(offset),
                "AEAD tag could not be checked (record too short for one)",
            );
            fail(&mut r, &mut pending, p);
            return r;
        }
        if is_audit {
            let mut aad = [0u8; format::REC_HEAD];
            aad.copy_from_slice(&w.buf[pos..pos + format::REC_HEAD]);
            let sealed = &mut w.buf[pos + format::REC_HEAD..frame_end - 4];
            let Some(pt) = cipher.open_in_place(&format::record_nonce(seq), &aad, sealed) else {
                let p = problem(
                    path,
                    Some(next),
                    Some(offset),
                    "AEAD tag mismatch: the record was altered (or encrypted under another key)",
                );
                fail(&mut r, &mut pending, p);
                return r;
            };
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
                    let p = problem(
                        path,
                        Some(next),
                        Some(offset),
                        format!("audit record does not decode: {why}"),
                    );
                    fail(&mut r, &mut pending, p);
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
            let p = problem(
                path,
                Some(seq),
                Some(offset),
                format!(
                    "chain value after this record differs from {}: records up to here were altered, replaced or re-chained",
                    e.source
                ),
            );
            fail(&mut r, &mut pending, p);
            return r;
        }
        if pending.batch.is_full()
            && let Some((seq, p)) = pending.check(path)
        {
            r.records = seq - first;
            r.problem = Some(p);
            return r;
        }
        r.end = (next, hash);
    }
    if let Some((seq, p)) = pending.check(path) {
        r.records = seq - first;
        r.problem = Some(p);
    }
    r
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secmon_core::{Event, Fields, Timestamp, Value};

    use super::*;
    use crate::crypto::{MasterKey, SigningKeyBox};
    use crate::storage::MemStorage;
    use crate::{Archive, ArchiveConfig};

    fn keys() -> Keys {
        Keys::new(
            MasterKey::from_bytes([1; 32]),
            SigningKeyBox::from_bytes([2; 32]),
        )
    }

    /// Records straddling reads (every chunk size from one header up to the
    /// whole file) verify as when read whole, and damage is reported at the
    /// same record whatever the chunk size.
    #[test]
    fn chunked_reads_agree_with_whole_reads() {
        let st = MemStorage::new();
        let t0 = 1_700_000_000_000;
        let policy = ArchiveConfig::default().validate(&[]).unwrap();
        let (mut a, _) =
            Archive::open(Arc::new(st.clone()), policy, keys(), Timestamp(t0)).unwrap();
        for i in 0..300i64 {
            let mut f = Fields::new();
            f.insert("event", Value::from("auth.login_failed"));
            f.insert("fields.n", Value::Int(i));
            // Sizes vary so record boundaries fall everywhere.
            f.insert(
                "fields.pad",
                Value::from("x".repeat((i * 37 % 500) as usize).as_str()),
            );
            a.append(&[Event::new(Timestamp(t0 + i), f)], Timestamp(t0 + i))
                .unwrap();
        }
        a.close(Timestamp(t0 + 1000)).unwrap();
        let seg = st
            .list("seg/auth")
            .unwrap()
            .into_iter()
            .next()
            .map(|s| format!("seg/auth/{s}"))
            .unwrap();
        let whole = st.read(&seg).unwrap();
        let run = |st: &MemStorage, chunk| {
            verify_chunked(st, &keys(), None, 1, chunk, &mut |_| {}).unwrap()
        };
        let good = run(&st, 1 << 20);
        assert!(good.ok(), "{:?}", good.problems);
        for chunk in [256, 300, 777, 4096] {
            let r = run(&st, chunk);
            assert!(r.ok(), "chunk {chunk}: {:?}", r.problems);
            assert_eq!((r.records, r.bytes), (good.records, good.bytes));
        }
        // Damage: a flipped ciphertext byte with the CRC fixed (AEAD), a bad
        // CRC in the middle, and a torn tail.
        let mut frames = Frames::new(&whole, SegmentHeader::parse(&seg, &whole).unwrap().len);
        let mut recs = Vec::new();
        while let Next::Record(r) = frames.next_record() {
            recs.push((r.offset as usize, r.frame.len()));
        }
        let (off, len) = recs[150];
        let mut aead = whole.clone();
        aead[off + 30] ^= 1;
        let crc = crc32fast::hash(&aead[off..off + len]);
        aead[off + len..off + len + 4].copy_from_slice(&crc.to_le_bytes());
        let mut crc_bad = whole.clone();
        crc_bad[off + 30] ^= 1;
        let torn = whole[..whole.len() - 3].to_vec();
        for (label, bytes, want) in [
            ("aead", aead, "AEAD tag mismatch"),
            ("crc", crc_bad, "checksum mismatch"),
            ("torn", torn, "truncated or torn"),
        ] {
            let damaged = st.snapshot();
            damaged.put(&seg, bytes);
            let first = run(&damaged, 1 << 20).problems;
            assert!(first[0].what.contains(want), "{label}: {first:?}");
            for chunk in [256, 300, 777, 4096] {
                assert_eq!(
                    run(&damaged, chunk).problems,
                    first,
                    "{label} chunk {chunk}"
                );
            }
        }
    }
}
