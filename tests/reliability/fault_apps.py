"""WSGI (`fault_apps:wsgi`) and ASGI (`fault_apps:asgi`) apps that misbehave on purpose.

One route per fault; `/stats` answers the worker's pid and how many response iterables (WSGI) or
app calls (ASGI) are still open, so a test can see that every one was closed or finished.
`/hog?SECONDS` takes every free file descriptor of the worker for SECONDS (see `FdHog`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PIECE = b"x" * 65536
BIG = 4 * 1024 * 1024  # default size of /big: far more than a small client window takes
DECLARED = 10  # the Content-Length /more and /fewer declare
FEWER = b"12345"  # what /fewer sends of its DECLARED bytes
MORE = b"0123456789ABCDEFGHIJ"  # what /more sends: twice DECLARED


class Counter:
    """A thread-safe count of things opened and not yet closed."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


OPEN = Counter()


class FdHog:
    """Holds every free descriptor of this process for a while, taking back any that frees up.

    A thread opens /dev/null until EMFILE, then keeps retrying every 5 ms (so a descriptor the
    worker frees, such as the one of the connection that asked for the hog, is taken too) until
    its time is up, and closes them all.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = min(seconds, 10.0)
        self.held: list[int] = []
        self.thread = threading.Thread(target=self._run, name="fd-hog", daemon=True)
        self.thread.start()

    def _grab(self) -> None:
        for _ in range(100_000):
            try:
                self.held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                return

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        try:
            while time.monotonic() < deadline:
                self._grab()
                time.sleep(0.005)
        finally:
            for fd in self.held:
                os.close(fd)


# -- WSGI ------------------------------------------------------------------------------------


class Tracked:
    """A response iterable counted in OPEN until the server calls close() (PEP 3333)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._it = iter(pieces)
        self._closed = False
        OPEN.add(1)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._it)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            OPEN.add(-1)


def _start(start_response: StartResponse, length: int, status: str = "200 OK") -> None:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(length))])


def _big_pieces(size: int) -> Iterator[bytes]:
    while size > 0:
        piece = PIECE[: min(size, len(PIECE))]
        size -= len(piece)
        yield piece


def _raising(first: bytes | None) -> Iterator[bytes]:
    if first is not None:
        yield first
    raise RuntimeError("fault_apps: the response iterator raises on purpose")


def w_ok(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _start(start_response, 2)
    return [b"ok"]


def w_stats(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps({"pid": os.getpid(), "open": OPEN.value}).encode()
    _start(start_response, len(body))
    return [body]


def w_big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    size = int(environ.get("QUERY_STRING") or BIG)
    _start(start_response, size)
    return Tracked(_big_pieces(size))


def w_body(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = str(len(environ["wsgi.input"].read())).encode()
    _start(start_response, len(body))
    return [body]


def w_slow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(min(float(environ.get("QUERY_STRING") or "0.005"), 5.0))
    _start(start_response, 2)
    return Tracked([b"ok"])


def w_raise_iter(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _start(start_response, 2 * len(PIECE))
    return Tracked(_raising(PIECE))


def w_raise_first(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _start(start_response, 2)
    return Tracked(_raising(None))


def w_more(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _start(start_response, DECLARED)
    return Tracked([MORE[:DECLARED], MORE[DECLARED:]])


def w_fewer(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    _start(start_response, DECLARED)
    return Tracked([FEWER])


def w_no_start(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return Tracked([b"never started"])


def w_hog(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    FdHog(float(environ.get("QUERY_STRING") or "3"))
    _start(start_response, 2)
    return [b"ok"]


WSGI_ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "/ok": w_ok,
    "/stats": w_stats,
    "/big": w_big,
    "/body": w_body,
    "/slow": w_slow,
    "/raise-iter": w_raise_iter,
    "/raise-first": w_raise_first,
    "/more": w_more,
    "/fewer": w_fewer,
    "/no-start": w_no_start,
    "/hog": w_hog,
}


def wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on PATH_INFO; 404 for anything else."""
    route = WSGI_ROUTES.get(environ["PATH_INFO"])
    if route is None:
        _start(start_response, 0, "404 Not Found")
        return []
    return route(environ, start_response)


# -- ASGI ------------------------------------------------------------------------------------


def _head(length: int, status: int = 200) -> dict[str, Any]:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(length).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def _send_all(send: Send, status: int, data: bytes) -> None:
    await send(_head(len(data), status))
    await send(_body(data))


async def a_ok(scope: Scope, receive: Receive, send: Send) -> None:
    await _send_all(send, 200, b"ok")


async def a_stats(scope: Scope, receive: Receive, send: Send) -> None:
    # This call is open too: it does not count itself.
    body = json.dumps({"pid": os.getpid(), "open": OPEN.value - 1}).encode()
    await _send_all(send, 200, body)


async def a_big(scope: Scope, receive: Receive, send: Send) -> None:
    size = int(scope["query_string"] or BIG)
    await send(_head(size))
    for piece in _big_pieces(size):
        await send(_body(piece, more=True))
    await send(_body(b""))


async def a_body(scope: Scope, receive: Receive, send: Send) -> None:
    total = 0
    for _ in range(100_000):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await _send_all(send, 200, str(total).encode())


async def a_slow(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(min(float(scope["query_string"] or b"0.005"), 5.0))
    await _send_all(send, 200, b"ok")


async def _until_disconnect(receive: Receive) -> None:
    for _ in range(100_000):
        if (await receive())["type"] == "http.disconnect":
            return


async def a_wait_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """Waits (at most 10 s) for the client to go away, then returns without answering."""
    await asyncio.wait_for(_until_disconnect(receive), 10)


async def a_raise_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_head(2))
    raise RuntimeError("fault_apps: raises after http.response.start on purpose")


async def a_raise_iter(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_head(2 * len(PIECE)))
    await send(_body(PIECE, more=True))
    raise RuntimeError("fault_apps: raises in the middle of the body on purpose")


async def a_more(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_head(DECLARED))
    await send(_body(MORE[:DECLARED], more=True))
    await send(_body(MORE[DECLARED:]))


async def a_fewer(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_head(DECLARED))
    await send(_body(FEWER))


async def a_no_start(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def a_hog(scope: Scope, receive: Receive, send: Send) -> None:
    FdHog(float(scope["query_string"] or b"3"))
    await _send_all(send, 200, b"ok")


ASGI_ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/ok": a_ok,
    "/stats": a_stats,
    "/big": a_big,
    "/body": a_body,
    "/slow": a_slow,
    "/wait-disconnect": a_wait_disconnect,
    "/raise-after-start": a_raise_after_start,
    "/raise-iter": a_raise_iter,
    "/more": a_more,
    "/fewer": a_fewer,
    "/no-start": a_no_start,
    "/hog": a_hog,
}


async def _lifespan(receive: Receive, send: Send) -> None:
    for _ in range(2):
        message = await receive()
        kind = message["type"].rpartition(".")[2]  # startup or shutdown
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """Dispatch on the path; every HTTP call is counted in OPEN while it runs."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    route = ASGI_ROUTES.get(scope["path"])
    if route is None:
        await _send_all(send, 404, b"")
        return
    OPEN.add(1)
    try:
        await route(scope, receive, send)
    finally:
        OPEN.add(-1)
