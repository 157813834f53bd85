//! Validation: [`RuleConfig`]s and [`MetricConfig`]s become an immutable
//! [`Ruleset`] of runtime [`Rule`]s with compiled conditions and resolved
//! metric expressions. Like a compiler, it reports every error it finds,
//! each with the item and field it belongs to, rather than stopping at the
//! first.
//!
//! Nothing here holds detection state; the ruleset is shared (`Arc`) and
//! never mutated, so engines and the binary's config reload can hold it freely.

use std::collections::BTreeMap;
use std::fmt;

use secmon_core::{Dur, FieldPath, Priority, Severity, Str};

use crate::condition::{Condition, compile_config};
use crate::config::{ConditionConfig, DetectorConfig, MetricConfig, MetricKind, RuleConfig};
use crate::metric_expr::{MetricExpr, parse_metric_expr};

/// Which config item an error belongs to (index into the input slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Rule(usize),
    Metric(usize),
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {field}: {message}")]
pub struct BuildError {
    pub item: Item,
    /// Field path inside the item, e.g. `detector.window`, `match`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Rule(i) => write!(f, "rules[{i}]"),
            Item::Metric(i) => write!(f, "metrics[{i}]"),
        }
    }
}

/// The detector of a validated rule.
#[derive(Debug, Clone)]
pub enum Detector {
    Threshold {
        count: u64,
        window: Dur,
        weight: Option<FieldPath>,
    },
    Distinct {
        field: FieldPath,
        count: u64,
        window: Dur,
    },
    Single,
    Metric {
        expr: MetricExpr,
        hold: Dur,
    },
    Absence {
        window: Dur,
    },
    State {
        when: Condition,
    },
}

/// Detector kinds, for display and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectorKind {
    Threshold,
    Distinct,
    Single,
    Metric,
    Absence,
    State,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Threshold => "threshold",
            DetectorKind::Distinct => "distinct",
            DetectorKind::Single => "single",
            DetectorKind::Metric => "metric",
            DetectorKind::Absence => "absence",
            DetectorKind::State => "state",
        }
    }
}

impl Detector {
    pub fn kind(&self) -> DetectorKind {
        match self {
            Detector::Threshold { .. } => DetectorKind::Threshold,
            Detector::Distinct { .. } => DetectorKind::Distinct,
            Detector::Single => DetectorKind::Single,
            Detector::Metric { .. } => DetectorKind::Metric,
            Detector::Absence { .. } => DetectorKind::Absence,
            Detector::State { .. } => DetectorKind::State,
        }
    }

    /// The window the detector's per-group state spans (zero for stateless ones).
    pub fn window(&self) -> Dur {
        match self {
            Detector::Threshold { window, .. }
            | Detector::Distinct { window, .. }
            | Detector::Absence { window } => *window,
            Detector::Metric { expr, .. } => expr.max_window(),
            Detector::Single | Detector::State { .. } => Dur::ZERO,
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    id: String,
    name: Option<String>,
    description: Option<String>,
    severity: Severity,
    priority: Option<Priority>,
    labels: BTreeMap<String, String>,
    actions: Vec<String>,
    group_by: Vec<FieldPath>,
    enabled: bool,
    pub(crate) condition: Condition,
    pub(crate) detector: Detector,
    /// What the rule's detection state depends on, as written.
    definition: Definition,
}

/// The parts of a rule's configuration that its detection state depends
/// on: what it matches, how it groups, its detector and whether it runs.
/// Name, severity, priority, labels and actions only decorate alerts, so a
/// reload that edits them keeps the rule's windows (see
/// `Engine::carry_over`). Kept as written rather than compiled: compiled
/// conditions hold regexes, which have no equality, and `more_than: 4`
/// versus `count: 5` counting as a change only costs a fresh window.
#[derive(Debug, Clone, PartialEq)]
struct Definition {
    match_: Option<ConditionConfig>,
    group_by: Vec<FieldPath>,
    detector: DetectorConfig,
    enabled: bool,
}

impl Rule {
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The display name, falling back to the id.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn severity(&self) -> Severity {
        self.severity
    }
    pub fn priority(&self) -> Option<Priority> {
        self.priority
    }
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    pub fn actions(&self) -> &[String] {
        &self.actions
    }
    pub fn group_by(&self) -> &[FieldPath] {
        &self.group_by
    }
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    pub fn condition(&self) -> &Condition {
        &self.condition
    }
    pub fn detector(&self) -> &Detector {
        &self.detector
    }
    pub fn detector_kind(&self) -> DetectorKind {
        self.detector.kind()
    }
    /// Whether `other` detects exactly as this rule does (same match,
    /// group_by, detector and enabled flag), so its per-group state means
    /// the same thing under either. A metric rule also depends on the
    /// metrics it reads, which this does not compare.
    pub fn same_definition(&self, other: &Rule) -> bool {
        self.definition == other.definition
    }
}

/// A validated derived metric.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: Str,
    pub kind: MetricKind,
    /// Which events update the metric. For an updown, `match` or `down`
    /// (one condition, so dispatch by event name and field projection need
    /// no special case).
    pub condition: Condition,
    /// Updown: the events among those that count the level down.
    pub down: Option<Condition>,
    pub field: Option<FieldPath>,
    pub description: Option<String>,
    pub unit: Option<String>,
}

impl Metric {
    /// An updown's change for an event its condition matched: −1 when it
    /// matches `down` (which wins when both match, so `match` may be broad),
    /// else +1.
    pub(crate) fn step(&self, ev: &secmon_core::Event) -> f64 {
        match &self.down {
            Some(d) if d.matches(ev) => -1.0,
            _ => 1.0,
        }
    }
}

/// An immutable, validated set of rules and metrics.
#[derive(Debug, Clone)]
pub struct Ruleset {
    rules: Vec<Rule>,
    metrics: Vec<Metric>,
    /// Each metric's configuration minus description and unit: what its
    /// store's contents depend on (see [`Ruleset::same_metric`]).
    metric_defs: Vec<MetricConfig>,
}

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

fn valid_metric_name(n: &str) -> bool {
    !n.is_empty()
        && n.split('.').all(|s| {
            !s.is_empty()
                && s.as_bytes()[0].is_ascii_alphabetic()
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        })
}

/// `count` / `more_than`: exactly one, giving the firing count (more_than N ⇒ N+1).
fn firing_count(
    count: Option<u64>,
    more_than: Option<u64>,
    errs: &mut Vec<(String, String)>,
) -> u64 {
    match (count, more_than) {
        (Some(_), Some(_)) => {
            errs.push((
                "detector.count".into(),
                "set either `count` or `more_than`, not both".into(),
            ));
            1
        }
        (None, None) => {
            errs.push((
                "detector.count".into(),
                "one of `count` or `more_than` is required".into(),
            ));
            1
        }
        (Some(0), None) => {
            errs.push(("detector.count".into(), "must be at least 1".into()));
            1
        }
        (Some(n), None) => n,
        (None, Some(n)) => n.saturating_add(1),
    }
}

fn positive(window: Dur, field: &str, errs: &mut Vec<(String, String)>) {
    if window.as_millis() <= 0 {
        errs.push((field.into(), "must be longer than zero".into()));
    }
}

impl Ruleset {
    /// Validates everything and reports every error.
    pub fn build(
        rules: &[RuleConfig],
        metrics: &[MetricConfig],
    ) -> Result<Ruleset, Vec<BuildError>> {
        let mut errors = Vec::new();
        let mut out_metrics = Vec::with_capacity(metrics.len());
        for (i, m) in metrics.iter().enumerate() {
            let mut errs: Vec<(String, String)> = Vec::new();
            if !valid_metric_name(&m.name) {
                errs.push(("name".into(), format!("invalid metric name {:?} (dotted identifiers such as cache.value.rejection.count)", secmon_core::time::truncate(&m.name))));
            } else if metrics[..i].iter().any(|o| o.name == m.name) {
                errs.push(("name".into(), format!("duplicate metric name `{}`", m.name)));
            }
            match m.kind {
                MetricKind::Counter => {}
                MetricKind::UpDown => {
                    if m.field.is_some() {
                        errs.push((
                            "field".into(),
                            "an updown counts events (+1 on `match`, −1 on `down`); it takes no `field`".into(),
                        ));
                    }
                }
                MetricKind::Gauge | MetricKind::Histogram => {
                    if m.field.is_none() {
                        errs.push((
                            "field".into(),
                            format!(
                                "a {} needs `field`: the number it observes",
                                m.kind.as_str()
                            ),
                        ));
                    }
                }
            }
            let mut condition = compile_match(m.match_.as_ref(), &mut errs);
            let down = match (m.kind, &m.down) {
                (MetricKind::UpDown, None) => {
                    errs.push((
                        "down".into(),
                        "an updown needs `down`: the events that count it down".into(),
                    ));
                    None
                }
                (MetricKind::UpDown, Some(d)) => match compile_config(d) {
                    Ok(d) => {
                        condition = Condition::Or(vec![condition, d.clone()]);
                        Some(d)
                    }
                    Err(e) => {
                        let field = if e.path.is_empty() {
                            "down".to_string()
                        } else {
                            format!("down.{}", e.path)
                        };
                        errs.push((field, e.message));
                        None
                    }
                },
                (_, Some(_)) => {
                    errs.push((
                        "down".into(),
                        format!("only an updown has `down`, not a {}", m.kind.as_str()),
                    ));
                    None
                }
                (_, None) => None,
            };
            errors.extend(errs.into_iter().map(|(field, message)| BuildError {
                item: Item::Metric(i),
                field,
                message,
            }));
            out_metrics.push(Metric {
                name: Str::from(m.name.as_str()),
                kind: m.kind,
                condition,
                down,
                field: m.field.clone(),
                description: m.description.clone(),
                unit: m.unit.clone(),
            });
        }
        let names: Vec<(Str, MetricKind)> = out_metrics
            .iter()
            .map(|m| (m.name.clone(), m.kind))
            .collect();

        let mut out_rules = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let mut errs: Vec<(String, String)> = Vec::new();
            if !valid_id(&r.id) {
                errs.push((
                    "id".into(),
                    format!(
                        "invalid id {:?} (expected [a-z0-9][a-z0-9_.-]*)",
                        secmon_core::time::truncate(&r.id)
                    ),
                ));
            } else if rules[..i].iter().any(|o| o.id == r.id) {
                errs.push(("id".into(), format!("duplicate rule id `{}`", r.id)));
            }
            let condition = compile_match(r.match_.as_ref(), &mut errs);
            let detector = match &r.detector {
                DetectorConfig::Threshold {
                    count,
                    more_than,
                    window,
                    weight,
                } => {
                    let count = firing_count(*count, *more_than, &mut errs);
                    positive(*window, "detector.window", &mut errs);
                    Detector::Threshold {
                        count,
                        window: *window,
                        weight: weight.clone(),
                    }
                }
                DetectorConfig::Distinct {
                    field,
                    count,
                    more_than,
                    window,
                } => {
                    let count = firing_count(*count, *more_than, &mut errs);
                    positive(*window, "detector.window", &mut errs);
                    Detector::Distinct {
                        field: field.clone(),
                        count,
                        window: *window,
                    }
                }
                DetectorConfig::Single => Detector::Single,
                DetectorConfig::Absence { window } => {
                    positive(*window, "detector.window", &mut errs);
                    Detector::Absence { window: *window }
                }
                DetectorConfig::State { when } => Detector::State {
                    when: compile_config(when).unwrap_or_else(|e| {
                        let field = if e.path.is_empty() {
                            "detector.when".to_string()
                        } else {
                            format!("detector.when.{}", e.path)
                        };
                        errs.push((field, e.message));
                        Condition::True
                    }),
                },
                DetectorConfig::Metric { expr, hold } => {
                    if hold.as_millis() < 0 {
                        errs.push(("detector.for".into(), "must not be negative".into()));
                    }
                    if !r.group_by.is_empty() {
                        errs.push((
                            "group_by".into(),
                            "metric rules are global; remove group_by".into(),
                        ));
                    }
                    if r.match_.is_some() {
                        errs.push((
                            "match".into(),
                            "metric rules read metrics, not events; put the match on the metric"
                                .into(),
                        ));
                    }
                    match parse_metric_expr(expr) {
                        Ok(mut e) => {
                            for m in e.resolve(&names) {
                                errs.push(("detector.expr".into(), m));
                            }
                            Detector::Metric {
                                expr: e,
                                hold: *hold,
                            }
                        }
                        Err(e) => {
                            errs.push(("detector.expr".into(), e.to_string()));
                            Detector::Single
                        }
                    }
                }
            };
            errors.extend(errs.into_iter().map(|(field, message)| BuildError {
                item: Item::Rule(i),
                field,
                message,
            }));
            out_rules.push(Rule {
                id: r.id.clone(),
                name: r.name.clone(),
                description: r.description.clone(),
                severity: r.severity,
                priority: r.priority,
                labels: r.labels.clone(),
                actions: r.actions.clone(),
                group_by: r.group_by.clone(),
                enabled: r.enabled,
                condition,
                detector,
                definition: Definition {
                    match_: r.match_.clone(),
                    group_by: r.group_by.clone(),
                    detector: r.detector.clone(),
                    enabled: r.enabled,
                },
            });
        }
        if errors.is_empty() {
            Ok(Ruleset {
                rules: out_rules,
                metrics: out_metrics,
                metric_defs: metrics
                    .iter()
                    .map(|m| MetricConfig {
                        description: None,
                        unit: None,
                        ..m.clone()
                    })
                    .collect(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Panics if `idx` is out of range, like slice indexing; indices come
    /// from verdicts of this ruleset.
    pub fn rule(&self, idx: usize) -> &Rule {
        &self.rules[idx]
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Whether metric `i` of this ruleset and metric `j` of `other` record
    /// the same observations (name, kind, match, down, field): a store
    /// filled under one is valid under the other.
    pub fn same_metric(&self, i: usize, other: &Ruleset, j: usize) -> bool {
        match (self.metric_defs.get(i), other.metric_defs.get(j)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// Index of the rule with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// Every event field the engine can read when evaluating this ruleset:
    /// `event` (dispatch), each rule's condition, group_by and detector
    /// fields, and each metric's condition and value field. Enabled or not,
    /// every rule counts, so the answer does not depend on runtime toggles.
    /// An event reduced to these fields gets exactly the verdicts the whole
    /// event gets, which lets `replay` drop what no rule reads (an sshd
    /// line's message, port, program…) before it crosses threads.
    pub fn event_paths<'a>(&'a self) -> std::collections::BTreeSet<&'a str> {
        let mut out = std::collections::BTreeSet::new();
        out.insert(secmon_core::event::names::EVENT);
        let mut add = |p: &'a str| {
            out.insert(p);
        };
        for r in &self.rules {
            r.condition.paths(&mut add);
            for g in &r.group_by {
                add(g.as_str());
            }
            match &r.detector {
                Detector::Threshold {
                    weight: Some(w), ..
                } => add(w.as_str()),
                Detector::Distinct { field, .. } => add(field.as_str()),
                Detector::State { when } => when.paths(&mut add),
                Detector::Threshold { weight: None, .. }
                | Detector::Single
                | Detector::Metric { .. }
                | Detector::Absence { .. } => {}
            }
        }
        for m in &self.metrics {
            m.condition.paths(&mut add);
            if let Some(f) = &m.field {
                add(f.as_str());
            }
        }
        out
    }
}

/// Compiles an item's optional `match:`; a problem is recorded under
/// `match` (or `match.<path>` for the map form) and the item then matches
/// nothing useful, since the whole build fails anyway.
fn compile_match(c: Option<&ConditionConfig>, errs: &mut Vec<(String, String)>) -> Condition {
    match c {
        None => Condition::True,
        Some(c) => compile_config(c).unwrap_or_else(|e| {
            let field = if e.path.is_empty() {
                "match".to_string()
            } else {
                format!("match.{}", e.path)
            };
            errs.push((field, e.message));
            Condition::True
        }),
    }
}
