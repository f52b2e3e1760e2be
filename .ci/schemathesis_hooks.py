"""Schemathesis hooks for .ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

One `before_call` hook, in every phase, does what Schemathesis suggests for data a document
cannot describe ("seed known IDs", "a `before_call` hook can give unique fields fresh values"):

- an operator names the account (`accountId` is required of operator keys, optional for account
  keys, so the document declares it optional): where the run's operator key would otherwise send
  none, the seeded account is named;
- a service or operation id that is well formed is replaced by the seeded one, since usage, holds
  and credit records must name one in the catalog;
- a webhook URL that is a string is replaced by a public https URL (the URL policy is code);
- service ids and member emails that are well formed are made unique, since a second service or
  member with the same id or email is refused;
- a credit record's `expiresAt` in the past (refused: a rule against the clock) is moved a month
  into the future;
- an `Idempotency-Key` gets the body's digest appended, so that a key Schemathesis draws again for
  another body does not turn every later request into 409 idempotency_conflict (the same key
  with the same body still replays).

Only values the document calls valid are replaced, by other valid values; Schemathesis revalidates
a case a hook changed, so a schema-violating request stays one and is still expected to fail.
"""

import datetime
import hashlib
import itertools
import json
import os
import re

import schemathesis

ACCOUNT = os.environ["ST_ACCOUNT_ID"]
SERVICE = os.environ["ST_SERVICE"]
OPERATION = os.environ["ST_OPERATION"]
WEBHOOK_URL = "https://hooks.example.com/credits"
SLUG = re.compile(r"[a-z0-9_-]{1,64}")

ACCOUNT_IN_QUERY = {"GET /v2/balance", "GET /v2/budgets", "GET /v2/members"}
ACCOUNT_IN_BODY = {
    "POST /v2/budgets",
    "POST /v2/credits",
    "POST /v2/members",
    "POST /v2/reservations",
    "POST /v2/usage",
}
SERVICE_IN_BODY = {"POST /v2/credits", "POST /v2/reservations", "POST /v2/usage"}
UNIQUE_EMAIL = {"POST /v2/members", "PATCH /v2/members/{id}"}

counter = itertools.count(1)


@schemathesis.hook
def before_call(context, case, kwargs):
    label = f"{case.method.upper()} {case.operation.path}"
    if label in ACCOUNT_IN_QUERY:
        query = case.query if isinstance(case.query, dict) else {}
        if query.get("accountId") is None:
            query["accountId"] = ACCOUNT
            case.query = query
    body = case.body
    if not isinstance(body, dict):
        return
    if label in ACCOUNT_IN_BODY and body.get("accountId", None) is None:
        body["accountId"] = ACCOUNT
    if label in SERVICE_IN_BODY and isinstance(body.get("service"), str) and SLUG.fullmatch(body["service"]):
        body["service"] = SERVICE
    if label == "POST /v2/usage" and isinstance(body.get("operation"), str) and SLUG.fullmatch(body["operation"]):
        body["operation"] = OPERATION
    if label == "POST /v2/webhook-endpoints" and isinstance(body.get("url"), str):
        body["url"] = WEBHOOK_URL
    if label == "POST /v2/services" and isinstance(body.get("id"), str) and SLUG.fullmatch(body["id"]):
        body["id"] = f"{body['id'][:52]}-u{next(counter)}"
    if label in UNIQUE_EMAIL and isinstance(body.get("email"), str) and len(body["email"]) < 240:
        body["email"] = f"u{next(counter)}-{body['email']}"
    if label == "POST /v2/credits" and isinstance(body.get("expiresAt"), str):
        try:
            at = datetime.datetime.fromisoformat(body["expiresAt"].replace("z", "Z"))
        except ValueError:
            at = None
        now = datetime.datetime.now(datetime.timezone.utc)
        if at is not None and at.tzinfo is not None and at <= now:
            body["expiresAt"] = (now + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook("before_call")
def idempotency_per_body(context, case, kwargs):
    headers = case.headers if isinstance(case.headers, dict) else None
    key = headers.get("Idempotency-Key") if headers else None
    if not isinstance(key, str) or not (1 <= len(key) <= 230) or not all(" " < c < "\x7f" for c in key):
        return
    digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode()).hexdigest()[:12]
    headers["Idempotency-Key"] = f"{key}-{digest}"
