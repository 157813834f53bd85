//! Projection: the event fields anyone downstream of the parser reads.
//!
//! `secmon replay` only needs verdicts, and the rules read a handful of
//! fields (`event`, `fields.ip`, `fields.user`…) of events that carry many
//! more (an sshd line's message, program, port, method…). Building, moving
//! and freeing those is most of what a parsed line costs. With a
//! [`Projection`] set, the parser still parses and validates every field
//! exactly as before — a capture that fails its type conversion is the
//! same error, so the same lines are rejected — but stores only the fields
//! the projection keeps. Events it returns are therefore indistinguishable
//! to anything that reads only those fields.
//!
//! The catalog's required fields are always kept, since the caller checks
//! them on every event ([`secmon_core::catalog::missing_fields`]).
//!
//! Only the syslog and pattern paths project, where it saves building the
//! values. JSON lines are stored whole: serde has built every value by the
//! time a filter could run, and filtering afterwards cost the parser
//! threads 30 % more instructions to save the engine thread 6 % (measured
//! on seed-format events with callgrind).

use rustc_hash::FxHashSet;
use secmon_core::{Fields, catalog};

#[derive(Debug, Clone)]
pub struct Projection {
    paths: FxHashSet<Box<str>>,
}

impl Projection {
    /// Keeps `paths`, `event`, and every field the catalog requires.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Projection {
        let mut all: Vec<Box<str>> = paths.into_iter().map(Box::from).collect();
        all.push(Box::from(secmon_core::event::names::EVENT));
        for spec in catalog::CATALOG {
            for f in spec.required {
                all.push(format!("fields.{f}").into_boxed_str());
            }
        }
        Projection {
            paths: all.into_iter().collect(),
        }
    }

    #[inline]
    pub fn keeps(&self, key: &str) -> bool {
        self.paths.contains(key)
    }

    /// Whether any kept path starts with `prefix` (structured-data fields
    /// are named at parse time).
    pub fn keeps_prefix(&self, prefix: &str) -> bool {
        self.paths.iter().any(|p| p.starts_with(prefix))
    }

    /// Drops what is not kept, for patterns whose post-processing hook
    /// needs every capture first.
    pub fn apply(&self, fields: &mut Fields) {
        fields.retain(|k| self.keeps(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmon_core::{Str, Value};

    #[test]
    fn keeps_paths_event_and_catalog_fields() {
        let p = Projection::new(["fields.ip", "host"]);
        assert!(p.keeps("fields.ip"));
        assert!(p.keeps("host"));
        assert!(p.keeps("event"));
        assert!(p.keeps("fields.user_id"), "required by auth.login_failed");
        assert!(!p.keeps("message"));
        assert!(!p.keeps("fields.i"));
        let mut f = Fields::new();
        f.push(Str::from("message"), Value::from("x"));
        f.push(Str::from("fields.ip"), Value::from("1.2.3.4"));
        f.push(Str::from("event"), Value::from("a"));
        p.apply(&mut f);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["fields.ip", "event"]);
    }
}
