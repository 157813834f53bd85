//! secmon's active watchers: health probes (HTTP with JSON assertions, TCP,
//! Redis `PING`, PostgreSQL connect) and the Redis collector. They look at the
//! services around secmon on a schedule and describe what they find as
//! [`Event`]s in the seed 003 log shape, which join the same pipeline as log
//! lines; the engine's rules and metrics turn them into alerts and series.
//!
//! What this crate does not do: alert, keep alert state, read the wall clock
//! (time comes from the caller's [`Clock`]), or decide where events go (the
//! caller's [`Sink`]). It owns tokio tasks only inside [`spawn`], which the
//! binary calls from its runtime.
//!
//! ```no_run
//! # async fn f(yaml: &str) {
//! use std::sync::Arc;
//! let cfg: secmon_watch::WatchConfig = serde_saphyr::from_str(yaml).unwrap();
//! let watch = cfg.validate().unwrap();
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! let clock: secmon_watch::Clock = Arc::new(|| secmon_core::Timestamp(0));
//! let handle = secmon_watch::spawn(watch, clock, tx, async { let _ = stop_rx.await; }).unwrap();
//! while let Some(ev) = rx.recv().await { /* into the engine */ }
//! # }
//! ```

pub mod assertion;
pub mod collector;
pub mod config;
pub mod event;
pub mod probe;
pub mod redact;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secmon_core::{Event, SourceId, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use collector::RedisPoller;
pub use config::{
    FieldError, Probe, ProbeConfig, ProbeKind, RedisCollector, RedisCollectorConfig, Watch,
    WatchConfig,
};
pub use event::names;
pub use probe::{Category, Outcome, ProbeRunner, ProbeState};

/// Wall-clock time for event timestamps, supplied by the caller (the binary's
/// `src/clock.rs`; a manual clock in tests). Latencies use `Instant`.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Errors starting the watchers. Failures of the watched services are not
/// errors: they are events.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("HTTP client: {0}")]
    HttpClient(String),
    #[error("Redis collector {instance}: {message}")]
    RedisClient { instance: String, message: String },
    #[error("no tokio runtime: spawn must be called from within one")]
    NoRuntime,
}

/// The receiving end has gone away; watchers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event sink closed")]
pub struct SinkClosed;

/// Where events go. Implemented for a bounded tokio channel (waits for room:
/// backpressure reaches the probes, which then simply run later) and for
/// [`CallbackSink`].
pub trait Sink: Clone + Send + Sync + 'static {
    fn send(&self, ev: Event) -> impl Future<Output = Result<(), SinkClosed>> + Send;
}

impl Sink for tokio::sync::mpsc::Sender<Event> {
    async fn send(&self, ev: Event) -> Result<(), SinkClosed> {
        tokio::sync::mpsc::Sender::send(self, ev)
            .await
            .map_err(|_| SinkClosed)
    }
}

/// A sink from a function; return `false` once the receiver is gone. The
/// function runs on a runtime worker, so it must not block for long: with a
/// bounded crossbeam/flume channel use `try_send` and count what is shed.
pub struct CallbackSink<F>(pub Arc<F>);

impl<F> Clone for CallbackSink<F> {
    fn clone(&self) -> Self {
        CallbackSink(Arc::clone(&self.0))
    }
}

impl<F: Fn(Event) -> bool + Send + Sync + 'static> CallbackSink<F> {
    pub fn new(f: F) -> Self {
        CallbackSink(Arc::new(f))
    }
}

impl<F: Fn(Event) -> bool + Send + Sync + 'static> Sink for CallbackSink<F> {
    async fn send(&self, ev: Event) -> Result<(), SinkClosed> {
        if (self.0)(ev) {
            Ok(())
        } else {
            Err(SinkClosed)
        }
    }
}

/// Starts one task per probe and one for the Redis collector on the current
/// tokio runtime. Every event is stamped by `clock` and tagged with
/// `source` (see [`spawn_with_source`]; [`spawn`] uses `SourceId(0)`).
///
/// The returned handle completes once `shutdown` resolves and every task has
/// stopped (a run in flight is abandoned, not awaited), or once the sink is
/// closed. An empty [`Watch`] spawns nothing and completes at shutdown.
pub fn spawn<S: Sink>(
    watch: Watch,
    clock: Clock,
    sink: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    spawn_with_source(watch, clock, sink, SourceId::default(), shutdown)
}

/// [`spawn`] with the source index the binary gave the watchers.
pub fn spawn_with_source<S: Sink>(
    watch: Watch,
    clock: Clock,
    sink: S,
    source: SourceId,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    // Build everything that can fail before starting anything.
    let runners = watch
        .probes
        .into_iter()
        .map(ProbeRunner::new)
        .collect::<Result<Vec<_>, _>>()?;
    let poller = watch.redis.map(RedisPoller::new).transpose()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    let out = Out {
        clock,
        sink,
        source,
    };
    for r in runners {
        set.spawn_on(run_probe(r, out.clone(), stop_rx.clone()), &rt);
    }
    if let Some(p) = poller {
        set.spawn_on(run_collector(p, out.clone(), stop_rx.clone()), &rt);
    }
    drop(stop_rx);
    Ok(rt.spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = async { while set.join_next().await.is_some() {} } => {}
        }
        let _ = stop_tx.send(true);
        while set.join_next().await.is_some() {}
    }))
}

#[derive(Clone)]
struct Out<S> {
    clock: Clock,
    sink: S,
    source: SourceId,
}

impl<S: Sink> Out<S> {
    async fn send(&self, mut ev: Event) -> Result<(), SinkClosed> {
        ev.source = self.source;
        self.sink.send(ev).await
    }
}

/// Resolves once shutdown is signalled (or the signaller is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn run_probe<S: Sink>(mut r: ProbeRunner, out: Out<S>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(r.probe().interval);
    // A run longer than the interval delays the next one rather than
    // triggering a burst of catch-up runs against a struggling service.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = ticker.tick() => {}
        }
        let ev = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            ev = r.run_once(|| (out.clock)()) => ev,
        };
        if out.send(ev).await.is_err() {
            return;
        }
    }
}

async fn run_collector<S: Sink>(mut p: RedisPoller, out: Out<S>, mut stop: watch::Receiver<bool>) {
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let (evs, next) = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            r = p.poll_once(|| (out.clock)()) => r,
        };
        for ev in evs {
            if out.send(ev).await.is_err() {
                return;
            }
        }
        delay = next;
    }
}
