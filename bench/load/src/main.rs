//! `secmon-load`: drives a running `secmon run` over HTTP the way production
//! does — applications posting batches of events while enforcing code asks
//! for decisions — and reports what the targets are about: ingested
//! events per second, and decision-lookup latency percentiles, both at rest
//! and under the ingest load.
//!
//! Input is an NDJSON file (e.g. from `secmon-gen json`), cut into batches
//! of `--batch` lines and posted by `--connections` concurrent clients. Each
//! batch's answer is checked (every line accepted), so a fast but lossy run
//! cannot pass for a good one. A batch is answered once the engine has run
//! it and the response stage has committed what it caused (alerts,
//! incidents, decisions, outbox), so the ingest request latency bounds the
//! time from an event to its alert being stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Load secmon's API: batched ingest plus concurrent decision lookups")]
struct Args {
    /// Base URL of the API, e.g. http://127.0.0.1:9650
    #[arg(long)]
    url: String,
    /// Key with the ingest role.
    #[arg(long, env = "SECMON_LOAD_INGEST_KEY")]
    ingest_key: String,
    /// Key allowed to read decisions (bouncer).
    #[arg(long, env = "SECMON_LOAD_BOUNCER_KEY")]
    bouncer_key: String,
    /// NDJSON events to post.
    #[arg(long)]
    input: std::path::PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Concurrent ingest clients.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Decision lookups per second during the run (one client).
    #[arg(long, default_value_t = 500)]
    lookups_per_sec: u32,
    /// Lookups measured at rest, before the ingest starts.
    #[arg(long, default_value_t = 2000)]
    idle_lookups: usize,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn lookup(client: &reqwest::Client, url: &str, key: &str, i: u64) -> anyhow::Result<u64> {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let t = Instant::now();
    let r = client
        .get(format!("{url}/v1/decisions?ip={ip}"))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await?;
    let status = r.status();
    let _ = r.bytes().await?;
    if !status.is_success() {
        bail!("decision lookup answered {status}");
    }
    Ok(t.elapsed().as_micros() as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let text = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let batches: Vec<(usize, Vec<u8>)> = lines
        .chunks(a.batch.max(1))
        .map(|c| (c.len(), c.join(&b'\n')))
        .collect();
    let total: usize = lines.len();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.connections + 2)
        .build()?;

    // Lookups at rest.
    let mut idle = Vec::with_capacity(a.idle_lookups);
    for i in 0..a.idle_lookups as u64 {
        idle.push(lookup(&client, &a.url, &a.bouncer_key, i).await?);
    }
    idle.sort_unstable();

    // Ingest with concurrent lookups.
    let batches = Arc::new(batches);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (client, url, key, done) = (
            client.clone(),
            a.url.clone(),
            a.bouncer_key.clone(),
            done.clone(),
        );
        let every = Duration::from_secs_f64(1.0 / f64::from(a.lookups_per_sec.max(1)));
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut tick = tokio::time::interval(every);
            let mut i = 1u64 << 20;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                i += 1;
                match lookup(&client, &url, &key, i).await {
                    Ok(us) => lat.push(us),
                    Err(e) => return Err(e),
                }
            }
            Ok(lat)
        })
    };
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..a.connections.max(1) {
        let (client, url, key, batches, next) = (
            client.clone(),
            a.url.clone(),
            a.ingest_key.clone(),
            batches.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((n, body)) = batches.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/v1/events"))
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = r.status();
                let text = r.text().await?;
                if !status.is_success() {
                    bail!("ingest answered {status}: {text}");
                }
                let want = format!("\"accepted\":{n}");
                if !text.contains(&want) {
                    bail!("batch of {n} not fully accepted: {text}");
                }
                lat.push(t.elapsed().as_micros() as u64);
                accepted += *n as u64;
            }
            Ok::<(u64, Vec<u64>), anyhow::Error>((accepted, lat))
        }));
    }
    let mut accepted = 0u64;
    let mut ingest = Vec::new();
    for w in workers {
        let (n, lat) = w.await??;
        accepted += n;
        ingest.extend(lat);
    }
    ingest.sort_unstable();
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let mut busy = prober.await??;
    busy.sort_unstable();
    if accepted as usize != total {
        bail!("accepted {accepted} of {total} events");
    }
    println!(
        "{{\"events\":{total},\"seconds\":{secs:.3},\"events_per_sec\":{:.0},\"batch\":{},\"connections\":{},\"idle_lookups\":{},\"idle_p50_ms\":{:.3},\"idle_p99_ms\":{:.3},\"busy_lookups\":{},\"busy_p50_ms\":{:.3},\"busy_p99_ms\":{:.3},\"ingest_requests\":{},\"ingest_p50_ms\":{:.1},\"ingest_p99_ms\":{:.1}}}",
        total as f64 / secs,
        a.batch,
        a.connections,
        idle.len(),
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        busy.len(),
        percentile(&busy, 0.5),
        percentile(&busy, 0.99),
        ingest.len(),
        percentile(&ingest, 0.5),
        percentile(&ingest, 0.99),
    );
    Ok(())
}
