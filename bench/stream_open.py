#!/usr/bin/env python3
"""What opening `GET /events/{id}/stream` on a big event costs, driven by bench/stream_open.sh.

Creates an event of SEATS seats, holds HELD of them (four per user), then for DURATION seconds
CLIENTS clients each open a stream, read its snapshot message to the end, close it and open the
next; half of the openings are anonymous, half name a holder (X-User-Id), whose snapshot shows its
own seats. Meanwhile a prober reads GET /events/{id} every 50 ms. Prints one line:
openings, openings/s, bytes per snapshot, API and Redis CPU per opening, the prober's p50/p99.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

HOST = "127.0.0.1"


def cpu_of(pid):
    """The process's user+system CPU seconds so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(port):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "cpu"], capture_output=True, text=True
    ).stdout
    return sum(
        float(line.split(":")[1])
        for line in out.splitlines()
        if line.startswith(("used_cpu_sys:", "used_cpu_user:"))
    )


async def request(port, method, path, body=None, headers=()):
    reader, writer = await asyncio.open_connection(HOST, port)
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


async def open_stream(port, event, viewer):
    """Opens a stream, reads it up to the end of its snapshot, closes it; the snapshot's bytes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = f"GET /events/{event}/stream HTTP/1.1\r\nHost: x\r\n"
    if viewer:
        head += f"X-User-Id: {viewer}\r\n"
    writer.write(head.encode() + b"\r\n")
    await writer.drain()
    buf = bytearray()
    start = None
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            raise RuntimeError(f"stream closed early: {bytes(buf[:300])!r}")
        buf += chunk
        if start is None:
            at = buf.find(b"event: snapshot\n")
            if at >= 0:
                start = at
        # Chunked transfer: the snapshot's data line ends with "\n\n".
        if start is not None and buf.find(b"\n\n", start) > 0:
            end = buf.find(b"\n\n", start)
            data_at = buf.find(b"\ndata: ", start)
            if 0 < data_at < end:
                # A chunk boundary may fall inside; count bytes up to the message's end.
                size = end - start
                break
    writer.close()
    return size


async def main():
    port, rport, api_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    label = sys.argv[4]
    seats = int(os.environ.get("SEATS", "10000"))
    held = int(os.environ.get("HELD", "2000"))
    clients = int(os.environ.get("CLIENTS", "8"))
    duration = float(os.environ.get("DURATION", "10"))

    status, body = await request(
        port, "POST", "/events/create", {"name": "bench", "totalSeats": seats}
    )
    assert status == 201, (status, body)
    event = json.loads(body)["id"]
    users = [str(uuid.uuid4()) for _ in range(held // 4)]
    sem = asyncio.Semaphore(64)

    async def hold(n):
        async with sem:
            s, b = await request(
                port,
                "POST",
                "/seats/hold",
                {"id": f"{event}:{n}", "UUID": users[(n - 1) // 4]},
            )
            assert s == 202, (s, b)

    await asyncio.gather(*(hold(n) for n in range(1, held + 1)))
    for _ in range(600):
        s, b = await request(port, "GET", f"/events/{event}")
        if json.loads(b)["onHold"] == held:
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError("the holds were not applied")

    stop = time.monotonic() + duration
    sizes = []
    probes = []

    async def opener(i):
        n = 0
        while time.monotonic() < stop:
            viewer = users[(i * 7919 + n) % len(users)] if n % 2 else None
            sizes.append(await open_stream(port, event, viewer))
            n += 1

    async def prober():
        while time.monotonic() < stop:
            t = time.monotonic()
            s, _ = await request(port, "GET", f"/events/{event}")
            assert s == 200
            probes.append((time.monotonic() - t) * 1000)
            await asyncio.sleep(0.05)

    api0, redis0, t0 = cpu_of(api_pid), redis_cpu(rport), time.monotonic()
    await asyncio.gather(prober(), *(opener(i) for i in range(clients)))
    api1, redis1, t1 = cpu_of(api_pid), redis_cpu(rport), time.monotonic()
    n = len(sizes)
    probes.sort()
    print(
        f"{label} openings={n} per_s={n / (t1 - t0):.0f} "
        f"snapshot_bytes={statistics.median(sizes):.0f} "
        f"api_cpu_ms_per_open={(api1 - api0) * 1e3 / n:.3f} "
        f"redis_cpu_us_per_open={(redis1 - redis0) * 1e6 / n:.1f} "
        f"probe_p50_ms={statistics.median(probes):.2f} "
        f"probe_p99_ms={probes[int(len(probes) * 0.99)]:.2f}"
    )


asyncio.run(main())
