//! Runs the health probes and the Redis collector (`secmon-watch`) for the
//! daemon: a small single-threaded tokio runtime on its own thread, whose
//! events join the engine's channel like any other input. It is separate
//! from the API's runtime so probes keep their schedule when the API is off
//! or busy.

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use secmon_core::SourceId;
use secmon_watch::{CallbackSink, Clock, Watch};

use super::Msg;

/// The source id events of probes and the collector carry.
pub const WATCH_SOURCE: SourceId = SourceId(u32::MAX - 1);

pub struct WatchHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub fn start(watch: Watch, tx: flume::Sender<Msg>) -> anyhow::Result<WatchHandle> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the probes' runtime")?;
    let probes = watch.probes.len();
    let redis = watch.redis.is_some();
    let clock: Clock = Arc::new(crate::clock::now);
    // The engine is never waited for: a probe result that finds the channel
    // full is dropped and counted in the log (the next run reports again).
    let sink = CallbackSink::new(move |ev| match tx.try_send(Msg::Event(ev)) {
        Ok(()) => true,
        Err(flume::TrySendError::Full(_)) => {
            tracing::warn!(
                event = "secmon.watch_event_dropped",
                "engine busy: probe event dropped"
            );
            true
        }
        Err(flume::TrySendError::Disconnected(_)) => false,
    });
    let handle = {
        let _guard = rt.enter();
        secmon_watch::spawn_with_source(watch, clock, sink, WATCH_SOURCE, async move {
            let _ = stopped.await;
        })
        .context("starting probes and the Redis collector")?
    };
    tracing::info!(
        event = "secmon.watch_started",
        probes,
        redis,
        "probes started"
    );
    let thread = std::thread::Builder::new()
        .name("secmon-watch".into())
        .spawn(move || {
            if let Err(e) = rt.block_on(handle) {
                tracing::error!(error = %e, "probes stopped");
            }
        })
        .context("starting the probes' thread")?;
    Ok(WatchHandle {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl WatchHandle {
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("probes' thread panicked");
        }
    }
}
