//! The [`Archive`]: the single writer of an archive directory. It routes
//! events to categories, appends encrypted, chained records to per-category,
//! per-day segments, syncs them in groups (the caller learns the highest
//! durable [`Lsn`]), writes signed checkpoints, and carries out the
//! operations that change the archive: access audit, retention, legal holds,
//! erasure and key rotation. Every such operation is an audit record.
//!
//! It never reads the clock (every call takes `now`), spawns no thread and
//! does no network IO: the binary owns one `Archive` on a thread of its own
//! and calls [`Archive::tick`] at the deadline [`Archive::next_deadline`]
//! gives. Verification of bytes at rest lives in [`crate::verify`].

use std::collections::BTreeMap;
use std::sync::Arc;

use secmon_core::{Event, Fields, Str, Timestamp, Value};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CHECKPOINTS_PATH, ChainPoint, Checkpoint};
use crate::codec::{self, NonceCounter};
use crate::crypto::{Cipher, Keys, SigningKeyBox, hex, random_array, unhex};
use crate::error::{Error, Result, corrupt, io_err};
use crate::format::{self, Frames, KIND_AUDIT, KIND_EVENT, Next, SegmentHeader};
use crate::keys::{KEYS_PATH, KeyStore};
use crate::policy::{AUDIT, DAY, Policy, valid_category_name};
use crate::storage::{AppendFile, LockGuard, Storage, SyncHandle};
use crate::verify::{self, VerifyReport};

pub const META_PATH: &str = "meta";
pub const HOLDS_PATH: &str = "holds.json";
pub const SEG_DIR: &str = "seg";

/// Log sequence number: events appended through this `Archive` instance,
/// counted from 1. `durable_lsn() >= n` means the n-th event is on disk.
pub type Lsn = u64;

/// Pending bytes of one segment above which they are handed to the OS
/// (without a sync) to bound memory between group commits.
const SPILL_BYTES: usize = 8 << 20;

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    archive_id: String,
    created: i64,
    verifying_key: String,
}

pub(crate) fn seg_path(cat: &str, name: &str) -> String {
    format!("{SEG_DIR}/{cat}/{name}")
}

pub(crate) fn read_meta(storage: &dyn Storage) -> Result<Option<([u8; 16], String)>> {
    if !storage.exists(META_PATH).map_err(io_err(META_PATH))? {
        return Ok(None);
    }
    let b = storage.read(META_PATH).map_err(io_err(META_PATH))?;
    let m: Meta = serde_json::from_slice(&b)
        .map_err(|e| corrupt(META_PATH, None, None, format!("not archive metadata: {e}")))?;
    let id: [u8; 16] = unhex(&m.archive_id)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt(META_PATH, None, None, "bad archive id"))?;
    Ok(Some((id, m.verifying_key)))
}

/// Day number (days since 1970-01-01) of a time.
fn day_of(t: Timestamp) -> i64 {
    t.0.div_euclid(DAY.0)
}

fn day_name(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    let d: String = s
        .get(..10)
        .unwrap_or("")
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        d
    } else {
        format!("d{}", day_of(t))
    }
}

struct OpenSeg {
    path: String,
    file: Box<dyn AppendFile>,
    cipher: Cipher,
    day: i64,
    /// File length including pending bytes.
    bytes: u64,
    pending: Vec<u8>,
    /// Bytes handed to the OS but not synced.
    unsynced: bool,
    records: u64,
}

struct CatState {
    name: String,
    /// Index in the policy, `None` for a category found on disk that the
    /// configuration no longer names (kept, verified, never routed to).
    policy: Option<usize>,
    next_seq: u64,
    hash: [u8; 32],
    open: Option<OpenSeg>,
}

/// A legal hold: while it exists, segments of its category (all when
/// `None`) overlapping its time range are not pruned, and no subject can be
/// erased (a subject key covers events of any category and time, so the
/// archive cannot tell which holds an erasure would touch without
/// decrypting everything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    pub category: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub reason: String,
    pub created: Timestamp,
    pub by: String,
}

impl Hold {
    fn covers(&self, cat: &str, min: i64, max: i64) -> bool {
        self.category.as_deref().is_none_or(|c| c == cat)
            && self.from.is_none_or(|f| max >= f.0)
            && self.to.is_none_or(|t| min <= t.0)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct HoldsFile {
    next_id: u64,
    holds: Vec<Hold>,
}

/// What opening found and repaired.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    pub created: bool,
    /// One line per repair (torn tails truncated); each is also an audit record.
    pub repairs: Vec<String>,
}

/// Which access an audit record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Search,
    Export,
}

/// A search or export request.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Inclusive lower bound on event time.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on event time.
    pub to: Option<Timestamp>,
    /// Categories to read; empty means every category except `audit`.
    pub categories: Vec<String>,
    /// Stop after this many hits (0 = no limit).
    pub limit: usize,
    /// The query as the user wrote it, recorded in the audit record.
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub category: String,
    pub seq: u64,
    pub event: Event,
}

#[derive(Clone, Debug, Default)]
pub struct SearchSummary {
    pub hits: u64,
    /// Records inside the time range that were decrypted and tested.
    pub scanned: u64,
    /// Records that failed to authenticate or decode (run `verify`).
    pub damaged: u64,
    pub limited: bool,
}

#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    /// Removed segment paths.
    pub removed: Vec<String>,
    pub records: u64,
    /// Segments past retention kept because of a hold: (path, hold id).
    pub held: Vec<(String, u64)>,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraseReport {
    /// Whether a key existed for the subject (false: nothing was sealed
    /// under it, or it was erased before).
    pub found: bool,
    /// Key file epoch after the erasure.
    pub key_epoch: u64,
}

/// The fsyncs of one group commit (see [`Archive::begin_sync`]); `Send`,
/// so the binary can run it on a syncer thread while appends continue.
pub struct SyncJob {
    handles: Vec<(String, Box<dyn SyncHandle>)>,
    done: SyncDone,
}

impl SyncJob {
    /// The Lsn this job makes durable.
    pub fn lsn(&self) -> Lsn {
        self.done.lsn
    }

    /// Fsyncs every file of the job.
    pub fn run(mut self) -> Result<SyncDone> {
        for (path, h) in &mut self.handles {
            h.sync().map_err(io_err(path))?;
        }
        Ok(self.done)
    }
}

/// A finished [`SyncJob`], for [`Archive::finish_sync`].
pub struct SyncDone {
    lsn: Lsn,
    records: u64,
    points: BTreeMap<String, ChainPoint>,
    keys: crate::keys::KeyFileState,
}

impl SyncDone {
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }
}

pub struct Archive {
    storage: Arc<dyn Storage>,
    _lock: Box<dyn LockGuard>,
    policy: Policy,
    signing: SigningKeyBox,
    id: [u8; 16],
    ks: KeyStore,
    cats: Vec<CatState>,
    nonces: NonceCounter,
    /// Buffers the encoder reuses from one event to the next.
    scratch: codec::EncodeScratch,
    appended: Lsn,
    durable: Lsn,
    last_sync: Timestamp,
    ckpt_n: u64,
    ckpt_at: Timestamp,
    /// Records (events and audit) appended in total, and the total the
    /// last checkpoint covered.
    records: u64,
    ckpt_records: u64,
    /// Group-commit jobs handed out and not finished.
    in_flight: u32,
    ckpt_due: Option<&'static str>,
    ckpt_file: Option<Box<dyn AppendFile>>,
    holds: HoldsFile,
    /// Something changed since the last sync.
    dirty: bool,
}

impl Archive {
    /// Opens (creating when empty) the archive in `storage` for writing,
    /// taking its lock, and recovers from a crash: a torn tail of a segment,
    /// the key file or the checkpoint log is truncated to the last complete
    /// record and the truncation is written as an audit record.
    pub fn open(
        storage: Arc<dyn Storage>,
        policy: Policy,
        keys: Keys,
        now: Timestamp,
    ) -> Result<(Archive, OpenReport)> {
        let signing = keys
            .signing
            .clone()
            .ok_or_else(|| Error::Key("writing needs the checkpoint signing key".into()))?;
        let lock = storage.lock().map_err(io_err("lock"))?;
        let mut report = OpenReport::default();
        let st: &dyn Storage = &*storage;
        let (id, ks) = match read_meta(st)? {
            Some((id, vk)) => {
                if vk != keys.verifying.to_hex() {
                    return Err(Error::Key(format!(
                        "the archive's checkpoints are signed by {vk}, not by the given signing key"
                    )));
                }
                let (ks, torn) = KeyStore::load(st, id, keys.clone())?;
                if let Some(t) = torn {
                    st.truncate(KEYS_PATH, t.offset)
                        .map_err(io_err(KEYS_PATH))?;
                    report.repairs.push(format!(
                        "{KEYS_PATH}: truncated a torn entry at offset {} ({} bytes)",
                        t.offset, t.len
                    ));
                }
                (id, ks)
            }
            None => {
                if !st.list(SEG_DIR).map_err(io_err(SEG_DIR))?.is_empty() {
                    return Err(corrupt(
                        META_PATH,
                        None,
                        None,
                        "missing, but the directory holds segments",
                    ));
                }
                // A crash during creation can leave a key file or checkpoint
                // log without `meta` (written last); nothing was archived yet.
                for p in [KEYS_PATH, CHECKPOINTS_PATH] {
                    if st.exists(p).map_err(io_err(p))? {
                        st.remove(p).map_err(io_err(p))?;
                    }
                }
                let id: [u8; 16] = random_array()?;
                let mut ks = KeyStore::create(id, keys.clone())?;
                ks.flush(st)?;
                let meta = Meta {
                    format: 1,
                    archive_id: hex(&id),
                    created: now.0,
                    verifying_key: keys.verifying.to_hex(),
                };
                let bytes = serde_json::to_vec_pretty(&meta).unwrap_or_default();
                st.write_atomic(META_PATH, &bytes)
                    .map_err(io_err(META_PATH))?;
                report.created = true;
                (id, ks)
            }
        };

        // Checkpoint log: last number, torn tail.
        let mut ckpt_n = 0;
        if st
            .exists(CHECKPOINTS_PATH)
            .map_err(io_err(CHECKPOINTS_PATH))?
        {
            let b = st
                .read(CHECKPOINTS_PATH)
                .map_err(io_err(CHECKPOINTS_PATH))?;
            // Only the last number is needed here; verify checks signatures.
            let (parsed, whole) = checkpoint::parse(&b, None);
            ckpt_n = parsed
                .iter()
                .filter_map(|p| p.checkpoint.as_ref().map(|c| c.n))
                .max()
                .unwrap_or(0);
            if whole < b.len() {
                st.truncate(CHECKPOINTS_PATH, whole as u64)
                    .map_err(io_err(CHECKPOINTS_PATH))?;
                report.repairs.push(format!(
                    "{CHECKPOINTS_PATH}: truncated a torn line at offset {whole} ({} bytes)",
                    b.len() - whole
                ));
            }
        }

        let holds = if st.exists(HOLDS_PATH).map_err(io_err(HOLDS_PATH))? {
            let b = st.read(HOLDS_PATH).map_err(io_err(HOLDS_PATH))?;
            serde_json::from_slice(&b)
                .map_err(|e| corrupt(HOLDS_PATH, None, None, e.to_string()))?
        } else {
            HoldsFile {
                next_id: 1,
                holds: vec![],
            }
        };

        let mut names: Vec<String> = policy.categories.iter().map(|c| c.name.clone()).collect();
        for d in st.list(SEG_DIR).map_err(io_err(SEG_DIR))? {
            if valid_category_name(&d) && !names.contains(&d) {
                names.push(d);
            }
        }
        let mut cats = Vec::new();
        for name in names {
            let (next_seq, hash) = recover_category(st, &id, &name, &mut report)?;
            cats.push(CatState {
                policy: policy.category_index(&name),
                name,
                next_seq,
                hash,
                open: None,
            });
        }

        let mut a = Archive {
            storage,
            _lock: lock,
            policy,
            signing,
            id,
            ks,
            cats,
            nonces: NonceCounter::new(random_array()?),
            scratch: codec::EncodeScratch::default(),
            appended: 0,
            durable: 0,
            last_sync: now,
            ckpt_n,
            ckpt_at: now,
            records: 0,
            ckpt_records: 0,
            in_flight: 0,
            ckpt_due: None,
            ckpt_file: None,
            holds,
            dirty: false,
        };
        for r in report.repairs.clone() {
            a.audit(
                now,
                "recover",
                "secmon",
                vec![("archive.repair", Value::from(r.as_str()))],
            )?;
        }
        a.ckpt_due = Some("open");
        a.sync(now)?;
        Ok((a, report))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn archive_id(&self) -> [u8; 16] {
        self.id
    }

    fn cat_index(&self, name: &str) -> Option<usize> {
        self.cats.iter().position(|c| c.name == name)
    }

    /// Opens a new segment for category `ci` when there is none, its day has
    /// ended, or it is full.
    fn ensure_open(&mut self, ci: usize, now: Timestamp) -> Result<()> {
        let day = day_of(now);
        let max = self.policy.max_segment_bytes;
        let roll = self.cats[ci]
            .open
            .as_ref()
            .is_some_and(|s| s.day != day || s.bytes >= max);
        if roll {
            self.close_segment(ci)?;
        }
        if self.cats[ci].open.is_none() {
            self.new_segment(ci, now)?;
        }
        Ok(())
    }

    fn new_segment(&mut self, ci: usize, now: Timestamp) -> Result<()> {
        let (key_id, cipher) = self.ks.new_data_key()?;
        let c = &mut self.cats[ci];
        let header = SegmentHeader {
            archive_id: self.id,
            first_seq: c.next_seq,
            prev_hash: c.hash,
            created: now.0,
            key_id,
            category: c.name.clone(),
            len: 0,
        };
        let path = seg_path(&c.name, &format::segment_name(c.next_seq, &day_name(now)));
        let file = self.storage.create(&path).map_err(io_err(&path))?;
        let pending = header.encode();
        c.open = Some(OpenSeg {
            path,
            file,
            cipher,
            day: day_of(now),
            bytes: pending.len() as u64,
            pending,
            unsynced: false,
            records: 0,
        });
        self.dirty = true;
        Ok(())
    }

    /// Syncs and forgets the open segment of `ci`; the next sync writes a
    /// checkpoint covering its end.
    fn close_segment(&mut self, ci: usize) -> Result<()> {
        self.ks.flush(&*self.storage)?;
        if let Some(mut s) = self.cats[ci].open.take() {
            write_out(&mut s)?;
            s.file.sync().map_err(io_err(&s.path))?;
        }
        self.ckpt_due = Some("segment-close");
        Ok(())
    }

    fn append_record(&mut self, ci: usize, kind: u8, ev: &Event, now: Timestamp) -> Result<()> {
        self.ensure_open(ci, now)?;
        let Archive {
            cats,
            ks,
            policy,
            nonces,
            scratch,
            ..
        } = self;
        let c = &mut cats[ci];
        let Some(seg) = c.open.as_mut() else {
            return Err(Error::Invalid("no open segment".into()));
        };
        let seq = c.next_seq;
        let buf = &mut seg.pending;
        let start = format::begin_record(buf, kind, seq, ev.time.0);
        let body = buf.len();
        let personal = kind == KIND_EVENT && !policy.personal_fields.is_empty();
        let subject: Option<Str> = if personal {
            policy
                .subject_fields
                .iter()
                .find_map(|p| ev.get(p).filter(|v| !v.is_null()).map(Value::to_key))
        } else {
            None
        };
        // One key lookup per event when the subject is shared by its fields
        // (they then form one sealed group: one AEAD message per event).
        let mut shared: Option<([u8; 16], Cipher)> = None;
        let mut sealer = |path: &str, v: &Value| -> Result<Option<([u8; 16], Cipher)>> {
            if !personal || !policy.is_personal(path) || v.is_null() {
                return Ok(None);
            }
            match &subject {
                Some(s) => {
                    if shared.is_none() {
                        shared = Some(ks.subject_key(s)?);
                    }
                    Ok(shared.clone())
                }
                None => ks.subject_key(&v.to_key()).map(Some),
            }
        };
        if let Err(e) = codec::encode_event_with(ev, &mut sealer, nonces, scratch, buf) {
            buf.truncate(start);
            return Err(e);
        }
        let payload_len = buf.len() - body;
        if payload_len + (format::REC_MIN_LEN as usize) > format::REC_MAX_LEN as usize {
            // Readers reject longer records as damage: refuse to write one.
            buf.truncate(start);
            return Err(Error::Invalid(format!(
                "event of {payload_len} bytes exceeds the archive's record limit of {} bytes",
                format::REC_MAX_LEN
            )));
        }
        format::set_record_len(buf, start, payload_len);
        let mut aad = [0u8; format::REC_HEAD];
        aad.copy_from_slice(&buf[start..body]);
        seg.cipher
            .seal_tail(&format::record_nonce(seq), &aad, buf, body);
        c.hash = format::finish_record(buf, start, &c.hash);
        seg.bytes += (buf.len() - start) as u64;
        seg.records += 1;
        c.next_seq += 1;
        self.records += 1;
        self.dirty = true;
        if seg.pending.len() >= SPILL_BYTES {
            // Keys before the segment bytes that need them reach the disk.
            ks.flush(&*self.storage)?;
            write_out(seg)?;
        }
        Ok(())
    }

    /// Appends a batch. Events are routed to their categories; the returned
    /// [`Lsn`] is the last event's. They are durable once
    /// [`durable_lsn`](Self::durable_lsn) reaches it (after the next
    /// [`tick`](Self::tick) past the fsync interval, or [`sync`](Self::sync)).
    pub fn append(&mut self, events: &[Event], now: Timestamp) -> Result<Lsn> {
        for ev in events {
            let pi = self.policy.route(ev);
            let name = &self.policy.categories[pi].name;
            let ci = self
                .cats
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| Error::Invalid(format!("category {name} not open")))?;
            self.append_record(ci, KIND_EVENT, ev, now)?;
            self.appended += 1;
        }
        Ok(self.appended)
    }

    /// Highest Lsn on disk.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable
    }

    pub fn appended_lsn(&self) -> Lsn {
        self.appended
    }

    /// When [`tick`](Self::tick) next has work: the group-commit deadline
    /// while something is unsynced.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.dirty
            .then(|| self.last_sync.add(self.policy.fsync_interval))
    }

    /// Group commit: syncs when the fsync interval has passed since the
    /// last sync and something is pending. Returns the durable Lsn.
    pub fn tick(&mut self, now: Timestamp) -> Result<Lsn> {
        if self.sync_due(now) {
            self.sync(now)?;
        } else if !self.dirty
            && self.in_flight == 0
            && self.records > self.ckpt_records
            && now.since(self.ckpt_at) >= self.policy.checkpoint_interval
        {
            self.checkpoint(now, "interval")?;
        }
        Ok(self.durable)
    }

    /// Whether the group-commit interval has passed with data pending.
    pub fn sync_due(&self, now: Timestamp) -> bool {
        self.dirty && now >= self.last_sync.add(self.policy.fsync_interval)
    }

    /// Makes everything appended durable now (key file first, then the
    /// segments), then writes a checkpoint when one is due.
    pub fn sync(&mut self, now: Timestamp) -> Result<Lsn> {
        let job = self.begin_sync(now)?;
        let done = job.run()?;
        self.finish_sync(done, now)
    }

    /// First half of a group commit that overlaps the fsyncs with further
    /// appends: hands the pending bytes to the OS and returns a [`SyncJob`]
    /// (fsyncs only) to run on another thread; pass its result to
    /// [`finish_sync`](Self::finish_sync). New keys are synced here, before
    /// any segment byte that needs them can reach the disk.
    pub fn begin_sync(&mut self, now: Timestamp) -> Result<SyncJob> {
        self.ks.flush(&*self.storage)?;
        let mut handles = Vec::new();
        let overlap = self.in_flight > 0;
        for c in &mut self.cats {
            if let Some(s) = c.open.as_mut()
                && (overlap || !s.pending.is_empty() || s.unsynced)
            {
                write_out(s)?;
                let h = s.file.sync_handle().map_err(io_err(&s.path))?;
                handles.push((s.path.clone(), h));
                s.unsynced = false;
            }
        }
        self.last_sync = now;
        self.dirty = false;
        self.in_flight += 1;
        Ok(SyncJob {
            handles,
            done: SyncDone {
                lsn: self.appended,
                records: self.records,
                points: self.chain_points(),
                keys: self.ks.state(),
            },
        })
    }

    /// Second half: the events of the job are durable. Writes a checkpoint
    /// of the job's (durable) state when one is due. Returns the durable Lsn.
    pub fn finish_sync(&mut self, done: SyncDone, now: Timestamp) -> Result<Lsn> {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.durable = self.durable.max(done.lsn);
        let since = done.records.saturating_sub(self.ckpt_records);
        let reason = self.ckpt_due.take().or({
            if since >= self.policy.checkpoint_records {
                Some("records")
            } else if since > 0 && now.since(self.ckpt_at) >= self.policy.checkpoint_interval {
                Some("interval")
            } else {
                None
            }
        });
        if let Some(r) = reason {
            if done.records < self.ckpt_records {
                // A newer checkpoint exists already.
                return Ok(self.durable);
            }
            self.write_checkpoint(now, r, done.points, done.keys, done.records)?;
        }
        Ok(self.durable)
    }

    fn chain_points(&self) -> BTreeMap<String, ChainPoint> {
        self.cats
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    ChainPoint {
                        seq: c.next_seq,
                        hash: hex(&c.hash),
                    },
                )
            })
            .collect()
    }

    /// Writes a signed checkpoint of the current state, syncing first.
    fn checkpoint(&mut self, now: Timestamp, reason: &'static str) -> Result<()> {
        if self.dirty || self.in_flight > 0 {
            // Never sign what is not on disk.
            self.ckpt_due = Some(reason);
            self.sync(now)?;
            return Ok(());
        }
        let (points, keys) = (self.chain_points(), self.ks.state());
        self.write_checkpoint(now, reason, points, keys, self.records)
    }

    fn write_checkpoint(
        &mut self,
        now: Timestamp,
        reason: &str,
        points: BTreeMap<String, ChainPoint>,
        keys: crate::keys::KeyFileState,
        records: u64,
    ) -> Result<()> {
        self.ckpt_n += 1;
        let cp = Checkpoint {
            archive: hex(&self.id),
            n: self.ckpt_n,
            at: now.0,
            reason: reason.to_string(),
            categories: points,
            keys,
        };
        let line = cp.to_line(&self.signing);
        if self.ckpt_file.is_none() {
            let st = &*self.storage;
            let f = if st
                .exists(CHECKPOINTS_PATH)
                .map_err(io_err(CHECKPOINTS_PATH))?
            {
                st.open_append(CHECKPOINTS_PATH)
            } else {
                st.create(CHECKPOINTS_PATH)
            }
            .map_err(io_err(CHECKPOINTS_PATH))?;
            self.ckpt_file = Some(f);
        }
        if let Some(f) = self.ckpt_file.as_mut() {
            f.append(line.as_bytes())
                .map_err(io_err(CHECKPOINTS_PATH))?;
            f.sync().map_err(io_err(CHECKPOINTS_PATH))?;
        }
        self.ckpt_at = now;
        self.ckpt_records = records;
        Ok(())
    }

    /// Appends an audit record (not yet synced).
    fn audit(
        &mut self,
        now: Timestamp,
        action: &str,
        who: &str,
        extra: Vec<(&str, Value)>,
    ) -> Result<()> {
        let mut f = Fields::with_capacity(3 + extra.len());
        f.push(
            Str::from("event"),
            Value::from(format!("archive.{action}").as_str()),
        );
        f.push(Str::from("archive.action"), Value::from(action));
        f.push(Str::from("archive.who"), Value::from(who));
        for (k, v) in extra {
            f.push(Str::from(k), v);
        }
        let ev = Event::new(now, f);
        let ci = self
            .cat_index(AUDIT)
            .ok_or_else(|| Error::Invalid("no audit category".into()))?;
        self.append_record(ci, KIND_AUDIT, &ev, now)
    }

    /// Closes every open segment, writes a final checkpoint and releases the lock.
    pub fn close(mut self, now: Timestamp) -> Result<()> {
        for ci in 0..self.cats.len() {
            self.close_segment(ci)?;
        }
        self.sync(now)?;
        Ok(())
    }

    // ------------------------------------------------------------ reading

    /// Searches (or exports) events: reads the selected categories, skips
    /// records outside the time range without decrypting them, decrypts the
    /// rest, tests `pred` and hands each hit to `on_hit`. The access is
    /// recorded as an audit record (who, query, number of records).
    pub fn search(
        &mut self,
        q: &Query,
        access: Access,
        pred: &dyn Fn(&Event) -> bool,
        who: &str,
        now: Timestamp,
        on_hit: &mut dyn FnMut(Hit),
    ) -> Result<SearchSummary> {
        self.sync(now)?;
        let mut sum = SearchSummary::default();
        let names: Vec<String> = if q.categories.is_empty() {
            self.cats
                .iter()
                .filter(|c| c.name != AUDIT)
                .map(|c| c.name.clone())
                .collect()
        } else {
            for n in &q.categories {
                if self.cat_index(n).is_none() {
                    return Err(Error::Invalid(format!("unknown category {n:?}")));
                }
            }
            q.categories.clone()
        };
        let from = q.from.map_or(i64::MIN, |t| t.0);
        let to = q.to.map_or(i64::MAX, |t| t.0);
        'cats: for name in &names {
            let dir = format!("{SEG_DIR}/{name}");
            for seg in self.storage.list(&dir).map_err(io_err(&dir))? {
                let path = format!("{dir}/{seg}");
                let bytes = self.storage.read(&path).map_err(io_err(&path))?;
                let Ok(h) = SegmentHeader::parse(&path, &bytes) else {
                    sum.damaged += 1;
                    continue;
                };
                let Some(cipher) = self.ks.data_cipher(&h.key_id) else {
                    sum.damaged += 1;
                    continue;
                };
                let mut frames = Frames::new(&bytes, h.len);
                let mut buf = Vec::new();
                while let Next::Record(r) = frames.next_record() {
                    if r.time < from || r.time >= to {
                        continue;
                    }
                    sum.scanned += 1;
                    buf.clear();
                    buf.extend_from_slice(r.sealed);
                    let Some(pt) =
                        cipher.open_in_place(&format::record_nonce(r.seq), r.aad(), &mut buf)
                    else {
                        sum.damaged += 1;
                        continue;
                    };
                    let ks = &mut self.ks;
                    let ev = match codec::decode_event(pt, &mut |id| ks.subject_cipher(id)) {
                        Ok(ev) => ev,
                        Err(_) => {
                            sum.damaged += 1;
                            continue;
                        }
                    };
                    if pred(&ev) {
                        sum.hits += 1;
                        on_hit(Hit {
                            category: name.clone(),
                            seq: r.seq,
                            event: ev,
                        });
                        if q.limit > 0 && sum.hits >= q.limit as u64 {
                            sum.limited = true;
                            break 'cats;
                        }
                    }
                }
            }
        }
        let action = match access {
            Access::Search => "search",
            Access::Export => "export",
        };
        self.audit(
            now,
            action,
            who,
            vec![
                ("archive.query", Value::from(q.text.as_str())),
                ("archive.categories", Value::from(names.join(",").as_str())),
                (
                    "archive.from",
                    q.from.map_or(Value::Null, |t| Value::Int(t.0)),
                ),
                ("archive.to", q.to.map_or(Value::Null, |t| Value::Int(t.0))),
                ("archive.records", Value::Int(sum.hits as i64)),
            ],
        )?;
        self.sync(now)?;
        Ok(sum)
    }

    /// [`search`](Self::search) collecting the hits.
    pub fn search_collect(
        &mut self,
        q: &Query,
        pred: &dyn Fn(&Event) -> bool,
        who: &str,
        now: Timestamp,
    ) -> Result<(Vec<Hit>, SearchSummary)> {
        let mut hits = Vec::new();
        let s = self.search(q, Access::Search, pred, who, now, &mut |h| hits.push(h))?;
        Ok((hits, s))
    }

    /// Verifies the whole archive (see [`crate::verify`]) after syncing, and
    /// records the verification as an audit record.
    pub fn verify(
        &mut self,
        exported: Option<&[u8]>,
        threads: usize,
        who: &str,
        now: Timestamp,
        progress: &mut dyn FnMut(&verify::Progress),
    ) -> Result<VerifyReport> {
        self.sync(now)?;
        let keys = Keys {
            master: self.ks_master(),
            previous: self.ks_previous(),
            signing: None,
            verifying: self.signing.verifying(),
        };
        let report =
            verify::verify_archive_with(&*self.storage, &keys, exported, threads, progress)?;
        self.audit(
            now,
            "verify",
            who,
            vec![
                ("archive.records", Value::Int(report.records as i64)),
                ("archive.segments", Value::Int(report.segments as i64)),
                ("archive.problems", Value::Int(report.problems.len() as i64)),
                ("archive.exported", Value::Bool(exported.is_some())),
            ],
        )?;
        self.sync(now)?;
        Ok(report)
    }

    fn ks_master(&self) -> crate::crypto::MasterKey {
        self.ks.keys().master.clone()
    }
    fn ks_previous(&self) -> Vec<crate::crypto::MasterKey> {
        self.ks.keys().previous.clone()
    }

    /// Writes a checkpoint of the current state and returns the whole
    /// checkpoint log, to be stored somewhere the archive's host cannot
    /// rewrite. Audited.
    pub fn export_checkpoints(&mut self, who: &str, now: Timestamp) -> Result<Vec<u8>> {
        self.sync(now)?;
        self.checkpoint(now, "export")?;
        let b = self
            .storage
            .read(CHECKPOINTS_PATH)
            .map_err(io_err(CHECKPOINTS_PATH))?;
        self.audit(
            now,
            "export_checkpoints",
            who,
            vec![("archive.records", Value::Int(self.ckpt_n as i64))],
        )?;
        self.sync(now)?;
        Ok(b)
    }

    // ------------------------------------------------------------ retention

    pub fn holds(&self) -> &[Hold] {
        &self.holds.holds
    }

    fn save_holds(&self) -> Result<()> {
        let b = serde_json::to_vec_pretty(&self.holds).unwrap_or_default();
        self.storage
            .write_atomic(HOLDS_PATH, &b)
            .map_err(io_err(HOLDS_PATH))
    }

    /// Places a legal hold. Audited.
    pub fn add_hold(
        &mut self,
        category: Option<&str>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        reason: &str,
        who: &str,
        now: Timestamp,
    ) -> Result<u64> {
        if let Some(c) = category
            && self.cat_index(c).is_none()
        {
            return Err(Error::Invalid(format!("unknown category {c:?}")));
        }
        let id = self.holds.next_id.max(1);
        self.holds.next_id = id + 1;
        self.holds.holds.push(Hold {
            id,
            category: category.map(str::to_string),
            from,
            to,
            reason: reason.to_string(),
            created: now,
            by: who.to_string(),
        });
        self.save_holds()?;
        self.audit(
            now,
            "hold",
            who,
            vec![
                ("archive.hold", Value::Int(id as i64)),
                (
                    "archive.category",
                    category.map_or(Value::Null, Value::from),
                ),
                (
                    "archive.from",
                    from.map_or(Value::Null, |t| Value::Int(t.0)),
                ),
                ("archive.to", to.map_or(Value::Null, |t| Value::Int(t.0))),
                ("archive.reason", Value::from(reason)),
            ],
        )?;
        self.sync(now)?;
        Ok(id)
    }

    /// Releases a hold. Audited.
    pub fn release_hold(&mut self, id: u64, who: &str, now: Timestamp) -> Result<()> {
        let before = self.holds.holds.len();
        self.holds.holds.retain(|h| h.id != id);
        if self.holds.holds.len() == before {
            return Err(Error::Invalid(format!("no legal hold {id}")));
        }
        self.save_holds()?;
        self.audit(
            now,
            "release_hold",
            who,
            vec![("archive.hold", Value::Int(id as i64))],
        )?;
        self.sync(now)?;
        Ok(())
    }

    /// Removes segments whose newest record is older than their category's
    /// retention, oldest first, stopping per category at the first segment
    /// that is still needed or held (the chain stays a suffix). Each removal
    /// is an audit record written durably *before* the file goes. Today's
    /// open segment is never removed; when the newest segment of a category
    /// goes, an empty segment carrying the chain state is opened first.
    pub fn prune(&mut self, who: &str, now: Timestamp) -> Result<PruneReport> {
        // A segment of an earlier day would be closed by the next append
        // anyway; close it now so a quiet category's last day can expire.
        for ci in 0..self.cats.len() {
            if self.cats[ci]
                .open
                .as_ref()
                .is_some_and(|s| s.day != day_of(now))
            {
                self.close_segment(ci)?;
            }
        }
        self.sync(now)?;
        let mut rep = PruneReport::default();
        for ci in 0..self.cats.len() {
            let Some(pi) = self.cats[ci].policy else {
                continue;
            };
            let retention = self.policy.categories[pi].retention;
            let name = self.cats[ci].name.clone();
            let dir = format!("{SEG_DIR}/{name}");
            let segs = self.storage.list(&dir).map_err(io_err(&dir))?;
            let open_path = self.cats[ci].open.as_ref().map(|s| s.path.clone());
            for (i, seg) in segs.iter().enumerate() {
                let path = format!("{dir}/{seg}");
                if Some(&path) == open_path.as_ref() {
                    break;
                }
                let info = match scan_segment(&*self.storage, &path) {
                    Ok(i) => i,
                    Err(e) => {
                        rep.problems.push(e.to_string());
                        break;
                    }
                };
                if info.records == 0 && i + 1 == segs.len() {
                    // An empty newest segment only anchors the chain.
                    break;
                }
                let newest = info.max_time.unwrap_or(info.created).max(info.created);
                if Timestamp(newest).add(retention) > now {
                    break;
                }
                let (min, max) = (
                    info.min_time.unwrap_or(info.created),
                    info.max_time.unwrap_or(info.created),
                );
                if let Some(h) = self.holds.holds.iter().find(|h| h.covers(&name, min, max)) {
                    rep.held.push((path, h.id));
                    break;
                }
                if i + 1 == segs.len() {
                    // The newest segment anchors the chain: open a successor.
                    self.new_segment(ci, now)?;
                }
                self.audit(
                    now,
                    "prune",
                    who,
                    vec![
                        ("archive.category", Value::from(name.as_str())),
                        ("archive.segment", Value::from(path.as_str())),
                        ("archive.first_seq", Value::Int(info.first_seq as i64)),
                        ("archive.end_seq", Value::Int(info.end_seq as i64)),
                        (
                            "archive.end_hash",
                            Value::from(hex(&info.end_hash).as_str()),
                        ),
                        ("archive.records", Value::Int(info.records as i64)),
                        ("archive.max_time", Value::Int(max)),
                        (
                            "archive.retention",
                            Value::from(retention.to_string().as_str()),
                        ),
                    ],
                )?;
                self.sync(now)?;
                self.storage.remove(&path).map_err(io_err(&path))?;
                rep.records += info.records;
                rep.removed.push(path);
            }
        }
        if !rep.removed.is_empty() {
            self.checkpoint(now, "prune")?;
        }
        Ok(rep)
    }

    // ------------------------------------------------------------ keys

    /// Crypto-shreds `subject`: its key is removed from the key file (which is
    /// rewritten with a higher epoch), so fields sealed under it read as
    /// `[erased]` while the chain and signatures still verify. Blocked by any
    /// legal hold. The audit record names the subject only by an HMAC prefix.
    pub fn erase(&mut self, subject: &str, who: &str, now: Timestamp) -> Result<EraseReport> {
        if let Some(h) = self.holds.holds.first() {
            return Err(Error::Held {
                id: h.id,
                reason: h.reason.clone(),
            });
        }
        let reference = hex(&self.ks.lookup(subject)[..8]);
        let found = self.ks.forget_subject(subject).is_some();
        self.audit(
            now,
            "erase",
            who,
            vec![
                ("archive.subject_ref", Value::from(reference.as_str())),
                ("archive.found", Value::Bool(found)),
            ],
        )?;
        self.sync(now)?;
        if found {
            self.ks.rewrite(&*self.storage)?;
        }
        self.checkpoint(now, "erase")?;
        Ok(EraseReport {
            found,
            key_epoch: self.ks.epoch(),
        })
    }

    /// Re-wraps every data and subject key under the current master key (new
    /// segments use it already), so older master keys can be retired.
    /// Returns how many keys were re-wrapped. Audited.
    pub fn rotate_key(&mut self, who: &str, now: Timestamp) -> Result<usize> {
        self.sync(now)?;
        let n = self.ks.wrapped_by_old_keys();
        self.ks.rewrite(&*self.storage)?;
        self.audit(
            now,
            "rotate_key",
            who,
            vec![
                ("archive.rewrapped", Value::Int(n as i64)),
                (
                    "archive.master_key",
                    Value::from(hex(&self.ks.keys().master.id()).as_str()),
                ),
            ],
        )?;
        self.sync(now)?;
        self.checkpoint(now, "rotate_key")?;
        Ok(n)
    }

    /// Number of subject keys held (each a subject that can be erased).
    pub fn subject_count(&self) -> usize {
        self.ks.subject_count()
    }
}

fn write_out(s: &mut OpenSeg) -> Result<()> {
    if !s.pending.is_empty() {
        s.file.append(&s.pending).map_err(io_err(&s.path))?;
        s.pending.clear();
        s.unsynced = true;
    }
    Ok(())
}

/// What a scan of a segment (framing and chain, no decryption) finds.
pub(crate) struct SegInfo {
    pub first_seq: u64,
    pub end_seq: u64,
    pub end_hash: [u8; 32],
    pub records: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub created: i64,
}

pub(crate) fn scan_segment(st: &dyn Storage, path: &str) -> Result<SegInfo> {
    let b = st.read(path).map_err(io_err(path))?;
    let h = SegmentHeader::parse(path, &b)?;
    let mut info = SegInfo {
        first_seq: h.first_seq,
        end_seq: h.first_seq,
        end_hash: h.prev_hash,
        records: 0,
        min_time: None,
        max_time: None,
        created: h.created,
    };
    let mut f = Frames::new(&b, h.len);
    loop {
        match f.next_record() {
            Next::Record(r) => {
                info.end_hash = format::chain(&info.end_hash, r.frame);
                info.end_seq = r.seq.saturating_add(1);
                info.records += 1;
                info.min_time = Some(info.min_time.map_or(r.time, |m| m.min(r.time)));
                info.max_time = Some(info.max_time.map_or(r.time, |m| m.max(r.time)));
            }
            Next::End => return Ok(info),
            Next::Torn { offset, what } | Next::Bad { offset, what } => {
                return Err(corrupt(path, Some(info.end_seq), Some(offset), what));
            }
        }
    }
}

/// Finds where a category's chain stands, truncating a torn tail of its
/// newest segment (and removing a newest segment whose header never made it
/// to disk).
fn recover_category(
    st: &dyn Storage,
    id: &[u8; 16],
    name: &str,
    rep: &mut OpenReport,
) -> Result<(u64, [u8; 32])> {
    let dir = format!("{SEG_DIR}/{name}");
    let mut segs = st.list(&dir).map_err(io_err(&dir))?;
    segs.retain(|s| format::parse_segment_name(s).is_some());
    while let Some(last) = segs.last().cloned() {
        let path = format!("{dir}/{last}");
        let b = st.read(&path).map_err(io_err(&path))?;
        let h = match SegmentHeader::parse(&path, &b) {
            Ok(h) => h,
            Err(e) => {
                // A header is written with the segment's first sync; a file
                // shorter than a header is a segment created just before a
                // crash, which held nothing durable.
                let full_header = 93 + name.len() + 4;
                if b.len() < full_header {
                    st.remove(&path).map_err(io_err(&path))?;
                    rep.repairs.push(format!(
                        "{path}: removed a segment whose header was torn ({} bytes)",
                        b.len()
                    ));
                    segs.pop();
                    continue;
                }
                return Err(e);
            }
        };
        let mut hash = h.prev_hash;
        let mut next = h.first_seq;
        let mut f = Frames::new(&b, h.len);
        loop {
            match f.next_record() {
                Next::Record(r) => {
                    if r.seq != next {
                        return Err(corrupt(
                            &path,
                            Some(next),
                            Some(r.offset),
                            format!("found seq {}", r.seq),
                        ));
                    }
                    hash = format::chain(&hash, r.frame);
                    next += 1;
                }
                Next::End => break,
                Next::Torn { offset, what } => {
                    st.truncate(&path, offset).map_err(io_err(&path))?;
                    rep.repairs.push(format!(
                        "{path}: truncated a torn record at offset {offset}, seq {next} ({what}; {} bytes)",
                        b.len() as u64 - offset
                    ));
                    break;
                }
                Next::Bad { offset, what } => {
                    return Err(corrupt(
                        &path,
                        Some(next),
                        Some(offset),
                        format!("{what} (not a torn tail: run verify)"),
                    ));
                }
            }
        }
        return Ok((next, hash));
    }
    Ok((0, format::genesis(id, name)))
}
