//! secmon-gen: deterministic benchmark inputs with ground truth.
//!
//! ```text
//! secmon-gen json --events 1000000 --ips 100000 --out bench/out/events.jsonl
//! secmon-gen json --events 1000000 --distinct-keys 1000000 --out bench/out/distinct.jsonl
//! secmon-gen json --events 1000000 --distinct-keys 1000000 --span 240s --users 1000 --out bench/out/live.jsonl
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
        /// Distinct users / emails (default 200,000; with --distinct-keys,
        /// the key count: event i uses user i mod this).
        #[arg(long)]
        users: Option<u64>,
        /// With --distinct-keys: every event is an auth.login_failed, evenly
        /// spread over this span (`240s`, `4m`, `500ms`; a bare number is
        /// seconds), so all groups are live at once.
        #[arg(long, value_parser = parse_span)]
        span: Option<i64>,
    },
    /// OpenSSH auth.log lines (RFC 3164).
    Sshd {
        #[arg(long)]
        lines: u64,
    },
}

/// `240s`, `4m`, `1h`, `500ms` or bare seconds → ms.
fn parse_span(s: &str) -> Result<i64, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num.parse().map_err(|_| format!("bad span {s:?}"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("bad span unit in {s:?} (ms, s, m, h)")),
    };
    n.checked_mul(ms)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("span {s:?} out of range"))
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
            users,
            span,
        } => {
            if span.is_some() && distinct_keys.is_none() {
                return Err("--span needs --distinct-keys".into());
            }
            let p = json::JsonParams {
                events,
                ips,
                distinct_keys,
                users,
                span_ms: span,
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
