//! Keeping credentials out of events, logs and `Debug` output.
//!
//! Probe and collector targets are URLs that often carry a password
//! (`redis://:pw@host`, `postgres://user:pw@host/db`) or a token in the query
//! string. Everything that leaves this crate names a target through
//! [`redact_url`], and error texts from client libraries pass through
//! [`scrub`] (which also removes the literal secret, in case a library quoted
//! it) and are cut short.
//!
//! This module does not validate URLs; it only hides what must not be shown.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A configuration string holding a secret (a URL with a password, a header
/// value). Its `Debug` never shows the content, so a `{:?}` of a whole
/// configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains("://") {
            write!(f, "{:?}", redact_url(&self.0))
        } else {
            f.write_str("\"***\"")
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// Query parameters whose values are treated as secrets.
fn sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass", "pwd", "secret", "token", "key", "auth", "sig", "cred", "session",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// The URL with its password and sensitive query values replaced by `***`.
/// Something that does not parse as a URL is assumed to be a libpq
/// `key=value` string; its `password=` value is hidden.
pub fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if sensitive_param(&k) {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => redact_kv(s),
    }
}

/// `host=db password=x user=y` → `host=db password=*** user=y`.
fn redact_kv(s: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for word in s.split_whitespace() {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
            continue;
        }
        match word.split_once('=') {
            Some((k, v)) if sensitive_param(k.trim()) => {
                if v.is_empty() {
                    // `password = x`: the value is the next word.
                    hide_next = true;
                    out.push(word.to_string());
                } else {
                    out.push(format!("{k}=***"));
                }
            }
            _ => out.push(word.to_string()),
        }
    }
    out.join(" ")
}

/// The password of a URL (or libpq string), to scrub from error messages.
pub fn password_of(s: &str) -> Option<String> {
    match url::Url::parse(s) {
        Ok(u) => u
            .password()
            .map(|p| percent_decode(p).unwrap_or_else(|| p.to_string()))
            .filter(|p| !p.is_empty()),
        Err(_) => s
            .split_whitespace()
            .find_map(|w| w.strip_prefix("password="))
            .map(|p| p.trim_matches('\'').to_string())
            .filter(|p| !p.is_empty()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Error texts put into events: single line, at most 200 characters, and
/// without `secret` (a password a client library may have echoed).
pub fn scrub(msg: &str, secret: Option<&str>) -> String {
    const MAX: usize = 200;
    let mut s = msg.replace(['\n', '\r'], " ");
    if let Some(sec) = secret.filter(|s| s.len() >= 3) {
        s = s.replace(sec, "***");
    }
    if s.chars().count() > MAX {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_tokens() {
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://app:s%40cret@db:5432/test"),
            "postgres://app:***@db:5432/test"
        );
        assert_eq!(
            redact_url("https://svc/health?token=abc&verbose=1"),
            "https://svc/health?token=***&verbose=1"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
        assert_eq!(
            redact_url("host=db user=app password=hunter2 dbname=test"),
            "host=db user=app password=*** dbname=test"
        );
    }

    #[test]
    fn passwords_are_found_for_scrubbing() {
        assert_eq!(
            password_of("postgres://app:s%40cret@db/test").as_deref(),
            Some("s@cret")
        );
        assert_eq!(password_of("redis://127.0.0.1").as_deref(), None);
        assert_eq!(
            password_of("host=db password=hunter2").as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            scrub("auth failed for hunter2\nretry", Some("hunter2")),
            "auth failed for *** retry"
        );
        assert!(scrub(&"x".repeat(1000), None).chars().count() <= 201);
    }

    #[test]
    fn secret_debug_hides_content() {
        let s = Secret::new("redis://:hunter2@h:6379");
        assert!(!format!("{s:?}").contains("hunter2"));
        let h = Secret::new("Bearer abc");
        assert_eq!(format!("{h:?}"), "\"***\"");
    }
}
