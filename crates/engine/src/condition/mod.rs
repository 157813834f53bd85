//! Compiled conditions: a tree of typed nodes built once from either the
//! string expression language ([`parse_expr`]) or the YAML map form
//! ([`compile_config`]), evaluated against an [`Event`] without re-parsing,
//! allocating (for string values) or looking anything up by name.
//!
//! This module only decides "does this event match"; it knows nothing of
//! rules, windows or groups. Negative operators (`!=`, `not in`, `!~`) are
//! `Not` of the positive node, so a missing field is false for every positive
//! test and true for every negative one.

mod compile;
mod expr;

use std::cmp::Ordering;

use ipnet::IpNet;
use regex::Regex;
use secmon_core::{Event, Str, Value};

pub use compile::{CondError, compile_config};
pub use expr::{ExprError, parse_expr};

/// Largest compiled regex program, so a hostile or careless pattern cannot
/// make rule loading eat memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number; compared numerically with Int, Float and numeric strings.
    /// `text` is the number as written, for string fallbacks.
    Num(f64, Str),
    /// Anything else, compared with the value's `to_key()` spelling
    /// (`true`, `false` and `null` are their spellings too).
    Str(Str),
}

impl Literal {
    pub fn text(&self) -> &str {
        match self {
            Literal::Num(_, t) | Literal::Str(t) => t,
        }
    }
}

/// Ordering comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// String tests of the map form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Condition {
    True,
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Exists(Str),
    Eq(Str, Literal),
    Cmp(Str, CmpOp, Literal),
    In(Str, Vec<Literal>),
    Regex(Str, Box<Regex>),
    Cidr(Str, Vec<IpNet>),
    Str(Str, StrOp, Str),
}

impl Condition {
    /// Whether `ev` satisfies the condition.
    pub fn matches(&self, ev: &Event) -> bool {
        match self {
            Condition::True => true,
            Condition::And(cs) => cs.iter().all(|c| c.matches(ev)),
            Condition::Or(cs) => cs.iter().any(|c| c.matches(ev)),
            Condition::Not(c) => !c.matches(ev),
            Condition::Exists(p) => ev.get(p).is_some(),
            Condition::Eq(p, lit) => ev.get(p).is_some_and(|v| any_scalar(v, &|s| eq(s, lit))),
            Condition::Cmp(p, op, lit) => ev
                .get(p)
                .is_some_and(|v| any_scalar(v, &|s| cmp(s, *op, lit))),
            Condition::In(p, set) => ev
                .get(p)
                .is_some_and(|v| any_scalar(v, &|s| set.iter().any(|l| eq(s, l)))),
            Condition::Regex(p, re) => ev
                .get(p)
                .is_some_and(|v| any_scalar(v, &|s| with_text(s, |t| re.is_match(t)))),
            Condition::Cidr(p, nets) => ev.get(p).is_some_and(|v| {
                any_scalar(v, &|s| {
                    with_text(s, |t| match t.trim().parse::<std::net::IpAddr>() {
                        Ok(ip) => nets.iter().any(|n| n.contains(&ip)),
                        Err(_) => false,
                    })
                })
            }),
            Condition::Str(p, op, needle) => ev.get(p).is_some_and(|v| {
                any_scalar(v, &|s| {
                    with_text(s, |t| match op {
                        StrOp::Contains => t.contains(needle.as_str()),
                        StrOp::StartsWith => t.starts_with(needle.as_str()),
                        StrOp::EndsWith => t.ends_with(needle.as_str()),
                    })
                })
            }),
        }
    }

    /// Every field path the condition reads, for projecting events down to
    /// what the rules look at (see [`crate::Ruleset::event_paths`]).
    pub fn paths<'a>(&'a self, out: &mut impl FnMut(&'a str)) {
        match self {
            Condition::True => {}
            Condition::And(cs) | Condition::Or(cs) => cs.iter().for_each(|c| c.paths(out)),
            Condition::Not(c) => c.paths(out),
            Condition::Exists(p)
            | Condition::Eq(p, _)
            | Condition::Cmp(p, _, _)
            | Condition::In(p, _)
            | Condition::Regex(p, _)
            | Condition::Cidr(p, _)
            | Condition::Str(p, _, _) => out(p),
        }
    }

    /// Whether the condition is nothing but a test of the event name
    /// (`event = X`, `event in [X, Y]` with string literals). Such a rule is
    /// only dispatched events carrying one of those names (see
    /// [`Condition::event_names`]), so the engine need not evaluate it.
    pub fn is_name_test(&self) -> bool {
        const EVENT: &str = secmon_core::event::names::EVENT;
        match self {
            Condition::Eq(p, Literal::Str(_)) => p == EVENT,
            Condition::In(p, set) => p == EVENT && set.iter().all(|l| matches!(l, Literal::Str(_))),
            _ => false,
        }
    }

    /// The finite set of event names the condition requires, when it
    /// requires one: a top-level conjunct `event = X` / `event in [..]`, or an
    /// `or` whose every branch requires one. The engine uses it to hand an
    /// event only to rules that can match its name.
    pub fn event_names(&self) -> Option<Vec<Str>> {
        const EVENT: &str = secmon_core::event::names::EVENT;
        match self {
            Condition::Eq(p, Literal::Str(s)) if p == EVENT => Some(vec![s.clone()]),
            Condition::In(p, set) if p == EVENT => set
                .iter()
                .map(|l| match l {
                    Literal::Str(s) => Some(s.clone()),
                    // `event = 3` also matches "3.0"; not worth dispatching on.
                    Literal::Num(..) => None,
                })
                .collect(),
            Condition::And(cs) => {
                // Intersect every conjunct that constrains the name.
                let mut acc: Option<Vec<Str>> = None;
                for c in cs {
                    if let Some(names) = c.event_names() {
                        acc = Some(match acc {
                            None => names,
                            Some(prev) => prev.into_iter().filter(|n| names.contains(n)).collect(),
                        });
                    }
                }
                acc
            }
            Condition::Or(cs) if !cs.is_empty() => {
                let mut all = Vec::new();
                for c in cs {
                    for n in c.event_names()? {
                        if !all.contains(&n) {
                            all.push(n);
                        }
                    }
                }
                Some(all)
            }
            _ => None,
        }
    }
}

/// Arrays match when any element does (`tags = admin` on `["admin", "x"]`).
fn any_scalar(v: &Value, f: &dyn Fn(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| !matches!(i, Value::Array(_)) && f(i)),
        other => f(other),
    }
}

/// Runs `f` on the value's text without allocating for strings.
fn with_text(v: &Value, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        Value::Str(s) => f(s),
        other => f(&other.to_key()),
    }
}

fn eq(v: &Value, lit: &Literal) -> bool {
    match lit {
        Literal::Num(n, _) => v.as_f64().is_some_and(|x| x == *n),
        Literal::Str(s) => with_text(v, |t| t == s.as_str()),
    }
}

fn cmp(v: &Value, op: CmpOp, lit: &Literal) -> bool {
    let ord = match lit {
        Literal::Num(n, _) => match v.as_f64() {
            Some(x) => x.partial_cmp(n),
            None => None,
        },
        // A string literal orders lexicographically (ISO dates, versions with
        // fixed widths); numbers against it compare by their spelling.
        Literal::Str(s) => match v {
            Value::Null | Value::Array(_) => None,
            _ => {
                let mut o = None;
                with_text(v, |t| {
                    o = Some(t.cmp(s.as_str()));
                    true
                });
                o
            }
        },
    };
    match ord {
        None => false,
        Some(o) => match op {
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        },
    }
}

/// Compiles a regex with the crate's size limit.
pub(crate) fn build_regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex: {e}"))
}

/// A CIDR (`10.0.0.0/8`) or a bare address (a /32 or /128).
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    match t.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!("invalid CIDR {:?}", secmon_core::time::truncate(t))),
    }
}

#[cfg(test)]
mod tests;
