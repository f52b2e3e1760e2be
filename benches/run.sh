#!/usr/bin/env bash
# Goal: one command that measures the credits service and its baselines in the same run, on the
# same machine, so that ratios between them mean something.
# Method: build the release binaries; wait (up to MAX_WAIT s) until the 1-min load average is
# below MAX_LOAD; run the hand-written baselines from a fresh copy of shared/bench (SQLite via
# Python, PostgreSQL via pgbench, optionally Redis via redis-benchmark and the C group-commit
# engine of sys/group_commit.c), then credits-bench
# (hot, spread, batch 100/1000, healthz); print every result. Nothing outside /tmp/bench is
# written except the cargo target dir; PostgreSQL gets its own role/db from the baseline script.
#
# Usage: benches/run.sh            (about 8 minutes)
# Env:   SECS=15 CONNS=64 ACCOUNTS=10000 SQLITE_SECS=10 PG_SECS=15 PG_VARIANTS="txn cte"
#        REDIS=1 REDIS_SECS=15 GROUP_COMMIT=1 MAX_LOAD=1.0 MAX_WAIT=600 SHARED=/work/shared/bench
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SECS=${SECS:-15}; CONNS=${CONNS:-64}; ACCOUNTS=${ACCOUNTS:-10000}
SQLITE_SECS=${SQLITE_SECS:-10}; PG_SECS=${PG_SECS:-15}; PG_VARIANTS=${PG_VARIANTS:-"txn cte"}
REDIS=${REDIS:-1}; REDIS_SECS=${REDIS_SECS:-15}; GROUP_COMMIT=${GROUP_COMMIT:-1}
MAX_LOAD=${MAX_LOAD:-1.0}; MAX_WAIT=${MAX_WAIT:-600}
SHARED=${SHARED:-$(cd "$root/.." && pwd)/shared/bench}
[ -d "$SHARED" ] || SHARED=/work/shared/bench
work=/tmp/bench

# shellcheck source=benches/common.sh
. "$root/benches/common.sh"

section "build"
cargo build --release -p credits -p credits-bench

wait_for_idle

section "baselines: fresh copy of $SHARED in $work"
rm -rf "$work"; cp -r "$SHARED" "$work"
rm -f "$work"/results/*.txt          # the scripts append; keep only this run's lines

section "sqlite/run_sqlite.sh $SQLITE_SECS"
"$work/sqlite/run_sqlite.sh" "$SQLITE_SECS"

section "pg/run_pg.sh $PG_SECS \"$PG_VARIANTS\" on \"64\""
(cd "$work" && pg/run_pg.sh "$PG_SECS" "$PG_VARIANTS" on "64")

if [ "$REDIS" = 1 ]; then
  section "redis/run_redis.sh $REDIS_SECS 50"
  "$work/redis/run_redis.sh" "$REDIS_SECS" 50
fi

if [ "$GROUP_COMMIT" = 1 ]; then
  # The batch target's baseline: a single-threaded durable debit engine in C that fsyncs once
  # per N debits (no network, no indexes): what this disk allows for group commit.
  section "sys/group_commit: durable debits/s with one fdatasync per N debits"
  cc -O2 -o "$work/sys/group_commit" "$work/sys/group_commit.c"
  mkdir -p /var/tmp/baseline_fsync
  for n in 64 1000 4096; do
    timeout 30 "$work/sys/group_commit" /var/tmp/baseline_fsync "$n" 3
  done | tee "$work/results/group_commit.txt"
fi

section "credits-bench: hot, spread, batch 100/1000, healthz; $CONNS connections, $SECS s"
target/release/credits-bench --bin target/release/credits -c "$CONNS" -d "$SECS" \
  --accounts "$ACCOUNTS" --scenarios hot,spread,batch,healthz --out "$work/results/credits.md"

section "all results of this run"
for f in sqlite.txt pg_sc_on.txt redis.txt group_commit.txt; do
  [ -f "$work/results/$f" ] && { echo "--- $f"; cat "$work/results/$f"; }
done
echo "--- credits.md"
cat "$work/results/credits.md"
