//! Loopback test servers: a minimal HTTP/1.1 server and a minimal SMTP server
//! (plain, STARTTLS or implicit TLS, AUTH PLAIN/LOGIN), both recording what
//! they receive.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct HttpServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

impl HttpServer {
    /// Serves every request with `handler` (each connection on its own thread).
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let (reqs, handler) = (reqs.clone(), handler.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    let reply = handler(&req);
                    reqs.lock().expect("lock").push(req);
                    std::thread::sleep(reply.delay);
                    let mut out = format!(
                        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reason(reply.status),
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&reply.body);
                    let _ = stream.write_all(out.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        HttpServer {
            addr,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// How the test SMTP server protects its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text, no STARTTLS offered (AUTH is offered in the clear, as a
    /// careless or downgraded server would).
    None,
    /// Plain text first, STARTTLS offered; AUTH offered only after the
    /// upgrade, as real submission servers do.
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

#[derive(Clone, Copy, Debug)]
pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// The AUTH mechanisms advertised, e.g. `"PLAIN LOGIN"` or `"LOGIN"`.
    pub auth: &'static str,
    /// Refuse AUTH with a 535 reply that echoes what the client sent (some
    /// servers do): the client must not pass that echo on unscrubbed.
    pub reject_auth: bool,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            tls: SmtpTls::None,
            auth: "PLAIN LOGIN",
            reject_auth: false,
        }
    }
}

/// Credentials as the server decoded them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Default)]
pub struct Mail {
    pub ehlo: String,
    /// Whether the transaction ran inside TLS.
    pub tls: bool,
    pub auth: Option<Auth>,
    pub from: String,
    pub rcpt: Vec<String>,
    pub data: String,
}

/// A minimal ESMTP server on loopback (PLAIN/LOGIN auth, STARTTLS or
/// implicit TLS with the test certificate of `tests/fixtures/tls`, valid for
/// `127.0.0.1` and `localhost`), recording every command line it gets and
/// every message it accepts.
pub struct SmtpServer {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Every command line received, prefixed `tls: ` or `plain: `.
    commands: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// `tests/fixtures/tls` of the workspace.
pub fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tls")
        .join(name)
}

fn server_tls() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(tls_fixture("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(tls_fixture("key.pem")).expect("key.pem");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    Arc::new(cfg)
}

struct Session {
    opts: SmtpOptions,
    mails: Arc<Mutex<Vec<Mail>>>,
    commands: Arc<Mutex<Vec<String>>>,
    mail: Mail,
}

fn reply<S: Read + Write>(r: &mut BufReader<S>, text: &str) -> std::io::Result<()> {
    let s = r.get_mut();
    s.write_all(text.as_bytes())?;
    s.flush()
}

fn read_cmd<S: Read + Write>(r: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| format!("<not base64: {s}>"))
}

impl Session {
    fn log(&self, secure: bool, line: &str) {
        let tag = if secure { "tls" } else { "plain" };
        self.commands
            .lock()
            .expect("lock")
            .push(format!("{tag}: {line}"));
    }

    fn read<S: Read + Write>(
        &self,
        r: &mut BufReader<S>,
        secure: bool,
    ) -> std::io::Result<Option<String>> {
        let line = read_cmd(r)?;
        if let Some(l) = &line {
            self.log(secure, l);
        }
        Ok(line)
    }

    /// The dialogue on `s` (plain or already TLS). Returns the stream when
    /// the client asked for STARTTLS and got the go-ahead, for the caller
    /// to wrap in TLS and continue.
    fn dialogue<S: Read + Write>(&mut self, s: S, secure: bool) -> std::io::Result<Option<S>> {
        let mut r = BufReader::new(s);
        let upgraded = secure && self.opts.tls == SmtpTls::StartTls;
        if !upgraded {
            reply(&mut r, "220 test.local ESMTP ready\r\n")?;
        }
        let offer_starttls = self.opts.tls == SmtpTls::StartTls && !secure;
        let offer_auth = !offer_starttls;
        loop {
            let Some(cmd) = self.read(&mut r, secure)? else {
                return Ok(None);
            };
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                self.mail.ehlo = cmd[4..].trim().to_string();
                let mut out = String::from("250-test.local\r\n");
                if offer_starttls {
                    out.push_str("250-STARTTLS\r\n");
                }
                if offer_auth {
                    out.push_str(&format!("250-AUTH {}\r\n", self.opts.auth));
                }
                out.push_str("250 8BITMIME\r\n");
                reply(&mut r, &out)?;
            } else if upper == "STARTTLS" {
                if offer_starttls {
                    reply(&mut r, "220 2.0.0 Ready to start TLS\r\n")?;
                    // The client waits for the 220 before its handshake, so
                    // nothing of it is buffered.
                    return Ok(Some(r.into_inner()));
                }
                reply(&mut r, "502 5.5.1 STARTTLS not available\r\n")?;
            } else if upper.starts_with("AUTH PLAIN") && offer_auth {
                let initial = cmd[10..].trim().to_string();
                let encoded = if initial.is_empty() {
                    reply(&mut r, "334 \r\n")?;
                    self.read(&mut r, secure)?.unwrap_or_default()
                } else {
                    initial
                };
                let decoded = b64(&encoded);
                let mut parts = decoded.split('\0');
                let (_authzid, user, pass) = (parts.next(), parts.next(), parts.next());
                self.auth_done(
                    &mut r,
                    "PLAIN",
                    user.unwrap_or_default(),
                    pass.unwrap_or_default(),
                    &encoded,
                )?;
            } else if upper.starts_with("AUTH LOGIN") && offer_auth {
                reply(&mut r, "334 VXNlcm5hbWU6\r\n")?;
                let user = self.read(&mut r, secure)?.unwrap_or_default();
                reply(&mut r, "334 UGFzc3dvcmQ6\r\n")?;
                let pass = self.read(&mut r, secure)?.unwrap_or_default();
                self.auth_done(&mut r, "LOGIN", &b64(&user), &b64(&pass), &pass)?;
            } else if upper.starts_with("MAIL FROM:") {
                self.mail.from = cmd[10..].trim().to_string();
                reply(&mut r, "250 2.1.0 OK\r\n")?;
            } else if upper.starts_with("RCPT TO:") {
                self.mail.rcpt.push(cmd[8..].trim().to_string());
                reply(&mut r, "250 2.1.5 OK\r\n")?;
            } else if upper == "DATA" {
                reply(&mut r, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 {
                        return Ok(None);
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(
                        l.strip_prefix('.')
                            .filter(|_| l.starts_with(".."))
                            .unwrap_or(&l),
                    );
                }
                self.mail.data = data;
                self.mail.tls = secure;
                let mail = std::mem::take(&mut self.mail);
                self.mail.ehlo = mail.ehlo.clone();
                self.mail.auth = mail.auth.clone();
                self.mails.lock().expect("lock").push(mail);
                reply(&mut r, "250 2.0.0 queued\r\n")?;
            } else if upper == "QUIT" {
                reply(&mut r, "221 2.0.0 bye\r\n")?;
                return Ok(None);
            } else if upper == "RSET" || upper == "NOOP" {
                reply(&mut r, "250 OK\r\n")?;
            } else {
                reply(&mut r, "502 5.5.2 command not recognized\r\n")?;
            }
        }
    }

    fn auth_done<S: Read + Write>(
        &mut self,
        r: &mut BufReader<S>,
        mechanism: &str,
        user: &str,
        pass: &str,
        raw: &str,
    ) -> std::io::Result<()> {
        if self.opts.reject_auth {
            return reply(
                r,
                &format!("535 5.7.8 Authentication failed for {user} ({raw}, {pass})\r\n"),
            );
        }
        self.mail.auth = Some(Auth {
            mechanism: mechanism.to_string(),
            username: user.to_string(),
            password: pass.to_string(),
        });
        reply(r, "235 2.7.0 Authentication successful\r\n")
    }
}

fn smtp_session(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    mut session: Session,
) -> std::io::Result<()> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let wrap = |raw: TcpStream| -> std::io::Result<_> {
        let conn = rustls::ServerConnection::new(tls.clone()).map_err(std::io::Error::other)?;
        Ok(rustls::StreamOwned::new(conn, raw))
    };
    if session.opts.tls == SmtpTls::Implicit {
        session.dialogue(wrap(stream)?, true)?;
    } else if let Some(raw) = session.dialogue(stream, false)? {
        session.dialogue(wrap(raw)?, true)?;
    }
    Ok(())
}

impl SmtpServer {
    /// Plain SMTP with AUTH PLAIN and LOGIN.
    pub fn start() -> SmtpServer {
        SmtpServer::with(SmtpOptions::default())
    }

    pub fn with(opts: SmtpOptions) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tls = server_tls();
        let (m, c, s) = (mails.clone(), commands.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let session = Session {
                        opts,
                        mails: m.clone(),
                        commands: c.clone(),
                        mail: Mail::default(),
                    };
                    let tls = tls.clone();
                    std::thread::spawn(move || {
                        let _ = smtp_session(stream, tls, session);
                    });
                }
            }
        });
        SmtpServer {
            addr,
            mails,
            commands,
            stop,
            accept: Some(accept),
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    /// Every command line received so far, `tls: …` or `plain: …`.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().expect("lock").clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// A sample alert like seed 003's Slack example.
pub fn alert() -> secmon_notify::AlertView {
    use secmon_core::{Dur, Severity, Timestamp};
    secmon_notify::AlertView {
        id: Some(1),
        fingerprint: "failed_logins_ip/192.168.1.100".into(),
        rule: "failed_logins_ip".into(),
        rule_name: "Multiple Failed Logins".into(),
        description: "Multiple failed logins from one IP".into(),
        severity: Severity::High,
        priority: None,
        labels: Default::default(),
        group: vec![("ip".into(), "192.168.1.100".into())],
        value: 10.0,
        threshold: Some(10.0),
        window: Some(Dur::from_mins(5)),
        count: 10,
        status: secmon_notify::AlertStatus::Firing,
        fired_at: Timestamp::from_millis(1_705_312_200_000),
        resolved_at: None,
        actions_taken: vec!["IP blocked for 1 hour".into()],
        actions: Vec::new(),
    }
}

pub fn message(receiver: &str, key: &str) -> secmon_notify::Message {
    secmon_notify::Message {
        receiver: receiver.into(),
        alerts: vec![alert()],
        status: secmon_notify::AlertStatus::Firing,
        kind: secmon_notify::MessageKind::Alert,
        idempotency_key: key.into(),
        suppressed: 0,
        digest: None,
    }
}

pub fn config(v: serde_json::Value) -> secmon_notify::NotifyConfig {
    serde_json::from_value(v).expect("config")
}
