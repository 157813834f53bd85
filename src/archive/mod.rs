//! The log archive in the binary: the `archive:` configuration section, where
//! the keys come from, and the writer thread of `secmon run`. The archive
//! itself — format, chain, encryption, retention, erasure — is
//! `secmon-archive`; this module only connects it to files, the clock and
//! the daemon's threads.
//!
//! Keys: the master (encryption) key and the signing key come from files
//! (or the master from an environment variable). When none is configured,
//! `run` generates both under `DATA_DIR/keys/` on first start and says so:
//! that works out of the box, but real tamper evidence needs the signing key
//! — and exported checkpoints — kept away from the archive's host.

pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use secmon_archive::{ArchiveConfig, FsStorage, Keys, MasterKey, Policy, SigningKey, Storage};
use serde::Deserialize;

/// The `archive:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Archive every event `run` accepts. Default true.
    pub enabled: bool,
    /// Where segments live (ideally their own mount). Default `DATA_DIR/archive`.
    pub dir: Option<PathBuf>,
    pub keys: KeySources,
    /// Categories, retention, routing, group commit, checkpoints, personal
    /// fields (see crates/archive/README.md).
    pub policy: ArchiveConfig,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        ArchiveSection {
            enabled: true,
            dir: None,
            keys: KeySources::default(),
            policy: ArchiveConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySources {
    /// File holding the 64-hex-digit master key.
    pub master_key_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub master_key_env: Option<String>,
    /// Older master keys, during a rotation.
    pub previous_master_key_files: Vec<PathBuf>,
    /// File holding the Ed25519 signing key (hex). Keep it off the archive's disk.
    pub signing_key_file: Option<PathBuf>,
}

impl ArchiveSection {
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("archive"))
    }

    pub fn policy(&self, source_names: &[&str]) -> anyhow::Result<Policy> {
        self.policy
            .validate(source_names)
            .map_err(|e| anyhow::anyhow!("archive.policy: {e}"))
    }
}

fn read_key(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))
}

/// Writes a new secret file readable only by its owner.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn random_hex32() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// The keys, from the configured sources or the generated defaults under
/// `DATA_DIR/keys` (created when `create` and missing).
pub fn keys(section: &ArchiveSection, data_dir: &Path, create: bool) -> anyhow::Result<Keys> {
    let k = &section.keys;
    let default_dir = data_dir.join("keys");
    let master_text = if let Some(var) = &k.master_key_env {
        std::env::var(var)
            .with_context(|| format!("archive.keys.master_key_env: {var} is not set"))?
    } else {
        let path = k
            .master_key_file
            .clone()
            .unwrap_or_else(|| default_dir.join("archive-master.key"));
        if !path.exists() && create && k.master_key_file.is_none() {
            write_secret(&path, &random_hex32())?;
            tracing::warn!(event = "secmon.archive_key_generated", path = %path.display(), "generated an archive master key; back it up: without it the archive cannot be read");
        }
        read_key(&path)?
    };
    let master =
        MasterKey::parse(&master_text).map_err(|e| anyhow::anyhow!("archive master key: {e}"))?;
    let signing_path = k
        .signing_key_file
        .clone()
        .unwrap_or_else(|| default_dir.join("archive-signing.key"));
    if !signing_path.exists() && create && k.signing_key_file.is_none() {
        let key = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        write_secret(&signing_path, &key.to_hex())?;
        tracing::warn!(event = "secmon.archive_key_generated", path = %signing_path.display(), "generated an archive signing key; keep a copy and exported checkpoints on another host for real tamper evidence");
    }
    let signing = SigningKey::parse(&read_key(&signing_path)?)
        .map_err(|e| anyhow::anyhow!("archive signing key: {e}"))?;
    let mut keys = Keys::new(master, signing);
    for p in &k.previous_master_key_files {
        keys.previous.push(
            MasterKey::parse(&read_key(p)?).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        );
    }
    Ok(keys)
}

pub fn storage(section: &ArchiveSection, data_dir: &Path) -> anyhow::Result<Arc<dyn Storage>> {
    let dir = section.dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fs = FsStorage::new(&dir)
        .with_context(|| format!("opening archive directory {}", dir.display()))?;
    Ok(Arc::new(fs))
}

/// The principal recorded in audit records for CLI use: `$SUDO_USER` or
/// `$USER`, with the host.
pub fn cli_who() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        format!("cli:{user}")
    } else {
        format!("cli:{user}@{host}")
    }
}

/// Compiles a `--where` expression with the engine's condition language.
pub fn predicate(expr: Option<&str>) -> anyhow::Result<writer::Predicate> {
    match expr {
        None => Ok(Box::new(|_| true)),
        Some(e) => {
            let c = secmon_engine::parse_expr(e).map_err(|e| anyhow::anyhow!("--where: {e}"))?;
            Ok(Box::new(move |ev| c.matches(ev)))
        }
    }
}

/// Guards against an archive directory that is the data directory itself.
pub fn check_dir(section: &ArchiveSection, data_dir: &Path) -> anyhow::Result<()> {
    if section.dir(data_dir) == data_dir {
        bail!("archive.dir must not be the data directory itself");
    }
    Ok(())
}
