//! secmon: one binary that ingests logs, detects attacks on event time and
//! reports alerts. `main` only parses the command line, sets up logging and
//! maps outcomes to exit codes: 0 success, 1 findings (invalid config, failed
//! tests), 2 usage errors (from clap), 3 runtime failures (IO).

use std::process::ExitCode;

use clap::Parser;

use secmon::{cli, commands, telemetry};

/// Events are built on parser threads and freed on the engine thread; glibc's
/// allocator handles that cross-thread pattern poorly (≈10% of replay CPU in
/// malloc/free), mimalloc well.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let default_level = match cli.command {
        cli::Command::Run(_) => "info",
        _ => "warn",
    };
    telemetry::init(cli.log_level.as_deref().unwrap_or(default_level));
    let result = match cli.command {
        cli::Command::Check { config } => commands::check::run(config.config.as_deref()),
        cli::Command::Replay(args) => commands::replay::run(args),
        cli::Command::Test {
            config,
            verbose,
            year,
        } => commands::test::run(config.config.as_deref(), verbose, year),
        cli::Command::Run(args) => commands::run::run(args),
        cli::Command::Decisions { args, cmd } => commands::manage::decisions(args, cmd),
        cli::Command::Incidents { args, cmd } => commands::manage::incidents(args, cmd),
        cli::Command::Keys { args, cmd } => commands::manage::keys(args, cmd),
        cli::Command::Archive { args, cmd } => commands::archive::run(args, cmd),
        cli::Command::Users { args, cmd } => commands::users::run(args, cmd),
        cli::Command::Export { cmd } => commands::export::run(cmd),
        cli::Command::Notify { args, cmd } => commands::manage::notify(args, cmd),
        cli::Command::Silences { args, cmd } => commands::manage::silences(args, cmd),
        cli::Command::Notifications { args, cmd } => commands::manage::notifications(args, cmd),
    };
    telemetry::flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}
