#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis: the
# real seckill-server on a throwaway PostgreSQL database, every operation,
# generated and mutated inputs. Fails on any 5xx, any answer that breaks the
# document (status code, content type, body or header schema), any request the
# document forbids that is not refused with a 4xx, or if the server dies or
# logs a panic.
#
# Not checked: positive_data_acceptance ("every request the schema allows
# succeeds"). Some rules cannot be said in JSON Schema: finishTime after
# publishTime, a schedule judged against the clock, a customer id's length in
# bytes, and an unknown promotion is a 404 whatever its id looks like.
#
#   pip install 'schemathesis==4.32.5'
#   tests/fuzz.sh          # 60 s of fuzzing (plus the build)
#   tests/fuzz.sh 300      # longer
#
# Needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# where this user may CREATE DATABASE, and psql. SCHEMATHESIS overrides the
# schemathesis command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
max_time="${1:-60}"
schemathesis="${SCHEMATHESIS:-schemathesis}"
command -v "$schemathesis" >/dev/null || {
  echo "schemathesis not found: pip install 'schemathesis==4.32.5' (or set SCHEMATHESIS)" >&2
  exit 2
}
command -v curl >/dev/null || { echo "curl not found: apt-get install -y curl" >&2; exit 2; }
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database="seckill_fuzz_$(date +%s)_$$"
database_url="${server_url%/*}/$database"

cargo build -q -p seckill-server --bin seckill-server
server="${CARGO_TARGET_DIR:-target}/debug/seckill-server"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"

psql "$server_url" -qc "CREATE DATABASE $database"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  psql "$server_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  rm -f "$log"
}
trap cleanup EXIT

# The admin token goes with every request, so fuzzing reaches the admin
# routes (and the ignored_auth check sees them refuse a missing or wrong one);
# no rate limit, or most of the run would be 429s.
admin_token="fuzz-admin-token-$$-$(date +%s)"
"$server" --bind "127.0.0.1:$port" --database-url "$database_url" --log warn \
  --admin-token "$admin_token" --rate-limit off >"$log" 2>&1 &
pid=$!
up=""
for _ in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then up=1; break; fi
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "FAIL: the server did not answer /healthz within 10 s" >&2
  cat "$log" >&2
  exit 1
fi

status=0
events='/query/promotions/{promotionId}/events'
# Every operation but the event stream, statefully: the document's links lead
# from a created promotion to grabbing from it, reading, updating and
# cancelling it. Any answer slower than 2 s fails (--max-response-time).
# One worker: with two, hypothesis calls ast.parse from two threads, which
# CPython 3.11 does not support ("AST constructor recursion depth mismatch").
"$schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $admin_token" \
  --checks all --exclude-checks positive_data_acceptance \
  --exclude-path "$events" --max-response-time 2 \
  --max-time "$max_time" --workers 1 || status=$?
# The event stream on its own, without the stateful phase: for a real
# promotion it never ends (a fuzzer would only wait for its own timeout), so
# here it gets the generated ids and malformed input only.
"$schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $admin_token" \
  --checks all --exclude-checks positive_data_acceptance \
  --include-path "$events" --phases examples,coverage,fuzzing --max-response-time 2 \
  --max-time 10 --workers 1 || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo "FAIL: the server died during fuzzing" >&2
  cat "$log" >&2
  status=1
elif grep -qi panicked "$log"; then
  echo "FAIL: the server panicked" >&2
  grep -i -A5 panicked "$log" >&2
  status=1
fi
exit "$status"
