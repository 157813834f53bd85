//! secmon-gen: deterministic benchmark inputs with ground truth.
//!
//! ```text
//! secmon-gen json --events 1000000 --ips 100000 --out bench/out/events.jsonl
//! secmon-gen json --events 1000000 --distinct-keys 1000000 --out bench/out/distinct.jsonl
//! secmon-gen sshd --lines 1000000 --out bench/out/auth.log
//! ```
//! Each writes `<out>.truth.json` beside the output.

mod json;
mod sshd;
mod util;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "secmon-gen",
    about = "Deterministic benchmark inputs for secmon, with ground truth"
)]
struct Cli {
    /// PRNG seed: same seed, same bytes.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Output file; the ground truth goes to `<out>.truth.json`.
    #[arg(long, global = true, default_value = "-")]
    out: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seed-003 JSON events, one per line.
    Json {
        #[arg(long)]
        events: u64,
        /// Distinct background source IPs.
        #[arg(long, default_value_t = 100_000)]
        ips: u64,
        /// Round-robin over this many distinct IPs/users (1,000,000 for the
        /// memory test); no attackers.
        #[arg(long)]
        distinct_keys: Option<u64>,
    },
    /// OpenSSH auth.log lines (RFC 3164).
    Sshd {
        #[arg(long)]
        lines: u64,
    },
}

fn run(cli: &Cli) -> Result<(), String> {
    if cli.out == "-" {
        return Err("--out FILE is required".into());
    }
    let started = Instant::now();
    let mut out = util::create(&cli.out).map_err(|e| format!("{}: {e}", cli.out))?;
    let truth = match cli.cmd {
        Cmd::Json {
            events,
            ips,
            distinct_keys,
        } => {
            let p = json::JsonParams {
                events,
                ips,
                distinct_keys,
                seed: cli.seed,
            };
            let t = json::generate(&p, &mut out).map_err(|e| e.to_string())?;
            json::truth_json(&p, &t)
        }
        Cmd::Sshd { lines } => {
            let t = sshd::Sim::standard(cli.seed)
                .run(lines, &mut out)
                .map_err(|e| e.to_string())?;
            sshd::truth_json(cli.seed, lines, &t)
        }
    };
    let lines = out.lines;
    out.finish().map_err(|e| e.to_string())?;
    let truth_path = format!("{}.truth.json", cli.out);
    let text = serde_json::to_string_pretty(&truth).map_err(|e| e.to_string())?;
    std::fs::write(&truth_path, text + "\n").map_err(|e| format!("{truth_path}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "secmon-gen: {lines} lines to {} in {secs:.2}s ({:.2} M lines/s); truth in {truth_path}",
        cli.out,
        lines as f64 / secs.max(1e-9) / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secmon-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
