#!/usr/bin/env bash
# The replicas benchmark of docs/benchmarks.md ("Replicas"), in one run on
# this machine: 1, 2 and 3 `seckill-server` replicas on one PostgreSQL
# database (a fresh one for each N), with one wrk per replica at the same
# time and the same total load for every N. Two workloads per N:
#
#   A. one hot promotion of 10,000,000 coupons (never sells out): one owner
#      decides every grab, the other replicas forward theirs to it;
#   B. 100 promotions, each request grabbing in the next one: the owners
#      spread over the replicas.
#   C. (with haproxy installed) A again, through HAProxy in round robin: one
#      wrk, every request balanced on its own, as a deployment runs it; the
#      shares then come from each replica's own count of won grabs.
#
# It measures, per N and workload: durable grabs/s (201s, each answered after
# its commit, checked against the CouponGrabbed events in the store), each
# replica's share of the 201s, the forwarded share (seckill_forwarded_total
# over all answers), p99 per replica (wrk --latency), and the answers that
# were neither 201 nor 410 (5xx, 503 counted apart), plus socket errors.
#
#   apt-get install -y wrk                        # if missing
#   examples/server/bench/replicas.sh                    # 10 s a step, 120 connections in all
#   DURATION=20s CONNECTIONS=240 examples/server/bench/replicas.sh
#
# Each step starts with a 2 s warm-up (WARMUP) that is not counted, so the
# owners are claimed and the connections open: the figures are steady state.
# Connections are split evenly over the replicas (2 wrk threads each), so
# CONNECTIONS must divide by 2, 4 and 6. The server logs stay in LOG_DIR
# (default /tmp/seckill-replicas-bench); the script greps them for WARN/ERROR
# at the end. Uses the PostgreSQL server at DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); its databases are dropped at
# the end. Loopback only; every step is time-bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
: "${CARGO_TARGET_DIR:=target}"
BIN="$CARGO_TARGET_DIR/release"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-120}"
REPLICAS="${REPLICAS:-1 2 3}"
MAX_LOAD="${MAX_LOAD:-4}" # a step waits (up to 2 min) for the 1-minute load to fall below this
LOG_DIR="${LOG_DIR:-/tmp/seckill-replicas-bench}"
PG_SERVER_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SECRET="replicas-bench-cluster-secret-not-for-production"
FIRST_PORT=3101
database_prefix="seckill_replicas_bench_$$"

if (( CONNECTIONS % 12 != 0 )); then
  echo "CONNECTIONS=$CONNECTIONS must divide by 2, 4 and 6 (12, 120, 240, ...)" >&2
  exit 2
fi
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
cargo build --release -q -p seckill-server --bin seckill-server
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.wrk
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "postgres: $(psql "$PG_SERVER_URL" -Atc "select 'synchronous_commit=' || current_setting('synchronous_commit') || ' fsync=' || current_setting('fsync')")"
echo "wrk: $CONNECTIONS connections in all, split over the replicas, 2 threads per wrk; $DURATION per step after a $WARMUP warm-up"

LB_PORT=3100
pids=()
lb_pid=
databases=()
stop_replicas() {
  # SIGTERM: each replica hands its promotions over and exits.
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
stop_lb() {
  [ -n "$lb_pid" ] && { kill "$lb_pid" 2>/dev/null || true; wait "$lb_pid" 2>/dev/null || true; }
  lb_pid=
}
cleanup() {
  stop_lb
  stop_replicas
  for db in "${databases[@]}"; do
    psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  done
}
trap cleanup EXIT

url() { echo "http://127.0.0.1:$((FIRST_PORT + $1 - 1))"; } # replica number -> its URL
metric() { # replica series -> value (0 if absent), summed over label sets
  curl -sf "$(url "$1")/metrics" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { s += $2 } END { printf "%d", s }'
}
load() { cut -d' ' -f1 /proc/loadavg; }
settle() { # wait (bounded) until the last step's load has died down
  for _ in $(seq 1 120); do
    awk -v l="$(load)" -v max="$MAX_LOAD" 'BEGIN { exit !(l < max) }' && return
    sleep 1
  done
  echo "   (load still $(load) after 2 min: this step is disturbed)"
}

start_replicas() { # n database
  for i in $(seq 1 "$1"); do
    "$BIN/seckill-server" --bind "127.0.0.1:$((FIRST_PORT + i - 1))" --log warn \
      --database-url "${PG_SERVER_URL%/*}/$2" --advertise-url "$(url "$i")" \
      --cluster-secret "$SECRET" --admin-token "$SECRET" --rate-limit off \
      >"$LOG_DIR/n$1-replica$i.log" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 1 "$1"); do
    for _ in $(seq 1 100); do curl -sf "$(url "$i")/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf "$(url "$i")/healthz" >/dev/null || { echo "replica $i did not start" >&2; exit 1; }
  done
  # Heartbeats run every lease/3 (1 s): wait until each replica sees all the
  # others, or the first claims would all go to the replicas seen so far.
  for i in $(seq 1 "$1"); do
    for _ in $(seq 1 100); do (( $(metric "$i" seckill_replicas) == $1 )) && break; sleep 0.1; done
  done
}

promotion() { # replica coupons name -> id of an open promotion
  curl -sf -XPOST "$(url "$1")/admin/promotions/" -H 'content-type: application/json' -H "authorization: Bearer $SECRET" \
    -d "{\"numberOfCoupons\":$2,\"discount\":0.5,\"publishTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"name\":\"$3\"}" |
    sed -E 's/.*"promotionId":"([^"]+)".*/\1/'
}

grab_events() { # database promotion-ids(comma-separated) -> CouponGrabbed rows in their streams
  psql "${PG_SERVER_URL%/*}/$1" -Atc "select count(*) from events
    where aggregate_type = 'Promotion' and event_type = 'CouponGrabbed'
      and aggregate_id = any(string_to_array('$2', ','))"
}

wrk_all() { # n duration tag promotions: one wrk per replica, all at once
  local wrk_pids=()
  for i in $(seq 1 "$1"); do
    PROMOTIONS="$4" CUSTOMER_PREFIX="$3-r$i" wrk -t2 -c$((CONNECTIONS / $1)) -d"$2" --latency \
      -s examples/server/bench/grab.lua "$(url "$i")" >"$LOG_DIR/$3-r$i.wrk" 2>&1 &
    wrk_pids+=($!)
  done
  wait "${wrk_pids[@]}"
}

# One wrk output -> "201s 410s 503s other_non2xx socket_errors seconds p99"
# (other_non2xx: neither 2xx nor 410 nor 503, e.g. 500 or 429).
wrk_figures() {
  awk '
    /requests in/ { sub(/s,?$/, "", $4); seconds = $4 }
    /^ +99%/ { p99 = $2 }
    /Socket errors/ { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    /Non-2xx/ { non2xx = $NF }
    /^status 201:/ { won = $3 }
    /^status 410:/ { sold = $3 }
    /^status 503:/ { unavailable = $3 }
    END { printf "%d %d %d %d %d %s %s\n", won, sold, unavailable, non2xx - sold - unavailable, errors, seconds, p99 }
  ' "$1"
}

step() { # n database title tag promotions
  local n=$1 db=$2 tag=$4 promotions=$5 i
  settle
  echo; echo "== $n replica(s), $3 (load $(load))"
  wrk_all "$n" "$WARMUP" "$tag-warmup" "$promotions"
  sleep 0.5 # the warm-up's last in-flight grabs commit
  local events_before forwarded_before=() commits_before=() figures=()
  events_before=$(grab_events "$db" "$promotions")
  for i in $(seq 1 "$n"); do
    forwarded_before[i]=$(metric "$i" seckill_forwarded_total)
    commits_before[i]=$(metric "$i" seckill_commits_total)
  done
  wrk_all "$n" "$DURATION" "$tag" "$promotions"
  sleep 0.5 # the measured run's last in-flight grabs commit before we count
  local won=0 answers=0 forwarded=0 rate=0 bad=0 unavailable=0 errors=0
  for i in $(seq 1 "$n"); do
    figures[i]=$(wrk_figures "$LOG_DIR/$tag-r$i.wrk")
    read -r w s u o e sec _ <<<"${figures[i]}"
    won=$((won + w)); answers=$((answers + w + s + u + o))
    bad=$((bad + u + o)); unavailable=$((unavailable + u)); errors=$((errors + e))
    rate=$(awk -v r="$rate" -v w="$w" -v t="$sec" 'BEGIN { printf "%.0f", r + w / t }')
    forwarded=$((forwarded + $(metric "$i" seckill_forwarded_total) - forwarded_before[i]))
  done
  local events=$(($(grab_events "$db" "$promotions") - events_before))
  printf '   total: %s durable grabs/s (%d 201s), forwarded share %s, 5xx or other errors %d (503: %d), socket errors %d\n' \
    "$rate" "$won" "$(awk -v f="$forwarded" -v a="$answers" 'BEGIN { printf "%.1f %%", a ? 100 * f / a : 0 }')" \
    "$bad" "$unavailable" "$errors"
  echo "   store: $events CouponGrabbed events $( ((events >= won)) && echo "≥ $won 201s: ok" || echo "< $won 201s: FAILED")"
  for i in $(seq 1 "$n"); do
    read -r w s u o e _ p99 <<<"${figures[i]}"
    printf '   replica %d: %d 201s (%s of them), p99 %s, 503 %d, other errors %d, socket errors %d, owns %d promotion(s), %d commits\n' \
      "$i" "$w" "$(awk -v w="$w" -v t="$won" 'BEGIN { printf "%.1f %%", t ? 100 * w / t : 0 }')" \
      "$p99" "$u" "$o" "$e" "$(metric "$i" seckill_owned_promotions)" "$(($(metric "$i" seckill_commits_total) - commits_before[i]))"
  done
}

start_lb() { # n: HAProxy on LB_PORT, round robin per request over n replicas
  local config="$LOG_DIR/haproxy-n$1.cfg" i
  {
    echo "global"; echo "  maxconn 4096"
    echo "defaults"; echo "  mode http"; echo "  timeout connect 2s"; echo "  timeout client 30s"; echo "  timeout server 30s"
    echo "  option http-keep-alive"; echo "  http-reuse always"
    echo "frontend grabs"; echo "  bind 127.0.0.1:$LB_PORT"; echo "  default_backend replicas"
    echo "backend replicas"; echo "  balance roundrobin"
    for i in $(seq 1 "$1"); do echo "  server r$i 127.0.0.1:$((FIRST_PORT + i - 1)) maxconn 512"; done
  } >"$config"
  haproxy -f "$config" -db >"$LOG_DIR/haproxy-n$1.log" 2>&1 &
  lb_pid=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$LB_PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "haproxy did not start" >&2; exit 1
}

step_lb() { # n database tag promotion: workload C
  local n=$1 db=$2 tag=$3 i before=() events_before
  settle
  echo; echo "== $n replica(s), C: one hot promotion through HAProxy round robin (load $(load))"
  start_lb "$n"
  PROMOTIONS="$4" CUSTOMER_PREFIX="$tag-warmup" wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" -s examples/server/bench/grab.lua \
    "http://127.0.0.1:$LB_PORT" >/dev/null 2>&1
  sleep 0.5
  events_before=$(grab_events "$db" "$4")
  for i in $(seq 1 "$n"); do before[i]=$(metric "$i" 'seckill_grabs_total{outcome="won"}'); done
  PROMOTIONS="$4" CUSTOMER_PREFIX="$tag" wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s examples/server/bench/grab.lua \
    "http://127.0.0.1:$LB_PORT" >"$LOG_DIR/$tag.wrk" 2>&1
  sleep 0.5
  read -r w s u o e sec p99 <<<"$(wrk_figures "$LOG_DIR/$tag.wrk")"
  printf '   total: %s durable grabs/s (%d 201s), p99 %s, 5xx or other errors %d (503: %d), socket errors %d\n' \
    "$(awk -v w="$w" -v t="$sec" 'BEGIN { printf "%.0f", w / t }')" "$w" "$p99" "$((u + o))" "$u" "$e"
  local events=$(($(grab_events "$db" "$4") - events_before))
  echo "   store: $events CouponGrabbed events $( ((events >= w)) && echo "≥ $w 201s: ok" || echo "< $w 201s: FAILED")"
  for i in $(seq 1 "$n"); do
    local mine=$(($(metric "$i" 'seckill_grabs_total{outcome="won"}') - before[i]))
    printf '   replica %d: %d 201s (%s of them)\n' "$i" "$mine" \
      "$(awk -v m="$mine" -v t="$w" 'BEGIN { printf "%.1f %%", t ? 100 * m / t : 0 }')"
  done
  stop_lb
}

for n in $REPLICAS; do
  db="${database_prefix}_$n"
  psql "$PG_SERVER_URL" -qc "CREATE DATABASE $db"
  databases+=("$db")
  echo; echo "### $n replica(s) on database $db"
  start_replicas "$n" "$db"

  hot=$(promotion 1 10000000 "replicas bench: one hot promotion")
  step "$n" "$db" "A: one hot promotion" "n$n-hot" "$hot"

  many=()
  for k in $(seq 1 100); do many+=("$(promotion $(((k - 1) % n + 1)) 10000000 "replicas bench: one of 100")"); done
  step "$n" "$db" "B: 100 promotions" "n$n-many" "$(IFS=,; echo "${many[*]}")"

  if command -v haproxy >/dev/null; then
    hot_lb=$(promotion 1 10000000 "replicas bench: one hot promotion behind HAProxy")
    step_lb "$n" "$db" "n$n-lb" "$hot_lb"
  else
    echo; echo "== C skipped: haproxy is missing (apt-get install -y haproxy)"
  fi

  stop_replicas
done

echo; echo "### server logs ($LOG_DIR): WARN/ERROR lines"
grep -cE 'WARN|ERROR' "$LOG_DIR"/*.log || true
grep -hE 'WARN|ERROR' "$LOG_DIR"/*.log | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -20 || true
