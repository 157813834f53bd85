//! Persisted read positions of tailed files.
//!
//! A [`CheckpointStore`] is one JSON file (conventionally
//! `<data_dir>/checkpoints.json`) holding, per file instance, where reading
//! should resume. A file is recognised by its identity — device, inode and a
//! [`fingerprint`] of its first ≤ 1 KiB — not by its name, because names move
//! under rotation while contents do not. Saving is atomic (temp file, fsync,
//! rename, fsync of the directory), so a crash leaves the old or the new
//! version, never a torn one.
//!
//! Non-goals: it does not decide what to resume (that is the tailer's job) and
//! it does not lock the file: one store belongs to one tailer.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SourceError};

/// How many leading bytes the fingerprint covers.
pub const FINGERPRINT_LEN: usize = 1024;

/// FNV-1a over the length then the bytes of a file's first ≤ 1 KiB. Hand-rolled
/// because it is persisted: std's hashers may change between Rust releases.
/// Hashing the length keeps a 10-byte prefix apart from the same 10 bytes
/// followed by zeros.
pub fn fingerprint(prefix: &[u8]) -> u64 {
    let prefix = &prefix[..prefix.len().min(FINGERPRINT_LEN)];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in (prefix.len() as u64).to_le_bytes().iter().chain(prefix) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Fingerprint of the first `min(len, 1 KiB)` bytes of `file`, read with
/// positioned reads so the handle's cursor does not move. Returns the hash and
/// how many bytes it covers (fewer than asked if the file is shorter).
pub fn fingerprint_file(file: &File, len: usize) -> io::Result<(u64, u32)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; FINGERPRINT_LEN];
    let want = len.min(FINGERPRINT_LEN);
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..want], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((fingerprint(&buf[..got]), got as u32))
}

/// Where to resume one file instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The path the file was followed under (its name when first opened).
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    /// [`fingerprint`] of the first `fp_len` bytes.
    pub fingerprint: u64,
    pub fp_len: u32,
    /// Byte offset of the first line not yet fully processed.
    pub offset: u64,
    /// Lines before `offset`.
    pub line_no: u64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Checkpoint>,
}

/// The persisted set of checkpoints, keyed by (dev, inode).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
    entries: BTreeMap<(u64, u64), Checkpoint>,
}

impl CheckpointStore {
    /// `<data_dir>/checkpoints.json`.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("checkpoints.json")
    }

    /// An empty store that will save to `path`.
    pub fn empty(path: impl Into<PathBuf>) -> Self {
        CheckpointStore {
            path: path.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Loads `path`; a missing file is an empty store, an unreadable or
    /// corrupt one is an error naming it (never silently reset: that would
    /// re-read or skip whole files).
    pub fn load(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::empty(path)),
            Err(e) => return Err(SourceError::io("reading checkpoints", path, e)),
        };
        let disk: OnDisk = match serde_json::from_slice(&bytes) {
            Ok(d) => d,
            Err(source) => return Err(SourceError::CorruptCheckpoint { path, source }),
        };
        let entries = disk
            .files
            .into_iter()
            .map(|c| ((c.dev, c.inode), c))
            .collect();
        Ok(CheckpointStore { path, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint of the file instance with this identity.
    pub fn get(&self, dev: u64, inode: u64) -> Option<&Checkpoint> {
        self.entries.get(&(dev, inode))
    }

    /// Every checkpoint recorded under `path` (a rotated-away instance and
    /// the current one may both be there).
    pub fn for_path<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a Checkpoint> + 'a {
        self.entries.values().filter(move |c| c.path == path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts or replaces the checkpoint for `cp`'s (dev, inode).
    pub fn set(&mut self, cp: Checkpoint) {
        self.entries.insert((cp.dev, cp.inode), cp);
    }

    pub fn remove(&mut self, dev: u64, inode: u64) -> Option<Checkpoint> {
        self.entries.remove(&(dev, inode))
    }

    /// Keeps only the checkpoints for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Checkpoint) -> bool) {
        self.entries.retain(|_, c| keep(c));
    }

    /// Writes the store atomically: temp file in the same directory, fsync,
    /// rename over the target, fsync the directory so the rename is durable.
    pub fn save(&self) -> Result<()> {
        let disk = OnDisk {
            version: 1,
            files: self.entries.values().cloned().collect(),
        };
        // Serialising plain structs of integers and paths cannot fail except
        // for non-UTF-8 paths, which serde_json rejects; report it as IO.
        let json = serde_json::to_vec_pretty(&disk).map_err(|e| {
            SourceError::io(
                "serialising checkpoints",
                &self.path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()
        };
        write().map_err(|e| SourceError::io("writing checkpoints", &tmp, e))?;
        fs::rename(&tmp, &self.path)
            .map_err(|e| SourceError::io("replacing checkpoints", &self.path, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SourceError::io("syncing directory", &dir, e))?;
        Ok(())
    }
}
