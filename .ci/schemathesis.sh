#!/usr/bin/env bash
# Run Schemathesis (all default checks) against a locally started `credits serve`, with the
# settings in .ci/schemathesis.toml and the hook in .ci/schemathesis_hooks.py (seeded ids,
# per-operation statuses; see the comments there).
# Usage: .ci/schemathesis.sh [extra schemathesis run options]   (from the repo root; .ci/run runs it)
# Knobs: MAX_EXAMPLES (default 30), MAX_TIME in seconds (default 150), SEED (default 1), PORT.
set -euo pipefail
ROOT="${ROOT:-$(pwd)}"
PORT="${PORT:-18180}"
BASE="http://127.0.0.1:${PORT}"
ADMIN_KEY="${CREDITS_ADMIN_KEY:-test_admin_key_0123456789abcdef0123456789}"
MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
MAX_TIME="${MAX_TIME:-150}"
ST_VERSION=4.32.5
SEED="${SEED:-1}"
REPORT_DIR="${REPORT_DIR:-/tmp/schemathesis-report}"

if [ "$(schemathesis --version 2>/dev/null)" != "schemathesis, version $ST_VERSION" ]; then
  python3 -m pip install -q "schemathesis==$ST_VERSION"
fi
# `--workspace`: the features the test suite built the binary with, so CI compiles nothing here.
cargo build -q --workspace --bins --manifest-path "$ROOT/Cargo.toml"

DATA_DIR="$(mktemp -d /tmp/credits-st.XXXXXX)"
CREDITS_LISTEN="127.0.0.1:${PORT}" CREDITS_DATA_DIR="$DATA_DIR" CREDITS_ADMIN_KEY="$ADMIN_KEY" \
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/credits" serve >"$DATA_DIR/server.log" 2>&1 &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/healthz" >/dev/null || { echo "server did not start"; cat "$DATA_DIR/server.log"; exit 1; }

# Seed what .ci/schemathesis_hooks.py names: an account with credits and a usage, and a service with
# one operation (unit costs 1, so no quantity the document allows overflows a cost).
AUTH="Authorization: Bearer ${ADMIN_KEY}"
J='Content-Type: application/json'
ST_SERVICE=st-seed
ST_OPERATION=call
curl -sf -o /dev/null -X POST "$BASE/v2/services" -H "$AUTH" -H "$J" \
  -d "{\"id\":\"$ST_SERVICE\",\"name\":\"Schemathesis seed\",\"unitCost\":1,\"operations\":{\"$ST_OPERATION\":1}}"
ST_ACCOUNT_ID=$(curl -sf -X POST "$BASE/v2/accounts" -H "$AUTH" -H "$J" -d '{"name":"Seed","externalId":"seed-1"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -o /dev/null -X POST "$BASE/v2/credits" -H "$AUTH" -H "$J" \
  -d "{\"accountId\":\"$ST_ACCOUNT_ID\",\"amount\":1000,\"reference\":\"pay_seed_1\"}"
curl -sf -o /dev/null -X POST "$BASE/v2/usage" -H "$AUTH" -H "$J" -H 'Idempotency-Key: seed-usage-1' \
  -d "{\"accountId\":\"$ST_ACCOUNT_ID\",\"service\":\"$ST_SERVICE\",\"quantity\":3}"
ST_EVENT_ID=$(curl -sf "$BASE/v2/events?accountId=$ST_ACCOUNT_ID&limit=1" -H "$AUTH" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
# Read by the hook in .ci/schemathesis_hooks.py.
export ST_ACCOUNT_ID ST_SERVICE ST_OPERATION ST_EVENT_ID
export SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/.ci${PYTHONPATH:+:$PYTHONPATH}"

# Run from the report dir: schemathesis writes a .schemathesis/ replay cache into the cwd.
mkdir -p "$REPORT_DIR"; cd "$REPORT_DIR"
set +e
# Every operation is tested, DELETE /v2/api-keys/{id} included: revoking the bootstrap key the run
# authenticates with is refused (409 invalid_state), so the run keeps its credentials.
schemathesis --config-file "$ROOT/.ci/schemathesis.toml" run "$BASE/openapi.json" \
  -H "$AUTH" \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --report junit,ndjson,har \
  --report-dir "$REPORT_DIR" \
  "$@" | tee "$REPORT_DIR/output.txt"
rc=${PIPESTATUS[0]}
set -e
# The figures, in one line: operations tested, generated cases, seed, result.
operations=$(sed -n 's/^ *Tested: *//p' "$REPORT_DIR/output.txt" | tail -1)
cases=$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$REPORT_DIR/output.txt" | tail -1)
result=$(grep -E '^=+ .* in [0-9.]+s =+$' "$REPORT_DIR/output.txt" | tail -1 | tr -d '=' | sed 's/^ *//; s/ *$//')
echo "schemathesis $ST_VERSION: operations ${operations:-?}, generated cases ${cases:-?}, seed $SEED, max-examples $MAX_EXAMPLES: ${result:-no summary} (exit $rc)"
echo "reports in $REPORT_DIR, server log in $DATA_DIR/server.log"
exit $rc
