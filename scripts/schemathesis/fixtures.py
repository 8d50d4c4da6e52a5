"""Sets up the ids the schemathesis hooks hand out, on a fresh service, and prints them as shell
assignments: an event, seats in each status with their holders, and finished jobs.

Usage: fixtures.py BASE_URL   (waits up to 60 s for /health to say the API and a worker are up)

With SCHEMATHESIS_TOKEN_CMD set (a service in jwt mode: the command is `api token`), the event
is created with an admin token, each hold and reserve carries its user's token, and the tokens
are printed too (SCHEMATHESIS_FIXTURE_TOKENS, `user=token` pairs), for the hooks.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = sys.argv[1]


TOKEN_CMD = os.environ.get("SCHEMATHESIS_TOKEN_CMD")
TOKENS = {}


def token(sub, admin=False):
    """A token of `sub` minted by the service's own `api token`, or None in none mode."""
    if not TOKEN_CMD:
        return None
    key = (sub, admin)
    if key not in TOKENS:
        args = TOKEN_CMD.split() + ["--sub", sub, "--ttl", "2h"] + (["--admin"] if admin else [])
        TOKENS[key] = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    return TOKENS[key]


def call(method, path, body=None, bearer=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_healthy():
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = call("GET", "/health")
            if status == 200:
                return
        except (OSError, ValueError) as error:
            body = error
        if time.monotonic() > deadline:
            sys.exit(f"the service did not become healthy within 60 s: {body}")
        time.sleep(0.2)


def finished(job):
    status, body = call("GET", f"/seats/job/{job}/status?wait=10")
    if status != 200 or body.get("status") != "completed":
        sys.exit(f"job {job} did not complete: {status} {body}")
    return body


def main():
    wait_healthy()
    status, event = call("POST", "/events/create", {"name": "schemathesis", "totalSeats": 20},
                         bearer=token("schemathesis-admin", admin=True))
    if status != 201:
        sys.exit(f"cannot create the fixture event: {status} {event}")
    event_id = event["id"]
    holder, reserver = str(uuid.uuid4()), str(uuid.uuid4())
    held, reserved = f"{event_id}:2", f"{event_id}:3"
    jobs = []
    for seat, user in ((held, holder), (reserved, reserver)):
        status, body = call("POST", "/seats/hold", {"id": seat, "UUID": user}, bearer=token(user))
        if status != 202:
            sys.exit(f"cannot hold {seat}: {status} {body}")
        finished(body["jobId"])
        jobs.append(body["jobId"])
    status, body = call("POST", "/seats/reserve", {"id": reserved, "UUID": reserver},
                        bearer=token(reserver))
    if status != 202:
        sys.exit(f"cannot reserve {reserved}: {status} {body}")
    finished(body["jobId"])
    jobs.append(body["jobId"])
    # (seat, user) pairs: Available, On hold by `holder`, Reserved by `reserver`.
    pairs = [f"{event_id}:1={holder}", f"{held}={holder}", f"{reserved}={reserver}"]
    print(f"SCHEMATHESIS_FIXTURE_EVENT={event_id}")
    print(f"SCHEMATHESIS_FIXTURE_SEATS='{' '.join(pairs)}'")
    print(f"SCHEMATHESIS_FIXTURE_JOBS='{' '.join(jobs)}'")
    users = [f"{user}={token(user)}" for user in (holder, reserver)] if TOKEN_CMD else []
    print(f"SCHEMATHESIS_FIXTURE_TOKENS='{' '.join(users)}'")


main()
