#!/usr/bin/env bash
# HTTP load benchmark of `secmon run` (issue 4): batched ingest over
# loopback while a bouncer looks up decisions. Prints one JSON line per run
# and the medians. Usage: bench/load.sh [RUNS] (default 3).
#   EVENTS=1000000 BATCH=2000 CONNECTIONS=3 bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
EVENTS="${EVENTS:-1000000}"
BATCH="${BATCH:-2000}"
CONNECTIONS="${CONNECTIONS:-3}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p secmon-gen -p secmon-load
cargo build --release -q --bin secmon
OUT=bench/out
mkdir -p "$OUT"
INPUT="$OUT/load-$EVENTS.jsonl"
[ -f "$INPUT" ] || "$TARGET/release/secmon-gen" json --events "$EVENTS" --ips 100000 --out "$INPUT"
export SECMON_API_KEY_SECRET="bench-secret-0123456789abcdef"
results=()
for run in $(seq 1 "$RUNS"); do
  DATA=$(mktemp -d)
  INGEST=$("$TARGET/release/secmon" keys create --role ingest --name load --data-dir "$DATA" 2>/dev/null)
  BOUNCER=$("$TARGET/release/secmon" keys create --role bouncer --name load --data-dir "$DATA" 2>/dev/null)
  LOG="$DATA/secmon.log"
  "$TARGET/release/secmon" run --data-dir "$DATA" --listen 127.0.0.1:0 >/dev/null 2>"$LOG" &
  PID=$!
  URL=""
  for _ in $(seq 1 100); do
    URL=$(grep -o '"url":"[^"]*"' "$LOG" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
    [ -n "$URL" ] && break
    sleep 0.1
  done
  [ -n "$URL" ] || { echo "secmon did not start:"; cat "$LOG"; kill $PID; exit 1; }
  line=$("$TARGET/release/secmon-load" --url "$URL" --ingest-key "$INGEST" --bouncer-key "$BOUNCER" \
    --input "$INPUT" --batch "$BATCH" --connections "$CONNECTIONS")
  echo "$line"
  results+=("$line")
  kill -TERM $PID; wait $PID || true
  rm -rf "$DATA"
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys, statistics
r = [json.loads(l) for l in sys.stdin if l.strip()]
m = lambda k: statistics.median(x[k] for x in r)
print("median of %d: %s events/s ingested; decisions p99 %.2f ms under load (p50 %.2f), %.3f ms at rest (p50 %.3f)" % (
    len(r), format(round(m("events_per_sec")), ","), m("busy_p99_ms"), m("busy_p50_ms"), m("idle_p99_ms"), m("idle_p50_ms")))
'
