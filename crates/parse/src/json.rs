//! JSON lines → flattened fields, in one pass.
//!
//! A custom [`DeserializeSeed`] walks the object as serde_json reads it and
//! pushes every scalar straight into [`Fields`] under its dotted path
//! (`fields.geo.country`), building keys in one reusable buffer. There is no
//! intermediate `serde_json::Value` tree: that tree would cost an allocation
//! per key and value and dominate the parse. The configured timestamp field
//! is read into the event time on the way and not kept as a field.
//!
//! Arrays become [`Value::Array`]; objects inside arrays are kept as their
//! JSON text (field paths do not index into arrays). An empty object leaves
//! no field (flattening has nothing to record). Nesting deeper than
//! [`MAX_DEPTH`] is an error, never a deep recursion. This module does not
//! interpret field values (levels, event names): that is the engine's job.

use std::fmt;

use secmon_core::{Fields, Str, Timestamp, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ParseError;
use crate::fields::{Aliases, put};
use crate::timefmt::TimeParser;

/// Objects and arrays nested deeper than this make the line invalid.
pub const MAX_DEPTH: usize = 32;

/// The compiled JSON settings of a parser.
#[derive(Debug, Clone)]
pub(crate) struct JsonPlan {
    /// The timestamp path as configured (for error messages).
    pub(crate) ts_field: String,
    /// The same path after alias renaming: what the key buffer will hold.
    pub(crate) ts_key: String,
    pub(crate) time: TimeParser,
}

enum Ts {
    Missing,
    Found(Timestamp),
    Bad { value: String, reason: String },
}

struct State<'p> {
    fields: &'p mut Fields,
    key: &'p mut String,
    aliases: &'p Aliases,
    plan: &'p JsonPlan,
    ts: Ts,
    not_object: bool,
    /// Bit `h(key)` is set for every key pushed so far: a key whose bit is
    /// clear cannot be a duplicate, which spares the linear scan for almost
    /// every field of almost every line.
    seen: u64,
}

#[inline]
fn key_bit(k: &str) -> u64 {
    let b = k.as_bytes();
    let last = b.last().copied().unwrap_or(0) as usize;
    let mid = b.get(b.len() / 2).copied().unwrap_or(0) as usize;
    1u64 << ((b.len().wrapping_mul(7) ^ last ^ mid.wrapping_mul(3)) & 63)
}

impl State<'_> {
    #[inline]
    fn scalar(&mut self, v: Value, renamed: bool) {
        if self.key.as_str() == self.plan.ts_key {
            self.ts = match &v {
                Value::Str(s) => match self.plan.time.parse_str(s) {
                    Ok(t) => Ts::Found(t),
                    Err(reason) => Ts::Bad {
                        value: secmon_core::time::truncate(s),
                        reason,
                    },
                },
                Value::Int(i) => self.number(*i as f64, &v),
                Value::Float(f) => self.number(*f, &v),
                other => Ts::Bad {
                    value: other.to_key().to_string(),
                    reason: "expected a string or a number".into(),
                },
            };
            return;
        }
        let bit = key_bit(self.key);
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.fields.push(Str::from(self.key.as_str()), v);
        } else {
            put(self.fields, self.key, v, renamed);
        }
    }

    fn number(&self, n: f64, v: &Value) -> Ts {
        match self.plan.time.parse_number(n) {
            Ok(t) => Ts::Found(t),
            Err(reason) => Ts::Bad {
                value: v.to_key().to_string(),
                reason,
            },
        }
    }
}

/// Parses one JSON object line into `fields` and returns the event time.
pub(crate) fn parse(
    line: &str,
    plan: &JsonPlan,
    aliases: &Aliases,
    key: &mut String,
    fields: &mut Fields,
) -> Result<Timestamp, ParseError> {
    key.clear();
    let mut st = State {
        fields,
        key,
        aliases,
        plan,
        ts: Ts::Missing,
        not_object: false,
        seen: 0,
    };
    let mut de = serde_json::Deserializer::from_str(line);
    let res = (&mut de)
        .deserialize_any(TopVisitor(&mut st))
        .and_then(|()| de.end());
    if let Err(e) = res {
        if st.not_object {
            return Err(ParseError::NotAnObject);
        }
        let msg = e.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        return Err(ParseError::InvalidJson {
            column: e.column(),
            message: msg,
        });
    }
    match st.ts {
        Ts::Found(t) => Ok(t),
        Ts::Missing => Err(ParseError::MissingTimestamp {
            field: plan.ts_field.clone(),
        }),
        Ts::Bad { value, reason } => Err(ParseError::BadTimestamp {
            field: plan.ts_field.clone(),
            value,
            reason,
        }),
    }
}

struct TopVisitor<'s, 'p>(&'s mut State<'p>);

impl<'de> Visitor<'de> for TopVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        visit_object(self.0, map, 1, false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.0.not_object = true;
        Err(de::Error::custom("not an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.not_object = true;
        Err(E::custom("not an object"))
    }
}

fn visit_object<'de, A: MapAccess<'de>>(
    st: &mut State<'_>,
    mut map: A,
    depth: usize,
    renamed: bool,
) -> Result<(), A::Error> {
    if depth > MAX_DEPTH {
        return Err(de::Error::custom(format_args!(
            "nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    let prefix = st.key.len();
    while let Some(seg_renamed) = map.next_key_seed(KeySeed(st))? {
        map.next_value_seed(ValueSeed {
            st,
            depth,
            renamed: renamed || seg_renamed,
        })?;
        st.key.truncate(prefix);
    }
    Ok(())
}

/// Appends `.segment` (alias-renamed) to the key buffer; yields whether the
/// segment was renamed.
struct KeySeed<'s, 'p>(&'s mut State<'p>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    #[inline]
    fn visit_str<E: de::Error>(self, k: &str) -> Result<bool, E> {
        let st = self.0;
        if !st.key.is_empty() {
            st.key.push('.');
        }
        match st.aliases.get(k) {
            Some(to) => {
                st.key.push_str(to);
                Ok(true)
            }
            None => {
                st.key.push_str(k);
                Ok(false)
            }
        }
    }
}

struct ValueSeed<'s, 'p> {
    st: &'s mut State<'p>,
    depth: usize,
    renamed: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    #[inline]
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.st.scalar(Value::Str(Str::from(v)), self.renamed);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.st.scalar(Value::Int(v), self.renamed);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let v = match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(v as f64),
        };
        self.st.scalar(v, self.renamed);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.st.scalar(Value::Float(v), self.renamed);
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.st.scalar(Value::Bool(v), self.renamed);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.st.scalar(Value::Null, self.renamed);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.st.key.as_str() == self.st.plan.ts_key {
            self.st.ts = Ts::Bad {
                value: "{…}".into(),
                reason: "expected a string or a number, found an object".into(),
            };
        }
        visit_object(self.st, map, self.depth + 1, self.renamed)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let arr = read_array(seq, self.depth + 1)?;
        self.st.scalar(Value::Array(arr), self.renamed);
        Ok(())
    }
}

fn read_array<'de, A: SeqAccess<'de>>(mut seq: A, depth: usize) -> Result<Vec<Value>, A::Error> {
    if depth > MAX_DEPTH {
        return Err(de::Error::custom(format_args!(
            "nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
    while let Some(v) = seq.next_element_seed(ElemSeed { depth })? {
        out.push(v);
    }
    Ok(out)
}

/// One array element: scalars and arrays as values, objects as JSON text.
struct ElemSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ElemSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElemSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Str::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(v as f64),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        read_array(seq, self.depth + 1).map(Value::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        if self.depth + 1 > MAX_DEPTH {
            return Err(de::Error::custom(format_args!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        // Rare: objects inside arrays. serde_json's own recursion limit
        // bounds this nested read.
        let obj: serde_json::Map<String, serde_json::Value> =
            serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Value::Str(Str::from(
            serde_json::Value::Object(obj).to_string(),
        )))
    }
}
