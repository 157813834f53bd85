//! Email over SMTP against an in-test server (tests/common): plain,
//! STARTTLS and implicit TLS with the test certificate of
//! `tests/fixtures/tls` (trusted through the receiver's `ca_file`), AUTH
//! PLAIN and LOGIN, the exact message received, and the failures that must
//! stay failures: no STARTTLS offered, an untrusted certificate, and a
//! rejected password that the server echoes back (scrubbed).

mod common;

use common::{Auth, Mail, SmtpOptions, SmtpServer, SmtpTls, config, message, tls_fixture};
use secmon_core::Timestamp;
use secmon_notify::{DeliveryResult, Dispatcher};
use serde_json::json;

const NOW: Timestamp = Timestamp(1_705_312_260_000);
const PASSWORD: &str = "s3cret-Pw!";

/// A dispatcher with one email receiver `mail` pointed at `smtp`; `extra`
/// adds or overrides receiver fields. The password comes from the
/// environment lookup, as in production.
fn dispatcher(smtp: &SmtpServer, extra: serde_json::Value) -> Dispatcher {
    let mut r = json!({
        "name": "mail", "kind": "email", "host": "127.0.0.1", "port": smtp.addr.port(),
        "username": "secmon", "password": {"env": "SMTP_PASSWORD"},
        "from": "secmon <secmon@example.com>", "to": ["security@example.com", "ops@example.com"]
    });
    for (k, v) in extra.as_object().expect("object") {
        r[k] = v.clone();
    }
    let cfg = config(json!({"receivers": [r], "outbox": {"timeout": "5s"}}));
    let d = Dispatcher::new(&cfg, &|n: &str| {
        (n == "SMTP_PASSWORD").then(|| PASSWORD.to_string())
    })
    .expect("dispatcher");
    assert!(!format!("{d:?}").contains(PASSWORD));
    d
}

fn ca() -> String {
    tls_fixture("ca.pem").display().to_string()
}

/// The message exactly as the server received it, with the two values
/// lettre makes up per message (the Date header and the MIME boundary)
/// checked and replaced by `{date}` and `{boundary}`.
fn normalized(data: &str) -> String {
    let date = data
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("Date header");
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .unwrap_or_else(|e| panic!("Date {date:?}: {e}"));
    let boundary = data
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("boundary");
    assert!(
        boundary.len() >= 20 && boundary.chars().all(|c| c.is_ascii_alphanumeric()),
        "{boundary:?}"
    );
    data.replace(date, "{date}").replace(boundary, "{boundary}")
}

const EXPECTED: &str = "From: secmon <secmon@example.com>\r
Subject: [secmon] HIGH: Multiple failed logins from one IP\r
Message-ID: <idem-mail-1@example.com>\r
MIME-Version: 1.0\r
To: security@example.com, ops@example.com\r
Date: {date}\r
Content-Type: multipart/alternative;\r
 boundary=\"{boundary}\"\r
\r
--{boundary}\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: 7bit\r
\r
Security Alert: Multiple Failed Logins\r
HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)\r
Multiple failed logins from one IP\r
IP Address: 192.168.1.100\r
Attempts: 10\r
Time Window: 5 minutes\r
Action Taken: IP blocked for 1 hour\r
Severity: high\r
Fired at: 2024-01-15T09:50:00.000Z\r
\r
-- \r
secmon | production\r
\r
--{boundary}\r
Content-Type: text/html; charset=utf-8\r
Content-Transfer-Encoding: 7bit\r
\r
<!DOCTYPE html>\r
<html><body style=\"font-family: sans-serif\">\r
<h2 style=\"color: #a30200\">Security Alert: Multiple Failed Logins</h2>\r
<p>HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)</p>\r
<p>Multiple failed logins from one IP</p>\r
<table>\r
<tr><th align=\"left\">IP Address</th><td>192.168.1.100</td></tr>\r
<tr><th align=\"left\">Attempts</th><td>10</td></tr>\r
<tr><th align=\"left\">Time Window</th><td>5 minutes</td></tr>\r
<tr><th align=\"left\">Action Taken</th><td>IP blocked for 1 hour</td></tr>\r
<tr><th align=\"left\">Severity</th><td>high</td></tr>\r
<tr><th align=\"left\">Fired at</th><td>2024-01-15T09:50:00.000Z</td></tr>\r
</table>\r
<p style=\"color: #888\">secmon | production</p>\r
</body></html>\r
\r
--{boundary}--\r
\r
";

/// The one message `smtp` accepted: envelope, credentials, and the exact
/// text (headers, text part, HTML part).
fn assert_one_exact_mail(smtp: &SmtpServer, tls: bool, mechanism: &str) -> Mail {
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{:?}", smtp.commands());
    let m = mails.into_iter().next().expect("one mail");
    assert_eq!(m.tls, tls, "transaction protected by TLS");
    assert_eq!(
        m.auth,
        Some(Auth {
            mechanism: mechanism.into(),
            username: "secmon".into(),
            password: PASSWORD.into(),
        })
    );
    assert_eq!(m.from, "<secmon@example.com>");
    assert_eq!(m.rcpt, ["<security@example.com>", "<ops@example.com>"]);
    assert_eq!(normalized(&m.data), EXPECTED);
    m
}

#[test]
fn plain_smtp_for_local_relays() {
    let smtp = SmtpServer::start();
    let d = dispatcher(&smtp, json!({"security": "none"}));
    assert_eq!(
        d.deliver(&message("mail", "idem-mail-1"), NOW),
        DeliveryResult::Sent
    );
    assert_one_exact_mail(&smtp, false, "PLAIN");
}

#[test]
fn starttls_upgrades_before_auth_and_the_message() {
    let smtp = SmtpServer::with(SmtpOptions {
        tls: SmtpTls::StartTls,
        ..SmtpOptions::default()
    });
    let d = dispatcher(&smtp, json!({"security": "starttls", "ca_file": ca()}));
    assert_eq!(
        d.deliver(&message("mail", "idem-mail-1"), NOW),
        DeliveryResult::Sent
    );
    assert_one_exact_mail(&smtp, true, "PLAIN");
    // In the clear: only the greeting exchange and the upgrade itself.
    let commands = smtp.commands();
    let plain: Vec<&str> = commands
        .iter()
        .filter_map(|c| c.strip_prefix("plain: "))
        .collect();
    assert_eq!(plain, ["EHLO [127.0.0.1]", "STARTTLS"], "{commands:?}");
    assert!(
        commands.iter().any(|c| c.starts_with("tls: AUTH PLAIN")),
        "{commands:?}"
    );
}

#[test]
fn implicit_tls_with_auth_login() {
    let smtp = SmtpServer::with(SmtpOptions {
        tls: SmtpTls::Implicit,
        auth: "LOGIN",
        ..SmtpOptions::default()
    });
    let d = dispatcher(&smtp, json!({"security": "tls", "ca_file": ca()}));
    assert_eq!(
        d.deliver(&message("mail", "idem-mail-1"), NOW),
        DeliveryResult::Sent
    );
    assert_one_exact_mail(&smtp, true, "LOGIN");
    let commands = smtp.commands();
    assert!(
        commands.iter().all(|c| c.starts_with("tls: ")),
        "{commands:?}"
    );
}

/// `security: starttls` means STARTTLS or nothing: a server that does not
/// offer it (misconfigured, or a man in the middle stripping the offer)
/// gets neither the credentials nor the message, and the attempt fails
/// (retried later, in case the server is fixed).
#[test]
fn starttls_required_never_falls_back_to_plain_text() {
    let smtp = SmtpServer::with(SmtpOptions {
        tls: SmtpTls::None,
        ..SmtpOptions::default()
    });
    let d = dispatcher(&smtp, json!({"security": "starttls", "ca_file": ca()}));
    let res = d.deliver(&message("mail", "idem-mail-1"), NOW);
    match &res {
        DeliveryResult::Retry { reason, .. } => {
            assert!(reason.contains("STARTTLS"), "{reason}");
            assert!(!reason.contains(PASSWORD), "{reason}");
        }
        other => panic!("expected a failed attempt, got {other:?}"),
    }
    assert!(smtp.mails().is_empty());
    let commands = smtp.commands();
    assert!(
        commands
            .iter()
            .all(|c| !c.contains("AUTH") && !c.contains("MAIL")),
        "{commands:?}"
    );
}

/// The certificate is verified: without the private CA (system roots
/// only) the handshake fails and nothing is sent.
#[test]
fn an_untrusted_certificate_fails_the_send() {
    for (tls, security) in [(SmtpTls::StartTls, "starttls"), (SmtpTls::Implicit, "tls")] {
        let smtp = SmtpServer::with(SmtpOptions {
            tls,
            ..SmtpOptions::default()
        });
        let d = dispatcher(&smtp, json!({"security": security}));
        let res = d.deliver(&message("mail", "idem-mail-1"), NOW);
        assert!(
            matches!(&res, DeliveryResult::Retry { reason, .. } if reason.contains("certificate")),
            "{security}: {res:?}"
        );
        assert!(smtp.mails().is_empty());
        assert!(
            smtp.commands().iter().all(|c| !c.contains("AUTH")),
            "{:?}",
            smtp.commands()
        );
    }
}

/// A server that rejects the login and echoes what it was sent (the
/// password, or its base64 form in AUTH PLAIN / LOGIN): the failure is
/// permanent and its reason carries none of them.
#[test]
fn a_rejected_password_never_appears_in_the_error() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        PASSWORD.to_string(),
        b64.encode(PASSWORD),
        b64.encode(format!("\0secmon\0{PASSWORD}")),
    ];
    for auth in ["PLAIN", "LOGIN"] {
        let smtp = SmtpServer::with(SmtpOptions {
            tls: SmtpTls::StartTls,
            auth,
            reject_auth: true,
        });
        let d = dispatcher(&smtp, json!({"security": "starttls", "ca_file": ca()}));
        let res = d.deliver(&message("mail", "idem-mail-1"), NOW);
        let DeliveryResult::Permanent { reason } = &res else {
            panic!("{auth}: expected a permanent failure, got {res:?}");
        };
        assert!(reason.contains("535"), "{reason}");
        assert!(reason.contains("***"), "the echo was scrubbed: {reason}");
        for f in &forms {
            assert!(!reason.contains(f.as_str()), "{auth}: {f:?} in {reason}");
        }
        assert!(smtp.mails().is_empty());
    }
}

#[test]
fn ca_file_is_checked_when_the_receiver_is_built() {
    let smtp = SmtpServer::start();
    let build = |extra: serde_json::Value| {
        let mut r = json!({
            "name": "mail", "kind": "email", "host": "127.0.0.1", "port": smtp.addr.port(),
            "from": "secmon@example.com", "to": ["security@example.com"]
        });
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        Dispatcher::new(&config(json!({"receivers": [r]})), &|_: &str| None)
    };
    let err = build(json!({"security": "none", "ca_file": ca()}))
        .expect_err("ca_file without TLS")
        .to_string();
    assert!(err.contains("ca_file") && err.contains("none"), "{err}");
    let err = build(json!({"security": "tls", "ca_file": "/nonexistent/ca.pem"}))
        .expect_err("missing file")
        .to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let not_pem = tls_fixture("README.md").display().to_string();
    let err = build(json!({"security": "tls", "ca_file": not_pem}))
        .expect_err("no certificate in the file")
        .to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
    assert!(build(json!({"security": "starttls", "ca_file": ca()})).is_ok());
    // Unknown fields are still rejected (`tls:` is spelled `security:`).
    let bad = serde_json::from_value::<secmon_notify::NotifyConfig>(json!({"receivers": [{
        "name": "mail", "kind": "email", "host": "h", "from": "a@b.c", "to": ["d@e.f"], "tls": "starttls"
    }]}));
    assert!(bad.is_err());
}
