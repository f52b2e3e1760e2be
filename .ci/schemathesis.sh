#!/usr/bin/env bash
# Run Schemathesis (all default checks) against a locally started `credits serve`.
# Usage: .ci/schemathesis.sh   (from the repo root; not yet part of .ci/run, see issue 8; needs `pip install schemathesis`, tested with 4.32.5)
set -euo pipefail
ROOT="${ROOT:-$(pwd)}"
PORT="${PORT:-18180}"
BASE="http://127.0.0.1:${PORT}"
ADMIN_KEY="${CREDITS_ADMIN_KEY:-test_admin_key_0123456789abcdef0123456789}"
MAX_EXAMPLES="${MAX_EXAMPLES:-50}"
MAX_TIME="${MAX_TIME:-300}"
SEED="${SEED:-1}"
REPORT_DIR="${REPORT_DIR:-/tmp/schemathesis-report}"

command -v schemathesis >/dev/null || python3 -m pip install -q 'schemathesis>=4,<5'
cargo build -q -p credits --manifest-path "$ROOT/Cargo.toml"

DATA_DIR="$(mktemp -d /tmp/credits-st.XXXXXX)"
CREDITS_LISTEN="127.0.0.1:${PORT}" CREDITS_DATA_DIR="$DATA_DIR" CREDITS_ADMIN_KEY="$ADMIN_KEY" \
  "$ROOT/target/debug/credits" serve >"$DATA_DIR/server.log" 2>&1 &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/healthz" >/dev/null || { echo "server did not start"; cat "$DATA_DIR/server.log"; exit 1; }

# Seed: an account, a purchase, a usage (the `api` service exists by default; create it if not).
AUTH="Authorization: Bearer ${ADMIN_KEY}"
J='Content-Type: application/json'
curl -s -o /dev/null -X POST "$BASE/v2/services" -H "$AUTH" -H "$J" -d '{"id":"api","name":"API","unitCost":1}'
AID=$(curl -sf -X POST "$BASE/v2/accounts" -H "$AUTH" -H "$J" -d '{"name":"Seed","externalId":"seed-1"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -o /dev/null -X POST "$BASE/v2/credits" -H "$AUTH" -H "$J" \
  -d "{\"accountId\":\"$AID\",\"amount\":1000,\"reference\":\"pay_seed_1\"}"
curl -sf -o /dev/null -X POST "$BASE/v2/usage" -H "$AUTH" -H "$J" -H 'Idempotency-Key: seed-usage-1' \
  -d "{\"accountId\":\"$AID\",\"service\":\"api\",\"quantity\":3}"

# Run from the report dir: schemathesis writes a .schemathesis/ replay cache into the cwd.
mkdir -p "$REPORT_DIR"; cd "$REPORT_DIR"
set +e
# DELETE /v2/api-keys/{id} is excluded: the fuzzer revokes `key_admin` (the bootstrap key) through it,
# after which every request gets 401 until restart. Set INCLUDE_KEY_DELETE=1 to test it anyway.
EXCLUDE=()
[ "${INCLUDE_KEY_DELETE:-0}" = 1 ] || EXCLUDE=(--exclude-path-regex '^/v2/api-keys/\{id\}$')
schemathesis run "$BASE/openapi.json" \
  -H "$AUTH" \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --report junit,ndjson,har \
  --report-dir "$REPORT_DIR" \
  "${EXCLUDE[@]}" \
  "$@"
rc=$?
set -e
echo "schemathesis exit code: $rc (reports in $REPORT_DIR, server log in $DATA_DIR/server.log)"
exit $rc
