//! The connection probes: TCP connect, Redis `PING`, PostgreSQL connect and
//! query. Each run opens a fresh connection and closes it: a probe measures
//! whether a *new* client can get in (what a restarted application needs),
//! not whether some pooled connection still works.
//!
//! Error texts are the client libraries' own, scrubbed of the password and cut
//! short; the deadline is enforced by the caller ([`super::Runner::run`]).

use std::time::Duration;

use tokio::time::Instant;

use super::{Category, Outcome};
use crate::redact::{Secret, password_of, scrub};

pub(crate) async fn tcp(address: &str) -> Outcome {
    let start = Instant::now();
    match tokio::net::TcpStream::connect(address).await {
        Ok(_stream) => Outcome::ok(start.elapsed()),
        Err(e) => {
            let cat = io_category(&e);
            Outcome::failed(start.elapsed(), cat, scrub(&e.to_string(), None))
        }
    }
}

fn io_category(e: &std::io::Error) -> Category {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut => Category::Timeout,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::AddrNotAvailable
        | K::HostUnreachable
        | K::NetworkUnreachable => Category::Connect,
        _ => {
            let t = e.to_string();
            if t.contains("lookup") || t.contains("resolve") || t.contains("Name or service") {
                Category::Dns
            } else {
                Category::Connect
            }
        }
    }
}

pub(crate) struct RedisRunner {
    pub url: Secret,
}

impl RedisRunner {
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let secret = password_of(self.url.expose());
        let fail = |e: redis::RedisError| {
            Outcome::failed(
                start.elapsed(),
                redis_category(&e),
                scrub(&e.to_string(), secret.as_deref()),
            )
        };
        let client = match redis::Client::open(self.url.expose()) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
        {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(pong) if pong == "PONG" => Outcome::ok(start.elapsed()),
            Ok(other) => Outcome::failed(
                start.elapsed(),
                Category::Protocol,
                scrub(&format!("PING answered {other:?}"), None),
            ),
            Err(e) => fail(e),
        }
    }
}

pub(crate) fn redis_category(e: &redis::RedisError) -> Category {
    use redis::ErrorKind as K;
    if e.is_timeout() {
        return Category::Timeout;
    }
    if matches!(e.kind(), K::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        return Category::Auth;
    }
    if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        return Category::Connect;
    }
    Category::Protocol
}

pub(crate) struct PostgresRunner {
    pub config: tokio_postgres::Config,
    pub password: Option<String>,
    pub query: String,
}

impl PostgresRunner {
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let mut config = self.config.clone();
        config.connect_timeout(timeout);
        let secret = self.password.as_deref();
        let (client, connection) = match config.connect(tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => {
                return Outcome::failed(start.elapsed(), pg_category(&e), pg_text(&e, secret));
            }
        };
        // The connection object does the IO; it ends when `client` is dropped
        // at the end of this run.
        let conn_task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let res = client.simple_query(&self.query).await;
        let latency = start.elapsed();
        drop(client);
        // Not awaited beyond the drop: the task finishes on its own once the
        // client is gone; aborting makes sure a stuck server cannot keep it.
        conn_task.abort();
        match res {
            Ok(_) => Outcome::ok(latency),
            Err(e) => Outcome::failed(latency, pg_category(&e), pg_text(&e, secret)),
        }
    }
}

fn pg_category(e: &tokio_postgres::Error) -> Category {
    if let Some(db) = e.as_db_error() {
        // SQLSTATE class 28: invalid authorization specification.
        return if db.code().code().starts_with("28") {
            Category::Auth
        } else {
            Category::Query
        };
    }
    let t = e.to_string();
    if t.contains("timeout") || t.contains("timed out") {
        Category::Timeout
    } else if t.contains("password") {
        Category::Auth
    } else {
        Category::Connect
    }
}

fn pg_text(e: &tokio_postgres::Error, secret: Option<&str>) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    // "error connecting to server" alone does not say why.
    if let Some(src) = e.source() {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
    }
    scrub(&s, secret)
}
