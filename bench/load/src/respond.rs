//! `secmon-respond-bench`: verdict-to-wire latency of notifications (issue 3)
//! through the real `secmon run` — HTTP ingest, detection, the response
//! store, routing, the durable outbox and the delivery worker — into a
//! webhook receiver on loopback that this tool runs itself.
//!
//! One run: bind the receiver, write a configuration (one `single` rule on
//! `bench.verdict` grouped by `fields.ip`; one webhook receiver, route
//! `group_wait: 0s` grouped by ip, so every alert is one message and one
//! request; `engine.lateness: 0s` so the reorder buffer releases each event
//! at once), create an ingest key, start `secmon run`, then post events at
//! `--rate` a second, open loop: batch *k* of `--batch` events is due at
//! `start + k × batch / rate` whatever happened to earlier batches, each
//! event with its own IP, so each makes one new alert. The receiver stamps
//! each request when its last byte has been read and answers 200.
//!
//! Latency of an alert = receiver stamp − the time its batch was *due* to
//! be posted (not when it went out, so a late sender counts against
//! secmon, not in its favour). That interval contains the verdict-to-wire
//! interval of the issue and more: the HTTP ingest request, parsing and the
//! wait for the engine thread come before the verdict. Alerts posted during
//! the first `--warmup` seconds are delivered but not counted.
//!
//! Every event's timestamp is the run's start time (detection does not
//! depend on it for a `single` rule, and one timestamp for all keeps
//! batches that overtake each other on different connections from being
//! late). Prints one JSON line.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "Verdict-to-wire latency of secmon notifications at a given alert rate")]
struct Args {
    /// The secmon binary to run.
    #[arg(long, default_value = "target/release/secmon")]
    secmon: PathBuf,
    /// Alerts (events, one alert each) per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds at the same rate before measuring.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Events per ingest request.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Keep the data directory (with secmon's log) here instead of a
    /// temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// (alert number, arrival).
    arrivals: Vec<(u64, Instant)>,
    keys: HashSet<String>,
    requests: u64,
    duplicate_keys: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Alert number ↔ IP: 10.x.y.z from the low 24 bits.
fn ip(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

fn ip_number(s: &str) -> Option<u64> {
    let mut parts = s.split('.');
    if parts.next()? != "10" {
        return None;
    }
    let mut n = 0u64;
    for _ in 0..3 {
        n = (n << 8) | parts.next()?.parse::<u64>().ok()?;
    }
    Some(n)
}

/// The alert numbers a webhook body is about: every `["ip","10.…"]` pair of
/// the alerts' groups (the body is secmon's `Message` as JSON).
fn alerts_in(body: &[u8]) -> Vec<u64> {
    const PAT: &[u8] = b"[\"ip\",\"";
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = body[i..].windows(PAT.len()).position(|w| w == PAT) {
        let start = i + at + PAT.len();
        let Some(len) = body[start..].iter().position(|&b| b == b'"') else {
            break;
        };
        if let Some(n) = std::str::from_utf8(&body[start..start + len])
            .ok()
            .and_then(ip_number)
        {
            out.push(n);
        }
        i = start + len;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One keep-alive connection of the receiver: HTTP/1.1 requests with a
/// `Content-Length` body, each answered `200` once read in full.
async fn serve(mut sock: TcpStream, seen: Arc<Mutex<Seen>>) -> anyhow::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (head_end, len) = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).context("request head")?;
                let len = header(head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, len);
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_end + len {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let arrived = Instant::now();
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let alerts = alerts_in(&buf[head_end..head_end + len]);
        {
            let mut s = seen
                .lock()
                .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
            s.requests += 1;
            if let Some(k) = header(&head, "idempotency-key")
                && !s.keys.insert(k.to_string())
            {
                s.duplicate_keys += 1;
            }
            s.arrivals.extend(alerts.into_iter().map(|n| (n, arrived)));
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
        buf.drain(..head_end + len);
    }
}

fn config(receiver: &str) -> String {
    format!(
        r#"# secmon-respond-bench: every event is one alert, every alert one webhook request.
engine: {{lateness: 0s}}
notify:
  receivers:
    - {{name: bench, kind: webhook, url: "{receiver}/hook"}}
  routes:
    - {{receivers: [bench], group_wait: 0s, group_by: [ip]}}
  # The default (30 a minute) exists to stop a notification storm; this run is one.
  rate_limit: {{per_minute: 100000000, burst: 1000000}}
rules:
  - id: bench-verdict
    name: Bench verdict
    severity: high
    match: {{event: bench.verdict}}
    group_by: [fields.ip]
    detector: {{type: single}}
"#
    )
}

/// Stops `secmon run` with SIGTERM (it drains and exits) and reaps it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[allow(clippy::disallowed_methods)] // a benchmark tool: the wall clock is the point
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = std::env::temp_dir().join(format!("secmon-respond-bench-{}", std::process::id()));
    let dir = a.keep.clone().unwrap_or(tmp);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join("data");

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(Seen::default()));
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(sock, seen).await {
                        eprintln!("receiver connection: {e:#}");
                    }
                });
            }
        });
    }

    let cfg = dir.join("secmon.yaml");
    std::fs::write(&cfg, config(&receiver))?;
    let secret = "bench-secret-0123456789abcdef";
    let key = Command::new(&a.secmon)
        .args([
            "keys",
            "create",
            "--role",
            "ingest",
            "--name",
            "bench",
            "--data-dir",
        ])
        .arg(&data)
        .env("SECMON_API_KEY_SECRET", secret)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {}", a.secmon.display()))?;
    if !key.status.success() {
        bail!("secmon keys create failed");
    }
    let key = String::from_utf8(key.stdout)?.trim().to_string();
    let log_path = dir.join("secmon.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(&a.secmon)
        .args(["run", "--listen", "127.0.0.1:0", "-c"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .env("SECMON_API_KEY_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting secmon run")?;
    let mut url = None;
    for _ in 0..200 {
        if let Ok(f) = std::fs::File::open(&log_path) {
            url = BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    let at = l.find("\"url\":\"")? + 7;
                    let end = l[at..].find('"')?;
                    Some(l[at..at + end].to_string())
                });
        }
        if url.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(url) = url else {
        stop(&mut child);
        bail!("secmon did not start; see {}", log_path.display());
    };

    let pid = child.id();
    let cpu_before = CpuUse::read(pid);
    let result = drive(&a, &url, &key, &seen).await;
    let cpu = CpuUse::read(pid).since(&cpu_before);
    stop(&mut child);
    if a.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (line, alerts) = result?;
    // secmon's CPU time per 1,000 alerts, in all and by thread: what the
    // path costs, which a loaded machine changes far less than latency.
    let per_k = |s: f64| s * 1e6 / alerts.max(1) as f64;
    let threads: Vec<String> = cpu
        .threads
        .iter()
        .filter(|(_, s)| per_k(**s) >= 1.0)
        .map(|(name, s)| format!("\"{name}\":{:.0}", per_k(*s)))
        .collect();
    println!(
        "{},\"cpu_ms_per_1k_alerts\":{:.0},\"written_kb_per_alert\":{:.1},\"writes_per_alert\":{:.1},\"cpu_ms_per_1k_by_thread\":{{{}}}}}",
        line.trim_end_matches('}'),
        per_k(cpu.total),
        cpu.wchar / 1024.0 / alerts.max(1) as f64,
        cpu.syscw / alerts.max(1) as f64,
        threads.join(",")
    );
    Ok(())
}

/// CPU seconds (user + system) of a process and of its live threads by
/// name, from `/proc` (Linux only; zero elsewhere).
#[derive(Default)]
struct CpuUse {
    total: f64,
    /// `/proc/PID/io`: bytes written and write calls (files, pipes, sockets).
    wchar: f64,
    syscw: f64,
    threads: std::collections::BTreeMap<String, f64>,
}

impl CpuUse {
    fn read(pid: u32) -> CpuUse {
        let mut out = CpuUse::default();
        if let Some((_, s)) = stat(&format!("/proc/{pid}/stat")) {
            out.total = s;
        }
        if let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
            for l in io.lines() {
                let (k, v) = l.split_once(':').unwrap_or_default();
                let v: f64 = v.trim().parse().unwrap_or(0.0);
                match k {
                    "wchar" => out.wchar = v,
                    "syscw" => out.syscw = v,
                    _ => {}
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in dir.flatten() {
                if let Some((name, s)) = stat(&format!("{}/stat", t.path().display())) {
                    // Pools (`notify-send-3`) count as one.
                    let pool = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
                    *out.threads.entry(pool.to_string()).or_default() += s;
                }
            }
        }
        out
    }

    fn since(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            total: self.total - before.total,
            wchar: self.wchar - before.wchar,
            syscw: self.syscw - before.syscw,
            threads: self
                .threads
                .iter()
                .map(|(k, v)| (k.clone(), v - before.threads.get(k).copied().unwrap_or(0.0)))
                .collect(),
        }
    }
}

/// (comm, utime + stime in seconds) from a `/proc/.../stat` file; clock
/// ticks are 100 a second on Linux's usual `USER_HZ`.
fn stat(path: &str) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    // After the comm: state is field 3, utime 14 and stime 15.
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / 100.0))
}

/// One run: the result line and the number of alerts posted.
async fn drive(
    a: &Args,
    url: &str,
    key: &str,
    seen: &Arc<Mutex<Seen>>,
) -> anyhow::Result<(String, u64)> {
    let client = reqwest::Client::builder().build()?;
    let event_time = jiff_free_rfc3339(wall_ms());
    let batch = a.batch.max(1);
    let every = Duration::from_secs_f64(batch as f64 / f64::from(a.rate.max(1)));
    let warm_batches = (a.warmup * f64::from(a.rate) / batch as f64).ceil() as u64;
    let batches = warm_batches + (a.seconds * f64::from(a.rate) / batch as f64).ceil() as u64;
    let mut due: Vec<Instant> = Vec::with_capacity(batches as usize);
    let start = Instant::now() + Duration::from_millis(100);
    let (ingest_tx, mut ingest_rx) = tokio::sync::mpsc::unbounded_channel();
    for k in 0..batches {
        let at = start + every * k as u32;
        due.push(at);
        tokio::time::sleep_until(at.into()).await;
        let mut body = String::with_capacity(batch * 100);
        for j in 0..batch as u64 {
            let n = k * batch as u64 + j;
            body.push_str(&format!(
                "{{\"timestamp\":\"{event_time}\",\"event\":\"bench.verdict\",\"fields\":{{\"ip\":\"{}\"}}}}\n",
                ip(n)
            ));
        }
        let req = client
            .post(format!("{url}/v1/events"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/x-ndjson")
            .body(body);
        let tx = ingest_tx.clone();
        tokio::spawn(async move {
            let r = async {
                let r = req.send().await?;
                let status = r.status();
                let text = r.text().await?;
                if !status.is_success() || !text.contains(&format!("\"accepted\":{batch}")) {
                    bail!("ingest answered {status}: {text}");
                }
                Ok(at.elapsed())
            }
            .await;
            let _ = tx.send(r);
        });
    }
    drop(ingest_tx);
    let mut ingest = Vec::new();
    while let Some(r) = ingest_rx.recv().await {
        ingest.push(r?.as_secs_f64() * 1000.0);
    }
    ingest.sort_by(f64::total_cmp);
    let expected = batches * batch as u64;
    // Stragglers: wait until everything arrived, or 30 s of nothing new.
    let mut last = (0usize, Instant::now());
    loop {
        let n = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?
            .arrivals
            .len();
        if n as u64 >= expected || last.1.elapsed() > Duration::from_secs(30) {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
    let per_batch = batch as u64;
    let mut got = HashSet::new();
    let mut lat = Vec::new();
    let mut first_measured: Option<Instant> = None;
    let mut last_arrival: Option<Instant> = None;
    for &(n, arrived) in &s.arrivals {
        if !got.insert(n) {
            continue;
        }
        let k = n / per_batch;
        let Some(&sent) = due.get(k as usize) else {
            continue;
        };
        if k < warm_batches {
            continue;
        }
        lat.push(arrived.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        first_measured = Some(first_measured.map_or(sent, |f| f.min(sent)));
        last_arrival = Some(last_arrival.map_or(arrived, |l| l.max(arrived)));
    }
    lat.sort_by(f64::total_cmp);
    let measured_expected = (batches - warm_batches) * per_batch;
    let span = match (first_measured, last_arrival) {
        (Some(f), Some(l)) => l.saturating_duration_since(f).as_secs_f64(),
        _ => f64::NAN,
    };
    let line = format!(
        "{{\"offered_per_sec\":{},\"alerts\":{},\"received\":{},\"missing\":{},\"duplicate_alerts\":{},\"duplicate_keys\":{},\"requests\":{},\"delivered_per_sec\":{:.0},\"p50_ms\":{:.2},\"p95_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"ingest_p50_ms\":{:.2},\"ingest_p99_ms\":{:.2}}}",
        a.rate,
        measured_expected,
        lat.len(),
        expected.saturating_sub(got.len() as u64),
        s.arrivals.len() - got.len(),
        s.duplicate_keys,
        s.requests,
        lat.len() as f64 / span,
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        percentile(&ingest, 0.5),
        percentile(&ingest, 0.99),
    );
    Ok((line, expected))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in ms (civil-from-days).
fn jiff_free_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_round_trip_and_bodies_parse() {
        assert_eq!(ip_number(&ip(0x01_02_03)), Some(0x01_02_03));
        let body = br#"{"alerts":[{"group":[["ip","10.0.1.2"]]},{"group":[["ip","10.0.0.7"]]}]}"#;
        assert_eq!(alerts_in(body), vec![258, 7]);
        assert_eq!(jiff_free_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            jiff_free_rfc3339(1_705_311_000_123),
            "2024-01-15T09:30:00.123Z"
        );
    }
}
