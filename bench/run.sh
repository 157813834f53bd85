#!/usr/bin/env bash
# End-to-end benchmark of `secmon replay`. Run from the repository root:
#   bench/run.sh
# Env: RUNS (default 5), EVENTS (default 1000000), SEED (default 1),
#      CARGO_TARGET_DIR (default target).
# Prints medians of wall time, peak RSS and CPU (user + sys) seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
EVENTS=${EVENTS:-1000000}
SEED=${SEED:-1}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=bench/out

if [[ ! -x /usr/bin/time ]]; then
    if command -v apt-get >/dev/null; then
        echo "installing GNU time" >&2
        apt-get update -qq && apt-get install -y -qq time >/dev/null
    else
        echo "need GNU time at /usr/bin/time" >&2
        exit 1
    fi
fi

cargo build --release -p secmon -p secmon-gen >&2
SECMON=$TARGET/release/secmon
GEN=$TARGET/release/secmon-gen

mkdir -p "$OUT"
"$GEN" --seed "$SEED" json --events "$EVENTS" --ips 100000 --out "$OUT/events.jsonl"
"$GEN" --seed "$SEED" json --events "$EVENTS" --distinct-keys "$EVENTS" --out "$OUT/distinct.jsonl"
"$GEN" --seed "$SEED" json --events "$EVENTS" --distinct-keys "$EVENTS" --span 240s --users 1000 --out "$OUT/live.jsonl"
"$GEN" --seed "$SEED" sshd --lines "$EVENTS" --out "$OUT/auth.log"

SSHD_CONFIG=()
if [[ -f examples/sshd.yaml ]]; then
    SSHD_CONFIG=(-c examples/sshd.yaml)
fi

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# bench NAME FILE [secmon replay args...]
bench() {
    local name=$1 file=$2
    shift 2
    local lines walls=() rss=() cpus=() i tf
    lines=$(wc -l <"$file")
    tf=$(mktemp)
    "$SECMON" replay --no-progress "$@" "$file" >/dev/null # warm-up
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -o "$tf" -f '%e %M %U %S' "$SECMON" replay --no-progress "$@" "$file" >/dev/null
        read -r w m u s <"$tf"
        walls+=("$w")
        rss+=("$m")
        cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')")
    done
    rm -f "$tf"
    local mw mr mc
    mw=$(printf '%s\n' "${walls[@]}" | median)
    mr=$(printf '%s\n' "${rss[@]}" | median)
    mc=$(printf '%s\n' "${cpus[@]}" | median)
    awk -v n="$name" -v l="$lines" -v w="$mw" -v m="$mr" -v c="$mc" -v all="${walls[*]}" \
        'BEGIN { printf "| %-28s | %9d | %8.3f | %12.0f | %8.1f | %8.2f |  %s\n", n, l, w, (w > 0 ? l / w : 0), m / 1024, c, all }'
}

echo
echo "$("$SECMON" --version 2>/dev/null || echo 'secmon ?'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs after 1 warm-up, medians"
echo "| input                        |     lines |  wall s  |     events/s | RSS MB   | CPU s    |  (all wall s)"
echo "|------------------------------|-----------|----------|--------------|----------|----------|"
bench "seed JSON, 100k IPs" "$OUT/events.jsonl"
bench "seed JSON, 1M distinct keys" "$OUT/distinct.jsonl"
bench "seed JSON, 1M live groups" "$OUT/live.jsonl"
bench "sshd auth.log" "$OUT/auth.log" "${SSHD_CONFIG[@]}"
