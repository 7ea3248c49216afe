#!/usr/bin/env bash
# The fairness benchmark of docs/benchmarks.md ("Fairness"): one bot with
# 200 connections from 127.0.0.2 grabbing with fresh customer ids as fast as
# it can, against 1,000 people each grabbing once from their own loopback
# address at a random moment of the first second, for 500 coupons. Run
# twice: against a server without rate limits, then with the defaults.
#
#   examples/server/bench/fairness.sh
#
# Then fairness against latency (examples/client/src/bin/draw_fairness.rs):
# 1,000 people, half of them 150 ms farther away, for 500 coupons, first
# come and then as a draw, ROUNDS times (default 3).
#
# In memory, loopback only, a few seconds a run. The server is a release
# build; the clients a debug one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
: "${CARGO_TARGET_DIR:=target}"
PORT="${PORT:-3100}"
TOKEN="fairness-bench-admin-token-$$"

cargo build --release -q -p seckill-server --bin seckill-server
cargo build -q -p seckill-client --bin fairness --bin draw_fairness
ROUNDS="${ROUNDS:-3}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

run() { # title server-flags...
  local title="$1"; shift
  "$CARGO_TARGET_DIR/release/seckill-server" --bind "127.0.0.1:$PORT" --log warn \
    --admin-token "$TOKEN" "$@" & pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  echo; echo "== $title"
  "$CARGO_TARGET_DIR/debug/fairness" --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN"
  curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^seckill_rate_limited_total' || true
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

run "without rate limits (--rate-limit off)" --rate-limit off
run "with the default rate limits"

"$CARGO_TARGET_DIR/release/seckill-server" --bind "127.0.0.1:$PORT" --log warn \
  --admin-token "$TOKEN" & pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
for round in $(seq 1 "$ROUNDS"); do
  echo; echo "== against latency, round $round: first come, then a draw (default rate limits)"
  "$CARGO_TARGET_DIR/debug/draw_fairness" --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN"
done
