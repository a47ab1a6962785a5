"""WSGI and ASGI apps that read their input on every request, as Flask's get_data() does."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

StartResponse = Callable[..., Any]


def _entered(path: str) -> None:
    """Tell the test (on stderr, which corral captures) that a request is inside the app."""
    sys.stderr.write(f"zero-loss: entered {path}\n")
    sys.stderr.flush()


def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Reads the body (``?100``: read(100), else read()); ``/slow?S`` sleeps S seconds."""
    stream = environ["wsgi.input"]
    query = environ.get("QUERY_STRING", "")
    data = stream.read(100) if query == "100" else stream.read()
    path = environ["PATH_INFO"]
    if path == "/slow":
        _entered(path)
        time.sleep(float(query or "0.5"))
    body = b"%d bytes read at %s" % (len(data), path.encode("latin-1"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI twin of ``app``: receives the whole body first."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        _entered(scope["path"])
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
    body = b"%d bytes read at %s" % (size, scope["path"].encode())
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
