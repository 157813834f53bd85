//! Loading secmon's YAML configuration: the main file, the rule files it
//! includes, and the embedded default. This module only *reads* and keeps
//! every item's origin (file, line, column); turning the items into runtime
//! objects is [`build`]'s job, so that `secmon check` can report every
//! problem of every file in one pass.

mod build;
mod diag;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use secmon_engine::{EngineConfig, MetricConfig, RuleConfig};
use secmon_notify::NotifyConfig;
use secmon_parse::{Format, ParseConfig, PatternConfig};
use secmon_respond::RespondConfig;

pub use build::{Runtime, SourcePlan, build};
pub use diag::{Diagnostic, Diagnostics};

/// The configuration used when no `-c` is given: every seed alert, the seed
/// log patterns and the builtin sshd set, reading whatever files are named on
/// the command line. Needs no external service.
pub const EMBEDDED_NAME: &str = "<embedded examples/seeds.yaml>";
pub const EMBEDDED: &str = include_str!("../../examples/seeds.yaml");

/// One YAML file as written. The same shape serves the main file and rule
/// files pulled in by `include`; the settings that only make sense once
/// (`data_dir`, `engine`, `parse`, `sources`, `include`) are rejected in
/// included files by [`load`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Globs of further rule files, relative to this file's directory.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Where checkpoints (and later the store and archive) live. Default `./secmon-data`.
    #[serde(default)]
    pub data_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub engine: Option<Spanned<EngineConfig>>,
    #[serde(default)]
    pub parse: Option<Spanned<ParseConfig>>,
    /// What rule actions do (decisions), the allowlist, incident deadlines
    /// and escalation, decision publishing. Default: the seed's actions.
    #[serde(default)]
    pub respond: Option<Spanned<RespondConfig>>,
    /// Receivers (Slack, Discord, PagerDuty, email, webhook, Alertmanager),
    /// routes, batching, rate limits, the durable outbox and digests.
    #[serde(default)]
    pub notify: Option<Spanned<NotifyConfig>>,
    /// Health probes (HTTP, TCP, Redis PING, PostgreSQL) run by `secmon run`;
    /// each run is a `probe.result` event.
    #[serde(default)]
    pub probes: Vec<Spanned<secmon_watch::ProbeConfig>>,
    /// The Redis collector (INFO, memory, SCAN latency) of `secmon run`.
    #[serde(default)]
    pub redis: Option<Spanned<secmon_watch::RedisCollectorConfig>>,
    /// The HTTP API of `secmon run`: listen address, TLS, limits.
    #[serde(default)]
    pub api: Option<Spanned<crate::api::ApiConfig>>,
    /// The tamper-evident, encrypted log archive of `secmon run`.
    #[serde(default)]
    pub archive: Option<Spanned<crate::archive::ArchiveSection>>,
    #[serde(default)]
    pub parsers: Vec<Spanned<PatternConfig>>,
    #[serde(default)]
    pub sources: Vec<Spanned<SourceConfig>>,
    #[serde(default)]
    pub metrics: Vec<Spanned<MetricConfig>>,
    /// Dashboard pages and panels, over the seeds' defaults (see
    /// `crate::dashboard::config`); in any file, later files win per key.
    #[serde(default)]
    pub dashboards: Option<Spanned<crate::dashboard::config::Dashboards>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleConfig>>,
    #[serde(default)]
    pub tests: Vec<Spanned<TestCase>>,
}

/// Where log lines come from in `secmon run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Shown in errors and summaries; defaults to the first path or `stdin`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// Files or globs (type `file`).
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default = "default_format")]
    pub format: Format,
    /// Pattern parsers (by name, and builtin sets such as `sshd`) this
    /// source uses; all of them when absent.
    #[serde(default)]
    pub parsers: Option<Vec<String>>,
    /// Where to start in a file secmon has no checkpoint for.
    #[serde(default)]
    pub start_at: StartAt,
}

fn default_format() -> Format {
    Format::Auto
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Stdin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// A rule test carried inside a rule file (`tests:`), run by `secmon test`:
/// input lines or events in, the exact alerts expected out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Compare only the alerts of these rules (default: all rules).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Log lines (strings), seed-format events (maps), or
    /// `{repeat: N, every: 10s, event: {...}}` to generate N events whose
    /// timestamps step by `every` and whose `{{i}}` placeholders count 0..N.
    pub input: Vec<serde_json::Value>,
    #[serde(default)]
    pub expect: Vec<ExpectedAlert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    pub rule: String,
    /// Exact group (`{fields.ip: 1.2.3.4}`); not compared when absent.
    #[serde(default)]
    pub group: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// RFC 3339; not compared when absent.
    #[serde(default)]
    pub fired_at: Option<String>,
    #[serde(default)]
    pub value: Option<f64>,
}

/// Where an item was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: u64,
    pub column: u64,
    /// Position in its file's list (`rules[3]`).
    pub index: usize,
}

impl Origin {
    pub fn diag(&self, field: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, self.line, self.column, field, message)
    }
}

#[derive(Debug, Clone)]
pub struct Item<T> {
    pub value: T,
    pub origin: Origin,
}

/// Everything read from the main file and its includes, in file order.
#[derive(Debug)]
pub struct Loaded {
    pub main: Arc<Path>,
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    pub parse: Option<Item<ParseConfig>>,
    pub respond: Option<Item<RespondConfig>>,
    pub notify: Option<Item<NotifyConfig>>,
    pub api: Option<Item<crate::api::ApiConfig>>,
    pub archive: Option<Item<crate::archive::ArchiveSection>>,
    pub probes: Vec<Item<secmon_watch::ProbeConfig>>,
    pub redis: Option<Item<secmon_watch::RedisCollectorConfig>>,
    pub parsers: Vec<Item<PatternConfig>>,
    pub sources: Vec<Item<SourceConfig>>,
    pub metrics: Vec<Item<MetricConfig>>,
    pub dashboards: Vec<Item<crate::dashboard::config::Dashboards>>,
    pub rules: Vec<Item<RuleConfig>>,
    pub tests: Vec<Item<TestCase>>,
}

/// Reads the main file (or the embedded default when `path` is `None`) and
/// every file it includes. Fails with every diagnostic found.
pub fn load(path: Option<&Path>) -> Result<Loaded, Diagnostics> {
    let (main, text): (Arc<Path>, String) = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (Arc::from(p), t),
            Err(e) => {
                return Err(Diagnostics(vec![Diagnostic::new(
                    p,
                    0,
                    0,
                    "",
                    format!("cannot read: {e}"),
                )]));
            }
        },
        None => (Arc::from(Path::new(EMBEDDED_NAME)), EMBEDDED.to_string()),
    };
    let mut loaded = Loaded {
        main: main.clone(),
        data_dir: PathBuf::from("secmon-data"),
        engine: EngineConfig::default(),
        parse: None,
        respond: None,
        notify: None,
        api: None,
        archive: None,
        probes: vec![],
        redis: None,
        parsers: vec![],
        sources: vec![],
        metrics: vec![],
        dashboards: vec![],
        rules: vec![],
        tests: vec![],
    };
    let mut diags = Vec::new();
    let mut seen = HashSet::new();
    if let Ok(c) = std::fs::canonicalize(&main) {
        seen.insert(c);
    }
    load_file(&main, &text, true, &mut loaded, &mut diags, &mut seen);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(diags))
    }
}

fn load_file(
    file: &Arc<Path>,
    text: &str,
    is_main: bool,
    loaded: &mut Loaded,
    diags: &mut Vec<Diagnostic>,
    seen: &mut HashSet<PathBuf>,
) {
    let cfg: ConfigFile = match serde_saphyr::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            diags.push(Diagnostic::new(file, line, col, "", yaml_message(&e)));
            return;
        }
    };
    let origin = |s: &serde_saphyr::Location, index: usize| Origin {
        file: file.clone(),
        line: s.line(),
        column: s.column(),
        index,
    };
    let only_main = |name: &str, loc: &serde_saphyr::Location, diags: &mut Vec<Diagnostic>| {
        diags.push(Diagnostic::new(
            file,
            loc.line(),
            loc.column(),
            name,
            "only allowed in the main configuration file, not in an included rule file",
        ));
    };
    if let Some(d) = cfg.data_dir {
        if is_main {
            let p = d.value;
            loaded.data_dir = if p.is_relative() {
                file.parent().map(|dir| dir.join(&p)).unwrap_or(p)
            } else {
                p
            };
        } else {
            only_main("data_dir", &d.referenced, diags);
        }
    }
    if let Some(e) = cfg.engine {
        if is_main {
            loaded.engine = e.value
        } else {
            only_main("engine", &e.referenced, diags)
        }
    }
    if let Some(p) = cfg.parse {
        if is_main {
            loaded.parse = Some(Item {
                origin: origin(&p.referenced, 0),
                value: p.value,
            });
        } else {
            only_main("parse", &p.referenced, diags);
        }
    }
    if let Some(r) = cfg.respond {
        if is_main {
            loaded.respond = Some(Item {
                origin: origin(&r.referenced, 0),
                value: r.value,
            });
        } else {
            only_main("respond", &r.referenced, diags);
        }
    }
    if let Some(n) = cfg.notify {
        if is_main {
            loaded.notify = Some(Item {
                origin: origin(&n.referenced, 0),
                value: n.value,
            });
        } else {
            only_main("notify", &n.referenced, diags);
        }
    }
    if let Some(a) = cfg.api {
        if is_main {
            loaded.api = Some(Item {
                origin: origin(&a.referenced, 0),
                value: a.value,
            });
        } else {
            only_main("api", &a.referenced, diags);
        }
    }
    if let Some(a) = cfg.archive {
        if is_main {
            loaded.archive = Some(Item {
                origin: origin(&a.referenced, 0),
                value: a.value,
            });
        } else {
            only_main("archive", &a.referenced, diags);
        }
    }
    if let Some(r) = cfg.redis {
        if is_main {
            loaded.redis = Some(Item {
                origin: origin(&r.referenced, 0),
                value: r.value,
            });
        } else {
            only_main("redis", &r.referenced, diags);
        }
    }
    for (i, p) in cfg.probes.into_iter().enumerate() {
        if is_main {
            loaded.probes.push(Item {
                origin: origin(&p.referenced, i),
                value: p.value,
            });
        } else {
            only_main("probes", &p.referenced, diags);
        }
    }
    for (i, s) in cfg.sources.into_iter().enumerate() {
        if is_main {
            loaded.sources.push(Item {
                origin: origin(&s.referenced, i),
                value: s.value,
            });
        } else {
            only_main(&format!("sources[{i}]"), &s.referenced, diags);
        }
    }
    for (i, p) in cfg.parsers.into_iter().enumerate() {
        loaded.parsers.push(Item {
            origin: origin(&p.referenced, i),
            value: p.value,
        });
    }
    for (i, m) in cfg.metrics.into_iter().enumerate() {
        loaded.metrics.push(Item {
            origin: origin(&m.referenced, i),
            value: m.value,
        });
    }
    if let Some(d) = cfg.dashboards {
        loaded.dashboards.push(Item {
            origin: origin(&d.referenced, 0),
            value: d.value,
        });
    }
    for (i, r) in cfg.rules.into_iter().enumerate() {
        loaded.rules.push(Item {
            origin: origin(&r.referenced, i),
            value: r.value,
        });
    }
    for (i, t) in cfg.tests.into_iter().enumerate() {
        loaded.tests.push(Item {
            origin: origin(&t.referenced, i),
            value: t.value,
        });
    }
    for (i, inc) in cfg.include.into_iter().enumerate() {
        let here = Origin {
            file: file.clone(),
            line: inc.referenced.line(),
            column: inc.referenced.column(),
            index: i,
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let pattern = base.join(&inc.value);
        let pattern = pattern.to_string_lossy();
        let paths = match glob::glob(&pattern) {
            Ok(p) => p,
            Err(e) => {
                diags.push(here.diag(
                    format!("include[{i}]"),
                    format!("invalid glob {:?}: {e}", inc.value),
                ));
                continue;
            }
        };
        let mut matched = 0;
        let mut list: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        list.sort();
        for p in list {
            matched += 1;
            let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if !seen.insert(canon) {
                continue; // included twice or a cycle: read each file once
            }
            match std::fs::read_to_string(&p) {
                Ok(t) => load_file(&Arc::from(p.as_path()), &t, false, loaded, diags, seen),
                Err(e) => diags.push(Diagnostic::new(
                    &p,
                    0,
                    0,
                    "",
                    format!("cannot read included file: {e}"),
                )),
            }
        }
        if matched == 0 {
            diags.push(here.diag(
                format!("include[{i}]"),
                format!("{:?} matches no file", inc.value),
            ));
        }
    }
}

/// serde-saphyr renders a snippet of the YAML around the error; the location
/// is already in our prefix, so keep only its first line.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let mut msg = full.lines().next().unwrap_or("invalid YAML").trim();
    // Our prefix already says `file:line:col: `; drop the crate's own
    // "error: line L column C: " so the position is not printed twice.
    msg = msg
        .strip_prefix("error:")
        .map(str::trim_start)
        .unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("line ")
        && let Some((pos, text)) = rest.split_once(": ")
        && pos
            .split_whitespace()
            .all(|w| w == "column" || w.bytes().all(|b| b.is_ascii_digit()))
    {
        msg = text;
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn embedded_default_loads_and_builds() {
        let loaded = load(None).expect("embedded config loads");
        assert!(loaded.rules.len() >= 18, "seed rules present");
        if let Err(e) = build(&loaded) {
            panic!("embedded config does not build:\n{e}");
        }
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "c.yaml",
            "rules:\n  - id: a\n    severity: high\n    detector: {type: single}\n    colour: red\n",
        );
        let err = load(Some(&p)).expect_err("unknown field rejected");
        let d = &err.0[0];
        assert_eq!(d.file, p);
        assert_eq!(d.line, 5, "{err}");
        assert!(d.message.contains("colour"), "{err}");
    }

    #[test]
    fn validation_errors_name_rule_line_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "c.yaml",
            "rules:\n  - id: ok\n    severity: high\n    detector: {type: single}\n  - id: bad\n    severity: high\n    match: 'fields.ip ~ \"(\"'\n    detector: {type: single}\n",
        );
        let loaded = load(Some(&p)).expect("loads");
        let Err(err) = build(&loaded) else {
            panic!("bad regex accepted")
        };
        let d = &err.0[0];
        assert_eq!(d.line, 5, "{err}");
        assert!(d.field.starts_with("rules[1] (bad)"), "{err}");
        assert!(d.field.contains("match"), "{err}");
    }

    #[test]
    fn includes_are_relative_and_restricted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
        write(
            &dir.path().join("rules"),
            "a.yaml",
            "rules:\n  - id: inc\n    severity: low\n    detector: {type: single}\n",
        );
        write(&dir.path().join("rules"), "b.yaml", "data_dir: /tmp/x\n");
        let p = write(dir.path(), "main.yaml", "include: [rules/*.yaml]\n");
        let err = load(Some(&p)).expect_err("data_dir in include rejected");
        assert!(
            err.0
                .iter()
                .any(|d| d.field == "data_dir" && d.file.ends_with("b.yaml")),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("rules/b.yaml")).expect("rm");
        let loaded = load(Some(&p)).expect("loads");
        assert_eq!(loaded.rules[0].value.id, "inc");
        assert!(loaded.rules[0].origin.file.ends_with("a.yaml"));
    }
}
