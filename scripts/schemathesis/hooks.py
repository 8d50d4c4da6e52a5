"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS=hooks by scripts/schemathesis.sh).

Generated ids are almost never ids that exist, so on their own they only reach the 404 and 422
answers. These hooks let the generator pick, besides what it made up, the ids of an event, seats
(Available, On hold, Reserved, each with its holder) and finished jobs that
scripts/schemathesis/fixtures.py created, so the 200/202/403/409 answers are checked against the
document too. Only values generated as valid are replaced (a value made to break the schema
must stay broken), and the choice is derived from the generated values, so a run is
reproducible from its seed.

"""

import json
import os
import random
import re
import time

import schemathesis
from schemathesis.core.parameters import ParameterLocation

EVENT = os.environ["SCHEMATHESIS_FIXTURE_EVENT"]
PAIRS = [pair.split("=", 1) for pair in os.environ["SCHEMATHESIS_FIXTURE_SEATS"].split()]
SEATS = [seat for seat, _ in PAIRS]
JOBS = os.environ["SCHEMATHESIS_FIXTURE_JOBS"].split()
# jwt mode: each fixture user's bearer token (empty in none mode).
TOKENS = dict(
    pair.split("=", 1) for pair in os.environ.get("SCHEMATHESIS_FIXTURE_TOKENS", "").split()
)
SEAT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:([1-9][0-9]{0,3}|10000)")

# path template -> (parameter, the real values it may take)
REAL_PATH_IDS = {
    "/events/{id}": ("id", [EVENT]),
    "/events/{id}/stream": ("id", [EVENT]),
    "/seats/list/{eventId}": ("eventId", [EVENT]),
    "/seats/get/{id}": ("id", SEATS),
    "/seats/job/{jobId}/status": ("jobId", JOBS),
}
SEAT_BODIES = {"/seats/hold", "/seats/reserve", "/seats/refresh", "/seats/hold/refresh",
               "/seats/release"}


def _pick(case, location, values):
    """One of `values` for half the cases, chosen from the generated data, so that a run stays
    reproducible from its seed; `None` for the other half (the generated value stays)."""
    chooser = random.Random(f"{location}:{case.path_parameters!r}:{case.query!r}:{case.body!r}")
    return chooser.choice(values) if chooser.random() < 0.5 else None


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    path = case.operation.path
    # A value made to violate the schema (negative mode) must stay invalid.
    real = REAL_PATH_IDS.get(path)
    if real is not None and not (meta and meta.is_negative_at(ParameterLocation.PATH)):
        name, values = real
        value = _pick(case, "path", values)
        if value is not None and name in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, name: value}
    if (
        path in SEAT_BODIES
        and isinstance(case.body, dict)
        and not (meta and meta.is_negative_at(ParameterLocation.BODY))
    ):
        # A seat with its own holder (success paths) or with another user (403).
        pair = _pick(case, "body", [(seat, user) for seat in SEATS for _, user in PAIRS])
        if pair is not None:
            case.body = {**case.body, "id": pair[0], "UUID": pair[1]}
    if (
        path == "/events/create"
        and isinstance(case.body, dict)
        and isinstance(case.body.get("endsAt"), str)
        and not (meta and meta.is_negative_at(ParameterLocation.BODY))
    ):
        # `endsAt` must be ahead of now and at most two years so, which a schema cannot say: a
        # generated date-time (almost always in the past) becomes one in that window, so the 201
        # path is checked; the window itself is tested by the e2e `lifecycle` tests.
        ahead = random.Random(repr(case.body)).randint(60, 365 * 86400)
        at = time.gmtime(time.time() + ahead)
        case.body = {**case.body, "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", at)}
    if TOKENS and path in SEAT_BODIES:
        # jwt mode: the token of the body's user when it is a fixture user (the success paths),
        # else a fixture user's token, so that another body UUID is a 403 user_mismatch.
        user = case.body.get("UUID") if isinstance(case.body, dict) else None
        bearer = (TOKENS.get(user) if isinstance(user, str) else None) or next(iter(TOKENS.values()))
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {bearer}"}
    return case


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but one kind of false alarm: "schema-valid request rejected" for a case
    that schemathesis itself generated with a component in negative mode (its coverage phase
    marks such a case positive as a whole, e.g. a default positive test with a header made
    invalid)."""
    meta = case.meta
    if type(failure).__name__ == "RejectedPositiveData" and meta is not None:
        if any(info.mode.is_negative for info in meta.components.values()):
            return False
    if type(failure).__name__ == "RejectedPositiveData" and _invalid_header(case, response):
        return False
    if type(failure).__name__ == "AcceptedNegativeData" and TOKENS and _only_uuid_left_out(case):
        return False
    return True


def _only_uuid_left_out(case):
    """jwt mode takes the user from the token, so a seat body may leave `UUID` out although the
    document (written for both modes) requires it: such a body (other properties are allowed) is
    not a wrongly accepted one."""
    body = case.body
    return (
        case.operation.path in SEAT_BODIES
        and isinstance(body, dict)
        and "UUID" not in body
        and isinstance(body.get("id"), str)
        and SEAT_ID.fullmatch(body["id"]) is not None
    )


# The documented patterns of the header parameters, to recognise the second false alarm: with
# two optional headers on an operation (the stream's Last-Event-ID and X-User-Id), the coverage
# phase marks the headers positive as a whole when it made one of them invalid.
HEADER_PATTERNS = {
    "last-event-id": re.compile(r"[0-9]{1,19}-[0-9]{1,19}"),
    "x-user-id": re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
}


def _invalid_header(case, response):
    """The 422 names a header whose value in the case breaks that header's documented pattern."""
    try:
        field = json.loads(response.content).get("field", "")
    except (ValueError, AttributeError):
        return False
    pattern = HEADER_PATTERNS.get(str(field).lower())
    if pattern is None:
        return False
    value = next((v for k, v in (case.headers or {}).items() if k.lower() == field.lower()), None)
    return value is not None and pattern.fullmatch(str(value).strip()) is None
