//! Property tests: no input makes `parse_line` panic, in any format; and a
//! seed-format event serialized by serde_json parses back to the same
//! time and fields.

use proptest::prelude::*;
use secmon_core::{SourceId, Timestamp, Value};
use secmon_parse::{Format, LineCtx, LineParser, ParseConfig, PatternConfig};

fn parsers() -> &'static [LineParser] {
    static PARSERS: std::sync::OnceLock<Vec<LineParser>> = std::sync::OnceLock::new();
    PARSERS.get_or_init(build_parsers)
}

fn build_parsers() -> Vec<LineParser> {
    let pats: Vec<PatternConfig> = serde_saphyr::from_str(
        r#"
- name: py
  pattern: '^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*?)(?: n=(?P<n>\S+))?(?: d=(?P<d>\S+))?$'
  types: {n: int, d: duration}
- name: ts
  pattern: '^(?P<when>\d+) (?P<rest>.*)'
  timestamp: {field: when, format: unix}
"#,
    )
    .expect("yaml");
    [Format::Auto, Format::Json, Format::Syslog, Format::Text]
        .into_iter()
        .map(|f| LineParser::new(&ParseConfig::default(), &pats, None, f).expect("valid"))
        .collect()
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    let prefixes = prop_oneof![
        Just(Vec::new()),
        Just(b"{".to_vec()),
        Just(br#"{"timestamp":"2024-01-15T10:30:00Z","fields":"#.to_vec()),
        Just(b"<13>1 ".to_vec()),
        Just(b"<38>Dec 10 06:55:46 ".to_vec()),
        Just(b"Dec 10 06:55:46 LabSZ sshd[1]: ".to_vec()),
        Just(b"2025-11-21 10:00:00,123 - cache - ERROR - ".to_vec()),
        Just(b"1700000000 ".to_vec()),
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,200}".prop_map(String::into_bytes),
        proptest::collection::vec(
            prop_oneof![
                Just("Failed password for "),
                Just("invalid user "),
                Just(" from "),
                Just("1.2.3.4"),
                Just(" port 22"),
                Just("[a x=\"1\"]"),
                Just("{\"a\":"),
                Just("["),
                Just("]"),
                Just("}"),
                Just(" "),
                Just("message repeated 3 times: [ "),
                Just("rhost=::1"),
                Just("n=5"),
                Just("d=3ms"),
            ],
            0..20
        )
        .prop_map(|v| v.concat().into_bytes()),
    ];
    (prefixes, body).prop_map(|(mut p, b)| {
        p.extend(b);
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(line in line_strategy(), received in any::<i64>(), year_drift in 0u8..3) {
        let ps = parsers();
        for p in ps {
            let mut ctx = LineCtx::new(SourceId(0), Timestamp(received));
            for _ in 0..=year_drift {
                let _ = p.parse_line(&line, &mut ctx);
            }
        }
    }
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        (-1e15f64..1e15).prop_map(serde_json::Value::from),
        "\\PC{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) if n.is_f64() => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Number(n) => Value::Int(n.as_i64().unwrap_or_default()),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        other => Value::from(other.to_string().as_str()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn json_round_trip(
        ms in -62_000_000_000_000i64..253_000_000_000_000,
        level in prop_oneof![Just("DEBUG"), Just("INFO"), Just("WARN"), Just("ERROR"), Just("FATAL")],
        event in "[a-z]{1,10}\\.[a-z_]{1,16}",
        service in "[a-z-]{1,20}",
        fields in proptest::collection::btree_map("[a-z][a-z0-9_]{0,15}", scalar(), 1..10),
        trace in proptest::option::of("[a-f0-9]{1,32}"),
    ) {
        let fields: std::collections::BTreeMap<String, serde_json::Value> = fields
            .into_iter()
            .filter(|(k, _)| !ParseConfig::default().aliases.contains_key(k))
            .collect();
        let t = Timestamp(ms);
        let mut obj = serde_json::json!({
            "timestamp": t.to_rfc3339(),
            "level": level,
            "event": event,
            "service": service,
            "fields": fields,
        });
        if let Some(tr) = &trace {
            obj["trace_id"] = serde_json::Value::from(tr.as_str());
        }
        let line = serde_json::to_string(&obj).expect("serialize");
        let p = &parsers()[0];
        let mut ctx = LineCtx::new(SourceId(0), Timestamp(0));
        let e = p.parse_line(line.as_bytes(), &mut ctx).expect("parses").event;
        prop_assert_eq!(e.time, t);
        prop_assert_eq!(e.name(), Some(event.as_str()));
        prop_assert_eq!(e.get("level"), Some(&Value::from(level)));
        prop_assert_eq!(e.get("service"), Some(&Value::from(service.as_str())));
        prop_assert_eq!(e.get("trace_id").cloned(), trace.as_deref().map(Value::from));
        for (k, v) in &fields {
            prop_assert_eq!(e.get(&format!("fields.{k}")), Some(&to_value(v)), "field {}", k);
        }
        prop_assert_eq!(e.fields.len(), 3 + fields.len() + usize::from(trace.is_some()));
        // And back: the event's JSON is the object we started from.
        prop_assert_eq!(e.to_json(), obj);
    }
}
