#![allow(clippy::unwrap_used)]
//! `Ruleset::build` reports every error with its item and field path.

use secmon_engine::{BuildError, DetectorKind, Item, MetricConfig, RuleConfig, Ruleset};

fn build(rules: &str, metrics: &str) -> Result<Ruleset, Vec<BuildError>> {
    let r: Vec<RuleConfig> = serde_saphyr::from_str(rules).unwrap();
    let m: Vec<MetricConfig> = if metrics.is_empty() {
        vec![]
    } else {
        serde_saphyr::from_str(metrics).unwrap()
    };
    Ruleset::build(&r, &m)
}

#[test]
fn reports_every_error_with_field_paths() {
    let errs = build(
        r#"
- id: ok.rule
  severity: low
  detector: {type: single}
- id: Bad_ID
  severity: low
  match: "message ~ '('"
  detector: {type: threshold, count: 3, more_than: 2, window: 0s}
- id: ok.rule
  severity: low
  detector: {type: metric, expr: 'rate(nope[5m]) > 1 or p95(c[5m]) > 3'}
- id: d
  severity: low
  match: {fields.x: {gtee: 1}}
  detector: {type: distinct, field: fields.y, window: 1m}
- id: e
  severity: low
  group_by: [fields.ip]
  detector: {type: metric, expr: 'rate(c[5m]) >'}
"#,
        r#"
- name: c
  type: counter
- name: h
  type: histogram
- name: c
  type: gauge
  field: fields.v
"#,
    )
    .unwrap_err();
    let got: Vec<(Item, &str)> = errs.iter().map(|e| (e.item, e.field.as_str())).collect();
    for want in [
        (Item::Metric(1), "field"),
        (Item::Metric(2), "name"),
        (Item::Rule(1), "id"),
        (Item::Rule(1), "match"),
        (Item::Rule(1), "detector.count"),
        (Item::Rule(1), "detector.window"),
        (Item::Rule(2), "id"),
        (Item::Rule(2), "detector.expr"),
        (Item::Rule(3), "match.fields.x.gtee"),
        (Item::Rule(3), "detector.count"),
        (Item::Rule(4), "group_by"),
        (Item::Rule(4), "detector.expr"),
    ] {
        assert!(got.contains(&want), "missing {want:?} in {errs:#?}");
    }
    // Both bad metric references of rule 2 are reported.
    assert_eq!(
        errs.iter()
            .filter(|e| e.item == Item::Rule(2) && e.field == "detector.expr")
            .count(),
        2
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("unknown metric `nope`"))
    );
    assert!(errs.iter().any(|e| e.message.contains("duplicate rule id")));
    assert!(errs.iter().all(|e| !e.to_string().is_empty()));
}

#[test]
fn valid_ruleset_exposes_rules() {
    let rs = build(
        r#"
- id: brute.ip
  name: Brute force by IP
  description: seed 003
  severity: high
  priority: P2
  labels: {team: security}
  match: event = auth.login_failed
  group_by: [fields.ip]
  detector: {type: threshold, more_than: 10, window: 5m}
  actions: [ban-ip, notify]
- id: off
  severity: low
  enabled: false
  detector: {type: single}
"#,
        "",
    )
    .unwrap();
    let r = rs.rule(0);
    assert_eq!(r.id(), "brute.ip");
    assert_eq!(r.name(), "Brute force by IP");
    assert_eq!(r.description(), Some("seed 003"));
    assert_eq!(r.priority(), Some(secmon_core::Priority::P2));
    assert_eq!(r.labels()["team"], "security");
    assert_eq!(r.actions(), ["ban-ip", "notify"]);
    assert_eq!(r.group_by()[0].as_str(), "fields.ip");
    assert_eq!(r.detector_kind(), DetectorKind::Threshold);
    assert!(matches!(
        r.detector(),
        secmon_engine::Detector::Threshold { count: 11, .. }
    ));
    assert!(!rs.rule(1).enabled());
    assert_eq!(rs.rules().len(), 2);
}

/// Every field any rule or metric reads is in `event_paths`, and nothing
/// else: replay's parsers store only these.
#[test]
fn event_paths_lists_what_rules_and_metrics_read() {
    let rs = build(
        r#"
- id: a
  severity: low
  match: "event = x and (fields.code >= 500 or not exists(fields.ok)) and fields.ip in 10.0.0.0/8"
  group_by: [fields.ip, service]
  detector: {type: threshold, count: 3, window: 1m, weight: fields.n}
- id: b
  severity: low
  match: {event: y, fields.path: {contains: admin}}
  detector: {type: distinct, field: fields.user, count: 3, window: 1m}
- id: c
  severity: low
  match: "event = z"
  detector: {type: state, when: "fields.state = down"}
"#,
        r#"
- name: lat
  type: histogram
  match: "event = req and fields.route ~ '^/api'"
  field: fields.ms
"#,
    )
    .unwrap();
    let paths: Vec<&str> = rs.event_paths().into_iter().collect();
    assert_eq!(
        paths,
        [
            "event",
            "fields.code",
            "fields.ip",
            "fields.ms",
            "fields.n",
            "fields.ok",
            "fields.path",
            "fields.route",
            "fields.state",
            "fields.user",
            "service",
        ]
    );
}

#[test]
fn updown_needs_down_and_no_field() {
    let errs = build(
        "[]",
        r#"
- name: a
  type: updown
  match: {event: x}
- name: b
  type: updown
  match: {event: x}
  down: {event: y}
  field: fields.v
- name: c
  type: counter
  down: {event: y}
- name: d
  type: updown
  down: "event = ("
"#,
    )
    .unwrap_err();
    let got: Vec<(Item, &str)> = errs.iter().map(|e| (e.item, e.field.as_str())).collect();
    for want in [
        (Item::Metric(0), "down"),
        (Item::Metric(1), "field"),
        (Item::Metric(2), "down"),
        (Item::Metric(3), "down"),
    ] {
        assert!(got.contains(&want), "missing {want:?} in {errs:#?}");
    }
    // Functions that read a level's distribution are refused; rate is not.
    let errs = build(
        r#"
- id: r
  severity: low
  detector: {type: metric, expr: 'p95(u[5m]) > 1 or increase(u[5m]) > 3'}
"#,
        r#"
- name: u
  type: updown
  match: {event: x}
  down: {event: y}
"#,
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("p95") || errs[0].message.contains("quantile"));
}
