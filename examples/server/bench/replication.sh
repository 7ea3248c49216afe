#!/usr/bin/env bash
# The replication benchmark of docs/benchmarks.md: grabs on one hot
# promotion with Patroni's synchronous mode on, then off, alternating, in
# one run, through the release server and the load generator (each round a
# new promotion of CUSTOMERS coupons, every customer grabbing once; the
# load generator checks every answer against the store's counts).
#
# It needs a running Patroni cluster and HAProxy in front of it, as in
# docs/deployment.md (examples/server/tests/patroni/mod.rs writes such
# configurations), and switches `synchronous_mode` with patronictl:
#
#   PATRONI_CONFIG=/path/node1.yml \
#   SECKILL_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:15000/postgres \
#     examples/server/bench/replication.sh          # 3 rounds of 60,000 grabs
#
# Run as a user that can run patronictl with that configuration (the
# script uses `runuser -u postgres` when run as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."

: "${PATRONI_CONFIG:?the path of a Patroni node's configuration}"
: "${SECKILL_DATABASE_URL:?HAProxy's URL of the primary}"
ROUNDS="${ROUNDS:-3}"
CUSTOMERS="${CUSTOMERS:-60000}"
CONCURRENCY="${CONCURRENCY:-256}"
PORT="${PORT:-17100}"
TOKEN="replication-bench-token-0123456789abcdef"

patronictl_() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- patronictl -c "$PATRONI_CONFIG" "$@"
  else
    patronictl -c "$PATRONI_CONFIG" "$@"
  fi
}

# Sets synchronous_mode and waits until the primary shows it.
mode() {
  patronictl_ edit-config -s "synchronous_mode=$1" --force >/dev/null
  local names
  for _ in $(seq 1 150); do
    names="$(psql "$SECKILL_DATABASE_URL" -Atc 'show synchronous_standby_names' 2>/dev/null || true)"
    if { [ "$1" = true ] && [ -n "$names" ]; } || { [ "$1" = false ] && [ -z "$names" ]; }; then
      return
    fi
    sleep 0.2
  done
  echo "synchronous_mode=$1 never took effect" >&2
  exit 1
}

cargo build --release -q -p seckill-server -p seckill-client
target/release/seckill-server --bind "127.0.0.1:$PORT" --database-url "$SECKILL_DATABASE_URL" \
  --admin-token "$TOKEN" --rate-limit off --log warn &
server=$!
trap 'kill "$server" 2>/dev/null; mode true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done

for round in $(seq 1 "$ROUNDS"); do
  for synchronous in true false; do
    mode "$synchronous"
    echo "== round $round, synchronous_mode=$synchronous"
    target/release/loadgen --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN" \
      --customers "$CUSTOMERS" --coupons "$CUSTOMERS" --concurrency "$CONCURRENCY" |
      grep -E 'req/s|p50|checks'
  done
done
