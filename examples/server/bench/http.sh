#!/usr/bin/env bash
# The HTTP benchmark of docs/benchmarks.md ("HTTP"), in one run on this machine:
# a bare axum hello-world beside the SecKill server, in memory and on
# PostgreSQL, measured with wrk, then the load generator's verified race.
#
#   apt-get install -y wrk                        # if missing
#   examples/server/bench/http.sh                        # 10 s a step
#   DURATION=20s examples/server/bench/http.sh
#
# The PostgreSQL steps use a fresh database on the server at DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/postgres), dropped at the end.
# Loopback only; every step is time-bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
: "${CARGO_TARGET_DIR:=target}"
BIN="$CARGO_TARGET_DIR/release"
DURATION="${DURATION:-10s}"
PG_SERVER_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
MEMORY=http://127.0.0.1:3000
BASELINE=http://127.0.0.1:3001
POSTGRES=http://127.0.0.1:3002
database="seckill_http_bench_$$"

cargo build --release -q -p seckill-server --bin seckill-server --example http_baseline && cargo build --release -q -p seckill-client --bin loadgen
psql "$PG_SERVER_URL" -qc "CREATE DATABASE $database"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "postgres: $(psql "$PG_SERVER_URL" -Atc "select 'synchronous_commit=' || current_setting('synchronous_commit') || ' fsync=' || current_setting('fsync')")"

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
}
trap cleanup EXIT
# One wrk client grabs from one address: no rate limit (docs/security.md).
ADMIN_TOKEN="bench-admin-token-$$"
"$BIN/seckill-server" --bind 127.0.0.1:3000 --log warn --admin-token "$ADMIN_TOKEN" --rate-limit off & pids+=($!)
"$BIN/examples/http_baseline" 127.0.0.1:3001 >/dev/null & pids+=($!)
"$BIN/seckill-server" --bind 127.0.0.1:3002 --log warn --admin-token "$ADMIN_TOKEN" --rate-limit off \
  --database-url "${PG_SERVER_URL%/*}/$database" & pids+=($!)
for url in "$MEMORY" "$POSTGRES"; do
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
done

promotion() { # server coupons name -> id of an open promotion
  curl -sf -XPOST "$1/admin/promotions/" -H 'content-type: application/json' -H "authorization: Bearer $ADMIN_TOKEN" \
    -d "{\"numberOfCoupons\":$2,\"discount\":0.5,\"publishTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"name\":\"$3\"}" |
    sed -E 's/.*"promotionId":"([^"]+)".*/\1/'
}
run_wrk() { # title connections url [script]
  echo; echo "== $1, $2 connections (load $(cut -d' ' -f1 /proc/loadavg))"
  wrk -t2 -c"$2" -d"$DURATION" --latency ${4:+-s "$4"} "$3" |
    grep -E 'Requests/sec|^ +(50|90|99)%|status|Socket errors|Non-2xx'
}
commits() { # server
  echo "   $(curl -sf "$1/metrics" | grep -E '^seckill_(commits|committed_commands)_total' | tr '\n' ' ')"
}

echo; echo "### in memory"
run_wrk "axum hello-world GET /hello" 64 "$BASELINE/hello"
PROMOTION=none run_wrk "axum hello-world POST, grab script" 64 "$BASELINE" examples/server/bench/grab.lua
run_wrk "seckill-server GET /healthz" 64 "$MEMORY/healthz"
hot=$(promotion "$MEMORY" 10000000 "wrk: every grab wins")
PROMOTION=$hot run_wrk "grab, every one wins (201)" 64 "$MEMORY" examples/server/bench/grab.lua
commits "$MEMORY"
sold=$(promotion "$MEMORY" 1 "wrk: sold out")
curl -sf -o /dev/null -XPOST "$MEMORY/command/coupons/" -H 'content-type: application/json' \
  -d "{\"promotionId\":\"$sold\",\"customerId\":\"first\"}"
PROMOTION=$sold run_wrk "grab, sold out (410)" 64 "$MEMORY" examples/server/bench/grab.lua

echo; echo "== loadgen: 50,000 customers race for 10,000 coupons, 64 in flight, then verify"
"$BIN/loadgen" --url "$MEMORY" --admin-token "$ADMIN_TOKEN" --customers 50000 --coupons 10000 --concurrency 64 --quiet

echo; echo "### PostgreSQL (durable: each 201 is answered after its commit)"
PROMOTION=none run_wrk "axum hello-world POST, grab script" 256 "$BASELINE" examples/server/bench/grab.lua
hot=$(promotion "$POSTGRES" 10000000 "wrk: every grab wins")
PROMOTION=$hot run_wrk "grab on PostgreSQL, every one wins (201)" 256 "$POSTGRES" examples/server/bench/grab.lua
commits "$POSTGRES"
sleep 0.5 # the last in-flight grabs commit after wrk stops counting
echo "   grab events in the store: $(psql "${PG_SERVER_URL%/*}/$database" -Atc \
  "select count(*) from seckill.events where event_type = 'CouponGrabbed'")"

echo; echo "== loadgen on PostgreSQL: 50,000 customers race for 10,000 coupons, 256 in flight, then verify"
"$BIN/loadgen" --url "$POSTGRES" --admin-token "$ADMIN_TOKEN" --customers 50000 --coupons 10000 --concurrency 256 --quiet
