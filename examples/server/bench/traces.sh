#!/usr/bin/env bash
# The trace benchmark of docs/benchmarks.md ("traces"), in one run: winning
# grabs over HTTP, in memory (the fastest path, so the largest share for
# tracing), on servers that differ only in tracing: none (`off`), OTLP at
# 1 % and at 100 % sampling to a local sink (examples/otlp_sink.rs) that
# decodes and counts the spans, and, with BEFORE=<binary>, the build
# before tracing existed. Rounds alternate the servers, so drift on this
# noisy machine falls on all of them alike.
#
#   apt-get install -y wrk                               # if missing
#   examples/server/bench/traces.sh                      # 3 rounds of 10 s a server
#   BEFORE=/tmp/seckill-server-before ROUNDS=4 DURATION=8s examples/server/bench/traces.sh
#
# Loopback only, ports below 32768; every step is time-bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
: "${CARGO_TARGET_DIR:=target}"
BIN="$CARGO_TARGET_DIR/release"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
BEFORE="${BEFORE:-}"
SINK=127.0.0.1:4318

cargo build --release -q -p seckill-server --bin seckill-server --example otlp_sink
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
ADMIN_TOKEN="bench-admin-token-$$"
"$BIN/examples/otlp_sink" "$SINK" & pids+=($!)
declare -A port=([off]=3021 [ratio-0.01]=3022 [ratio-1]=3023)
names=(off ratio-0.01 ratio-1)
serve() { # binary port flags...
  local binary=$1 at=$2
  shift 2
  "$binary" --bind "127.0.0.1:$at" --log warn --admin-token "$ADMIN_TOKEN" --rate-limit off "$@" & pids+=($!)
}
if [ -n "$BEFORE" ]; then
  port[before]=3020
  names=(before "${names[@]}")
  serve "$BEFORE" 3020
fi
serve "$BIN/seckill-server" 3021
serve "$BIN/seckill-server" 3022 --otlp-endpoint "http://$SINK" --trace-sample-ratio 0.01
serve "$BIN/seckill-server" 3023 --otlp-endpoint "http://$SINK" --trace-sample-ratio 1
for name in "${names[@]}"; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:${port[$name]}/healthz" >/dev/null && break; sleep 0.1; done
done

promotion() { # url -> id of an open promotion of 10,000,000 coupons
  curl -sf -XPOST "$1/admin/promotions/" -H 'content-type: application/json' -H "authorization: Bearer $ADMIN_TOKEN" \
    -d "{\"numberOfCoupons\":10000000,\"discount\":0.5,\"publishTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"name\":\"traces\"}" |
    sed -E 's/.*"promotionId":"([^"]+)".*/\1/'
}
spans() { curl -sf "http://$SINK/stats" | cut -d' ' -f2; }

for round in $(seq 1 "$ROUNDS"); do
  for name in "${names[@]}"; do
    url="http://127.0.0.1:${port[$name]}"
    id=$(promotion "$url")
    before_spans=$(spans)
    result=$(PROMOTION=$id CUSTOMER_PREFIX="r$round" wrk -t2 -c64 -d"$DURATION" --latency -s examples/server/bench/grab.lua "$url")
    sleep 1.5 # the last batch of spans reaches the sink
    rate=$(grep 'Requests/sec' <<<"$result" | awk '{print $2}')
    p99=$(grep -E '^ +99%' <<<"$result" | awk '{print $2}')
    won=$(grep -oE 'status 201: [0-9]+' <<<"$result" || true)
    echo "round $round  $(printf '%-11s' "$name") $rate grabs/s  p99 $p99  $won  spans exported $(( $(spans) - before_spans ))"
  done
done
echo "export failures: $(for name in "${names[@]}"; do curl -sf "http://127.0.0.1:${port[$name]}/metrics" -H "authorization: Bearer $ADMIN_TOKEN" | grep -E '^seckill_trace_export_failures_total' || true; done | tr '\n' ' ')"
