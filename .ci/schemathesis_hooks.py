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
- a redelivery to an account's endpoint of another account's event (404, as SPEC section 3 wants
  of other accounts' objects, which Schemathesis would read as "the endpoint just created is not
  found") names an event of the endpoint's account instead, when the run has seen one, or else
  goes to an endpoint whose account has one; a redelivery to an operator endpoint (which gets
  every account's events) of an event that does not exist names one that does;
- a create sent again with the `Idempotency-Key` and body of one that succeeded (stateful
  scenarios repeat a step's request) gets a fresh key, when what it creates can be deleted: SPEC
  section 9 has the repeat replay the first answer, 201 and the object, even after the object was
  deleted, which the "created resource not found" check would read as a create that lost its
  object.

Only values the document calls valid are replaced, by other valid values; Schemathesis revalidates
a case a hook changed, so a schema-violating request stays one and is still expected to fail.
"""

import datetime
import json
import itertools
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
    if label in UNIQUE_EMAIL and isinstance(body.get("email"), str):
        email, prefix = body["email"], f"u{next(counter)}-"
        at = email.find("@")
        if len(email) + len(prefix) <= 254:
            body["email"] = prefix + email
        elif at > len(prefix):
            body["email"] = prefix + email[at - 1 :]
        elif at >= 1:
            # A long domain after a short local part: keep the prefix, shorten the domain from its
            # end to a valid one (a dot inside, not last) that fits.
            domain = email[at + 1 : at + 1 + 254 - len(prefix) - at - 1].rstrip(".")
            if "." in domain[1:]:
                body["email"] = prefix + email[:at] + "@" + domain
    if label == "POST /v2/credits" and isinstance(body.get("expiresAt"), str):
        try:
            at = datetime.datetime.fromisoformat(body["expiresAt"].replace("z", "Z"))
        except ValueError:
            at = None
        now = datetime.datetime.now(datetime.timezone.utc)
        if at is not None and at.tzinfo is not None and at <= now:
            body["expiresAt"] = (now + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


# Accounts of the endpoints and events the run has seen, for redeliveries; the seed account's
# event (written by .ci/schemathesis.sh) is known from the start.
endpoint_accounts = {}
event_accounts = {os.environ["ST_EVENT_ID"]: ACCOUNT}


@schemathesis.hook("after_call")
def remember_accounts(context, case, response):
    if response.status_code not in (200, 201):
        return
    try:
        data = response.json()
    except Exception:
        return
    items = data.get("data", [data]) if isinstance(data, dict) else []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if item["id"].startswith("whe_"):
            endpoint_accounts[item["id"]] = item.get("accountId")
        elif item["id"].startswith("evt_"):
            event_accounts[item["id"]] = item.get("accountId")


@schemathesis.hook("before_call")
def redeliver_own_event(context, case, kwargs):
    if case.method.upper() != "POST" or case.operation.path != "/v2/webhook-endpoints/{id}/redeliver":
        return
    body = case.body
    endpoint = (case.path_parameters or {}).get("id")
    if not isinstance(body, dict) or endpoint not in endpoint_accounts:
        return
    account = endpoint_accounts[endpoint]
    event = body.get("eventId")
    if not isinstance(event, str):
        return
    if account is None:
        # An operator endpoint gets every account's events: any event the run has seen will do.
        if event not in event_accounts:
            body["eventId"] = list(event_accounts)[-1]
        return
    if event_accounts.get(event) == account:
        return
    own = [e for e, a in event_accounts.items() if a == account]
    if own:
        body["eventId"] = own[-1]
        return
    # The endpoint's account has no event the run has seen (an account the run just created):
    # redeliver through an endpoint whose account has one, so that the call still exercises
    # redelivery instead of answering the 404 Schemathesis would read as a lost endpoint.
    for other, other_account in reversed(list(endpoint_accounts.items())):
        theirs = [e for e, a in event_accounts.items() if a == other_account]
        if other_account is not None and theirs:
            case.path_parameters["id"] = other
            body["eventId"] = theirs[-1]
            return


# Creates of objects that a DELETE removes (a revoked API key stays readable, but is gone from
# use), and the (operation, key, body) of each that succeeded.
DELETABLE_CREATES = {
    "POST /v2/budgets",
    "POST /v2/members",
    "POST /v2/webhook-endpoints",
}
created = set()


def create_signature(case):
    label = f"{case.method.upper()} {case.operation.path}"
    key = (case.headers or {}).get("Idempotency-Key")
    if label not in DELETABLE_CREATES or not isinstance(key, str) or not 1 <= len(key) <= 255:
        return None
    return (label, key, json.dumps(case.body, sort_keys=True, default=str))


@schemathesis.hook("after_call")
def remember_creates(context, case, response):
    signature = create_signature(case)
    if signature is not None and 200 <= response.status_code < 300:
        created.add(signature)


@schemathesis.hook("before_call")
def fresh_key_for_repeated_create(context, case, kwargs):
    signature = create_signature(case)
    if signature is not None and signature in created:
        case.headers["Idempotency-Key"] = f"{signature[1][:240]}-r{next(counter)}"
