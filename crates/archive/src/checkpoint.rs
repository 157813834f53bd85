//! Signed checkpoints: at a moment, for every category, the next sequence
//! number and the chain value reached, plus the state of the key file,
//! signed with Ed25519.
//!
//! Stored one per line in `checkpoints` as `{"payload":"<json>","sig":"<hex>"}`
//! (the signature covers the payload's exact bytes, so nothing depends on
//! re-serialising JSON). The same lines are the export format: copy them
//! elsewhere and `verify` can later prove the archive still extends them,
//! even if someone rewrote and re-signed it all. This module only encodes,
//! signs and parses; deciding when to checkpoint is the writer's, comparing
//! against the chain is `verify`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{SigningKeyBox, VerifyingKeyBox, hex};
use crate::keys::KeyFileState;

pub const CHECKPOINTS_PATH: &str = "checkpoints";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    /// Sequence number of the next record (= records so far).
    pub seq: u64,
    /// Chain value after record `seq - 1`, hex.
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Archive id, hex.
    pub archive: String,
    /// Checkpoint number, increasing.
    pub n: u64,
    /// Writer time (ms since the epoch).
    pub at: i64,
    pub reason: String,
    pub categories: BTreeMap<String, ChainPoint>,
    pub keys: KeyFileState,
}

#[derive(Serialize, Deserialize)]
struct Line {
    payload: String,
    sig: String,
}

impl Checkpoint {
    /// The signed line, newline included.
    pub fn to_line(&self, key: &SigningKeyBox) -> String {
        let payload = serde_json::to_string(self).unwrap_or_default();
        let sig = hex(&key.sign(payload.as_bytes()));
        let mut s = serde_json::to_string(&Line { payload, sig }).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A parsed line; `signed` says whether the signature verified.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub line: usize,
    pub checkpoint: Option<Checkpoint>,
    pub signed: bool,
    pub problem: Option<String>,
}

/// Parses checkpoint lines, checking signatures when `key` is given. A last
/// line without its newline is a torn write and reported via the returned
/// length of whole lines.
pub fn parse(bytes: &[u8], key: Option<&VerifyingKeyBox>) -> (Vec<Parsed>, usize) {
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for (i, raw) in bytes[..whole].split(|b| *b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let mut p = Parsed {
            line: i + 1,
            checkpoint: None,
            signed: false,
            problem: None,
        };
        match serde_json::from_slice::<Line>(raw) {
            Err(e) => p.problem = Some(format!("not a checkpoint line: {e}")),
            Ok(l) => {
                p.signed = key.is_none_or(|key| {
                    crate::crypto::unhex(&l.sig)
                        .is_some_and(|s| key.verify(l.payload.as_bytes(), &s))
                });
                match serde_json::from_str::<Checkpoint>(&l.payload) {
                    Ok(c) => p.checkpoint = Some(c),
                    Err(e) => p.problem = Some(format!("bad payload: {e}")),
                }
                if !p.signed && p.problem.is_none() {
                    p.problem = Some("signature does not verify with the configured key".into());
                }
            }
        }
        out.push(p);
    }
    (out, whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_tamper() {
        let k = SigningKeyBox::from_bytes([4; 32]);
        let mut c = Checkpoint {
            archive: "00".into(),
            n: 1,
            at: 5,
            reason: "interval".into(),
            categories: BTreeMap::new(),
            keys: KeyFileState {
                epoch: 0,
                len: 1,
                digest: "ab".into(),
            },
        };
        c.categories.insert(
            "auth".into(),
            ChainPoint {
                seq: 3,
                hash: hex(&[1; 32]),
            },
        );
        let mut text = c.to_line(&k);
        text.push_str(&c.to_line(&k));
        text.push_str("{\"payl");
        let (ps, whole) = parse(text.as_bytes(), Some(&k.verifying()));
        assert_eq!(ps.len(), 2);
        assert!(
            ps.iter()
                .all(|p| p.signed && p.checkpoint.as_ref() == Some(&c))
        );
        assert_eq!(whole, text.len() - 6);
        let forged = text.replacen("\\\"seq\\\":3", "\\\"seq\\\":4", 1);
        let (ps, _) = parse(forged.as_bytes(), Some(&k.verifying()));
        assert!(!ps[0].signed);
        let other = SigningKeyBox::from_bytes([5; 32]);
        let (ps, _) = parse(text.as_bytes(), Some(&other.verifying()));
        assert!(ps.iter().all(|p| !p.signed));
    }
}
