//! `secmon archive …`: verify, search, export, prune, holds, erasure, key
//! rotation and checkpoint export over the archive in the data directory.
//! Each command opens the archive itself (taking its lock) and is recorded
//! in it as an audit record under the invoking user. While `secmon run`
//! holds the archive, `verify` checks it read-only and the rest say to use
//! the running daemon's API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use secmon_archive::{Access, Archive, Error as ArchiveError};
use secmon_core::Timestamp;

use crate::archive::{self, cli_who};
use crate::cli::ManageArgs;
use crate::config::Runtime;

#[derive(Debug, Subcommand)]
pub enum ArchiveCmd {
    /// Check every record, chain link, AEAD tag, checkpoint signature and the
    /// continuity between segments; exit 1 and name the first bad record on
    /// any problem.
    Verify {
        /// Also check against checkpoints exported earlier (detects a
        /// wholesale rewrite of the archive).
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        #[arg(long)]
        no_progress: bool,
    },
    /// Events matching a condition, as JSON lines (`{"category","seq","event"}`).
    Search(SearchArgs),
    /// Like search, recorded as an export.
    Export(SearchArgs),
    /// Remove segments past their category's retention (legal holds win).
    Prune,
    /// Crypto-shred a subject's personal fields (GDPR erasure).
    Erase {
        #[arg(long)]
        subject: String,
    },
    /// Re-wrap every segment key under the current master key (put the old
    /// key in `archive.keys.previous_master_key_files`).
    RotateKey,
    /// Write the signed checkpoints to FILE, to keep elsewhere.
    Checkpoints {
        #[arg(long, value_name = "FILE")]
        export: PathBuf,
    },
    /// Legal holds: block pruning and erasure.
    Hold {
        #[command(subcommand)]
        cmd: HoldCmd,
    },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// How far back (e.g. 24h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long)]
    until: Option<String>,
    /// Category (repeatable); default all but `audit`.
    #[arg(long)]
    category: Vec<String>,
    /// Condition, e.g. `event = auth.login_failed and fields.ip = 1.2.3.4`.
    #[arg(long = "where")]
    where_: Option<String>,
    #[arg(long, default_value_t = 0)]
    limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum HoldCmd {
    Add {
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        reason: String,
    },
    List,
    Release {
        id: u64,
    },
}

fn time(s: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    Timestamp::parse_when(s, now)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is neither an RFC 3339 time nor a duration ago"))
}

fn open(runtime: &Runtime, now: Timestamp) -> anyhow::Result<Result<Archive, ArchiveError>> {
    let section = &runtime.archive;
    let storage = archive::storage(section, &runtime.data_dir)?;
    let keys = archive::keys(section, &runtime.data_dir, false)?;
    let names: Vec<&str> = runtime.sources.iter().map(|s| s.name.as_str()).collect();
    let policy = section.policy(&names)?;
    Ok(Archive::open(storage, policy, keys, now).map(|(a, _)| a))
}

fn locked() -> anyhow::Error {
    anyhow::anyhow!(
        "the archive is held by a running `secmon run`: use its API (GET /v1/archive/search) or stop it"
    )
}

pub fn run(args: ManageArgs, cmd: ArchiveCmd) -> anyhow::Result<ExitCode> {
    let (_, mut runtime) = match super::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(d) = &args.data_dir {
        runtime.data_dir = d.clone();
    }
    let now = crate::clock::now();
    let who = cli_who();
    if let ArchiveCmd::Verify {
        checkpoints,
        no_progress,
    } = &cmd
    {
        return verify(&runtime, checkpoints.as_deref(), *no_progress, &who, now);
    }
    let mut a = match open(&runtime, now)? {
        Ok(a) => a,
        Err(ArchiveError::Locked(_)) => return Err(locked()),
        Err(e) => return Err(e).context("opening the archive"),
    };
    let code = match cmd {
        ArchiveCmd::Verify { .. } => ExitCode::SUCCESS,
        ArchiveCmd::Search(s) => search(&mut a, s, Access::Search, &who, now)?,
        ArchiveCmd::Export(s) => search(&mut a, s, Access::Export, &who, now)?,
        ArchiveCmd::Prune => {
            let r = a.prune(&who, now)?;
            for p in &r.removed {
                crate::outln!("removed {p}");
            }
            for (p, id) in &r.held {
                crate::outln!("kept {p} (legal hold {id})");
            }
            for p in &r.problems {
                eprintln!("problem: {p}");
            }
            crate::outln!(
                "{} segment(s), {} record(s) removed",
                r.removed.len(),
                r.records
            );
            if r.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        ArchiveCmd::Erase { subject } => match a.erase(&subject, &who, now) {
            Ok(r) => {
                crate::outln!(
                    "{}",
                    if r.found {
                        "erased: the subject's personal fields now read as erased"
                    } else {
                        "nothing was sealed under that subject (or it was erased before)"
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e @ ArchiveError::Held { .. }) => {
                eprintln!("refused: {e}");
                ExitCode::from(1)
            }
            Err(e) => return Err(e.into()),
        },
        ArchiveCmd::RotateKey => {
            let n = a.rotate_key(&who, now)?;
            crate::outln!("{n} segment key(s) re-wrapped under the current master key");
            ExitCode::SUCCESS
        }
        ArchiveCmd::Checkpoints { export } => {
            let bytes = a.export_checkpoints(&who, now)?;
            std::fs::write(&export, &bytes)
                .with_context(|| format!("writing {}", export.display()))?;
            crate::outln!(
                "{} bytes of signed checkpoints written to {}; keep them off this host",
                bytes.len(),
                export.display()
            );
            ExitCode::SUCCESS
        }
        ArchiveCmd::Hold { cmd } => match cmd {
            HoldCmd::Add {
                category,
                from,
                to,
                reason,
            } => {
                let from = from.map(|f| time(&f, now)).transpose()?;
                let to = to.map(|t| time(&t, now)).transpose()?;
                let id = a.add_hold(category.as_deref(), from, to, &reason, &who, now)?;
                crate::outln!("legal hold {id} added");
                ExitCode::SUCCESS
            }
            HoldCmd::List => {
                for h in a.holds() {
                    crate::outln!(
                        "{:>4}  {:<10} {} .. {}  by {}  {}",
                        h.id,
                        h.category.as_deref().unwrap_or("*"),
                        h.from.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                        h.to.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                        h.by,
                        h.reason
                    );
                }
                ExitCode::SUCCESS
            }
            HoldCmd::Release { id } => {
                a.release_hold(id, &who, now)?;
                crate::outln!("legal hold {id} released");
                ExitCode::SUCCESS
            }
        },
    };
    a.close(crate::clock::now())?;
    Ok(code)
}

fn search(
    a: &mut Archive,
    s: SearchArgs,
    access: Access,
    who: &str,
    now: Timestamp,
) -> anyhow::Result<ExitCode> {
    let pred = archive::predicate(s.where_.as_deref())?;
    let text = format!(
        "since={} until={} category={} where={} limit={}",
        s.since,
        s.until.as_deref().unwrap_or("-"),
        s.category.join(","),
        s.where_.as_deref().unwrap_or("-"),
        s.limit
    );
    let q = secmon_archive::Query {
        from: Some(time(&s.since, now)?),
        to: s.until.as_deref().map(|u| time(u, now)).transpose()?,
        categories: s.category,
        limit: s.limit,
        text,
    };
    let sum = a.search(&q, access, &*pred, who, now, &mut |hit| {
        let line = serde_json::json!({ "category": hit.category, "seq": hit.seq, "event": hit.event.to_json() });
        crate::outln!("{line}");
    })?;
    eprintln!(
        "{} hit(s), {} record(s) scanned{}",
        sum.hits,
        sum.scanned,
        if sum.damaged > 0 {
            format!(", {} damaged (run `secmon archive verify`)", sum.damaged)
        } else {
            String::new()
        }
    );
    Ok(if sum.damaged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn verify(
    runtime: &Runtime,
    checkpoints: Option<&std::path::Path>,
    no_progress: bool,
    who: &str,
    now: Timestamp,
) -> anyhow::Result<ExitCode> {
    let exported = checkpoints
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let bar = if no_progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    let mut progress = |p: &secmon_archive::Progress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = match open(runtime, now)? {
        Ok(mut a) => {
            let r = a.verify(exported.as_deref(), threads, who, now, &mut progress)?;
            a.close(crate::clock::now())?;
            r
        }
        Err(ArchiveError::Locked(_)) => {
            eprintln!(
                "note: the archive is held by a running secmon; verifying read-only (not recorded as an audit record)"
            );
            let storage = archive::storage(&runtime.archive, &runtime.data_dir)?;
            let keys = archive::keys(&runtime.archive, &runtime.data_dir, false)?;
            secmon_archive::verify_archive_with(
                &*storage,
                &keys,
                exported.as_deref(),
                threads,
                &mut progress,
            )?
        }
        Err(e) => {
            eprintln!("archive cannot be opened: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    bar.finish_and_clear();
    crate::outln!(
        "{} segment(s), {} record(s), {} bytes, {} checkpoint(s) checked",
        report.segments,
        report.records,
        report.bytes,
        report.checkpoints
    );
    match report.first_problem() {
        None => {
            crate::outln!("archive OK");
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            eprintln!("archive FAILED verification: {p}");
            for p in report.problems.iter().skip(1).take(20) {
                eprintln!("  also: {p}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
