#!/usr/bin/env bash
# Notification latency of `secmon run` (issue 3): events posted over HTTP at
# RATE a second, each one alert, each alert one webhook request into a
# receiver on loopback run by secmon-respond-bench. Prints one JSON line per
# run and the medians. Usage: bench/respond.sh [RUNS] (default 3).
#   RATE=10000 SECONDS_MEASURED=20 BATCH=50 bench/respond.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
RATE="${RATE:-10000}"
SECONDS_MEASURED="${SECONDS_MEASURED:-20}"
BATCH="${BATCH:-50}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q --bin secmon
cargo build --release -q -p secmon-load --bin secmon-respond-bench
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for run in $(seq 1 "$RUNS"); do
  line=$("$TARGET/release/secmon-respond-bench" --secmon "$TARGET/release/secmon" \
    --rate "$RATE" --seconds "$SECONDS_MEASURED" --batch "$BATCH")
  echo "$line"
  results+=("$line")
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys, statistics
r = [json.loads(l) for l in sys.stdin if l.strip()]
m = lambda k: statistics.median(x[k] for x in r)
print("median of %d at %s alerts/s offered: %s delivered/s; post to wire p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (max %.1f); ingest request p99 %.1f ms; missing %d, duplicate keys %d" % (
    len(r), format(r[0]["offered_per_sec"], ","), format(round(m("delivered_per_sec")), ","),
    m("p50_ms"), m("p95_ms"), m("p99_ms"), m("max_ms"), m("ingest_p99_ms"),
    sum(x["missing"] for x in r), sum(x["duplicate_keys"] for x in r)))
'
