//! `tail -F` over a set of paths and globs, with checkpoints that survive
//! restarts and rotations.
//!
//! [`FileTailer::poll`] reads what is new in every followed file, a bounded
//! amount per file per call so one hot file cannot starve the others. Each
//! poll re-expands the globs (new files appear) and checks every path:
//!
//! - **rename rotation** — the path now names another (dev, inode): the old
//!   open handle is read to its end first, then the new file from offset 0;
//! - **copytruncate** — same inode but the size fell below our position, or
//!   the first bytes changed: restart at 0 (counted in [`PollStats`]);
//! - **deletion** — the open handle is read to its end, then dropped.
//!
//! A let-go handle is kept until a whole poll went by without new data, so a
//! writer that had not yet reopened its log still gets its last lines read;
//! then a last line without newline is flushed. After a truncation, offsets
//! and line numbers restart (line 1) under a new [`FileKey`].
//!
//! Known limits: a path renamed twice between two polls hides the middle file
//! (as from `tail -F`); lines written between our last read and a
//! copytruncate exist only in the copy and are read from it only at a
//! restart; a truncate-and-rewrite with identical first bytes that grows past
//! our offset between two polls cannot be told from an append.
//!
//! # Acknowledgement contract
//!
//! Lines are *read* by `poll` but only *acknowledged* by the consumer through
//! [`FileTailer::ack`] once fully processed (parsed, evaluated, archived…).
//! [`FileTailer::checkpoint`] persists acknowledged positions, never merely
//! read ones, so a crash between reading and processing re-reads those lines
//! instead of skipping them (at-least-once across crashes; exactly-once across
//! clean shutdowns that ack everything before the last checkpoint). Acks may
//! arrive late and out of order; a position only moves forward.
//!
//! # Resume
//!
//! At start, a path whose checkpoint identifies its current file (same dev and
//! inode, same fingerprint of the first bytes) resumes at the checkpointed
//! offset and line number. If the file was rotated while we were down, the
//! checkpointed file is looked for among the path's siblings (`<path>*` in the
//! same directory: `.1`, `-20240101`, …) by identity or fingerprint; its
//! remainder is read first, then the new file from 0. Files without a
//! checkpoint start at [`StartAt`]; files that appear after start are new and
//! are read from their beginning.
//!
//! Non-goals: no threads and no sleeping of its own (the caller paces polls,
//! optionally with [`FileTailer::wait`]); no reading of compressed rotations;
//! no wall clock. Patterns should not also match the rotated siblings of the
//! files they follow (a file already open under another name is skipped, and
//! one read to its end under another name is not re-read, but that is a
//! safety net, not a feature).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::checkpoint::{Checkpoint, CheckpointStore, FINGERPRINT_LEN, fingerprint_file};
use crate::error::{Result, SourceError};
use crate::lines::{DEFAULT_MAX_LINE, Item, LineReader};

/// Where to start a file that has no checkpoint, at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// Tailer settings.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// For files with no checkpoint at startup. Default: beginning.
    pub start_at: StartAt,
    /// Longest line kept, in bytes; longer ones become `too_long`. Default 1 MiB.
    pub max_line: usize,
    /// How often the caller should poll; [`FileTailer::wait`] uses it when
    /// given no better timeout. Default 250 ms.
    pub poll_interval: Duration,
    /// At resume, look for a checkpointed file that was rotated away while
    /// we were down among the path's siblings. Default true.
    pub read_rotated: bool,
    /// Start a `notify` watcher as a wake-up hint for [`FileTailer::wait`].
    /// Polling runs regardless (inotify misses NFS and overflows). Default false.
    pub watch: bool,
    /// Most bytes read from one file in one poll. Default 4 MiB.
    pub max_bytes_per_poll: u64,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            start_at: StartAt::Beginning,
            max_line: DEFAULT_MAX_LINE,
            poll_interval: Duration::from_millis(250),
            read_rotated: true,
            watch: false,
            max_bytes_per_poll: 4 << 20,
        }
    }
}

/// One opened file instance. A new key is issued when a path starts naming a
/// new file, and when a file is truncated (its offsets restart), so an ack can
/// never apply to the wrong generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey(pub u64);

/// A line read from a followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    pub file: FileKey,
    /// The followed path (for a rotated-away file, the name it was followed
    /// under, not its new name).
    pub path: Arc<Path>,
    pub line_no: u64,
    /// Without `\n` / `\r\n`; empty when `too_long` is set.
    pub bytes: Vec<u8>,
    /// Offset just past the line: pass it to [`FileTailer::ack`].
    pub end_offset: u64,
    /// `Some(len)` if the line exceeded `max_line` and was skipped.
    pub too_long: Option<u64>,
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct PollStats {
    pub lines: u64,
    pub bytes: u64,
    pub too_long: u64,
    pub files_opened: u64,
    pub files_closed: u64,
    pub rotations: u64,
    pub truncations: u64,
    /// Files at their per-poll byte limit: poll again soon.
    pub more_pending: bool,
    /// At startup: checkpoints whose file could not be found any more
    /// (deleted or compressed while we were down): lines may be lost.
    pub checkpoints_lost: u64,
    /// Per-file problems; the other files were still read.
    pub errors: Vec<SourceError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ident {
    dev: u64,
    ino: u64,
}

impl Ident {
    fn of(m: &Metadata) -> Self {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

struct Open {
    key: FileKey,
    path: Arc<Path>,
    ident: Ident,
    fp: (u64, u32),
    reader: LineReader<File>,
    acked: (u64, u64),
    /// Let go (rotated away or deleted): read to the end, then close.
    draining: bool,
    /// Draining polls in a row that read nothing.
    quiet_polls: u32,
}

/// A closed file whose lines are not all acknowledged yet: still checkpointed.
struct Closed {
    path: Arc<Path>,
    ident: Ident,
    fp: (u64, u32),
    end: (u64, u64),
    acked: (u64, u64),
}

/// A file read to its end and let go, remembered so that the same file seen
/// under another name is not read again from 0.
#[derive(Clone, Copy)]
struct Retired {
    fp: (u64, u32),
    end: (u64, u64),
}

const RETIRED_CAP: usize = 1024;

/// Follows files; see the module docs.
pub struct FileTailer {
    patterns: Vec<glob::Pattern>,
    pattern_strs: Vec<String>,
    opts: TailOptions,
    store: Option<CheckpointStore>,
    /// Read order: for one path, draining instances come before the live one.
    open: Vec<Open>,
    /// Path → index-free lookup of the live (non-draining) instance's key.
    live: HashMap<Arc<Path>, FileKey>,
    closed: HashMap<FileKey, Closed>,
    retired: HashMap<Ident, Retired>,
    retired_order: VecDeque<Ident>,
    next_key: u64,
    pending: PollStats,
    events: Option<(notify::RecommendedWatcher, Receiver<()>)>,
}

fn meta_err(path: &Path, e: io::Error) -> SourceError {
    SourceError::io("reading metadata of", path, e)
}

impl FileTailer {
    /// Starts following `patterns` (literal paths or globs). Files matching
    /// now are opened and positioned from `checkpoints` (see module docs).
    /// Errors: an invalid pattern, or the watcher failing to start. A file
    /// that cannot be opened is reported in the first poll's stats instead.
    pub fn new(
        patterns: Vec<String>,
        opts: TailOptions,
        checkpoints: Option<CheckpointStore>,
    ) -> Result<Self> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for p in &patterns {
            let pat = glob::Pattern::new(p).map_err(|source| SourceError::Pattern {
                pattern: p.clone(),
                source,
            })?;
            compiled.push(pat);
        }
        let mut t = FileTailer {
            patterns: compiled,
            pattern_strs: patterns,
            opts,
            store: checkpoints,
            open: Vec::new(),
            live: HashMap::new(),
            closed: HashMap::new(),
            retired: HashMap::new(),
            retired_order: VecDeque::new(),
            next_key: 0,
            pending: PollStats::default(),
            events: None,
        };
        if t.opts.watch {
            t.events = Some(t.start_watcher()?);
        }
        t.resume();
        Ok(t)
    }

    pub fn options(&self) -> &TailOptions {
        &self.opts
    }

    /// The checkpoint store, if any (for inspection).
    pub fn checkpoints(&self) -> Option<&CheckpointStore> {
        self.store.as_ref()
    }

    /// Paths currently followed (live, not draining).
    pub fn paths(&self) -> Vec<Arc<Path>> {
        let mut v: Vec<_> = self.live.keys().cloned().collect();
        v.sort();
        v
    }

    fn start_watcher(&self) -> Result<(notify::RecommendedWatcher, Receiver<()>)> {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let mut w = notify::recommended_watcher(move |_ev: notify::Result<notify::Event>| {
            // A full channel already holds a wake-up; dropping is fine.
            let _ = tx.try_send(());
        })
        .map_err(|source| SourceError::Watch {
            path: PathBuf::new(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = self.pattern_strs.iter().map(|p| watch_dir(p)).collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            // A directory that does not exist yet is still found by polling.
            if d.is_dir() {
                w.watch(&d, notify::RecursiveMode::NonRecursive)
                    .map_err(|source| SourceError::Watch { path: d, source })?;
            }
        }
        Ok((w, rx))
    }

    /// Blocks until a filesystem event (if watching) or `timeout`, whichever
    /// comes first. Without a watcher it simply sleeps for `timeout`.
    pub fn wait(&self, timeout: Duration) {
        match &self.events {
            Some((_, rx)) => match rx.recv_timeout(timeout) {
                Ok(()) => while rx.try_recv().is_ok() {},
                Err(RecvTimeoutError::Timeout) => {}
                // The watcher died: fall back to plain polling.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
            },
            None => std::thread::sleep(timeout),
        }
    }

    fn new_key(&mut self) -> FileKey {
        self.next_key += 1;
        FileKey(self.next_key)
    }

    fn owns(&self, path: &Path) -> bool {
        self.patterns.iter().any(|p| p.matches_path(path))
    }

    /// Existing regular files matching the patterns, sorted, deduplicated.
    fn expand(&self, errors: &mut Vec<SourceError>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in &self.pattern_strs {
            let Ok(paths) = glob::glob(p) else { continue };
            for entry in paths {
                match entry {
                    Ok(path) => {
                        if path.is_file() {
                            out.push(path);
                        }
                    }
                    Err(e) => {
                        let path = e.path().to_path_buf();
                        errors.push(SourceError::io("listing", path, e.into()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Opens `path` positioned at `pos` (offset, lines before it).
    fn open_at(
        &mut self,
        path: Arc<Path>,
        real: &Path,
        pos: Option<(u64, u64)>,
        draining: bool,
    ) -> Result<FileKey> {
        let mut file = File::open(real).map_err(|e| SourceError::io("opening", real, e))?;
        let meta = file.metadata().map_err(|e| meta_err(real, e))?;
        let ident = Ident::of(&meta);
        let fp = fingerprint_file(&file, FINGERPRINT_LEN)
            .map_err(|e| SourceError::io("reading", real, e))?;
        let (offset, line_no) = pos.unwrap_or((meta.len(), 0));
        let (offset, line_no) = if offset > meta.len() {
            (0, 0)
        } else {
            (offset, line_no)
        };
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| SourceError::io("seeking in", real, e))?;
        let reader = LineReader::new(file)
            .max_line(self.opts.max_line)
            .tail_mode(true)
            .starting_at(offset, line_no);
        let key = self.new_key();
        if !draining {
            self.live.insert(path.clone(), key);
        }
        self.open.push(Open {
            key,
            path,
            ident,
            fp,
            reader,
            acked: (offset, line_no),
            draining,
            quiet_polls: 0,
        });
        self.pending.files_opened += 1;
        Ok(key)
    }

    fn resume(&mut self) {
        let mut errors = Vec::new();
        let mut paths = self.expand(&mut errors);
        // Paths we have checkpoints for but that are gone now may still have
        // a rotated sibling to finish.
        let mut cp_paths: Vec<PathBuf> = match &self.store {
            Some(s) => s
                .iter()
                .map(|c| c.path.clone())
                .filter(|p| self.owns(p))
                .collect(),
            None => Vec::new(),
        };
        cp_paths.sort();
        cp_paths.dedup();
        for p in cp_paths {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        for path in paths {
            if let Err(e) = self.resume_path(&path) {
                errors.push(e);
            }
        }
        self.pending.errors.extend(errors);
    }

    fn resume_path(&mut self, path: &Path) -> Result<()> {
        let arc: Arc<Path> = Arc::from(path);
        let entries: Vec<Checkpoint> = match &self.store {
            Some(s) => s.for_path(path).cloned().collect(),
            None => Vec::new(),
        };
        let current = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(SourceError::io("opening", path, e)),
        };
        if entries.is_empty() {
            if current.is_some() {
                let pos = match self.opts.start_at {
                    StartAt::Beginning => Some((0, 0)),
                    StartAt::End => None,
                };
                self.open_at(arc, path, pos, false)?;
            }
            return Ok(());
        }
        let mut current_pos = None;
        let mut olds: Vec<(PathBuf, Age, Checkpoint)> = Vec::new();
        for e in entries {
            if let Some(f) = &current
                && matches_file(&e, f, true)
            {
                current_pos = Some((e.offset, e.line_no));
                continue;
            }
            let found = if self.opts.read_rotated {
                find_sibling(path, &e)
            } else {
                None
            };
            match found {
                Some((p, order)) => olds.push((p, order, e)),
                None => self.pending.checkpoints_lost += 1,
            }
        }
        // Oldest first, so lines come out in the order they were written.
        olds.sort_by_key(|(p, order, _)| (*order, p.clone()));
        for (real, _, e) in olds {
            if self.open.iter().any(|o| {
                o.ident
                    == Ident {
                        dev: e.dev,
                        ino: e.inode,
                    }
                    && e.inode != 0
            }) {
                continue;
            }
            self.open_at(arc.clone(), &real, Some((e.offset, e.line_no)), true)?;
        }
        if current.is_some() {
            // Checkpointed but not this file: it is new since, read it all.
            self.open_at(arc, path, Some(current_pos.unwrap_or((0, 0))), false)?;
        }
        Ok(())
    }

    /// Records that the consumer fully processed the lines of `file` up to
    /// `end_offset` (the `end_offset` of the last such line, numbered
    /// `line_no`). Unknown or outdated keys are ignored; positions only move
    /// forward.
    pub fn ack(&mut self, file: FileKey, end_offset: u64, line_no: u64) {
        if let Some(o) = self.open.iter_mut().find(|o| o.key == file) {
            if end_offset > o.acked.0 {
                o.acked = (end_offset, line_no);
            }
        } else if let Some(c) = self.closed.get_mut(&file) {
            if end_offset > c.acked.0 {
                c.acked = (end_offset, line_no);
            }
            if c.acked.0 >= c.end.0 {
                self.closed.remove(&file);
            }
        }
    }

    /// Acknowledges every line returned so far (for consumers that process
    /// synchronously between polls).
    pub fn ack_all_read(&mut self) {
        for o in &mut self.open {
            o.acked = (o.reader.offset(), o.reader.line_no());
        }
        self.closed.clear();
    }

    /// Persists the acknowledged positions (see the module docs). Without a
    /// store this does nothing.
    pub fn checkpoint(&mut self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut entries = Vec::new();
        for o in &mut self.open {
            // Refresh the fingerprint while the file is short: it covers the
            // first ≤ 1 KiB as they are now.
            if (o.fp.1 as usize) < FINGERPRINT_LEN
                && let Ok(fp) = fingerprint_file(o.reader.get_ref(), FINGERPRINT_LEN)
                && fp.1 >= o.fp.1
            {
                o.fp = fp;
            }
            entries.push(cp(&o.path, o.ident, o.fp, o.acked));
        }
        for c in self.closed.values() {
            entries.push(cp(&c.path, c.ident, c.fp, c.acked));
        }
        let patterns = &self.patterns;
        let mut store = store.clone();
        store.retain(|c| !patterns.iter().any(|p| p.matches_path(&c.path)));
        for e in entries {
            store.set(e);
        }
        store.save()?;
        self.store = Some(store);
        Ok(())
    }

    /// Reads what is new from every followed file into `out` (appended).
    /// Per-file errors are reported in the stats, not returned.
    pub fn poll(&mut self, out: &mut Vec<TailLine>) -> Result<PollStats> {
        let mut stats = std::mem::take(&mut self.pending);
        let paths = self.expand(&mut stats.errors);
        self.check_live(&mut stats);
        self.discover(&paths, &mut stats);
        self.read_all(out, &mut stats);
        // Counted while this poll ran (files opened on rotation or discovery).
        let during = std::mem::take(&mut self.pending);
        stats.files_opened += during.files_opened;
        stats.errors.extend(during.errors);
        Ok(stats)
    }

    /// Notices rotation, truncation and deletion of live paths.
    fn check_live(&mut self, stats: &mut PollStats) {
        let mut rotated: Vec<Arc<Path>> = Vec::new();
        let mut truncated = Vec::new();
        for (i, o) in self.open.iter_mut().enumerate() {
            // On the handle, so a let-go file truncated after it was
            // renamed away is noticed too.
            match check_truncated(o) {
                Ok(true) => truncated.push(i),
                Ok(false) => {}
                Err(e) => stats.errors.push(e),
            }
            if o.draining {
                continue;
            }
            match fs::metadata(&o.path) {
                Ok(m) if Ident::of(&m) == o.ident => {}
                Ok(_) => {
                    o.draining = true;
                    stats.rotations += 1;
                    rotated.push(o.path.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    o.draining = true;
                }
                Err(e) => stats.errors.push(meta_err(&o.path, e)),
            }
        }
        for i in truncated {
            // Acks for the old generation must not move the new one.
            stats.truncations += 1;
            let key = self.new_key();
            let o = &mut self.open[i];
            self.closed.remove(&o.key);
            o.key = key;
            if !o.draining {
                self.live.insert(o.path.clone(), key);
            }
        }
        self.live
            .retain(|_, k| self.open.iter().any(|o| o.key == *k && !o.draining));
        for path in rotated {
            // The replacement is new: read it from 0, after the old one.
            if let Err(e) = self.open_at(path.clone(), &path.clone(), Some((0, 0)), false) {
                stats.errors.push(e);
            }
        }
    }

    /// Opens files that appeared since the last poll.
    fn discover(&mut self, paths: &[PathBuf], stats: &mut PollStats) {
        for p in paths {
            if self.live.contains_key(p.as_path()) {
                continue;
            }
            let meta = match fs::metadata(p) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    stats.errors.push(meta_err(p, e));
                    continue;
                }
            };
            let ident = Ident::of(&meta);
            // Already open under another name (a rotated sibling the
            // patterns also match): do not read it twice.
            if self.open.iter().any(|o| o.ident == ident) {
                continue;
            }
            let mut pos = Some((0, 0));
            if let Some(r) = self.retired.get(&ident).copied()
                && let Ok(f) = File::open(p)
                && fingerprint_file(&f, r.fp.1 as usize).ok() == Some(r.fp)
            {
                pos = Some(r.end);
            }
            if let Err(e) = self.open_at(Arc::from(p.as_path()), p, pos, false) {
                stats.errors.push(e);
            }
        }
    }

    fn read_all(&mut self, out: &mut Vec<TailLine>, stats: &mut PollStats) {
        let budget = self.opts.max_bytes_per_poll;
        // Paths whose older instance is not yet drained: their newer
        // instances wait, keeping each path's lines in order.
        let mut blocked: Vec<Arc<Path>> = Vec::new();
        let mut done: Vec<usize> = Vec::new();
        for (i, o) in self.open.iter_mut().enumerate() {
            if blocked.contains(&o.path) {
                continue;
            }
            let start = o.reader.read_offset();
            let mut at_end = false;
            while o.reader.read_offset() - start < budget {
                match o.reader.next_item() {
                    Ok(Some(item)) => push_line(out, stats, &o.path, o.key, item),
                    Ok(None) => {
                        at_end = true;
                        break;
                    }
                    Err(e) => {
                        stats.errors.push(SourceError::io("reading", &*o.path, e));
                        break;
                    }
                }
            }
            let read = o.reader.read_offset() - start;
            if read == 0 {
                o.reader.release_buffer();
            }
            // Keep the fingerprint covering what we have read (up to 1 KiB):
            // it is how a truncate-and-rewrite past our offset is noticed.
            let covered = o.reader.read_offset().min(FINGERPRINT_LEN as u64) as u32;
            if o.fp.1 < covered
                && let Ok(fp) = fingerprint_file(o.reader.get_ref(), covered as usize)
            {
                o.fp = fp;
            }
            if !at_end {
                stats.more_pending = true;
            }
            if o.draining {
                if at_end && read == 0 {
                    o.quiet_polls += 1;
                } else {
                    o.quiet_polls = 0;
                }
                // Quiet for a whole poll interval after its end: the writer
                // has moved on; a last line without newline is flushed.
                if o.quiet_polls >= 2 {
                    if let Some(item) = o.reader.finish() {
                        push_line(out, stats, &o.path, o.key, item);
                    }
                    done.push(i);
                } else if !at_end || o.reader.pending_len() > 0 {
                    // Unread data or a held partial line in the old file:
                    // the new one waits, so the path's lines stay in order.
                    // (A straggler written to the old file after its end
                    // was seen may still come after new-file lines.)
                    blocked.push(o.path.clone());
                }
            }
        }
        for i in done.into_iter().rev() {
            let o = self.open.remove(i);
            stats.files_closed += 1;
            let end = (o.reader.offset(), o.reader.line_no());
            if o.acked.0 < end.0 {
                self.closed.insert(
                    o.key,
                    Closed {
                        path: o.path,
                        ident: o.ident,
                        fp: o.fp,
                        end,
                        acked: o.acked,
                    },
                );
            }
            if self
                .retired
                .insert(o.ident, Retired { fp: o.fp, end })
                .is_none()
            {
                self.retired_order.push_back(o.ident);
            }
            while self.retired_order.len() > RETIRED_CAP {
                if let Some(old) = self.retired_order.pop_front() {
                    self.retired.remove(&old);
                }
            }
        }
    }
}

fn push_line(
    out: &mut Vec<TailLine>,
    stats: &mut PollStats,
    path: &Arc<Path>,
    key: FileKey,
    item: Item<'_>,
) {
    stats.lines += 1;
    match item {
        Item::Line {
            line_no,
            bytes,
            end_offset,
        } => {
            stats.bytes += bytes.len() as u64;
            out.push(TailLine {
                file: key,
                path: path.clone(),
                line_no,
                bytes: bytes.to_vec(),
                end_offset,
                too_long: None,
            });
        }
        Item::TooLong {
            line_no,
            len,
            end_offset,
        } => {
            stats.too_long += 1;
            out.push(TailLine {
                file: key,
                path: path.clone(),
                line_no,
                bytes: Vec::new(),
                end_offset,
                too_long: Some(len),
            });
        }
    }
}

fn cp(path: &Path, ident: Ident, fp: (u64, u32), pos: (u64, u64)) -> Checkpoint {
    Checkpoint {
        path: path.to_path_buf(),
        dev: ident.dev,
        inode: ident.ino,
        fingerprint: fp.0,
        fp_len: fp.1,
        offset: pos.0,
        line_no: pos.1,
    }
}

/// Copytruncate: the size fell below what we read, or the first bytes are
/// no longer the ones we fingerprinted (truncated and rewritten past our
/// position between two polls). Restart at 0 under a new key.
fn check_truncated(o: &mut Open) -> Result<bool> {
    let f = o.reader.get_ref();
    let len = f.metadata().map_err(|e| meta_err(&o.path, e))?.len();
    let fp_now = fingerprint_file(f, o.fp.1 as usize)
        .map_err(|e| SourceError::io("reading", &*o.path, e))?;
    if len >= o.reader.read_offset() && fp_now == o.fp {
        return Ok(false);
    }
    o.reader
        .get_mut()
        .seek(SeekFrom::Start(0))
        .map_err(|e| SourceError::io("seeking in", &*o.path, e))?;
    o.reader.reset(0, 0);
    o.fp = fingerprint_file(o.reader.get_ref(), FINGERPRINT_LEN)
        .map_err(|e| SourceError::io("reading", &*o.path, e))?;
    o.acked = (0, 0);
    Ok(true)
}

/// Whether checkpoint `e` describes `f`: same identity (unless only the
/// fingerprint is required) and same first bytes, and long enough.
fn matches_file(e: &Checkpoint, f: &File, need_ident: bool) -> bool {
    let Ok(m) = f.metadata() else { return false };
    let same_ident = m.dev() == e.dev && m.ino() == e.inode;
    if need_ident && !same_ident {
        // A moved/restored file keeps its content: trust a full 1 KiB match.
        if (e.fp_len as usize) < FINGERPRINT_LEN {
            return false;
        }
    }
    if !need_ident && !same_ident && e.fp_len == 0 {
        return false;
    }
    m.len() >= e.offset
        && fingerprint_file(f, e.fp_len as usize).ok() == Some((e.fingerprint, e.fp_len))
}

/// Modification time (seconds, nanoseconds): older rotations first.
type Age = (i64, i64);

/// Finds the file checkpoint `e` describes among the siblings of `path`
/// (names starting with its file name, same directory), preferring an
/// identity match. Returns its path and an age order (oldest first).
fn find_sibling(path: &Path, e: &Checkpoint) -> Option<(PathBuf, Age)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    let mut by_fp = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if !n.starts_with(name) {
            continue;
        }
        let p = entry.path();
        let Ok(f) = File::open(&p) else { continue };
        let Ok(m) = f.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        let order = (m.mtime(), m.mtime_nsec());
        if m.dev() == e.dev && m.ino() == e.inode && matches_file(e, &f, true) {
            return Some((p, order));
        }
        if by_fp.is_none() && n != name && matches_file(e, &f, false) {
            by_fp = Some((p, order));
        }
    }
    by_fp
}

/// The directory to watch for a pattern: everything before the first
/// component with a glob metacharacter.
fn watch_dir(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    let comps: Vec<_> = Path::new(pattern).components().collect();
    for (i, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        if i + 1 == comps.len() || s.contains(['*', '?', '[']) {
            break;
        }
        dir.push(c);
    }
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    }
}
