#!/usr/bin/env bash
# Goal: one command that says how credits on PostgreSQL, with one node and with several nodes
# sharing the database, compares on a HOT account with the hand-written PostgreSQL debit of
# shared/bench/pg, all measured in the same run on the same machine so that the ratios mean
# something.
# Method: build the release binaries; wait (up to MAX_WAIT s) until the 1-min load average is
# below MAX_LOAD; copy shared/bench to /tmp/bench-pg and run `pg/run_pg.sh SECS "cte txn" on
# "CONNS"` (HOT, every client on one credit row, and SPREAD over 10,000; it creates its own
# role/db bench/ledger_bench); then credits-bench --scenarios hot,spread on a fresh database of
# DATABASE_URL's server with 1 node and with NODES nodes; print a table of throughput for each
# of the two loads and the ratios credits / baseline. Writes only /tmp/bench-pg and the cargo target dir; the credits databases
# are created and dropped by credits-bench.
#
# Usage: benches/pg_nodes.sh         (about 6 minutes with the defaults)
# Env:   SECS=15 CONNS=64 NODES=3 ACCOUNTS=10000 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
#        MAX_LOAD=1.0 MAX_WAIT=60 SHARED=/work/shared/bench
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SECS=${SECS:-15}; CONNS=${CONNS:-64}; NODES=${NODES:-3}; ACCOUNTS=${ACCOUNTS:-10000}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
MAX_LOAD=${MAX_LOAD:-1.0}; MAX_WAIT=${MAX_WAIT:-60}
SHARED=${SHARED:-$(cd "$root/.." && pwd)/shared/bench}
[ -d "$SHARED" ] || SHARED=/work/shared/bench
work=/tmp/bench-pg

# shellcheck source=benches/common.sh
. "$root/benches/common.sh"

build_and_start_postgres

wait_for_idle

section "baseline: pg/run_pg.sh $SECS \"cte txn\" on \"$CONNS\" (fresh copy of $SHARED in $work)"
rm -rf "$work"; cp -r "$SHARED" "$work"
rm -f "$work"/results/*.txt          # the script appends; keep only this run's lines
(cd "$work" && pg/run_pg.sh "$SECS" "cte txn" on "$CONNS")

bench() {  # bench NODES: credits-bench hot on a fresh PostgreSQL database with NODES nodes
  section "credits-bench: PostgreSQL, $1 node(s), hot and spread, $CONNS connections, $SECS s"
  local status=0
  target/release/credits-bench --bin target/release/credits --database-url "$DATABASE_URL" \
    --nodes "$1" --scenarios hot,spread -c "$CONNS" -d "$SECS" --accounts "$ACCOUNTS" \
    --out "$work/results/credits_pg_$1node.md" || status=$?
  [ "$status" = 0 ] || echo "credits-bench with $1 node(s) exited $status"
}
bench 1
bench "$NODES"

section "summary"
python3 - "$root/benches" "$work/results" "$CONNS" "$NODES" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import results as read_back
results, conns, nodes = sys.argv[2], sys.argv[3], sys.argv[4]
baseline_text = read_back.read(f"{results}/pg_sc_on.txt")
baseline = lambda variant, mode: read_back.baseline(baseline_text, variant, mode, conns)
credits = lambda n, scenario: read_back.credits(
    read_back.read(f"{results}/credits_pg_{n}node.md"), scenario)

ratio = lambda a, b: f"{a[0] / b[0]:.2f}x" if a and b and b[0] else "-"
for mode, title in (("hot", "hot account"), ("spread", "spread over many accounts")):
    rows = [(f"PostgreSQL one-statement debit (cte), {conns} clients", baseline("cte", mode)),
            (f"PostgreSQL BEGIN/UPDATE/INSERT/COMMIT (txn), {conns} clients", baseline("txn", mode))]
    ones = [(f"credits on PostgreSQL, 1 node, {conns} connections", credits(1, mode)),
            (f"credits on PostgreSQL, {nodes} nodes, {conns} connections", credits(nodes, mode))]
    cte, txn = rows[0][1], rows[1][1]
    print(f"\n| {title} | per second | p50/p99 ms | check | errors | / cte | / txn |")
    print("|---|---:|---|---|---|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r[0]:,.0f} | {r[1]} | {r[2]} | - | | |" if r else f"| {name} | missing | | | | | |")
    for name, r in ones:
        if r:
            print(f"| {name} | {r[0]:,.0f} | {r[1]} | {r[2]} | {r[3]} | {ratio(r, cte)} | {ratio(r, txn)} |")
        else:
            print(f"| {name} | missing (see above) | | | | | |")
print("\nBaseline: median per-second TPS of pgbench; credits: mean requests/s over the measured window.")
EOF
echo
echo "Reports: $work/results/credits_pg_1node.md, $work/results/credits_pg_${NODES}node.md, $work/results/pg_sc_on.txt"
