#!/usr/bin/env bash
# Crash test, many rounds: each round sells on the real seckill-server over
# PostgreSQL, kill -9s it mid-load, restarts it on the same database and checks
# that no acknowledged grab is lost, nothing is oversold, nobody holds two
# coupons and the remaining count adds up (examples/server/tests/crash.rs).
#
#   tests/crash.sh                       # 20 rounds, debug build
#   tests/crash.sh 100                   # more rounds
#   CARGO_FLAGS=--release tests/crash.sh # the optimised server
#
# Needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Prints one line per round, then the totals:
#   crash rounds: N passed, M failed; kills survived: ...; violations: ...
# and exits non-zero if any round found a violation.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-20}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags.
SECKILL_CRASH_ROUNDS="$rounds" cargo test ${CARGO_FLAGS:-} -p seckill-server --test crash -- --nocapture >"$log" 2>&1
status=$?
grep -E '^(round |crash rounds:|test result|thread )' "$log" || cat "$log"
exit "$status"
