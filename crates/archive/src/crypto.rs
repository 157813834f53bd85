//! Keys and the three primitives the archive uses: AES-256-GCM (records,
//! personal fields, wrapped keys), SHA-256 (the hash chain, key ids) and
//! Ed25519 (checkpoints). All RustCrypto "new generation" crates (aead 0.6,
//! digest 0.11), matching the sha2 0.11 / hmac 0.13 the workspace already uses.
//!
//! AES-256-GCM rather than XChaCha20-Poly1305: record nonces are derived from
//! the record sequence number under a data key used by exactly one segment
//! file (never reopened for append), so the 96-bit nonce is never reused and
//! AES-NI makes it the faster choice. Only the rare random nonces (key
//! wrapping, personal fields) come from the OS or a per-writer random counter.
//!
//! This module does not decide *what* is encrypted or where keys are stored.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const TAG_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
/// Nonce, wrapped 32-byte key, tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Key(format!("no randomness from the OS: {e}")))
}

pub fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    random(&mut b)?;
    Ok(b)
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let v = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
        .collect()
}

pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex(s)?.try_into().ok()
}

/// One AES block (also a GHASH block and a GCM tag).
type Block = aes_gcm::aes::Block;

/// Counter blocks encrypted per call into the AES backend. The backend has a
/// fixed cost per call (with VAES it broadcasts all round keys first), which
/// for the short messages of the archive (one event, one subject's fields)
/// dominated the whole AES-GCM operation when every message paid it twice
/// (tag mask, then keystream). Encrypting a message's tag mask and its
/// counter blocks in one call pays it once; 64 blocks is the VAES-512
/// backend's parallel width.
const KS_BLOCKS: usize = 64;

/// A 256-bit AES-GCM key with its cipher state.
///
/// This is standard AES-256-GCM (NIST SP 800-38D, 96-bit nonce, 128-bit
/// tag; bit-for-bit what `aes_gcm::Aes256Gcm` produces, which the tests
/// check) composed from the RustCrypto AES block cipher and GHASH rather
/// than taken from `aes-gcm`'s AEAD, for two reasons: `aes-gcm` calls the
/// block cipher twice per message (see [`KS_BLOCKS`]), and it cannot check a
/// tag without also decrypting, while `verify` only needs the tag
/// ([`TagBatch`]). Cloning is a reference-count increment: the writer hands
/// a subject's cipher to every record that seals under it.
#[derive(Clone)]
pub struct Cipher(Arc<CipherInner>);

struct CipherInner {
    aes: Aes256,
    /// GHASH keyed with H = AES_K(0¹²⁸).
    ghash: GHash,
}

/// J0 ‖ counter for a 96-bit nonce: nonce ‖ 32-bit big-endian counter
/// (J0 is counter 1; the keystream starts at 2).
fn counter_block(nonce: &[u8; NONCE_LEN], ctr: u32) -> Block {
    let mut b = Block::default();
    b[..NONCE_LEN].copy_from_slice(nonce);
    b[NONCE_LEN..].copy_from_slice(&ctr.to_be_bytes());
    b
}

/// Equality without an early exit, so the time taken does not say how many
/// leading tag bytes were right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(&(*key).into());
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        Cipher(Arc::new(CipherInner { aes, ghash }))
    }

    /// GHASH_H(aad, ct): the tag before it is masked with AES_K(J0).
    fn ghash(&self, aad: &[u8], ct: &[u8]) -> Block {
        let mut g = self.0.ghash.clone();
        g.update_padded(aad);
        g.update_padded(ct);
        let mut lens = Block::default();
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
        g.update(&[lens]);
        g.finalize()
    }

    /// XORs the CTR keystream (counters 2, 3, …) into `data` and returns the
    /// tag mask AES_K(J0), encrypted in the same call as the first counters.
    fn ctr_xor(&self, nonce: &[u8; NONCE_LEN], data: &mut [u8]) -> Block {
        let mut ks = [Block::default(); KS_BLOCKS];
        let mut mask = Block::default();
        let mut ctr: u32 = 1;
        let mut first = true;
        let mut chunks = data.chunks_mut(16);
        loop {
            let want = chunks.len() + usize::from(first);
            let n = want.min(KS_BLOCKS);
            for b in &mut ks[..n] {
                *b = counter_block(nonce, ctr);
                ctr = ctr.wrapping_add(1);
            }
            self.0.aes.encrypt_blocks(&mut ks[..n]);
            let mut stream = ks[..n].iter();
            if first {
                mask = stream.next().copied().unwrap_or_default();
                first = false;
            }
            for (k, chunk) in stream.zip(chunks.by_ref()) {
                if let Ok(full) = <&mut [u8; 16]>::try_from(&mut *chunk) {
                    // Whole blocks as one 128-bit XOR.
                    let x = u128::from_ne_bytes(*full) ^ u128::from_ne_bytes(k.0);
                    *full = x.to_ne_bytes();
                } else {
                    for (d, k) in chunk.iter_mut().zip(k.iter()) {
                        *d ^= *k;
                    }
                }
            }
            if chunks.len() == 0 {
                return mask;
            }
        }
    }

    /// Encrypts `buf[from..]` in place and appends the tag.
    pub fn seal_tail(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>, from: usize) {
        let mask = self.ctr_xor(nonce, &mut buf[from..]);
        let mut tag = self.ghash(aad, &buf[from..]);
        for (t, m) in tag.iter_mut().zip(mask.iter()) {
            *t ^= *m;
        }
        buf.extend_from_slice(&tag);
    }

    /// Decrypts `ct_and_tag` in place; returns the plaintext slice, or
    /// `None` (with the ciphertext left as it was) when the tag is wrong.
    pub fn open_in_place<'a>(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        let split = ct_and_tag.len().checked_sub(TAG_LEN)?;
        let (ct, tag) = ct_and_tag.split_at_mut(split);
        let mut want = self.ghash(aad, ct);
        // One block-cipher call gives the mask and the keystream; the
        // plaintext is only returned once the tag checked out.
        let mask = self.ctr_xor(nonce, ct);
        for (w, m) in want.iter_mut().zip(mask.iter()) {
            *w ^= *m;
        }
        if ct_eq(&want, tag) {
            Some(ct)
        } else {
            // Put the ciphertext back: callers never see unauthenticated plaintext.
            self.ctr_xor(nonce, ct);
            None
        }
    }
}

/// Checks the tags of many messages under one key without decrypting them
/// (what `verify` needs: it authenticates records it does not read). GHASH
/// runs per message as it is pushed; the tag masks AES_K(J0) of up to
/// [`KS_BLOCKS`] messages are computed in one block-cipher call at
/// [`check`](Self::check).
pub struct TagBatch {
    cipher: Cipher,
    j0: [Block; KS_BLOCKS],
    /// GHASH ⊕ stored tag per message: equals AES_K(J0) iff the tag is right.
    want: [Block; KS_BLOCKS],
    n: usize,
}

impl TagBatch {
    pub fn new(cipher: Cipher) -> Self {
        TagBatch {
            cipher,
            j0: [Block::default(); KS_BLOCKS],
            want: [Block::default(); KS_BLOCKS],
            n: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.n == KS_BLOCKS
    }

    /// Queues one message. `false` when it cannot be checked at all (shorter
    /// than a tag) or the batch is full: the caller checks first.
    pub fn push(&mut self, nonce: &[u8; NONCE_LEN], aad: &[u8], ct_and_tag: &[u8]) -> bool {
        let Some(split) = ct_and_tag.len().checked_sub(TAG_LEN) else {
            return false;
        };
        if self.is_full() {
            return false;
        }
        let (ct, tag) = ct_and_tag.split_at(split);
        let mut w = self.cipher.ghash(aad, ct);
        for (w, t) in w.iter_mut().zip(tag) {
            *w ^= *t;
        }
        self.want[self.n] = w;
        self.j0[self.n] = counter_block(nonce, 1);
        self.n += 1;
        true
    }

    /// Checks every queued message and empties the batch; returns the index
    /// (in push order) of the first one whose tag is wrong.
    pub fn check(&mut self) -> Option<usize> {
        let n = std::mem::take(&mut self.n);
        let masks = &mut self.j0[..n];
        self.cipher.0.aes.encrypt_blocks(masks);
        masks
            .iter()
            .zip(&self.want[..n])
            .position(|(m, w)| !ct_eq(m, w))
    }
}

/// The key that wraps (encrypts) the per-segment data keys and the
/// per-subject keys. Identified by the first 8 bytes of a hash of it, so the
/// key file says which master key each entry needs without revealing it.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Cipher,
    id: [u8; 8],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", hex(&self.id))
    }
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let h = sha256(&[b"secmon-archive master key id\0", &key]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        MasterKey {
            cipher: Cipher::new(&key),
            id,
        }
    }

    /// Parses 64 hex digits (surrounding whitespace allowed), the content of
    /// a key file or the value of an environment variable.
    pub fn parse(text: &str) -> Result<Self> {
        unhex32(text)
            .map(Self::from_bytes)
            .ok_or_else(|| Error::Key("a master key is 64 hex digits (32 bytes)".into()))
    }

    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(random_array()?))
    }

    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Wraps a 32-byte key: nonce ‖ ciphertext ‖ tag, bound to `aad`.
    pub fn wrap(&self, aad: &[u8], key: &[u8; 32]) -> Result<[u8; WRAPPED_LEN]> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        let mut buf = Vec::with_capacity(48);
        buf.extend_from_slice(key);
        self.cipher.seal_tail(&nonce, aad, &mut buf, 0);
        let mut out = [0u8; WRAPPED_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..].copy_from_slice(&buf);
        Ok(out)
    }

    pub fn unwrap_key(&self, aad: &[u8], wrapped: &[u8; WRAPPED_LEN]) -> Option<[u8; 32]> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut body = wrapped[NONCE_LEN..].to_vec();
        let pt = self.cipher.open_in_place(&nonce, aad, &mut body)?;
        pt.try_into().ok()
    }

    /// A MAC of `data` (AES-GCM over no plaintext), to authenticate small
    /// headers such as the key file's epoch.
    pub fn mac(&self, nonce: &[u8; NONCE_LEN], data: &[u8]) -> [u8; TAG_LEN] {
        let mut buf = Vec::with_capacity(TAG_LEN);
        self.cipher.seal_tail(nonce, data, &mut buf, 0);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&buf);
        t
    }
}

/// The archive's keys, loaded by the caller from files or environment
/// variables and handed in.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Wraps the data keys of new segments and new subject keys.
    pub master: MasterKey,
    /// Older master keys still needed to unwrap keys that `rotate_key` has
    /// not re-wrapped yet.
    pub previous: Vec<MasterKey>,
    /// Signs checkpoints. Separate from the encryption keys: whoever can
    /// decrypt (and re-encrypt) the archive still cannot forge checkpoints.
    /// `None` opens for reading and verifying only.
    pub signing: Option<SigningKeyBox>,
    /// The public key checkpoints must verify against.
    pub verifying: VerifyingKeyBox,
}

impl Keys {
    /// Keys for a writer: the verifying key is derived from the signing key.
    pub fn new(master: MasterKey, signing: SigningKeyBox) -> Self {
        let verifying = signing.verifying();
        Keys {
            master,
            previous: Vec::new(),
            signing: Some(signing),
            verifying,
        }
    }

    pub fn master_by_id(&self, id: &[u8; 8]) -> Option<&MasterKey> {
        std::iter::once(&self.master)
            .chain(&self.previous)
            .find(|k| &k.id == id)
    }
}

/// An Ed25519 signing key (kept out of `Debug` output).
#[derive(Clone)]
pub struct SigningKeyBox(SigningKey);

impl fmt::Debug for SigningKeyBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.verifying().to_hex())
    }
}

impl SigningKeyBox {
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        SigningKeyBox(SigningKey::from_bytes(&seed))
    }
    /// 64 hex digits: the 32-byte Ed25519 seed.
    pub fn parse(text: &str) -> Result<Self> {
        unhex32(text)
            .map(Self::from_bytes)
            .ok_or_else(|| Error::Key("a signing key is 64 hex digits (32-byte seed)".into()))
    }
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(random_array()?))
    }
    pub fn to_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }
    pub fn verifying(&self) -> VerifyingKeyBox {
        VerifyingKeyBox(self.0.verifying_key())
    }
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// An Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKeyBox(VerifyingKey);

impl fmt::Debug for VerifyingKeyBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.to_hex())
    }
}

impl VerifyingKeyBox {
    pub fn parse(text: &str) -> Result<Self> {
        let b =
            unhex32(text).ok_or_else(|| Error::Key("a verifying key is 64 hex digits".into()))?;
        VerifyingKey::from_bytes(&b)
            .map(VerifyingKeyBox)
            .map_err(|e| Error::Key(format!("not an Ed25519 public key: {e}")))
    }
    pub fn to_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.0
            .verify_strict(msg, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_binding() {
        let m = MasterKey::from_bytes([7; 32]);
        let w = m.wrap(b"aad", &[9; 32]).unwrap();
        assert_eq!(m.unwrap_key(b"aad", &w), Some([9; 32]));
        assert_eq!(m.unwrap_key(b"other", &w), None);
        let other = MasterKey::from_bytes([8; 32]);
        assert_eq!(other.unwrap_key(b"aad", &w), None);
    }

    /// The composed AES-GCM is bit-for-bit `aes_gcm::Aes256Gcm` (archives
    /// written before it stay readable), at every length around the block
    /// and batch boundaries; a wrong tag, AAD or nonce is refused and leaves
    /// the ciphertext untouched; [`TagBatch`] agrees with `open_in_place`.
    #[test]
    fn gcm_matches_reference_and_refuses_forgeries() {
        use aes_gcm::aead::{AeadInOut, KeyInit as _};
        let key = [0x42; 32];
        let ours = Cipher::new(&key);
        let reference = aes_gcm::Aes256Gcm::new(&key.into());
        let mut batch = TagBatch::new(ours.clone());
        let mut sealed_all = Vec::new();
        for len in (0..70).chain([255, 256, 1000, 1007, 1008, 1024, 1040, 4096, 70_001]) {
            let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| (i * 7 + len) as u8);
            let aad: Vec<u8> = (0..len % 23).map(|i| i as u8).collect();
            let pt: Vec<u8> = (0..len).map(|i| (i * 31 + 5) as u8).collect();
            let mut buf = pt.clone();
            ours.seal_tail(&nonce, &aad, &mut buf, 0);
            let mut want = pt.clone();
            let tag = reference
                .encrypt_inout_detached(&nonce.into(), &aad, (&mut want[..]).into())
                .unwrap();
            want.extend_from_slice(&tag);
            assert_eq!(buf, want, "len {len}");
            let mut opened = buf.clone();
            assert_eq!(
                ours.open_in_place(&nonce, &aad, &mut opened)
                    .map(|p| p.to_vec()),
                Some(pt.clone())
            );
            for flip in [0, buf.len() / 2, buf.len() - 1] {
                let mut bad = buf.clone();
                bad[flip] ^= 1;
                let before = bad.clone();
                assert!(ours.open_in_place(&nonce, &aad, &mut bad).is_none());
                assert_eq!(bad, before, "ciphertext restored");
            }
            let mut other = nonce;
            other[0] ^= 1;
            assert!(ours.open_in_place(&other, &aad, &mut buf.clone()).is_none());
            assert!(
                ours.open_in_place(&nonce, b"other aad", &mut buf.clone())
                    .is_none()
                    || aad == b"other aad"
            );
            sealed_all.push((nonce, aad, buf));
        }
        // Batches of any fill; a bad tag is found at its position.
        for bad_at in [None, Some(0), Some(5), Some(63)] {
            for chunk in sealed_all.chunks(64) {
                for (i, (nonce, aad, ct)) in chunk.iter().enumerate() {
                    let mut ct = ct.clone();
                    if bad_at == Some(i) {
                        ct[0] ^= 0x80;
                    }
                    assert!(batch.push(nonce, aad, &ct));
                }
                let want = bad_at.filter(|&i| i < chunk.len());
                assert_eq!(batch.check(), want);
            }
        }
        assert!(!batch.push(&[0; 12], b"", &[0; 15]), "shorter than a tag");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])).unwrap(),
            vec![0, 1, 0xab, 0xff]
        );
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
        assert!(MasterKey::parse("00").is_err());
        assert!(MasterKey::parse(&format!("{}\n", "ab".repeat(32))).is_ok());
    }

    #[test]
    fn signatures() {
        let s = SigningKeyBox::from_bytes([1; 32]);
        let sig = s.sign(b"m");
        assert!(s.verifying().verify(b"m", &sig));
        assert!(!s.verifying().verify(b"n", &sig));
        assert!(!s.verifying().verify(b"m", &sig[..10]));
    }
}
