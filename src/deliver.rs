//! The outbox worker of `secmon run`: delivers the notifications the
//! response stage wrote to the outbox, with retries, backoff and dead
//! letters as `secmon-notify` decides them, on threads of its own so a slow
//! receiver never holds up detection.
//!
//! Shape: one thread decides what to send and sends it: up to
//! `outbox.concurrency` HTTP requests in flight at once on its own
//! single-threaded event loop ([`Dispatcher::deliver_async`]); email, whose
//! SMTP client blocks, goes to that loop's blocking pool. Sending on the
//! deciding thread saves a hand-off between threads per notification in
//! each direction, which at 10,000 notifications a second cost more CPU
//! than the requests themselves.
//!
//! * **Hand-over and wake-up.** After a group commit that wrote outbox rows,
//!   the engine thread hands those items to the coordinator in memory
//!   ([`Link::hand_over`]): they are durable, and they leave within
//!   milliseconds of the commit, without being read back. The coordinator
//!   also polls the store (read-only) every 200 ms, or when woken
//!   ([`Link::wake`], after an operator re-queued dead letters): retries
//!   that came due, rows another process wrote, hand-overs that did not fit
//!   in memory.
//! * **Concurrency.** At most `outbox.concurrency` sends are in flight; more
//!   items wait in order. Two messages to the same receiver about the same
//!   alert are never on the wire at once: the later one waits until the
//!   earlier one is answered, so "firing" then "resolved" arrive in that
//!   order while nothing fails (retries can still reorder, as before).
//! * **One writer.** The coordinator classifies each answer
//!   ([`Dispatcher::settle`]: sent, retry at, dead) and passes the outcome
//!   back to the engine thread, which records it in its next group commit
//!   ([`Link::take_settled`]) — the store keeps a single writer, a burst of
//!   outcomes costs no commit of its own, and the worker never waits for
//!   the write lock the engine holds through every group. Until an outcome
//!   is known to be committed ([`Link::confirm`]) its item is not sent
//!   again; at shutdown, after the engine's last commit, the worker records
//!   what is left itself.
//! * **Checkpoints.** The worker checkpoints the store's WAL once a second
//!   (passive: beside the writer); `run` turns the automatic checkpoint off
//!   on the engine thread's connection, where it would run inside commits.
//! * **Durability.** A row is committed (`synchronous=FULL`) before any send
//!   and marked sent only after the receiver answered. Items being sent are
//!   not leased in the store (they stay `pending`): a crash or `kill -9`
//!   mid-send leaves them pending, and they are sent again after restart
//!   with the same idempotency key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use flume::{Receiver, Sender};
use secmon_notify::config::OutboxConfig;
use secmon_notify::{
    DeliveryResult, Dispatcher, NotifyConfig, Outbox, OutboxItem, OutboxStatus, Outcome, Settlement,
};

/// How long shutdown waits for due notifications to go out.
const DRAIN_FOR: Duration = Duration::from_secs(5);
/// The fallback poll: retries that came due, rows written by another
/// process, items that did not fit in memory.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Items handed over in memory and waiting for a send slot, at most; past
/// that, hand-overs are dropped and the poll finds them in the store.
const MAX_WAITING: usize = 10_000;
/// Ids one poll reads at most.
const POLL_IDS: usize = 10_000;
/// How often the worker checkpoints the WAL. `run` turns SQLite's automatic
/// checkpoint off on the engine thread's connection, where it would run
/// inside a commit (a tenth of that thread's time at 10,000 alerts a
/// second); a passive checkpoint here runs beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The worker's connection retries a locked database every this long;
/// SQLite's default busy handler sleeps in steps of up to 100 ms.
const BUSY_SLEEP: Duration = Duration::from_micros(200);
const BUSY_TRIES: i32 = 25_000; // 5 s

/// The engine thread's end of the worker: hands over what it queued,
/// wakes the worker, and takes the outcomes to record.
pub struct Link {
    tx: Sender<Event>,
    pending: Arc<AtomicBool>,
    settled: Receiver<(u64, Settlement)>,
    confirmed: Arc<AtomicU64>,
}

impl Link {
    /// Wakes the worker to look at the store (cheap, never blocks, and
    /// coalesces).
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Event::Wake);
        }
    }

    /// Outbox rows just committed, for sending now.
    pub fn hand_over(&self, items: Vec<OutboxItem>) {
        if !items.is_empty() {
            let _ = self.tx.send(Event::Queued(items));
        }
    }

    /// Outcomes to record in the current transaction, and the number to
    /// [`Link::confirm`] once it has committed.
    pub fn take_settled(&self) -> (Vec<Settlement>, u64) {
        let mut last = 0;
        let done = self
            .settled
            .try_iter()
            .map(|(seq, s)| {
                last = seq;
                s
            })
            .collect();
        (done, last)
    }

    /// The outcomes up to `seq` are durable.
    pub fn confirm(&self, seq: u64) {
        if seq > 0 {
            self.confirmed.fetch_max(seq, Ordering::AcqRel);
        }
    }
}

/// The running worker.
pub struct Delivery {
    pub thread: JoinHandle<()>,
    pub link: Link,
}

/// What reaches the coordinator.
enum Event {
    Wake,
    Queued(Vec<OutboxItem>),
    Done {
        item: Box<OutboxItem>,
        result: DeliveryResult,
    },
}

/// Resolves receivers and secrets now (a missing secret fails `run` at
/// start, naming the variable) and starts the worker. `stop` (set once the
/// engine thread made its last commit) asks it to drain and exit.
pub fn spawn(db: PathBuf, cfg: &NotifyConfig, stop: Arc<AtomicBool>) -> anyhow::Result<Delivery> {
    let dispatcher = Arc::new(
        Dispatcher::new(cfg, &secmon_notify::secret::process_env)
            .context("setting up receivers")?,
    );
    for w in dispatcher.warnings() {
        tracing::warn!(warning = %w, "receiver configuration");
    }
    let outbox_cfg = cfg.outbox;
    let (tx, rx) = flume::unbounded::<Event>();
    let (jobs_tx, jobs_rx) = flume::unbounded::<Box<OutboxItem>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(outbox_cfg.concurrency.max(1))
        .thread_name("notify-email")
        .build()
        .context("starting the notification event loop")?;
    let done = tx.clone();
    let (settled_tx, settled_rx) = flume::unbounded();
    let pending = Arc::new(AtomicBool::new(false));
    let confirmed = Arc::new(AtomicU64::new(0));
    let link = Link {
        tx,
        pending: pending.clone(),
        settled: settled_rx,
        confirmed: confirmed.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("notify-outbox".into())
        .spawn(move || {
            let worker = Coordinator {
                dispatcher,
                cfg: outbox_cfg,
                rx,
                pending,
                runtime,
                done,
                jobs: jobs_tx,
                launch: jobs_rx,
                settled: settled_tx,
                confirmed,
                stop: &stop,
            };
            if let Err(e) = worker.run(&db) {
                tracing::error!(error = %format!("{e:#}"), "notification delivery stopped");
            }
        })
        .context("starting the notification worker")?;
    Ok(Delivery { thread, link })
}

struct Coordinator<'a> {
    dispatcher: Arc<Dispatcher>,
    cfg: OutboxConfig,
    rx: Receiver<Event>,
    pending: Arc<AtomicBool>,
    /// The event loop the sends run on; driven while the coordinator waits
    /// for events.
    runtime: tokio::runtime::Runtime,
    /// Where finished sends report.
    done: Sender<Event>,
    /// [`Flight`] puts the items to send now here; the coordinator starts
    /// them on `runtime` before it waits again.
    jobs: Sender<Box<OutboxItem>>,
    launch: Receiver<Box<OutboxItem>>,
    settled: Sender<(u64, Settlement)>,
    confirmed: Arc<AtomicU64>,
    stop: &'a AtomicBool,
}

/// Outcomes handed to the engine thread and not yet known to be committed.
/// Their items are not sent again meanwhile (the store still shows them
/// pending); at shutdown the worker records them itself.
#[derive(Default)]
struct Unconfirmed {
    next_seq: u64,
    queue: VecDeque<(u64, Settlement)>,
    /// Item id → the latest sequence number about it.
    ids: HashMap<i64, u64>,
}

impl Unconfirmed {
    fn push(&mut self, s: Settlement) -> u64 {
        self.next_seq += 1;
        self.ids.insert(s.id(), self.next_seq);
        self.queue.push_back((self.next_seq, s.clone()));
        self.next_seq
    }

    fn prune(&mut self, confirmed: u64) {
        while let Some((seq, _)) = self.queue.front() {
            if *seq > confirmed {
                break;
            }
            if let Some((seq, s)) = self.queue.pop_front()
                && self.ids.get(&s.id()) == Some(&seq)
            {
                self.ids.remove(&s.id());
            }
        }
    }

    fn take_all(&mut self) -> Vec<Settlement> {
        self.ids.clear();
        self.queue.drain(..).map(|(_, s)| s).collect()
    }
}

impl Coordinator<'_> {
    fn run(self, db: &Path) -> anyhow::Result<()> {
        let conn = connect(db).with_context(|| format!("opening {}", db.display()))?;
        let outbox = Outbox::new(&conn, self.cfg.lease)?;
        let recovered = outbox.recover(crate::clock::now())?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "notifications interrupted by the last stop will be sent again"
            );
        }
        let mut flight = Flight::new(self.cfg.concurrency.max(1));
        let mut unconfirmed = Unconfirmed::default();
        let mut poll = true;
        let mut last_poll = Instant::now();
        let mut drain_until: Option<Instant> = None;
        let mut last_checkpoint = Instant::now();
        loop {
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            let stopping = self.stop.load(Ordering::Acquire);
            let wait = if poll && flight.room() > 0 {
                Duration::ZERO
            } else {
                IDLE_POLL.saturating_sub(last_poll.elapsed())
            };
            let mut handle = |ev: Event, flight: &mut Flight, poll: &mut bool| match ev {
                Event::Wake => {
                    self.pending.store(false, Ordering::Release);
                    *poll = true;
                }
                Event::Queued(items) => {
                    for item in items {
                        if !unconfirmed.ids.contains_key(&item.id) {
                            flight.admit(Box::new(item), &self.jobs);
                        }
                    }
                }
                Event::Done { item, result } => {
                    let now = crate::clock::now();
                    let (settlement, outcome) = self.dispatcher.settle(&item, result, now);
                    log_outcome(&item, &outcome);
                    let seq = unconfirmed.push(settlement.clone());
                    if !stopping {
                        let _ = self.settled.send((seq, settlement));
                    }
                    flight.finish(&item, &self.jobs);
                }
            };
            self.start_sends();
            let next = self
                .runtime
                .block_on(async { tokio::time::timeout(wait, self.rx.recv_async()).await });
            match next {
                Ok(Ok(ev)) => handle(ev, &mut flight, &mut poll),
                Err(_elapsed) => {}
                Ok(Err(_disconnected)) => return Ok(()),
            }
            while let Ok(ev) = self.rx.try_recv() {
                handle(ev, &mut flight, &mut poll);
            }
            unconfirmed.prune(self.confirmed.load(Ordering::Acquire));
            if stopping && !unconfirmed.queue.is_empty() {
                // The engine thread has made its last commit: record here.
                let done = unconfirmed.take_all();
                if let Err(e) = outbox.exchange(&done, crate::clock::now(), 0) {
                    tracing::error!(error = %e, "recording notification outcomes failed");
                }
            }
            let mut found = None;
            let room = flight.room();
            let past_deadline = drain_until.is_some_and(|d| Instant::now() >= d);
            if (poll || last_poll.elapsed() >= IDLE_POLL || stopping) && room > 0 && !past_deadline
            {
                poll = false;
                last_poll = Instant::now();
                let skip = flight.len() + unconfirmed.ids.len();
                let ids = outbox.due_ids(crate::clock::now(), (room + skip).min(POLL_IDS))?;
                let mut n = 0;
                for id in ids {
                    if n == room {
                        break;
                    }
                    if flight.has(id) || unconfirmed.ids.contains_key(&id) {
                        continue;
                    }
                    if let Some(item) = outbox.get(id)?
                        && item.status == OutboxStatus::Pending
                    {
                        flight.admit(Box::new(item), &self.jobs);
                        n += 1;
                    }
                }
                found = Some(n);
            }
            if stopping {
                let deadline = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_FOR);
                let nothing_due = found == Some(0) || past_deadline;
                let give_up = Instant::now() >= deadline + dur(self.cfg.timeout);
                if (flight.is_idle() && nothing_due) || give_up {
                    let done = unconfirmed.take_all();
                    if !done.is_empty() {
                        outbox.exchange(&done, crate::clock::now(), 0)?;
                    }
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
        }
    }
}

impl Coordinator<'_> {
    /// Starts the sends [`Flight`] released: HTTP ones as tasks of the event
    /// loop, email on its blocking pool. Each reports back as
    /// [`Event::Done`].
    fn start_sends(&self) {
        for item in self.launch.try_iter() {
            let (d, done) = (self.dispatcher.clone(), self.done.clone());
            if d.is_blocking(&item.message.receiver) {
                self.runtime.spawn_blocking(move || {
                    let result = d.deliver(&item.message, crate::clock::now());
                    let _ = done.send(Event::Done { item, result });
                });
            } else {
                self.runtime.spawn(async move {
                    let result = d.deliver_async(&item.message, crate::clock::now()).await;
                    let _ = done.send(Event::Done { item, result });
                });
            }
        }
    }
}

fn dur(d: secmon_core::Dur) -> Duration {
    Duration::from_millis(d.as_millis().max(0) as u64)
}

/// The worker's own connection to the store the engine thread opened (and
/// migrated) at start. It reads (polls) and writes only at start
/// (`recover`) and at shutdown, so `synchronous=NORMAL` is enough (see the
/// module header); its busy handler sleeps briefly and often.
fn connect(db: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_handler(Some(busy))?;
    Ok(conn)
}

/// SQLite busy handler of the worker's connection: short sleeps, 5 s in all.
fn busy(tries: i32) -> bool {
    if tries >= BUSY_TRIES {
        return false;
    }
    std::thread::sleep(BUSY_SLEEP);
    true
}

fn log_outcome(item: &OutboxItem, outcome: &Outcome) {
    match outcome {
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

/// The sends in flight, and items waiting for a free slot or for an
/// earlier message about the same alert to the same receiver to be
/// answered.
struct Flight {
    capacity: usize,
    ids: HashSet<i64>,
    /// (receiver, alert fingerprint) → sends in flight about it.
    busy: HashMap<(String, String), usize>,
    waiting: VecDeque<Box<OutboxItem>>,
    waiting_ids: HashSet<i64>,
}

fn order_keys(item: &OutboxItem) -> impl Iterator<Item = (String, String)> + '_ {
    item.message
        .alerts
        .iter()
        .map(|a| (item.message.receiver.clone(), a.fingerprint.clone()))
}

impl Flight {
    fn new(capacity: usize) -> Flight {
        Flight {
            capacity,
            ids: HashSet::new(),
            busy: HashMap::new(),
            waiting: VecDeque::new(),
            waiting_ids: HashSet::new(),
        }
    }

    /// Items a poll may add now.
    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    fn len(&self) -> usize {
        self.ids.len() + self.waiting.len()
    }

    fn has(&self, id: i64) -> bool {
        self.ids.contains(&id) || self.waiting_ids.contains(&id)
    }

    fn is_idle(&self) -> bool {
        self.ids.is_empty() && self.waiting.is_empty()
    }

    fn conflicts(&self, item: &OutboxItem) -> bool {
        order_keys(item).any(|k| self.busy.contains_key(&k))
    }

    /// Takes an item to send: sends it now, or queues it behind the sends
    /// in flight. An item already in hand is not taken twice; past
    /// [`MAX_WAITING`] it is left to the poll.
    fn admit(&mut self, item: Box<OutboxItem>, jobs: &Sender<Box<OutboxItem>>) {
        if self.has(item.id) {
            return;
        }
        if self.ids.len() < self.capacity && !self.conflicts(&item) {
            self.launch(item, jobs);
        } else if self.waiting.len() < MAX_WAITING {
            self.waiting_ids.insert(item.id);
            self.waiting.push_back(item);
        }
    }

    fn launch(&mut self, item: Box<OutboxItem>, jobs: &Sender<Box<OutboxItem>>) {
        for k in order_keys(&item) {
            *self.busy.entry(k).or_default() += 1;
        }
        self.ids.insert(item.id);
        if jobs.send(item).is_err() {
            tracing::error!("notification send queue gone");
        }
    }

    /// `item` was answered: frees its slot and sends what waited, in order
    /// (skipping items still behind an earlier message about their alert).
    fn finish(&mut self, item: &OutboxItem, jobs: &Sender<Box<OutboxItem>>) {
        self.ids.remove(&item.id);
        for k in order_keys(item) {
            if let Some(n) = self.busy.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(&k);
                }
            }
        }
        let mut kept = VecDeque::new();
        while self.ids.len() < self.capacity {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if self.conflicts(&w) {
                kept.push_back(w);
            } else {
                self.waiting_ids.remove(&w.id);
                self.launch(w, jobs);
            }
        }
        kept.append(&mut self.waiting);
        self.waiting = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmon_core::Timestamp;
    use secmon_notify::{AlertStatus, Message, MessageKind, OutboxStatus};

    fn item(id: i64, receiver: &str, fingerprints: &[&str]) -> Box<OutboxItem> {
        let alert = |fp: &str| secmon_notify::AlertView {
            id: None,
            fingerprint: fp.to_string(),
            rule: "r".into(),
            rule_name: "R".into(),
            description: String::new(),
            severity: secmon_core::Severity::High,
            priority: None,
            labels: Default::default(),
            group: Vec::new(),
            value: 1.0,
            threshold: None,
            window: None,
            count: 1,
            status: AlertStatus::Firing,
            fired_at: Timestamp(0),
            resolved_at: None,
            actions_taken: Vec::new(),
            actions: Vec::new(),
        };
        Box::new(OutboxItem {
            id,
            message: Message {
                receiver: receiver.into(),
                alerts: fingerprints.iter().map(|f| alert(f)).collect(),
                status: AlertStatus::Firing,
                kind: MessageKind::Alert,
                idempotency_key: format!("k{id}"),
                suppressed: 0,
                digest: None,
            },
            status: OutboxStatus::Sending,
            attempts: 0,
            created_at: Timestamp(0),
            queued_at: Timestamp(0),
            next_attempt_at: Timestamp(0),
            sent_at: None,
            last_error: None,
            dead_reason: None,
        })
    }

    #[test]
    fn same_alert_same_receiver_waits_for_the_earlier_send() {
        let (jobs, sent) = flume::unbounded();
        let mut f = Flight::new(3);
        let first = item(1, "hook", &["a"]);
        f.admit(first.clone(), &jobs);
        f.admit(item(2, "hook", &["a"]), &jobs); // same alert: waits
        f.admit(item(3, "other", &["a"]), &jobs); // another receiver: sent
        f.admit(item(4, "hook", &["b"]), &jobs); // another alert: sent
        f.admit(item(5, "hook", &["c"]), &jobs); // no free slot: waits
        f.admit(item(1, "hook", &["a"]), &jobs); // already in hand: ignored
        let ids: Vec<i64> = sent.try_iter().map(|i| i.id).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert_eq!(f.room(), 0);
        f.finish(&first, &jobs);
        let ids: Vec<i64> = sent.try_iter().map(|i| i.id).collect();
        assert_eq!(
            ids,
            [2],
            "the waiting message about `a` goes first, in order"
        );
        f.finish(&item(3, "other", &["a"]), &jobs);
        let ids: Vec<i64> = sent.try_iter().map(|i| i.id).collect();
        assert_eq!(ids, [5]);
        assert!(f.has(5) && !f.has(3));
    }
}
