//! `secmon test`: the cases carried in rule files pass, and a wrong
//! expectation fails with an explanation.

use crate::support::*;

#[test]
fn seed_rule_tests_pass() {
    let out = run_ok(bin().args(["test", "-v", "-c"]).arg(example("seeds.yaml")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn a_wrong_expectation_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("t.yaml");
    std::fs::write(
        &p,
        r#"
rules:
  - id: three
    severity: high
    match: {event: x}
    group_by: [fields.ip]
    detector: {type: threshold, count: 3, window: 1m}
tests:
  - name: two events do not fire
    input:
      - {repeat: 2, every: 1s, event: {timestamp: "2024-01-01T00:00:00Z", event: x, fields: {ip: 1.1.1.1}}}
    expect: [{rule: three}]
  - name: three events fire
    input:
      - {repeat: 3, every: 30s, event: {timestamp: "2024-01-01T00:00:00Z", event: x, fields: {ip: 1.1.1.1}}}
    expect: [{rule: three, group: {fields.ip: 1.1.1.1}, fired_at: "2024-01-01T00:01:00.000Z", value: 3}]
"#,
    )
    .expect("write");
    let out = bin().args(["test", "-c"]).arg(&p).output().expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL") && text.contains("two events do not fire"),
        "{text}"
    );
    assert!(
        text.contains("expected but not fired: rule=three"),
        "{text}"
    );
    assert!(text.contains("1 passed, 1 failed"), "{text}");
}
