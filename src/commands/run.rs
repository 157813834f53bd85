//! `secmon run`: the daemon. Its topology and engine loop live in
//! [`crate::daemon`]; this verb only hands over the arguments.

use std::process::ExitCode;

use crate::cli::RunArgs;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    crate::daemon::run(args)
}
