//! The on-disk segment format: a header, then framed records, and the hash
//! chain that links them (spec in the crate README).
//!
//! [`Frames`] walks the records of a segment without any key: it checks
//! framing and the CRC only, which is what crash recovery needs to find a torn
//! tail and what the fuzz target exercises. Authentication (AEAD tag, chain,
//! signatures) is the verifier's job. Nothing here panics on any input.

use sha2::{Digest, Sha256};

use crate::crypto::{NONCE_LEN, TAG_LEN};
use crate::error::{Result, corrupt};

pub const SEG_MAGIC: &[u8; 8] = b"SMARCSEG";
pub const SEG_VERSION: u16 = 1;
/// Fixed part of the header before the category name.
const HDR_FIXED: usize = 93;
pub const MAX_CATEGORY_LEN: usize = 64;
/// Bytes of a record before the ciphertext: len, kind, seq, time.
pub const REC_HEAD: usize = 4 + 1 + 8 + 8;
/// Smallest value of the length field: kind, seq, time, tag, crc.
pub const REC_MIN_LEN: u32 = (1 + 8 + 8 + TAG_LEN + 4) as u32;
/// Largest record accepted (an event plus its raw line is far smaller); a
/// larger length field is damage, not data.
pub const REC_MAX_LEN: u32 = 16 << 20;

pub const KIND_EVENT: u8 = 0;
pub const KIND_AUDIT: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub archive_id: [u8; 16],
    pub first_seq: u64,
    /// Chain value after the category's previous record (its genesis value
    /// for the first segment).
    pub prev_hash: [u8; 32],
    pub created: i64,
    pub key_id: [u8; 16],
    pub category: String,
    /// Header length in bytes: records start here.
    pub len: usize,
}

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let cat = self.category.as_bytes();
        let mut b = Vec::with_capacity(HDR_FIXED + cat.len() + 4);
        b.extend_from_slice(SEG_MAGIC);
        b.extend_from_slice(&SEG_VERSION.to_le_bytes());
        let total = (HDR_FIXED + cat.len() + 4) as u16;
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&self.archive_id);
        b.extend_from_slice(&self.first_seq.to_le_bytes());
        b.extend_from_slice(&self.prev_hash);
        b.extend_from_slice(&self.created.to_le_bytes());
        b.extend_from_slice(&self.key_id);
        b.push(cat.len() as u8);
        b.extend_from_slice(cat);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn parse(file: &str, b: &[u8]) -> Result<SegmentHeader> {
        let bad = |what: &str| corrupt(file, None, Some(0), format!("segment header: {what}"));
        if b.len() < HDR_FIXED + 4 {
            return Err(bad("file shorter than a header"));
        }
        if &b[..8] != SEG_MAGIC {
            return Err(bad("bad magic (not a secmon archive segment)"));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != SEG_VERSION {
            return Err(bad(&format!("unsupported version {version}")));
        }
        let total = usize::from(u16::from_le_bytes([b[10], b[11]]));
        let cat_len = usize::from(b[92]);
        if cat_len == 0 || cat_len > MAX_CATEGORY_LEN || total != HDR_FIXED + cat_len + 4 {
            return Err(bad("bad header length"));
        }
        let Some(hdr) = b.get(..total) else {
            return Err(bad("file shorter than its header"));
        };
        let crc = u32::from_le_bytes(arr(&hdr[total - 4..]));
        if crc != crc32fast::hash(&hdr[..total - 4]) {
            return Err(bad("header checksum mismatch"));
        }
        let category = std::str::from_utf8(&hdr[HDR_FIXED..HDR_FIXED + cat_len])
            .map_err(|_| bad("category is not UTF-8"))?
            .to_string();
        Ok(SegmentHeader {
            archive_id: arr(&hdr[12..28]),
            first_seq: u64::from_le_bytes(arr(&hdr[28..36])),
            prev_hash: arr(&hdr[36..68]),
            created: i64::from_le_bytes(arr(&hdr[68..76])),
            key_id: arr(&hdr[76..92]),
            category,
            len: total,
        })
    }
}

/// Copies a slice of known length into an array (callers slice exactly N).
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s[..n]);
    a
}

/// The chain value a category starts from.
pub fn genesis(archive_id: &[u8; 16], category: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"secmon-archive genesis\0");
    h.update(archive_id);
    h.update(category.as_bytes());
    h.finalize().into()
}

/// Chain value after a record: SHA-256(previous ‖ record without its CRC).
pub fn chain(prev: &[u8; 32], frame_without_crc: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(frame_without_crc);
    h.finalize().into()
}

/// The AEAD nonce of a record: its sequence number. Unique because every
/// segment has its own data key and holds each sequence number once.
pub fn record_nonce(seq: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&seq.to_le_bytes());
    n
}

/// One record as framed on disk, not yet authenticated.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Byte offset of the record in its segment file.
    pub offset: u64,
    pub kind: u8,
    pub seq: u64,
    pub time: i64,
    /// The record without its CRC: what the chain hashes.
    pub frame: &'a [u8],
    /// Ciphertext and tag.
    pub sealed: &'a [u8],
}

impl RawRecord<'_> {
    /// The associated data the AEAD tag covers: length, kind, seq, time.
    pub fn aad(&self) -> &[u8] {
        &self.frame[..REC_HEAD]
    }
}

#[derive(Debug)]
pub enum Next<'a> {
    Record(RawRecord<'a>),
    End,
    /// The last record is incomplete or fails its CRC at the very end of the
    /// file: what an interrupted write leaves. Recovery truncates here.
    Torn {
        offset: u64,
        what: &'static str,
    },
    /// Damage followed by more bytes: not a crash artefact.
    Bad {
        offset: u64,
        what: &'static str,
    },
}

/// Iterates the records of a segment's bytes (after the header).
pub struct Frames<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Frames<'a> {
    pub fn new(b: &'a [u8], start: usize) -> Self {
        Frames {
            b,
            pos: start.min(b.len()),
        }
    }

    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    pub fn next_record(&mut self) -> Next<'a> {
        let b = self.b;
        let start = self.pos;
        let rest = &b[start..];
        if rest.is_empty() {
            return Next::End;
        }
        let off = start as u64;
        if rest.len() < 4 {
            return Next::Torn {
                offset: off,
                what: "incomplete length field",
            };
        }
        let len = u32::from_le_bytes(arr(&rest[..4]));
        if !(REC_MIN_LEN..=REC_MAX_LEN).contains(&len) {
            return Next::Bad {
                offset: off,
                what: "record length out of range",
            };
        }
        let total = 4 + len as usize;
        if rest.len() < total {
            return Next::Torn {
                offset: off,
                what: "record extends past the end of the file",
            };
        }
        let rec = &rest[..total];
        let crc = u32::from_le_bytes(arr(&rec[total - 4..]));
        if crc != crc32fast::hash(&rec[..total - 4]) {
            let what = "record checksum mismatch";
            return if rest.len() == total {
                Next::Torn { offset: off, what }
            } else {
                Next::Bad { offset: off, what }
            };
        }
        self.pos = start + total;
        let frame = &rec[..total - 4];
        Next::Record(RawRecord {
            offset: off,
            kind: rec[4],
            seq: u64::from_le_bytes(arr(&rec[5..13])),
            time: i64::from_le_bytes(arr(&rec[13..21])),
            frame,
            sealed: &frame[REC_HEAD..],
        })
    }
}

/// Appends a record's head (length patched later by [`finish_record`]).
pub fn begin_record(buf: &mut Vec<u8>, kind: u8, seq: u64, time: i64) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.push(kind);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    start
}

/// Sets the length field for a payload of `payload_len` bytes (before
/// encryption) so the AEAD's associated data is final.
pub fn set_record_len(buf: &mut [u8], start: usize, payload_len: usize) {
    let len = (1 + 8 + 8 + payload_len + TAG_LEN + 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends the CRC; returns the new chain value.
pub fn finish_record(buf: &mut Vec<u8>, start: usize, prev: &[u8; 32]) -> [u8; 32] {
    let h = chain(prev, &buf[start..]);
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    h
}

/// `seg/<category>/<first seq, 20 digits>-<yyyymmdd>.seg`: sorting names sorts
/// segments by sequence.
pub fn segment_name(first_seq: u64, day: &str) -> String {
    format!("{first_seq:020}-{day}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    let (seq, _day) = stem.split_once('-')?;
    if seq.len() != 20 {
        return None;
    }
    seq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> SegmentHeader {
        SegmentHeader {
            archive_id: [1; 16],
            first_seq: 42,
            prev_hash: [2; 32],
            created: 1000,
            key_id: [3; 16],
            category: "auth".into(),
            len: 0,
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let b = hdr().encode();
        let h = SegmentHeader::parse("f", &b).unwrap();
        assert_eq!(h.first_seq, 42);
        assert_eq!(h.category, "auth");
        assert_eq!(h.len, b.len());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(SegmentHeader::parse("f", &c).is_err(), "byte {i}");
            assert!(SegmentHeader::parse("f", &b[..i]).is_err());
        }
    }

    #[test]
    fn frames_torn_and_bad() {
        let mut buf = Vec::new();
        let mut h = [0u8; 32];
        for seq in 0..3u64 {
            let s = begin_record(&mut buf, KIND_EVENT, seq, 5);
            buf.extend_from_slice(&[9; 20]);
            set_record_len(&mut buf, s, 4);
            h = finish_record(&mut buf, s, &h);
        }
        let mut f = Frames::new(&buf, 0);
        let mut n = 0;
        while let Next::Record(r) = f.next_record() {
            assert_eq!(r.seq, n);
            n += 1;
        }
        assert_eq!(n, 3);
        // Every truncation inside the last record is torn, never bad.
        let last_start = buf.len() - (4 + REC_MIN_LEN as usize + 4);
        for cut in last_start + 1..buf.len() {
            let mut f = Frames::new(&buf[..cut], 0);
            let end = loop {
                match f.next_record() {
                    Next::Record(_) => {}
                    other => break format!("{other:?}"),
                }
            };
            assert!(end.starts_with("Torn"), "cut {cut}");
        }
        // A flipped byte in the middle record is damage.
        let mut c = buf.clone();
        c[REC_MIN_LEN as usize + 4 + 10] ^= 1;
        let mut f = Frames::new(&c, 0);
        assert!(matches!(f.next_record(), Next::Record(_)));
        assert!(matches!(f.next_record(), Next::Bad { .. }));
    }

    #[test]
    fn names_sort_by_seq() {
        let a = segment_name(9, "20240101");
        let b = segment_name(10, "20231231");
        assert!(a < b);
        assert_eq!(parse_segment_name(&b), Some(10));
        assert_eq!(parse_segment_name("x.seg"), None);
    }
}
