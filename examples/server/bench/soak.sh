#!/usr/bin/env bash
# The soak of docs/benchmarks.md ("Soak"): the SecKill server on PostgreSQL
# at full rate over HTTP for 60 s, as six back-to-back 10 s wrk runs at 256
# connections on one promotion of 10,000,000 coupons, every grab by a fresh
# customer. After each 10 s: grabs/s, p50/p99, the server's RSS and
# PostgreSQL's checkpoints so far, so a rate that sags, a tail that grows or
# memory that climbs faster than the holder set shows, and whether a
# checkpoint fell in the slice. Meanwhile PostgreSQL's backends on the soak's
# database are sampled every 0.1 s (pg_stat_activity): what they wait on, per
# slice, is the off-CPU side of a slow slice. SECKILL_SNAPSHOT_AFTER=0 in the
# environment turns the server's snapshots off.
#
#   apt-get install -y wrk        # if missing
#   examples/server/bench/soak.sh        # SLICES=6 SLICE=10s CONNECTIONS=256 by default
#
# A fresh database on the server at DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres), dropped at the end. Loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
: "${CARGO_TARGET_DIR:=target}"
BIN="$CARGO_TARGET_DIR/release"
SLICES="${SLICES:-6}"
SLICE="${SLICE:-10s}"
CONNECTIONS="${CONNECTIONS:-256}"
PG_SERVER_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SERVER=http://127.0.0.1:3002
database="seckill_soak_bench_$$"

cargo build --release -q -p seckill-server --bin seckill-server
psql "$PG_SERVER_URL" -qc "CREATE DATABASE $database"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

pid=""
sampler=""
probe=""
waits=$(mktemp)
fsyncs=$(mktemp)
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  [ -n "$probe" ] && kill "$probe" 2>/dev/null || true
  rm -f "$waits" "$waits.slice" "$fsyncs"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
}
trap cleanup EXIT
ADMIN_TOKEN="bench-admin-token-$$"
# One wrk client grabs from one address: no rate limit (docs/security.md).
"$BIN/seckill-server" --bind 127.0.0.1:3002 --log warn --admin-token "$ADMIN_TOKEN" --rate-limit off \
  --database-url "${PG_SERVER_URL%/*}/$database" &
pid=$!
for _ in $(seq 1 100); do curl -sf "$SERVER/healthz" >/dev/null && break; sleep 0.1; done

promotion=$(curl -sf -XPOST "$SERVER/admin/promotions/" -H 'content-type: application/json' \
  -H "authorization: Bearer $ADMIN_TOKEN" \
  -d "{\"numberOfCoupons\":10000000,\"discount\":0.5,\"publishTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"name\":\"soak\"}" |
  sed -E 's/.*"promotionId":"([^"]+)".*/\1/')
rss() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }
committed() { curl -sf "$SERVER/metrics" | awk '/^seckill_committed_commands_total/ { print $2 }'; }
# PostgreSQL's checkpoints so far (server-wide): a slice with one flushes
# the dirty buffers and then writes full pages into the WAL for a while.
checkpoints() { psql "$PG_SERVER_URL" -Atc "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"; }

# Every 0.1 s, one line per active backend of the soak's database: the slice
# (from $waits.slice) and what it waits on, "CPU" when it waits on nothing.
echo 0 > "$waits.slice"
(
  while sleep 0.1; do
    slice=$(cat "$waits.slice")
    psql "$PG_SERVER_URL" -Atc "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
      FROM pg_stat_activity WHERE datname = '$database' AND state = 'active'
        AND pid <> pg_backend_pid()" | sed "s/^/$slice /" >> "$waits"
  done
) &
sampler=$!
# The three commonest waits of a slice, with their share of its samples.
top_waits() {
  awk -v s="$1" '$1 == s { n++; c[$2]++ } END { for (w in c) printf "%s %d%%\n", w, 100 * c[w] / n }' "$waits" |
    sort -k2 -nr -t' ' | head -3 | paste -sd, - | sed 's/,/, /g'
}

# The probe needs a directory it may write on the database's disk: PostgreSQL's
# data directory on a local server run as root or postgres, else none.
probe_dir="${FSYNC_PROBE_DIR:-$(psql "$PG_SERVER_URL" -Atc 'SHOW data_directory' 2>/dev/null || true)}"
if [ "$probe_dir" != off ] && [ -d "$probe_dir" ] && [ -w "$probe_dir" ] && command -v python3 >/dev/null; then
  python3 examples/server/bench/fsync_probe.py "$probe_dir" > "$fsyncs" &
  probe=$!
fi
# The probe's p99 and worst fdatasync between two times, in milliseconds.
disk() {
  awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { print $2 }' "$fsyncs" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.1f / %.1f", v[i], v[NR] }'
}

echo "| seconds | grabs/s | p50 ms | p99 ms | server RSS MB | grabs committed | PostgreSQL checkpoints | PostgreSQL waits | disk fsync p99 / worst ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---|---:|"
started_checkpoints=$(checkpoints)
soak_started=$(date +%s)
echo "| 0 | | | | $(rss) | 0 | 0 | | |"
for slice in $(seq 1 "$SLICES"); do
  echo "$slice" > "$waits.slice"
  slice_started=$(date +%s.%N)
  out=$(PROMOTION=$promotion CUSTOMER_PREFIX="s$slice" \
    wrk -t2 -c"$CONNECTIONS" -d"$SLICE" --latency -s examples/server/bench/grab.lua "$SERVER")
  rate=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
  # wrk prints latencies with their unit (us, ms, s): in milliseconds.
  ms() { awk -v q="$1" '$1 == q { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.1f", v }' <<<"$out"; }
  echo "| $((slice * ${SLICE%s})) | $rate | $(ms 50%) | $(ms 99%) | $(rss) | $(committed) | $(($(checkpoints) - started_checkpoints)) | $(top_waits "$slice") | $(disk "$slice_started" "$(date +%s.%N)") |"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then grep -E 'Non-2xx|Socket errors|status' <<<"$out" | sed 's/^/  /'; fi
done
# When PostgreSQL's background work ran, against the slices: autovacuum and
# autoanalyze of our tables, in seconds since the first slice started.
echo
psql "${PG_SERVER_URL%/*}/$database" -Atc "SET search_path = seckill;
  SELECT relname || ': autovacuum at ' ||
         coalesce(round(extract(epoch FROM last_autovacuum - to_timestamp($soak_started)))::text, '-') ||
         ' s (' || autovacuum_count || ' runs), autoanalyze at ' ||
         coalesce(round(extract(epoch FROM last_autoanalyze - to_timestamp($soak_started)))::text, '-') ||
         ' s (' || autoanalyze_count || ' runs)'
  FROM pg_stat_user_tables WHERE relname IN ('events', 'coupons', 'promotion_summaries') ORDER BY relname"
