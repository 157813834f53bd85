//! secmon's own logs: one JSON object per line on stderr, in seed 003's log
//! format (`timestamp, level, event, service, fields, trace_id`), so a secmon
//! can watch another secmon — or itself — with the same parser and rules it
//! uses for the applications. Alerts go to stdout and are not logs.
//!
//! A log call names its event with an `event` field (`secmon.alert_fired`,
//! `auth.api_key_hmac_failed`); calls without one are `secmon.log`. The
//! human message goes to `fields.message`.
//!
//! Lines are formatted on the thread that logs and written by a thread of
//! their own, which gathers whatever is queued into one `write`: at 10,000
//! alerts a second the daemon logs tens of thousands of lines a second, and
//! one unbuffered `write` to stderr per line cost the engine thread a fifth
//! of its time. The queue is bounded, so a stalled stderr slows the logging
//! threads down instead of losing lines or growing without end; [`flush`]
//! (called before the process exits, and by the panic hook) writes out
//! what is queued.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Registry};

/// Lines queued for the writer thread at most before loggers wait.
const QUEUE: usize = 65_536;
/// After a write the writer lets lines gather this long: waking it for
/// every line would cost as much as the `write`s it saves.
const LINGER: Duration = Duration::from_millis(5);
/// How long [`flush`] waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Msg {
    Line(String),
    Flush(flume::Sender<()>),
}

static WRITER: OnceLock<flume::Sender<Msg>> = OnceLock::new();

pub fn init(level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = Registry::default().with(SeedFormat).with(filter).try_init();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        previous(info);
    }));
}

/// Writes out every line logged so far (before the process exits).
pub fn flush() {
    if let Some(tx) = WRITER.get() {
        let (done_tx, done_rx) = flume::bounded(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// The writer thread's queue, started on first use. `None` when the thread
/// cannot be started: lines are then written directly.
fn writer() -> Option<&'static flume::Sender<Msg>> {
    if let Some(tx) = WRITER.get() {
        return Some(tx);
    }
    let (tx, rx) = flume::bounded(QUEUE);
    let started = std::thread::Builder::new()
        .name("secmon-log".into())
        .spawn(move || write_loop(&rx));
    if started.is_err() {
        return None;
    }
    // Two first loggers racing: the loser's thread sees its queue closed
    // and ends.
    Some(WRITER.get_or_init(|| tx))
}

fn write_loop(rx: &flume::Receiver<Msg>) {
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stderr.lock());
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(line.as_bytes());
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        let _ = out.flush();
        let flushed = !acks.is_empty();
        for ack in acks {
            let _ = ack.send(());
        }
        if !flushed {
            std::thread::sleep(LINGER);
        }
    }
}

/// The layer writing seed-format lines.
pub struct SeedFormat;

#[derive(Default)]
struct Collect {
    event: Option<String>,
    trace_id: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event" => self.event = Some(value.to_string()),
            "trace_id" => self.trace_id = Some(value.to_string()),
            name => {
                self.fields
                    .insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.record_str(field, &s);
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// One log line in seed 003's format.
pub fn format_line(
    timestamp: secmon_core::Timestamp,
    level: &Level,
    event: Option<String>,
    trace_id: Option<String>,
    fields: Map<String, Value>,
) -> String {
    let mut obj = Map::new();
    obj.insert("timestamp".into(), timestamp.to_rfc3339().into());
    obj.insert("level".into(), level_name(level).into());
    obj.insert(
        "event".into(),
        event.unwrap_or_else(|| "secmon.log".into()).into(),
    );
    obj.insert("service".into(), "secmon".into());
    obj.insert("fields".into(), Value::Object(fields));
    obj.insert(
        "trace_id".into(),
        trace_id.map(Value::String).unwrap_or(Value::Null),
    );
    Value::Object(obj).to_string()
}

impl<S: Subscriber> Layer<S> for SeedFormat {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut c = Collect::default();
        event.record(&mut c);
        let mut line = format_line(
            crate::clock::now(),
            event.metadata().level(),
            c.event,
            c.trace_id,
            c.fields,
        );
        line.push('\n');
        let line = match writer() {
            Some(tx) => match tx.send(Msg::Line(line)) {
                Ok(()) => return,
                Err(flume::SendError(Msg::Line(line))) => line,
                Err(_) => return,
            },
            None => line,
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_seed_format_events_secmon_can_parse() {
        let mut f = Map::new();
        f.insert("ip".into(), "10.0.0.1".into());
        f.insert("message".into(), "API key verification failed".into());
        let line = format_line(
            secmon_core::Timestamp(1_700_000_000_000),
            &Level::WARN,
            Some("auth.api_key_hmac_failed".into()),
            None,
            f,
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "auth.api_key_hmac_failed");
        assert_eq!(v["service"], "secmon");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["ip"], "10.0.0.1");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        // secmon's own JSON parser reads it as an event.
        let parser = secmon_parse::LineParser::new(
            &Default::default(),
            &[],
            None,
            secmon_parse::Format::Json,
        )
        .unwrap();
        let mut ctx =
            secmon_parse::LineCtx::new(secmon_core::SourceId(0), secmon_core::Timestamp(0));
        let ev = parser.parse_line(line.as_bytes(), &mut ctx).unwrap().event;
        assert_eq!(ev.name(), Some("auth.api_key_hmac_failed"));
        assert_eq!(
            ev.get("fields.ip").map(|v| v.to_string()),
            Some("10.0.0.1".into())
        );
    }
}
