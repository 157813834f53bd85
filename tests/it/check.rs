//! `secmon check`: valid configurations pass; every error names file, line
//! and field; exit code 1.

use crate::support::*;

#[test]
fn shipped_examples_are_valid() {
    let mut shipped: Vec<_> = std::fs::read_dir(example(""))
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    shipped.sort();
    assert!(
        shipped.len() >= 2,
        "examples/seeds.yaml and examples/sshd.yaml ship"
    );
    for p in shipped {
        let out = run_ok(bin().arg("check").arg("-c").arg(&p));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("OK"),
            "{}",
            p.display()
        );
        // Every example's own tests pass too.
        let out = run_ok(bin().args(["test", "--year", "2025", "-c"]).arg(&p));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(" 0 failed"),
            "{}",
            p.display()
        );
    }
    let out = run_ok(bin().arg("check"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("embedded"),
        "no -c uses the embedded default"
    );
}

/// Writes `yaml` to `path`, runs `secmon check` on it, expects exit 1 and
/// returns the diagnostics.
fn check_fails(path: &std::path::Path, yaml: &str) -> String {
    std::fs::write(path, yaml).expect("write config");
    let out = bin()
        .arg("check")
        .arg("-c")
        .arg(path)
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1), "check must fail:\n{yaml}");
    stderr(&out)
}

#[test]
fn errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.yaml");
    let err = check_fails(
        &p,
        "rules:\n  - id: good\n    severity: high\n    detector: {type: single}\n  - id: bad-window\n    severity: high\n    detector: {type: threshold, count: 3, window: 5 minutes}\n",
    );
    assert!(
        err.contains(&format!("{}:7", p.display())),
        "line 7 named:\n{err}"
    );
    assert!(err.contains("5 minutes"), "offending value quoted:\n{err}");

    let err = check_fails(
        &p,
        "rules:\n  - id: r1\n    severity: high\n    match: 'event = x and ('\n    detector: {type: single}\n  - id: r2\n    severity: urgent\n    detector: {type: single}\n",
    );
    assert!(err.contains("urgent"), "{err}");
}

#[test]
fn semantic_errors_are_all_reported_with_rule_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.yaml");
    let err = check_fails(
        &p,
        "rules:\n  - id: r1\n    severity: high\n    match: 'event = x and ('\n    detector: {type: single}\n  - id: r2\n    severity: low\n    detector: {type: metric, expr: 'rate(nope[5m]) > 1'}\n",
    );
    assert!(
        err.contains(&format!("{}:2", p.display())) && err.contains("rules[0] (r1).match"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:6", p.display())) && err.contains("rules[1] (r2)"),
        "{err}"
    );
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn readme_yaml_examples_are_valid_configurations() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let yaml = block.split("```").next().unwrap_or_default();
        // `include:` names files that only exist in a user's setup.
        let yaml: String = yaml
            .lines()
            .filter(|l| !l.starts_with("include:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = dir.path().join(format!("readme-{i}.yaml"));
        std::fs::write(&p, yaml).expect("write");
        let out = bin()
            .arg("check")
            .arg("-c")
            .arg(&p)
            .output()
            .expect("spawn");
        assert!(
            out.status.success(),
            "README yaml block #{i} is invalid:\n{}",
            stderr(&out)
        );
        checked += 1;
    }
    assert!(checked >= 2, "README has its configuration examples");
}
