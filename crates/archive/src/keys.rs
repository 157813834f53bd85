//! The key file (`keys`): per-segment data keys and per-subject keys, each
//! wrapped by a master key, plus the secret that turns a subject string into
//! an opaque lookup value.
//!
//! Appends are batched and synced before any segment that needs them (the
//! writer's group commit syncs this file first). Erasure and key rotation
//! rewrite the whole file atomically with a higher *epoch*; the epoch sits in
//! a header authenticated with the master key, and every checkpoint records
//! (epoch, length, SHA-256 of the file), so restoring an older key file (to
//! resurrect an erased subject, say) is detected by `verify`.
//!
//! Records never contain a subject string: they name a random key id. The
//! file maps HMAC(index key, subject) to that id only until erasure removes
//! the entry. This module does not decide which events have which subject.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use secmon_core::Str;
use sha2::{Digest, Sha256};

use crate::crypto::{Cipher, Keys, MasterKey, NONCE_LEN, TAG_LEN, WRAPPED_LEN, random_array};
use crate::error::{Error, Result, corrupt, io_err};
use crate::storage::Storage;

pub const KEYS_PATH: &str = "keys";
const MAGIC: &[u8; 8] = b"SMARCKEY";
const VERSION: u16 = 1;
/// magic, version, epoch, archive id, master id.
const HDR_SIGNED: usize = 8 + 2 + 8 + 16 + 8;
const HDR_LEN: usize = HDR_SIGNED + NONCE_LEN + TAG_LEN;

const K_DATA: u8 = 1;
const K_SUBJECT: u8 = 2;
const K_INDEX: u8 = 3;

/// What a checkpoint records about the key file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyFileState {
    pub epoch: u64,
    pub len: u64,
    /// SHA-256 of the file's first `len` bytes, hex.
    pub digest: String,
}

#[derive(Clone)]
struct Wrapped {
    master: [u8; 8],
    blob: [u8; WRAPPED_LEN],
}

#[derive(Clone)]
struct SubjectEntry {
    lookup: [u8; 32],
    wrapped: Wrapped,
}

/// Caches of unwrapped subject keys are bounded: a remote party controls how
/// many subjects (IP addresses) there are.
const SUBJECT_CACHE_MAX: usize = 65_536;

pub struct KeyStore {
    archive_id: [u8; 16],
    keys: Keys,
    epoch: u64,
    index_key: [u8; 32],
    index_wrapped: Wrapped,
    data: HashMap<[u8; 16], Wrapped>,
    data_cache: HashMap<[u8; 16], Cipher>,
    subjects: HashMap<[u8; 16], SubjectEntry>,
    by_lookup: HashMap<[u8; 32], [u8; 16]>,
    subject_cache: HashMap<[u8; 16], Cipher>,
    /// Subject string → key id and cipher for recently seen subjects
    /// (writer only): one hash lookup per sealed event, no HMAC, no unwrap.
    /// Keys are inline strings (up to 24 bytes: most user ids, emails and
    /// addresses), so the lookup does not chase a pointer to compare them.
    recent: HashMap<Str, ([u8; 16], Cipher)>,
    /// Bytes appended but not yet written/synced.
    pending: Vec<u8>,
    /// Length and running digest of what is in the file.
    len: u64,
    hasher: Sha256,
}

fn aad(kind: u8, id: &[u8], archive_id: &[u8; 16]) -> Vec<u8> {
    let mut a = vec![kind];
    a.extend_from_slice(id);
    a.extend_from_slice(archive_id);
    a
}

fn header(epoch: u64, archive_id: &[u8; 16], master: &MasterKey) -> Result<Vec<u8>> {
    let mut h = Vec::with_capacity(HDR_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&epoch.to_le_bytes());
    h.extend_from_slice(archive_id);
    h.extend_from_slice(&master.id());
    let nonce: [u8; NONCE_LEN] = random_array()?;
    let mac = master.mac(&nonce, &h);
    h.extend_from_slice(&nonce);
    h.extend_from_slice(&mac);
    Ok(h)
}

fn entry(out: &mut Vec<u8>, kind: u8, body: &[&[u8]]) {
    let start = out.len();
    let n: usize = body.iter().map(|b| b.len()).sum();
    out.extend_from_slice(&((1 + n + 4) as u32).to_le_bytes());
    out.push(kind);
    for b in body {
        out.extend_from_slice(b);
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn take<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// What loading found at the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub offset: u64,
    pub len: u64,
}

impl KeyStore {
    /// A new key file (epoch 0) with a fresh index key; written on the first flush.
    pub fn create(archive_id: [u8; 16], keys: Keys) -> Result<KeyStore> {
        let index_key: [u8; 32] = random_array()?;
        let index_wrapped = Wrapped {
            master: keys.master.id(),
            blob: keys
                .master
                .wrap(&aad(K_INDEX, &[], &archive_id), &index_key)?,
        };
        let mut ks = KeyStore {
            archive_id,
            epoch: 0,
            index_key,
            index_wrapped,
            data: HashMap::new(),
            data_cache: HashMap::new(),
            subjects: HashMap::new(),
            by_lookup: HashMap::new(),
            subject_cache: HashMap::new(),
            recent: HashMap::new(),
            pending: Vec::new(),
            len: 0,
            hasher: Sha256::new(),
            keys,
        };
        ks.pending = ks.serialize_all()?;
        Ok(ks)
    }

    /// Loads `keys`. A torn tail (an interrupted append) is reported, not
    /// fixed: the caller truncates it and audits the truncation.
    pub fn load(
        storage: &dyn Storage,
        archive_id: [u8; 16],
        keys: Keys,
    ) -> Result<(KeyStore, Option<Torn>)> {
        let b = storage.read(KEYS_PATH).map_err(io_err(KEYS_PATH))?;
        let bad = |off: usize, what: &str| corrupt(KEYS_PATH, None, Some(off as u64), what);
        if b.len() < HDR_LEN || &b[..8] != MAGIC {
            return Err(bad(0, "not a secmon archive key file"));
        }
        if b[8..10] != VERSION.to_le_bytes() {
            return Err(bad(8, "unsupported key file version"));
        }
        let epoch = u64::from_le_bytes(take(&b, 10).ok_or_else(|| bad(10, "short"))?);
        let file_archive: [u8; 16] = take(&b, 18).ok_or_else(|| bad(18, "short"))?;
        if file_archive != archive_id {
            return Err(bad(18, "key file belongs to another archive"));
        }
        let mid: [u8; 8] = take(&b, 34).ok_or_else(|| bad(34, "short"))?;
        let master = keys.master_by_id(&mid).ok_or_else(|| {
            Error::Key(format!(
                "{KEYS_PATH}: written under master key {} which was not given",
                crate::crypto::hex(&mid)
            ))
        })?;
        let nonce: [u8; NONCE_LEN] =
            take(&b, HDR_SIGNED).ok_or_else(|| bad(HDR_SIGNED, "short"))?;
        if master.mac(&nonce, &b[..HDR_SIGNED])[..] != b[HDR_SIGNED + NONCE_LEN..HDR_LEN] {
            return Err(bad(
                0,
                "key file header does not authenticate (altered epoch?)",
            ));
        }
        let mut ks = KeyStore {
            archive_id,
            epoch,
            index_key: [0; 32],
            index_wrapped: Wrapped {
                master: [0; 8],
                blob: [0; WRAPPED_LEN],
            },
            data: HashMap::new(),
            data_cache: HashMap::new(),
            subjects: HashMap::new(),
            by_lookup: HashMap::new(),
            subject_cache: HashMap::new(),
            recent: HashMap::new(),
            pending: Vec::new(),
            len: 0,
            hasher: Sha256::new(),
            keys,
        };
        let mut pos = HDR_LEN;
        let mut torn = None;
        let mut have_index = false;
        while pos < b.len() {
            let Some(len) = take::<4>(&b, pos).map(u32::from_le_bytes) else {
                torn = Some(pos);
                break;
            };
            let len = len as usize;
            if !(5..=4096).contains(&len) {
                return Err(bad(pos, "key entry length out of range"));
            }
            let Some(e) = b.get(pos..pos + 4 + len) else {
                torn = Some(pos);
                break;
            };
            let crc = u32::from_le_bytes(take(e, 4 + len - 4).unwrap_or_default());
            if crc != crc32fast::hash(&e[..4 + len - 4]) {
                if pos + 4 + len == b.len() {
                    torn = Some(pos);
                    break;
                }
                return Err(bad(pos, "key entry checksum mismatch"));
            }
            let body = &e[5..4 + len - 4];
            let short = || bad(pos, "key entry too short");
            match e[4] {
                K_DATA => {
                    let id: [u8; 16] = take(body, 0).ok_or_else(short)?;
                    let master: [u8; 8] = take(body, 16).ok_or_else(short)?;
                    let blob = take(body, 24).ok_or_else(short)?;
                    ks.data.insert(id, Wrapped { master, blob });
                }
                K_SUBJECT => {
                    let lookup: [u8; 32] = take(body, 0).ok_or_else(short)?;
                    let id: [u8; 16] = take(body, 32).ok_or_else(short)?;
                    let master: [u8; 8] = take(body, 48).ok_or_else(short)?;
                    let blob = take(body, 56).ok_or_else(short)?;
                    ks.by_lookup.insert(lookup, id);
                    ks.subjects.insert(
                        id,
                        SubjectEntry {
                            lookup,
                            wrapped: Wrapped { master, blob },
                        },
                    );
                }
                K_INDEX => {
                    let master: [u8; 8] = take(body, 0).ok_or_else(short)?;
                    let blob = take(body, 8).ok_or_else(short)?;
                    let w = Wrapped { master, blob };
                    ks.index_key =
                        ks.unwrap(&w, &aad(K_INDEX, &[], &archive_id))
                            .ok_or_else(|| {
                                bad(pos, "index key does not unwrap under the given master keys")
                            })?;
                    ks.index_wrapped = w;
                    have_index = true;
                }
                _ => return Err(bad(pos, "unknown key entry kind")),
            }
            pos += 4 + len;
        }
        if !have_index {
            return Err(bad(HDR_LEN, "key file has no index key"));
        }
        let good = torn.unwrap_or(b.len());
        ks.hasher.update(&b[..good]);
        ks.len = good as u64;
        Ok((
            ks,
            torn.map(|t| Torn {
                offset: t as u64,
                len: (b.len() - t) as u64,
            }),
        ))
    }

    fn unwrap(&self, w: &Wrapped, aad: &[u8]) -> Option<[u8; 32]> {
        self.keys.master_by_id(&w.master)?.unwrap_key(aad, &w.blob)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn state(&self) -> KeyFileState {
        KeyFileState {
            epoch: self.epoch,
            len: self.len,
            digest: crate::crypto::hex(&self.hasher.clone().finalize()),
        }
    }

    /// A fresh data key for a new segment.
    pub fn new_data_key(&mut self) -> Result<([u8; 16], Cipher)> {
        let id: [u8; 16] = random_array()?;
        let key: [u8; 32] = random_array()?;
        let m = &self.keys.master;
        let blob = m.wrap(&aad(K_DATA, &id, &self.archive_id), &key)?;
        let mid = m.id();
        entry(&mut self.pending, K_DATA, &[&id, &mid, &blob]);
        self.data.insert(id, Wrapped { master: mid, blob });
        let c = Cipher::new(&key);
        self.data_cache.insert(id, c.clone());
        Ok((id, c))
    }

    pub fn data_cipher(&mut self, id: &[u8; 16]) -> Option<Cipher> {
        if let Some(c) = self.data_cache.get(id) {
            return Some(c.clone());
        }
        let w = self.data.get(id)?;
        let k = self.unwrap(w, &aad(K_DATA, id, &self.archive_id))?;
        let c = Cipher::new(&k);
        self.data_cache.insert(*id, c.clone());
        Some(c)
    }

    /// Like [`data_cipher`](Self::data_cipher) without the cache, for
    /// readers sharing the store across threads.
    pub fn data_cipher_uncached(&self, id: &[u8; 16]) -> Option<Cipher> {
        if let Some(c) = self.data_cache.get(id) {
            return Some(c.clone());
        }
        let w = self.data.get(id)?;
        self.unwrap(w, &aad(K_DATA, id, &self.archive_id))
            .map(|k| Cipher::new(&k))
    }

    pub fn lookup(&self, subject: &str) -> [u8; 32] {
        // HMAC keys of any length are accepted; 32 bytes cannot fail.
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.index_key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        m.update(subject.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The key of `subject`, created (and queued for the file) when new.
    pub fn subject_key(&mut self, subject: &str) -> Result<([u8; 16], Cipher)> {
        // Recent subjects skip the HMAC (bounded like the key cache).
        if let Some(hit) = self.recent.get(subject) {
            return Ok(hit.clone());
        }
        let r = self.subject_key_slow(subject)?;
        if self.recent.len() >= SUBJECT_CACHE_MAX {
            self.recent.clear();
        }
        self.recent.insert(Str::from(subject), r.clone());
        Ok(r)
    }

    fn subject_key_slow(&mut self, subject: &str) -> Result<([u8; 16], Cipher)> {
        let lookup = self.lookup(subject);
        if let Some(id) = self.by_lookup.get(&lookup).copied()
            && let Some(c) = self.subject_cipher(&id)
        {
            return Ok((id, c));
        }
        let id: [u8; 16] = random_array()?;
        let key: [u8; 32] = random_array()?;
        let m = &self.keys.master;
        let mut a = lookup.to_vec();
        a.extend_from_slice(&id);
        let blob = m.wrap(&aad(K_SUBJECT, &a, &self.archive_id), &key)?;
        let mid = m.id();
        entry(&mut self.pending, K_SUBJECT, &[&lookup, &id, &mid, &blob]);
        self.by_lookup.insert(lookup, id);
        self.subjects.insert(
            id,
            SubjectEntry {
                lookup,
                wrapped: Wrapped { master: mid, blob },
            },
        );
        let c = Cipher::new(&key);
        self.cache_subject(id, c.clone());
        Ok((id, c))
    }

    fn cache_subject(&mut self, id: [u8; 16], c: Cipher) {
        if self.subject_cache.len() >= SUBJECT_CACHE_MAX {
            self.subject_cache.clear();
        }
        self.subject_cache.insert(id, c);
    }

    /// The cipher of a subject key id; `None` once erased.
    pub fn subject_cipher(&mut self, id: &[u8; 16]) -> Option<Cipher> {
        if let Some(c) = self.subject_cache.get(id) {
            return Some(c.clone());
        }
        let e = self.subjects.get(id)?;
        let mut a = e.lookup.to_vec();
        a.extend_from_slice(id);
        let k = self.unwrap(&e.wrapped, &aad(K_SUBJECT, &a, &self.archive_id))?;
        let c = Cipher::new(&k);
        self.cache_subject(*id, c.clone());
        Some(c)
    }

    /// Writes queued entries and syncs. Must run before the segments that
    /// use those keys are synced.
    pub fn flush(&mut self, storage: &dyn Storage) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.len == 0 {
            // First write of a new file.
            storage
                .write_atomic(KEYS_PATH, &self.pending)
                .map_err(io_err(KEYS_PATH))?;
        } else {
            let mut f = storage.open_append(KEYS_PATH).map_err(io_err(KEYS_PATH))?;
            f.append(&self.pending).map_err(io_err(KEYS_PATH))?;
            f.sync().map_err(io_err(KEYS_PATH))?;
        }
        self.hasher.update(&self.pending);
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// The whole file under the current master key and epoch.
    fn serialize_all(&self) -> Result<Vec<u8>> {
        let m = &self.keys.master;
        let mid = m.id();
        let mut out = header(self.epoch, &self.archive_id, m)?;
        let idx = m.wrap(&aad(K_INDEX, &[], &self.archive_id), &self.index_key)?;
        entry(&mut out, K_INDEX, &[&mid, &idx]);
        let mut data: Vec<_> = self.data.keys().copied().collect();
        data.sort_unstable();
        for id in data {
            let w = &self.data[&id];
            let a = aad(K_DATA, &id, &self.archive_id);
            let key = self.unwrap(w, &a).ok_or_else(|| {
                Error::Key(format!(
                    "data key {} does not unwrap under the given master keys",
                    crate::crypto::hex(&id)
                ))
            })?;
            entry(&mut out, K_DATA, &[&id, &mid, &m.wrap(&a, &key)?]);
        }
        let mut subs: Vec<_> = self.subjects.keys().copied().collect();
        subs.sort_unstable();
        for id in subs {
            let e = &self.subjects[&id];
            let mut a = e.lookup.to_vec();
            a.extend_from_slice(&id);
            let a = aad(K_SUBJECT, &a, &self.archive_id);
            let key = self.unwrap(&e.wrapped, &a).ok_or_else(|| {
                Error::Key("a subject key does not unwrap under the given master keys".into())
            })?;
            entry(
                &mut out,
                K_SUBJECT,
                &[&e.lookup, &id, &mid, &m.wrap(&a, &key)?],
            );
        }
        Ok(out)
    }

    /// Rewrites the file with a higher epoch, every key wrapped by the
    /// current master key (rotation) and without erased subjects.
    pub fn rewrite(&mut self, storage: &dyn Storage) -> Result<()> {
        self.flush(storage)?;
        self.epoch += 1;
        let bytes = self.serialize_all()?;
        storage
            .write_atomic(KEYS_PATH, &bytes)
            .map_err(io_err(KEYS_PATH))?;
        let mid = self.keys.master.id();
        for w in self.data.values_mut() {
            w.master = mid;
        }
        // Re-read the wrapped blobs as written, so later rewrites unwrap
        // with the current key.
        let (fresh, _) = KeyStore::load(storage, self.archive_id, self.keys.clone())?;
        self.data = fresh.data;
        self.subjects = fresh.subjects;
        self.index_wrapped = fresh.index_wrapped;
        self.len = fresh.len;
        self.hasher = fresh.hasher;
        Ok(())
    }

    /// Forgets the key of `subject` in memory; returns the key id when there
    /// was one. Durable only after [`rewrite`](Self::rewrite).
    pub fn forget_subject(&mut self, subject: &str) -> Option<[u8; 16]> {
        let lookup = self.lookup(subject);
        let id = self.by_lookup.remove(&lookup)?;
        self.subjects.remove(&id);
        self.subject_cache.remove(&id);
        // The plain subject string must not outlive its key in memory either.
        self.recent.retain(|_, v| v.0 != id);
        Some(id)
    }

    /// How many keys are not wrapped by the current master key.
    pub fn wrapped_by_old_keys(&self) -> usize {
        let mid = self.keys.master.id();
        self.data.values().filter(|w| w.master != mid).count()
            + self
                .subjects
                .values()
                .filter(|e| e.wrapped.master != mid)
                .count()
            + usize::from(self.index_wrapped.master != mid)
    }

    pub fn subject_count(&self) -> usize {
        self.subjects.len()
    }
}
