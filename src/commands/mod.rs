//! One module per CLI verb. Each returns the process exit code, or an error
//! for runtime failures that `main` reports.

pub mod archive;
pub mod check;
pub mod export;
pub mod manage;
pub mod replay;
pub mod run;
pub mod test;
pub mod users;

use std::process::ExitCode;

use crate::config::{self, Diagnostics, Loaded, Runtime};

/// Loads and builds the configuration, printing every diagnostic on failure.
pub fn load_runtime(path: Option<&std::path::Path>) -> Result<(Loaded, Runtime), ExitCode> {
    let report = |d: Diagnostics| {
        eprintln!("{d}");
        eprintln!("{} error(s) in configuration", d.0.len());
        ExitCode::from(1)
    };
    let loaded = config::load(path).map_err(report)?;
    let runtime = config::build(&loaded).map_err(report)?;
    Ok((loaded, runtime))
}
