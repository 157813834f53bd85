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

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
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

/// A 256-bit AES-GCM key with its cipher state.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher {
            aead: Aes256Gcm::new(&(*key).into()),
        }
    }

    /// Encrypts `buf[from..]` in place and appends the tag.
    pub fn seal_tail(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>, from: usize) {
        let n = Nonce::from(*nonce);
        // The only failure is a plaintext over 64 GiB, which a record cannot be.
        let tag = self
            .aead
            .encrypt_inout_detached(&n, aad, (&mut buf[from..]).into())
            .unwrap_or_default();
        buf.extend_from_slice(&tag);
    }

    /// Decrypts `ct_and_tag` in place; returns the plaintext slice.
    pub fn open_in_place<'a>(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        let split = ct_and_tag.len().checked_sub(TAG_LEN)?;
        let (ct, tag) = ct_and_tag.split_at_mut(split);
        let tag = Tag::try_from(&*tag).ok()?;
        let n = Nonce::from(*nonce);
        self.aead
            .decrypt_inout_detached(&n, aad, ct.into(), &tag)
            .ok()?;
        Some(ct)
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
