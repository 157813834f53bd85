//! secmon's log archive (seed 003, "Log Retention" and "Log Protection"):
//! every accepted event is kept for as long as its category requires, in
//! append-only segment files that are encrypted (AES-256-GCM under a
//! per-segment data key wrapped by a master key), hash-chained (SHA-256,
//! continuing across segments) and covered by Ed25519-signed checkpoints
//! that can be exported and checked later. Reads, exports, verifications,
//! prunes, holds, erasures and repairs are audit records in the archive
//! itself. Personal fields are sealed under per-subject keys so a subject can
//! be erased by destroying its key (crypto-shredding) without breaking the
//! chain.
//!
//! The crate is a library over a [`Storage`] trait: no clock (time is passed
//! in), no threads, no network. The binary wires configuration, keys, the
//! CLI and the HTTP API on top; see the crate README for the format and the
//! wiring.

mod archive;
mod checkpoint;
mod codec;
mod crypto;
mod error;
mod forge;
mod format;
mod fuzzing;
mod keys;
mod policy;
mod storage;
mod verify;

pub use archive::{
    Access, Archive, EraseReport, Hit, Hold, Lsn, OpenReport, PruneReport, Query, SearchSummary,
    SyncDone, SyncJob,
};
pub use checkpoint::{ChainPoint, Checkpoint};
pub use codec::ERASED;
pub use crypto::{Keys, MasterKey, SigningKeyBox as SigningKey, VerifyingKeyBox as VerifyingKey};
pub use error::{Error, Result};
pub use keys::KeyFileState;
pub use policy::{AUDIT, ArchiveConfig, Category, CategoryConfig, Policy, RouteConfig};
pub use storage::{AppendFile, FsStorage, LockGuard, MemStorage, Storage, SyncHandle};
pub use verify::{Problem, Progress, VerifyReport, verify_archive, verify_archive_with};

/// Building blocks exposed for the fuzz target and benchmarks; not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::codec::{NonceCounter, decode_event, encode_event};
    pub use crate::forge::rechain;
    pub use crate::fuzzing::{fixture as fuzz_fixture, run as fuzz_one};

    /// An AES-256-GCM key for codec tests.
    pub fn test_cipher(key: [u8; 32]) -> crate::crypto::Cipher {
        crate::crypto::Cipher::new(&key)
    }
    pub use crate::format::{Frames, Next, RawRecord, SegmentHeader, chain, genesis};
}
