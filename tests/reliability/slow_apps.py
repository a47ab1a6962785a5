"""Apps for the slow-client tests: a small answer, a large one, and one that reads the body."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

BIG = b"x" * (1 << 20)


def _answer(path: str, body: bytes) -> bytes:
    if path == "/big":
        return BIG
    if path == "/read":
        return f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    return b"ok"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Reads the whole body, as Flask's get_data() does."""
    out = _answer(environ["PATH_INFO"], environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI twin of ``app``."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = _answer(scope["path"], body)
    headers = [(b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})
