//! `secmon test`: runs the `tests:` cases carried inside rule files, like
//! `promtool test rules`. Each case starts from a fresh engine, feeds its
//! input through the same parsers and rules as `replay`, and compares the
//! alerts (of the rules it names, or all) with the expected list: every
//! expected alert must be matched by exactly one actual alert, and no actual
//! alert may be left over.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use secmon_core::{Dur, SourceId, Timestamp};
use secmon_parse::LineCtx;

use crate::config::{ExpectedAlert, Runtime, TestCase};
use crate::output::AlertLine;
use crate::pipeline::{self, Detector};
use crate::summary::Summary;

pub fn run(path: Option<&Path>, verbose: bool, year: Option<i32>) -> anyhow::Result<ExitCode> {
    let (loaded, mut runtime) = match super::load_runtime(path) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(y) = year {
        runtime.parse.syslog.year = Some(y);
        runtime.default_parser = runtime
            .parser_for(secmon_parse::Format::Auto)
            .map_err(|d| anyhow::anyhow!("{d}"))?;
    }
    let mut failed = 0;
    for case in &loaded.tests {
        let o = &case.origin;
        match run_case(&runtime, &case.value) {
            Ok(()) => {
                if verbose {
                    crate::outln!("PASS {}:{} {}", o.file.display(), o.line, case.value.name);
                }
            }
            Err(why) => {
                failed += 1;
                crate::outln!(
                    "FAIL {}:{} {}\n{}",
                    o.file.display(),
                    o.line,
                    case.value.name,
                    indent(&why)
                );
            }
        }
    }
    let total = loaded.tests.len();
    crate::outln!("{} passed, {failed} failed, {total} total", total - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one case and explains any mismatch.
pub fn run_case(runtime: &Runtime, case: &TestCase) -> Result<(), String> {
    let lines = expand_input(&case.input).map_err(|e| format!("{e:#}"))?;
    let mut summary = Summary::new(5);
    let mut ctx = LineCtx::new(SourceId(0), crate::clock::now());
    let mut events = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        ctx.line_no = i as u64 + 1;
        pipeline::parse_line(
            &runtime.default_parser,
            &mut ctx,
            line.as_bytes(),
            "input",
            &mut events,
            &mut summary,
        );
    }
    if summary.error_count() > 0 {
        let mut why = String::from("input did not parse:\n");
        for t in summary.errors.values() {
            for l in &t.samples {
                why.push_str(&format!("  input[{}]: {}\n", l.line - 1, l.message));
            }
        }
        return Err(why);
    }
    let mut detector = Detector::new(runtime.ruleset.clone(), runtime.engine);
    let mut actual: Vec<serde_json::Value> = Vec::new();
    let mut sink = |rule: &secmon_engine::Rule, fire: &secmon_engine::Fire| {
        if case.rules.is_empty() || case.rules.iter().any(|r| r == rule.id()) {
            let line = AlertLine::new(rule, fire);
            actual.push(serde_json::to_value(&line).unwrap_or_default());
        }
    };
    for ev in events {
        detector.observe(ev, &mut sink);
    }
    detector.flush(&mut sink);
    compare(&case.expect, actual)
}

fn compare(expect: &[ExpectedAlert], mut actual: Vec<serde_json::Value>) -> Result<(), String> {
    let mut missing = Vec::new();
    for e in expect {
        match actual.iter().position(|a| matches(e, a)) {
            Some(i) => {
                actual.remove(i);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && actual.is_empty() {
        return Ok(());
    }
    let mut why = String::new();
    for m in missing {
        why.push_str(&format!(
            "expected but not fired: rule={} group={} fired_at={} value={}\n",
            m.rule,
            m.group
                .as_ref()
                .map(|g| serde_json::to_string(g).unwrap_or_default())
                .unwrap_or_else(|| "*".into()),
            m.fired_at.as_deref().unwrap_or("*"),
            m.value.map(|v| v.to_string()).unwrap_or_else(|| "*".into()),
        ));
    }
    for a in actual {
        why.push_str(&format!("fired but not expected: {a}\n"));
    }
    Err(why)
}

fn matches(e: &ExpectedAlert, a: &serde_json::Value) -> bool {
    if a["rule"] != e.rule.as_str() {
        return false;
    }
    if let Some(g) = &e.group {
        let Some(actual) = a["group"].as_object() else {
            return false;
        };
        if actual.len() != g.len() {
            return false;
        }
        for (k, v) in g {
            let Some(av) = actual.get(k) else {
                return false;
            };
            if scalar_text(av) != scalar_text(v) {
                return false;
            }
        }
    }
    if let Some(t) = &e.fired_at {
        let want = Timestamp::parse_rfc3339(t).ok();
        let got = a["fired_at"]
            .as_str()
            .and_then(|s| Timestamp::parse_rfc3339(s).ok());
        if want.is_none() || want != got {
            return false;
        }
    }
    if let Some(v) = e.value
        && a["value"]
            .as_f64()
            .is_none_or(|x| (x - v).abs() > 1e-9 * v.abs().max(1.0))
    {
        return false;
    }
    true
}

fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Turns test inputs into log lines: strings as they are, maps as JSON
/// events, and `{repeat, every, event}` into N events stepping in time.
pub fn expand_input(input: &[serde_json::Value]) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, item) in input.iter().enumerate() {
        match item {
            serde_json::Value::String(s) => lines.push(s.clone()),
            serde_json::Value::Object(m) if m.contains_key("repeat") => {
                let n = m["repeat"]
                    .as_u64()
                    .with_context(|| format!("input[{i}].repeat: expected a count"))?;
                let every = match m.get("every") {
                    Some(v) => Dur::parse(v.as_str().unwrap_or_default())
                        .map_err(|e| anyhow::anyhow!("input[{i}].every: {e}"))?,
                    None => Dur::ZERO,
                };
                for key in m.keys() {
                    if !matches!(key.as_str(), "repeat" | "every" | "event") {
                        anyhow::bail!(
                            "input[{i}]: unknown key {key:?} (expected repeat, every, event)"
                        );
                    }
                }
                let event = m
                    .get("event")
                    .with_context(|| format!("input[{i}].event: missing"))?;
                let start = event
                    .get("timestamp")
                    .and_then(|t| t.as_str())
                    .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                    .with_context(|| {
                        format!("input[{i}].event.timestamp: missing or not RFC 3339")
                    })?;
                let template = serde_json::to_string(event)?;
                for k in 0..n {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&template.replace("{{i}}", &k.to_string()))?;
                    let ts =
                        start.add(Dur::from_millis(every.as_millis().saturating_mul(k as i64)));
                    v["timestamp"] = serde_json::Value::String(ts.to_rfc3339());
                    lines.push(v.to_string());
                }
            }
            serde_json::Value::Object(_) => lines.push(item.to_string()),
            other => anyhow::bail!(
                "input[{i}]: expected a log line (string) or an event (map), got {other}"
            ),
        }
    }
    Ok(lines)
}
