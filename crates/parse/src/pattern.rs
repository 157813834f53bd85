//! Named-capture patterns: user `parsers:` entries and builtin sets, compiled
//! into one multi-pattern matcher per program filter.
//!
//! Matching is two steps. A regex-automata `meta::Regex` built from all
//! applicable patterns at once (`MatchKind::All`, overlapping search) tells
//! in a single lazy-DFA pass which patterns match; the lowest index wins, so
//! the first declared pattern has priority and builtin sets come after user
//! patterns. Then only the winner's own compiled regex runs to extract
//! captures (with its own literal prefilter and one-pass engine). A single
//! leftmost-first search could not give index priority: it prefers the match
//! that starts first in the line, whatever its pattern.
//!
//! Patterns with a `program` filter only apply to syslog lines of that
//! program. Filters that match one program form a chain of prefixes
//! (`sshd` ⊂ `sshd(pam_unix)`), so one matcher per distinct filter (holding
//! the unfiltered patterns plus every filter that is a prefix of it) covers
//! every case without building matchers at run time.
//!
//! This module does not decide what a line is (JSON, syslog, text); it gets
//! a haystack and fills fields.

use std::collections::BTreeMap;

use regex::{CaptureLocations, Regex, RegexBuilder};
use regex_automata::dfa::onepass;
use regex_automata::meta;
use regex_automata::nfa::thompson::{self, backtrack, backtrack::BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};
use secmon_core::{Fields, Str, Timestamp, Value};

use crate::config::{FieldType, PatternConfig, TimeFormat, TimestampCapture};
use crate::error::{ConfigError, ParseError};
use crate::fields::{Aliases, Kind, convert, put, valid_path, valid_segment};
use crate::project::Projection;
use crate::sshd::{self, Caps, Fast};
use crate::timefmt::TimeParser;

/// Compiled-program size limit for one pattern (the regex crate's default
/// is 10 MiB; user patterns get less so a pathological one fails loudly at
/// configuration time instead of costing memory per thread).
const PATTERN_SIZE_LIMIT: usize = 2 << 20;
/// Limit for the combined multi-pattern automaton.
const SET_SIZE_LIMIT: usize = 32 << 20;

/// Capture names that become top-level fields rather than `fields.<name>`.
const TOP_LEVEL: [&str; 4] = ["level", "service", "event", "message"];

/// A pattern before compilation: a user [`PatternConfig`] or a builtin.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub index: u32,
    pub name: String,
    /// Error path prefix, e.g. `parsers[3]`.
    pub field: String,
    pub pattern: String,
    pub event: Option<String>,
    pub program: Option<String>,
    pub ts: Option<TimestampCapture>,
    pub types: BTreeMap<String, Kind>,
    pub statics: Vec<(String, Value)>,
    pub post: Option<Post>,
    /// A hand-written matcher equivalent to `pattern` (builtin sets only).
    pub fast: Option<Fast>,
}

impl Spec {
    pub(crate) fn from_config(index: usize, c: &PatternConfig) -> Spec {
        Spec {
            index: index as u32,
            name: c.name.clone(),
            field: format!("parsers[{index}]"),
            pattern: c.pattern.clone(),
            event: c.event.clone(),
            program: c.program.clone(),
            ts: c.timestamp.clone(),
            types: c
                .types
                .iter()
                .map(|(k, t)| (k.clone(), Kind::Typed(*t)))
                .collect(),
            statics: c
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(Str::from(v.as_str()))))
                .collect(),
            post: None,
            fast: None,
        }
    }
}

/// A builtin pattern's post-processing hook, with every field it reads
/// and writes, so that a [`Projection`] can keep what the hook reads and
/// drop what it does not keep, without filtering every field afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Post {
    pub run: fn(&mut Fields),
    pub reads: &'static [&'static str],
    pub writes: &'static [&'static str],
}

#[derive(Debug)]
struct CapPlan {
    group: usize,
    /// Slot in [`sshd::NAMES`] when the pattern has a fast matcher.
    slot: usize,
    key: Str,
    kind: Kind,
    renamed: bool,
    /// Stored in the event; false only for captures a [`Projection`]
    /// drops (they are still converted, so bad values still reject).
    keep: bool,
    /// No other field the pattern or a syslog header writes has this key,
    /// so it is appended without looking for one to replace.
    unique: bool,
}

/// Fields a syslog header may have written before a pattern's (see
/// `LineParser::syslog`), besides `sd.*`.
const HEADER_KEYS: [&str; 8] = [
    "host", "program", "pid", "msgid", "facility", "severity", "level", "message",
];

#[derive(Debug)]
struct TsPlan {
    group: usize,
    name: String,
    time: TimeParser,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub index: u32,
    pub name: Str,
    program: Option<String>,
    re: Regex,
    /// The same pattern compiled without Unicode, for ASCII haystacks (see
    /// [`Ascii`]).
    ascii: Option<Ascii>,
    caps: Vec<CapPlan>,
    ts: Option<TsPlan>,
    event: Option<Value>,
    /// No constant field is named `event`, so `event` is appended (no
    /// header field has that name either).
    event_push: bool,
    statics: Vec<(Str, Value)>,
    post: Option<Post>,
    /// Under a projection, what the hook needed (or wrote) that the
    /// projection does not keep: removed after the hook runs.
    post_drop: Vec<Str>,
    fast: Option<Fast>,
}

/// Checks and compiles one pattern, appending every problem to `errs`.
pub(crate) fn compile(
    spec: &Spec,
    aliases: &Aliases,
    errs: &mut Vec<ConfigError>,
) -> Option<Compiled> {
    let before = errs.len();
    let f = &spec.field;
    if spec.name.trim().is_empty() {
        errs.push(ConfigError::new(format!("{f}.name"), "must not be empty"));
    }
    if let Some(p) = &spec.program
        && (p.is_empty() || p.contains(char::is_whitespace))
    {
        errs.push(ConfigError::new(
            format!("{f}.program"),
            "must be a non-empty program name without spaces",
        ));
    }
    if let Some(e) = &spec.event
        && !valid_path(e)
    {
        errs.push(ConfigError::new(
            format!("{f}.event"),
            format!(
                "invalid event name {e:?}: dotted segments of letters, digits, '_', '-' or '@'"
            ),
        ));
    }
    let re = match RegexBuilder::new(&spec.pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            errs.push(ConfigError::new(format!("{f}.pattern"), e.to_string()));
            None
        }
    };
    let ts_cfg = spec.ts.clone();
    let ts_name = ts_cfg
        .as_ref()
        .map_or("timestamp", |t| t.field.as_str())
        .to_string();
    let ts_time = match TimeParser::new(ts_cfg.as_ref().map_or(&TimeFormat::Auto, |t| &t.format)) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(ConfigError::new(format!("{f}.timestamp.format"), e));
            None
        }
    };
    let mut statics = Vec::with_capacity(spec.statics.len());
    for (k, v) in &spec.statics {
        if !valid_path(k) {
            errs.push(ConfigError::new(
                format!("{f}.fields.{k}"),
                "invalid field name: dotted segments of letters, digits, '_', '-' or '@'",
            ));
        } else if k == "timestamp" {
            errs.push(ConfigError::new(
                format!("{f}.fields.{k}"),
                "the event time cannot be a static field; capture it",
            ));
        } else {
            statics.push((Str::from(k.as_str()), v.clone()));
        }
    }
    let re = re?;
    let names: Vec<(usize, &str)> = re
        .capture_names()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (i, n)))
        .collect();
    let has = |n: &str| names.iter().any(|(_, x)| *x == n);
    let list = || {
        let v: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    if ts_cfg.is_some() && !has(&ts_name) {
        errs.push(ConfigError::new(
            format!("{f}.timestamp.field"),
            format!(
                "the pattern has no capture named {ts_name:?} (captures: {})",
                list()
            ),
        ));
    }
    for k in spec.types.keys() {
        if !has(k) {
            errs.push(ConfigError::new(
                format!("{f}.types.{k}"),
                format!(
                    "the pattern has no capture named {k:?} (captures: {})",
                    list()
                ),
            ));
        } else if *k == ts_name {
            errs.push(ConfigError::new(
                format!("{f}.types.{k}"),
                "the timestamp capture is read with timestamp.format, not a type",
            ));
        }
    }
    let mut caps = Vec::new();
    let mut ts = None;
    for &(group, name) in &names {
        if name == ts_name {
            if let Some(time) = ts_time.clone() {
                ts = Some(TsPlan {
                    group,
                    name: name.to_string(),
                    time,
                });
            }
            continue;
        }
        if !name.split('.').all(valid_segment) {
            errs.push(ConfigError::new(
                format!("{f}.pattern"),
                format!("capture name {name:?} is not a field name: dotted segments of letters, digits, '_', '-' or '@'"),
            ));
            continue;
        }
        let (key, renamed) = if TOP_LEVEL.contains(&name) {
            (name.to_string(), false)
        } else {
            let (p, r) = aliases.rename_path(name);
            (format!("fields.{p}"), r)
        };
        let kind = spec
            .types
            .get(name)
            .copied()
            .unwrap_or(Kind::Typed(FieldType::String));
        caps.push(CapPlan {
            group,
            slot: sshd::NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(usize::MAX),
            key: Str::from(key),
            kind,
            renamed,
            keep: true,
            unique: false,
        });
    }
    for i in 0..caps.len() {
        let k = caps[i].key.as_str();
        caps[i].unique = !HEADER_KEYS.contains(&k)
            && !k.starts_with("sd.")
            && k != "event"
            && !statics.iter().any(|(s, _)| s == k)
            && caps.iter().filter(|c| c.key == k).count() == 1;
    }
    let event_push = !statics.iter().any(|(k, _)| k == "event");
    if errs.len() > before {
        return None;
    }
    // A fast matcher only fills the slots of `sshd::NAMES`; anything else
    // (or a timestamp capture) keeps the regex path.
    let fast = spec
        .fast
        .filter(|_| ts.is_none() && caps.iter().all(|c| c.slot != usize::MAX));
    Some(Compiled {
        index: spec.index,
        name: Str::from(spec.name.as_str()),
        program: spec.program.clone(),
        // A fast matcher never falls back to the regex engines.
        ascii: if fast.is_some() {
            None
        } else {
            Ascii::build(&spec.pattern)
        },
        re,
        caps,
        ts,
        event: spec.event.as_deref().map(Value::from),
        event_push,
        statics,
        post: spec.post,
        post_drop: Vec::new(),
        fast,
    })
}

impl Compiled {
    #[cfg(test)]
    pub(crate) fn has_fast(&self) -> bool {
        self.fast.is_some()
    }
}

/// Capture search for ASCII haystacks. On a haystack of ASCII bytes a
/// pattern matches exactly as it does with Unicode classes turned off
/// (`\S`, `\d`, `\w`, `.`, `(?i)` and `\b` only differ on non-ASCII
/// text), and the byte-class automaton is far smaller, so the capture
/// search (a one-pass DFA when the pattern allows it, else a bounded
/// backtracker run directly, without the meta engine's extra DFA pass) is
/// several times cheaper. Any other haystack, or a pattern that does not
/// compile this way, uses the `regex` engine.
#[derive(Debug)]
struct Ascii {
    onepass: Option<onepass::DFA>,
    bt: BoundedBacktracker,
}

impl Ascii {
    fn build(pattern: &str) -> Option<Ascii> {
        let syntax = || syntax::Config::new().unicode(false).utf8(false);
        let nfa_cfg = || {
            thompson::Config::new()
                .utf8(false)
                .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
        };
        let bt = BoundedBacktracker::builder()
            .syntax(syntax())
            .thompson(nfa_cfg())
            .build(pattern)
            .ok()?;
        let onepass = if bt.get_nfa().is_always_start_anchored() {
            onepass::DFA::builder()
                .syntax(syntax())
                .thompson(nfa_cfg())
                .build(pattern)
                .ok()
        } else {
            None
        };
        Some(Ascii { onepass, bt })
    }
}

#[derive(Debug)]
enum AsciiCache {
    OnePass(onepass::Cache, Captures),
    Bt(backtrack::Cache, Captures),
}

impl AsciiCache {
    fn new(a: &Ascii) -> AsciiCache {
        match &a.onepass {
            Some(d) => AsciiCache::OnePass(d.create_cache(), d.create_captures()),
            None => AsciiCache::Bt(a.bt.create_cache(), a.bt.create_captures()),
        }
    }

    /// Searches `hay`; `None` when this engine cannot answer (haystack too
    /// long for the backtracker), `Some(false)` for no match.
    fn search(&mut self, a: &Ascii, hay: &str) -> Option<bool> {
        match (self, &a.onepass) {
            (AsciiCache::OnePass(cache, caps), Some(d)) => {
                d.try_search(cache, &Input::new(hay).anchored(Anchored::Yes), caps)
                    .ok()?;
                Some(caps.is_match())
            }
            (AsciiCache::Bt(cache, caps), None) => {
                a.bt.try_search(cache, &Input::new(hay), caps).ok()?;
                Some(caps.is_match())
            }
            _ => None,
        }
    }

    fn captures(&self) -> &Captures {
        match self {
            AsciiCache::OnePass(_, c) | AsciiCache::Bt(_, c) => c,
        }
    }
}

/// Does syslog program `prog` fall under filter `filter`: equal, or `filter`
/// followed by a non-alphanumeric character (`sshd` → `sshd(pam_unix)`).
pub(crate) fn program_matches(prog: &str, filter: &str) -> bool {
    prog.len() >= filter.len()
        && prog.as_bytes()[..filter.len()] == *filter.as_bytes()
        && prog
            .as_bytes()
            .get(filter.len())
            .is_none_or(|c| !c.is_ascii_alphanumeric())
}

#[derive(Debug)]
struct Matcher {
    /// The patterns without a fast matcher, searched all at once.
    set: Option<meta::Regex>,
    /// Matcher-local pattern id → position in `Patterns::patterns`.
    map: Vec<u32>,
    /// Positions of the patterns with a fast matcher, ascending.
    fast: Vec<u32>,
}

impl Matcher {
    fn build(
        patterns: &[Compiled],
        select: impl Fn(&Compiled) -> bool,
    ) -> Result<Option<Matcher>, String> {
        let mut map = Vec::new();
        let mut pats = Vec::new();
        let mut fast = Vec::new();
        for (pos, p) in patterns.iter().enumerate() {
            if select(p) {
                if p.fast.is_some() {
                    fast.push(pos as u32);
                } else {
                    map.push(pos as u32);
                    pats.push(p.re.as_str());
                }
            }
        }
        if pats.is_empty() && fast.is_empty() {
            return Ok(None);
        }
        let set = if pats.is_empty() {
            None
        } else {
            Some(
                meta::Regex::builder()
                    .configure(
                        meta::Config::new()
                            .match_kind(MatchKind::All)
                            .nfa_size_limit(Some(SET_SIZE_LIMIT)),
                    )
                    .build_many(&pats)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Some(Matcher { set, map, fast }))
    }
}

/// Per-context scratch space, so that matching allocates nothing per line.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    owner: u64,
    set: Option<PatternSet>,
    locs: Vec<Option<CaptureLocations>>,
    ascii: Vec<Option<AsciiCache>>,
    /// Capture spans of the last match: by group, or by [`sshd::NAMES`]
    /// slot when `fast`.
    spans: Vec<Option<(usize, usize)>>,
    fast: bool,
}

/// All patterns of one parser.
#[derive(Debug)]
pub(crate) struct Patterns {
    id: u64,
    pub(crate) patterns: Vec<Compiled>,
    text: Option<Matcher>,
    /// Longest filter first, so the first hit is the most specific.
    by_program: Vec<(String, Matcher)>,
}

impl Patterns {
    pub(crate) fn build(id: u64, patterns: Vec<Compiled>) -> Result<Patterns, String> {
        let text = Matcher::build(&patterns, |p| p.program.is_none())?;
        let mut filters: Vec<String> = patterns.iter().filter_map(|p| p.program.clone()).collect();
        filters.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        filters.dedup();
        let mut by_program = Vec::with_capacity(filters.len());
        for f in filters {
            let m = Matcher::build(&patterns, |p| match &p.program {
                None => true,
                Some(q) => program_matches(&f, q),
            })?;
            if let Some(m) = m {
                by_program.push((f, m));
            }
        }
        Ok(Patterns {
            id,
            patterns,
            text,
            by_program,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Finds the highest-priority pattern matching `hay` among those that
    /// apply to `program` (`None`: not a syslog line) and fills its capture
    /// spans in `scratch`. Returns its position.
    pub(crate) fn find(
        &self,
        hay: &str,
        program: Option<&str>,
        scratch: &mut Scratch,
    ) -> Option<usize> {
        let matcher = match program {
            Some(prog) => self
                .by_program
                .iter()
                .find(|(f, _)| program_matches(prog, f))
                .map(|(_, m)| m)
                .or(self.text.as_ref()),
            None => self.text.as_ref(),
        }?;
        if scratch.owner != self.id || scratch.locs.len() != self.patterns.len() {
            scratch.owner = self.id;
            scratch.set = Some(PatternSet::new(self.patterns.len()));
            scratch.locs = (0..self.patterns.len()).map(|_| None).collect();
            scratch.ascii = (0..self.patterns.len()).map(|_| None).collect();
        }
        // Lowest-positioned match among the regex patterns…
        let mut slow = None;
        if let Some(re) = &matcher.set {
            let set = scratch
                .set
                .get_or_insert_with(|| PatternSet::new(self.patterns.len()));
            set.clear();
            re.which_overlapping_matches(&Input::new(hay), set);
            if let Some(local) = set.iter().next() {
                slow = Some(*matcher.map.get(local.as_usize())? as usize);
            }
        }
        // …unless a fast pattern before it matches.
        let first = hay.as_bytes().first();
        for &pos in &matcher.fast {
            let pos = pos as usize;
            if slow.is_some_and(|s| s < pos) {
                break;
            }
            let Some(f) = self.patterns.get(pos).and_then(|p| p.fast) else {
                continue;
            };
            if !first.is_some_and(|&b| f.admits(b)) {
                continue;
            }
            let mut caps: Caps = [None; 9];
            if (f.run)(hay, &mut caps) {
                scratch.fast = true;
                scratch.spans.clear();
                scratch.spans.extend_from_slice(&caps);
                return Some(pos);
            }
        }
        let pos = slow?;
        let p = self.patterns.get(pos)?;
        if let Some(a) = &p.ascii
            && hay.is_ascii()
        {
            let slot = scratch.ascii.get_mut(pos)?;
            let cache = slot.get_or_insert_with(|| AsciiCache::new(a));
            if let Some(found) = cache.search(a, hay) {
                if !found {
                    return None;
                }
                let caps = cache.captures();
                scratch.fast = false;
                scratch.spans.clear();
                scratch.spans.extend(
                    (0..caps.group_len()).map(|i| caps.get_group(i).map(|s| (s.start, s.end))),
                );
                return Some(pos);
            }
        }
        let slot = scratch.locs.get_mut(pos)?;
        let locs = slot.get_or_insert_with(|| p.re.capture_locations());
        p.re.captures_read(locs, hay)?;
        scratch.fast = false;
        scratch.spans.clear();
        scratch.spans.extend((0..locs.len()).map(|i| locs.get(i)));
        Some(pos)
    }

    /// Writes the fields of the match found by [`find`](Self::find) and
    /// returns the captured event time, if the pattern has one.
    pub(crate) fn apply(
        &self,
        pos: usize,
        hay: &str,
        scratch: &Scratch,
        fields: &mut Fields,
        project: Option<&Projection>,
    ) -> Result<Option<Timestamp>, ParseError> {
        let Some(p) = self.patterns.get(pos) else {
            return Ok(None);
        };
        let spans = &scratch.spans;
        for (k, v) in &p.statics {
            fields.insert(k.clone(), v.clone());
        }
        if let Some(ev) = &p.event {
            if p.event_push {
                fields.push(Str::const_new("event"), ev.clone());
            } else {
                fields.insert("event", ev.clone());
            }
        }
        for c in &p.caps {
            // Strings and flags cannot fail to convert: one not stored
            // need not be built.
            if !c.keep && matches!(c.kind, Kind::Flag | Kind::Typed(FieldType::String)) {
                continue;
            }
            let i = if scratch.fast { c.slot } else { c.group };
            let Some(&Some((s, e))) = spans.get(i) else {
                continue;
            };
            let text = hay.get(s..e).unwrap_or("");
            // Converted even when not kept: a bad value rejects the line
            // whatever the projection.
            let v = convert(text, c.kind).map_err(|expected| ParseError::BadField {
                field: c.key.to_string(),
                value: secmon_core::time::truncate(text),
                expected,
            })?;
            if c.keep {
                if c.unique {
                    fields.push(c.key.clone(), v);
                } else {
                    put(fields, &c.key, v, c.renamed);
                }
            }
        }
        let mut time = None;
        if let Some(ts) = &p.ts
            && !scratch.fast
            && let Some(&Some((s, e))) = spans.get(ts.group)
        {
            let text = hay.get(s..e).unwrap_or("");
            time = Some(
                ts.time
                    .parse_str(text)
                    .map_err(|reason| ParseError::BadTimestamp {
                        field: ts.name.clone(),
                        value: secmon_core::time::truncate(text),
                        reason,
                    })?,
            );
        }
        if let Some(post) = p.post {
            (post.run)(fields);
            if project.is_some() {
                for k in &p.post_drop {
                    fields.remove(k);
                }
            }
        }
        Ok(time)
    }

    /// Decides once which captures and constant fields each pattern stores
    /// under `project`. A pattern with a post-processing hook also stores
    /// what the hook reads; what the hook read or wrote beyond the
    /// projection is removed after it ran, in [`Patterns::apply`].
    pub(crate) fn set_projection(&mut self, project: &Projection) {
        for p in &mut self.patterns {
            let reads = p.post.map_or(&[][..], |h| h.reads);
            let keeps = |k: &str| project.keeps(k) || reads.contains(&k);
            p.statics.retain(|(k, _)| keeps(k));
            for c in &mut p.caps {
                c.keep = keeps(&c.key);
            }
            p.post_drop = p.post.map_or_else(Vec::new, |h| {
                h.reads
                    .iter()
                    .chain(h.writes)
                    .filter(|k| !project.keeps(k))
                    .map(|k| Str::from(*k))
                    .collect()
            });
        }
    }

    /// The name of the timestamp capture of the pattern at `pos`, for the
    /// missing-timestamp error of text lines.
    pub(crate) fn ts_name(&self, pos: usize) -> String {
        self.patterns
            .get(pos)
            .and_then(|p| p.ts.as_ref())
            .map_or_else(|| "timestamp".to_string(), |t| t.name.clone())
    }

    pub(crate) fn name_of(&self, index: u32) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| p.index == index)
            .map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_filter_boundaries() {
        assert!(program_matches("sshd", "sshd"));
        assert!(program_matches("sshd(pam_unix)", "sshd"));
        assert!(program_matches("sshd-session", "sshd"));
        assert!(!program_matches("sshd2", "sshd"));
        assert!(!program_matches("ssh", "sshd"));
        assert!(!program_matches("xsshd", "sshd"));
    }
}

#[cfg(test)]
mod ascii_tests {
    use super::*;

    /// The ASCII engines give exactly the regex crate's captures on ASCII
    /// haystacks.
    #[test]
    fn ascii_engine_matches_regex() {
        let pats = [
            r"^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<service>\S+) - (?P<level>[A-Z]+) - Error setting cache key (?P<key>\S+): value size (?P<size>\d+) exceeds maximum (?P<max>\d+)",
            r"^(?P<timestamp>\S+ \S+) - (?P<service>\S+) - (?P<level>[A-Z]+) - (?P<message>.*(?:TTL must be at least (?P<min_ttl>\d+)|TTL (?P<ttl>-?\d+).*exceeds maximum (?P<max_ttl>\d+)).*)",
            r"(?P<a>\w+)=(?P<b>\S*)",
            r"(?i)user (?P<u>[a-z]+)\b",
            r"(?P<x>a|ab)(?P<y>c|bcd)?(?P<z>d*)",
            r"^(?P<a>.*?)(?P<b>k+)?$",
            r"\b(?P<w>\w+)\b\s*(?P<n>\d+)?",
            r"(?P<e>)x|(?P<f>y)",
            r"^(?:(?P<l>[a-c])|(?P<r>[b-d]))+(?P<t>\W)",
            r"(?m)^(?P<line>\S+)$",
            r"(?s)(?P<all>.+)",
            r"[^a](?P<q>[^\s]{2,3})",
        ];
        let alphabet = b"abcdkxyKSU 0123456789:-=_,.\t\nTL";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut hays: Vec<String> = vec![
            "2025-11-21 10:00:00,123 - cache - ERROR - Error setting cache key user:42: value size 12582912 exceeds maximum 10485760".into(),
            "2025-11-21 10:00:00,123 - cache - WARN - TTL 99 way exceeds maximum 50 ok".into(),
            "".into(),
        ];
        for _ in 0..3000 {
            let n = rnd(40);
            hays.push(
                (0..n)
                    .map(|_| alphabet[rnd(alphabet.len())] as char)
                    .collect(),
            );
        }
        for p in pats {
            let re = Regex::new(p).expect("regex");
            let a = Ascii::build(p).expect("ascii");
            let mut cache = AsciiCache::new(&a);
            let mut locs = re.capture_locations();
            for h in &hays {
                let want = re
                    .captures_read(&mut locs, h)
                    .map(|_| (0..locs.len()).map(|i| locs.get(i)).collect::<Vec<_>>());
                let found = cache.search(&a, h).expect("answers");
                let got = found.then(|| {
                    let c = cache.captures();
                    (0..c.group_len())
                        .map(|i| c.get_group(i).map(|s| (s.start, s.end)))
                        .collect::<Vec<_>>()
                });
                assert_eq!(want, got, "{p} on {h:?}");
            }
        }
    }
}
