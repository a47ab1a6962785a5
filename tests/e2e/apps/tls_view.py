"""WSGI and ASGI apps that show what a TLS connection told them, as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """wsgi.url_scheme, HTTPS and the SSL_* keys; ``/file`` sends 1 MiB through file_wrapper,
    ``/whole`` the same bytes as one piece of a list, without a Content-Length."""
    if environ["PATH_INFO"] == "/whole":
        with open(os.environ["TLS_VIEW_FILE"], "rb") as f:
            data = f.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if environ["PATH_INFO"] == "/file":
        path = os.environ["TLS_VIEW_FILE"]
        start_response("200 OK", [("Content-Length", str(os.path.getsize(path)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"))
    keys = {k: v for k, v in environ.items() if k.startswith("SSL_") or k == "HTTPS"}
    doc = {"scheme": environ["wsgi.url_scheme"], "pid": os.getpid(), **keys}
    body = json.dumps(doc).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The scheme and the ``tls`` extension of the scope."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    doc = {
        "scheme": scope["scheme"],
        "pid": os.getpid(),
        "tls": scope.get("extensions", {}).get("tls"),
    }
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
