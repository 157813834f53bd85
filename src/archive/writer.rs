//! The archive's writer thread in `secmon run`: the only owner of the open
//! archive. The engine thread hands it every accepted event (with, for file
//! sources, the positions those events came from); it appends, group-commits
//! on the configured fsync interval, and only then releases the positions to
//! the sources for checkpointing — so a line is checkpointed only once its
//! event is durable in the archive. Searches from the HTTP API run here too
//! (the archive has one owner) and are answered over a oneshot channel.
//! Retention runs hourly as principal `retention`.

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use secmon_archive::{Archive, Hit, Query, SearchSummary};
use secmon_core::Event;

use crate::daemon::Ack;

const PRUNE_EVERY_MS: i64 = 3_600_000;

/// A source's acknowledgement, released once durable.
pub type SourceAck = (usize, Ack);

pub type Predicate = Box<dyn Fn(&Event) -> bool + Send>;

/// Receives every hit of a [`ArchiveMsg::Scan`], on the archive thread.
pub type Visitor = Box<dyn FnMut(Hit) + Send>;

pub enum ArchiveMsg {
    Events {
        events: Vec<Event>,
        acks: Vec<SourceAck>,
    },
    Search {
        query: Query,
        pred: Predicate,
        who: String,
        reply: tokio::sync::oneshot::Sender<Result<(Vec<Hit>, SearchSummary), String>>,
    },
    /// A search whose hits go to `visit` rather than into a list, so an
    /// aggregation (the dashboard's heatmap) holds its counts, not the hits.
    Scan {
        query: Query,
        pred: Predicate,
        who: String,
        visit: Visitor,
        reply: tokio::sync::oneshot::Sender<Result<SearchSummary, String>>,
    },
    Stop,
}

pub struct ArchiveHandle {
    pub tx: flume::Sender<ArchiveMsg>,
    thread: Option<JoinHandle<()>>,
}

impl ArchiveHandle {
    /// Syncs, releases the last acknowledgements, closes the archive.
    pub fn stop(mut self) {
        let _ = self.tx.send(ArchiveMsg::Stop);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("archive thread panicked");
        }
    }
}

pub fn start(
    mut archive: Archive,
    ack_txs: Vec<Option<flume::Sender<Ack>>>,
) -> anyhow::Result<ArchiveHandle> {
    let (tx, rx) = flume::bounded::<ArchiveMsg>(64);
    let thread = std::thread::Builder::new()
        .name("secmon-archive".into())
        .spawn(move || {
            let mut pending: VecDeque<(u64, Vec<SourceAck>)> = VecDeque::new();
            let mut last_prune = crate::clock::now().0;
            let release = |archive: &Archive, pending: &mut VecDeque<(u64, Vec<SourceAck>)>| {
                let durable = archive.durable_lsn();
                while pending.front().is_some_and(|(lsn, _)| *lsn <= durable) {
                    if let Some((_, acks)) = pending.pop_front() {
                        for (src, a) in acks {
                            if let Some(Some(tx)) = ack_txs.get(src) {
                                let _ = tx.send(a);
                            }
                        }
                    }
                }
            };
            loop {
                let now = crate::clock::now();
                let wait = archive
                    .next_deadline()
                    .map(|d| Duration::from_millis(d.0.saturating_sub(now.0).clamp(0, 1000) as u64))
                    .unwrap_or(Duration::from_secs(1));
                let msg = match rx.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(flume::RecvTimeoutError::Timeout) => None,
                    Err(flume::RecvTimeoutError::Disconnected) => Some(ArchiveMsg::Stop),
                };
                let now = crate::clock::now();
                match msg {
                    Some(ArchiveMsg::Events { events, acks }) => match archive.append(&events, now) {
                        Ok(lsn) => {
                            if !acks.is_empty() {
                                pending.push_back((lsn, acks));
                            }
                        }
                        Err(e) => {
                            // Not acknowledged: the lines are read again after a restart.
                            tracing::error!(event = "secmon.archive_append_failed", error = %e, events = events.len(), "archiving failed");
                        }
                    },
                    Some(ArchiveMsg::Search {
                        query,
                        pred,
                        who,
                        reply,
                    }) => {
                        let r = archive
                            .search_collect(&query, &*pred, &who, now)
                            .map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    }
                    Some(ArchiveMsg::Scan {
                        query,
                        pred,
                        who,
                        mut visit,
                        reply,
                    }) => {
                        let r = archive
                            .search(
                                &query,
                                secmon_archive::Access::Search,
                                &*pred,
                                &who,
                                now,
                                &mut *visit,
                            )
                            .map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    }
                    Some(ArchiveMsg::Stop) => break,
                    None => {}
                }
                if let Err(e) = archive.tick(now) {
                    tracing::error!(event = "secmon.archive_sync_failed", error = %e, "archive group commit failed");
                }
                release(&archive, &mut pending);
                if now.0.saturating_sub(last_prune) >= PRUNE_EVERY_MS {
                    last_prune = now.0;
                    match archive.prune("retention", now) {
                        Ok(r) if !r.removed.is_empty() || !r.held.is_empty() => {
                            tracing::info!(event = "secmon.archive_pruned", removed = r.removed.len(), records = r.records, held = r.held.len(), "archive retention")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(event = "secmon.archive_prune_failed", error = %e, "archive retention failed"),
                    }
                }
            }
            let now = crate::clock::now();
            // Everything still queued goes in before the close.
            while let Ok(m) = rx.try_recv() {
                if let ArchiveMsg::Events { events, acks } = m
                    && let Ok(lsn) = archive.append(&events, now)
                    && !acks.is_empty()
                {
                    pending.push_back((lsn, acks));
                }
            }
            match archive.sync(now) {
                Ok(_) => release(&archive, &mut pending),
                Err(e) => tracing::error!(event = "secmon.archive_sync_failed", error = %e, "final archive sync failed"),
            }
            if let Err(e) = archive.close(now) {
                tracing::error!(event = "secmon.archive_close_failed", error = %e, "closing the archive failed");
            }
        })
        .context("starting the archive thread")?;
    Ok(ArchiveHandle {
        tx,
        thread: Some(thread),
    })
}
