//! Compiles the YAML map form of a condition,
//! `{event: auth.login_failed, fields.ip: {cidr: 10.0.0.0/8}, fields.attempt: {gte: 3}}`,
//! into the same [`Condition`] nodes the expression parser builds. Keys are
//! ANDed; `all`, `any` and `not` nest. A string where a condition is
//! expected is an expression.
//!
//! It reports the first problem with the path of the offending key; it does
//! not evaluate.

use secmon_core::{FieldPath, Str};
use serde_json::Value as J;

use super::expr::word_literal;
use super::{CmpOp, Condition, Literal, StrOp, build_regex, parse_expr, parse_net};
use crate::config::ConditionConfig;

/// A condition that failed to compile; `path` locates it inside the condition
/// (`fields.attempt.gte`, `any[1]`), empty for the whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct CondError {
    pub path: String,
    pub message: String,
}

const OPERATORS: &str = "eq, ne, in, not_in, regex, not_regex, gt, gte, lt, lte, cidr, exists, contains, starts_with, ends_with";

/// Compiles either form of a configured condition.
pub fn compile_config(c: &ConditionConfig) -> Result<Condition, CondError> {
    match c {
        ConditionConfig::Expr(s) => parse_expr(s).map_err(|e| CondError {
            path: String::new(),
            message: e.to_string(),
        }),
        ConditionConfig::Map(entries) => {
            compile_entries(entries.iter().map(|(k, v)| (k.as_str(), v)), "")
        }
    }
}

fn err(path: &str, message: impl Into<String>) -> CondError {
    CondError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn join(base: &str, k: &str) -> String {
    if base.is_empty() {
        k.to_string()
    } else {
        format!("{base}.{k}")
    }
}

/// Nesting limit for `all`/`any`/`not`, so hostile config cannot overflow the stack.
const MAX_DEPTH: usize = 64;

fn compile_entries<'a>(
    entries: impl Iterator<Item = (&'a str, &'a J)>,
    base: &str,
) -> Result<Condition, CondError> {
    let mut all = Vec::new();
    for (k, v) in entries {
        all.push(compile_key(k, v, base)?);
    }
    Ok(match all.len() {
        0 => Condition::True,
        1 => all.pop().unwrap_or(Condition::True),
        _ => Condition::And(all),
    })
}

/// A nested condition: a map or an expression string.
fn compile_value(v: &J, path: &str) -> Result<Condition, CondError> {
    if path.matches('.').count() + path.matches('[').count() > MAX_DEPTH {
        return Err(err(path, "nested too deeply (limit 64)"));
    }
    match v {
        J::String(s) => parse_expr(s).map_err(|e| err(path, e.to_string())),
        J::Object(m) => compile_entries(m.iter().map(|(k, v)| (k.as_str(), v)), path),
        _ => Err(err(
            path,
            "expected a condition (a map or an expression string)",
        )),
    }
}

fn compile_key(k: &str, v: &J, base: &str) -> Result<Condition, CondError> {
    let here = join(base, k);
    match k {
        "all" | "any" => {
            let J::Array(items) = v else {
                return Err(err(&here, "expected a list of conditions"));
            };
            let cs = items
                .iter()
                .enumerate()
                .map(|(i, c)| compile_value(c, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if k == "all" {
                Condition::And(cs)
            } else {
                Condition::Or(cs)
            })
        }
        "not" => Ok(Condition::Not(Box::new(compile_value(v, &here)?))),
        _ => {
            let path = FieldPath::parse(k).map_err(|e| err(&here, e.to_string()))?;
            let p = Str::from(path.as_str());
            match v {
                J::Array(_) => Ok(Condition::In(p, literals(v, &here)?)),
                J::Object(ops) => {
                    let mut cs = Vec::with_capacity(ops.len());
                    for (op, arg) in ops {
                        cs.push(compile_op(&p, op, arg, &join(&here, op))?);
                    }
                    Ok(if cs.len() == 1 {
                        cs.pop().unwrap_or(Condition::True)
                    } else {
                        Condition::And(cs)
                    })
                }
                scalar => Ok(Condition::Eq(p, literal(scalar, &here)?)),
            }
        }
    }
}

fn compile_op(p: &Str, op: &str, arg: &J, here: &str) -> Result<Condition, CondError> {
    let not = |c| Condition::Not(Box::new(c));
    let text = |arg: &J| match arg {
        J::String(s) => Ok(s.clone()),
        J::Number(n) => Ok(n.to_string()),
        _ => Err(err(here, "expected a string")),
    };
    Ok(match op {
        "eq" => Condition::Eq(p.clone(), literal(arg, here)?),
        "ne" => not(Condition::Eq(p.clone(), literal(arg, here)?)),
        "in" => Condition::In(p.clone(), literals(arg, here)?),
        "not_in" => not(Condition::In(p.clone(), literals(arg, here)?)),
        "regex" | "not_regex" => {
            let re = build_regex(&text(arg)?).map_err(|m| err(here, m))?;
            let c = Condition::Regex(p.clone(), Box::new(re));
            if op == "regex" { c } else { not(c) }
        }
        "gt" | "gte" | "lt" | "lte" => {
            let cmp = match op {
                "gt" => CmpOp::Gt,
                "gte" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                _ => CmpOp::Le,
            };
            Condition::Cmp(p.clone(), cmp, literal(arg, here)?)
        }
        "cidr" => {
            let items: Vec<&J> = match arg {
                J::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            let mut nets = Vec::with_capacity(items.len());
            for it in items {
                nets.push(parse_net(&text(it)?).map_err(|m| err(here, m))?);
            }
            Condition::Cidr(p.clone(), nets)
        }
        "exists" => match arg {
            J::Bool(true) => Condition::Exists(p.clone()),
            J::Bool(false) => not(Condition::Exists(p.clone())),
            _ => return Err(err(here, "expected true or false")),
        },
        "contains" => Condition::Str(p.clone(), StrOp::Contains, Str::from(text(arg)?)),
        "starts_with" => Condition::Str(p.clone(), StrOp::StartsWith, Str::from(text(arg)?)),
        "ends_with" => Condition::Str(p.clone(), StrOp::EndsWith, Str::from(text(arg)?)),
        other => {
            return Err(err(
                here,
                format!(
                    "unknown operator `{}` (expected one of: {OPERATORS})",
                    secmon_core::time::truncate(other)
                ),
            ));
        }
    })
}

/// A YAML scalar as a literal. Strings stay strings even when they look like
/// numbers, except for ordering operators where `"3"` means 3.
fn literal(v: &J, here: &str) -> Result<Literal, CondError> {
    Ok(match v {
        J::Null => Literal::Str(Str::const_new("null")),
        J::Bool(b) => Literal::Str(Str::const_new(if *b { "true" } else { "false" })),
        J::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Literal::Num(f, Str::from(n.to_string())),
            _ => return Err(err(here, "number out of range")),
        },
        J::String(s) => {
            if here.ends_with(".gt")
                || here.ends_with(".gte")
                || here.ends_with(".lt")
                || here.ends_with(".lte")
            {
                word_literal(s)
            } else {
                Literal::Str(Str::from(s.as_str()))
            }
        }
        J::Array(_) | J::Object(_) => return Err(err(here, "expected a single value")),
    })
}

fn literals(v: &J, here: &str) -> Result<Vec<Literal>, CondError> {
    match v {
        J::Array(items) => items.iter().map(|i| literal(i, here)).collect(),
        one => Ok(vec![literal(one, here)?]),
    }
}
