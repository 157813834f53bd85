//! Email over SMTP (lettre): a multipart/alternative message with a text and
//! an HTML body, sent with STARTTLS, implicit TLS, or (local relays, tests)
//! plain SMTP, with optional authentication.
//!
//! TLS is never optional once asked for: `starttls` uses lettre's
//! `Tls::Required`, so a server (or a man in the middle) that does not offer
//! STARTTLS gets no credentials and no message, and the attempt fails. The
//! certificate is checked against the system's roots, or only against the
//! receiver's `ca_file` when one is set (a private CA).
//!
//! The SMTP password never leaves this module except inside lettre's
//! transport: [`Email::secrets`] lists it with the forms it takes on the
//! wire (base64 in AUTH PLAIN and LOGIN), so the dispatcher scrubs all of
//! them from error reasons, even when a server echoes what it was sent.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use secmon_core::Dur;

use crate::config::{EmailConfig, SmtpSecurity};
use crate::model::Message;
use crate::secret::EnvLookup;
use crate::template::Templates;
use crate::{Error, Result};

const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----";

pub struct Email {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub templates: Templates,
    transport: SmtpTransport,
    server: String,
    /// The password and its base64 wire forms (see [`Email::secrets`]).
    secrets: Vec<String>,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish()
    }
}

/// The rendered parts of an email, before MIME encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailParts {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why one SMTP delivery failed, classified for retrying.
#[derive(Debug)]
pub enum SendError {
    /// Connection problems, timeouts, 4xx replies: try again later.
    Transient(String),
    /// 5xx replies, bad addresses: retrying will not help.
    Permanent(String),
}

impl Email {
    pub fn build(
        c: &EmailConfig,
        timeout: Dur,
        env: EnvLookup<'_>,
        warnings: &mut Vec<String>,
        templates: Templates,
    ) -> Result<Email> {
        let bad = |what: &str, e: &dyn fmt::Display| {
            Error::Config(format!("receiver {:?}: {what}: {e}", c.name))
        };
        let from: Mailbox = c.from.parse().map_err(|e| bad("from", &e))?;
        if c.to.is_empty() {
            return Err(bad("to", &"no recipients"));
        }
        let to =
            c.to.iter()
                .map(|t| t.parse::<Mailbox>().map_err(|e| bad("to", &e)))
                .collect::<Result<Vec<_>>>()?;
        let port = c.port.unwrap_or(match c.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        });
        let tls = match c.security {
            SmtpSecurity::None => {
                if c.ca_file.is_some() {
                    return Err(bad(
                        "ca_file",
                        &"needs security: starttls or tls (security is none)",
                    ));
                }
                Tls::None
            }
            s => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(path) = &c.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        bad("ca_file", &format_args!("{}: {}", path.display(), e.kind()))
                    })?;
                    // lettre takes a file without any PEM certificate as an
                    // empty trust store, which would fail every send later.
                    if !pem
                        .windows(CERT_PEM.len())
                        .any(|w| w == CERT_PEM.as_bytes())
                    {
                        return Err(bad(
                            "ca_file",
                            &format_args!("{}: no PEM certificate in it", path.display()),
                        ));
                    }
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| bad("ca_file", &format_args!("{}: {e}", path.display())))?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let params = params.build_rustls().map_err(|e| bad("tls", &e))?;
                if s == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut b = SmtpTransport::builder_dangerous(c.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_millis(
                timeout.as_millis().max(1) as u64
            )));
        let mut secrets = Vec::new();
        match (&c.username, &c.password) {
            (Some(u), Some(p)) => {
                let what = format!("receiver {:?} password", c.name);
                let p = p.resolve(&what, env, warnings)?;
                let b64 = base64::engine::general_purpose::STANDARD;
                secrets = vec![
                    p.expose().to_string(),
                    b64.encode(p.expose()),
                    b64.encode(format!("\0{u}\0{}", p.expose())),
                ];
                b = b.credentials(Credentials::new(u.clone(), p.expose().to_string()));
            }
            (None, None) => {}
            _ => return Err(bad("auth", &"username and password go together")),
        }
        Ok(Email {
            from,
            to,
            templates,
            transport: b.build(),
            server: format!("{}:{port}", c.host),
            secrets,
        })
    }

    /// Values to scrub from error reasons: the SMTP password as written and
    /// as AUTH LOGIN (`base64(password)`) and AUTH PLAIN
    /// (`base64("\0user\0password")`) send it. Empty without credentials.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// Subject, text and HTML of `msg` (pure).
    pub fn render_parts(&self, msg: &Message, footer: &str) -> Result<EmailParts> {
        let subject = self.templates.message("email_subject", msg, footer)?;
        Ok(EmailParts {
            subject: subject.replace(['\r', '\n'], " "),
            text: self.templates.message("email_text", msg, footer)?,
            html: self.templates.message("email_html", msg, footer)?,
        })
    }

    /// The MIME message (pure). The idempotency key becomes the Message-ID so
    /// that mail clients fold duplicates.
    pub fn render(&self, msg: &Message, footer: &str) -> Result<lettre::Message> {
        let parts = self.render_parts(msg, footer)?;
        let domain = self.from.email.domain().to_string();
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(parts.subject)
            .message_id(Some(format!("<{}@{domain}>", msg.idempotency_key)))
            .header(header::MIME_VERSION_1_0);
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(parts.text, parts.html))
            .map_err(|e| Error::Render(format!("email: {e}")))
    }

    pub fn send(&self, msg: &Message, footer: &str) -> std::result::Result<(), SendError> {
        let m = self
            .render(msg, footer)
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self.transport.send(&m) {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => {
                Err(SendError::Permanent(format!("smtp {}: {e}", self.server)))
            }
            Err(e) => Err(SendError::Transient(format!("smtp {}: {e}", self.server))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    #[test]
    fn builds_multipart_text_and_html() {
        let cfg: EmailConfig = serde_json::from_value(serde_json::json!({
            "name": "mail", "host": "127.0.0.1", "security": "none",
            "from": "secmon <secmon@example.com>", "to": ["sec@example.com"]
        }))
        .unwrap();
        let e = Email::build(
            &cfg,
            Dur::from_secs(5),
            &|_| None,
            &mut vec![],
            Templates::default(),
        )
        .unwrap();
        let m = message(vec![alert()]);
        let p = e.render_parts(&m, "secmon | production").unwrap();
        assert_eq!(p.subject, "[secmon] HIGH: Multiple Failed Logins");
        assert!(p.text.starts_with("Security Alert: Multiple Failed Logins\nHIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)\nIP Address: 192.168.1.100\n"), "{}", p.text);
        assert!(p.text.ends_with("-- \nsecmon | production\n"), "{}", p.text);
        assert!(
            p.html
                .contains("<th align=\"left\">Action Taken</th><td>IP blocked for 1 hour</td>"),
            "{}",
            p.html
        );
        let raw = String::from_utf8(e.render(&m, "f").unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Message-ID: <key-1@example.com>"), "{raw}");
    }
}
