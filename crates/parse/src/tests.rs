//! Unit tests of the dispatch and of every error path of [`LineParser`].

use super::*;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("valid test time")
}

fn parser(patterns: &[PatternConfig]) -> LineParser {
    LineParser::new(&ParseConfig::default(), patterns, None, Format::Auto).expect("valid config")
}

fn ctx_at(received: &str) -> LineCtx {
    LineCtx::new(SourceId(7), ts(received))
}

fn pat(name: &str, pattern: &str) -> PatternConfig {
    PatternConfig {
        name: name.into(),
        pattern: pattern.into(),
        event: Some(format!("test.{name}")),
        program: None,
        timestamp: None,
        types: Default::default(),
        fields: Default::default(),
    }
}

fn s(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

const SEED: &str = r#"{"timestamp":"2024-01-15T10:30:00.000Z","level":"WARN","event":"auth.login_failed","service":"management-server","fields":{"email":"user@example.com","ip":"192.168.1.100","reason":"invalid_password","attempt":3},"trace_id":"abc123"}"#;

#[test]
fn seed_json_event() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    ctx.line_no = 12;
    let e = p
        .parse_line(SEED.as_bytes(), &mut ctx)
        .expect("parses")
        .event;
    assert_eq!(e.time, ts("2024-01-15T10:30:00Z"));
    assert_eq!(e.received, ts("2024-01-15T10:31:00Z"));
    assert_eq!((e.source, e.line), (SourceId(7), 12));
    assert_eq!(e.name(), Some("auth.login_failed"));
    assert_eq!(s(e.get("level")), Some("WARN"));
    assert_eq!(s(e.get("fields.ip")), Some("192.168.1.100"));
    assert_eq!(e.get("fields.attempt"), Some(&Value::Int(3)));
    assert_eq!(s(e.get("trace_id")), Some("abc123"));
    assert_eq!(
        e.get("timestamp"),
        None,
        "timestamp is consumed into Event.time"
    );
    assert_eq!(e.fields.len(), 8);
    assert_eq!(e.raw, None);
    // Round trip through the core's to_json.
    let back: serde_json::Value = serde_json::from_str(SEED).expect("json");
    assert_eq!(e.to_json(), back);
}

#[test]
fn json_values_and_nesting() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let line = r#"  {"timestamp":"2024-01-15T10:30:00Z","a":{"b":{"c":null}},"n":-5,"big":18446744073709551615,"f":1.5,"t":true,"arr":[1,"x",{"k":[1]},[2,3]],"esc":"a\"b\u00e9"}"#;
    let e = p
        .parse_line(line.as_bytes(), &mut ctx)
        .expect("parses")
        .event;
    assert_eq!(e.get("a.b.c"), Some(&Value::Null));
    assert_eq!(e.get("n"), Some(&Value::Int(-5)));
    assert_eq!(e.get("big"), Some(&Value::Float(18446744073709551615.0)));
    assert_eq!(e.get("f"), Some(&Value::Float(1.5)));
    assert_eq!(e.get("t"), Some(&Value::Bool(true)));
    assert_eq!(
        e.get("arr"),
        Some(&Value::Array(vec![
            Value::Int(1),
            Value::from("x"),
            Value::from(r#"{"k":[1]}"#),
            Value::Array(vec![Value::Int(2), Value::Int(3)]),
        ]))
    );
    assert_eq!(s(e.get("esc")), Some("a\"bé"));
}

#[test]
fn json_flat_with_custom_timestamp_field() {
    let mut cfg = ParseConfig::default();
    cfg.json.timestamp_field = "ts".into();
    cfg.json.timestamp_format = TimeFormat::UnixMillis;
    let p = LineParser::new(&cfg, &[], None, Format::Json).expect("valid");
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let e = p
        .parse_line(
            br#"{"ts":1705314600123,"ip":"1.2.3.4","msg":"hi"}"#,
            &mut ctx,
        )
        .expect("parses")
        .event;
    assert_eq!(e.time, Timestamp(1_705_314_600_123));
    assert_eq!(e.get("ts"), None);
    assert_eq!(s(e.get("ip")), Some("1.2.3.4"));

    cfg.json.timestamp_field = "meta.time".into();
    cfg.json.timestamp_format = TimeFormat::Auto;
    let p = LineParser::new(&cfg, &[], None, Format::Json).expect("valid");
    let e = p
        .parse_line(br#"{"meta":{"time":1705314600,"host":"h"}}"#, &mut ctx)
        .expect("parses")
        .event;
    assert_eq!(e.time, Timestamp(1_705_314_600_000));
    assert_eq!(s(e.get("meta.host")), Some("h"));
    assert_eq!(e.get("meta.time"), None);
}

#[test]
fn json_aliases_both_spellings() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    for line in [
        r#"{"timestamp":"2024-01-15T10:30:00Z","fields":{"ip_address":"alias","ip":"canon"}}"#,
        r#"{"timestamp":"2024-01-15T10:30:00Z","fields":{"ip":"canon","ip_address":"alias"}}"#,
    ] {
        let e = p
            .parse_line(line.as_bytes(), &mut ctx)
            .expect("parses")
            .event;
        assert_eq!(s(e.get("fields.ip")), Some("canon"), "{line}");
        assert_eq!(e.get("fields.ip_address"), None);
        assert_eq!(e.fields.len(), 1);
    }
    let e = p
        .parse_line(
            br#"{"timestamp":"2024-01-15T10:30:00Z","ip_address":"1.1.1.1","fields":{"email_attempted":"a@b","failure_reason":"x"}}"#,
            &mut ctx,
        )
        .expect("parses")
        .event;
    assert_eq!(s(e.get("ip")), Some("1.1.1.1"));
    assert_eq!(s(e.get("fields.email")), Some("a@b"));
    assert_eq!(s(e.get("fields.reason")), Some("x"));
}

#[test]
fn json_duplicate_keys_last_wins() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let e = p
        .parse_line(
            br#"{"timestamp":"2024-01-15T10:30:00Z","a":1,"a":2}"#,
            &mut ctx,
        )
        .expect("parses")
        .event;
    assert_eq!(e.get("a"), Some(&Value::Int(2)));
    assert_eq!(e.fields.len(), 1);
}

#[test]
fn json_errors() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    match p.parse_line(
        br#"{"timestamp": "2024-01-15T10:30:00Z", "a": tru}"#,
        &mut ctx,
    ) {
        Err(ParseError::InvalidJson { column, message }) => {
            assert!((44..=48).contains(&column), "column {column}");
            assert!(!message.contains("line 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.parse_line(br#"{"timestamp":"2024-01-15T10:30:00Z"} x"#, &mut ctx),
        Err(ParseError::InvalidJson { .. })
    ));
    assert_eq!(
        p.parse_line(br#"{"level":"INFO"}"#, &mut ctx),
        Err(ParseError::MissingTimestamp {
            field: "timestamp".into()
        })
    );
    match p.parse_line(br#"{"timestamp":"last tuesday"}"#, &mut ctx) {
        Err(ParseError::BadTimestamp { field, value, .. }) => {
            assert_eq!(
                (field.as_str(), value.as_str()),
                ("timestamp", "last tuesday")
            )
        }
        other => panic!("{other:?}"),
    }
    let e = p
        .parse_line(br#"{"timestamp":true}"#, &mut ctx)
        .expect_err("bad");
    assert!(e.to_string().contains("\"timestamp\""), "{e}");
    let pj = LineParser::new(&ParseConfig::default(), &[], None, Format::Json).expect("valid");
    assert_eq!(
        pj.parse_line(b"[1,2]", &mut ctx),
        Err(ParseError::NotAnObject)
    );
    assert_eq!(pj.parse_line(b"42", &mut ctx), Err(ParseError::NotAnObject));
    assert!(matches!(
        pj.parse_line(b"Dec 10 06:55:46 LabSZ sshd[1]: x", &mut ctx),
        Err(ParseError::InvalidJson { column: 1, .. })
    ));
}

#[test]
fn json_depth_limit() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let ok = format!(
        r#"{{"timestamp":"2024-01-15T10:30:00Z","a":{}1{}}}"#,
        r#"{"x":"#.repeat(30),
        "}".repeat(30)
    );
    assert!(p.parse_line(ok.as_bytes(), &mut ctx).is_ok());
    for deep in [
        format!(r#"{{"a":{}1{}}}"#, r#"{"x":"#.repeat(40), "}".repeat(40)),
        format!(r#"{{"a":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
        format!(
            r#"{{"a":[{}1{}]}}"#,
            r#"{"x":"#.repeat(100_000),
            "}".repeat(100_000)
        ),
    ] {
        match p.parse_line(deep.as_bytes(), &mut ctx) {
            Err(ParseError::InvalidJson { message, .. }) => {
                assert!(
                    message.contains("nesting") || message.contains("recursion"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn line_level_errors() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let long = vec![b'a'; MAX_LINE + 1];
    assert_eq!(
        p.parse_line(&long, &mut ctx),
        Err(ParseError::TooLong {
            len: MAX_LINE + 1,
            max: MAX_LINE
        })
    );
    let mut big_json = br#"{"timestamp":"2024-01-15T10:30:00Z","x":""#.to_vec();
    big_json.resize(MAX_LINE + 10, b'y');
    assert!(matches!(
        p.parse_line(&big_json, &mut ctx),
        Err(ParseError::TooLong { .. })
    ));
    assert_eq!(
        p.parse_line(b"{\"a\":\"\xff\"}", &mut ctx),
        Err(ParseError::InvalidUtf8 { offset: 6 })
    );
    assert_eq!(p.parse_line(b"   \r", &mut ctx), Err(ParseError::Empty));
    assert_eq!(p.parse_line(b"", &mut ctx), Err(ParseError::Empty));
    assert_eq!(
        p.parse_line(b"hello world", &mut ctx),
        Err(ParseError::NoMatch)
    );
    // CRLF line endings.
    let mut crlf = SEED.as_bytes().to_vec();
    crlf.extend_from_slice(b"\r\n");
    assert!(p.parse_line(&crlf, &mut ctx).is_ok());
}

#[test]
fn keep_raw() {
    let cfg = ParseConfig {
        keep_raw: true,
        ..Default::default()
    };
    let p = LineParser::new(&cfg, &[], None, Format::Auto).expect("valid");
    let mut ctx = ctx_at("2024-01-15T10:31:00Z");
    let e = p
        .parse_line(format!("{SEED}\r").as_bytes(), &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.raw.as_deref(), Some(SEED));
}

#[test]
fn syslog_3164_fields_and_builtin() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-12-10T12:00:00Z");
    let r = p
        .parse_line(
            b"<38>Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
            &mut ctx,
        )
        .expect("ok");
    let e = &r.event;
    assert!(r.matched.is_some());
    assert_eq!(e.time, ts("2024-12-10T06:55:46Z"));
    assert_eq!(s(e.get("host")), Some("LabSZ"));
    assert_eq!(s(e.get("program")), Some("sshd"));
    assert_eq!(e.get("pid"), Some(&Value::Int(24200)));
    assert_eq!(s(e.get("facility")), Some("auth"));
    assert_eq!(s(e.get("severity")), Some("info"));
    assert_eq!(e.name(), Some("sshd.auth_failed"));
    assert_eq!(
        s(e.get("level")),
        Some("WARN"),
        "builtin level overrides PRI"
    );
    assert_eq!(s(e.get("service")), Some("sshd"));
    assert_eq!(s(e.get("fields.ip")), Some("173.234.31.186"));
    assert_eq!(s(e.get("fields.user")), Some("webmaster"));
    assert_eq!(e.get("fields.port"), Some(&Value::Int(38926)));
    assert_eq!(s(e.get("fields.method")), Some("password"));
    assert_eq!(e.get("fields.invalid_user"), Some(&Value::Bool(true)));
    assert_eq!(
        p.pattern_name(r.matched.unwrap_or(999)),
        Some("sshd/auth_failed")
    );

    // Unmatched syslog line: an event without a name.
    let r = p
        .parse_line(
            b"Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, None);
    assert_eq!(r.event.name(), None);
    assert_eq!(
        s(r.event.get("message")),
        Some("pam_unix(sshd:auth): check pass; user unknown")
    );
    // Program filter: the same message from another program is not sshd's.
    let r = p
        .parse_line(
            b"Dec 10 06:55:46 LabSZ other[1]: Failed password for root from 1.2.3.4 port 1 ssh2",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, None);
    // And without a syslog header it is no match at all.
    assert_eq!(
        p.parse_line(
            b"Failed password for root from 1.2.3.4 port 1 ssh2",
            &mut ctx
        ),
        Err(ParseError::NoMatch)
    );
}

#[test]
fn syslog_builtin_shapes() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-12-10T12:00:00Z");
    let mut one = |line: &str| p.parse_line(line.as_bytes(), &mut ctx).expect("ok").event;
    let e = one(
        "Dec 10 09:32:20 LabSZ sshd[24680]: message repeated 5 times: [ Failed password for root from 183.62.140.253 port 47399 ssh2]",
    );
    assert_eq!(e.name(), Some("sshd.auth_failed"));
    assert_eq!(e.get("fields.repeat"), Some(&Value::Int(5)));
    assert_eq!(e.get("fields.invalid_user"), None);
    let e = one("Dec 10 08:24:32 LabSZ sshd[24361]: Invalid user  from 5.188.10.180");
    assert_eq!(
        (e.name(), s(e.get("fields.user"))),
        (Some("sshd.invalid_user"), Some(""))
    );
    let e = one("Dec 10 08:24:32 LabSZ sshd[1]: Invalid user admin from 2001:db8::1 port 4242");
    assert_eq!(s(e.get("fields.ip")), Some("2001:db8::1"));
    assert_eq!(e.get("fields.port"), Some(&Value::Int(4242)));
    let e = one(
        "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
    );
    assert_eq!(e.name(), Some("sshd.pam_auth_failure"));
    assert_eq!(
        s(e.get("fields.rhost")),
        Some("220-135-151-1.hinet-ip.hinet.net")
    );
    assert_eq!(e.get("fields.ip"), None);
    assert_eq!(s(e.get("fields.user")), Some("root"));
    let e = one(
        "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186 ",
    );
    assert_eq!(s(e.get("fields.ip")), Some("173.234.31.186"));
    assert_eq!(e.get("fields.user"), None);
    let e = one(
        "Dec 10 07:07:38 LabSZ sshd[24206]: Received disconnect from 52.80.34.196: 11: Bye Bye [preauth]",
    );
    assert_eq!(e.name(), Some("sshd.disconnect"));
    assert_eq!(e.get("fields.code"), Some(&Value::Int(11)));
    assert_eq!(s(e.get("fields.reason")), Some("Bye Bye"));
    assert_eq!(s(e.get("level")), Some("INFO"));
    let e = one(
        "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
    );
    assert_eq!(e.name(), Some("sshd.reverse_mapping_failed"));
    assert_eq!(s(e.get("fields.ip")), Some("173.234.31.186"));
    let e = one(
        "Mar  1 10:00:00 h sshd[1]: error: maximum authentication attempts exceeded for invalid user x from 10.0.0.1 port 22 ssh2 [preauth]",
    );
    assert_eq!(e.name(), Some("sshd.max_auth_exceeded"));
    let e = one(
        "Dec 10 11:03:40 LabSZ sshd[25002]: Disconnecting: Too many authentication failures for admin [preauth]",
    );
    assert_eq!(
        (e.name(), s(e.get("fields.user"))),
        (Some("sshd.too_many_auth_failures"), Some("admin"))
    );
    let e = one(
        "Mar  1 10:00:00 h sshd-session[1]: Connection closed by invalid user bob 10.0.0.2 port 5 [preauth]",
    );
    assert_eq!(e.name(), Some("sshd.connection_closed"));
    assert_eq!(e.get("fields.invalid_user"), Some(&Value::Bool(true)));
    let e = one(
        "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
    );
    assert_eq!(
        (e.name(), s(e.get("level"))),
        (Some("sshd.accepted"), Some("INFO"))
    );
    let e =
        one("Dec 10 07:00:00 LabSZ sshd[1]: Did not receive identification string from 1.2.3.4");
    assert_eq!(e.name(), Some("sshd.no_identification"));
}

#[test]
fn syslog_year_inference() {
    let p = parser(&[]);
    // A December line read in January belongs to the previous year.
    let mut ctx = ctx_at("2025-01-02T00:00:00Z");
    let e = p
        .parse_line(b"Dec 31 23:59:59 h p: x", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2024-12-31T23:59:59Z"));
    // ... and the January line after it in the same file is in the new year.
    let e = p
        .parse_line(b"Jan  1 00:00:01 h p: y", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2025-01-01T00:00:01Z"));

    // A file spanning new year, replayed long after with a fixed year.
    let cfg = ParseConfig {
        syslog: SyslogConfig {
            year: Some(2020),
            timezone: None,
        },
        ..Default::default()
    };
    let p2 = LineParser::new(&cfg, &[], None, Format::Syslog).expect("valid");
    let mut ctx = ctx_at("2026-06-01T00:00:00Z");
    let times: Vec<Timestamp> = [
        "Dec 30 10:00:00 h p: a",
        "Dec 31 10:00:00 h p: b",
        "Jan  1 10:00:00 h p: c",
        "Feb  3 10:00:00 h p: d",
    ]
    .iter()
    .map(|l| {
        p2.parse_line(l.as_bytes(), &mut ctx)
            .expect("ok")
            .event
            .time
    })
    .collect();
    assert_eq!(
        times,
        vec![
            ts("2020-12-30T10:00:00Z"),
            ts("2020-12-31T10:00:00Z"),
            ts("2021-01-01T10:00:00Z"),
            ts("2021-02-03T10:00:00Z")
        ]
    );
    // Within a day of received is not "the future".
    let mut ctx = ctx_at("2024-06-01T00:00:00Z");
    let e = p
        .parse_line(b"Jun  1 12:00:00 h p: x", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2024-06-01T12:00:00Z"));
    // Feb 29 in a non-leap year cannot be.
    let mut ctx = ctx_at("2023-06-01T00:00:00Z");
    assert!(matches!(
        p.parse_line(b"Feb 29 12:00:00 h p: x", &mut ctx),
        Err(ParseError::BadTimestamp { .. })
    ));
}

#[test]
fn syslog_timezone() {
    let cfg = ParseConfig {
        syslog: SyslogConfig {
            year: None,
            timezone: Some("Europe/Paris".into()),
        },
        ..Default::default()
    };
    let p = LineParser::new(&cfg, &[], None, Format::Auto).expect("valid");
    let mut ctx = ctx_at("2024-07-02T00:00:00Z");
    let e = p
        .parse_line(b"Jul  1 12:00:00 h p: x", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2024-07-01T10:00:00Z"));
    let bad = ParseConfig {
        syslog: SyslogConfig {
            year: None,
            timezone: Some("Mars/Olympus".into()),
        },
        ..Default::default()
    };
    let errs = validate(&bad, &[]);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "parse.syslog.timezone");
}

#[test]
fn syslog_5424() {
    let p = parser(&[]);
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    let e = p
        .parse_line(
            br#"<34>1 2003-10-11T22:14:15.003+02:00 mymachine.example.com su 123 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] 'su root' failed for lonvick on /dev/pts/8"#,
            &mut ctx,
        )
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2003-10-11T20:14:15.003Z"));
    assert_eq!(s(e.get("host")), Some("mymachine.example.com"));
    assert_eq!(s(e.get("program")), Some("su"));
    assert_eq!(e.get("pid"), Some(&Value::Int(123)));
    assert_eq!(s(e.get("msgid")), Some("ID47"));
    assert_eq!(s(e.get("facility")), Some("auth"));
    assert_eq!(s(e.get("severity")), Some("crit"));
    assert_eq!(s(e.get("level")), Some("FATAL"));
    assert_eq!(s(e.get("sd.exampleSDID@32473.iut")), Some("3"));
    assert_eq!(
        s(e.get("message")),
        Some("'su root' failed for lonvick on /dev/pts/8")
    );
    let e = p
        .parse_line(
            b"<13>1 2024-05-01T10:00:00.123456Z h app - - - msg",
            &mut ctx,
        )
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2024-05-01T10:00:00.123Z"));
    assert_eq!(e.get("pid"), None);
    // Nil time: the received time.
    let e = p
        .parse_line(b"<13>1 - h app - - - msg", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(e.time, ctx.received);
}

#[test]
fn syslog_format_rejects_text() {
    let p = LineParser::new(&ParseConfig::default(), &[], None, Format::Syslog).expect("valid");
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    assert!(matches!(
        p.parse_line(b"2025-11-21 10:00:00,123 - cache - ERROR - x", &mut ctx),
        Err(ParseError::NotSyslog { .. })
    ));
    assert!(matches!(
        p.parse_line(SEED.as_bytes(), &mut ctx),
        Err(ParseError::NotSyslog { .. })
    ));
}

#[test]
fn text_format_ignores_json_and_syslog() {
    let pats = [pat("any", r"(?P<message>.+)")];
    let p = LineParser::new(&ParseConfig::default(), &pats, None, Format::Text).expect("valid");
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    // Matches, but a text line needs a timestamp capture.
    assert_eq!(
        p.parse_line(SEED.as_bytes(), &mut ctx),
        Err(ParseError::MissingTimestamp {
            field: "timestamp".into()
        })
    );
}

#[test]
fn pattern_priority_first_declared_wins() {
    let pats = [
        pat("second_in_line", r"(?P<timestamp>\S+) .*BETA"),
        pat("first_in_line", r"(?P<timestamp>\S+) ALPHA"),
    ];
    let p = parser(&pats);
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    let r = p
        .parse_line(b"2024-01-01T00:00:00Z ALPHA BETA", &mut ctx)
        .expect("ok");
    assert_eq!(r.matched, Some(0));
    assert_eq!(r.event.name(), Some("test.second_in_line"));
    let r = p
        .parse_line(b"2024-01-01T00:00:00Z ALPHA", &mut ctx)
        .expect("ok");
    assert_eq!(r.matched, Some(1));
    // User patterns come before builtin sets: a user sshd pattern wins.
    let mut mine = pat("mine", r"^Failed password for (?P<user>\S+)");
    mine.program = Some("sshd".into());
    let p = parser(&[mine]);
    let r = p
        .parse_line(
            b"Dec 10 06:55:46 LabSZ sshd[1]: Failed password for root from 1.2.3.4 port 1 ssh2",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, Some(0));
    assert_eq!(r.event.name(), Some("test.mine"));
}

#[test]
fn pattern_typed_fields_and_errors() {
    let mut p1 = pat(
        "scan",
        r"(?P<timestamp>\S+ \S+) .*SCAN duration: (?P<duration>\S+) n=(?P<n>\S+) ok=(?P<ok>\S+)",
    );
    p1.types = [
        ("duration".to_string(), FieldType::Duration),
        ("n".to_string(), FieldType::Int),
        ("ok".to_string(), FieldType::Bool),
    ]
    .into_iter()
    .collect();
    p1.fields = [
        ("level".to_string(), "DEBUG".to_string()),
        ("fields.kind".to_string(), "redis".to_string()),
    ]
    .into_iter()
    .collect();
    let p = parser(&[p1]);
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    let e = p
        .parse_line(
            b"2025-11-21 10:00:00,123 SCAN duration: 12.5ms n=3 ok=yes",
            &mut ctx,
        )
        .expect("ok")
        .event;
    assert_eq!(e.time, ts("2025-11-21T10:00:00.123Z"));
    assert_eq!(e.get("fields.duration"), Some(&Value::Float(12.5)));
    assert_eq!(e.get("fields.n"), Some(&Value::Int(3)));
    assert_eq!(e.get("fields.ok"), Some(&Value::Bool(true)));
    assert_eq!(s(e.get("level")), Some("DEBUG"));
    assert_eq!(s(e.get("fields.kind")), Some("redis"));
    assert_eq!(
        p.parse_line(
            b"2025-11-21 10:00:00,123 SCAN duration: 12.5ms n=three ok=yes",
            &mut ctx
        ),
        Err(ParseError::BadField {
            field: "fields.n".into(),
            value: "three".into(),
            expected: "int"
        })
    );
    let e = p
        .parse_line(
            b"2025-11-21 10:00:00,123 SCAN duration: soon n=3 ok=yes",
            &mut ctx,
        )
        .expect_err("bad duration");
    assert!(e.to_string().contains("fields.duration"), "{e}");
    match p.parse_line(
        b"2025-13-21 10:00:00,123 SCAN duration: 1ms n=3 ok=yes",
        &mut ctx,
    ) {
        Err(ParseError::BadTimestamp { field, .. }) => assert_eq!(field, "timestamp"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pattern_on_syslog_message_keeps_syslog_time_and_aliases_captures() {
    let mut p1 = pat(
        "login",
        r"login failed ip_address=(?P<ip_address>\S+)(?: ip=(?P<ip>\S+))?",
    );
    p1.program = Some("app".into());
    let p = parser(&[p1]);
    let mut ctx = ctx_at("2024-03-01T00:00:00Z");
    let r = p
        .parse_line(
            b"Mar  1 00:00:00 h app[3]: login failed ip_address=1.1.1.1",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, Some(0));
    assert_eq!(r.event.time, ts("2024-03-01T00:00:00Z"));
    assert_eq!(s(r.event.get("fields.ip")), Some("1.1.1.1"));
    let r = p
        .parse_line(
            b"Mar  1 00:00:00 h app[3]: login failed ip_address=1.1.1.1 ip=2.2.2.2",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(s(r.event.get("fields.ip")), Some("2.2.2.2"));
    // Not for another program, nor for "application".
    let r = p
        .parse_line(
            b"Mar  1 00:00:00 h application: login failed ip_address=1.1.1.1",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, None);
}

#[test]
fn config_errors_are_all_reported() {
    let mut bad_types = pat("t", r"(?P<a>\d+)");
    bad_types.types = [("b".to_string(), FieldType::Int)].into_iter().collect();
    let mut bad_ts = pat("ts", r"(?P<a>\d+)");
    bad_ts.timestamp = Some(TimestampCapture {
        field: "when".into(),
        format: TimeFormat::Strftime("%Q".into()),
    });
    let pats = [
        pat("ok", r"x"),
        pat("bad_re", r"(unclosed"),
        bad_types,
        pat("ok", r"y"),
        bad_ts,
        pat("sshd", "z"),
        pat("look", r"(?<=a)b"),
    ];
    let cfg = ParseConfig {
        builtin: vec!["sshd".into(), "nginx".into()],
        ..Default::default()
    };
    let errs = validate(&cfg, &pats);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "parse.builtin[1]",
        "parsers[1].pattern",
        "parsers[2].types.b",
        "parsers[3].name",
        "parsers[4].timestamp.field",
        "parsers[4].timestamp.format",
        "parsers[5].name",
        "parsers[6].pattern",
    ] {
        assert!(fields.contains(&want), "missing {want} in {errs:#?}");
    }
    let re_err = errs
        .iter()
        .find(|e| e.field == "parsers[1].pattern")
        .map(|e| e.message.clone());
    assert!(re_err.unwrap_or_default().contains("unclosed"), "{errs:#?}");
    assert!(validate(&ParseConfig::default(), &[pat("ok", "x")]).is_empty());
}

#[test]
fn enabled_selects_patterns_and_sets() {
    let pats = [
        pat("a", r"(?P<timestamp>\S+) A"),
        pat("b", r"(?P<timestamp>\S+) B"),
    ];
    let cfg = ParseConfig::default();
    let en = ["b".to_string()];
    let p = LineParser::new(&cfg, &pats, Some(&en), Format::Auto).expect("valid");
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    assert_eq!(
        p.parse_line(b"2024-01-01T00:00:00Z A", &mut ctx),
        Err(ParseError::NoMatch)
    );
    assert_eq!(
        p.parse_line(b"2024-01-01T00:00:00Z B", &mut ctx)
            .map(|r| r.matched),
        Ok(Some(1))
    );
    // sshd not enabled for this source.
    let r = p
        .parse_line(
            b"Dec 10 06:55:46 LabSZ sshd[1]: Failed password for root from 1.2.3.4 port 1 ssh2",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(r.matched, None);
    let en = ["sshd".to_string(), "nope".to_string()];
    let errs = LineParser::new(&cfg, &pats, Some(&en), Format::Auto).expect_err("unknown");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "parsers[1]");
    // With builtin: [] globally, a source may still ask for sshd.
    let cfg = ParseConfig {
        builtin: vec![],
        ..Default::default()
    };
    let en = ["sshd".to_string()];
    let p = LineParser::new(&cfg, &pats, Some(&en), Format::Auto).expect("valid");
    let r = p
        .parse_line(
            b"Dec 10 06:55:46 LabSZ sshd[1]: Failed password for root from 1.2.3.4 port 1 ssh2",
            &mut ctx,
        )
        .expect("ok");
    assert_eq!(
        r.matched,
        Some(2),
        "builtin numbering starts after all user patterns"
    );
}

#[test]
fn parser_is_send_sync_and_ctx_is_reusable_across_parsers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LineParser>();
    let p1 = parser(&[pat("a", r"(?P<timestamp>\S+) (?P<x>A)")]);
    let p2 = parser(&[pat("b", r"(?P<timestamp>\S+) (?P<y>B) (?P<z>C)")]);
    let mut ctx = ctx_at("2024-01-01T00:00:00Z");
    assert!(p1.parse_line(b"2024-01-01T00:00:00Z A", &mut ctx).is_ok());
    let e = p2
        .parse_line(b"2024-01-01T00:00:00Z B C", &mut ctx)
        .expect("ok")
        .event;
    assert_eq!(s(e.get("fields.z")), Some("C"));
}

/// A projected parser returns, for every line of real and seed logs, the
/// same result as the full parser with the projection applied afterwards:
/// the same errors (captures it drops are still validated) and the same
/// kept fields in the same order; syslog and text lines carry nothing more.
#[test]
fn projection_equals_parse_then_filter() {
    projection_case(&[
        "host",
        "pid",
        "fields.ip",
        "fields.user",
        "fields.repeat",
        "fields.rhost",
        "level",
        "service",
    ]);
    // Without what the pam pattern's hook reads (rhost) or writes (ip).
    projection_case(&["host", "fields.user", "message"]);
}

fn projection_case(paths: &[&str]) {
    let paths = paths.iter().copied();
    let full = parser(&[]);
    let mut projected = parser(&[]);
    projected.set_projection(crate::Projection::new(paths.clone()));
    let project = crate::Projection::new(paths);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    let mut compared = 0;
    for f in [
        "loghub/OpenSSH_2k.log",
        "loghub/Linux_2k.log",
        "loghub/Apache_2k.log",
        "seeds/app-events.jsonl",
        "seeds/application.log",
    ] {
        let text = std::fs::read_to_string(format!("{dir}{f}")).expect("fixture");
        let (mut a, mut b) = (
            ctx_at("2024-12-10T12:00:00Z"),
            ctx_at("2024-12-10T12:00:00Z"),
        );
        for (i, line) in text.lines().enumerate() {
            let x = full.parse_line(line.as_bytes(), &mut a).map(|mut p| {
                project.apply(&mut p.event.fields);
                (p.matched, p.event)
            });
            let y = projected
                .parse_line(line.as_bytes(), &mut b)
                .map(|p| (p.matched, p.event));
            match (x, y) {
                (Ok(x), Ok(mut y)) => {
                    // JSON lines are stored whole (see `project`); the
                    // syslog and pattern paths store nothing else.
                    let stored = y.1.fields.len();
                    project.apply(&mut y.1.fields);
                    if !f.ends_with(".jsonl") {
                        assert_eq!(stored, y.1.fields.len(), "{f}:{}: unkept fields", i + 1);
                    }
                    assert_eq!(x, y, "{f}:{}", i + 1);
                }
                (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{f}:{}", i + 1),
                (x, y) => panic!("{f}:{}: {x:?} vs {y:?}", i + 1),
            }
            compared += 1;
        }
    }
    assert!(compared > 6000, "{compared} lines");
}

/// A context given spent field buffers builds events in them, cleared:
/// the same events as from fresh buffers.
#[test]
fn recycled_field_buffers_start_empty() {
    let p = parser(&[]);
    let line =
        b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 1.2.3.4 port 22 ssh2";
    let fresh = p
        .parse_line(line, &mut ctx_at("2024-12-10T12:00:00Z"))
        .expect("parses");
    let mut ctx = ctx_at("2024-12-10T12:00:00Z");
    let mut junk = Fields::new();
    junk.push(Str::from("stale"), Value::from("x"));
    junk.push(Str::from("event"), Value::from("old"));
    ctx.recycle(&mut vec![junk]);
    let got = p.parse_line(line, &mut ctx).expect("parses");
    assert_eq!(got, fresh);
    assert!(ctx.take_spare().is_empty(), "the buffer was used");
}

/// `parse_text` (UTF-8 known) gives what `parse_line` gives, line ends
/// and all.
#[test]
fn parse_text_equals_parse_line() {
    let p = parser(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    let mut lines: Vec<String> = ["", "  ", "\r\n", "x\r", "{\"a\":1}\r\r\n"]
        .map(String::from)
        .to_vec();
    for f in [
        "loghub/OpenSSH_2k.log",
        "loghub/Linux_2k.log",
        "seeds/app-events.jsonl",
    ] {
        let text = std::fs::read_to_string(format!("{dir}{f}")).expect("fixture");
        lines.extend(text.lines().map(|l| format!("{l}\r")));
    }
    let (mut a, mut b) = (
        ctx_at("2024-12-10T12:00:00Z"),
        ctx_at("2024-12-10T12:00:00Z"),
    );
    for l in &lines {
        let x = p
            .parse_line(l.as_bytes(), &mut a)
            .map_err(|e| e.to_string());
        let y = p.parse_text(l, &mut b).map_err(|e| e.to_string());
        assert_eq!(x, y, "{l:?}");
    }
}
