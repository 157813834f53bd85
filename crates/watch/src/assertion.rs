//! The tiny assertion language of HTTP probes: `status == "ok"`,
//! `relay.healthy == true`, `containers >= 1`, checked against a JSON body.
//!
//! One assertion is `PATH OP LITERAL`. `PATH` is a dotted path into the JSON
//! document (`redis.connected`; a numeric segment indexes an array:
//! `items.0.name`). `OP` is one of `==` `!=` `<` `<=` `>` `>=`. `LITERAL` is a
//! double- or single-quoted string, a number, `true`, `false` or `null`.
//!
//! Semantics, chosen to be unsurprising for health checks:
//! - a missing path fails every assertion (a health body that lost a field is
//!   not healthy, even for `!=`);
//! - numbers compare numerically (`1 == 1.0`); strings compare with strings
//!   (ordering is byte-wise); nothing is coerced (`"1" == 1` is false);
//! - ordering operators on values of different or unordered types fail.
//!
//! This module does not fetch anything and knows nothing of probes; it only
//! parses assertions once, at config validation, and evaluates them.

use std::fmt;

use serde_json::Value as Json;

/// A parse error, with the 0-based character position where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at position {pos}: {message}")]
pub struct AssertionError {
    pub pos: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// A compiled assertion; `Display` gives back its canonical text, which is
/// what failure reports quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    path: JsonPath,
    op: Op,
    lit: Literal,
}

/// A dotted path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<String>,
}

impl JsonPath {
    /// `a.b.0.c`: non-empty segments of letters, digits, `_` and `-`.
    pub fn parse(s: &str) -> Result<JsonPath, AssertionError> {
        if s.is_empty() {
            return Err(AssertionError {
                pos: 0,
                message: "empty path".into(),
            });
        }
        let mut segments = Vec::new();
        let mut pos = 0;
        for seg in s.split('.') {
            if seg.is_empty() {
                return Err(AssertionError {
                    pos,
                    message: "empty path segment".into(),
                });
            }
            if let Some((i, c)) = seg
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
            {
                return Err(AssertionError {
                    pos: pos + seg[..i].chars().count(),
                    message: format!("unexpected {c:?} in path"),
                });
            }
            pos += seg.chars().count() + 1;
            segments.push(seg.to_string());
        }
        Ok(JsonPath {
            text: s.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if every segment exists.
    pub fn lookup<'a>(&self, doc: &'a Json) -> Option<&'a Json> {
        let mut cur = doc;
        for seg in &self.segments {
            cur = match cur {
                Json::Object(m) => m.get(seg)?,
                Json::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// Why an assertion failed, for the `failed_assertions` field.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The assertion as written (canonical form).
    pub assertion: String,
    /// The value found, short (`missing` when the path does not exist).
    pub actual: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (got {})", self.assertion, self.actual)
    }
}

impl Assertion {
    pub fn parse(s: &str) -> Result<Assertion, AssertionError> {
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !"=!<>".contains(chars[i]) {
            i += 1;
        }
        let path_text: String = chars[start..i].iter().collect();
        if path_text.is_empty() {
            return Err(AssertionError {
                pos: start,
                message: "expected a path, e.g. status or redis.connected".into(),
            });
        }
        let path = JsonPath::parse(&path_text).map_err(|e| AssertionError {
            pos: start + e.pos,
            message: e.message,
        })?;
        skip_ws(&mut i);
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let (op, len) = match two.as_str() {
            "==" => (Op::Eq, 2),
            "!=" => (Op::Ne, 2),
            "<=" => (Op::Le, 2),
            ">=" => (Op::Ge, 2),
            _ => match chars.get(i) {
                Some('<') => (Op::Lt, 1),
                Some('>') => (Op::Gt, 1),
                Some('=') => {
                    return Err(AssertionError {
                        pos: i,
                        message: "use == for equality".into(),
                    });
                }
                _ => {
                    return Err(AssertionError {
                        pos: i,
                        message: "expected an operator: == != < <= > >=".into(),
                    });
                }
            },
        };
        i += len;
        skip_ws(&mut i);
        let lit_start = i;
        let lit = match chars.get(i) {
            Some(&q @ ('"' | '\'')) => {
                i += 1;
                let mut out = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(AssertionError {
                                pos: lit_start,
                                message: "unterminated string".into(),
                            });
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&c) => out.push(c),
                                None => {
                                    return Err(AssertionError {
                                        pos: i,
                                        message: "dangling escape".into(),
                                    });
                                }
                            }
                            i += 2;
                        }
                        Some(&c) if c == q => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                Literal::Str(out)
            }
            Some(_) => {
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                let word: String = chars[lit_start..i].iter().collect();
                match word.as_str() {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    "null" => Literal::Null,
                    w => match w.parse::<f64>() {
                        Ok(n) if n.is_finite() => Literal::Num(n),
                        _ => {
                            return Err(AssertionError {
                                pos: lit_start,
                                message: format!(
                                    "expected a quoted string, a number, true, false or null, found {w:?}"
                                ),
                            });
                        }
                    },
                }
            }
            None => {
                return Err(AssertionError {
                    pos: i,
                    message: "expected a value after the operator".into(),
                });
            }
        };
        skip_ws(&mut i);
        if i < chars.len() {
            return Err(AssertionError {
                pos: i,
                message: "unexpected text after the value (one comparison per assertion)".into(),
            });
        }
        if matches!(lit, Literal::Bool(_) | Literal::Null) && !matches!(op, Op::Eq | Op::Ne) {
            return Err(AssertionError {
                pos: lit_start,
                message: format!("{} needs a number or a string", op.as_str()),
            });
        }
        Ok(Assertion { path, op, lit })
    }

    /// `Ok(())` when the document satisfies the assertion.
    pub fn check(&self, doc: &Json) -> Result<(), Failure> {
        let fail = |actual: String| Failure {
            assertion: self.to_string(),
            actual,
        };
        let Some(v) = self.path.lookup(doc) else {
            return Err(fail("missing".into()));
        };
        let ok = match self.op {
            Op::Eq => equal(v, &self.lit),
            Op::Ne => !equal(v, &self.lit),
            op => match order(v, &self.lit) {
                Some(o) => match op {
                    Op::Lt => o.is_lt(),
                    Op::Le => o.is_le(),
                    Op::Gt => o.is_gt(),
                    Op::Ge => o.is_ge(),
                    Op::Eq | Op::Ne => false,
                },
                None => false,
            },
        };
        if ok { Ok(()) } else { Err(fail(short(v))) }
    }
}

fn equal(v: &Json, lit: &Literal) -> bool {
    match (v, lit) {
        (Json::String(s), Literal::Str(l)) => s == l,
        (Json::Number(n), Literal::Num(l)) => n.as_f64() == Some(*l),
        (Json::Bool(b), Literal::Bool(l)) => b == l,
        (Json::Null, Literal::Null) => true,
        _ => false,
    }
}

fn order(v: &Json, lit: &Literal) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Json::String(s), Literal::Str(l)) => Some(s.as_str().cmp(l.as_str())),
        (Json::Number(n), Literal::Num(l)) => n.as_f64()?.partial_cmp(l),
        _ => None,
    }
}

/// A value quoted in a failure report: the body belongs to someone else, so
/// never more than a few dozen characters of it.
fn short(v: &Json) -> String {
    const MAX: usize = 48;
    let s = match v {
        Json::Object(_) => "an object".to_string(),
        Json::Array(a) => format!("an array of {}", a.len()),
        other => other.to_string(),
    };
    if s.chars().count() <= MAX {
        s
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.path.text, self.op.as_str())?;
        match &self.lit {
            Literal::Str(s) => write!(f, "{}", Json::String(s.clone())),
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(a: &str, doc: &Json) -> Result<(), Failure> {
        Assertion::parse(a).unwrap().check(doc)
    }

    #[test]
    fn seed_health_bodies() {
        let mgmt = json!({"status":"ok","relay":{"healthy":true},"redis":{"connected":true}});
        assert!(check(r#"status == "ok""#, &mgmt).is_ok());
        assert!(check("relay.healthy == true", &mgmt).is_ok());
        assert!(check("redis.connected == true", &mgmt).is_ok());
        let agent = json!({"status":"ok","containers":3,"hibernation":{"paused":1}});
        assert!(check("containers >= 1", &agent).is_ok());
        assert!(check("containers < 3", &agent).is_err());
        assert!(check("hibernation.paused <= 1", &agent).is_ok());
    }

    #[test]
    fn failures_say_what_was_found() {
        let doc = json!({"status":"degraded","redis":{"connected":false}});
        let f = check("status == 'ok'", &doc).unwrap_err();
        assert_eq!(f.to_string(), r#"status == "ok" (got "degraded")"#);
        let f = check("redis.connected == true", &doc).unwrap_err();
        assert_eq!(f.actual, "false");
        let f = check("relay.healthy == true", &doc).unwrap_err();
        assert_eq!(f.actual, "missing");
        // Missing fails even a negative test.
        assert!(check("relay.healthy != false", &doc).is_err());
        let f = check("redis == 1", &doc).unwrap_err();
        assert_eq!(f.actual, "an object");
    }

    #[test]
    fn no_coercion_and_numeric_equality() {
        let doc = json!({"n": 1, "s": "1", "f": 2.5, "z": null, "a": [10, 20]});
        assert!(check("n == 1.0", &doc).is_ok());
        assert!(check("s == 1", &doc).is_err());
        assert!(check(r#"s == "1""#, &doc).is_ok());
        assert!(check("f > 2", &doc).is_ok());
        assert!(check("s > 0", &doc).is_err());
        assert!(check("z == null", &doc).is_ok());
        assert!(check("n != null", &doc).is_ok());
        assert!(check("a.1 == 20", &doc).is_ok());
        assert!(check("a.2 == 20", &doc).is_err());
        assert!(check(r#"s < "2""#, &doc).is_ok());
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = Assertion::parse("status = ok").unwrap_err();
        assert_eq!(e.pos, 7);
        assert!(e.message.contains("=="));
        assert!(Assertion::parse("status == ok").is_err());
        assert!(Assertion::parse("status ==").is_err());
        assert!(Assertion::parse(r#"status == "ok"#).is_err());
        assert!(Assertion::parse("== 1").is_err());
        assert!(Assertion::parse("a..b == 1").is_err());
        assert!(Assertion::parse("a == 1 and b == 2").is_err());
        assert!(Assertion::parse("a > true").is_err());
        assert!(Assertion::parse("a$b == 1").is_err());
        // No spaces needed.
        assert!(Assertion::parse("containers>=1").is_ok());
    }

    #[test]
    fn display_is_canonical() {
        let a = Assertion::parse("  status=='o\\'k'  ").unwrap();
        assert_eq!(a.to_string(), r#"status == "o'k""#);
    }

    #[test]
    fn long_values_are_cut() {
        let doc = json!({"s": "x".repeat(500)});
        let f = check(r#"s == "y""#, &doc).unwrap_err();
        assert!(f.actual.chars().count() <= 49);
    }
}
