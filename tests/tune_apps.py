"""Reference WSGI apps for `corral tune`: I/O-bound, CPU-bound and mixed (see docs/tuning.md).

    io     waits 10 ms (a database call), computes nothing
    cpu    computes about 1 ms of pure Python (a fixed count of loop steps), waits for nothing
    mixed  waits 5 ms, then computes about 0.5 ms

The CPU work is a fixed number of steps, not a timed spin, so every configuration does the same
work and a slower (busier) machine shows as fewer requests per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

BODY = b"ok\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
# About 1 ms of pure Python on this project's 2-core VMs (CPython 3.11).
CPU_STEPS = 10_000

StartResponse = Callable[..., Any]


def _compute(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += i * i % 7
    return total


def io(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """10 ms of waiting."""
    time.sleep(0.010)
    start_response("200 OK", HEADERS)
    return [BODY]


def cpu(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """About 1 ms of computing, holding the GIL."""
    _compute(CPU_STEPS)
    start_response("200 OK", HEADERS)
    return [BODY]


def mixed(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """5 ms of waiting, then about 0.5 ms of computing."""
    time.sleep(0.005)
    _compute(CPU_STEPS // 2)
    start_response("200 OK", HEADERS)
    return [BODY]


async def asgi_io(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI form of `io`: 10 ms of waiting (lifespan answered)."""
    import asyncio

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await asyncio.sleep(0.010)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"3")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
