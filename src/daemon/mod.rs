//! `secmon run`: the daemon. This is the topology — the one place threads and
//! the async runtime are started — and the engine loop.
//!
//! Threads: one per source (tail or read, then parse); the notification
//! worker; a tokio runtime for the HTTP API; and the engine on the main
//! thread, which is also the single writer of the response store. Everything
//! that changes detection or response state arrives on one channel as a
//! [`Msg`] — batches from sources, batches posted over HTTP, an operator's
//! ack or decision from the API — and is handled in arrival order, so there
//! is no shared mutable state to lock. The engine publishes what the API
//! reads (decision index, counters, metric values) into [`Shared`].
//!
//! Signals: SIGTERM/SIGINT stop intake, drain what was read, flush the
//! engine, put batched notifications into the outbox and save checkpoints.
//! SIGHUP reloads the rules: the new configuration is validated first, and on
//! any error the running one stays and the errors are logged.

pub mod decisions;
mod history;
pub mod shared;
mod sources;
mod watch;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use flume::{RecvTimeoutError, Sender};
use secmon_core::{Event, Timestamp};
use secmon_engine::{Fire, Resolve, Rule};
use secmon_respond::{RespondError, Store};
use secmon_sources::{CheckpointStore, FileKey, FileTailer, TailOptions};

use crate::archive::writer::ArchiveMsg;
use crate::cli::RunArgs;
use crate::config::{SourceKind, SourcePlan, StartAt};
use crate::output::AlertLine;
use crate::pipeline::{Detector, Sink};
use crate::respond::{ManualOp, PlanItem, Responder};
use crate::summary::Summary;

pub use decisions::DecisionIndex;
pub use shared::{Shared, Snapshot};

/// How often the engine's watermark follows the wall clock when input is
/// quiet, response timers run and the snapshot is published.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Messages handled under one group commit of the response store at most.
const GROUP_COMMIT_MSGS: usize = 64;

/// (file, end offset, line number) of the last line of a batch from that file.
pub type Ack = (FileKey, u64, u64);

/// Reply channel of a request from the HTTP side.
pub type Reply<T> = tokio::sync::oneshot::Sender<T>;

pub enum Msg {
    Batch {
        source: usize,
        events: Vec<Event>,
        acks: Vec<Ack>,
        summary: Summary,
    },
    /// The source has stopped and will send nothing more.
    Done { source: usize },
    /// Events posted to the HTTP API. The reply is sent once the engine has
    /// taken them, which is what bounds the work in flight.
    Ingest {
        events: Vec<Event>,
        summary: Summary,
        reply: Reply<()>,
    },
    /// An event produced by secmon itself: a probe result, a Redis sample.
    Event(Event),
    /// An operator's change from the HTTP API.
    Manual {
        op: ManualOp,
        author: String,
        reply: Reply<ManualResult>,
    },
}

/// What an operator's change answers.
pub type ManualResult = Result<serde_json::Value, RespondError>;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (_, mut runtime) = match crate::commands::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(d) = args.data_dir.clone() {
        runtime.data_dir = d;
    }
    let mut api_cfg = runtime.api.clone();
    if let Some(l) = &args.listen {
        api_cfg.listen = l.clone();
    }
    let api_enabled = !args.no_api && api_cfg.enabled;
    let mut plans: Vec<SourcePlan> = std::mem::take(&mut runtime.sources);
    if args.stdin && !plans.iter().any(|p| p.kind == SourceKind::Stdin) {
        plans.push(SourcePlan {
            name: "stdin".into(),
            kind: SourceKind::Stdin,
            paths: vec![],
            start_at: StartAt::Beginning,
            parser: runtime.default_parser.clone(),
        });
    }
    if plans.is_empty() && !api_enabled {
        eprintln!(
            "error: nothing to read: add `sources:` to the configuration, pass --stdin, or leave the HTTP API on"
        );
        return Ok(ExitCode::from(1));
    }
    std::fs::create_dir_all(&runtime.data_dir)
        .with_context(|| format!("creating data directory {}", runtime.data_dir.display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing SIGHUP handler")?;

    let db = runtime.data_dir.join("secmon.db");
    let store = Store::open(&db).with_context(|| format!("opening the store {}", db.display()))?;
    // The outbox worker checkpoints the WAL (see `deliver`): the engine
    // thread's commits stay short.
    store
        .conn()
        .pragma_update(None, "wal_autocheckpoint", 0)
        .context("handing WAL checkpoints to the outbox worker")?;
    let mut responder = Responder::new(
        &store,
        &runtime.respond,
        &runtime.notify,
        crate::respond::publishers(&runtime.respond)?,
        crate::clock::now(),
    )?;
    let republished = responder.republish(crate::clock::now())?;
    responder.restore_notifications(&runtime.ruleset, crate::clock::now())?;
    tracing::info!(event = "secmon.store_opened", store = %db.display(), active_decisions = republished, "response store open");
    let series_path = history::path(&runtime.data_dir);
    let shared = Arc::new(Shared::new(
        runtime.ruleset.clone(),
        DecisionIndex::new(responder.active_decisions(crate::clock::now())),
        history::load(&series_path),
        crate::clock::now(),
    ));

    let (tx, rx) = flume::bounded::<Msg>(64);
    let mut ack_txs: Vec<Option<flume::Sender<Ack>>> = Vec::new();
    let mut file_threads = Vec::new();
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    for (i, plan) in plans.into_iter().enumerate() {
        match plan.kind {
            SourceKind::File => {
                let (ack_tx, ack_rx) = flume::unbounded::<Ack>();
                ack_txs.push(Some(ack_tx));
                let store_path = sources::checkpoint_path(&runtime.data_dir, i, &plan.name);
                let cps = CheckpointStore::load(&store_path)
                    .with_context(|| format!("loading checkpoints of source {:?}", plan.name))?;
                let opts = TailOptions {
                    start_at: match plan.start_at {
                        StartAt::Beginning => secmon_sources::StartAt::Beginning,
                        StartAt::End => secmon_sources::StartAt::End,
                    },
                    watch: true,
                    ..TailOptions::default()
                };
                let tailer = FileTailer::new(plan.paths.clone(), opts, Some(cps))
                    .with_context(|| format!("starting source {:?}", plan.name))?;
                let (tx, stop) = (tx.clone(), stop.clone());
                tracing::info!(event = "secmon.source_started", source = %plan.name, paths = ?plan.paths, "following files");
                file_threads.push(std::thread::spawn(move || {
                    sources::tail_source(i, plan, tailer, tx, ack_rx, &stop)
                }));
            }
            SourceKind::Stdin => {
                ack_txs.push(None);
                let tx = tx.clone();
                // Not joined: a blocking read of stdin cannot be interrupted.
                std::thread::spawn(move || sources::stdin_source(i, &plan.name, &plan.parser, tx));
            }
        }
    }

    let archive = if runtime.archive.enabled {
        Some(open_archive(
            &runtime,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
            ack_txs.clone(),
        )?)
    } else {
        None
    };
    let api = if api_enabled {
        let parser = runtime
            .parser_for(secmon_parse::Format::Json)
            .map_err(|d| anyhow::anyhow!("{d}"))?;
        Some(
            crate::api::server::start(crate::api::server::Options {
                cfg: api_cfg,
                shared: shared.clone(),
                tx: tx.clone(),
                db: db.clone(),
                parser,
                notify: runtime.notify.clone(),
                archive: archive.as_ref().map(|a| a.tx.clone()),
                incidents: runtime.respond.incidents.clone(),
                engine: runtime.engine,
            })
            .context("starting the HTTP API")?,
        )
    } else {
        None
    };
    let watch = if runtime.watch.is_empty() {
        None
    } else {
        Some(watch::start(
            std::mem::take(&mut runtime.watch),
            tx.clone(),
        )?)
    };
    drop(tx);

    let deliver_stop = Arc::new(AtomicBool::new(false));
    let crate::deliver::Delivery {
        thread: delivery,
        link: delivery_link,
    } = crate::deliver::spawn(db.clone(), &runtime.notify, deliver_stop.clone())?;

    let mut engine = EngineLoop {
        detector: Detector::new(runtime.ruleset.clone(), runtime.engine),
        summary: Summary::new(crate::summary::DEFAULT_SAMPLES),
        sink: RunSink {
            responder,
            plan: Vec::new(),
            shared: shared.clone(),
            fired: Default::default(),
            resolved: Default::default(),
            errors: 0,
            taken_over: Default::default(),
            alert_lines: String::new(),
        },
        shared: shared.clone(),
        store: &store,
        sources_total: names.len(),
        sources_live: names.len(),
        history: history::History::default(),
        series_path,
        archive: archive.as_ref().map(|a| a.tx.clone()),
        pending_acks: Vec::new(),
        // Taken now, when the responder has just loaded the decisions: a
        // change committed from now on is seen at the next tick.
        data_version: store
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .ok(),
        ingest_replies: Vec::new(),
        manual_replies: Vec::new(),
        delivery: &delivery_link,
        orphans: Vec::new(),
    };
    engine.sink.responder.hand_over_queued();
    // Alerts left firing by the last process: the engine takes them over
    // (once it knows the time), so they resolve as they would have.
    engine.begin();
    engine.take_over_firing(Lost::Restart, None);
    engine.take_over_pending();
    engine.commit(&ack_txs);
    engine.publish_snapshot();
    let config_path = args.config.config.clone();
    // The wall clock may only push the watermark while input is idle: while
    // sources are catching up on a backlog (after a restart, say) event time
    // lags the wall clock, and advancing to "now" would make the backlog late.
    let idle_after =
        Duration::from_millis(runtime.engine.lateness.as_millis().max(0) as u64).max(TICK_EVERY);
    let mut last_tick = Instant::now();
    let mut last_input = Instant::now();
    let mut engine_cfg = runtime.engine;
    loop {
        match rx.recv_timeout(TICK_EVERY) {
            Ok(msg) => {
                // Whatever else is already waiting joins the same group commit.
                engine.begin();
                let mut input = engine.handle(msg, &names);
                for _ in 1..GROUP_COMMIT_MSGS {
                    match rx.try_recv() {
                        Ok(m) => input |= engine.handle(m, &names),
                        Err(_) => break,
                    }
                }
                engine.take_over_pending();
                engine.commit(&ack_txs);
                if input {
                    last_input = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= TICK_EVERY {
            engine.follow_other_writers();
            engine.begin();
            if last_input.elapsed() >= idle_after {
                engine
                    .detector
                    .advance_to(crate::clock::now(), &mut engine.sink);
            }
            engine.take_over_pending();
            engine.sink.tick(crate::clock::now());
            engine.commit(&ack_txs);
            engine.publish_snapshot();
            last_tick = Instant::now();
        }
        if reload.swap(false, Ordering::Relaxed) {
            engine.begin();
            engine.reload(config_path.as_deref(), &mut engine_cfg);
            engine.commit(&ack_txs);
        }
        if api.is_none() && watch.is_none() && engine.sources_live == 0 {
            break; // nothing left that could send
        }
        if stop.load(Ordering::Relaxed) {
            if let Some(a) = &api {
                a.stop_intake();
            }
            if ack_txs.iter().all(Option::is_none) && rx.is_empty() {
                break; // only stdin (which cannot be interrupted) and the API
            }
            // Keep draining until every file source has reported Done.
            let files_live = file_threads.iter().filter(|t| !t.is_finished()).count();
            if files_live == 0 && rx.is_empty() {
                break;
            }
        }
    }
    if let Some(w) = watch {
        w.stop();
    }
    // Requests in flight get their answer (they may be waiting for this
    // thread), then nothing else arrives.
    if let Some(a) = api {
        a.begin_shutdown();
        while !a.is_finished() {
            if let Ok(msg) = rx.recv_timeout(Duration::from_millis(20)) {
                engine.begin();
                engine.handle(msg, &names);
                engine.commit(&ack_txs);
            }
        }
        engine.begin();
        while let Ok(msg) = rx.try_recv() {
            engine.handle(msg, &names);
        }
        engine.commit(&ack_txs);
        a.join();
    }
    engine.begin();
    // Everything read has been processed: evaluate what the reorder buffer
    // still holds, then let the sources write their final checkpoints.
    engine.detector.flush(&mut engine.sink);
    // Batched notifications go to the outbox before we stop; the worker
    // then gets a bounded time to send what is due.
    if let Err(e) = engine
        .sink
        .responder
        .flush_all(crate::clock::now(), &mut engine.sink.plan)
    {
        tracing::error!(error = %format!("{e:#}"), "flushing notifications failed");
    }
    engine.sink.log_plan();
    engine.commit(&ack_txs);
    engine.history.save(&engine.shared, &engine.series_path);
    engine.archive = None;
    if let Some(a) = archive {
        a.stop(); // syncs, then releases the last file positions
    }
    deliver_stop.store(true, Ordering::Release);
    delivery_link.wake();
    if delivery.join().is_err() {
        tracing::error!("notification worker panicked");
    }
    drop(ack_txs);
    for t in file_threads {
        match t.join() {
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "source failed"),
            Err(_) => tracing::error!("source thread panicked"),
            Ok(Ok(())) => {}
        }
    }
    let stats = engine.detector.stats();
    tracing::info!(
        event = "secmon.stopped",
        events = engine.summary.events,
        parse_errors = engine.summary.error_count(),
        late = stats.late_events,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// The engine thread's state: detection, the response sink, and what it
/// publishes for the API.
struct EngineLoop<'s> {
    detector: Detector,
    summary: Summary,
    sink: RunSink<'s>,
    shared: Arc<Shared>,
    store: &'s Store,
    sources_total: usize,
    sources_live: usize,
    history: history::History,
    series_path: std::path::PathBuf,
    /// To the archive's writer thread, which also releases file positions
    /// for checkpointing once their events are durable.
    archive: Option<flume::Sender<ArchiveMsg>>,
    /// File positions of handled batches, released after the next commit.
    pending_acks: Vec<(usize, Ack)>,
    /// Last seen `PRAGMA data_version` (see `follow_other_writers`).
    data_version: Option<i64>,
    ingest_replies: Vec<Reply<()>>,
    manual_replies: Vec<(Reply<ManualResult>, ManualResult)>,
    /// The outbox worker: gets the notifications each commit queued, gives
    /// back the outcomes of its sends to record.
    delivery: &'s crate::deliver::Link,
    /// Alerts firing in the store that the engine is still to take over
    /// (it had no time yet), and why it did not know them.
    orphans: Vec<(secmon_respond::Alert, Lost)>,
}

/// Why the engine does not know an alert the store says is firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// Detection state lives in memory: a new process starts without it.
    Restart,
    /// A reload changed the alert's rule, which starts afresh.
    Reload,
}

impl Lost {
    fn as_str(self) -> &'static str {
        match self {
            Lost::Restart => "state lost at restart",
            Lost::Reload => "rule changed by a reload",
        }
    }
}

impl EngineLoop<'_> {
    /// Handles one message; true when it carried input (events or lines).
    fn handle(&mut self, msg: Msg, names: &[String]) -> bool {
        match msg {
            Msg::Batch {
                source,
                events,
                acks,
                summary,
            } => {
                self.summary.merge(summary);
                self.archive_events(&events);
                for ev in events {
                    self.detector.observe(ev, &mut self.sink);
                }
                // Released after the response stage's commit (see `commit`).
                self.pending_acks
                    .extend(acks.into_iter().map(|a| (source, a)));
                true
            }
            Msg::Done { source } => {
                tracing::info!(event = "secmon.source_finished", source = %names.get(source).map(String::as_str).unwrap_or("?"), "source finished");
                self.sources_live = self.sources_live.saturating_sub(1);
                false
            }
            Msg::Ingest {
                events,
                summary,
                reply,
            } => {
                self.summary.merge(summary);
                self.archive_events(&events);
                for ev in events {
                    self.detector.observe(ev, &mut self.sink);
                }
                self.ingest_replies.push(reply);
                true
            }
            Msg::Event(ev) => {
                self.history.observe(&ev);
                self.archive_events(std::slice::from_ref(&ev));
                self.detector.observe(ev, &mut self.sink);
                false
            }
            Msg::Manual { op, author, reply } => {
                let now = crate::clock::now();
                let r = self
                    .sink
                    .responder
                    .manual(op, &author, now, &mut self.sink.plan);
                self.sink.log_plan();
                self.manual_replies.push((reply, r));
                false
            }
        }
    }

    /// Group commit of the response stage: everything the last messages
    /// changed (alerts, incidents, decisions, outbox) becomes durable in one
    /// fsync; only then are file positions released — through the archive
    /// thread, which adds its own durability, or directly.
    fn commit(&mut self, ack_txs: &[Option<Sender<Ack>>]) {
        // Alert messages that are due (`group_wait: 0s` ones at once) go to
        // the outbox in this transaction, not at the next tick.
        if let Err(e) = self
            .sink
            .responder
            .flush_notifications(crate::clock::now(), &mut self.sink.plan)
        {
            self.sink.errors += 1;
            tracing::error!(error = %format!("{e:#}"), "queueing notifications failed");
        }
        self.sink.log_plan();
        let (settled, seq) = self.delivery.take_settled();
        if !settled.is_empty()
            && let Err(e) = self.sink.responder.record_deliveries(&settled)
        {
            self.sink.errors += 1;
            tracing::error!(error = %format!("{e:#}"), "recording notification outcomes failed");
        }
        let committed = self.store.commit_batch();
        self.sink.write_alert_lines();
        let (queued, requeued) = self.sink.responder.take_queued();
        if committed.is_ok() {
            self.delivery.confirm(seq);
            self.delivery.hand_over(queued);
            if requeued {
                self.delivery.wake();
            }
        }
        // Posted events were taken by the engine either way; operators'
        // changes are confirmed only once durable.
        for r in self.ingest_replies.drain(..) {
            let _ = r.send(());
        }
        for (reply, r) in self.manual_replies.drain(..) {
            let r = match (&committed, r) {
                (Ok(()), r) => r,
                (Err(e), _) => Err(secmon_respond::RespondError::Conflict(format!(
                    "not stored: {e}"
                ))),
            };
            let _ = reply.send(r);
        }
        if let Err(e) = committed {
            self.sink.errors += 1;
            tracing::error!(event = "secmon.store_commit_failed", error = %e, "committing the response store failed");
            return; // positions stay unacknowledged: the lines are read again
        }
        if self.pending_acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.pending_acks);
        match &self.archive {
            Some(tx) => {
                let msg = ArchiveMsg::Events {
                    events: Vec::new(),
                    acks,
                };
                if tx.send(msg).is_err() {
                    tracing::error!("archive thread gone: positions not acknowledged");
                }
            }
            None => {
                for (source, a) in acks {
                    if let Some(Some(ack)) = ack_txs.get(source) {
                        let _ = ack.send(a);
                    }
                }
            }
        }
    }

    /// `secmon decisions add|delete` run next to the daemon write the store
    /// from another process. SQLite's `data_version` tells when anyone else
    /// committed; then the decisions are reloaded and the API's index (and
    /// the bouncer stream) follow within a tick.
    fn follow_other_writers(&mut self) {
        let Ok(v) = self
            .store
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
        else {
            return;
        };
        if self.data_version.replace(v).is_none_or(|old| old == v) {
            return;
        }
        match self.sink.responder.reload_decisions() {
            Ok(()) => self
                .shared
                .decisions
                .sync(&self.sink.responder.active_decisions(crate::clock::now())),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "reloading decisions failed"),
        }
    }

    /// Reads the alerts firing in the store and settles each with the
    /// engine: one whose rule is gone (or disabled, or now grouped
    /// differently) resolves now with that reason; the others wait in
    /// `orphans` for [`EngineLoop::take_over_pending`]. `previous` is the
    /// ruleset a reload replaced, for what the removed rules' resolves show.
    fn take_over_firing(&mut self, lost: Lost, previous: Option<&secmon_engine::Ruleset>) {
        let firing = match self.sink.responder.firing_alerts() {
            Ok(f) => f,
            Err(e) => {
                self.sink.errors += 1;
                tracing::error!(error = %format!("{e:#}"), "reading firing alerts failed");
                return;
            }
        };
        for alert in firing {
            if self.detector.ruleset().position(&alert.rule).is_some() {
                self.orphans.push((alert, lost));
                continue;
            }
            let rule = previous.and_then(|rs| rs.position(&alert.rule).map(|i| rs.rule(i)));
            let reason = match lost {
                Lost::Restart => "rule removed while secmon was stopped",
                Lost::Reload => "rule removed by a reload",
            };
            self.resolve_orphan(&alert, rule, reason);
        }
    }

    /// Hands the engine the alerts it is still to take over, once it knows
    /// the time (the first event, or the first idle tick). An alert it takes
    /// over resolves later by the engine's normal path, with the reason
    /// recorded; one it cannot judge resolves now.
    fn take_over_pending(&mut self) {
        if self.orphans.is_empty() || self.detector.watermark() == Timestamp::MIN {
            return;
        }
        let rules = self.detector.ruleset_arc().clone();
        for (alert, lost) in std::mem::take(&mut self.orphans) {
            let Some(i) = rules.position(&alert.rule) else {
                continue; // cannot happen: checked when queued, same ruleset
            };
            let rule = rules.rule(i);
            let reason = format!("{}; {}", lost.as_str(), clear_when(rule));
            // Registered first: a state rule's resolve comes out at once.
            // One taken over earlier (at start, before a reload that kept
            // its rule) keeps its reason unless taken over anew.
            let prior = self
                .sink
                .taken_over
                .insert(alert.fingerprint.clone(), reason);
            let outcome = self.detector.adopt(i, &alert.group, &mut self.sink);
            match outcome {
                secmon_engine::Adoption::Adopted | secmon_engine::Adoption::Resolved => {
                    tracing::info!(
                        event = "secmon.alert_taken_over",
                        alert = alert.id,
                        rule = %alert.rule,
                        reason = lost.as_str(),
                        "firing alert taken over by the engine: it resolves when its condition is seen clear"
                    );
                    continue;
                }
                secmon_engine::Adoption::Known | secmon_engine::Adoption::Stateless => {}
                secmon_engine::Adoption::NoTime => self.orphans.push((alert.clone(), lost)),
                secmon_engine::Adoption::Disabled => {
                    self.resolve_orphan(&alert, Some(rule), "rule disabled");
                }
                secmon_engine::Adoption::GroupMismatch => {
                    self.resolve_orphan(&alert, Some(rule), "rule's group_by changed");
                }
            }
            match prior {
                Some(p) => self.sink.taken_over.insert(alert.fingerprint.clone(), p),
                None => self.sink.taken_over.remove(&alert.fingerprint),
            };
        }
    }

    fn resolve_orphan(
        &mut self,
        alert: &secmon_respond::Alert,
        rule: Option<&secmon_engine::Rule>,
        reason: &str,
    ) {
        tracing::info!(
            event = "secmon.alert_orphaned",
            alert = alert.id,
            rule = %alert.rule,
            reason,
            "firing alert resolved: no rule can judge it any more"
        );
        if let Err(e) = self.sink.responder.resolve_orphan(
            alert,
            rule,
            reason,
            crate::clock::now(),
            &mut self.sink.plan,
        ) {
            self.sink.errors += 1;
            tracing::error!(error = %format!("{e:#}"), rule = %alert.rule, "resolving alert failed");
        }
        self.sink.log_plan();
    }

    fn begin(&mut self) {
        if let Err(e) = self.store.begin_batch() {
            self.sink.errors += 1;
            tracing::error!(event = "secmon.store_begin_failed", error = %e, "starting a response batch failed");
        }
    }

    fn archive_events(&self, events: &[Event]) {
        if let Some(tx) = &self.archive
            && !events.is_empty()
        {
            let msg = ArchiveMsg::Events {
                events: events.to_vec(),
                acks: Vec::new(),
            };
            if tx.send(msg).is_err() {
                tracing::error!("archive thread gone: events not archived");
            }
        }
    }

    fn publish_snapshot(&mut self) {
        let stats = self.detector.stats();
        let rs = self.detector.ruleset();
        let rules = rs
            .rules()
            .iter()
            .zip(&stats.rules)
            .map(|(r, s)| shared::RuleFigures {
                id: r.id().to_string(),
                fired: self.sink.fired.get(r.id()).copied().unwrap_or(0),
                resolved: self.sink.resolved.get(r.id()).copied().unwrap_or(0),
                live_groups: s.groups_live,
                evicted_groups: s.groups_evicted,
            })
            .collect();
        let outbox = secmon_notify::Outbox::new(self.store.conn(), secmon_core::Dur::from_secs(60));
        let (depth, dead, store_ok) = match outbox {
            Ok(o) => (
                o.depth().unwrap_or(0),
                o.dead_count().unwrap_or(0),
                o.depth().is_ok(),
            ),
            Err(_) => (0, 0, false),
        };
        let watermark = self.detector.watermark();
        let snap = Snapshot {
            at: crate::clock::now(),
            watermark: (watermark != Timestamp::MIN).then_some(watermark),
            metrics: self.detector.metrics_snapshot(),
            rules,
            events_in: stats.events_in,
            late_events: stats.late_events,
            parse_errors: self
                .summary
                .errors
                .iter()
                .map(|(k, t)| (k.to_string(), t.count))
                .collect(),
            catalog_violations: self.summary.catalog.values().map(|t| t.count).sum(),
            sources_live: self.sources_live,
            sources_total: self.sources_total,
            outbox_depth: depth,
            outbox_dead: dead,
            store_ok,
            response_errors: self.sink.errors,
        };
        self.history
            .tick(&self.shared, &snap, snap.at, &self.series_path);
        self.shared.publish(snap);
    }

    /// SIGHUP: validate the configuration again and swap the rules in. On
    /// any error the running configuration stays. Rules the reload leaves
    /// unchanged keep their detection state (see `Engine::carry_over`);
    /// changed and new ones start afresh, and events still in the lateness
    /// buffer are evaluated by the new rules.
    fn reload(
        &mut self,
        path: Option<&std::path::Path>,
        engine_cfg: &mut secmon_engine::EngineConfig,
    ) {
        let loaded = crate::config::load(path).and_then(|l| {
            let rt = crate::config::build(&l)?;
            Ok(rt)
        });
        match loaded {
            Err(d) => {
                tracing::error!(
                    event = "secmon.reload_failed",
                    errors = d.0.len(),
                    diagnostics = %d,
                    "configuration reload failed; keeping the running configuration"
                );
            }
            Ok(rt) => {
                *engine_cfg = rt.engine;
                let old_rules = self.detector.ruleset_arc().clone();
                let carried = self.detector.reload(rt.ruleset.clone(), rt.engine);
                self.shared.set_ruleset(rt.ruleset.clone());
                tracing::info!(
                    event = "secmon.reloaded",
                    rules = rt.ruleset.rules().len(),
                    kept = carried.kept.len(),
                    fresh = ?carried.fresh,
                    removed = ?carried.removed,
                    metrics_kept = carried.metrics_kept,
                    metrics_fresh = carried.metrics_fresh,
                    "configuration reloaded (rules, metrics, engine; unchanged rules keep their windows); sources, respond, notify and api take effect at restart"
                );
                // Alerts of changed rules are taken over by the new state;
                // those of removed rules resolve now. Alerts still waiting
                // since the start (no time yet) keep their cause.
                let waiting: std::collections::HashSet<String> =
                    self.orphans.drain(..).map(|(a, _)| a.fingerprint).collect();
                self.take_over_firing(Lost::Reload, Some(&old_rules));
                for (a, lost) in &mut self.orphans {
                    if waiting.contains(&a.fingerprint) {
                        *lost = Lost::Restart;
                    }
                }
                self.take_over_pending();
                self.publish_snapshot();
            }
        }
    }
}

/// Prints alerts as they fire and runs the response stage with the wall
/// clock. A failure to respond (a full disk, say) is logged and counted and
/// does not stop detection.
struct RunSink<'s> {
    responder: Responder<'s>,
    plan: Vec<PlanItem>,
    shared: Arc<Shared>,
    fired: std::collections::HashMap<String, u64>,
    resolved: std::collections::HashMap<String, u64>,
    errors: u64,
    /// Fingerprint → resolve reason of the alerts the engine took over
    /// (see [`EngineLoop::take_over_pending`]); a fire of one drops it, as
    /// the engine then judges it on evidence of its own.
    taken_over: std::collections::HashMap<String, String>,
    /// Alert lines for stdout, written once per group commit: one `write`
    /// for a burst of alerts instead of one each.
    alert_lines: String,
}

impl RunSink<'_> {
    fn write_alert_lines(&mut self) {
        if self.alert_lines.is_empty() {
            return;
        }
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let _ = out
            .write_all(self.alert_lines.as_bytes())
            .and_then(|()| out.flush());
        self.alert_lines.clear();
    }

    fn tick(&mut self, now: Timestamp) {
        if let Err(e) = self.responder.tick(now, &mut self.plan) {
            self.errors += 1;
            tracing::error!(error = %format!("{e:#}"), "response tick failed");
        }
        self.log_plan();
    }

    /// Logs what the response stage did and keeps the API's decision index
    /// in step with it.
    fn log_plan(&mut self) {
        for item in self.plan.drain(..) {
            if let PlanItem::Decision { change, decision } = &item {
                self.shared.decisions.apply(change, decision);
            }
            // A queued notification is logged again by the worker when it
            // is sent (or fails), at info: here it is detail.
            if matches!(item, PlanItem::Notification { .. }) {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let text = serde_json::to_string(&item).unwrap_or_default();
                    tracing::debug!(event = "secmon.response", plan = %text, "response");
                }
                continue;
            }
            let text = serde_json::to_string(&item).unwrap_or_default();
            tracing::info!(event = "secmon.response", plan = %text, "response");
        }
    }
}

impl Sink for RunSink<'_> {
    fn fire(&mut self, rule: &Rule, fire: &Fire) {
        *self.fired.entry(rule.id().to_string()).or_default() += 1;
        if !self.taken_over.is_empty() {
            self.taken_over
                .remove(&alert_fingerprint(rule, &fire.group));
        }
        let line = AlertLine::new(rule, fire).to_json();
        tracing::warn!(event = "secmon.alert_fired", rule = rule.id(), alert = %line, "alert fired");
        self.alert_lines.push_str(&line);
        self.alert_lines.push('\n');
        if let Err(e) = self
            .responder
            .on_fire(rule, fire, crate::clock::now(), &mut self.plan)
        {
            self.errors += 1;
            tracing::error!(error = %format!("{e:#}"), rule = rule.id(), "responding to alert failed");
        }
        self.log_plan();
    }

    fn resolve(&mut self, rule: &Rule, resolve: &Resolve) {
        *self.resolved.entry(rule.id().to_string()).or_default() += 1;
        let reason = if self.taken_over.is_empty() {
            None
        } else {
            self.taken_over
                .remove(&alert_fingerprint(rule, &resolve.group))
        };
        if let Err(e) = self.responder.on_resolve_because(
            rule,
            resolve,
            reason.as_deref(),
            crate::clock::now(),
            &mut self.plan,
        ) {
            self.errors += 1;
            tracing::error!(error = %format!("{e:#}"), rule = rule.id(), "resolving alert failed");
        }
        self.log_plan();
    }
}

/// The response store's fingerprint of a verdict's alert.
fn alert_fingerprint(
    rule: &Rule,
    group: &[(secmon_core::FieldPath, secmon_core::Value)],
) -> String {
    let group: Vec<(String, String)> = group
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_key().to_string()))
        .collect();
    secmon_respond::alerts::fingerprint(rule.id(), &group)
}

/// How an alert taken over by the engine is judged clear, for its resolve
/// reason.
fn clear_when(rule: &Rule) -> &'static str {
    use secmon_engine::DetectorKind as K;
    match rule.detector_kind() {
        K::Threshold | K::Distinct => "no matching event within the window",
        K::Metric => "condition false once its windows refilled",
        K::Absence => "matching events returned",
        K::State => "condition seen clear",
        K::Single => "never",
    }
}

/// Opens the archive (generating default keys on first start), reports what
/// recovery repaired, and starts its writer thread.
fn open_archive(
    runtime: &crate::config::Runtime,
    source_names: &[&str],
    ack_txs: Vec<Option<Sender<Ack>>>,
) -> anyhow::Result<crate::archive::writer::ArchiveHandle> {
    let section = &runtime.archive;
    crate::archive::check_dir(section, &runtime.data_dir)?;
    let storage = crate::archive::storage(section, &runtime.data_dir)?;
    let keys = crate::archive::keys(section, &runtime.data_dir, true)?;
    let policy = section.policy(source_names)?;
    let (archive, report) =
        secmon_archive::Archive::open(storage, policy, keys, crate::clock::now()).with_context(
            || {
                format!(
                    "opening the archive {}",
                    section.dir(&runtime.data_dir).display()
                )
            },
        )?;
    for r in &report.repairs {
        tracing::warn!(event = "secmon.archive_repaired", repair = %r, "archive recovery");
    }
    tracing::info!(event = "secmon.archive_opened", dir = %section.dir(&runtime.data_dir).display(), created = report.created, "archive open");
    crate::archive::writer::start(archive, ack_txs)
}
