"""An app for the scoreboard tests: hello, its own queue time, and a request held in a known
function (``held_in_known_function``) until a file exists, for in-flight counts and dumps."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

HOLD_LIMIT = 20.0  # seconds a held request waits for its file at most


def held_in_known_function(path: str) -> None:
    """Wait (asleep, bounded) until ``path`` exists."""
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


async def held_in_known_coroutine(path: str) -> None:
    """The same, awaiting, on the event loop."""
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/hold":
        held_in_known_function(environ["QUERY_STRING"])
    body = repr(environ["corral.queue_time"]).encode() if path == "/queue" else b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/hold":
        await held_in_known_coroutine(scope["query_string"].decode())
    queued = scope["extensions"]["corral"]["queue_time"]
    body = repr(queued).encode() if path == "/queue" else b"ok"
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
