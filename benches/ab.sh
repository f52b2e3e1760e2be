#!/usr/bin/env bash
# Goal: tell whether a change to the service makes the hot-account benchmark (or another
# scenario: SCENARIO=spread) faster or slower on
# a box whose single runs of one binary vary by a third (6.5k to 9.6k/s on 2026-12-06): only
# pairs of runs taken back to back compare, and only many pairs say which way a few percent go.
# Method: PAIRS pairs of credits-bench SCENARIO runs on PostgreSQL, binary A and binary B, the order
# inside a pair alternating (AB, BA, AB, ...) so that neither always runs on the warmer box; each
# run on a fresh database (credits-bench creates and drops it). Prints every pair, then the mean
# of each side, the median of the per-pair ratios B/A and in how many pairs B was faster.
#
# Usage: benches/ab.sh BIN_A BIN_B [PAIRS]       (PAIRS defaults to 6; about 1.5 min a pair)
#        Build each side first and copy it aside, e.g.
#          git stash; cargo build --release -p credits; cp target/release/credits /tmp/credits-a
#          git stash pop; cargo build --release -p credits; cp target/release/credits /tmp/credits-b
#        A BIN may be a script that execs a binary (to set environment variables).
# Env:   SCENARIO=hot NODES=3 SECS=10 CONNS=64 ACCOUNTS=1000
#        DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 2 ] || { sed -n 11,17p "$0"; exit 2; }
a=$1; b=$2; pairs=${3:-6}
SCENARIO=${SCENARIO:-hot}; NODES=${NODES:-3}; SECS=${SECS:-10}; CONNS=${CONNS:-64}; ACCOUNTS=${ACCOUNTS:-1000}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }; done
cargo build --release -p credits-bench >&2

run() {  # run BIN: prints "requests/s PostgreSQL-cores" of one SCENARIO run, or "0 0" on failure
  local out
  out=$(target/release/credits-bench --bin "$1" --database-url "$DATABASE_URL" --nodes "$NODES" \
    --scenarios "$SCENARIO" -c "$CONNS" -d "$SECS" --accounts "$ACCOUNTS" 2>&1) || true
  if ! grep -q "Balance check: OK" <<<"$out"; then
    echo "run of $1 failed or its balances did not check:" >&2
    tail -5 <<<"$out" >&2
    echo "0 0"; return
  fi
  awk -F'|' -v s="$SCENARIO" '$2 == " " s " " { gsub(/[ ,]/, "", $5); gsub(/ /, "", $20); print $5, $20 }' <<<"$out"
}

echo "| pair | A/s | B/s | B/A | PostgreSQL cores A | B |"
echo "|---:|---:|---:|---:|---:|---:|"
results=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then ra=$(run "$a"); rb=$(run "$b"); else rb=$(run "$b"); ra=$(run "$a"); fi
  read -r ta ca <<<"$ra"; read -r tb cb <<<"$rb"
  results+=("$ta $tb")
  awk -v i="$i" -v ta="$ta" -v tb="$tb" -v ca="$ca" -v cb="$cb" 'BEGIN {
    printf "| %d | %d | %d | %s | %s | %s |\n", i, ta, tb, (ta > 0 ? sprintf("%.3f", tb / ta) : "-"), ca, cb }'
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
pairs = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
pairs = [(a, b) for a, b in pairs if a > 0 and b > 0]
if not pairs:
    sys.exit("no pair completed")
ratios = sorted(b / a for a, b in pairs)
print(f"\nA: {sys.argv[1]}\nB: {sys.argv[2]}")
print(f"means: A {statistics.mean(a for a, _ in pairs):,.0f}/s, B {statistics.mean(b for _, b in pairs):,.0f}/s; "
      f"median B/A {statistics.median(ratios):.3f}; B faster in {sum(r > 1 for r in ratios)} of {len(ratios)} pairs")
' "$a" "$b"
