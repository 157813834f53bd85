#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report
use secmon_core::{Event, Fields, Timestamp, Value};

use super::*;
use crate::config::ConditionConfig;

fn ev(pairs: &[(&str, Value)]) -> Event {
    let mut f = Fields::new();
    for (k, v) in pairs {
        f.insert(*k, v.clone());
    }
    Event::new(Timestamp(0), f)
}

fn login() -> Event {
    ev(&[
        ("event", "auth.login_failed".into()),
        ("fields.ip", "10.1.2.3".into()),
        ("fields.email", "a@b.c".into()),
        ("fields.reason", "bad password".into()),
        ("fields.attempt", Value::Int(2)),
        ("fields.code", "007".into()),
        ("message", "value exceeds maximum size".into()),
        (
            "fields.tags",
            Value::Array(vec!["admin".into(), "x".into()]),
        ),
    ])
}

fn m(src: &str) -> bool {
    parse_expr(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .matches(&login())
}

#[test]
fn the_brief_example() {
    assert!(m(
        r#"event = auth.login_failed and fields.ip in 10.0.0.0/8 and not (fields.reason = "x" or fields.attempt >= 3) and message ~ "exceeds maximum""#
    ));
}

#[test]
fn operators() {
    assert!(m("event == auth.login_failed"));
    assert!(m("event != auth.login_succeeded"));
    assert!(m(
        "fields.attempt < 3 and fields.attempt <= 2 and fields.attempt > 1 and fields.attempt >= 2"
    ));
    assert!(!m("fields.attempt > 2"));
    assert!(
        m("fields.attempt = 2.0"),
        "numeric literal compares numerically"
    );
    assert!(m("fields.code = 7"), "numeric strings compare numerically");
    assert!(m("fields.code = '007'"), "quoted compares as string");
    assert!(!m("fields.code = '7'"));
    assert!(m("fields.email in [x@y.z, a@b.c]"));
    assert!(m("fields.email not in [x@y.z]"));
    assert!(m(r#"fields.reason in ["bad password", other]"#));
    assert!(m("fields.ip in [192.168.0.0/16, 10.0.0.0/8]"));
    assert!(m("fields.ip not in 192.168.0.0/16"));
    assert!(m("fields.ip in 10.1.2.3"), "a bare address is a /32");
    assert!(
        !m("fields.email in 10.0.0.0/8"),
        "non-IP values never match a CIDR"
    );
    assert!(m("message ~ 'exceeds\\s+max'"));
    assert!(m("message !~ '^nope'"));
    assert!(m("exists(fields.ip) and not exists(fields.nope)"));
    assert!(
        m("fields.tags = admin"),
        "arrays match when any element does"
    );
    assert!(m("fields.attempt = 2 AND event = auth.login_failed"));
}

#[test]
fn missing_fields() {
    assert!(!m("fields.nope = 1"));
    assert!(!m("fields.nope > 1"));
    assert!(!m("fields.nope < 1"));
    assert!(m("fields.nope != 1"));
    assert!(m("fields.nope not in [a]"));
    assert!(!m("fields.nope in [a]"));
    assert!(m("fields.nope !~ x"));
}

#[test]
fn precedence_not_and_or() {
    // or binds loosest: a or (b and c)
    assert!(m(
        "event = x or event = auth.login_failed and fields.attempt = 2"
    ));
    assert!(!m(
        "(event = x or event = auth.login_failed) and fields.attempt = 3"
    ));
    // not binds tightest: (not a) and b
    assert!(m("not event = x and fields.attempt = 2"));
    assert!(!m("not (event = auth.login_failed and fields.attempt = 2)"));
    assert!(m("not not event = auth.login_failed"));
}

#[test]
fn quoting_and_literals() {
    let e = ev(&[
        ("a", "say \"hi\"\n".into()),
        ("b", Value::Bool(true)),
        ("c", Value::Null),
    ]);
    assert!(parse_expr(r#"a = "say \"hi\"\n""#).unwrap().matches(&e));
    assert!(parse_expr(r#"a = 'say "hi"\n'"#).unwrap().matches(&e));
    assert!(parse_expr("b = true and c = null").unwrap().matches(&e));
    assert!(parse_expr("b != false").unwrap().matches(&e));
}

#[test]
fn errors_carry_positions() {
    let cases: &[(&str, usize, &str)] = &[
        ("event = ", 8, "expected a value"),
        ("event auth", 6, "expected an operator"),
        ("(event = a", 10, "expected `)`"),
        ("event = a and", 13, "expected a field path"),
        ("event = \"abc", 8, "unterminated string"),
        ("message ~ '('", 10, "invalid regex"),
        ("ip in 10.0.0.0/99", 6, "CIDR"),
        ("ip in [a, b", 11, "`,` or `]`"),
        ("event = a b", 10, "expected `and`, `or`"),
        ("é = a $", 6, "unexpected character"),
        ("a..b = 1", 0, "invalid field path"),
    ];
    for (src, pos, msg) in cases {
        let e = parse_expr(src).expect_err(src);
        assert_eq!(e.pos, *pos, "{src}: {e}");
        assert!(e.message.contains(msg), "{src}: {e}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&src).is_err());
    let src = format!("{}a = 1", "not ".repeat(10_000));
    assert!(parse_expr(&src).is_err());
}

#[test]
fn event_names_for_dispatch() {
    let names = |s: &str| parse_expr(s).unwrap().event_names();
    assert_eq!(
        names("event = a.b and fields.x = 1"),
        Some(vec!["a.b".into()])
    );
    assert_eq!(names("event in [a, b]"), Some(vec!["a".into(), "b".into()]));
    assert_eq!(
        names("event = a or event = b"),
        Some(vec!["a".into(), "b".into()])
    );
    assert_eq!(names("event = a or fields.x = 1"), None);
    assert_eq!(names("not event = a"), None);
    assert_eq!(names("fields.x = 1"), None);
    assert_eq!(
        names("event in [a, b] and event = b"),
        Some(vec!["b".into()])
    );
}

fn map(y: &str) -> Result<Condition, CondError> {
    #[derive(serde::Deserialize)]
    struct W {
        m: ConditionConfig,
    }
    let w: W = serde_saphyr::from_str(y).expect("yaml");
    compile_config(&w.m)
}

#[test]
fn map_form() {
    let c = map("m: {event: auth.login_failed, fields.email: [x, a@b.c], fields.attempt: {gte: 2, lt: 3}, fields.ip: {cidr: 10.0.0.0/8}, message: {regex: 'exceeds'}}\n").unwrap();
    assert!(c.matches(&login()));
    assert_eq!(c.event_names(), Some(vec!["auth.login_failed".into()]));
    let c = map(
        "m: {any: [{event: x}, 'fields.attempt = 2'], not: {fields.reason: {starts_with: ok}}}\n",
    )
    .unwrap();
    assert!(c.matches(&login()));
    let c = map("m: {all: [{message: {contains: maximum}}, {message: {ends_with: size}}], fields.nope: {exists: false}}\n").unwrap();
    assert!(c.matches(&login()));
    let c = map("m: {fields.ip: {not_in: [1.1.1.1], ne: 2.2.2.2, cidr: [192.168.0.0/16, 10.0.0.0/8]}, message: {not_regex: '^x'}, fields.email: {in: [a@b.c], eq: a@b.c}}\n").unwrap();
    assert!(c.matches(&login()));
    let c = map("m: {fields.attempt: {gt: '1'}}\n").unwrap();
    assert!(
        c.matches(&login()),
        "ordering operators read numeric strings as numbers"
    );
}

#[test]
fn map_form_errors_locate_the_key() {
    let e = map("m: {fields.attempt: {gtee: 3}}\n").unwrap_err();
    assert_eq!(e.path, "fields.attempt.gtee");
    assert!(e.message.contains("unknown operator"));
    let e = map("m: {message: {regex: '('}}\n").unwrap_err();
    assert_eq!(e.path, "message.regex");
    let e = map("m: {any: [{event: a}, 'event = ']}\n").unwrap_err();
    assert_eq!(e.path, "any[1]");
    let e = map("m: {'bad path!': 1}\n").unwrap_err();
    assert!(e.message.contains("invalid field path"));
    let e = map("m: {fields.ip: {cidr: nope}}\n").unwrap_err();
    assert!(e.message.contains("invalid CIDR"));
}

#[test]
fn regex_size_limit() {
    let huge = format!("message ~ '{}'", "(a|b|c|d){1000}".repeat(50));
    assert!(parse_expr(&huge).is_err());
}
