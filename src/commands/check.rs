//! `secmon check`: validate the configuration and every rule file it
//! includes, report all problems with file, line and field, exit 1 on any.

use std::path::Path;
use std::process::ExitCode;

pub fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (loaded, runtime) = match super::load_runtime(path) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    crate::outln!(
        "{}: OK ({} rules, {} metrics, {} pattern parsers, {} sources, {} tests)",
        loaded.main.display(),
        runtime.ruleset.rules().len(),
        loaded.metrics.len(),
        loaded.parsers.len(),
        runtime.sources.len(),
        loaded.tests.len()
    );
    Ok(ExitCode::SUCCESS)
}
