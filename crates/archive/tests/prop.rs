//! Property tests: the payload codec round-trips any event, sealed or not;
//! any single-byte change to a stored segment is detected by verify (and
//! never panics it); the fuzz body survives arbitrary bytes.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use secmon_archive::Storage;
use secmon_archive::internals::{NonceCounter, decode_event, encode_event, fuzz_fixture, fuzz_one};
use secmon_core::{Event, Fields, SourceId, Str, Timestamp, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,40}".prop_map(|s| Value::Str(Str::from(s))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        any::<i64>(),
        any::<i64>(),
        any::<u32>(),
        any::<u64>(),
        prop::collection::vec(("[a-z.]{1,12}", value()), 0..8),
        prop::option::of(".{0,60}"),
    )
        .prop_map(|(t, r, s, line, fields, raw)| {
            let mut f = Fields::new();
            for (k, v) in fields {
                f.push(Str::from(k), v);
            }
            Event {
                time: Timestamp(t),
                received: Timestamp(r),
                source: SourceId(s),
                line,
                fields: f,
                raw: raw.map(|s| s.as_str().into()),
            }
        })
}

/// NaN != NaN: compare through the bit patterns.
fn same(a: &Event, b: &Event) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn codec_round_trips(e in event(), seal_prefix in "[a-z]{0,2}") {
        let mut n = NonceCounter::new([3; 12]);
        let mut out = Vec::new();
        encode_event(&e, &mut |_, _| Ok(None), &mut n, &mut out).unwrap();
        prop_assert!(same(&decode_event(&out, &mut |_| None).unwrap(), &e));
        // Sealing the fields whose path starts with the prefix round-trips
        // with the key and reads as erased without it.
        let key = secmon_archive::internals::test_cipher([9; 32]);
        let mut out = Vec::new();
        let p = seal_prefix.clone();
        let k2 = key.clone();
        encode_event(&e, &mut |path, _| Ok(path.starts_with(p.as_str()).then(|| ([1; 16], k2.clone()))), &mut n, &mut out).unwrap();
        let back = decode_event(&out, &mut |_| Some(key.clone())).unwrap();
        prop_assert!(same(&back, &e));
        let erased = decode_event(&out, &mut |_| None).unwrap();
        for (k, v) in erased.fields.iter() {
            if k.starts_with(seal_prefix.as_str()) {
                prop_assert_eq!(v, &Value::from(secmon_archive::ERASED));
            }
        }
    }

    #[test]
    fn decode_never_panics(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_event(&b, &mut |_| None);
    }

    #[test]
    fn fuzz_body_never_panics(b in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzz_one(&b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_byte_change_in_a_segment_is_detected(pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (base, seg) = fuzz_fixture();
        let st = base.snapshot();
        let mut b = st.read(seg).unwrap();
        let i = pos.index(b.len());
        b[i] ^= x;
        st.put(seg, b);
        let keys = secmon_archive::Keys::new(
            secmon_archive::MasterKey::from_bytes([1; 32]),
            secmon_archive::SigningKey::from_bytes([2; 32]),
        );
        let r = secmon_archive::verify_archive(&st, &keys, None, &mut |_| {}).unwrap();
        prop_assert!(!r.ok(), "byte {} ^ {:#x} undetected", i, x);
        prop_assert!(r.problems[0].file == *seg, "{}", r.problems[0]);
    }
}
