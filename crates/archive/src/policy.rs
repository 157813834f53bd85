//! What goes where and for how long: the serde [`ArchiveConfig`] (documented
//! defaults from seed 003's retention table) and the validated [`Policy`]
//! the archive runs with.
//!
//! Routing is first match wins over the categories in order; an event no
//! route matches goes to the default category. A category's routes match on
//! event name (glob with `*`, so `auth.*` is a prefix), minimum level and
//! source name; within one route all given conditions must hold.
//! This module does not read files or the clock.

use secmon_core::{Dur, Event, Level, SourceId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::MAX_CATEGORY_LEN;

pub const DAY: Dur = Dur::from_millis(86_400_000);
/// The category of access-audit, prune, erasure and recovery records.
pub const AUDIT: &str = "audit";

fn d(days: i64) -> Dur {
    Dur::from_millis(days * 86_400_000)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Event name glob: `auth.*`, `*.login_failed`, `http.request`.
    #[serde(default)]
    pub event: Option<String>,
    /// Events at this level or above.
    #[serde(default)]
    pub min_level: Option<Level>,
    /// Source names (as in the `sources:` section of secmon's config).
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub name: String,
    pub retention: Dur,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

fn default_categories() -> Vec<CategoryConfig> {
    let route = |g: &str| RouteConfig {
        event: Some(g.to_string()),
        min_level: None,
        sources: vec![],
    };
    vec![
        CategoryConfig {
            name: "security".into(),
            retention: d(365),
            routes: vec![
                route("security.*"),
                route("authz.*"),
                route("admin.*"),
                route("ratelimit.*"),
                RouteConfig {
                    event: None,
                    min_level: Some(Level::Error),
                    sources: vec![],
                },
            ],
        },
        CategoryConfig {
            name: "auth".into(),
            retention: d(90),
            routes: vec![route("auth.*"), route("session.*"), route("sshd.*")],
        },
        CategoryConfig {
            name: "access".into(),
            retention: d(30),
            routes: vec![route("http.*"), route("access.*"), route("api.*")],
        },
        CategoryConfig {
            name: "debug".into(),
            retention: d(7),
            routes: vec![],
        },
    ]
}

/// The archive section of secmon's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Ordered; first matching route wins. Default: security 1y, auth 90d,
    /// access 30d, debug 7d (seed 003).
    #[serde(default = "default_categories")]
    pub categories: Vec<CategoryConfig>,
    /// Where unrouted events go. Default `debug`.
    #[serde(default = "default_category")]
    pub default_category: String,
    /// Retention of the access-audit category. Default 6 years (2190d),
    /// the longest period of seed 003's compliance notes (HIPAA).
    #[serde(default = "default_audit_retention")]
    pub audit_retention: Dur,
    /// Group commit interval. Default 100ms.
    #[serde(default = "default_fsync")]
    pub fsync_interval: Dur,
    /// Signed checkpoint every N records (default 100000) …
    #[serde(default = "default_ckpt_records")]
    pub checkpoint_records: u64,
    /// … or every T (default 60s), whichever comes first, and at segment close.
    #[serde(default = "default_ckpt_interval")]
    pub checkpoint_interval: Dur,
    /// A segment is closed at this size (default 256 MiB) or at the end of its day.
    #[serde(default = "default_segment_bytes")]
    pub max_segment_bytes: u64,
    /// Field paths sealed under the event's subject key (crypto-shredding).
    #[serde(default)]
    pub personal_fields: Vec<String>,
    /// Field paths naming an event's subject, first present wins. When none is
    /// present, each personal field is sealed under the key of its own value.
    #[serde(default)]
    pub subject_fields: Vec<String>,
}

fn default_category() -> String {
    "debug".into()
}
fn default_audit_retention() -> Dur {
    d(6 * 365)
}
fn default_fsync() -> Dur {
    Dur::from_millis(100)
}
fn default_ckpt_records() -> u64 {
    100_000
}
fn default_ckpt_interval() -> Dur {
    Dur::from_secs(60)
}
fn default_segment_bytes() -> u64 {
    256 << 20
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            categories: default_categories(),
            default_category: default_category(),
            audit_retention: default_audit_retention(),
            fsync_interval: default_fsync(),
            checkpoint_records: default_ckpt_records(),
            checkpoint_interval: default_ckpt_interval(),
            max_segment_bytes: default_segment_bytes(),
            personal_fields: vec![],
            subject_fields: vec![],
        }
    }
}

#[derive(Clone, Debug)]
enum Glob {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// prefix*suffix
    Both(String, String),
}

impl Glob {
    fn new(p: &str) -> std::result::Result<Glob, String> {
        match p.matches('*').count() {
            0 => Ok(Glob::Exact(p.into())),
            1 if p == "*" => Ok(Glob::Any),
            1 => {
                let (a, b) = p.split_once('*').unwrap_or((p, ""));
                Ok(match (a.is_empty(), b.is_empty()) {
                    (false, true) => Glob::Prefix(a.into()),
                    (true, false) => Glob::Suffix(b.into()),
                    _ => Glob::Both(a.into(), b.into()),
                })
            }
            _ => Err(format!("event glob {p:?}: at most one '*'")),
        }
    }
    fn is_match(&self, s: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(e) => s == e,
            Glob::Prefix(p) => s.starts_with(p.as_str()),
            Glob::Suffix(x) => s.ends_with(x.as_str()),
            Glob::Both(p, x) => {
                s.len() >= p.len() + x.len() && s.starts_with(p.as_str()) && s.ends_with(x.as_str())
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Route {
    event: Option<Glob>,
    min_level: Option<Level>,
    sources: Vec<SourceId>,
}

#[derive(Clone, Debug)]
pub struct Category {
    pub name: String,
    pub retention: Dur,
    routes: Vec<Route>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    pub categories: Vec<Category>,
    default: usize,
    pub audit_retention: Dur,
    pub fsync_interval: Dur,
    pub checkpoint_records: u64,
    pub checkpoint_interval: Dur,
    pub max_segment_bytes: u64,
    pub personal_fields: Vec<String>,
    pub subject_fields: Vec<String>,
}

pub fn valid_category_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_CATEGORY_LEN
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl ArchiveConfig {
    /// Checks everything and reports every problem at once. `source_names`
    /// is secmon's source table: index = [`SourceId`].
    pub fn validate(&self, source_names: &[&str]) -> Result<Policy> {
        let mut errs = Vec::new();
        let mut cats = Vec::new();
        for (i, c) in self.categories.iter().enumerate() {
            let at = format!("archive.categories[{i}]");
            if !valid_category_name(&c.name) {
                errs.push(format!(
                    "{at}.name: {:?} must be 1-64 of a-z 0-9 _ -",
                    c.name
                ));
            }
            if c.name == AUDIT {
                errs.push(format!(
                    "{at}.name: \"audit\" is reserved for access-audit records"
                ));
            }
            if self.categories[..i].iter().any(|o| o.name == c.name) {
                errs.push(format!("{at}.name: duplicate category {:?}", c.name));
            }
            if c.retention <= Dur::ZERO {
                errs.push(format!("{at}.retention: must be positive"));
            }
            let mut routes = Vec::new();
            for (j, r) in c.routes.iter().enumerate() {
                let event = match r.event.as_deref().map(Glob::new).transpose() {
                    Ok(g) => g,
                    Err(e) => {
                        errs.push(format!("{at}.routes[{j}].event: {e}"));
                        None
                    }
                };
                let mut sources = Vec::new();
                for s in &r.sources {
                    match source_names.iter().position(|n| n == s) {
                        Some(k) => sources.push(SourceId(k as u32)),
                        None => {
                            errs.push(format!("{at}.routes[{j}].sources: unknown source {s:?}"))
                        }
                    }
                }
                routes.push(Route {
                    event,
                    min_level: r.min_level,
                    sources,
                });
            }
            cats.push(Category {
                name: c.name.clone(),
                retention: c.retention,
                routes,
            });
        }
        let default = cats.iter().position(|c| c.name == self.default_category);
        if default.is_none() {
            errs.push(format!(
                "archive.default_category: {:?} is not one of the categories",
                self.default_category
            ));
        }
        if self.fsync_interval < Dur::ZERO {
            errs.push("archive.fsync_interval: must not be negative".into());
        }
        if self.checkpoint_records == 0 {
            errs.push("archive.checkpoint_records: must be at least 1".into());
        }
        if self.checkpoint_interval <= Dur::ZERO {
            errs.push("archive.checkpoint_interval: must be positive".into());
        }
        if self.audit_retention <= Dur::ZERO {
            errs.push("archive.audit_retention: must be positive".into());
        }
        if let Some(longest) = self.categories.iter().map(|c| c.retention).max()
            && self.audit_retention < longest
        {
            // verify accepts a removed oldest segment only against its prune
            // record, which lives in the audit category.
            errs.push(format!(
                "archive.audit_retention: {} is shorter than the longest category retention {longest}; the audit category keeps the prune records verify needs",
                self.audit_retention
            ));
        }
        if self.max_segment_bytes < 4096 {
            errs.push("archive.max_segment_bytes: at least 4096".into());
        }
        if !errs.is_empty() {
            return Err(Error::Config(errs.join("; ")));
        }
        cats.push(Category {
            name: AUDIT.into(),
            retention: self.audit_retention,
            routes: vec![],
        });
        Ok(Policy {
            categories: cats,
            default: default.unwrap_or(0),
            audit_retention: self.audit_retention,
            fsync_interval: self.fsync_interval,
            checkpoint_records: self.checkpoint_records,
            checkpoint_interval: self.checkpoint_interval,
            max_segment_bytes: self.max_segment_bytes,
            personal_fields: self.personal_fields.clone(),
            subject_fields: self.subject_fields.clone(),
        })
    }
}

impl Policy {
    /// Index of the category `ev` belongs to.
    pub fn route(&self, ev: &Event) -> usize {
        let name = ev.name();
        let level = ev
            .get(secmon_core::event::names::LEVEL)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Level>().ok());
        for (i, c) in self.categories.iter().enumerate() {
            for r in &c.routes {
                let ok = r
                    .event
                    .as_ref()
                    .is_none_or(|g| name.is_some_and(|n| g.is_match(n)))
                    && r.min_level.is_none_or(|m| level.is_some_and(|l| l >= m))
                    && (r.sources.is_empty() || r.sources.contains(&ev.source));
                if ok {
                    return i;
                }
            }
        }
        self.default
    }

    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.name == name)
    }

    pub fn audit_index(&self) -> usize {
        self.categories.len() - 1
    }

    pub fn is_personal(&self, path: &str) -> bool {
        self.personal_fields.iter().any(|p| p == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmon_core::{Fields, Timestamp, Value};

    fn ev(name: &str, level: &str) -> Event {
        let mut f = Fields::new();
        f.insert("event", Value::from(name));
        f.insert("level", Value::from(level));
        Event::new(Timestamp(0), f)
    }

    #[test]
    fn defaults_follow_the_seed() {
        let p = ArchiveConfig::default().validate(&[]).unwrap();
        let name = |e: &Event| p.categories[p.route(e)].name.clone();
        assert_eq!(name(&ev("auth.login_failed", "WARN")), "auth");
        assert_eq!(name(&ev("security.csrf_failed", "WARN")), "security");
        assert_eq!(name(&ev("http.request", "INFO")), "access");
        assert_eq!(name(&ev("cache.miss", "DEBUG")), "debug");
        assert_eq!(name(&ev("cache.miss", "ERROR")), "security");
        let ret = |n: &str| p.categories[p.category_index(n).unwrap()].retention;
        assert_eq!(ret("security"), d(365));
        assert_eq!(ret("auth"), d(90));
        assert_eq!(ret("access"), d(30));
        assert_eq!(ret("debug"), d(7));
        assert_eq!(ret("audit"), d(2190));
    }

    #[test]
    fn six_years_sources_and_errors() {
        let y: ArchiveConfig = serde_json::from_value(serde_json::json!({
            "categories": [
                {"name": "hipaa", "retention": "2190d", "routes": [{"sources": ["ehr"]}, {"event": "*.phi_read"}]},
                {"name": "rest", "retention": "7d"}
            ],
            "default_category": "rest"
        }))
        .unwrap();
        let p = y.validate(&["web", "ehr"]).unwrap();
        let mut e = ev("x", "INFO");
        assert_eq!(p.route(&e), 1);
        e.source = SourceId(1);
        assert_eq!(p.route(&e), 0);
        assert_eq!(p.route(&ev("db.phi_read", "INFO")), 0);
        assert_eq!(p.categories[0].retention, d(2190));
        let err = y.validate(&[]).unwrap_err().to_string();
        assert!(err.contains("unknown source \"ehr\""), "{err}");
        let bad: ArchiveConfig = serde_json::from_value(serde_json::json!({
            "categories": [{"name": "audit", "retention": "1d"}, {"name": "A b", "retention": "1d"}],
            "default_category": "nope"
        }))
        .unwrap();
        let err = bad.validate(&[]).unwrap_err().to_string();
        assert!(
            err.contains("reserved") && err.contains("a-z") && err.contains("nope"),
            "{err}"
        );
        assert!(serde_json::from_value::<ArchiveConfig>(serde_json::json!({"bogus": 1})).is_err());
    }
}
