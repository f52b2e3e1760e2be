#!/usr/bin/env bash
# Goal: the hot-account ratio of credits on several PostgreSQL nodes to the hand-written
# one-statement debit of shared/bench/pg (cte), with how much it moves between runs: on this
# box single runs of either side vary by a third or more within the hour, so one pair of runs
# (benches/pg_nodes.sh) can land anywhere in that range.
# Method: ROUNDS rounds; each runs the baseline (`pg/run_pg.sh SECS cte on CONNS`, of which
# the hot line counts) and credits-bench --scenarios hot with NODES nodes on a fresh database,
# back to back, the order alternating between rounds (baseline first in odd rounds) so that
# neither side always runs on the warmer box. Prints each round's two rates and their ratio,
# then the median ratio, the range, and the ratio of the medians.
#
# Usage: benches/pg_rounds.sh         (about 1.5 minutes a round with the defaults)
# Env:   ROUNDS=5 SECS=15 CONNS=64 NODES=3 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
#        MAX_LOAD=1.0 MAX_WAIT=60 SHARED=/work/shared/bench BIN=target/release/credits
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUNDS=${ROUNDS:-5}; SECS=${SECS:-15}; CONNS=${CONNS:-64}; NODES=${NODES:-3}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
MAX_LOAD=${MAX_LOAD:-1.0}; MAX_WAIT=${MAX_WAIT:-60}
SHARED=${SHARED:-$(cd "$root/.." && pwd)/shared/bench}
[ -d "$SHARED" ] || SHARED=/work/shared/bench
BIN=${BIN:-target/release/credits}
work=/tmp/bench-pg-rounds

# shellcheck source=benches/common.sh
. "$root/benches/common.sh"

build_and_start_postgres

wait_for_idle
rm -rf "$work"; cp -r "$SHARED" "$work"; mkdir -p "$work/rounds"

baseline() {  # baseline ROUND: the cte debit, hot and spread; its results go to rounds/
  section "round $1: baseline pg/run_pg.sh $SECS cte on $CONNS"
  rm -f "$work"/results/*.txt
  (cd "$work" && pg/run_pg.sh "$SECS" cte on "$CONNS")
  cp "$work/results/pg_sc_on.txt" "$work/rounds/cte_$1.txt"
}
credits() {  # credits ROUND: credits-bench hot with NODES nodes
  section "round $1: credits-bench, PostgreSQL, $NODES node(s), hot, $CONNS connections, $SECS s"
  target/release/credits-bench --bin "$BIN" --database-url "$DATABASE_URL" --nodes "$NODES" \
    --scenarios hot -c "$CONNS" -d "$SECS" --accounts 1000 --out "$work/rounds/credits_$1.md" \
    || echo "credits-bench exited $?"
}
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then baseline "$round"; credits "$round"
  else credits "$round"; baseline "$round"; fi
done

section "summary"
python3 - "$root/benches" "$work/rounds" "$ROUNDS" "$NODES" "$CONNS" <<'EOF'
import statistics, sys
sys.path.insert(0, sys.argv[1])
import results as read_back
rounds, count, nodes, conns = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = []
for r in range(1, count + 1):
    cte = read_back.baseline(read_back.read(f"{rounds}/cte_{r}.txt"), "cte", "hot", conns)
    credits = read_back.credits(read_back.read(f"{rounds}/credits_{r}.md"), "hot")
    if cte is None or credits is None:
        print(f"round {r}: missing ({'baseline' if cte is None else 'credits'})")
        continue
    rows.append((r, cte[0], credits[0], credits[3], credits[2]))
print(f"| round | cte/s | credits, {nodes} nodes/s | errors | check | ratio |")
print("|---:|---:|---:|---:|---|---:|")
for r, cte, credits, errors, check in rows:
    print(f"| {r} | {cte:,.0f} | {credits:,.0f} | {errors} | {check} | {credits / cte:.2f}x |")
if rows:
    ratios = [c / b for _, b, c, _, _ in rows]
    ctes, creds = [b for _, b, _, _, _ in rows], [c for _, _, c, _, _ in rows]
    print(f"\nmedian ratio {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-"
          f"{max(ratios):.2f}x over {len(rows)} rounds); medians: cte {statistics.median(ctes):,.0f}/s,"
          f" credits {statistics.median(creds):,.0f}/s, ratio of medians "
          f"{statistics.median(creds) / statistics.median(ctes):.2f}x; {conns} clients each")
EOF
