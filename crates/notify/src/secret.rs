//! Secrets (webhook URLs, routing keys, SMTP passwords, signing keys).
//!
//! In config a secret is `{env: NAME}`, `{file: /path}` or a literal string
//! (allowed, but [`Secret::resolve`] reports a warning). Resolution happens once,
//! when the dispatcher is built. `Debug` and `Display` of both [`Secret`] and
//! [`SecretString`] print `***`; resolution errors name the variable or the
//! file, never a value.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{Error, Result};

/// Where a secret comes from, as written in config.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Secret {
    Env {
        env: String,
    },
    File {
        file: PathBuf,
    },
    /// A secret written into the config file itself (discouraged: warned).
    Literal(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Looks up an environment variable; injected so tests need no `set_var`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for the binary.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Secret {
    /// Resolves the secret. `what` names its use ("receiver slack-sec url") for
    /// messages; `warnings` receives a note when the secret is a literal.
    pub fn resolve(
        &self,
        what: &str,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<SecretString> {
        let value = match self {
            Secret::Env { env: name } => env(name).ok_or_else(|| {
                Error::Secret(format!("{what}: environment variable {name} is not set"))
            })?,
            Secret::File { file } => std::fs::read_to_string(file)
                .map_err(|e| {
                    Error::Secret(format!(
                        "{what}: cannot read secret file {}: {}",
                        file.display(),
                        e.kind()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            Secret::Literal(v) => {
                warnings.push(format!(
                    "{what}: secret is written literally in the config; use {{env: NAME}} or {{file: PATH}}"
                ));
                v.clone()
            }
        };
        if value.is_empty() {
            return Err(Error::Secret(format!("{what}: secret is empty")));
        }
        Ok(SecretString(value))
    }
}

/// A resolved secret value. Only [`SecretString::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_and_never_print() {
        let s: Secret = serde_json::from_str(r#"{"env":"SLACK_URL"}"#).unwrap();
        assert_eq!(
            s,
            Secret::Env {
                env: "SLACK_URL".into()
            }
        );
        let l: Secret = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(format!("{l:?} {l}"), "*** ***");
        let env = |n: &str| (n == "SLACK_URL").then(|| "https://hooks/x".to_string());
        let mut w = vec![];
        let v = s.resolve("receiver a url", &env, &mut w).unwrap();
        assert_eq!(v.expose(), "https://hooks/x");
        assert_eq!(format!("{v:?}{v}"), "******");
        assert!(w.is_empty());
        l.resolve("x", &env, &mut w).unwrap();
        assert_eq!(w.len(), 1);
        assert!(!w[0].contains("hunter2"));
        let missing = Secret::Env { env: "NOPE".into() };
        let e = missing
            .resolve("receiver b", &env, &mut w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOPE"), "{e}");
    }

    #[test]
    fn file_secret_trims_newline_and_errors_name_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = Secret::File { file: p.clone() };
        let env = |_: &str| None;
        assert_eq!(
            s.resolve("k", &env, &mut vec![]).unwrap().expose(),
            "s3cret"
        );
        let bad = Secret::File {
            file: dir.path().join("missing"),
        };
        let e = bad.resolve("k", &env, &mut vec![]).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
