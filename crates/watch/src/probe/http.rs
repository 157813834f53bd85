//! HTTP probes: one request, the status checked against `expect_status`
//! (default any 2xx), then — only if the status is accepted — the JSON body
//! checked against the assertions. `extract:` values are copied from any
//! JSON body, accepted status or not (a 503 that says
//! `{"redis":{"connected":false}}` is exactly the body worth reading).
//!
//! The body read is capped (`max_body_bytes`), proxies from the environment
//! are ignored (a health check must reach the service itself) and at most
//! five redirects are followed. Error texts come from the client without the
//! URL and with the URL's password scrubbed.

use std::error::Error as _;
use std::time::Duration;

use tokio::time::Instant;

use super::{Category, Outcome};
use crate::WatchError;
use crate::config::HttpSpec;
use crate::event::json_value;
use crate::redact::scrub;

pub(crate) struct HttpRunner {
    client: reqwest::Client,
    spec: HttpSpec,
}

impl HttpRunner {
    pub fn new(spec: HttpSpec, timeout: Duration) -> Result<HttpRunner, WatchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .no_proxy()
            .user_agent(concat!("secmon-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WatchError::HttpClient(error_text(e, None)))?;
        Ok(HttpRunner { client, spec })
    }

    pub async fn run(&self) -> Outcome {
        let s = &self.spec;
        let secret = s.password.as_deref();
        let start = Instant::now();
        let resp = self
            .client
            .request(s.method.clone(), s.url.clone())
            .headers(s.headers.clone())
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let cat = classify(&e);
                return Outcome::failed(start.elapsed(), cat, error_text(e, secret));
            }
        };
        let code = resp.status().as_u16();
        let status_ok = if s.expect_status.is_empty() {
            resp.status().is_success()
        } else {
            s.expect_status.contains(&code)
        };
        let wants_body = !s.extract.is_empty() || (status_ok && !s.assertions.is_empty());
        let mut out = Outcome::ok(Duration::ZERO);
        out.status_code = Some(code);
        if !status_ok {
            out.failure = Some((Category::Status, format!("unexpected status {code}")));
        }
        if wants_body {
            let mut body = Vec::new();
            let read = loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if body.len() as u64 + c.len() as u64 > s.max_body {
                            break Err((
                                Category::Body,
                                format!("body larger than {} bytes", s.max_body),
                            ));
                        }
                        body.extend_from_slice(&c);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err((classify(&e), error_text(e, secret))),
                }
            };
            let doc = match read {
                Ok(()) => serde_json::from_slice::<serde_json::Value>(&body)
                    .map_err(|e| (Category::Body, format!("body is not JSON: {e}"))),
                Err(e) => Err(e),
            };
            match doc {
                Ok(doc) => {
                    for (name, path) in &s.extract {
                        if let Some(v) = path.lookup(&doc) {
                            out.extracted.push((name.clone(), json_value(v)));
                        }
                    }
                    if status_ok {
                        out.failed_assertions = s
                            .assertions
                            .iter()
                            .filter_map(|a| a.check(&doc).err())
                            .collect();
                        if let Some(f) = out.failed_assertions.first() {
                            let more = out.failed_assertions.len() - 1;
                            let msg = if more > 0 {
                                format!("assertion failed: {f} (and {more} more)")
                            } else {
                                format!("assertion failed: {f}")
                            };
                            out.failure = Some((Category::Assertion, msg));
                        }
                    }
                }
                // An unreadable body only fails the run when assertions
                // needed it; `extract` alone is informational.
                Err(e) if status_ok && !s.assertions.is_empty() => out.failure = Some(e),
                Err(_) => {}
            }
        }
        out.latency = start.elapsed();
        out
    }
}

fn classify(e: &reqwest::Error) -> Category {
    if e.is_timeout() {
        return Category::Timeout;
    }
    let chain = full_chain(e).to_ascii_lowercase();
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        Category::Dns
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake")
    {
        Category::Tls
    } else if e.is_connect() {
        Category::Connect
    } else if e.is_body() || e.is_decode() {
        Category::Body
    } else {
        Category::Connect
    }
}

/// The error and its causes on one line: reqwest's own text ("error sending
/// request") says little without the cause ("Connection refused").
fn full_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn error_text(e: reqwest::Error, secret: Option<&str>) -> String {
    // `without_url` keeps the URL (and a token in its query) out of the text.
    scrub(&full_chain(&e.without_url()), secret)
}
