"""The same routes as a WSGI app (``app``) and an ASGI app (``asgi``), for the HTTP/2 tests.

- `/`              JSON: the protocol the app was told (WSGI SERVER_PROTOCOL, ASGI
                   "HTTP/" + scope["http_version"]), the method, the scheme, the client's
                   port (which connection), the pid
- `/echo`          reads the body in pieces; answers `<length> <sha256 hex>`
- `/big?n=N`       N bytes of ``payload(N)``, in 64 KiB pieces, with a Content-Length
- `/whole?n=N`     the same bytes in one piece (WSGI only), with a Content-Length unless `cl=0`
- `/gate?f=PATH`   logs `h2_app: waiting <pid> <PATH>` to stderr, waits until PATH exists (at
                   most GATE_LIMIT seconds), answers `opened` (or `timed out`); it waits in
                   short sleeps, so that request_timeout can stop it (WSGI) or cancel it (ASGI)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

PIECE = 64 * 1024
GATE_LIMIT = 30.0
Headers = list[tuple[str, str]]


def payload(n: int) -> bytes:
    """N bytes that differ all along (a shifted or lost piece shows), the same in the test."""
    return random.Random(n).randbytes(n)


def _query(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw).items()}


def _say(text: str) -> None:
    sys.stderr.write(f"h2_app: {text}\n")
    sys.stderr.flush()


def _view(protocol: str, method: str, scheme: str, port: object) -> bytes:
    doc = {"protocol": protocol, "method": method, "scheme": scheme, "port": int(str(port)),
           "pid": os.getpid()}  # fmt: skip
    return json.dumps(doc).encode()


# -- WSGI ---------------------------------------------------------------------------------------


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/whole":  # a list of one piece: the gateway's send_full path
        query = _query(environ.get("QUERY_STRING", ""))
        data = payload(int(query["n"]))
        given = [] if query.get("cl") == "0" else [("Content-Length", str(len(data)))]
        start_response("200 OK", given)
        return [data]
    return _streamed(environ, start_response)


def _streamed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    path, query = environ["PATH_INFO"], _query(environ.get("QUERY_STRING", ""))
    if path == "/echo":
        stream, digest, total = environ["wsgi.input"], hashlib.sha256(), 0
        while piece := stream.read(PIECE):
            digest.update(piece)
            total += len(piece)
        yield from _wsgi_text(start_response, f"{total} {digest.hexdigest()}".encode())
    elif path == "/big":
        data = payload(int(query["n"]))
        start_response("200 OK", [("Content-Length", str(len(data)))])
        for at in range(0, len(data), PIECE):
            yield data[at : at + PIECE]
    elif path == "/gate":
        yield from _wsgi_text(start_response, _gate_blocking(query["f"]))
    else:
        body = _view(environ["SERVER_PROTOCOL"], environ["REQUEST_METHOD"],
                     environ["wsgi.url_scheme"], environ["REMOTE_PORT"])  # fmt: skip
        yield from _wsgi_text(start_response, body)


def _wsgi_text(start_response: Callable[..., Any], body: bytes) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    yield body


def _gate_blocking(path: str) -> bytes:
    _say(f"waiting {os.getpid()} {path}")
    end = time.monotonic() + GATE_LIMIT
    while not os.path.exists(path):
        if time.monotonic() > end:
            return b"timed out"
        time.sleep(0.02)
    return b"opened"


# -- ASGI ---------------------------------------------------------------------------------------


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path, query = scope["path"], _query(scope["query_string"].decode())
    if path == "/echo":
        digest, total, more = hashlib.sha256(), 0, True
        while more:
            message = await receive()
            digest.update(message.get("body", b""))
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        await _asgi_text(send, f"{total} {digest.hexdigest()}".encode())
    elif path == "/big":
        data = payload(int(query["n"]))
        headers = [(b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for at in range(0, len(data), PIECE):
            await send({"type": "http.response.body", "body": data[at : at + PIECE],
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})
    elif path == "/gate":
        _say(f"waiting {os.getpid()} {query['f']}")
        end = time.monotonic() + GATE_LIMIT
        while not os.path.exists(query["f"]) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        await _asgi_text(send, b"opened" if os.path.exists(query["f"]) else b"timed out")
    else:
        protocol = "HTTP/" + scope["http_version"]
        view = _view(protocol, scope["method"], scope["scheme"], scope["client"][1])
        await _asgi_text(send, view)


async def _asgi_text(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
