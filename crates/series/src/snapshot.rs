//! Persistence: the whole store as one versioned, checksummed snapshot.
//!
//! Layout (little-endian): magic `SECMONTS`, format version (u32), payload
//! length (u64), payload, CRC-32 of everything before it. The payload holds
//! the clock, the refusal counters and every series with its chunks in their
//! compressed form, so a snapshot of a full store is about its memory size.
//! Loading checks magic, version, length and checksum before parsing, then
//! parses defensively (every length bounded by what is left, every chunk
//! decoded once): a truncated or corrupt file is a [`SnapshotError`], never a
//! panic, and the caller starts empty and says so.
//!
//! [`Store::save_file`] replaces the file atomically (temp file, fsync,
//! rename, fsync of the directory): a crash leaves the old or the new
//! snapshot, never a torn one. Time that passes while secmon is down is a
//! gap in every series; nothing is interpolated. This module does not
//! schedule saves (the binary does, every minute and at shutdown) and does
//! not keep older generations.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use secmon_core::Str;

use crate::chunk::{Chunk, Layout};
use crate::codec::crc32;
use crate::sample::{Kind, Labels};
use crate::store::{Config, Metric, RAW, ROLLUP, Series, Stats, Store};

const MAGIC: &[u8; 8] = b"SECMONTS";
/// Bumped on any change of the payload layout; older versions are refused
/// rather than misread (the caller starts empty).
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a secmon series snapshot (bad magic)")]
    BadMagic,
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("snapshot is truncated: {found} bytes, expected {expected}")]
    Truncated { found: u64, expected: u64 },
    #[error(
        "snapshot checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

impl SnapshotError {
    fn io(path: &Path, source: io::Error) -> Self {
        SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Store {
    /// Writes the whole store to `w` as one snapshot.
    pub fn save(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.to_snapshot())
    }

    /// The snapshot bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // One buffer, sized from the memory estimate (sealed chunks are
        // copied as they are): the header's length is patched in at the end.
        let mut p = Vec::with_capacity(HEADER + self.heap_bytes() + 4);
        p.extend_from_slice(MAGIC);
        put_u32(&mut p, FORMAT_VERSION);
        p.extend_from_slice(&0u64.to_le_bytes());
        match self.latest_slot {
            Some(s) => {
                p.push(1);
                put_i64(&mut p, s);
            }
            None => {
                p.push(0);
                put_i64(&mut p, 0);
            }
        }
        let st = &self.stats;
        for c in [
            st.samples,
            st.refused_cardinality,
            st.refused_invalid,
            st.refused_out_of_order,
            st.refused_kind_conflict,
            st.expired_series,
        ] {
            p.extend_from_slice(&c.to_le_bytes());
        }
        put_u32(&mut p, self.metrics.len() as u32);
        for (name, m) in &self.metrics {
            put_str(&mut p, name);
            p.push(m.kind.code());
            put_u32(&mut p, m.series.len() as u32);
            for (labels, s) in &m.series {
                p.push(labels.len() as u8);
                for (k, v) in labels.iter() {
                    put_str(&mut p, k);
                    put_str(&mut p, v);
                }
                put_i64(&mut p, s.last.0);
                p.extend_from_slice(&s.last.1.to_le_bytes());
                put_i64(&mut p, s.next_bucket);
                let (flag, ct, cv) = s.carry.map_or((0, 0, 0.0), |(t, v)| (1, t, v));
                p.push(flag);
                put_i64(&mut p, ct);
                p.extend_from_slice(&cv.to_le_bytes());
                for chunks in [&s.raw, &s.rollup] {
                    put_u32(&mut p, chunks.len() as u32);
                    for c in chunks {
                        put_i64(&mut p, c.start);
                        let b = c.encoded();
                        put_u32(&mut p, b.len() as u32);
                        p.extend_from_slice(&b);
                    }
                }
            }
        }
        let len = (p.len() - HEADER) as u64;
        p[12..HEADER].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&p);
        put_u32(&mut p, crc);
        p
    }

    /// Reads a snapshot written by [`Store::save`]; `config` is today's
    /// limits (series already stored are kept even if over a lowered cap).
    pub fn load(mut r: impl Read, config: Config) -> Result<Store, SnapshotError> {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .map_err(|e| SnapshotError::io(Path::new("<reader>"), e))?;
        Store::from_snapshot(&buf, config)
    }

    pub fn from_snapshot(buf: &[u8], config: Config) -> Result<Store, SnapshotError> {
        let truncated = |expected: u64| SnapshotError::Truncated {
            found: buf.len() as u64,
            expected,
        };
        if buf.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(buf) && !buf.is_empty() {
                truncated(HEADER as u64 + 4)
            } else {
                SnapshotError::BadMagic
            });
        }
        if &buf[..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if buf.len() < HEADER {
            return Err(truncated(HEADER as u64 + 4));
        }
        let mut h = Reader { b: &buf[8..HEADER] };
        let version = h.u32()?;
        if version != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let len = h.u64()?;
        let expected = (HEADER as u64).saturating_add(len).saturating_add(4);
        if (buf.len() as u64) < expected {
            return Err(truncated(expected));
        }
        if (buf.len() as u64) > expected {
            return Err(SnapshotError::Corrupt(format!(
                "{} bytes after the end of the snapshot",
                buf.len() as u64 - expected
            )));
        }
        let body_end = buf.len() - 4;
        let mut t = Reader {
            b: &buf[body_end..],
        };
        let stored = t.u32()?;
        let computed = crc32(&buf[..body_end]);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        parse(
            &mut Reader {
                b: &buf[HEADER..body_end],
            },
            config,
        )
    }

    /// Saves atomically to `path` (see [`write_snapshot_file`]). Holds
    /// `&self` through the fsync; behind a lock, prefer `to_snapshot()` under
    /// the lock and [`write_snapshot_file`] outside it.
    pub fn save_file(&self, path: &Path) -> Result<(), SnapshotError> {
        write_snapshot_file(path, &self.to_snapshot())
    }

    /// Loads `path`; `Ok(None)` when there is no snapshot yet (first start).
    pub fn load_file(path: &Path, config: Config) -> Result<Option<Store>, SnapshotError> {
        match fs::read(path) {
            Ok(buf) => Store::from_snapshot(&buf, config).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SnapshotError::io(path, e)),
        }
    }
}

/// Replaces `path` with `bytes` atomically: a `.tmp` sibling is written and
/// fsynced, renamed over `path`, and the directory fsynced so the rename
/// survives a crash. A crash leaves the old or the new file, never a torn one.
pub fn write_snapshot_file(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| SnapshotError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| SnapshotError::io(path, e))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SnapshotError::io(&dir, e))
}

fn parse(r: &mut Reader<'_>, config: Config) -> Result<Store, SnapshotError> {
    let has_latest = r.u8()? != 0;
    let latest = r.i64()?;
    let mut c = [0u64; 6];
    for x in &mut c {
        *x = r.u64()?;
    }
    let stats = Stats {
        samples: c[0],
        refused_cardinality: c[1],
        refused_invalid: c[2],
        refused_out_of_order: c[3],
        refused_kind_conflict: c[4],
        expired_series: c[5],
        ..Stats::default()
    };
    let mut metrics = BTreeMap::new();
    let mut series_count = 0;
    for _ in 0..r.u32()? {
        let name = r.str()?;
        let kind = Kind::from_code(r.u8()?)
            .ok_or_else(|| corrupt(format!("metric {name:?}: unknown kind")))?;
        let mut series = BTreeMap::new();
        for _ in 0..r.u32()? {
            let mut labels = Labels::new();
            for _ in 0..r.u8()? {
                let k = r.str()?;
                let v = r.str()?;
                labels.insert(k, v);
            }
            let last = (r.i64()?, r.f64()?);
            let next_bucket = r.i64()?;
            let has_carry = r.u8()? != 0;
            let carry = (r.i64()?, r.f64()?);
            let raw = chunks(r, RAW, &name)?;
            let rollup = chunks(r, ROLLUP, &name)?;
            let s = Series {
                kind,
                raw,
                rollup,
                last,
                next_bucket,
                carry: has_carry.then_some(carry),
            };
            if series.insert(labels, s).is_some() {
                return Err(corrupt(format!("metric {name:?}: a label set twice")));
            }
            series_count += 1;
        }
        if metrics
            .insert(name.clone(), Metric { kind, series })
            .is_some()
        {
            return Err(corrupt(format!("metric {name:?} twice")));
        }
    }
    if !r.b.is_empty() {
        return Err(corrupt(format!("{} unparsed bytes", r.b.len())));
    }
    Ok(Store {
        config,
        metrics,
        series_count,
        latest_slot: has_latest.then_some(latest),
        stats,
    })
}

fn chunks(
    r: &mut Reader<'_>,
    l: Layout,
    name: &str,
) -> Result<std::collections::VecDeque<Chunk>, SnapshotError> {
    let mut out = std::collections::VecDeque::new();
    let mut prev: Option<i64> = None;
    for _ in 0..r.u32()? {
        let start = r.i64()?;
        let len = r.u32()? as usize;
        let bytes = r.take(len)?.to_vec();
        if start.rem_euclid(l.rows as i64) != 0 || prev.is_some_and(|p| p >= start) {
            return Err(corrupt(format!(
                "metric {name:?}: misplaced chunk at {start}"
            )));
        }
        prev = Some(start);
        out.push_back(
            Chunk::from_encoded(start, bytes, l)
                .ok_or_else(|| corrupt(format!("metric {name:?}: undecodable chunk at {start}")))?,
        );
    }
    Ok(out)
}

fn corrupt(msg: String) -> SnapshotError {
    SnapshotError::Corrupt(msg)
}

/// Bounds-checked little-endian reads; running out is `Corrupt` (the length
/// and checksum were already checked, so this is a malformed payload).
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.b.len() < n {
            return Err(corrupt(format!(
                "needs {n} more bytes, {} left",
                self.b.len()
            )));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn f64(&mut self) -> Result<f64, SnapshotError> {
        Ok(f64::from_le_bytes(self.arr()?))
    }
    fn str(&mut self) -> Result<Str, SnapshotError> {
        let n = u16::from_le_bytes(self.arr()?) as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(Str::from)
            .map_err(|_| corrupt("a name that is not UTF-8".into()))
    }
}

fn put_u32(p: &mut Vec<u8>, v: u32) {
    p.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(p: &mut Vec<u8>, v: i64) {
    p.extend_from_slice(&v.to_le_bytes());
}

/// Names and labels are at most `max_str_len` bytes (validated on record);
/// the u16 length is a format limit, not a policy.
fn put_str(p: &mut Vec<u8>, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    p.extend_from_slice(&(n as u16).to_le_bytes());
    p.extend_from_slice(&s.as_bytes()[..n]);
}
