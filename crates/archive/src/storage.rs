//! Where archive bytes live: the [`Storage`] trait, a filesystem implementation
//! rooted at a configurable directory (which may be its own mount, as seed 003
//! asks: "separate log storage from application"), and [`MemStorage`], an
//! in-memory twin that can model a power loss.
//!
//! The archive needs few operations: create a new file and append to it, make
//! appended bytes durable, read a whole file, replace a small file atomically,
//! truncate a torn tail, remove a segment, list a directory. Paths are
//! `/`-separated and relative to the root; the archive builds them, never the
//! user. This module does not know about segments, keys or records.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A file opened for appending. Bytes are durable only after [`sync`](Self::sync).
pub trait AppendFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every appended byte, and the file's directory entry, durable.
    fn sync(&mut self) -> io::Result<()>;
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A handle that makes the bytes appended so far durable, usable from
    /// another thread while appends continue (group commit off the writer's
    /// thread).
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>>;
}

/// See [`AppendFile::sync_handle`].
pub trait SyncHandle: Send {
    fn sync(&mut self) -> io::Result<()>;
}

/// Held while an archive is open for writing; dropping it releases the lock.
pub trait LockGuard: Send {}

/// The archive's view of a directory tree.
pub trait Storage: Send + Sync {
    /// Names (not paths) of the files directly under `dir`, sorted; empty when
    /// the directory does not exist.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Whole-file read. `NotFound` when missing.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Reads a file from the start, piece by piece: `verify` walks segments
    /// of hundreds of MB through one small buffer instead of allocating
    /// (and page-faulting in) a copy of each. `NotFound` when missing. The
    /// default reads the whole file first.
    fn open_read(&self, path: &str) -> io::Result<Box<dyn io::Read + Send + '_>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }
    fn exists(&self, path: &str) -> io::Result<bool>;
    /// Size in bytes.
    fn size(&self, path: &str) -> io::Result<u64>;
    /// Creates `path` (and its directories). Fails if it already exists: the
    /// archive never appends to a file some earlier process wrote, so a data
    /// key (and its nonces) is never reused after a crash.
    fn create(&self, path: &str) -> io::Result<Box<dyn AppendFile>>;
    /// Opens an existing file for appending (checkpoint log, key file).
    fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>>;
    /// Replaces `path` with `bytes` durably: either the old or the new content
    /// survives a crash, never a mix.
    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Cuts `path` to `len` bytes, durably.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Removes `path`, durably (the directory is synced).
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Takes the single-writer lock of the archive, or fails with
    /// `WouldBlock` when another process (or instance) holds it.
    fn lock(&self) -> io::Result<Box<dyn LockGuard>>;
}

// ---------------------------------------------------------------- filesystem

/// Files under a root directory.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Creates the root directory if needed.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(FsStorage { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> io::Result<PathBuf> {
        // The archive builds every path itself; refuse anything that could
        // leave the root all the same.
        if rel.is_empty()
            || rel.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad archive path {rel:?}"),
            ));
        }
        Ok(self.root.join(rel))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

struct FsFile {
    file: fs::File,
    len: u64,
    /// The directory entry of a new file must be synced once, with its first
    /// data sync, or a power loss can lose the whole file.
    dir_to_sync: Option<PathBuf>,
}

impl AppendFile for FsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        if let Some(d) = self.dir_to_sync.take() {
            sync_dir(&d)?;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(FsSync {
            file: self.file.try_clone()?,
            dir: self.dir_to_sync.clone(),
        }))
    }
}

struct FsSync {
    file: fs::File,
    dir: Option<PathBuf>,
}

impl SyncHandle for FsSync {
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        if let Some(d) = self.dir.take() {
            sync_dir(&d)?;
        }
        Ok(())
    }
}

struct FsLock {
    _file: fs::File,
}
impl LockGuard for FsLock {}

impl Storage for FsStorage {
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let p = self.path(dir)?;
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent?;
            if let Some(name) = ent.file_name().to_str() {
                // Leftovers of an interrupted write_atomic are not files of
                // the archive.
                if !name.ends_with(".tmp") {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(path)?)
    }

    fn open_read(&self, path: &str) -> io::Result<Box<dyn io::Read + Send + '_>> {
        Ok(Box::new(fs::File::open(self.path(path)?)?))
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        self.path(path)?.try_exists()
    }

    fn size(&self, path: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(path)?)?.len())
    }

    fn create(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let p = self.path(path)?;
        let dir = p.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&p)?;
        Ok(Box::new(FsFile {
            file,
            len: 0,
            dir_to_sync: Some(dir),
        }))
    }

    fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let p = self.path(path)?;
        let file = fs::OpenOptions::new().append(true).open(&p)?;
        let len = file.metadata()?.len();
        Ok(Box::new(FsFile {
            file,
            len,
            dir_to_sync: None,
        }))
    }

    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let p = self.path(path)?;
        let dir = p.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut tmp = p.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &p)?;
        sync_dir(&dir)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let f = fs::OpenOptions::new().write(true).open(self.path(path)?)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.path(path)?;
        fs::remove_file(&p)?;
        sync_dir(p.parent().unwrap_or(&self.root))
    }

    fn lock(&self) -> io::Result<Box<dyn LockGuard>> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(FsLock { _file: f })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the archive is open for writing by another process",
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

// ---------------------------------------------------------------- memory

#[derive(Default, Clone, Debug)]
struct MemFile {
    data: Vec<u8>,
    /// Bytes that survive a power loss.
    synced: usize,
    /// Whether the file itself survives a power loss (its directory entry
    /// was synced).
    durable: bool,
}

#[derive(Default, Debug)]
struct MemInner {
    files: BTreeMap<String, MemFile>,
    locked: bool,
}

/// In-memory storage for tests. Clones share the same files.
/// [`power_loss`](MemStorage::power_loss) drops every byte appended since the
/// file's last sync and every file created but never synced: what a machine
/// losing power would keep (SIGKILL, by contrast, keeps the page cache).
#[derive(Default, Clone, Debug)]
pub struct MemStorage {
    inner: Arc<Mutex<MemInner>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> MutexGuard<'_, MemInner> {
        // A panic in another test thread must not turn into a second panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Models a power loss: unsynced bytes and never-synced files vanish and
    /// the writer lock is released (the process is gone).
    pub fn power_loss(&self) {
        let mut g = self.inner();
        g.files.retain(|_, f| f.durable);
        for f in g.files.values_mut() {
            f.data.truncate(f.synced);
        }
        g.locked = false;
    }

    /// Releases the lock as a killed process would.
    pub fn crash(&self) {
        self.inner().locked = false;
    }

    /// Direct access for tamper tests.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        let len = bytes.len();
        self.inner().files.insert(
            path.to_string(),
            MemFile {
                data: bytes,
                synced: len,
                durable: true,
            },
        );
    }

    pub fn paths(&self) -> Vec<String> {
        self.inner().files.keys().cloned().collect()
    }

    /// A deep copy (a backup of the whole archive at this instant).
    pub fn snapshot(&self) -> MemStorage {
        let g = self.inner();
        let copy = MemInner {
            files: g.files.clone(),
            locked: false,
        };
        MemStorage {
            inner: Arc::new(Mutex::new(copy)),
        }
    }
}

struct MemAppend {
    store: MemStorage,
    path: String,
}

impl AppendFile for MemAppend {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut g = self.store.inner();
        let f = g
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, self.path.clone()))?;
        f.data.extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        let mut g = self.store.inner();
        let f = g
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, self.path.clone()))?;
        f.synced = f.data.len();
        f.durable = true;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.store
            .inner()
            .files
            .get(&self.path)
            .map_or(0, |f| f.data.len() as u64)
    }
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(MemSync {
            store: self.store.clone(),
            path: self.path.clone(),
            len: self.len() as usize,
        }))
    }
}

/// Syncs what had been appended when the handle was taken.
struct MemSync {
    store: MemStorage,
    path: String,
    len: usize,
}

impl SyncHandle for MemSync {
    fn sync(&mut self) -> io::Result<()> {
        let mut g = self.store.inner();
        if let Some(f) = g.files.get_mut(&self.path) {
            f.synced = f.synced.max(self.len.min(f.data.len()));
            f.durable = true;
        }
        Ok(())
    }
}

struct MemLock {
    store: MemStorage,
}
impl LockGuard for MemLock {}
impl Drop for MemLock {
    fn drop(&mut self) {
        self.store.inner().locked = false;
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: not found"))
}

impl Storage for MemStorage {
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        // Files and subdirectories directly under `dir`, as a directory
        // listing shows them.
        let prefix = format!("{dir}/");
        let mut out: Vec<String> = self
            .inner()
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        out.dedup();
        Ok(out)
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.inner()
            .files
            .get(path)
            .map(|f| f.data.clone())
            .ok_or_else(|| not_found(path))
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        Ok(self.inner().files.contains_key(path))
    }

    fn size(&self, path: &str) -> io::Result<u64> {
        self.inner()
            .files
            .get(path)
            .map(|f| f.data.len() as u64)
            .ok_or_else(|| not_found(path))
    }

    fn create(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let mut g = self.inner();
        if g.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.to_string(),
            ));
        }
        g.files.insert(path.to_string(), MemFile::default());
        Ok(Box::new(MemAppend {
            store: self.clone(),
            path: path.to_string(),
        }))
    }

    fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        if !self.inner().files.contains_key(path) {
            return Err(not_found(path));
        }
        Ok(Box::new(MemAppend {
            store: self.clone(),
            path: path.to_string(),
        }))
    }

    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.put(path, bytes.to_vec());
        Ok(())
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut g = self.inner();
        let f = g.files.get_mut(path).ok_or_else(|| not_found(path))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(f.data.len());
        f.data.truncate(len);
        f.synced = len;
        f.durable = true;
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.inner()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn lock(&self) -> io::Result<Box<dyn LockGuard>> {
        let mut g = self.inner();
        if g.locked {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the archive is open for writing by another instance",
            ));
        }
        g.locked = true;
        Ok(Box::new(MemLock {
            store: self.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_drops_unsynced_bytes_and_files() {
        let s = MemStorage::new();
        let mut a = s.create("d/a").unwrap();
        a.append(b"hello").unwrap();
        a.sync().unwrap();
        a.append(b" world").unwrap();
        let mut b = s.create("d/b").unwrap();
        b.append(b"x").unwrap();
        assert_eq!(s.read("d/a").unwrap(), b"hello world");
        s.power_loss();
        assert_eq!(s.read("d/a").unwrap(), b"hello");
        assert!(!s.exists("d/b").unwrap());
        assert_eq!(s.list("d").unwrap(), vec!["a".to_string()]);
        s.put("d/sub/x", vec![1]);
        s.put("d/sub/y", vec![1]);
        assert_eq!(
            s.list("d").unwrap(),
            vec!["a".to_string(), "sub".to_string()]
        );
    }

    #[test]
    fn fs_storage_basics_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::new(dir.path()).unwrap();
        let mut f = s.create("x/y.seg").unwrap();
        f.append(b"abc").unwrap();
        f.sync().unwrap();
        assert!(s.create("x/y.seg").is_err());
        assert_eq!(s.read("x/y.seg").unwrap(), b"abc");
        s.truncate("x/y.seg", 1).unwrap();
        assert_eq!(s.read("x/y.seg").unwrap(), b"a");
        s.write_atomic("meta", b"m").unwrap();
        assert_eq!(s.list("x").unwrap(), vec!["y.seg".to_string()]);
        assert!(s.path("../etc").is_err());
        let g = s.lock().unwrap();
        assert!(s.lock().is_err());
        drop(g);
        assert!(s.lock().is_ok());
    }
}
