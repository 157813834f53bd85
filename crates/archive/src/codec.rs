//! The plaintext inside a record: an [`Event`] (and its raw line) in a compact
//! binary form, with personal fields sealed under their subject's key.
//!
//! Binary rather than JSON because encoding and decoding sit on the append
//! and search hot paths (300k events/s); the format is specified in the
//! crate README. Decoding never panics and never allocates more than the
//! input can justify: every length is checked against the bytes left.
//!
//! This module does not choose keys or subjects; the caller hands in a
//! sealer that picks a key per field and an `open` function to find keys.

use std::sync::Arc;

use secmon_core::{Event, Fields, SourceId, Str, Timestamp, Value};

use crate::crypto::{Cipher, NONCE_LEN, TAG_LEN};

/// Payload version written when some field is sealed: all of a record's
/// fields sealed under one subject key are one AEAD message (a "sealed
/// group"), not one message per field.
pub const FORMAT_VERSION: u8 = 2;
/// Version 1 payloads sealed each field on its own. Payloads with nothing
/// sealed are still written as version 1 (the layout is the same), so
/// readers that predate version 2 read them — audit records in particular,
/// which `verify` decodes. Both versions are read.
const V1: u8 = 1;
/// What an erased (crypto-shredded) field or raw line reads as.
pub const ERASED: &str = "[erased]";
const MAX_DEPTH: u32 = 16;

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_ARRAY: u8 = 6;
/// v1 only: a sealed blob whose plaintext is the value.
const T_SEALED: u8 = 7;
/// v2 only: the value is the next one in sealed group `varint g`.
const T_IN_GROUP: u8 = 8;

const RAW_NONE: u8 = 0;
const RAW_PLAIN: u8 = 1;
/// v1 only: a sealed blob whose plaintext is the raw line.
const RAW_SEALED: u8 = 2;
/// v2 only: the raw line ends the plaintext of sealed group 0.
const RAW_IN_GROUP: u8 = 3;

/// Nonces for sealed fields: a random 96-bit start per writer, incremented
/// per use, so two writers (or restarts) sealing under the same subject key
/// never collide in practice.
#[derive(Debug, Clone)]
pub struct NonceCounter(u128);

impl NonceCounter {
    pub fn new(start: [u8; 12]) -> Self {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&start);
        NonceCounter(u128::from_le_bytes(b))
    }
    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        self.0 = (self.0 + 1) & ((1u128 << 96) - 1);
        let b = self.0.to_le_bytes();
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&b[..12]);
        n
    }
}

/// Chooses the subject key for a field: `Ok(None)` leaves it in clear text.
pub type Sealer<'a> =
    dyn FnMut(&str, &Value) -> Result<Option<([u8; 16], Cipher)>, crate::Error> + 'a;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put_varint`] writes for `v`.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes [`put_value`] writes for `v`.
fn value_len(v: &Value) -> usize {
    1 + match v {
        Value::Null | Value::Bool(_) => 0,
        Value::Int(_) | Value::Float(_) => 8,
        Value::Str(s) => varint_len(s.len() as u64) + s.len(),
        Value::Array(a) => varint_len(a.len() as u64) + a.iter().map(value_len).sum::<usize>(),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Int(i) => {
            out.push(T_INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(T_STR);
            put_bytes(out, s.as_bytes());
        }
        Value::Array(a) => {
            out.push(T_ARRAY);
            put_varint(out, a.len() as u64);
            for v in a {
                put_value(out, v);
            }
        }
    }
}

fn aad(key_id: &[u8; 16], path: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(16 + path.len());
    a.extend_from_slice(key_id);
    a.extend_from_slice(path);
    a
}

/// The associated data of a v2 sealed group: key id ‖ whether the raw line
/// is in it ‖ the paths of its fields (varint length ‖ bytes each), so a
/// group cannot be moved to other fields, nor fields reordered, unnoticed.
fn group_aad(
    out: &mut Vec<u8>,
    key_id: &[u8; 16],
    raw: bool,
    paths: &mut dyn Iterator<Item = &str>,
) {
    out.clear();
    out.extend_from_slice(key_id);
    out.push(u8::from(raw));
    for p in paths {
        put_bytes(out, p.as_bytes());
    }
}

/// Buffers [`encode_event_with`] reuses from one event to the next (the
/// writer keeps one), so sealing allocates nothing per event.
#[derive(Default)]
pub struct EncodeScratch {
    /// Distinct keys of this event's sealed fields, in first-use order.
    keys: Vec<([u8; 16], Cipher)>,
    /// Per field: the index in `keys` of its group, if sealed.
    group: Vec<Option<usize>>,
    aad: Vec<u8>,
}

/// [`encode_event_with`] with fresh buffers.
pub fn encode_event(
    ev: &Event,
    sealer: &mut Sealer<'_>,
    nonces: &mut NonceCounter,
    out: &mut Vec<u8>,
) -> Result<(), crate::Error> {
    encode_event_with(ev, sealer, nonces, &mut EncodeScratch::default(), out)
}

/// Encodes `ev` into `out`. Each field the sealer gives a key for is sealed
/// under it; fields sharing a key form one sealed group (one AEAD message,
/// usually one per event: the subject's), and the raw line joins the first
/// group (it repeats the personal fields in clear text, so erasure must
/// cover it too). Nothing sealed: a version-1 payload.
pub fn encode_event_with(
    ev: &Event,
    sealer: &mut Sealer<'_>,
    nonces: &mut NonceCounter,
    sc: &mut EncodeScratch,
    out: &mut Vec<u8>,
) -> Result<(), crate::Error> {
    sc.keys.clear();
    sc.group.clear();
    for (k, v) in ev.fields.iter() {
        let g = match sealer(k, v)? {
            None => None,
            Some((id, cipher)) => Some(match sc.keys.iter().position(|(i, _)| *i == id) {
                Some(g) => g,
                None => {
                    sc.keys.push((id, cipher));
                    sc.keys.len() - 1
                }
            }),
        };
        sc.group.push(g);
    }
    let sealed = !sc.keys.is_empty();
    out.push(if sealed { FORMAT_VERSION } else { V1 });
    out.extend_from_slice(&ev.time.0.to_le_bytes());
    out.extend_from_slice(&ev.received.0.to_le_bytes());
    out.extend_from_slice(&ev.source.0.to_le_bytes());
    out.extend_from_slice(&ev.line.to_le_bytes());
    put_varint(out, ev.fields.len() as u64);
    for ((k, v), g) in ev.fields.iter().zip(&sc.group) {
        put_bytes(out, k.as_bytes());
        match g {
            Some(g) => {
                out.push(T_IN_GROUP);
                put_varint(out, *g as u64);
            }
            None => put_value(out, v),
        }
    }
    match (&ev.raw, sealed) {
        (None, _) => out.push(RAW_NONE),
        (Some(_), true) => out.push(RAW_IN_GROUP),
        (Some(raw), false) => {
            out.push(RAW_PLAIN);
            put_bytes(out, raw.as_bytes());
        }
    }
    if !sealed {
        return Ok(());
    }
    put_varint(out, sc.keys.len() as u64);
    for (g, (id, cipher)) in sc.keys.iter().enumerate() {
        let raw = ev.raw.as_deref().filter(|_| g == 0);
        let members = || {
            ev.fields
                .iter()
                .zip(&sc.group)
                .filter(move |(_, m)| **m == Some(g))
                .map(|(kv, _)| kv)
        };
        group_aad(
            &mut sc.aad,
            id,
            raw.is_some(),
            &mut members().map(|(k, _)| k),
        );
        let nonce = nonces.next_nonce();
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        // The plaintext is written in place after its length prefix and
        // encrypted where it lies.
        let pt_len = members().map(|(_, v)| value_len(v)).sum::<usize>()
            + raw.map_or(0, |r| varint_len(r.len() as u64) + r.len());
        put_varint(out, (pt_len + TAG_LEN) as u64);
        let from = out.len();
        for (_, v) in members() {
            put_value(out, v);
        }
        if let Some(raw) = raw {
            put_bytes(out, raw.as_bytes());
        }
        debug_assert_eq!(out.len() - from, pt_len);
        cipher.seal_tail(&nonce, &sc.aad, out, from);
    }
    Ok(())
}

/// Why a payload did not decode.
pub type DecodeError = &'static str;

struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.b.get(self.pos..end).ok_or("payload truncated")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let left = self.b.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or("length past end of payload")
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "string is not UTF-8")
    }
}

fn get_value(r: &mut Rd<'_>, depth: u32) -> Result<Value, DecodeError> {
    Ok(match r.u8()? {
        T_NULL => Value::Null,
        T_FALSE => Value::Bool(false),
        T_TRUE => Value::Bool(true),
        T_INT => Value::Int(i64::from_le_bytes(r.arr()?)),
        T_FLOAT => Value::Float(f64::from_le_bytes(r.arr()?)),
        T_STR => Value::Str(Str::from(r.str()?)),
        T_ARRAY => {
            if depth >= MAX_DEPTH {
                return Err("arrays nested too deep");
            }
            // Every element takes at least one byte: the length cannot
            // claim more elements than bytes are left.
            let n = r.len()?;
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(get_value(r, depth + 1)?);
            }
            Value::Array(a)
        }
        _ => return Err("unknown value tag"),
    })
}

/// Finds the cipher of a subject key id; `None` when the key was erased.
pub type Opener<'a> = dyn FnMut(&[u8; 16]) -> Option<Cipher> + 'a;

fn open_sealed(
    r: &mut Rd<'_>,
    path: &[u8],
    open: &mut Opener<'_>,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let key_id: [u8; 16] = r.arr()?;
    let nonce: [u8; NONCE_LEN] = r.arr()?;
    let ct = r.bytes()?;
    if ct.len() < TAG_LEN {
        return Err("sealed value too short");
    }
    let Some(cipher) = open(&key_id) else {
        return Ok(None);
    };
    let mut buf = ct.to_vec();
    let n = cipher
        .open_in_place(&nonce, &aad(&key_id, path), &mut buf)
        .ok_or("sealed value does not authenticate under its subject key")?
        .len();
    buf.truncate(n);
    Ok(Some(buf))
}

/// Decodes a payload written by [`encode_event`] (version 2, or version 1
/// from older writers). Sealed fields whose key is gone read as [`ERASED`].
pub fn decode_event(b: &[u8], open: &mut Opener<'_>) -> Result<Event, DecodeError> {
    let mut r = Rd { b, pos: 0 };
    let version = r.u8()?;
    if version != V1 && version != FORMAT_VERSION {
        return Err("unknown payload version");
    }
    let time = Timestamp(i64::from_le_bytes(r.arr()?));
    let received = Timestamp(i64::from_le_bytes(r.arr()?));
    let source = SourceId(u32::from_le_bytes(r.arr()?));
    let line = u64::from_le_bytes(r.arr()?);
    let (fields, raw) = if version == V1 {
        fields_v1(&mut r, open)?
    } else {
        fields_v2(&mut r, open)?
    };
    if r.pos != b.len() {
        return Err("trailing bytes after event");
    }
    Ok(Event {
        time,
        received,
        source,
        line,
        fields,
        raw,
    })
}

type Body = (Fields, Option<Arc<str>>);

/// Version 1: each sealed field (and the raw line) is its own blob.
fn fields_v1(r: &mut Rd<'_>, open: &mut Opener<'_>) -> Result<Body, DecodeError> {
    let n = r.len()?;
    let mut fields = Fields::with_capacity(n.min(64));
    for _ in 0..n {
        let k = r.str()?;
        let v = if r.b.get(r.pos) == Some(&T_SEALED) {
            r.pos += 1;
            match open_sealed(r, k.as_bytes(), open)? {
                None => Value::Str(Str::const_new(ERASED)),
                Some(pt) => {
                    let mut inner = Rd { b: &pt, pos: 0 };
                    let v = get_value(&mut inner, 0)?;
                    if inner.pos != pt.len() {
                        return Err("trailing bytes in sealed value");
                    }
                    v
                }
            }
        } else {
            get_value(r, 0)?
        };
        fields.push(Str::from(k), v);
    }
    let raw: Option<Arc<str>> = match r.u8()? {
        RAW_NONE => None,
        RAW_PLAIN => Some(Arc::from(r.str()?)),
        RAW_SEALED => match open_sealed(r, b"\0raw", open)? {
            None => Some(Arc::from(ERASED)),
            Some(pt) => Some(Arc::from(
                String::from_utf8(pt).map_err(|_| "raw line is not UTF-8")?,
            )),
        },
        _ => return Err("unknown raw-line tag"),
    };
    Ok((fields, raw))
}

/// Version 2: sealed fields name their group; the groups follow the raw-line
/// tag, each one AEAD message holding its fields' values in field order
/// (and, for group 0, the raw line after them).
fn fields_v2(r: &mut Rd<'_>, open: &mut Opener<'_>) -> Result<Body, DecodeError> {
    let n = r.len()?;
    // (path, value or the group it is sealed in); every entry took at least
    // two bytes of input, so `n` cannot claim more than the input holds.
    let mut entries: Vec<(&str, Result<Value, usize>)> = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let k = r.str()?;
        let v = if r.b.get(r.pos) == Some(&T_IN_GROUP) {
            r.pos += 1;
            Err(usize::try_from(r.varint()?).map_err(|_| "bad sealed group")?)
        } else {
            Ok(get_value(r, 0)?)
        };
        entries.push((k, v));
    }
    let raw_tag = r.u8()?;
    let mut raw: Option<Arc<str>> = match raw_tag {
        RAW_NONE | RAW_IN_GROUP => None,
        RAW_PLAIN => Some(Arc::from(r.str()?)),
        _ => return Err("unknown raw-line tag"),
    };
    let groups = r.len()?;
    if groups == 0 {
        return Err("version 2 payload without sealed groups");
    }
    if entries
        .iter()
        .any(|(_, v)| matches!(v, Err(g) if *g >= groups))
    {
        return Err("field names a sealed group that is not there");
    }
    let mut aad = Vec::new();
    for g in 0..groups {
        let with_raw = g == 0 && raw_tag == RAW_IN_GROUP;
        let mut members = entries
            .iter_mut()
            .filter(|(_, v)| matches!(v, Err(m) if *m == g))
            .peekable();
        if members.peek().is_none() && !with_raw {
            return Err("sealed group without fields");
        }
        let key_id: [u8; 16] = r.arr()?;
        let nonce: [u8; NONCE_LEN] = r.arr()?;
        let ct = r.bytes()?;
        if ct.len() < TAG_LEN {
            return Err("sealed group too short");
        }
        let Some(cipher) = open(&key_id) else {
            for (_, v) in members {
                *v = Ok(Value::Str(Str::const_new(ERASED)));
            }
            if with_raw {
                raw = Some(Arc::from(ERASED));
            }
            continue;
        };
        let mut members: Vec<_> = members.collect();
        group_aad(
            &mut aad,
            &key_id,
            with_raw,
            &mut members.iter().map(|(k, _)| *k),
        );
        let mut buf = ct.to_vec();
        let pt = cipher
            .open_in_place(&nonce, &aad, &mut buf)
            .ok_or("sealed group does not authenticate under its subject key")?;
        let mut inner = Rd { b: pt, pos: 0 };
        for (_, v) in &mut members {
            *v = Ok(get_value(&mut inner, 0)?);
        }
        if with_raw {
            raw = Some(Arc::from(inner.str()?));
        }
        if inner.pos != inner.b.len() {
            return Err("trailing bytes in sealed group");
        }
    }
    let mut fields = Fields::with_capacity(entries.len());
    for (k, v) in entries {
        // Every group was resolved above (or the payload refused).
        fields.push(Str::from(k), v.map_err(|_| "unresolved sealed field")?);
    }
    Ok((fields, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        let mut f = Fields::new();
        f.insert("event", Value::from("auth.login_failed"));
        f.insert("fields.email", Value::from("alice@example.com"));
        f.insert("fields.attempt", Value::Int(3));
        f.insert("fields.ratio", Value::Float(0.5));
        f.insert("fields.ok", Value::Bool(false));
        f.insert(
            "fields.tags",
            Value::Array(vec![Value::from("a"), Value::Null, Value::Array(vec![])]),
        );
        let mut e = Event::new(Timestamp(1_700_000_000_000), f);
        e.raw = Some(Arc::from("login failed for alice@example.com"));
        e.line = 7;
        e.source = SourceId(2);
        e
    }

    #[test]
    fn round_trip_plain_and_sealed_and_erased() {
        let e = ev();
        let mut n = NonceCounter::new([1; 12]);
        let mut out = Vec::new();
        encode_event(&e, &mut |_, _| Ok(None), &mut n, &mut out).unwrap();
        assert_eq!(decode_event(&out, &mut |_| None).unwrap(), e);

        let c = Cipher::new(&[3; 32]);
        let mut out = Vec::new();
        let mut sealer =
            |p: &str, _: &Value| Ok((p == "fields.email").then(|| ([5; 16], c.clone())));
        encode_event(&e, &mut sealer, &mut n, &mut out).unwrap();
        assert!(!out.windows(5).any(|w| w == b"alice"));
        let got = decode_event(&out, &mut |id| (id == &[5; 16]).then(|| c.clone())).unwrap();
        assert_eq!(got, e);
        let erased = decode_event(&out, &mut |_| None).unwrap();
        assert_eq!(erased.get("fields.email"), Some(&Value::from(ERASED)));
        assert_eq!(erased.raw.as_deref(), Some(ERASED));
        assert_eq!(erased.get("fields.attempt"), Some(&Value::Int(3)));
    }

    /// The version-1 writer (one blob per sealed field), kept to prove
    /// that payloads written before version 2 still read.
    fn encode_v1(ev: &Event, key: &([u8; 16], Cipher), sealed: &[&str], out: &mut Vec<u8>) {
        let mut nonces = NonceCounter::new([9; 12]);
        let mut seal = |out: &mut Vec<u8>, path: &[u8], plain: &[u8]| {
            let nonce = nonces.next_nonce();
            let mut buf = plain.to_vec();
            key.1.seal_tail(&nonce, &aad(&key.0, path), &mut buf, 0);
            out.extend_from_slice(&key.0);
            out.extend_from_slice(&nonce);
            put_bytes(out, &buf);
        };
        out.push(V1);
        out.extend_from_slice(&ev.time.0.to_le_bytes());
        out.extend_from_slice(&ev.received.0.to_le_bytes());
        out.extend_from_slice(&ev.source.0.to_le_bytes());
        out.extend_from_slice(&ev.line.to_le_bytes());
        put_varint(out, ev.fields.len() as u64);
        for (k, v) in ev.fields.iter() {
            put_bytes(out, k.as_bytes());
            if sealed.contains(&k) {
                out.push(T_SEALED);
                let mut plain = Vec::new();
                put_value(&mut plain, v);
                seal(out, k.as_bytes(), &plain);
            } else {
                put_value(out, v);
            }
        }
        let raw = ev.raw.as_deref().unwrap_or_default();
        out.push(RAW_SEALED);
        seal(out, b"\0raw", raw.as_bytes());
    }

    #[test]
    fn version_1_payloads_still_read() {
        let e = ev();
        let c = Cipher::new(&[3; 32]);
        let mut out = Vec::new();
        encode_v1(
            &e,
            &([5; 16], c.clone()),
            &["fields.email", "fields.ok"],
            &mut out,
        );
        let got = decode_event(&out, &mut |id| (id == &[5; 16]).then(|| c.clone())).unwrap();
        assert_eq!(got, e);
        let erased = decode_event(&out, &mut |_| None).unwrap();
        assert_eq!(erased.get("fields.email"), Some(&Value::from(ERASED)));
        assert_eq!(erased.get("fields.ok"), Some(&Value::from(ERASED)));
        assert_eq!(erased.raw.as_deref(), Some(ERASED));
        assert_eq!(erased.get("fields.attempt"), Some(&Value::Int(3)));
    }

    /// Fields under two keys make two groups, one AEAD message each; erasing
    /// one key erases exactly its fields (and the raw line with group 0);
    /// a group does not open under the other key or with its fields renamed.
    #[test]
    fn groups_per_key() {
        let e = ev();
        let (a, b) = (Cipher::new(&[3; 32]), Cipher::new(&[4; 32]));
        let mut n = NonceCounter::new([1; 12]);
        let mut out = Vec::new();
        let mut sealer = |p: &str, _: &Value| {
            Ok(match p {
                "fields.email" | "fields.ratio" => Some(([1; 16], a.clone())),
                "fields.ok" => Some(([2; 16], b.clone())),
                _ => None,
            })
        };
        encode_event(&e, &mut sealer, &mut n, &mut out).unwrap();
        assert_eq!(out[0], FORMAT_VERSION);
        assert!(!out.windows(5).any(|w| w == b"alice"));
        let both = |id: &[u8; 16]| match id {
            [1, ..] => Some(a.clone()),
            [2, ..] => Some(b.clone()),
            _ => None,
        };
        assert_eq!(decode_event(&out, &mut |id| both(id)).unwrap(), e);
        let only_b = decode_event(&out, &mut |id| both(id).filter(|_| id[0] == 2)).unwrap();
        assert_eq!(only_b.get("fields.email"), Some(&Value::from(ERASED)));
        assert_eq!(only_b.get("fields.ratio"), Some(&Value::from(ERASED)));
        assert_eq!(only_b.raw.as_deref(), Some(ERASED));
        assert_eq!(only_b.get("fields.ok"), Some(&Value::Bool(false)));
        let only_a = decode_event(&out, &mut |id| both(id).filter(|_| id[0] == 1)).unwrap();
        assert_eq!(only_a.get("fields.ok"), Some(&Value::from(ERASED)));
        assert_eq!(only_a.get("fields.email"), e.get("fields.email"));
        assert_eq!(only_a.raw, e.raw);
        // Wrong key for a group: refused, not read as erased.
        assert!(decode_event(&out, &mut |_| Some(a.clone())).is_err());
        // A field renamed (same length) breaks its group's AAD.
        let at = out.windows(12).position(|w| w == b"fields.email").unwrap();
        let mut renamed = out.clone();
        renamed[at + 7] = b'E';
        assert!(decode_event(&renamed, &mut |id| both(id)).is_err());
    }

    #[test]
    fn encoded_lengths_are_exact() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        let e = ev();
        for (_, v) in e.fields.iter() {
            let mut b = Vec::new();
            put_value(&mut b, v);
            assert_eq!(value_len(v), b.len(), "{v:?}");
        }
        let long = Value::from("x".repeat(300).as_str());
        let mut b = Vec::new();
        put_value(&mut b, &long);
        assert_eq!(value_len(&long), b.len());
    }

    #[test]
    fn truncations_never_panic() {
        let mut out = Vec::new();
        let mut n = NonceCounter::new([0; 12]);
        encode_event(&ev(), &mut |_, _| Ok(None), &mut n, &mut out).unwrap();
        for i in 0..out.len() {
            assert!(decode_event(&out[..i], &mut |_| None).is_err());
        }
        let c = Cipher::new(&[3; 32]);
        let mut out = Vec::new();
        let mut sealer = |p: &str, _: &Value| Ok(p.contains('e').then(|| ([5; 16], c.clone())));
        encode_event(&ev(), &mut sealer, &mut n, &mut out).unwrap();
        for i in 0..out.len() {
            assert!(decode_event(&out[..i], &mut |_| Some(c.clone())).is_err());
            assert!(decode_event(&out[..i], &mut |_| None).is_err());
        }
    }
}
