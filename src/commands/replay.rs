//! `secmon replay`: evaluate whole log files on event time and print one JSON
//! alert per line.
//!
//! Throughput comes from splitting the work the only way that keeps results
//! exact: one reader thread cuts files into batches of whole lines, parser
//! threads turn batches into events in parallel, and the engine consumes the
//! batches strictly in their original order on the main thread. The engine
//! is single-threaded on purpose: detection is order-sensitive and a single
//! owner of the window state needs no locks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, select};
use secmon_core::{Event, Fields, SourceId, Timestamp};
use secmon_parse::{LineCtx, LineParser};
use secmon_sources::{LineBatch, LineReader};

use crate::cli::{ReplayArgs, RespondMode};
use crate::output::Number;
use crate::pipeline::{self, Detector, Sink};
use crate::respond::{PlanItem, Responder};
use crate::summary::Summary;
use secmon_engine::{Fire, Resolve, Rule};

/// Bytes of lines per batch: large enough to amortize channel hand-offs,
/// small enough that a few batches in flight stay in cache-friendly memory.
const BATCH_BYTES: usize = 64 * 1024;

struct Work {
    seq: u64,
    source: u32,
    batch: LineBatch,
}

struct Done {
    seq: u64,
    events: Vec<Event>,
    summary: Summary,
    batch: LineBatch,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (_, mut runtime) = match super::load_runtime(args.config.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if args.year.is_some() {
        runtime.parse.syslog.year = args.year;
    }
    let mut parser = match runtime.parser_for(args.format.into()) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(1));
        }
    };
    let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
    // Open everything up front: a missing file is an error before any output.
    let mut inputs: Vec<Box<dyn Read + Send>> = Vec::new();
    let mut total_bytes = 0u64;
    for p in &args.files {
        if p.as_os_str() == "-" {
            inputs.push(Box::new(io::stdin()));
        } else {
            let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            total_bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
            inputs.push(Box::new(f));
        }
    }

    // The engine thread is busy the whole time: parsers get the other cores.
    // On 2 cores one parser beats two (1 M sshd lines: 0.41 s against 0.45 s
    // wall, 32 MB against 42 MB peak), since a second one only competes with
    // the engine for the same two cores.
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
        })
        .max(1);
    let progress = (!args.no_progress && io::stderr().is_terminal()).then(|| bar(total_bytes));
    let read_bytes = Arc::new(AtomicU64::new(0));

    let stdout = io::stdout();
    let out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut detector = Detector::new(runtime.ruleset.clone(), runtime.engine);
    // Without a response plan only the alert lines are printed: nothing
    // reads evidence or the fields no rule looks at.
    let alerts_only = matches!(args.respond, RespondMode::Off);
    if alerts_only {
        detector.alerts_only();
    }
    // The parser was just built, so it is not shared yet.
    if alerts_only && let Some(p) = Arc::get_mut(&mut parser) {
        p.set_projection(pipeline::projection(&runtime.ruleset));
    }
    let mut summary = Summary::new(args.max_errors);
    let store = match args.respond {
        RespondMode::DryRun => {
            Some(secmon_respond::Store::open_in_memory().context("opening in-memory store")?)
        }
        RespondMode::Off => None,
    };
    let mut sink = ReplaySink {
        out,
        write_err: None,
        respond: store.as_ref().map(|s| (s, &runtime)),
        responder: None,
        plan: Vec::new(),
        respond_err: None,
        last: Timestamp::MIN,
        alerts: AlertJson::default(),
        line: Vec::with_capacity(256),
    };

    let received = crate::clock::now();
    let result = std::thread::scope(|s| -> anyhow::Result<()> {
        let (work_tx, work_rx) = bounded::<Work>(threads * 2);
        let (done_tx, done_rx) = bounded::<Done>(threads * 2);
        let (recycle_tx, recycle_rx) = bounded::<LineBatch>(threads * 4 + 4);
        // Field buffers of released events, back to the parsers for reuse.
        let (spent_tx, spent_rx) = bounded::<Vec<Fields>>(threads * 4 + 4);
        let reader = {
            let read_bytes = read_bytes.clone();
            s.spawn(move || read_all(inputs, work_tx, recycle_rx, &read_bytes))
        };
        let batches = Batches {
            parser: &parser,
            names: &names,
            received,
            limit: args.max_errors,
        };
        for _ in 0..threads {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            let spent_rx = spent_rx.clone();
            s.spawn(move || parse_worker(batches, work_rx, done_tx, spent_rx));
        }
        drop(done_tx);
        drop(spent_rx);
        // Field buffers the engine released: this thread's own parsing
        // takes what it needs, the rest goes to the parser threads.
        let mut spent = Vec::new();

        // Batches finish out of order; the engine must see them in order.
        // When no batch is ready for it, this thread parses one itself
        // rather than wait: on two cores the engine alone does not keep
        // its core busy, and the parser thread is the slower stage.
        let mut next = 0u64;
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut work_open = true;
        // Batches this thread may hold parsed ahead of the engine: when a
        // parser thread is slow to deliver the next one (descheduled on a
        // busy machine), parsing on alone would buffer the whole input.
        let ahead = threads + 1;
        loop {
            while let Some(d) = pending.remove(&next) {
                next += 1;
                summary.merge(d.summary);
                for ev in d.events {
                    detector.observe(ev, &mut sink);
                }
                detector.take_spent(&mut spent);
                if spent.len() >= SPARE_KEEP + SPENT_SEND {
                    let _ = spent_tx.try_send(spent.split_off(SPARE_KEEP));
                }
                let _ = recycle_tx.try_send(d.batch);
                if let Some(pb) = &progress {
                    pb.set_position(read_bytes.load(Ordering::Relaxed));
                }
            }
            let got = match done_rx.try_recv() {
                Ok(d) => Got::Done(d),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if work_open && pending.len() < ahead => select! {
                    recv(done_rx) -> d => d.map_or(Got::Finished, Got::Done),
                    recv(work_rx) -> w => w.map_or(Got::NoMoreWork, Got::Work),
                },
                Err(TryRecvError::Empty) => done_rx.recv().map_or(Got::Finished, Got::Done),
            };
            match got {
                Got::Done(d) => {
                    pending.insert(d.seq, d);
                }
                Got::Work(w) => {
                    let d = batches.parse(w, &mut spent);
                    pending.insert(d.seq, d);
                }
                Got::NoMoreWork => work_open = false,
                Got::Finished => break,
            }
        }
        // Every parser thread is gone, so every batch is in `pending`.
        while let Some(d) = pending.remove(&next) {
            next += 1;
            summary.merge(d.summary);
            for ev in d.events {
                detector.observe(ev, &mut sink);
            }
        }
        let lines = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        for (i, n) in lines.into_iter().enumerate() {
            summary.lines.insert(names[i].clone(), n);
        }
        Ok(())
    });
    detector.flush(&mut sink);
    sink.finish();
    let ReplaySink {
        mut out,
        write_err,
        respond_err,
        ..
    } = sink;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    out.flush().ok();
    result?;
    if let Some(e) = write_err
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing alerts to stdout");
    }
    if let Some(e) = respond_err {
        return Err(e);
    }
    if args.summary {
        eprint!(
            "{}",
            summary.render(detector.ruleset(), &detector.stats(), &detector.fired)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints alerts, or in a dry run the response plan. Event time is the
/// clock of a dry run: the plan is what `run` would have done had it watched
/// these logs live.
struct ReplaySink<'s, W: Write> {
    out: W,
    write_err: Option<io::Error>,
    /// In a dry run: the in-memory store and the configuration. The
    /// responder is made at the first verdict, so that its clock (digest
    /// schedules) starts at the replayed logs' time, not at 1970.
    respond: Option<(&'s secmon_respond::Store, &'s crate::config::Runtime)>,
    responder: Option<Responder<'s>>,
    plan: Vec<PlanItem>,
    respond_err: Option<anyhow::Error>,
    last: Timestamp,
    alerts: AlertJson,
    /// The alert line being written.
    line: Vec<u8>,
}

impl<'s, W: Write> ReplaySink<'s, W> {
    fn responder(&mut self, now: Timestamp) -> Option<&mut Responder<'s>> {
        if self.responder.is_none()
            && let Some((store, rt)) = self.respond
        {
            match Responder::new(store, &rt.respond, &rt.notify, Vec::new(), now) {
                Ok(r) => self.responder = Some(r),
                Err(e) => {
                    self.respond_err.get_or_insert(e);
                    self.respond = None;
                }
            }
        }
        self.last = self.last.max(now);
        self.responder.as_mut()
    }

    /// End of input: what is still batched becomes notifications.
    fn finish(&mut self) {
        let now = self.last;
        if let Some(r) = &mut self.responder
            && let Err(e) = r.flush_all(now, &mut self.plan)
        {
            self.respond_err.get_or_insert(e);
        }
        self.emit_plan(now);
    }

    fn emit_plan(&mut self, now: Timestamp) {
        if let Some(r) = &mut self.responder
            && let Err(e) = r.tick(now, &mut self.plan)
        {
            self.respond_err.get_or_insert(e);
        }
        for item in self.plan.drain(..) {
            if self.write_err.is_none() {
                let line = serde_json::to_string(&item).unwrap_or_default();
                if let Err(e) = writeln!(self.out, "{line}") {
                    self.write_err = Some(e);
                }
            }
        }
    }
}

impl<W: Write> Sink for ReplaySink<'_, W> {
    fn fire(&mut self, rule: &Rule, fire: &Fire) {
        if self.respond.is_none() {
            if self.write_err.is_none() {
                self.line.clear();
                self.alerts.write(rule, fire, &mut self.line);
                if let Err(e) = self.out.write_all(&self.line) {
                    self.write_err = Some(e);
                }
            }
            return;
        }
        let mut plan = std::mem::take(&mut self.plan);
        if let Some(r) = self.responder(fire.at)
            && let Err(e) = r.on_fire(rule, fire, fire.at, &mut plan)
        {
            self.respond_err.get_or_insert(e);
        }
        self.plan = plan;
        self.emit_plan(fire.at);
    }

    fn resolve(&mut self, rule: &Rule, resolve: &Resolve) {
        if self.respond.is_none() {
            return;
        }
        let mut plan = std::mem::take(&mut self.plan);
        if let Some(r) = self.responder(resolve.at)
            && let Err(e) = r.on_resolve(rule, resolve, resolve.at, &mut plan)
        {
            self.respond_err.get_or_insert(e);
        }
        self.plan = plan;
        self.emit_plan(resolve.at);
    }
}

/// Writes the line [`AlertLine::to_json`](crate::output::AlertLine::to_json) prints, without serde's work per
/// field: what is the same for every alert of a rule (its id, group paths,
/// severity, priority, actions) is serialized once, and the rest piece by
/// piece. An attacked sshd log fires an alert every twenty lines or so;
/// serializing each whole line cost a tenth of the engine thread's time.
/// The tests hold it to `AlertLine`'s bytes.
#[derive(Default)]
struct AlertJson {
    /// By rule index, made at the rule's first alert.
    rules: Vec<Option<RuleJson>>,
    time: String,
}

struct RuleJson {
    /// `{"rule":"<id>","group":{`
    head: Vec<u8>,
    /// Each group_by path and its `"<path>":`.
    keys: Vec<(String, Vec<u8>)>,
    /// `,"severity":…,"priority":…,"actions":[…]}` and the newline.
    tail: Vec<u8>,
}

impl RuleJson {
    fn new(rule: &Rule) -> RuleJson {
        let mut head = b"{\"rule\":".to_vec();
        json(&mut head, rule.id());
        head.extend_from_slice(b",\"group\":{");
        let keys = rule
            .group_by()
            .iter()
            .map(|p| {
                let mut k = Vec::new();
                json(&mut k, p.as_str());
                k.push(b':');
                (p.as_str().to_string(), k)
            })
            .collect();
        let mut tail = b",\"severity\":".to_vec();
        json(&mut tail, &rule.severity());
        tail.extend_from_slice(b",\"priority\":");
        json(&mut tail, &rule.priority());
        tail.extend_from_slice(b",\"actions\":");
        json(&mut tail, rule.actions());
        tail.extend_from_slice(b"}\n");
        RuleJson { head, keys, tail }
    }
}

impl AlertJson {
    /// Appends the alert line of `fire`, newline included, to `out`.
    fn write(&mut self, rule: &Rule, fire: &Fire, out: &mut Vec<u8>) {
        if self.rules.len() <= fire.rule {
            self.rules.resize_with(fire.rule + 1, || None);
        }
        let r = self.rules[fire.rule].get_or_insert_with(|| RuleJson::new(rule));
        out.extend_from_slice(&r.head);
        for (i, (k, v)) in fire.group.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match r.keys.get(i) {
                Some((path, key)) if path == k.as_str() => out.extend_from_slice(key),
                _ => {
                    json(out, k.as_str());
                    out.push(b':');
                }
            }
            json(out, v);
        }
        // RFC 3339 text needs no JSON escaping (digits, `-:.TZ`).
        self.time.clear();
        fire.at.write_rfc3339(&mut self.time);
        out.extend_from_slice(b"},\"fired_at\":\"");
        out.extend_from_slice(self.time.as_bytes());
        out.extend_from_slice(b"\",\"value\":");
        json(out, &Number(fire.value));
        out.extend_from_slice(b",\"threshold\":");
        json(out, &fire.threshold.map(Number));
        out.extend_from_slice(&r.tail);
    }
}

/// Appends `v` as compact JSON (writing to a `Vec` cannot fail).
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Cuts every input into batches of whole lines, in order. Returns the
/// number of lines of each input.
fn read_all(
    inputs: Vec<Box<dyn Read + Send>>,
    work: Sender<Work>,
    recycle: Receiver<LineBatch>,
    read_bytes: &AtomicU64,
) -> anyhow::Result<Vec<u64>> {
    let mut seq = 0;
    let mut lines = Vec::with_capacity(inputs.len());
    for (source, input) in inputs.into_iter().enumerate() {
        let mut reader = LineReader::new(input);
        let mut last_offset = 0;
        loop {
            let mut batch = recycle
                .try_recv()
                .unwrap_or_else(|_| LineBatch::new(BATCH_BYTES));
            batch.clear();
            let more = reader
                .next_batch(&mut batch)
                .with_context(|| format!("reading input #{}", source + 1))?;
            let end = reader.offset();
            read_bytes.fetch_add(end.saturating_sub(last_offset), Ordering::Relaxed);
            last_offset = end;
            if !batch.is_empty() {
                let w = Work {
                    seq,
                    source: source as u32,
                    batch,
                };
                seq += 1;
                if work.send(w).is_err() {
                    return Ok(lines); // the consumer stopped (e.g. stdout closed)
                }
            }
            if !more {
                break;
            }
        }
        lines.push(reader.line_no());
    }
    Ok(lines)
}

/// What the engine thread's loop got next.
enum Got {
    Done(Done),
    Work(Work),
    /// The reader is finished and every batch was taken.
    NoMoreWork,
    /// Every parser thread is finished.
    Finished,
}

/// Field buffers are sent back to the parser threads in lots of at least
/// this many (one channel message per lot).
const SPENT_SEND: usize = 256;

/// Spare field buffers a thread keeps for its own parsing (a batch is a
/// few hundred lines); the engine thread sends the rest to the parser
/// threads, which drop what exceeds [`SPARE_MAX`]: the buffers in
/// circulation stay bounded by the events in flight.
const SPARE_KEEP: usize = 512;
const SPARE_MAX: usize = 2 * SPARE_KEEP;

/// Everything parsing a batch needs, shared by the parser threads and the
/// engine thread.
#[derive(Clone, Copy)]
struct Batches<'a> {
    parser: &'a LineParser,
    names: &'a [String],
    received: Timestamp,
    limit: usize,
}

impl Batches<'_> {
    /// Parses one batch, building events in the buffers of `spare` first.
    fn parse(&self, w: Work, spare: &mut Vec<Fields>) -> Done {
        let name = self
            .names
            .get(w.source as usize)
            .map(String::as_str)
            .unwrap_or("?");
        let mut summary = Summary::new(self.limit);
        let mut events = Vec::with_capacity(w.batch.len());
        let mut ctx = LineCtx::new(SourceId(w.source), self.received);
        ctx.recycle(spare);
        // One UTF-8 check for the whole batch when it passes; lines it
        // cannot vouch for are checked one by one.
        let mut texts = w.batch.texts();
        for line in w.batch.iter() {
            ctx.line_no = line.line_no;
            let text = texts.as_mut().and_then(|t| t.next().flatten());
            match (line.too_long, text) {
                (Some(len), _) => pipeline::record_too_long(&mut summary, name, line.line_no, len),
                (None, Some(text)) => pipeline::parse_text(
                    self.parser,
                    &mut ctx,
                    text,
                    name,
                    &mut events,
                    &mut summary,
                ),
                (None, None) => pipeline::parse_line(
                    self.parser,
                    &mut ctx,
                    line.bytes,
                    name,
                    &mut events,
                    &mut summary,
                ),
            }
        }
        drop(texts);
        *spare = ctx.take_spare();
        Done {
            seq: w.seq,
            events,
            summary,
            batch: w.batch,
        }
    }
}

fn parse_worker(
    batches: Batches<'_>,
    work: Receiver<Work>,
    done: Sender<Done>,
    spent: Receiver<Vec<Fields>>,
) {
    let mut spare: Vec<Fields> = Vec::new();
    for w in work.iter() {
        while let Ok(mut v) = spent.try_recv() {
            if spare.is_empty() {
                std::mem::swap(&mut spare, &mut v);
            } else {
                spare.append(&mut v);
            }
        }
        spare.truncate(SPARE_MAX);
        if done.send(batches.parse(w, &mut spare)).is_err() {
            return;
        }
    }
}

fn bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

#[cfg(test)]
mod tests {
    use secmon_core::{FieldPath, Value};
    use secmon_engine::{RuleConfig, Ruleset};

    use super::*;
    use crate::output::AlertLine;

    /// Every alert line is byte for byte what `AlertLine` serializes.
    #[test]
    fn alert_json_is_alert_line() {
        let rules: Vec<RuleConfig> = serde_saphyr::from_str(
            r#"
- {id: a, severity: high, priority: P2, group_by: [fields.ip], detector: {type: single}, actions: [block_ip, "q\"uote"]}
- {id: b.c-d_e, severity: low, detector: {type: single}}
- {id: f, severity: critical, priority: P1, group_by: [fields.ip, user], detector: {type: single}, actions: []}
"#,
        )
        .expect("rules");
        let rs = Ruleset::build(&rules, &[]).expect("ruleset");
        let values = [
            Value::from("203.0.113.5"),
            Value::from("q\"uo\\te\u{1}\n\u{e9}\u{1F600}"),
            Value::from(""),
            Value::Int(-3),
            Value::Float(2.5),
            Value::Null,
        ];
        let numbers = [5.0, 2.5, 0.1, 1e16, -0.0, f64::NAN, f64::INFINITY, 12.0];
        let times = [
            0,
            1_764_000_000_123,
            -1,
            -62_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ];
        let mut w = AlertJson::default();
        let mut n = 0;
        for (ri, rule) in rs.rules().iter().enumerate() {
            for (vi, v) in values.iter().enumerate() {
                for (ni, &value) in numbers.iter().enumerate() {
                    let paths: Vec<FieldPath> = match vi % 3 {
                        0 => rule.group_by().to_vec(),
                        1 => vec![FieldPath::parse("other").expect("path")],
                        _ => Vec::new(),
                    };
                    let fire = Fire {
                        rule: ri,
                        group: paths.into_iter().map(|p| (p, v.clone())).collect(),
                        at: Timestamp(times[(vi + ni) % times.len()]),
                        value,
                        threshold: (ni % 2 == 0).then_some(numbers[(ni + 3) % numbers.len()]),
                        evidence: Vec::new(),
                    };
                    let mut line = Vec::new();
                    w.write(rule, &fire, &mut line);
                    let want = format!("{}\n", AlertLine::new(rule, &fire).to_json());
                    assert_eq!(String::from_utf8(line).expect("utf-8"), want);
                    n += 1;
                }
            }
        }
        assert_eq!(n, 3 * 6 * 8);
    }
}
