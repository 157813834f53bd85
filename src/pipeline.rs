//! The stages every command shares: a line becomes events (with problems
//! tallied, never fatal), events go through the engine, fired verdicts are
//! handed to a sink with their rule. `replay` adds parallel parsing of whole
//! files; `run` feeds it from tailed sources; `test` from rule-file cases.

use std::collections::BTreeMap;
use std::sync::Arc;

use secmon_core::{Event, Fields, Timestamp};
use secmon_engine::{Engine, EngineConfig, EngineStats, Fire, Resolve, Rule, Ruleset, Verdict};
use secmon_parse::{LineCtx, LineParser, ParseError, Projection, SshdConns};

use crate::summary::{Located, Summary};

/// Parses one line into `out`, tallying errors, unmatched syslog lines and
/// catalog violations into `summary`. Bad input never stops the stream.
pub fn parse_line(
    parser: &LineParser,
    ctx: &mut LineCtx,
    bytes: &[u8],
    source_name: &str,
    out: &mut Vec<Event>,
    summary: &mut Summary,
) {
    let parsed = parser.parse_line(bytes, ctx);
    record(parsed, ctx, source_name, out, summary);
}

/// [`parse_line`] of a line already known to be UTF-8.
pub fn parse_text(
    parser: &LineParser,
    ctx: &mut LineCtx,
    text: &str,
    source_name: &str,
    out: &mut Vec<Event>,
    summary: &mut Summary,
) {
    let parsed = parser.parse_text(text, ctx);
    record(parsed, ctx, source_name, out, summary);
}

fn record(
    parsed: Result<secmon_parse::Parsed, ParseError>,
    ctx: &LineCtx,
    source_name: &str,
    out: &mut Vec<Event>,
    summary: &mut Summary,
) {
    let limit = summary.limit;
    match parsed {
        Ok(parsed) => {
            if parsed.matched.is_none() && parsed.event.name().is_none() {
                summary.unmatched_syslog += 1;
            }
            for field in secmon_core::catalog::missing_fields(&parsed.event) {
                let event = parsed.event.name().unwrap_or_default().to_string();
                let line = ctx.line_no;
                summary
                    .catalog
                    .entry((event, field))
                    .or_default()
                    .add(limit, || Located {
                        source: source_name.to_string(),
                        line,
                        message: String::new(),
                    });
            }
            summary.events += 1;
            out.push(parsed.event);
        }
        Err(e) => record_error(summary, source_name, ctx.line_no, &e),
    }
}

pub fn record_error(summary: &mut Summary, source: &str, line: u64, e: &ParseError) {
    let limit = summary.limit;
    summary
        .errors
        .entry(e.kind())
        .or_default()
        .add(limit, || Located {
            source: source.to_string(),
            line,
            message: e.to_string(),
        });
}

/// A line longer than the reader accepts: counted like a parse error.
pub fn record_too_long(summary: &mut Summary, source: &str, line: u64, len: u64) {
    let limit = summary.limit;
    summary
        .errors
        .entry("line too long")
        .or_default()
        .add(limit, || Located {
            source: source.to_string(),
            line,
            message: format!("line of {len} bytes exceeds the maximum line length; skipped"),
        });
}

/// The event fields detection reads: the ruleset's
/// ([`Ruleset::event_paths`]) plus the sshd correlator's. `replay` without a
/// response plan has its syslog and pattern parsers store only these, so
/// the parser threads skip building what no rule reads (an sshd line's
/// message, program, port…) and the engine thread moves, buffers and frees
/// small events; the verdicts are the same, since nothing after the parser
/// reads anything else. Not for `run` (the archive keeps whole events) nor for a dry-run
/// plan (incident evidence shows whole events).
pub fn projection(ruleset: &Ruleset) -> Projection {
    let mut paths = ruleset.event_paths();
    paths.extend(secmon_parse::sshd_conn::READS);
    Projection::new(paths)
}

/// Where verdicts go. Any `FnMut(&Rule, &Fire)` is a sink that ignores
/// resolves; the response stage implements both.
pub trait Sink {
    fn fire(&mut self, rule: &Rule, fire: &Fire);
    fn resolve(&mut self, _rule: &Rule, _resolve: &Resolve) {}
}

impl<F: FnMut(&Rule, &Fire)> Sink for F {
    fn fire(&mut self, rule: &Rule, fire: &Fire) {
        self(rule, fire)
    }
}

/// The engine plus the bookkeeping around it: rule lookup for verdicts and
/// per-rule alert counts. Events pass the sshd connection correlator first
/// (it needs them in order, as the engine does): `Invalid user` connections
/// that end without a `Failed` line become `sshd.invalid_user_unanswered`
/// events (see [`secmon_parse::sshd_conn`]).
pub struct Detector {
    engine: Engine,
    ruleset: Arc<Ruleset>,
    scratch: Vec<Verdict>,
    conns: SshdConns,
    derived: Vec<Event>,
    pub fired: BTreeMap<usize, u64>,
}

impl Detector {
    pub fn new(ruleset: Arc<Ruleset>, cfg: EngineConfig) -> Self {
        Detector {
            engine: Engine::new(ruleset.clone(), cfg),
            ruleset,
            scratch: Vec::with_capacity(64),
            conns: SshdConns::default(),
            derived: Vec::new(),
            fired: BTreeMap::new(),
        }
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// For a caller that only prints alerts: fires carry no evidence, and
    /// the field buffers of released events are kept for
    /// [`Detector::take_spent`] (see [`Engine::recycle_fields`]).
    pub fn alerts_only(&mut self) {
        self.engine.set_evidence(false);
        self.engine.recycle_fields();
    }

    /// Field buffers of events the engine is done with, for the parsers to
    /// reuse (only after [`Detector::alerts_only`]).
    pub fn take_spent(&mut self, out: &mut Vec<Fields>) {
        self.engine.take_spent(out);
    }

    pub fn observe(&mut self, ev: Event, sink: &mut dyn Sink) {
        self.conns.observe(&ev, &mut self.derived);
        self.engine.observe(ev, &mut self.scratch);
        self.observe_derived();
        self.drain(sink);
    }

    pub fn advance_to(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        self.conns.advance(now, &mut self.derived);
        self.observe_derived();
        self.engine.advance_to(now, &mut self.scratch);
        self.drain(sink);
    }

    pub fn flush(&mut self, sink: &mut dyn Sink) {
        self.conns.flush(&mut self.derived);
        self.observe_derived();
        self.engine.flush(&mut self.scratch);
        self.drain(sink);
    }

    fn observe_derived(&mut self) {
        for ev in self.derived.drain(..) {
            self.engine.observe(ev, &mut self.scratch);
        }
    }

    /// A configuration reload: the engine for `ruleset` and `cfg` takes
    /// over the running one's state for every rule left unchanged (see
    /// [`Engine::carry_over`]); the sshd correlator, which no rule owns,
    /// keeps its connections. Nothing is evaluated here.
    pub fn reload(&mut self, ruleset: Arc<Ruleset>, cfg: EngineConfig) -> secmon_engine::Carried {
        let placeholder = Engine::new(ruleset.clone(), cfg);
        let old = std::mem::replace(&mut self.engine, placeholder);
        let (engine, carried) = Engine::carry_over(ruleset.clone(), cfg, old);
        self.engine = engine;
        self.ruleset = ruleset;
        self.fired.clear();
        carried
    }

    /// Hands the engine an alert firing in the response store that it may
    /// not know (see [`Engine::adopt`]); a resolve this causes at once goes
    /// to `sink`.
    pub fn adopt(
        &mut self,
        rule: usize,
        group: &[(String, String)],
        sink: &mut dyn Sink,
    ) -> secmon_engine::Adoption {
        let outcome = self.engine.adopt(rule, group, &mut self.scratch);
        self.drain(sink);
        outcome
    }

    /// The ruleset, shared (a reload keeps the old one for what it removed).
    pub fn ruleset_arc(&self) -> &Arc<Ruleset> {
        &self.ruleset
    }

    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    pub fn watermark(&self) -> Timestamp {
        self.engine.watermark()
    }

    pub fn metrics_snapshot(&self) -> Vec<secmon_engine::MetricSample> {
        self.engine.metrics_snapshot()
    }

    fn drain(&mut self, sink: &mut dyn Sink) {
        for v in self.scratch.drain(..) {
            match v {
                Verdict::Fire(f) => {
                    *self.fired.entry(f.rule).or_default() += 1;
                    sink.fire(self.ruleset.rule(f.rule), &f);
                }
                Verdict::Resolve(r) => sink.resolve(self.ruleset.rule(r.rule), &r),
            }
        }
    }
}
