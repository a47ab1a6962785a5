"""The reliability rows' apps: WSGI `wsgi_app` and ASGI `asgi_app`, alike in every endpoint.

Every request's body is read in full, as Flask's `request.get_data()` and many middlewares do
(reading `wsgi.input` on a request without a body is what once cost corral its keep-alive
connections). Endpoints, chosen by path:

- `/slow?ms=N`: answers after N ms (default 300), writing `reliability: slow begin` to stderr
  first (unless `&quiet=1`), so a harness can see that a slow request is in the app without
  sleeping to guess;
- `/leak`: keeps LEAK_BYTES more of memory for good, for `max_worker_memory`;
- anything else: `ok`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

LEAK_BYTES = 256 * 1024
SLOW_DEFAULT_MS = 300
SLOW_MARKER = "reliability: slow begin"
_LEAKED: list[bytes] = []

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _slow_seconds(query: str) -> float:
    """How long /slow waits; announces its start on stderr unless the query says quiet."""
    params = parse_qs(query)
    if not params.get("quiet"):
        print(SLOW_MARKER, file=sys.stderr, flush=True)
    values = params.get("ms", [])
    return (int(values[0]) if values else SLOW_DEFAULT_MS) / 1000


def _leak() -> None:
    # Filled bytes, not zeros: the pages must be touched to count in the resident size.
    _LEAKED.append(b"\x01" * LEAK_BYTES)


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI app: read the input, then answer by path."""
    body = environ["wsgi.input"].read()
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        time.sleep(_slow_seconds(environ.get("QUERY_STRING", "")))
    elif path == "/leak":
        _leak()
    payload = b"ok %d" % len(body)
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app: the same endpoints as `wsgi_app`."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _read_body(receive)
    path = scope.get("path", "/")
    if path == "/slow":
        await asyncio.sleep(_slow_seconds(scope.get("query_string", b"").decode("latin-1")))
    elif path == "/leak":
        _leak()
    payload = b"ok %d" % len(body)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
