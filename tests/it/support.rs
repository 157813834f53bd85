//! Helpers shared by the e2e tests: locating the binary and fixtures, and
//! reading alert lines.

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secmon"))
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn example(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn secmon");
    assert!(
        out.status.success(),
        "secmon failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn alerts(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line is not JSON ({e}): {l}"))
        })
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `secmon run --stdin ARGS…` with `lines` on its stdin and waits for it
/// to stop at the end of input (flushing notifications and checkpoints).
pub fn run_with_stdin(args: &[&std::ffi::OsStr], lines: &[String]) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(["run", "--no-api", "--stdin"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn secmon run");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write to secmon");
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "secmon run failed: {:?}", out.status);
    out
}
