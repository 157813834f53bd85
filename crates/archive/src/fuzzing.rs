//! The body of the `archive` fuzz target, shared with the corpus replay
//! test: the segment reader (header, framing), the payload decoder, and
//! recovery + search + verify over a small archive whose newest `auth`
//! segment is replaced by the input. None of it may panic on any bytes.
//! Not used by the archive itself.

use std::sync::{Arc, OnceLock};

use secmon_core::{Event, Fields, Timestamp, Value};

use crate::archive::{Archive, Query};
use crate::codec;
use crate::crypto::{Keys, MasterKey, SigningKeyBox};
use crate::format::{Frames, Next, SegmentHeader};
use crate::policy::ArchiveConfig;
use crate::storage::{MemStorage, Storage};

const T0: i64 = 1_700_000_000_000;

fn keys() -> Keys {
    Keys::new(
        MasterKey::from_bytes([1; 32]),
        SigningKeyBox::from_bytes([2; 32]),
    )
}

fn config() -> ArchiveConfig {
    ArchiveConfig {
        personal_fields: vec!["fields.email".into()],
        subject_fields: vec!["fields.user".into()],
        ..ArchiveConfig::default()
    }
}

/// A closed archive with a few events; the path of its newest auth segment.
pub fn fixture() -> &'static (MemStorage, String) {
    static F: OnceLock<(MemStorage, String)> = OnceLock::new();
    F.get_or_init(|| {
        let st = MemStorage::new();
        let build = || -> crate::Result<()> {
            let policy = config().validate(&[])?;
            let (mut a, _) = Archive::open(Arc::new(st.clone()), policy, keys(), Timestamp(T0))?;
            for i in 0..6i64 {
                let mut f = Fields::new();
                f.insert(
                    "event",
                    Value::from(if i % 2 == 0 {
                        "auth.login_failed"
                    } else {
                        "http.request"
                    }),
                );
                f.insert("fields.user", Value::from("alice"));
                f.insert("fields.email", Value::from("alice@example.com"));
                f.insert("fields.n", Value::Int(i));
                let mut e = Event::new(Timestamp(T0 + i), f);
                e.raw = Some(Arc::from("raw line"));
                a.append(&[e], Timestamp(T0 + i))?;
            }
            a.close(Timestamp(T0 + 10))
        };
        let _ = build();
        let seg = st
            .paths()
            .into_iter()
            .rfind(|p| p.starts_with("seg/auth/"))
            .unwrap_or_default();
        (st, seg)
    })
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(h) = SegmentHeader::parse("fuzz", rest) {
                let mut f = Frames::new(rest, h.len);
                while let Next::Record(r) = f.next_record() {
                    let _ = (r.aad(), r.seq, r.time);
                }
            }
            let mut f = Frames::new(rest, 0);
            while let Next::Record(_) = f.next_record() {}
        }
        1 => {
            let _ = codec::decode_event(rest, &mut |_| None);
        }
        _ => {
            let (base, seg) = fixture();
            if seg.is_empty() {
                return;
            }
            let st = base.snapshot();
            st.put(seg, rest.to_vec());
            let _ = crate::verify::verify_archive(&st, &keys(), None, &mut |_| {});
            if let Ok(policy) = config().validate(&[])
                && let Ok((mut a, _)) =
                    Archive::open(Arc::new(st.clone()), policy, keys(), Timestamp(T0 + 100))
            {
                let _ = a.search_collect(&Query::default(), &|_| true, "fuzz", Timestamp(T0 + 100));
            }
            let _ = st.read(seg);
        }
    }
}
