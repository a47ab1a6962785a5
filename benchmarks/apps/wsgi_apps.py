"""Plain WSGI apps, one per benchmark workload, served unchanged by every server under test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

HELLO_BODY = b"Hello, World!"
BIG_BODY = b"x" * (1024 * 1024)
# Fixed work rather than a timed spin, so every server does the same amount of it; about 1 ms of
# pure-Python arithmetic on the 2-core reference machine.
CPU_ITERATIONS = 12_500
IO_SLEEP_SECONDS = 0.010
READ_CHUNK = 65536


def _plain(start_response: StartResponse, body: bytes) -> list[bytes]:
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


def cpu_work(iterations: int) -> int:
    """The `cpu` workload's computation: a loop of integer arithmetic that holds the GIL."""
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """`hello` and `hello-close`: a 13-byte body."""
    return _plain(start_response, HELLO_BODY)


def io(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """`io`: wait 10 ms, standing in for a database call, then answer as `hello` does."""
    time.sleep(IO_SLEEP_SECONDS)
    return _plain(start_response, HELLO_BODY)


def cpu(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """`cpu`: about 1 ms of pure-Python work per request."""
    return _plain(start_response, b"%d" % cpu_work(CPU_ITERATIONS))


def big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """`big`: a 1 MiB body in one piece, with its Content-Length."""
    return _plain(start_response, BIG_BODY)


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """`echo`: read the whole request body in chunks and answer with its length in decimal."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    total = 0
    # Bounded by the declared length: each pass reads at least one byte or stops.
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    return _plain(start_response, b"%d" % total)
