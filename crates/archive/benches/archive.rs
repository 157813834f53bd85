//! Archive throughput, printed as plain numbers (not criterion: the phases
//! take seconds and depend on each other). Run:
//!
//! ```text
//! cargo bench -p secmon-archive --bench archive              # 1M events x3, search over 10M
//! ARCHIVE_BENCH_DIR=/mnt/x ARCHIVE_BENCH_EVENTS=1000000 ARCHIVE_BENCH_SEARCH_EVENTS=10000000 cargo bench ...
//! ```
//!
//! 1. append: seed-format events (~300 bytes as JSON) with encryption,
//!    chaining and group commit (fsync every 100 ms of elapsed time), to a
//!    real directory; without personal fields, and with three personal
//!    fields and the raw line (the event's JSON) sealed under the subject.
//! 2. verify: MB/s over the archive just written.
//! 3. search: one day of N events, a one-hour window and a whole-day scan
//!    with a predicate.

use std::sync::Arc;
use std::time::Instant;

use secmon_archive::{Archive, ArchiveConfig, FsStorage, Keys, MasterKey, Query, SigningKey};
use secmon_core::{Event, Fields, Timestamp, Value};

const T0: i64 = 1_700_006_400_000; // 2023-11-15T00:00:00Z

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn keys() -> Keys {
    Keys::new(
        MasterKey::from_bytes([1; 32]),
        SigningKey::from_bytes([2; 32]),
    )
}

/// Seed 003-shaped events; names spread over the four categories.
fn events(n: usize, span_ms: i64) -> Vec<Event> {
    const NAMES: [(&str, &str); 6] = [
        ("auth.login_failed", "WARN"),
        ("auth.login_success", "INFO"),
        ("http.request", "INFO"),
        ("security.csrf_failed", "WARN"),
        ("ratelimit.exceeded", "WARN"),
        ("cache.miss", "DEBUG"),
    ];
    (0..n)
        .map(|i| {
            let (name, level) = NAMES[i % NAMES.len()];
            let mut f = Fields::new();
            f.insert("level", Value::from(level));
            f.insert("event", Value::from(name));
            f.insert("service", Value::from("auth-service"));
            f.insert(
                "trace_id",
                Value::from(
                    format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)).as_str(),
                ),
            );
            f.insert(
                "fields.user_id",
                Value::from(format!("user-{}", i % 5000).as_str()),
            );
            f.insert(
                "fields.email",
                Value::from(format!("user{}@example.com", i % 5000).as_str()),
            );
            f.insert(
                "fields.ip",
                Value::from(format!("203.0.{}.{}", (i / 251) % 256, i % 251).as_str()),
            );
            f.insert("fields.attempt", Value::Int((i % 5) as i64 + 1));
            f.insert("fields.reason", Value::from("invalid_password"));
            f.insert(
                "fields.user_agent",
                Value::from("Mozilla/5.0 (X11; Linux x86_64)"),
            );
            Event::new(Timestamp(T0 + (i as i64 * span_ms) / n.max(1) as i64), f)
        })
        .collect()
}

fn config(personal: bool) -> ArchiveConfig {
    let mut c = ArchiveConfig {
        max_segment_bytes: 256 << 20,
        ..ArchiveConfig::default()
    };
    if personal {
        c.personal_fields = vec![
            "fields.email".into(),
            "fields.ip".into(),
            "fields.user_id".into(),
        ];
        c.subject_fields = vec!["fields.user_id".into()];
    }
    c
}

/// Appends in batches of 1000; `now` follows elapsed wall time (Instant),
/// so group commit syncs every 100 ms as in production, its fsyncs on a
/// syncer thread (begin_sync / SyncJob::run / finish_sync) as the binary
/// should run it. Returns events/s and the bytes written.
fn append(dir: &std::path::Path, evs: &[Event], personal: bool) -> (f64, f64, u64) {
    let st = Arc::new(FsStorage::new(dir).expect("dir"));
    let policy = config(personal).validate(&[]).expect("config");
    let start = Instant::now();
    let cpu0 = cpu_secs();
    let now = || Timestamp(T0 + start.elapsed().as_millis() as i64);
    let (mut a, _) = Archive::open(st, policy, keys(), now()).expect("open");
    let (job_tx, job_rx) = std::sync::mpsc::channel::<secmon_archive::SyncJob>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let syncer = std::thread::spawn(move || {
        for job in job_rx {
            if done_tx.send(job.run().expect("fsync")).is_err() {
                break;
            }
        }
    });
    let mut in_flight = false;
    for b in evs.chunks(1000) {
        a.append(b, now()).expect("append");
        if in_flight && let Ok(done) = done_rx.try_recv() {
            a.finish_sync(done, now()).expect("finish");
            in_flight = false;
        }
        if !in_flight && a.sync_due(now()) {
            job_tx
                .send(a.begin_sync(now()).expect("begin"))
                .expect("send");
            in_flight = true;
        }
    }
    if in_flight {
        let done = done_rx.recv().expect("done");
        a.finish_sync(done, now()).expect("finish");
    }
    drop(job_tx);
    syncer.join().expect("syncer");
    a.close(now()).expect("close");
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    (
        evs.len() as f64 / secs,
        evs.len() as f64 / cpu,
        dir_bytes(dir),
    )
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += dir_bytes(&p);
        } else {
            n += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    n
}

/// CPU seconds (user + system) this process has used, from /proc (Linux);
/// wall time on a shared, loaded machine says little, CPU time says what
/// the work costs.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line.
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `ARCHIVE_BENCH_VERIFY_DIR=DIR`: verify only (for profiling). Writes `n`
/// events into DIR first when it holds no archive yet (sealed personal
/// fields when `ARCHIVE_BENCH_PERSONAL=1`), then verifies it `runs` times
/// with 1 thread and with `threads` threads.
fn verify_only(dir: &std::path::Path, n: usize, runs: usize, threads: usize) {
    if !dir.join("meta").exists() {
        let personal = env("ARCHIVE_BENCH_PERSONAL", 0) == 1;
        std::fs::create_dir_all(dir).expect("dir");
        let mut evs = events(n, 86_400_000);
        if personal {
            for e in &mut evs {
                e.raw = Some(Arc::from(e.to_json().to_string()));
            }
        }
        let (rate, _, bytes) = append(dir, &evs, personal);
        println!("wrote {n} events ({bytes} bytes) at {rate:.0} events/s");
    }
    let st = FsStorage::new(dir).expect("dir");
    for t in [1, threads] {
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let c0 = cpu_secs();
            let r = secmon_archive::verify_archive_with(&st, &keys(), None, t, &mut |_| {})
                .expect("verify");
            assert!(r.ok(), "{:?}", r.problems.first());
            wall.push(r.bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
            cpu.push(r.bytes as f64 / (cpu_secs() - c0) / 1e6);
        }
        println!(
            "verify ({t} threads): median {:.0} MB/s wall, {:.0} MB per CPU-second (runs: {})",
            median(wall.clone()),
            median(cpu),
            wall.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn main() {
    let root = std::env::var("ARCHIVE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let n = env("ARCHIVE_BENCH_EVENTS", 1_000_000) as usize;
    let runs = env("ARCHIVE_BENCH_RUNS", 3) as usize;
    let search_n = env("ARCHIVE_BENCH_SEARCH_EVENTS", 10_000_000) as usize;
    let threads = env("ARCHIVE_BENCH_VERIFY_THREADS", 2) as usize;
    if let Ok(dir) = std::env::var("ARCHIVE_BENCH_VERIFY_DIR") {
        verify_only(std::path::Path::new(&dir), n, runs, threads);
        return;
    }
    let evs = events(n, 86_400_000);
    let json: usize = evs
        .iter()
        .take(1000)
        .map(|e| e.to_json().to_string().len())
        .sum::<usize>()
        / 1000;
    println!(
        "events: {n} per run, {json} bytes each as seed JSON, {runs} runs; machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // ARCHIVE_BENCH_ONLY=plain|sealed runs one of the two append cases.
    let only = std::env::var("ARCHIVE_BENCH_ONLY").unwrap_or_default();
    // The sealed case carries a raw line (the event's JSON text, as a JSON
    // source would), which is sealed with the personal fields.
    let with_raw: Vec<Event> = if only == "plain" {
        Vec::new()
    } else {
        evs.iter()
            .map(|e| {
                let mut e = e.clone();
                e.raw = Some(Arc::from(e.to_json().to_string()));
                e
            })
            .collect()
    };
    for personal in [false, true] {
        if (only == "plain" && personal) || (only == "sealed" && !personal) {
            continue;
        }
        let evs = if personal { &with_raw } else { &evs };
        let mut rates = Vec::new();
        let mut cpu_rates = Vec::new();
        let mut verify_rates = Vec::new();
        let mut verify_cpu = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let dir = tempfile::tempdir_in(&root).expect("tempdir");
            let (rate, cpu_rate, bytes) = append(dir.path(), evs, personal);
            rates.push(rate);
            cpu_rates.push(cpu_rate);
            size = bytes;
            let st = FsStorage::new(dir.path()).expect("dir");
            let t = Instant::now();
            let c0 = cpu_secs();
            let r = secmon_archive::verify_archive_with(&st, &keys(), None, threads, &mut |_| {})
                .expect("verify");
            let s = t.elapsed().as_secs_f64();
            assert!(r.ok(), "{:?}", r.problems.first());
            verify_rates.push(r.bytes as f64 / s / 1e6);
            verify_cpu.push(r.bytes as f64 / (cpu_secs() - c0) / 1e6);
        }
        println!(
            "append ({}): median {:.0} events/s wall, {:.0} events per CPU-second (runs: {}), archive {:.1} MB ({:.0} B/event)",
            if personal {
                "3 personal fields + raw line sealed"
            } else {
                "no personal fields"
            },
            median(rates.clone()),
            median(cpu_rates.clone()),
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            size as f64 / 1e6,
            size as f64 / n as f64
        );
        println!(
            "verify ({threads} threads): median {:.0} MB/s wall, {:.0} MB per CPU-second (runs: {})",
            median(verify_rates.clone()),
            median(verify_cpu.clone()),
            verify_rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    if search_n > 0 {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let st = Arc::new(FsStorage::new(dir.path()).expect("dir"));
        let policy = config(false).validate(&[]).expect("config");
        let (mut a, _) = Archive::open(st, policy, keys(), Timestamp(T0)).expect("open");
        let t = Instant::now();
        let chunk = 1_000_000;
        for k in (0..search_n).step_by(chunk) {
            let m = chunk.min(search_n - k);
            let mut evs = events(m, 86_400_000);
            for (j, e) in evs.iter_mut().enumerate() {
                e.time = Timestamp(T0 + ((k + j) as i64 * 86_400_000) / search_n as i64);
            }
            for b in evs.chunks(1000) {
                a.append(b, Timestamp(T0 + 1000)).expect("append");
            }
            a.sync(Timestamp(T0 + 1000)).expect("sync");
        }
        println!(
            "search data: {search_n} events over one day written in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let ip = Value::from("203.0.0.0");
        let pred =
            |e: &Event| e.name() == Some("auth.login_failed") && e.get("fields.ip") == Some(&ip);
        for (label, from, to, cats) in [
            (
                "1 hour, category auth",
                Some(T0 + 12 * 3_600_000),
                Some(T0 + 13 * 3_600_000),
                vec!["auth".to_string()],
            ),
            (
                "whole day, category auth",
                None,
                None,
                vec!["auth".to_string()],
            ),
            ("whole day, all categories", None, None, vec![]),
        ] {
            let q = Query {
                from: from.map(Timestamp),
                to: to.map(Timestamp),
                categories: cats,
                limit: 0,
                text: "event = auth.login_failed and fields.ip = 203.0.0.0".into(),
            };
            let mut times = Vec::new();
            let mut cpus = Vec::new();
            let mut last = None;
            for _ in 0..3 {
                let t = Instant::now();
                let c0 = cpu_secs();
                let (hits, sum) = a
                    .search_collect(&q, &pred, "bench", Timestamp(T0 + 2000))
                    .expect("search");
                times.push(t.elapsed().as_secs_f64());
                cpus.push(cpu_secs() - c0);
                last = Some((hits.len(), sum.scanned));
            }
            let (hits, scanned) = last.unwrap_or_default();
            println!(
                "search {label}: median {:.2}s wall, {:.2} CPU-s ({} records decrypted and tested, {hits} hits)",
                median(times),
                median(cpus),
                scanned
            );
        }
    }
}
