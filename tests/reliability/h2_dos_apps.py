"""Apps for the HTTP/2 denial-of-service tests: /count tallies each call in a file (one byte
appended per call, the file named by $H2DOS_COUNTER), /big answers 1 MiB, /read the length
of the body it read, anything else "ok"."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

BIG = b"x" * (1 << 20)


def _answer(path: str, body: bytes) -> bytes:
    if path == "/count":
        fd = os.open(os.environ["H2DOS_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
    if path == "/read":
        return b"%d" % len(body)
    return BIG if path == "/big" else b"ok"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read() if environ["PATH_INFO"] == "/read" else b""
    out = _answer(environ["PATH_INFO"], body)
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI twin of ``app``."""
    if scope["type"] != "http":
        return
    body = b""
    while scope["path"] == "/read":
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = _answer(scope["path"], body)
    headers = [(b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})
