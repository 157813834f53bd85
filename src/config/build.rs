//! Turns [`Loaded`] configuration items into the runtime objects the
//! pipeline uses: the validated [`Ruleset`], one compiled [`LineParser`] per
//! source, and the engine settings. Every error of every item is collected
//! and mapped back to the file, line and field it came from.

use std::path::PathBuf;
use std::sync::Arc;

use secmon_engine::{BuildError, EngineConfig, Item as EngineItem, Ruleset};
use secmon_notify::NotifyConfig;
use secmon_parse::{ConfigError, Format, LineParser, ParseConfig, PatternConfig};
use secmon_respond::RespondConfig;

use super::{Diagnostic, Diagnostics, Loaded, Origin, SourceKind, StartAt};

/// A source of `secmon run`, ready to read.
pub struct SourcePlan {
    pub name: String,
    pub kind: SourceKind,
    pub paths: Vec<String>,
    pub start_at: StartAt,
    pub parser: Arc<LineParser>,
}

pub struct Runtime {
    pub ruleset: Arc<Ruleset>,
    pub engine: EngineConfig,
    pub data_dir: PathBuf,
    pub parse: ParseConfig,
    pub patterns: Vec<PatternConfig>,
    /// Parser for files named on the command line (`replay`, `test`):
    /// automatic format detection with every pattern parser.
    pub default_parser: Arc<LineParser>,
    pub sources: Vec<SourcePlan>,
    pub respond: RespondConfig,
    pub notify: NotifyConfig,
    pub api: crate::api::ApiConfig,
    /// Probes and the Redis collector; empty when none is configured.
    pub watch: secmon_watch::Watch,
    pub archive: crate::archive::ArchiveSection,
    /// The dashboard pages: the seeds' defaults with `dashboards:` laid over.
    pub dashboards: crate::dashboard::config::Dashboards,
}

impl Runtime {
    /// A parser for one format with every pattern (for `replay --format`).
    pub fn parser_for(&self, format: Format) -> Result<Arc<LineParser>, Diagnostics> {
        LineParser::new(&self.parse, &self.patterns, None, format)
            .map(Arc::new)
            .map_err(|errs| {
                Diagnostics(
                    errs.into_iter()
                        .map(|e| Diagnostic::new("<parse>".as_ref(), 0, 0, e.field, e.message))
                        .collect(),
                )
            })
    }
}

pub fn build(loaded: &Loaded) -> Result<Runtime, Diagnostics> {
    let mut diags = Vec::new();

    let rules: Vec<_> = loaded.rules.iter().map(|i| i.value.clone()).collect();
    let metrics: Vec<_> = loaded.metrics.iter().map(|i| i.value.clone()).collect();
    let ruleset = match Ruleset::build(&rules, &metrics) {
        Ok(r) => Some(Arc::new(r)),
        Err(errs) => {
            diags.extend(errs.into_iter().map(|e| engine_diag(loaded, e)));
            None
        }
    };

    let parse = loaded
        .parse
        .as_ref()
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let patterns: Vec<PatternConfig> = loaded.parsers.iter().map(|i| i.value.clone()).collect();
    for e in secmon_parse::validate(&parse, &patterns) {
        diags.push(parse_diag(loaded, &e));
    }

    let mut sources = Vec::new();
    let mut default_parser = None;
    if diags.is_empty() {
        match LineParser::new(&parse, &patterns, None, Format::Auto) {
            Ok(p) => default_parser = Some(Arc::new(p)),
            Err(errs) => diags.extend(errs.iter().map(|e| parse_diag(loaded, e))),
        }
        for item in &loaded.sources {
            let s = &item.value;
            let o = &item.origin;
            let field = format!("sources[{}]", o.index);
            if s.kind == SourceKind::File && s.paths.is_empty() {
                diags.push(o.diag(
                    format!("{field}.paths"),
                    "a file source needs at least one path or glob",
                ));
                continue;
            }
            if s.kind == SourceKind::Stdin && !s.paths.is_empty() {
                diags.push(o.diag(format!("{field}.paths"), "a stdin source takes no paths"));
                continue;
            }
            match LineParser::new(&parse, &patterns, s.parsers.as_deref(), s.format) {
                Ok(p) => sources.push(super::SourcePlan {
                    name: s.name.clone().unwrap_or_else(|| match s.kind {
                        SourceKind::Stdin => "stdin".to_string(),
                        SourceKind::File => s.paths[0].clone(),
                    }),
                    kind: s.kind,
                    paths: s.paths.clone(),
                    start_at: s.start_at,
                    parser: Arc::new(p),
                }),
                Err(errs) => diags.extend(errs.into_iter().map(|e| {
                    o.diag(
                        format!("{field}.{}", e.field.trim_start_matches('.')),
                        e.message,
                    )
                })),
            }
        }
    }
    let respond = match &loaded.respond {
        Some(item) => {
            if let Err(errs) = item.value.validate() {
                diags.extend(errs.into_iter().map(|m| item.origin.diag("respond", m)));
            }
            item.value.clone()
        }
        None => RespondConfig::seed_defaults(),
    };
    let notify = match &loaded.notify {
        Some(item) => {
            if let Err(e) = item.value.validate() {
                diags.push(item.origin.diag("notify", e.to_string()));
            }
            item.value.clone()
        }
        None => NotifyConfig::default(),
    };
    let mut api = match &loaded.api {
        Some(item) => {
            for (field, m) in item.value.validate() {
                diags.push(item.origin.diag(format!("api.{field}"), m));
            }
            item.value.clone()
        }
        None => crate::api::ApiConfig::default(),
    };
    let dashboards = {
        use crate::dashboard::config;
        let mut merged = match config::defaults() {
            Ok(d) => d,
            Err(e) => {
                diags.push(Diagnostic::new(&loaded.main, 0, 0, "dashboards", e));
                config::Dashboards::default()
            }
        };
        let rule_ids: Vec<&str> = loaded.rules.iter().map(|r| r.value.id.as_str()).collect();
        for item in &loaded.dashboards {
            for (field, m) in config::validate(&item.value, &rule_ids) {
                diags.push(item.origin.diag(format!("dashboards.{field}"), m));
            }
            merged = config::merge(merged, &item.value);
        }
        merged
    };
    api.pages = Some(Arc::from(dashboards.to_json()));
    let mut probes = Vec::new();
    for (i, item) in loaded.probes.iter().enumerate() {
        match item.value.validate() {
            Ok(p) if item.value.enabled => probes.push(p),
            Ok(_) => {}
            Err(errs) => diags.extend(errs.into_iter().map(|e| {
                item.origin
                    .diag(format!("probes[{i}].{}", e.field), e.message)
            })),
        }
    }
    let mut redis = None;
    if let Some(item) = &loaded.redis {
        match item.value.validate() {
            Ok(c) => redis = item.value.enabled.then_some(c),
            Err(errs) => diags.extend(
                errs.into_iter()
                    .map(|e| item.origin.diag(format!("redis.{}", e.field), e.message)),
            ),
        }
    }
    let watch = match secmon_watch::Watch::new(probes, redis) {
        Ok(w) => w,
        Err(errs) => {
            for e in errs {
                let line = loaded.probes.first().map(|p| &p.origin);
                match line {
                    Some(o) => diags.push(o.diag(e.field, e.message)),
                    None => diags.push(Diagnostic::new(&loaded.main, 0, 0, e.field, e.message)),
                }
            }
            secmon_watch::Watch::default()
        }
    };
    let archive = match &loaded.archive {
        Some(item) => {
            let names: Vec<&str> = loaded
                .sources
                .iter()
                .filter_map(|s| s.value.name.as_deref())
                .collect();
            if let Err(e) = item.value.policy.validate(&names) {
                diags.push(item.origin.diag("archive.policy", e.to_string()));
            }
            item.value.clone()
        }
        None => crate::archive::ArchiveSection::default(),
    };
    if loaded.engine.eval_interval.as_millis() <= 0 {
        diags.push(Diagnostic::new(
            &loaded.main,
            0,
            0,
            "engine.eval_interval",
            "must be positive",
        ));
    }

    match (ruleset, default_parser) {
        (Some(ruleset), Some(default_parser)) if diags.is_empty() => Ok(Runtime {
            ruleset,
            engine: loaded.engine,
            data_dir: loaded.data_dir.clone(),
            parse,
            patterns,
            default_parser,
            sources,
            respond,
            notify,
            api,
            watch,
            archive,
            dashboards,
        }),
        _ => Err(Diagnostics(diags)),
    }
}

fn engine_diag(loaded: &Loaded, e: BuildError) -> Diagnostic {
    let (origin, what, id): (Option<&Origin>, &str, Option<&str>) = match e.item {
        EngineItem::Rule(i) => (
            loaded.rules.get(i).map(|r| &r.origin),
            "rules",
            loaded.rules.get(i).map(|r| r.value.id.as_str()),
        ),
        EngineItem::Metric(i) => (
            loaded.metrics.get(i).map(|m| &m.origin),
            "metrics",
            loaded.metrics.get(i).map(|m| m.value.name.as_str()),
        ),
    };
    let mut field = match origin {
        Some(o) => format!("{what}[{}]", o.index),
        None => what.to_string(),
    };
    if let Some(id) = id {
        field.push_str(&format!(" ({id})"));
    }
    if !e.field.is_empty() {
        field.push('.');
        field.push_str(&e.field);
    }
    match origin {
        Some(o) => o.diag(field, e.message),
        None => Diagnostic::new(&loaded.main, 0, 0, field, e.message),
    }
}

/// Parse errors name `parsers[N].field` over the concatenated list of all
/// files' parsers; map N back to the item's own file and index.
fn parse_diag(loaded: &Loaded, e: &ConfigError) -> Diagnostic {
    if let Some(rest) = e.field.strip_prefix("parsers[")
        && let Some((n, tail)) = rest.split_once(']')
        && let Some(item) = n.parse::<usize>().ok().and_then(|n| loaded.parsers.get(n))
    {
        let field = format!(
            "parsers[{}] ({}){}",
            item.origin.index, item.value.name, tail
        );
        return item.origin.diag(field, e.message.clone());
    }
    match &loaded.parse {
        Some(p) => p.origin.diag(e.field.clone(), e.message.clone()),
        None => Diagnostic::new(&loaded.main, 0, 0, e.field.clone(), e.message.clone()),
    }
}
