"""The asyncio worker's HTTP side in-process: real sockets, the real worker, on both loops."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.e2e.rawhttp import RawClient, request

from corral.arbiter.heartbeat import Heartbeat
from corral.config import load
from corral.errors import WORKER_BOOT_ERROR
from corral.gateway.loader import LoadedApp
from corral.logging import Logger
from corral.workers.aio import AsyncioWorker

LOOPS = ["asyncio", "uvloop"]


class Server:
    """An AsyncioWorker serving ``app`` on 127.0.0.1:0 from a thread of this process."""

    def __init__(self, app: Any, *argv: str, loop: str = "asyncio") -> None:
        self.cfg = load(["-k", "asyncio", "--loop", loop, *argv, "inprocess:app"], {})
        self.log = Logger(self.cfg)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr: tuple[str, int] = self.listener.getsockname()[:2]
        self.worker = AsyncioWorker(
            0, os.getppid(), [self.listener], self.cfg, self.log, Heartbeat(tempfile.gettempdir())
        )
        self.worker.pid = os.getpid()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(app,), daemon=True)
        self.thread.start()
        # Connections made before the loop accepts them wait in the listen queue.
        wait_for(
            lambda: self.worker.loop is not None or not self.thread.is_alive(),
            "the worker's loop to start",
        )

    def _run(self, app: Any) -> None:
        try:
            self.worker.serve(LoadedApp(app, "asgi"))
        except BaseException as exc:
            self.error = exc

    @property
    def url(self) -> str:
        return f"http://{self.addr[0]}:{self.addr[1]}"

    def stop(self, timeout: float = 15.0) -> None:
        """TERM-equivalent: begin a graceful stop and wait for serve() to return."""
        self.worker.alive = False
        self.worker.wake()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        self.listener.close()
        self.log.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` every 20 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(params=LOOPS)
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[..., Server]]:
    """Start in-process servers on the parametrised loop; stop them all at teardown."""
    servers: list[Server] = []

    def start(app: Any, *argv: str) -> Server:
        server = Server(app, *argv, loop=request.param)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()
    for name in ("corral.error", "corral.access"):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)


# -- apps ------------------------------------------------------------------------------------


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        chunks.append(message["body"])
        if not message["more_body"]:
            return b"".join(chunks)


async def respond(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


def lifespan_app(handler: Any) -> Any:
    """Wrap an HTTP handler with a lifespan that puts ``db`` in the state."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            await handler(scope, receive, send)

    return app


async def scope_json(scope: Any, receive: Any, send: Any) -> None:
    body = await read_body(receive)
    state = scope["state"]
    seen = sorted(state)
    state["leak"] = True  # a per-request copy: the next request must not see this
    doc = {
        "type": scope["type"],
        "asgi": scope["asgi"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]),
        "server": list(scope["server"]),
        "state": seen,
        "extensions": sorted(scope["extensions"]),
        "body": body.decode("latin-1"),
    }
    await respond(send, 200, json.dumps(doc).encode())


# -- the scope -------------------------------------------------------------------------------


def test_http_scope_is_complete(serve: Callable[..., Server]) -> None:
    server = serve(lifespan_app(scope_json))
    with httpx.Client(base_url=server.url) as client:
        resp = client.post(
            "/caf%C3%A9/a%2Fb?x=%41&y=2", content=b"payload", headers={"X-Custom-Header": "V"}
        )
        doc = resp.json()
        assert doc["type"] == "http"
        assert doc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert doc["http_version"] == "1.1" and doc["method"] == "POST"
        assert doc["scheme"] == "http"
        assert doc["path"] == "/café/a/b"
        assert doc["raw_path"] == "/caf%C3%A9/a%2Fb"
        assert doc["query_string"] == "x=%41&y=2"
        assert doc["root_path"] == ""
        assert ["x-custom-header", "V"] in doc["headers"]
        assert all(name == name.lower() for name, _ in doc["headers"])
        assert doc["client"][0] == "127.0.0.1" and isinstance(doc["client"][1], int)
        assert doc["server"] == [server.addr[0], server.addr[1]]
        assert doc["state"] == ["db"]
        assert doc["extensions"] == ["corral", "http.response.trailers"]
        assert doc["body"] == "payload"
        # Same connection (keep-alive), fresh copy of the state.
        again = client.get("/").json()
        assert again["state"] == ["db"] and again["client"] == doc["client"]


def test_root_path_comes_from_script_name(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPT_NAME", "/mounted")
    server = serve(lifespan_app(scope_json))
    doc = httpx.get(server.url + "/mounted/page").json()
    assert doc["root_path"] == "/mounted" and doc["path"] == "/mounted/page"


def test_trusted_proxy_sets_https_scheme(serve: Callable[..., Server]) -> None:
    server = serve(lifespan_app(scope_json), "--forwarded-allow-ips", "127.0.0.1")
    doc = httpx.get(server.url + "/", headers={"X-Forwarded-Proto": "https"}).json()
    assert doc["scheme"] == "https"


# -- request bodies --------------------------------------------------------------------------


async def echo_pieces(scope: Any, receive: Any, send: Any) -> None:
    """Send each body piece back as soon as it arrives."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        if not message["more_body"]:
            break
    await send({"type": "http.response.body", "body": b"<end>"})


def test_request_body_is_streamed_with_more_body(serve: Callable[..., Server]) -> None:
    server = serve(echo_pieces)
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", {"Transfer-Encoding": "chunked"}))
        c.send(b"5\r\nfirst\r\n")
        head = c.read_interim_or_final()
        assert head.status == 200
        # The app had the first piece, and answered it, before the second was even sent.
        assert c._until(b"\r\n") == b"5" and c._exact(7) == b"first\r\n"
        c.send(b"6\r\nsecond\r\n0\r\n\r\n")
        rest = b""
        while b"0\r\n\r\n" not in rest:
            assert c._fill()
            rest = c.buf
        assert b"second" in rest and b"<end>" in rest


def test_expect_100_continue_is_sent_when_the_app_reads(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, b"got " + await read_body(receive))

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", {"Expect": "100-continue", "Content-Length": "4"}))
        assert c.read_interim_or_final().status == 100
        c.send(b"data")
        assert c.read_response().body == b"got data"


def test_no_100_continue_when_the_app_does_not_read(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 413, b"too big")

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", {"Expect": "100-continue", "Content-Length": "100000"}))
        resp = c.read_response()
        assert resp.status == 413 and resp.interim == []
        assert resp.header("connection") == "close"
        assert c.at_eof()


def test_http_disconnect_when_the_client_goes_away(serve: Callable[..., Server]) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        seen.append((await receive())["type"])

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", body=b"abc"))
        wait_for(lambda: bool(server.worker.loop), "the worker")
        assert seen == []  # the app is waiting in receive() while the client is connected
    wait_for(lambda: seen == ["http.disconnect"], "http.disconnect")


def test_unread_body_is_drained_to_keep_the_connection(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, scope["path"].encode())

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("POST", "/one", body=b"x" * 5000) + request("GET", "/two"))
        assert c.read_response().body == b"/one"
        assert c.read_response().body == b"/two"


# -- responses ---------------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)
        await respond(send, 200, scope["path"].encode())

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/slow") + request("GET", "/a") + request("GET", "/b"))
        assert [c.read_response().body for _ in range(3)] == [b"/slow", b"/a", b"/b"]


def test_thousands_of_pipelined_requests_in_one_write_are_all_answered(
    serve: Callable[..., Server],
) -> None:
    # Each request ends within the callback that read it (eagerly, on Python 3.12+), and the
    # next one starts from there: they must not nest one inside another, 3,000 deep.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, scope["path"].encode())

    server = serve(app)
    paths = [f"/{i}" for i in range(3000)]
    with RawClient(server.addr, timeout=60) as c:
        c.send(b"".join(request("GET", p) for p in paths))
        assert [c.read_response().body.decode() for _ in paths] == paths


MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


def test_a_request_runs_in_one_task_of_its_own_with_a_context_of_its_own(
    serve: Callable[..., Server],
) -> None:
    # anyio's cancel scopes (Starlette, FastAPI) need current_task() to be the same before
    # and after an await, and never None; a context variable set by one request must not be
    # seen by the next one on the connection.
    tasks: list[asyncio.Task[Any] | None] = []  # kept alive, so no two can share an id

    async def app(scope: Any, receive: Any, send: Any) -> None:
        first = asyncio.current_task()
        tasks.append(first)
        seen = MARK.get()
        MARK.set(scope["path"])
        await asyncio.sleep(0)
        same = first is not None and asyncio.current_task() is first
        await respond(send, 200, f"{id(first)} {same} {seen}".encode())

    server = serve(app)
    with RawClient(server.addr) as c:
        answers = []
        for path in ("/one", "/two"):
            c.send(request("GET", path))
            answers.append(c.read_response().body.decode().split())
    (task1, same1, seen1), (task2, same2, seen2) = answers
    assert (same1, same2) == ("True", "True")
    assert (seen1, seen2) == ("unset", "unset")
    assert task1 != task2


def test_a_task_factory_the_app_installs_makes_every_request_task(
    serve: Callable[..., Server],
) -> None:
    # Tracing libraries wrap the loop's task factory at startup; requests must go through it.
    made: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            loop = asyncio.get_running_loop()

            def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
                made.append(getattr(coro, "__qualname__", "?"))
                return asyncio.Task(coro, loop=loop, **kwargs)

            loop.set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send, 200, b"traced")

    server = serve(app)
    with RawClient(server.addr) as c:
        for _ in range(3):
            c.send(request("GET", "/"))
            assert c.read_response().body == b"traced"
    assert made.count("HTTPCycle.run") == 3


def test_trailers_when_the_app_asks(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 200, "trailers": True}
        await send({**start, "headers": [(b"trailer", b"x-sum")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/", {"TE": "trailers"}))
        head = c.read_interim_or_final()
        assert head.header("transfer-encoding") == "chunked"
        assert c._until(b"0\r\n") == b"3\r\nabc\r\n"
        assert c._until(b"\r\n\r\n") == b"x-sum: 42"


def test_exception_before_the_response_gives_500(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("broken")

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        resp = c.read_response()
        assert resp.status == 500 and b"broken" not in resp.body
        assert resp.header("connection") == "close" and c.at_eof()


def test_exception_during_the_response_closes_the_connection(
    serve: Callable[..., Server],
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("broken")

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        assert c.read_interim_or_final().status == 200
        assert c.at_eof()
        assert c.buf == b"7\r\npartial\r\n"  # no last chunk: the client sees it incomplete


@pytest.mark.parametrize("kind", ["bad-header", "no-response", "wrong-message"])
def test_invalid_responses_give_500(serve: Callable[..., Server], kind: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if kind == "bad-header":
            await respond(send, 200, b"x", [(b"x-split", b"a\r\nInjected: 1")])
        elif kind == "wrong-message":
            await send({"type": "http.response.body", "body": b"no start"})

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        resp = c.read_response()
        assert resp.status == 500 and resp.header("injected") is None


def test_send_raises_oserror_once_the_client_is_gone(serve: Callable[..., Server]) -> None:
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100000):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        except BaseException as exc:
            raised.append(exc)
            raise

    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        assert c.read_interim_or_final().status == 200
    wait_for(lambda: bool(raised), "send() to raise")
    assert isinstance(raised[0], OSError)


def test_slow_reader_pauses_the_apps_send(serve: Callable[..., Server]) -> None:
    chunk, total = 65536, 1024  # the app wants to send 64 MiB
    sent = [0]
    in_send = threading.Event()
    returned_while_paused = [0]
    conns: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The driver's connection behind this send(): its write_paused flag is what the
        # transport's pause_writing() and resume_writing() set.
        conn = send.__self__.channel
        conns.append(conn)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(total):
            in_send.set()
            await send({"type": "http.response.body", "body": b"y" * chunk, "more_body": True})
            in_send.clear()
            # Back-pressure means send() only returns once the transport can take more.
            returned_while_paused[0] += conn.write_paused
            sent[0] += 1
        await send({"type": "http.response.body", "body": b""})

    server = serve(app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(server.addr)
    sock.sendall(request("GET", "/"))
    # The client reads nothing: the kernel buffers fill, the transport pauses writing and the
    # app's send() waits inside. Without back-pressure the app would never wait there: it would
    # hand all 64 MiB to the transport's buffer and finish.
    wait_for(
        lambda: bool(conns) and conns[0].write_paused and in_send.is_set(),
        "the app's send() to wait on a paused transport",
    )
    # What the app got through is what the socket buffers and one high-water mark hold.
    assert sent[0] * chunk < 16 * 1024 * 1024
    received = 0
    sock.settimeout(10)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        received += len(data)
        if data.endswith(b"0\r\n\r\n"):
            break
    sock.close()
    # Reading resumed the app until it had sent everything, and no send() ever returned
    # while the transport was paused.
    assert sent[0] == total and received > total * chunk
    assert returned_while_paused[0] == 0


def test_client_that_stops_reading_is_cut_off_after_timeout(
    serve: Callable[..., Server],
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"z" * 65536, "more_body": True})
        except OSError as exc:
            raised.append(exc)

    server = serve(app, "--send-timeout", "1")
    sock = socket.create_connection(server.addr)
    sock.sendall(request("GET", "/"))  # and never read a byte
    wait_for(lambda: bool(raised), "send() to give up on the stalled client", timeout=15)
    sock.close()


def test_client_that_stops_sending_its_body_is_a_disconnect_and_gets_408(
    serve: Callable[..., Server],
) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"  # lifespan: unsupported, and served without it
        while True:
            message = await receive()
            seen.append((message["type"], message.get("body")))
            if message["type"] == "http.disconnect" or not message["more_body"]:
                return

    server = serve(app, "--body-timeout", "1")
    with RawClient(server.addr) as c:
        c.send(request("POST", "/", {"Content-Length": "10"}) + b"ab")
        wait_for(lambda: bool(seen) and seen[-1][0] == "http.disconnect", "disconnect", 15)
        assert seen == [("http.request", b"ab"), ("http.disconnect", None)]
        assert c.read_response().status == 408  # RFC 9110 §15.5.9
        assert c.at_eof()


# -- rejections and limits come from the core ---------------------------------------------------


def test_core_rejections_never_reach_the_app(serve: Callable[..., Server]) -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await respond(send, 200, b"ok")

    server = serve(app, "--limit-request-line", "100")
    cases = {
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n": 400,
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n": 414,
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n": 505,
    }
    for raw, status in cases.items():
        with RawClient(server.addr) as c:
            c.send(raw)
            assert c.read_response().status == status
            assert c.at_eof()
    with RawClient(server.addr) as c:  # after a rejection nothing more reaches the app
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + request("GET", "/after"))
        assert c.read_response().status == 400 and c.at_eof()
    assert calls == []


def test_slow_head_gets_408(serve: Callable[..., Server]) -> None:
    server = serve(lifespan_app(scope_json), "--header-timeout", "1")
    with RawClient(server.addr) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        assert c.read_response().status == 408
        assert c.at_eof()


def test_idle_keepalive_connection_is_closed(serve: Callable[..., Server]) -> None:
    server = serve(lifespan_app(scope_json), "--keep-alive", "1")
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        assert c.read_response().status == 200
        assert c.at_eof(timeout=5)


def test_worker_connections_bounds_open_connections(serve: Callable[..., Server]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, scope["path"].encode())

    server = serve(app, "--worker-connections", "1")
    first = RawClient(server.addr)
    first.send(request("GET", "/one"))
    assert first.read_response().body == b"/one"
    with RawClient(server.addr, timeout=1) as second:
        second.send(request("GET", "/two"))
        assert not second.at_eof(timeout=0.5) and second.buf == b""
        first.close()
        second.sock.settimeout(5)
        assert second.read_response().body == b"/two"


# -- the worker's life -----------------------------------------------------------------------


def test_graceful_stop_finishes_in_flight_and_closes_idle(serve: Callable[..., Server]) -> None:
    started = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            started.set()
            await asyncio.sleep(0.5)
        await respond(send, 200, b"done " + scope["path"].encode())

    server = serve(app)
    with RawClient(server.addr) as idle, RawClient(server.addr) as busy:
        idle.send(request("GET", "/idle"))
        assert idle.read_response().status == 200
        busy.send(request("GET", "/slow"))
        assert started.wait(5)
        server.worker.alive = False
        server.worker.wake()
        resp = busy.read_response()
        assert resp.body == b"done /slow" and resp.header("connection") == "close"
        assert idle.at_eof() and busy.at_eof()
    server.thread.join(10)
    assert not server.thread.is_alive() and server.error is None


def test_graceful_timeout_drops_what_is_still_running(serve: Callable[..., Server]) -> None:
    started = threading.Event()
    cancelled: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(scope["path"])
            raise

    server = serve(app, "--graceful-timeout", "1")
    with RawClient(server.addr) as c:
        c.send(request("GET", "/forever"))
        assert started.wait(5)
        server.stop()
        assert c.at_eof() and c.buf == b""
    assert cancelled == ["/forever"]


def test_max_requests_stops_the_worker(serve: Callable[..., Server]) -> None:
    server = serve(lifespan_app(scope_json), "--max-requests", "2")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 200
    server.thread.join(10)
    assert not server.thread.is_alive() and server.worker.nr == 2


def test_loop_setting_picks_the_event_loop(serve: Callable[..., Server]) -> None:
    loops: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] in ("lifespan", "http")
        if scope["type"] == "http":
            loops.append(type(asyncio.get_running_loop()).__module__)
            await respond(send, 200, b"ok")

    server = serve(app)
    httpx.get(server.url)
    expected = "uvloop" if server.cfg.loop == "uvloop" else "asyncio.unix_events"
    assert loops == [expected]


def test_loop_uvloop_without_uvloop_is_a_boot_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    server = Server(lifespan_app(scope_json), loop="uvloop")
    server.thread.join(10)
    assert isinstance(server.error, SystemExit) and server.error.code == WORKER_BOOT_ERROR
    server.listener.close()
    server.log.close()


def test_websocket_upgrade_works_without_wsproto_or_h11(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames are corral's own: an upgrade no longer needs the old `websocket` extra."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("wsproto", "h11")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "wsproto", None)  # makes `import wsproto` fail
    monkeypatch.setitem(sys.modules, "h11", None)

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": message["text"]})

    server = serve(echo)
    with RawClient(server.addr) as c:
        c.send(
            request(
                "GET",
                "/ws",
                {
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            )
        )
        assert c.read_response().status == 101
        c.send(bytes([0x81, 0x82]) + bytes(4) + b"hi")  # "hi", masked with a zero key
        assert c._exact(4) == b"\x81\x02hi"
