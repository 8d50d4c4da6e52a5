#!/usr/bin/env python3
"""Each command's and each script's share of Redis's time, from a SLOWLOG that recorded every
command (slowlog-log-slower-than 0), for bench/efficiency.sh:
    slowlog_share.py REDIS_PORT LUA_DIR LABEL [JOBS]
Prints one line per command or script (those of 1% or more), by share: calls, total ms, mean µs
per call, share, and for a script the part of its time spent in the commands it runs (the rest
is the Lua itself); with JOBS (jobs finished meanwhile), the jobs per process.lua call."""

import hashlib
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lua_script  # noqa: E402


def resp(sock_file):
    line = sock_file.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = sock_file.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp(sock_file) for _ in range(n)]
    raise ValueError(f"unexpected reply {line!r}")


def command(port, *args):
    with socket.create_connection(("127.0.0.1", port)) as s:
        out = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        s.sendall(out)
        return resp(s.makefile("rb"))


def script_names(lua_dir):
    """SHA1 → file name, as the service loads them: the parts of common.lua the file uses, then
    the file (lua_script.py); as checkouts before that loaded them, the whole of common.lua; and
    the allow-oom heartbeat, loaded as it is."""
    common = open(os.path.join(lua_dir, "common.lua")).read()
    names = {}
    for name in os.listdir(lua_dir):
        if not name.endswith(".lua") or name == "common.lua":
            continue
        body = open(os.path.join(lua_dir, name)).read()
        for source in (lua_script.with_prelude(common, body), common + "\n" + body, body):
            names[hashlib.sha1(source.encode()).hexdigest()] = name
    return names


def main():
    port, lua_dir, label = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jobs = int(sys.argv[4]) if len(sys.argv) > 4 else None
    names = script_names(lua_dir)
    entries = command(port, "SLOWLOG", "GET", "-1")
    # Redis logs the commands a script runs too (client `?:0`), just before the script itself:
    # in id order, they belong to the next top-level entry.
    totals, inner, pending = {}, {}, 0
    for entry in sorted(entries, key=lambda e: e[0]):
        micros, args, client = entry[2], entry[3], entry[4] if len(entry) > 4 else ""
        if client == "?:0":
            pending += micros
            continue
        name = (args[0] or "?").upper()
        if name in ("EVALSHA", "EVALSHA_RO") and len(args) > 1:
            name = names.get(args[1], f"script {args[1][:8]}")
        if name == "SLOWLOG":
            pending = 0
            continue
        calls, total = totals.get(name, (0, 0))
        totals[name] = (calls + 1, total + micros)
        inner[name] = inner.get(name, 0) + pending
        pending = 0
    whole = sum(t for _, t in totals.values()) or 1
    print(f"{label} Redis's command time: {whole / 1000:.1f} ms; by command or script:")
    for name, (calls, total) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        if total * 100 < whole:
            continue
        own = ""
        if name.endswith(".lua"):
            own = f" of which its commands {100 * inner[name] / max(total, 1):3.0f}%"
        print(
            f"{label} {name:<22} calls={calls:<7} ms={total / 1000:8.1f} "
            f"us_per_call={total / calls:6.1f} share={100 * total / whole:5.1f}%{own}"
        )
    process = totals.get("process.lua")
    if jobs and process:
        print(f"{label} jobs per process.lua call: {jobs / process[0]:.1f}")


main()
