#!/usr/bin/env bash
# Side-by-side benchmark and detection parity: secmon vs fail2ban vs CrowdSec.
# Run from anywhere:
#   bench/peers/run.sh
# Env: RUNS (default 3 measured runs after 1 warm-up), SIZES (generated sshd
#      and JSON sizes, default "100000 1000000 5000000"), SEED (default 1),
#      CS_FULL_MAX_LINES (default 200000: CrowdSec runs once, without warm-up,
#      on larger inputs), CS_MAX_LINES (default 1000000: skipped above),
#      PEERS ("f2b cs", the peers to run), CS_PORT (CrowdSec's private local
#      API port, default 18089), CARGO_TARGET_DIR (default target),
#      NO_README=1 to leave bench/README.md alone (results still go to
#      bench/out/peers/results.md).
# Needs root for apt-get when fail2ban, crowdsec or GNU time are missing.
# Slow (fail2ban reads ~30,000 lines/s, CrowdSec's replay ~1,000-2,000):
# about 45 minutes with the defaults on 2 cores. Not run by CI.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
SIZES=${SIZES:-"100000 1000000 5000000"}
CS_FULL_MAX_LINES=${CS_FULL_MAX_LINES:-200000}
CS_MAX_LINES=${CS_MAX_LINES:-1000000}
SEED=${SEED:-1}
PEERS=${PEERS:-"f2b cs"}
CS_PORT=${CS_PORT:-18089}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$ROOT/bench/out/peers
PY=/usr/bin/python3 # Debian's python: fail2ban's modules live there
HERE=$ROOT/bench/peers

log() { echo "peers: $*" >&2; }

# --- install (offline-friendly: only when something is missing) -----------
install_peers() {
    local need=()
    [[ -x /usr/bin/time ]] || need+=(time)
    command -v fail2ban-regex >/dev/null || need+=(fail2ban)
    command -v crowdsec >/dev/null && command -v cscli >/dev/null || need+=(crowdsec)
    [[ -x $PY ]] || need+=(python3)
    if ((${#need[@]})); then
        log "installing ${need[*]}"
        # A non-empty CAPI credentials file tells the crowdsec package not to
        # register with the Central API (there is no network here).
        mkdir -p /etc/crowdsec
        [[ -s /etc/crowdsec/online_api_credentials.yaml ]] ||
            echo '# offline: no Central API registration' >/etc/crowdsec/online_api_credentials.yaml
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null || dpkg --configure -a
    fi
    # Nothing may run in the background: stop and disable what the packages
    # started (no-ops when there is no init system).
    for s in fail2ban crowdsec; do
        if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
            systemctl disable --now "$s" >/dev/null 2>&1 || true
        elif command -v service >/dev/null; then
            service "$s" stop >/dev/null 2>&1 || true
        fi
    done
}

# --- CrowdSec: private config, data dir and database ---------------------
CS=$OUT/crowdsec
cs_setup() {
    local hub=/usr/share/crowdsec/hub
    [[ -f $hub/.index.json ]] || hub=/var/lib/crowdsec/hub
    rm -rf "$CS"
    mkdir -p "$CS"/etc/{parsers/{s00-raw,s01-parse,s02-enrich},scenarios,postoverflows} "$CS"/data "$CS"/log
    # What the package enables for sshd (collections crowdsecurity/linux +
    # crowdsecurity/sshd), nothing else.
    ln -s "$hub"/parsers/s00-raw/crowdsecurity/syslog-logs.yaml "$CS"/etc/parsers/s00-raw/
    ln -s "$hub"/parsers/s01-parse/crowdsecurity/sshd-logs.yaml "$CS"/etc/parsers/s01-parse/
    ln -s "$hub"/parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml "$CS"/etc/parsers/s02-enrich/
    ln -s "$hub"/parsers/s02-enrich/crowdsecurity/whitelists.yaml "$CS"/etc/parsers/s02-enrich/
    ln -s "$hub"/scenarios/crowdsecurity/ssh-bf.yaml "$hub"/scenarios/crowdsecurity/ssh-slow-bf.yaml "$CS"/etc/scenarios/
    ln -s /etc/crowdsec/patterns "$CS"/etc/patterns
    cp /etc/crowdsec/profiles.yaml /etc/crowdsec/simulation.yaml "$CS"/etc/
    : >"$CS"/etc/acquis.yaml
    cat >"$CS"/etc/config.yaml <<YAML
common:
  daemonize: false
  log_media: file
  log_level: warning
  log_dir: $CS/log/
  working_dir: .
config_paths:
  config_dir: $CS/etc/
  data_dir: $CS/data/
  simulation_path: $CS/etc/simulation.yaml
  hub_dir: $hub/
  index_path: $hub/.index.json
  notification_dir: $CS/etc/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $CS/etc/acquis.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: warning
  type: sqlite
  db_path: $CS/data/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: false
    credentials_path: $CS/etc/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: 127.0.0.1:$CS_PORT
    profiles_path: $CS/etc/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - "::1"
prometheus:
  enabled: false
YAML
    cscli -c "$CS"/etc/config.yaml --error machines add bench -a -f "$CS"/etc/local_api_credentials.yaml >/dev/null
    # the registration sits in the WAL until a checkpoint
    $PY -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$CS"/data/crowdsec.db
    cp "$CS"/data/crowdsec.db "$CS"/template.db
}

cs_fresh_db() {
    rm -f "$CS"/data/crowdsec.db*
    cp "$CS"/template.db "$CS"/data/crowdsec.db
}

# --- one measured command --------------------------------------------------
# measure TOOL INPUT RUN(-1 = warm-up) LOG
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
measure() {
    local tool=$1 name=$2 run=$3 file=$4 dir=$OUT/$2 tf
    tf=$(mktemp)
    case $tool in
    secmon)
        /usr/bin/time -o "$tf" -f '%e %M %U %S' "$SECMON" replay --no-progress --year 2025 \
            -c examples/sshd.yaml "$file" >"$dir/secmon.alerts.jsonl"
        ;;
    secmon-t1)
        /usr/bin/time -o "$tf" -f '%e %M %U %S' "$SECMON" replay --no-progress --threads 1 --year 2025 \
            -c examples/sshd.yaml "$file" >"$dir/secmon-t1.alerts.jsonl"
        ;;
    secmon-json)
        /usr/bin/time -o "$tf" -f '%e %M %U %S' "$SECMON" replay --no-progress "$file" >"$dir/secmon.alerts.jsonl"
        ;;
    f2b)
        /usr/bin/time -o "$tf" -f '%e %M %U %S' fail2ban-regex -r -o row "$file" \
            /etc/fail2ban/filter.d/sshd.conf >"$dir/f2b.rows"
        ;;
    cs)
        cs_fresh_db
        if ! /usr/bin/time -o "$tf" -f '%e %M %U %S' crowdsec -c "$CS"/etc/config.yaml -dsn "file://$file" \
            -type syslog -no-capi >"$dir/cs.log" 2>&1; then
            log "crowdsec failed, see $dir/cs.log"
            tail -3 "$dir/cs.log" >&2
            exit 1
        fi
        $PY -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$CS"/data/crowdsec.db
        cp "$CS"/data/crowdsec.db "$dir/cs.db"
        ;;
    esac
    read -r w m u s <"$tf"
    rm -f "$tf"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$run" "$w" "$m" "$u" "$s" >>"$dir/times.tsv"
    log "$name $tool run $run: ${w}s, $((m / 1024)) MB"
}

# bench NAME FILE KIND TOOLS...
# CrowdSec's replay reads about 1,000-2,000 lines/s here: on inputs over
# CS_FULL_MAX_LINES it runs once (no warm-up, not interleaved), over
# CS_MAX_LINES not at all.
bench() {
    local name=$1 file=$2 kind=$3
    shift 3
    local dir=$OUT/$name tool i j lines full=() once=()
    rm -rf "$dir"
    mkdir -p "$dir"
    lines=$(wc -l <"$file")
    for tool in "$@"; do
        if [[ $tool == cs ]] && ((lines > CS_MAX_LINES)); then
            log "$name: CrowdSec skipped ($lines lines > CS_MAX_LINES=$CS_MAX_LINES)"
        elif [[ $tool == cs ]] && ((lines > CS_FULL_MAX_LINES)); then
            once+=("$tool")
        else
            full+=("$tool")
        fi
    done
    printf '{"name": "%s", "file": "%s", "lines": %d, "kind": "%s", "tools": "%s", "once": "%s"}\n' \
        "$name" "$file" "$lines" "$kind" "${full[*]}" "${once[*]}" >"$dir/meta.json"
    for tool in "${full[@]}"; do measure "$tool" "$name" -1 "$file"; done # warm-up
    local n=${#full[@]}
    for ((i = 0; i < RUNS; i++)); do
        # interleaved, rotating who goes first
        for ((j = 0; j < n; j++)); do measure "${full[$(((i + j) % n))]}" "$name" "$i" "$file"; done
    done
    for tool in "${once[@]}"; do measure "$tool" "$name" 0 "$file"; done
    # detected sets (from the last run of each tool)
    [[ -f $dir/f2b.rows ]] && $PY "$HERE"/f2b_jail.py "$dir/f2b.rows" >"$dir/f2b.json"
    [[ -f $dir/cs.db ]] && $PY "$HERE"/cs_alerts.py "$dir/cs.db" >"$dir/cs.json"
    if [[ $kind == sshd* ]]; then
        $PY "$HERE"/reference.py --year 2025 "$file" >"$dir/reference.json"
    fi
    [[ -f $file.truth.json ]] && cp "$file.truth.json" "$dir/truth.json"
    return 0
}

install_peers
log "building secmon and secmon-gen (release)"
cargo build -q --release -p secmon -p secmon-gen
SECMON=$TARGET/release/secmon
GEN=$TARGET/release/secmon-gen
[[ $SECMON == /* ]] || SECMON=$ROOT/$SECMON
[[ $GEN == /* ]] || GEN=$ROOT/$GEN

mkdir -p "$OUT"
cs_setup
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/started"

PEER_TOOLS=()
for p in $PEERS; do PEER_TOOLS+=("$p"); done

for f in OpenSSH_2k Linux_2k; do
    bench "loghub-$f" "$ROOT/tests/fixtures/loghub/$f.log" sshd-loghub secmon secmon-t1 "${PEER_TOOLS[@]}"
done
for n in $SIZES; do
    "$GEN" --seed "$SEED" sshd --lines "$n" --out "$OUT/auth-$n.log"
    bench "sshd-$n" "$OUT/auth-$n.log" sshd-generated secmon secmon-t1 "${PEER_TOOLS[@]}"
    rm -f "$OUT/auth-$n.log" # large; regenerate with secmon-gen
done
for n in $SIZES; do
    "$GEN" --seed "$SEED" json --events "$n" --ips 100000 --out "$OUT/events-$n.jsonl"
    bench "json-$n" "$OUT/events-$n.jsonl" json secmon-json
    rm -f "$OUT/events-$n.jsonl"
done

date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/finished"
echo "$LOAD_START" >"$OUT/load_start"
cut -d' ' -f1-3 /proc/loadavg >"$OUT/load_end"
{
    echo "secmon: $("$SECMON" --version 2>/dev/null || echo '?') ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates examples || echo ', with local changes'))"
    echo "fail2ban: $(fail2ban-regex --version 2>/dev/null | head -1) (Debian $(dpkg-query -W -f '${Version}' fail2ban 2>/dev/null))"
    echo "crowdsec: $(crowdsec -version 2>&1 | grep -o 'v[0-9][^ ]*' | head -1) (Debian $(dpkg-query -W -f '${Version}' crowdsec 2>/dev/null))"
    echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "ram: $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
} >"$OUT/machine.txt"

ARGS=("$OUT")
[[ ${NO_README:-0} == 1 ]] || ARGS+=(--readme "$ROOT/bench/README.md")
$PY "$HERE"/report.py "${ARGS[@]}"
log "results in $OUT/results.md"
