//! The outbox worker of `secmon run`: delivers the notifications the
//! response stage wrote to the outbox, with retries, backoff and dead
//! letters as `secmon-notify` decides them. It runs on its own thread with
//! its own connection to the store, so a slow receiver never holds up
//! detection; the outbox being durable, a crash loses nothing (leases of
//! items being sent expire and they are sent again, with the same
//! idempotency key).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use secmon_notify::{Dispatcher, NotifyConfig, Outbox, Outcome};
use secmon_respond::Store;

/// How long shutdown waits for due notifications to go out.
const DRAIN_FOR: Duration = Duration::from_secs(5);
const IDLE_SLEEP: Duration = Duration::from_millis(200);

/// Resolves receivers and secrets now (a missing secret fails `run` at
/// start, naming the variable) and starts the worker. `stop` asks it to
/// drain and exit.
pub fn spawn(
    db: PathBuf,
    cfg: &NotifyConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let dispatcher = Dispatcher::new(cfg, &secmon_notify::secret::process_env)
        .context("setting up receivers")?;
    for w in dispatcher.warnings() {
        tracing::warn!(warning = %w, "receiver configuration");
    }
    let lease = cfg.outbox.lease;
    Ok(std::thread::spawn(move || {
        if let Err(e) = work(&db, &dispatcher, lease, &stop) {
            tracing::error!(error = %format!("{e:#}"), "notification delivery stopped");
        }
    }))
}

fn work(
    db: &std::path::Path,
    dispatcher: &Dispatcher,
    lease: secmon_core::Dur,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let store = Store::open(db).with_context(|| format!("opening {}", db.display()))?;
    let outbox = Outbox::new(store.conn(), lease)?;
    let recovered = outbox.recover(crate::clock::now())?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "notifications interrupted by the last stop will be sent again"
        );
    }
    let mut deadline = None;
    loop {
        let now = crate::clock::now();
        let items = outbox.due(now, 16)?;
        for item in &items {
            match dispatcher.deliver_one(&outbox, item, now)? {
                Outcome::Sent => {
                    tracing::info!(id = item.id, receiver = %item.message.receiver, "notification sent")
                }
                Outcome::Retrying { at, reason } => {
                    tracing::warn!(id = item.id, receiver = %item.message.receiver, retry_at = %at, reason = %reason, "notification failed, will retry")
                }
                Outcome::Dead { reason } => {
                    tracing::error!(id = item.id, receiver = %item.message.receiver, reason = %reason, "notification moved to dead letters")
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            let d = *deadline.get_or_insert_with(|| Instant::now() + DRAIN_FOR);
            if items.is_empty() || Instant::now() >= d {
                let left = outbox.depth()?;
                if left > 0 {
                    tracing::info!(
                        pending = left,
                        "notifications left in the outbox for the next start"
                    );
                }
                return Ok(());
            }
        }
        if items.is_empty() {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}
