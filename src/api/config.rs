//! The `api:` section: where the HTTP API listens, TLS, body limits and how
//! hard repeated authentication failures are throttled. Validation reports
//! field names so config errors point at the line.

use std::net::SocketAddr;
use std::path::PathBuf;

use secmon_core::Dur;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all (`secmon run --no-api` also turns it off).
    pub enabled: bool,
    /// Address and port. Default `127.0.0.1:9650`. With no API key in the
    /// store the API only ever binds loopback, whatever this says.
    pub listen: String,
    /// Serve HTTPS with these PEM files.
    pub tls: Option<TlsConfig>,
    /// Largest request body accepted (`POST /v1/events`), in bytes. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Authentication failures from one address within `auth_fail_window`
    /// before that address gets 429 for the rest of the window. Default 10.
    pub auth_fail_limit: u32,
    pub auth_fail_window: Dur,
    /// The dashboards the web pages draw (`/ui/dashboards.json`), as JSON:
    /// not an `api:` setting but the `dashboards:` section, resolved by
    /// `config::build` and carried here to the server that serves it.
    #[serde(skip)]
    pub pages: Option<std::sync::Arc<str>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9650";

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: DEFAULT_LISTEN.to_string(),
            tls: None,
            max_body_bytes: 16 * 1024 * 1024,
            auth_fail_limit: 10,
            auth_fail_window: Dur::from_secs(60),
            pages: None,
        }
    }
}

impl ApiConfig {
    /// Every problem as (field, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            out.push((
                "listen",
                format!(
                    "{:?} is not an address:port (e.g. 127.0.0.1:9650 or [::]:9650)",
                    self.listen
                ),
            ));
        }
        if self.max_body_bytes < 1024 {
            out.push(("max_body_bytes", "must be at least 1024".into()));
        }
        if self.auth_fail_limit == 0 {
            out.push(("auth_fail_limit", "must be at least 1".into()));
        }
        if self.auth_fail_window <= Dur::ZERO {
            out.push(("auth_fail_window", "must be positive".into()));
        }
        out
    }
}
