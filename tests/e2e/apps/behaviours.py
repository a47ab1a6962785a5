"""A WSGI app with one route per gateway behaviour the e2e tests check."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

FILE_BODY = bytes(range(256)) * 4096  # 1 MiB


def _text(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def environ_view(environ: Environ, start_response: StartResponse) -> list[bytes]:
    keys = [k for k in environ if k.isupper() or k.startswith("wsgi.")]
    doc = {k: environ[k] for k in keys if isinstance(environ[k], (str, bool, int, tuple))}
    body = json.dumps(doc, sort_keys=True).encode()
    environ["HTTP_X_REQUEST_MARK"] = "1"  # must not leak into the next request's environ
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def read_body(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Reads the body in 4 KiB pieces, never whole; answers its length and sha256."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while True:
        piece = stream.read(4096)
        if not piece:
            break
        digest.update(piece)
        total += len(piece)
    return _text(start_response, f"{total} {digest.hexdigest()}".encode())


def read_lines(environ: Environ, start_response: StartResponse) -> list[bytes]:
    lines = list(environ["wsgi.input"])
    return _text(start_response, json.dumps([ln.decode() for ln in lines]).encode())


def sleep(environ: Environ, start_response: StartResponse) -> list[bytes]:
    seconds = float(environ.get("QUERY_STRING") or "1")
    time.sleep(seconds)
    return _text(start_response, b"slept")


def crash(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("boom: the app failed on purpose")


def bad_header(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: stolen=1")])
    return [b"should never be sent"]


def no_content(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("204 No Content", [])
    return [b"this body must be dropped"]


def stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield f"chunk {i}\n".encode()


def legacy_write(environ: Environ, start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


def _file_body(copies: int = 1) -> Any:
    """An open regular file holding FILE_BODY ``copies`` times (unlinked; closed by the server)."""
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "wb") as f:
        for _ in range(copies):
            f.write(FILE_BODY)
    handle = open(path, "rb")  # noqa: SIM115 - closed by the server through the wrapper
    os.unlink(path)
    return handle


def file_wrapper(environ: Environ, start_response: StartResponse) -> Any:
    """FILE_BODY through wsgi.file_wrapper; ``?N`` sends it N times (N MiB)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    copies = int(environ.get("QUERY_STRING") or "1")
    return environ["wsgi.file_wrapper"](_file_body(copies), 65536)


def file_short_length(environ: Environ, start_response: StartResponse) -> Any:
    """A file wrapper whose Content-Length (5) is shorter than the file (1 MiB)."""
    start_response("200 OK", [("Content-Length", "5")])
    return environ["wsgi.file_wrapper"](_file_body(), 65536)


class Closing:
    """An iterable whose close() leaves a mark the test can read back."""

    closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b"closing"

    def close(self) -> None:
        Closing.closed += 1


def closing(environ: Environ, start_response: StartResponse) -> Closing:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing()


def closed_count(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return _text(start_response, str(Closing.closed).encode())


MEETING = threading.Barrier(4)


def barrier(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Answers only once four requests are inside the app at the same time (or fails)."""
    try:
        MEETING.wait(timeout=20)
    except threading.BrokenBarrierError:
        return _text(start_response, b"alone", "503 Service Unavailable")
    return _text(start_response, b"met")


GATE_WAIT = 30.0


def _held(environ: Environ, start_response: StartResponse, name: str, nap: float) -> list[bytes]:
    """Say "NAME: entered PATH" on stderr, then hold the request until the file PATH exists.

    The test reads the line to know the request is inside the app, and creates the file when it
    wants the response; never held past GATE_WAIT seconds (then 504). Between looks it sleeps
    `nap` seconds, or with 0 keeps computing.
    """
    path = urllib.parse.unquote(environ.get("QUERY_STRING", ""))
    sys.stderr.write(f"{name}: entered {path}\n")
    sys.stderr.flush()
    deadline = time.monotonic() + GATE_WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return _text(start_response, b"gate never opened", "504 Gateway Timeout")
        if nap:
            time.sleep(nap)
    return _text(start_response, b"passed")


def gate(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Hold the request, asleep, until the file named by the query exists (see _held)."""
    return _held(environ, start_response, "gate", 0.02)


def busy_gate(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Like /gate, but computing while it waits, so a threaded pool does not grow for it."""
    return _held(environ, start_response, "busy-gate", 0.0)


LARGE_BODY = bytes(range(256)) * 1200  # 300 KiB: past the gateway's JOIN_MAX


def large(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """LARGE_BODY in one piece; the query says which Content-Length the app gives: its own
    ("cl"), none ("none"), one byte too many ("wrong")."""
    headers = [("Content-Type", "application/octet-stream")]
    given = environ["QUERY_STRING"]
    if given != "none":
        extra = 1 if given == "wrong" else 0
        headers.append(("Content-Length", str(len(LARGE_BODY) + extra)))
    start_response("200 OK", headers)
    return [LARGE_BODY]


def status(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The status line named by the query (URL-encoded), as the app's own."""
    return _text(start_response, b"status", urllib.parse.unquote(environ["QUERY_STRING"]))


def pid(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return _text(start_response, str(os.getpid()).encode())


ROUTES: dict[str, Callable[[Environ, StartResponse], Any]] = {
    "/environ": environ_view,
    "/read": read_body,
    "/lines": read_lines,
    "/sleep": sleep,
    "/crash": crash,
    "/bad-header": bad_header,
    "/no-content": no_content,
    "/stream": stream,
    "/write": legacy_write,
    "/file": file_wrapper,
    "/file-short": file_short_length,
    "/closing": closing,
    "/closed-count": closed_count,
    "/pid": pid,
    "/status": status,
    "/large": large,
    "/barrier": barrier,
    "/gate": gate,
    "/busy-gate": busy_gate,
}


def app(environ: Environ, start_response: StartResponse) -> Any:
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        return _text(start_response, b"hello " + environ["PATH_INFO"].encode("latin-1"))
    return route(environ, start_response)
