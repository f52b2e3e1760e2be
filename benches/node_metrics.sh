#!/usr/bin/env bash
# Goal: see inside a multi-node run on PostgreSQL: how many batches the leader runs and how
# large, how long its writer spends locking and writing, how often and how full the followers
# forward, as /metrics histograms count them, over a window in the middle of a hot run.
# Method: start `credits-bench --nodes NODES --scenarios SCENARIO` with BIN in the background;
# once its measured scenario starts, read every node's /metrics at WAIT s and again WINDOW s
# later; print, per node, the increase of every histogram's _sum and _count (seconds or counts
# over the window; divide by WINDOW for rates, sum by count for means), then the bench's row.
#
# Usage: benches/node_metrics.sh [BIN]        (BIN defaults to target/release/credits)
# Env:   NODES=3 SCENARIO=hot CONNS=64 ACCOUNTS=1000 WAIT=6 WINDOW=5
#        DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-target/release/credits}
NODES=${NODES:-3}; SCENARIO=${SCENARIO:-hot}; CONNS=${CONNS:-64}; ACCOUNTS=${ACCOUNTS:-1000}
WAIT=${WAIT:-6}; WINDOW=${WINDOW:-5}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -p credits-bench >&2
target/release/credits-bench --bin "$bin" --database-url "$DATABASE_URL" --nodes "$NODES" \
  --scenarios "$SCENARIO" -c "$CONNS" -d $((WAIT + WINDOW + 2)) --accounts "$ACCOUNTS" \
  > "$work/bench.txt" 2>&1 &
bench=$!
until grep -q "$SCENARIO with" "$work/bench.txt"; do
  kill -0 "$bench" 2>/dev/null || { cat "$work/bench.txt"; exit 1; }
  sleep 0.5
done
ports=$(grep -o "at 127.0.0.1:[0-9]*" "$work/bench.txt" | cut -d: -f2)
sleep "$WAIT"
for port in $ports; do curl -s "127.0.0.1:$port/metrics" > "$work/before_$port"; done
sleep "$WINDOW"
for port in $ports; do curl -s "127.0.0.1:$port/metrics" > "$work/after_$port"; done
wait "$bench"
for port in $ports; do
  echo "== node at port $port (increase over ${WINDOW} s)"
  join <(grep -E "_(sum|count) " "$work/before_$port" | sort) \
       <(grep -E "_(sum|count) " "$work/after_$port" | sort) |
    awk '{ d = $3 - $2; if (d > 0) printf "%s %.4f\n", $1, d }'
done
grep -E "^\| (scenario|$SCENARIO) " "$work/bench.txt"
