//! bytes of one line → [`Event`]. A [`LineParser`] is compiled once per
//! source from the `parse:` settings and the `parsers:` patterns, shared by
//! reference across threads, and turns each line into an event or a
//! [`ParseError`] that the caller counts and moves past.
//!
//! In `auto` format a line starting with `{` is JSON ([`json`]); otherwise a
//! valid syslog header makes it syslog ([`syslog`]) and the patterns run on
//! its message; otherwise the patterns run on the whole line ([`pattern`]).
//!
//! The crate is pure: no IO, no threads, and it never reads the clock — the
//! caller passes the time a line was received in [`LineCtx`]. No input may
//! make it panic (it is fuzzed); it does not decide what events mean, which
//! is the engine's business.

pub mod builtin;
pub mod config;
pub mod error;
mod fields;
pub mod json;
pub mod pattern;
pub mod project;
mod sshd;
pub mod sshd_conn;
pub mod syslog;
mod timefmt;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secmon_core::{Event, Fields, SourceId, Str, Timestamp, Value};

pub use config::{
    FieldType, Format, JsonConfig, ParseConfig, PatternConfig, SyslogConfig, TimeFormat,
    TimestampCapture,
};
pub use error::{ConfigError, ParseError};
pub use project::Projection;
pub use sshd_conn::{ConnConfig, ConnStats, SshdConns};

use crate::fields::Aliases;
use crate::json::JsonPlan;
use crate::pattern::{Patterns, Scratch, Spec};
use crate::syslog::{FACILITIES, LEVELS, SEVERITIES, SyslogTime};
use crate::timefmt::TimeParser;

/// Longest line `parse_line` accepts, in bytes (1 MiB). Readers normally cut
/// lines before this; the check here is a second line of defence.
pub const MAX_LINE: usize = 1 << 20;

const DAY_MS: i64 = 86_400_000;

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub event: Event,
    /// Index of the pattern that matched: the position in the `patterns`
    /// slice given to [`LineParser::new`] for user patterns, then
    /// `patterns.len()` + position in the builtin sets (in [`BUILTIN_SETS`]
    /// order). `None` for JSON events and syslog lines no pattern matched.
    ///
    /// [`BUILTIN_SETS`]: builtin::BUILTIN_SETS
    pub matched: Option<u32>,
}

/// Per-source parsing state. The caller sets `line_no` and `received`
/// before each line.
///
/// It also carries what the parser needs across lines of one source: the
/// year of the last RFC 3164 line (to infer years, see
/// [`LineParser::parse_line`]) and scratch space for pattern captures, so
/// that parsing allocates nothing beyond the event itself.
#[derive(Debug)]
pub struct LineCtx {
    pub source: SourceId,
    pub line_no: u64,
    pub received: Timestamp,
    /// (year, month) of the previous RFC 3164 line of this source.
    last_bsd: Option<(i32, u8)>,
    /// The last UTC date converted, (year, month, day) and its day number:
    /// consecutive log lines are nearly always of the same day.
    last_day: Option<(i32, u8, u8, i64)>,
    scratch: Scratch,
    key: String,
    /// Field buffers of spent events to build new events in (see
    /// [`LineCtx::recycle`]).
    spare: Vec<Fields>,
}

impl LineCtx {
    pub fn new(source: SourceId, received: Timestamp) -> Self {
        LineCtx {
            source,
            line_no: 0,
            received,
            last_bsd: None,
            last_day: None,
            scratch: Scratch::default(),
            key: String::with_capacity(64),
            spare: Vec::new(),
        }
    }

    /// Gives the context the field buffers of events nobody needs any
    /// more; the next events are built in them instead of in new
    /// allocations. `replay` hands back what the engine released, so the
    /// parser thread does not allocate per event, nor the engine thread
    /// free memory the parser's allocated.
    pub fn recycle(&mut self, spent: &mut Vec<Fields>) {
        if self.spare.is_empty() {
            std::mem::swap(&mut self.spare, spent);
        } else {
            self.spare.append(spent);
        }
    }

    /// Takes back the buffers not used yet, e.g. to move them to the next
    /// context of the same thread.
    pub fn take_spare(&mut self) -> Vec<Fields> {
        std::mem::take(&mut self.spare)
    }

    /// A cleared buffer for the next event's fields.
    fn fields(&mut self, capacity: usize) -> Fields {
        match self.spare.pop() {
            Some(mut f) => {
                f.retain(|_| false);
                f
            }
            None => Fields::with_capacity(capacity),
        }
    }
}

/// Distinguishes parsers, so that scratch space in a [`LineCtx`] built for
/// one parser is never misread by another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct SyslogPlan {
    year: Option<i32>,
    /// `None`: UTC, computed without jiff.
    tz: Option<jiff::tz::TimeZone>,
}

/// The compiled parser for one source. `Send + Sync`: build once, share by
/// reference.
#[derive(Debug)]
pub struct LineParser {
    format: Format,
    keep_raw: bool,
    json: JsonPlan,
    aliases: Aliases,
    syslog: SyslogPlan,
    patterns: Patterns,
    project: Option<Arc<Projection>>,
    header: HeaderKeep,
}

/// Which syslog header fields a [`Projection`] keeps, decided once.
#[derive(Debug, Clone, Copy)]
struct HeaderKeep {
    host: bool,
    program: bool,
    pid: bool,
    msgid: bool,
    facility: bool,
    severity: bool,
    level: bool,
    message: bool,
    sd: bool,
}

impl HeaderKeep {
    const ALL: HeaderKeep = HeaderKeep {
        host: true,
        program: true,
        pid: true,
        msgid: true,
        facility: true,
        severity: true,
        level: true,
        message: true,
        sd: true,
    };

    fn of(p: &Projection) -> HeaderKeep {
        HeaderKeep {
            host: p.keeps("host"),
            program: p.keeps("program"),
            pid: p.keeps("pid"),
            msgid: p.keeps("msgid"),
            facility: p.keeps("facility"),
            severity: p.keeps("severity"),
            level: p.keeps("level"),
            message: p.keeps(secmon_core::event::names::MESSAGE),
            sd: p.keeps_prefix("sd."),
        }
    }
}

impl LineParser {
    /// Compiles the parser of a source reading `format`, with the user
    /// `patterns` and builtin sets named in `enabled` (`None`: every user
    /// pattern and every set of `cfg.builtin`). Reports every problem found,
    /// not just the first.
    pub fn new(
        cfg: &ParseConfig,
        patterns: &[PatternConfig],
        enabled: Option<&[String]>,
        format: Format,
    ) -> Result<LineParser, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let aliases = Aliases::new(&cfg.aliases, &mut errs);

        // JSON
        let tsf = &cfg.json.timestamp_field;
        if !fields::valid_path(tsf) {
            errs.push(ConfigError::new(
                "parse.json.timestamp_field",
                format!("invalid field path {tsf:?}: dotted segments of letters, digits, '_', '-' or '@'"),
            ));
        }
        let json_time = TimeParser::new(&cfg.json.timestamp_format)
            .map_err(|e| errs.push(ConfigError::new("parse.json.timestamp_format", e)))
            .ok();

        // Syslog
        if let Some(y) = cfg.syslog.year
            && !(1..=9999).contains(&y)
        {
            errs.push(ConfigError::new(
                "parse.syslog.year",
                format!("year {y} out of range 1..=9999"),
            ));
        }
        let tz = match cfg.syslog.timezone.as_deref() {
            None | Some("UTC") | Some("utc") | Some("Etc/UTC") => None,
            Some(name) => match jiff::tz::TimeZone::get(name) {
                Ok(tz) => Some(tz),
                Err(e) => {
                    errs.push(ConfigError::new(
                        "parse.syslog.timezone",
                        format!("unknown time zone {name:?}: {e}"),
                    ));
                    None
                }
            },
        };

        // Builtin set names.
        for (i, b) in cfg.builtin.iter().enumerate() {
            if !builtin::BUILTIN_SETS.contains(&b.as_str()) {
                errs.push(ConfigError::new(
                    format!("parse.builtin[{i}]"),
                    format!(
                        "unknown builtin set {b:?} (known: {})",
                        builtin::BUILTIN_SETS.join(", ")
                    ),
                ));
            }
        }

        // Pattern names: unique, and not the name of a builtin set.
        let mut first = std::collections::HashMap::new();
        for (i, p) in patterns.iter().enumerate() {
            if builtin::BUILTIN_SETS.contains(&p.name.as_str()) {
                errs.push(ConfigError::new(
                    format!("parsers[{i}].name"),
                    format!("{:?} is the name of a builtin set", p.name),
                ));
            } else if let Some(j) = first.insert(p.name.as_str(), i) {
                first.insert(p.name.as_str(), j);
                errs.push(ConfigError::new(
                    format!("parsers[{i}].name"),
                    format!(
                        "duplicate parser name {:?} (first used by parsers[{j}])",
                        p.name
                    ),
                ));
            }
        }

        // Selection.
        let mut want_sets: Vec<&str> = Vec::new();
        let mut want_user: Option<BTreeSet<&str>> = None;
        match enabled {
            None => want_sets.extend(cfg.builtin.iter().map(String::as_str)),
            Some(list) => {
                let mut users = BTreeSet::new();
                for (i, n) in list.iter().enumerate() {
                    if builtin::BUILTIN_SETS.contains(&n.as_str()) {
                        want_sets.push(n);
                    } else if first.contains_key(n.as_str()) {
                        users.insert(n.as_str());
                    } else {
                        errs.push(ConfigError::new(
                            format!("parsers[{i}]"),
                            format!("unknown parser or builtin set {n:?}"),
                        ));
                    }
                }
                want_user = Some(users);
            }
        }

        let mut specs: Vec<Spec> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if want_user
                .as_ref()
                .is_none_or(|u| u.contains(p.name.as_str()))
            {
                specs.push(Spec::from_config(i, p));
            }
        }
        let mut offset = patterns.len();
        for (pos, set) in builtin::BUILTIN_SETS.iter().enumerate() {
            if want_sets.contains(set) {
                let cfg_pos = cfg.builtin.iter().position(|b| b == set).unwrap_or(pos);
                if let Some(s) = builtin::specs(set, cfg_pos, offset as u32) {
                    specs.extend(s);
                }
            }
            offset += builtin::len(set);
        }
        let mut compiled = Vec::with_capacity(specs.len());
        for s in &specs {
            if let Some(c) = pattern::compile(s, &aliases, &mut errs) {
                compiled.push(c);
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let patterns = Patterns::build(id, compiled).map_err(|e| {
            vec![ConfigError::new(
                "parsers",
                format!("the combined patterns do not compile: {e}"),
            )]
        })?;
        let Some(json_time) = json_time else {
            return Err(errs);
        };
        let (ts_key, _) = aliases.rename_path(tsf);
        Ok(LineParser {
            format,
            keep_raw: cfg.keep_raw,
            json: JsonPlan {
                ts_field: tsf.clone(),
                ts_key,
                time: json_time,
            },
            aliases,
            syslog: SyslogPlan {
                year: cfg.syslog.year,
                tz,
            },
            patterns,
            project: None,
            header: HeaderKeep::ALL,
        })
    }

    /// Stores only the fields `p` keeps from now on (see [`project`]).
    pub fn set_projection(&mut self, p: Projection) {
        self.header = HeaderKeep::of(&p);
        self.patterns.set_projection(&p);
        self.project = Some(Arc::new(p));
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The name of the pattern with index `matched` (see [`Parsed::matched`]),
    /// e.g. for per-pattern metrics.
    pub fn pattern_name(&self, matched: u32) -> Option<&str> {
        self.patterns.name_of(matched)
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    ///
    /// RFC 3164 syslog times have no year: it is `syslog.year` if set, else
    /// the year of `ctx.received`, moved one year back when that would put
    /// the line more than a day after it was received (December logs read in
    /// January). Within one context, later lines keep the year of the
    /// previous line, plus one when the month goes back by six or more (a
    /// file that spans new year: December → January).
    pub fn parse_line(&self, line: &[u8], ctx: &mut LineCtx) -> Result<Parsed, ParseError> {
        if line.len() > MAX_LINE {
            return Err(ParseError::TooLong {
                len: line.len(),
                max: MAX_LINE,
            });
        }
        let mut line = line;
        while let [rest @ .., b'\r' | b'\n'] = line {
            line = rest;
        }
        let text = std::str::from_utf8(line).map_err(|e| ParseError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        self.parse_valid(text, ctx)
    }

    /// [`parse_line`](Self::parse_line) of a line already known to be
    /// UTF-8 (a caller that validated a whole batch at once).
    pub fn parse_text(&self, line: &str, ctx: &mut LineCtx) -> Result<Parsed, ParseError> {
        if line.len() > MAX_LINE {
            return Err(ParseError::TooLong {
                len: line.len(),
                max: MAX_LINE,
            });
        }
        self.parse_valid(line.trim_end_matches(['\r', '\n']), ctx)
    }

    /// Everything after the length check, line-end trimming and UTF-8
    /// validation.
    fn parse_valid(&self, text: &str, ctx: &mut LineCtx) -> Result<Parsed, ParseError> {
        let body = text.trim_start();
        if body.trim_end().is_empty() {
            return Err(ParseError::Empty);
        }
        let mut event = Event {
            time: Timestamp(0),
            received: ctx.received,
            source: ctx.source,
            line: ctx.line_no,
            // Projected events keep a handful of fields; buffers are
            // recycled at their capacity, so it bounds replay's memory.
            fields: ctx.fields(if self.project.is_some() { 8 } else { 12 }),
            raw: None,
        };
        let matched = match self.format {
            Format::Json => {
                event.time = self.json(body, ctx, &mut event.fields)?;
                None
            }
            Format::Auto if body.as_bytes().first() == Some(&b'{') => {
                event.time = self.json(body, ctx, &mut event.fields)?;
                None
            }
            Format::Text => self.text(text, ctx, &mut event)?,
            Format::Syslog => match syslog::parse(text) {
                Ok(h) => self.syslog(h, ctx, &mut event)?,
                Err(reason) => return Err(ParseError::NotSyslog { reason }),
            },
            Format::Auto => match syslog::parse(text) {
                Ok(h) => self.syslog(h, ctx, &mut event)?,
                Err(_) => self.text(text, ctx, &mut event)?,
            },
        };
        if self.keep_raw {
            event.raw = Some(Arc::from(text));
        }
        Ok(Parsed { event, matched })
    }

    fn json(
        &self,
        body: &str,
        ctx: &mut LineCtx,
        fields: &mut Fields,
    ) -> Result<Timestamp, ParseError> {
        json::parse(body, &self.json, &self.aliases, &mut ctx.key, fields)
    }

    fn text(
        &self,
        text: &str,
        ctx: &mut LineCtx,
        event: &mut Event,
    ) -> Result<Option<u32>, ParseError> {
        let pos = self
            .patterns
            .find(text, None, &mut ctx.scratch)
            .ok_or(ParseError::NoMatch)?;
        match self.patterns.apply(
            pos,
            text,
            &ctx.scratch,
            &mut event.fields,
            self.project.as_deref(),
        )? {
            Some(t) => event.time = t,
            None => {
                return Err(ParseError::MissingTimestamp {
                    field: self.patterns.ts_name(pos),
                });
            }
        }
        Ok(self.patterns.patterns.get(pos).map(|p| p.index))
    }

    fn syslog(
        &self,
        h: syslog::Header<'_>,
        ctx: &mut LineCtx,
        event: &mut Event,
    ) -> Result<Option<u32>, ParseError> {
        event.time = match h.time {
            SyslogTime::Abs(t) => t,
            SyslogTime::Nil => ctx.received,
            SyslogTime::Bsd {
                month,
                day,
                hour,
                min,
                sec,
                ms,
            } => self.bsd_time(ctx, month, day, hour, min, sec, ms)?,
        };
        let f = &mut event.fields;
        let keep = self.header;
        if let Some(host) = h.host.filter(|_| keep.host) {
            f.push(Str::const_new("host"), Value::from(host));
        }
        if let Some(p) = h.program.filter(|_| keep.program) {
            f.push(Str::const_new("program"), Value::from(p));
        }
        if let Some(pid) = h.pid.filter(|_| keep.pid) {
            let v = pid
                .parse::<i64>()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::from(pid));
            f.push(Str::const_new("pid"), v);
        }
        if let Some(m) = h.msgid.filter(|_| keep.msgid) {
            f.push(Str::const_new("msgid"), Value::from(m));
        }
        if let Some(pri) = h.pri {
            let (fac, sev) = (usize::from(pri >> 3), usize::from(pri & 7));
            if let Some(name) = FACILITIES.get(fac).filter(|_| keep.facility) {
                f.push(Str::const_new("facility"), Value::from(*name));
            }
            if keep.severity {
                f.push(Str::const_new("severity"), Value::from(SEVERITIES[sev]));
            }
            if keep.level {
                f.push(Str::const_new("level"), Value::from(LEVELS[sev]));
            }
        }
        if let Some(sd) = h.sd.filter(|_| keep.sd) {
            let project = self.project.as_deref();
            syslog::walk_sd(sd, |id, name, v| {
                let key = format!("sd.{id}.{name}");
                if project.is_none_or(|p| p.keeps(&key)) {
                    f.insert(key, Value::Str(Str::from(v.as_ref())));
                }
            });
        }
        if keep.message {
            f.push(Str::const_new("message"), Value::from(h.message));
        }
        if self.patterns.is_empty() {
            return Ok(None);
        }
        let Some(pos) = self.patterns.find(h.message, h.program, &mut ctx.scratch) else {
            return Ok(None);
        };
        if let Some(t) = self.patterns.apply(
            pos,
            h.message,
            &ctx.scratch,
            &mut event.fields,
            self.project.as_deref(),
        )? {
            event.time = t;
        }
        Ok(self.patterns.patterns.get(pos).map(|p| p.index))
    }

    #[allow(clippy::too_many_arguments)]
    fn bsd_time(
        &self,
        ctx: &mut LineCtx,
        month: u8,
        day: u8,
        hour: u8,
        min: u8,
        sec: u8,
        ms: u16,
    ) -> Result<Timestamp, ParseError> {
        let fixed = self.syslog.year;
        let mut year = match ctx.last_bsd {
            Some((py, pm)) if pm >= month + 6 => py.saturating_add(1),
            Some((py, _)) => py,
            None => match fixed {
                Some(y) => y,
                None => self.year_of(ctx.received),
            },
        };
        let bad = |reason: &str| ParseError::BadTimestamp {
            field: "timestamp".into(),
            value: format!("{month:02}-{day:02} {hour:02}:{min:02}:{sec:02}"),
            reason: reason.to_string(),
        };
        let mut t = match (&self.syslog.tz, ctx.last_day) {
            (None, Some((y, mo, d, days))) if (y, mo, d) == (year, month, day) => timefmt::day_ms(
                days,
                u32::from(hour),
                u32::from(min),
                u32::from(sec),
                u32::from(ms),
            ),
            _ => {
                let t = self.civil(year, month, day, hour, min, sec, ms);
                if self.syslog.tz.is_none() && t.is_some() {
                    let days =
                        timefmt::days_from_civil(i64::from(year), u32::from(month), u32::from(day));
                    ctx.last_day = Some((year, month, day, days));
                }
                t
            }
        };
        if fixed.is_none()
            && let Some(tt) = t
            && tt > ctx.received.0.saturating_add(DAY_MS)
        {
            year -= 1;
            t = self.civil(year, month, day, hour, min, sec, ms);
        }
        let t = t.ok_or_else(|| bad(&format!("no such date in {year}")))?;
        ctx.last_bsd = Some((year, month));
        Ok(Timestamp(t))
    }

    fn year_of(&self, t: Timestamp) -> i32 {
        match &self.syslog.tz {
            None => timefmt::year_of_days(t.0.div_euclid(DAY_MS)).clamp(1, 9999) as i32,
            Some(tz) => jiff::Timestamp::from_millisecond(t.0)
                .map(|ts| i32::from(ts.to_zoned(tz.clone()).year()))
                .unwrap_or(1970),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn civil(
        &self,
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        min: u8,
        sec: u8,
        ms: u16,
    ) -> Option<i64> {
        match &self.syslog.tz {
            None => timefmt::civil_to_ms(
                i64::from(year),
                u32::from(month),
                u32::from(day),
                u32::from(hour),
                u32::from(min),
                u32::from(sec),
                u32::from(ms),
            ),
            Some(tz) => {
                let y = i16::try_from(year).ok()?;
                let dt = jiff::civil::DateTime::new(
                    y,
                    month as i8,
                    day as i8,
                    hour as i8,
                    min as i8,
                    sec.min(59) as i8,
                    i32::from(ms) * 1_000_000,
                )
                .ok()?;
                tz.to_timestamp(dt).ok().map(|t| t.as_millisecond())
            }
        }
    }
}

/// Everything [`LineParser::new`] would report for every pattern and
/// builtin set: for `secmon check`.
pub fn validate(cfg: &ParseConfig, patterns: &[PatternConfig]) -> Vec<ConfigError> {
    match LineParser::new(cfg, patterns, None, Format::Auto) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;
