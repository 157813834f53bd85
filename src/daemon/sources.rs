//! The sources of `secmon run`: one thread per source reads lines (tailing
//! files, or stdin), parses them into events and sends them to the engine
//! thread in batches. Each batch carries the file positions it came from;
//! the engine sends those back once it has processed the batch, and only such
//! acknowledged positions are checkpointed. So a restart resumes exactly
//! after the last processed line: nothing lost, nothing read twice.
//!
//! Sources never touch detection state; they only produce [`Msg`]s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use flume::{Receiver, Sender};
use secmon_core::SourceId;
use secmon_parse::{LineCtx, LineParser};
use secmon_sources::{FileTailer, LineBatch, TailLine};

use super::{Ack, Msg};
use crate::config::SourcePlan;
use crate::pipeline;
use crate::summary::Summary;

/// How often acknowledged positions are written to disk while running.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// One checkpoint file per source: sources never overwrite each other's positions.
pub fn checkpoint_path(data_dir: &Path, index: usize, name: &str) -> PathBuf {
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

pub fn tail_source(
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

pub fn stdin_source(index: usize, name: &str, parser: &LineParser, tx: Sender<Msg>) {
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
