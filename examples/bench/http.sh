#!/usr/bin/env bash
# The HTTP benchmark of docs/benchmarks.md ("HTTP"), in one run on this machine:
# a bare axum hello-world and the SecKill server (in memory) side by side,
# measured with wrk, then the load generator's verified race.
# Needs wrk (apt-get install -y wrk). Loopback only; every step is time-bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${CARGO_TARGET_DIR:=target}"
BIN="$CARGO_TARGET_DIR/release"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
SERVER=http://127.0.0.1:3000
BASELINE=http://127.0.0.1:3001

cargo build --release -q -p seckill-examples --bins
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

RUST_LOG=warn SECKILL_BIND=127.0.0.1:3000 "$BIN/seckill-server" & server=$!
"$BIN/http-baseline" 127.0.0.1:3001 >/dev/null & baseline=$!
trap 'kill "$server" "$baseline" 2>/dev/null || true' EXIT
sleep 1

promotion() { # coupons name -> id of an open promotion
  curl -sf -XPOST "$SERVER/admin/promotions/" -H 'content-type: application/json' \
    -d "{\"numberOfCoupons\":$1,\"discount\":0.5,\"publishTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"name\":\"$2\"}" |
    sed -E 's/.*"promotionId":"([^"]+)".*/\1/'
}
run_wrk() { # title url [script]
  echo; echo "== $1 (load $(cut -d' ' -f1 /proc/loadavg))"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency ${3:+-s "$3"} "$2" |
    grep -E 'Requests/sec|^ +(50|90|99)%|status'
}

run_wrk "axum hello-world" "$BASELINE/hello"
run_wrk "seckill-server GET /healthz" "$SERVER/healthz"
hot=$(promotion 10000000 "wrk: every grab wins")
sleep 1
PROMOTION=$hot run_wrk "grab, every one wins (201)" "$SERVER" examples/bench/grab.lua
sold=$(promotion 1 "wrk: sold out")
sleep 1
curl -sf -o /dev/null -XPOST "$SERVER/command/coupons/" -H 'content-type: application/json' \
  -d "{\"promotionId\":\"$sold\",\"customerId\":\"first\"}"
PROMOTION=$sold run_wrk "grab, sold out (410)" "$SERVER" examples/bench/grab.lua
echo; echo "== commits: $(curl -sf "$SERVER/metrics" | grep -E '^seckill_(commits|committed_commands)_total' | tr '\n' ' ')"

echo; echo "== loadgen: 50,000 customers race for 10,000 coupons, 64 in flight, then verify"
"$BIN/loadgen" --url "$SERVER" --customers 50000 --coupons 10000 --concurrency 64 --quiet
