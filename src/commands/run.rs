//! `secmon run`: follow the configured sources live and print alerts as they
//! fire.
//!
//! Threads: one per source (tail or read, then parse), the engine on the
//! main thread. Each batch of events carries the file positions it came
//! from; after the engine has processed a batch those positions flow back to
//! the source as acknowledgements, and only acknowledged positions are
//! checkpointed. So a restart resumes exactly after the last processed line:
//! nothing lost, nothing read twice. SIGTERM/SIGINT stop intake, drain what
//! was read, flush the engine and save the checkpoints.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use secmon_core::{Event, SourceId};
use secmon_parse::{LineCtx, LineParser};
use secmon_sources::{CheckpointStore, FileKey, FileTailer, LineBatch, TailLine, TailOptions};

use crate::cli::RunArgs;
use crate::config::{SourceKind, SourcePlan, StartAt};
use crate::output::AlertLine;
use crate::pipeline::{self, Detector, Sink};
use crate::respond::{PlanItem, Responder};
use crate::summary::Summary;
use secmon_core::Timestamp;
use secmon_engine::{Fire, Resolve, Rule};
use secmon_respond::Store;

/// How often acknowledged positions are written to disk while running.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// How often the engine's watermark follows the wall clock when input is quiet.
const TICK_EVERY: Duration = Duration::from_secs(1);

type Ack = (FileKey, u64, u64);

enum Msg {
    Batch {
        source: usize,
        events: Vec<Event>,
        acks: Vec<Ack>,
        summary: Summary,
    },
    /// The source has stopped and will send nothing more.
    Done { source: usize },
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (_, mut runtime) = match super::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(d) = args.data_dir {
        runtime.data_dir = d;
    }
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
    if plans.is_empty() {
        eprintln!(
            "error: no sources configured: add `sources:` to the configuration or pass --stdin"
        );
        return Ok(ExitCode::from(1));
    }
    std::fs::create_dir_all(&runtime.data_dir)
        .with_context(|| format!("creating data directory {}", runtime.data_dir.display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }

    let (tx, rx) = bounded::<Msg>(64);
    let mut ack_txs: Vec<Option<Sender<Ack>>> = Vec::new();
    let mut file_threads = Vec::new();
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    for (i, plan) in plans.into_iter().enumerate() {
        match plan.kind {
            SourceKind::File => {
                let (ack_tx, ack_rx) = unbounded::<Ack>();
                ack_txs.push(Some(ack_tx));
                let store_path = checkpoint_path(&runtime.data_dir, i, &plan.name);
                let store = CheckpointStore::load(&store_path)
                    .with_context(|| format!("loading checkpoints of source {:?}", plan.name))?;
                let opts = TailOptions {
                    start_at: match plan.start_at {
                        StartAt::Beginning => secmon_sources::StartAt::Beginning,
                        StartAt::End => secmon_sources::StartAt::End,
                    },
                    watch: true,
                    ..TailOptions::default()
                };
                let tailer = FileTailer::new(plan.paths.clone(), opts, Some(store))
                    .with_context(|| format!("starting source {:?}", plan.name))?;
                let (tx, stop) = (tx.clone(), stop.clone());
                tracing::info!(source = %plan.name, paths = ?plan.paths, "following files");
                file_threads.push(std::thread::spawn(move || {
                    tail_source(i, plan, tailer, tx, ack_rx, &stop)
                }));
            }
            SourceKind::Stdin => {
                ack_txs.push(None);
                let tx = tx.clone();
                // Not joined: a blocking read of stdin cannot be interrupted.
                std::thread::spawn(move || stdin_source(i, &plan.name, &plan.parser, tx));
            }
        }
    }
    drop(tx);

    let mut live = names.len();
    let mut detector = Detector::new(runtime.ruleset.clone(), runtime.engine);
    let mut summary = Summary::new(crate::summary::DEFAULT_SAMPLES);
    let db = runtime.data_dir.join("secmon.db");
    let store = Store::open(&db).with_context(|| format!("opening the store {}", db.display()))?;
    let mut responder = Responder::new(
        &store,
        &runtime.respond,
        &runtime.notify,
        crate::respond::publishers(&runtime.respond)?,
        crate::clock::now(),
    )?;
    let deliver_stop = Arc::new(AtomicBool::new(false));
    let delivery = crate::deliver::spawn(db.clone(), &runtime.notify, deliver_stop.clone())?;
    let republished = responder.republish(crate::clock::now())?;
    tracing::info!(store = %db.display(), active_decisions = republished, "response store open");
    let mut sink = RunSink {
        responder,
        plan: Vec::new(),
    };
    // The wall clock may only push the watermark while input is idle: while
    // sources are catching up on a backlog (after a restart, say) event time
    // lags the wall clock, and advancing to "now" would make the backlog late.
    let idle_after =
        Duration::from_millis(runtime.engine.lateness.as_millis().max(0) as u64).max(TICK_EVERY);
    let mut last_tick = Instant::now();
    let mut last_input = Instant::now();
    while live > 0 {
        match rx.recv_timeout(TICK_EVERY) {
            Ok(Msg::Batch {
                source,
                events,
                acks,
                summary: s,
            }) => {
                summary.merge(s);
                last_input = Instant::now();
                for ev in events {
                    detector.observe(ev, &mut sink);
                }
                if let Some(Some(ack)) = ack_txs.get(source) {
                    for a in acks {
                        let _ = ack.send(a);
                    }
                }
            }
            Ok(Msg::Done { source }) => {
                tracing::info!(source = %names[source], "source finished");
                live -= 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= TICK_EVERY {
            if last_input.elapsed() >= idle_after {
                detector.advance_to(crate::clock::now(), &mut sink);
            }
            sink.tick(crate::clock::now());
            last_tick = Instant::now();
        }
        if stop.load(Ordering::Relaxed) && ack_txs.iter().all(Option::is_none) {
            break; // only stdin left, which cannot be interrupted
        }
        if stop.load(Ordering::Relaxed) {
            // Keep draining until every file source has reported Done.
            let files_live = file_threads.iter().filter(|t| !t.is_finished()).count();
            if files_live == 0 && rx.is_empty() {
                break;
            }
        }
    }
    // Everything read has been processed: evaluate what the reorder buffer
    // still holds, then let the sources write their final checkpoints.
    detector.flush(&mut sink);
    // Batched notifications go to the outbox before we stop; the worker
    // then gets a bounded time to send what is due.
    if let Err(e) = sink
        .responder
        .flush_all(crate::clock::now(), &mut sink.plan)
    {
        tracing::error!(error = %format!("{e:#}"), "flushing notifications failed");
    }
    sink.log_plan();
    deliver_stop.store(true, Ordering::Relaxed);
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
    let stats = detector.stats();
    tracing::info!(
        events = summary.events,
        parse_errors = summary.error_count(),
        late = stats.late_events,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints alerts as they fire and runs the response stage with the wall
/// clock. A failure to respond (a full disk, say) is logged and does not
/// stop detection.
struct RunSink<'s> {
    responder: Responder<'s>,
    plan: Vec<PlanItem>,
}

impl RunSink<'_> {
    fn tick(&mut self, now: Timestamp) {
        if let Err(e) = self.responder.tick(now, &mut self.plan) {
            tracing::error!(error = %format!("{e:#}"), "response tick failed");
        }
        self.log_plan();
    }

    fn log_plan(&mut self) {
        for item in self.plan.drain(..) {
            let text = serde_json::to_string(&item).unwrap_or_default();
            tracing::info!(plan = %text, "response");
        }
    }
}

impl Sink for RunSink<'_> {
    fn fire(&mut self, rule: &Rule, fire: &Fire) {
        let line = AlertLine::new(rule, fire).to_json();
        tracing::warn!(rule = rule.id(), alert = %line, "alert fired");
        {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Err(e) = self
            .responder
            .on_fire(rule, fire, crate::clock::now(), &mut self.plan)
        {
            tracing::error!(error = %format!("{e:#}"), rule = rule.id(), "responding to alert failed");
        }
        self.log_plan();
    }

    fn resolve(&mut self, rule: &Rule, resolve: &Resolve) {
        if let Err(e) =
            self.responder
                .on_resolve(rule, resolve, crate::clock::now(), &mut self.plan)
        {
            tracing::error!(error = %format!("{e:#}"), rule = rule.id(), "resolving alert failed");
        }
        self.log_plan();
    }
}

/// One checkpoint file per source: sources never overwrite each other's positions.
fn checkpoint_path(data_dir: &Path, index: usize, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    data_dir
        .join("checkpoints")
        .join(format!("{index}-{safe}.json"))
}

fn tail_source(
    index: usize,
    plan: SourcePlan,
    mut tailer: FileTailer,
    tx: Sender<Msg>,
    acks: Receiver<Ack>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    if let Some(dir) = tailer
        .checkpoints()
        .and_then(|c| c.path().parent().map(Path::to_path_buf))
    {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut lines: Vec<TailLine> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut ctx = LineCtx::new(SourceId(index as u32), crate::clock::now());
    while !stop.load(Ordering::Relaxed) {
        lines.clear();
        let stats = match tailer.poll(&mut lines) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(source = %plan.name, error = %e, "poll failed");
                tailer.wait(Duration::from_secs(1));
                continue;
            }
        };
        for e in &stats.errors {
            tracing::warn!(source = %plan.name, error = %e, "source problem");
        }
        if stats.rotations + stats.truncations > 0 {
            tracing::info!(source = %plan.name, rotations = stats.rotations, truncations = stats.truncations, "file rotated");
        }
        if !lines.is_empty() {
            let msg = parse_tail_lines(index, &plan.name, &plan.parser, &mut ctx, &lines);
            if tx.send(msg).is_err() {
                break;
            }
        }
        while let Ok((k, off, line)) = acks.try_recv() {
            tailer.ack(k, off, line);
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if let Err(e) = tailer.checkpoint() {
                tracing::error!(source = %plan.name, error = %e, "saving checkpoint failed");
            }
            last_checkpoint = Instant::now();
        }
        if !stats.more_pending {
            tailer.wait(tailer.options().poll_interval);
        }
    }
    let _ = tx.send(Msg::Done { source: index });
    drop(tx);
    // The engine acknowledges everything it processed, then drops the sender.
    for (k, off, line) in acks.iter() {
        tailer.ack(k, off, line);
    }
    tailer
        .checkpoint()
        .with_context(|| format!("saving checkpoint of source {:?}", plan.name))?;
    Ok(())
}

fn parse_tail_lines(
    index: usize,
    name: &str,
    parser: &LineParser,
    ctx: &mut LineCtx,
    lines: &[TailLine],
) -> Msg {
    let mut summary = Summary::new(crate::summary::DEFAULT_SAMPLES);
    let mut events = Vec::with_capacity(lines.len());
    let mut acks: Vec<Ack> = Vec::new();
    ctx.received = crate::clock::now();
    for l in lines {
        ctx.line_no = l.line_no;
        let label = l.path.display().to_string();
        match l.too_long {
            Some(len) => pipeline::record_too_long(&mut summary, &label, l.line_no, len),
            None => pipeline::parse_line(parser, ctx, &l.bytes, &label, &mut events, &mut summary),
        }
        match acks.iter_mut().find(|a| a.0 == l.file) {
            Some(a) => *a = (l.file, l.end_offset, l.line_no),
            None => acks.push((l.file, l.end_offset, l.line_no)),
        }
    }
    for (kind, t) in &summary.errors {
        for s in &t.samples {
            tracing::warn!(source = name, file = %s.source, line = s.line, kind = *kind, error = %s.message, "bad input line");
        }
    }
    Msg::Batch {
        source: index,
        events,
        acks,
        summary,
    }
}

fn stdin_source(index: usize, name: &str, parser: &LineParser, tx: Sender<Msg>) {
    let mut reader = secmon_sources::stdin_reader();
    let mut batch = LineBatch::new(64 * 1024);
    let mut ctx = LineCtx::new(SourceId(index as u32), crate::clock::now());
    loop {
        batch.clear();
        let more = match reader.next_batch(&mut batch) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(source = name, error = %e, "reading stdin failed");
                false
            }
        };
        let mut summary = Summary::new(crate::summary::DEFAULT_SAMPLES);
        let mut events = Vec::with_capacity(batch.len());
        ctx.received = crate::clock::now();
        for l in batch.iter() {
            ctx.line_no = l.line_no;
            match l.too_long {
                Some(len) => pipeline::record_too_long(&mut summary, name, l.line_no, len),
                None => {
                    pipeline::parse_line(parser, &mut ctx, l.bytes, name, &mut events, &mut summary)
                }
            }
        }
        if !events.is_empty() || summary.error_count() > 0 {
            let msg = Msg::Batch {
                source: index,
                events,
                acks: vec![],
                summary,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        if !more {
            break;
        }
    }
    let _ = tx.send(Msg::Done { source: index });
}
