"""ASGI 3 HTTP gateway: a request event becomes a scope, the app's messages become HTTP bytes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from corral.gateway.exchange import Exchange
from corral.gateway.forwarded import SchemeHeaders, TrustedPeers, forwarded_client
from corral.gateway.ladder import ClientDisconnected, RequestTimeout, answer
from corral.gateway.lifecycle import Bookkeeping, Outcome, ServingWorker
from corral.gateway.queue_time import proxy_queue_time
from corral.http.errors import LocalProtocolError, ProtocolError
from corral.http.events import NEED_DATA, Data, EndOfMessage, Request

if TYPE_CHECKING:
    from corral.config import Config
    from corral.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Body pieces already buffered are handed to the app together, up to this size.
COALESCE = 65536
# What request_timeout stops an app's task with: a cancel, or RequestTimeout while it held the loop.
_STOPS = (asyncio.CancelledError, RequestTimeout)


class HTTPChannel(Protocol):
    """What an HTTP cycle needs from the driver: one connection's bytes, out and in."""

    @property
    def conn(self) -> Exchange:
        """The exchange the cycle's request came on."""
        ...

    @property
    def write_blocked(self) -> bool:
        """True while drain() would wait or raise (the transport is paused or gone): a plain
        flag, so that the common case costs no coroutine per response message."""
        ...

    @property
    def body_stalled(self) -> bool:
        """The request body stopped arriving for body_timeout: wait_data() said False for it."""
        ...

    @property
    def disconnected(self) -> bool:
        """The peer has closed or reset the connection (or stopped sending)."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer; raises ClientDisconnected once the connection is gone."""
        ...

    async def drain(self) -> None:
        """Wait while the peer reads more slowly than we write (back-pressure)."""
        ...

    async def wait_data(self) -> bool:
        """Wait for more request bytes; False when none will come (EOF or disconnect)."""
        ...

    async def wait_disconnect(self) -> None:
        """Wait until the peer goes away or the response is complete."""
        ...

    def response_complete(self) -> None:
        """The response is written: wake a ``receive()`` waiting for the disconnect."""
        ...

    def cycle_done(self, cycle: HTTPCycle) -> None:
        """The cycle has ended (``cycle.complete`` says how): go on with the connection."""
        ...


class Peer:
    """What is known of one connection before any request: addresses, trust and TLS."""

    __slots__ = ("client", "server", "tls", "trusted")

    def __init__(
        self, client: tuple[str, int] | None, server: tuple[str, int | None], trusted: bool
    ) -> None:
        self.client = client
        self.server = server
        self.trusted = trusted
        self.tls: dict[str, Any] | None = None  # the ASGI `tls` extension, on a TLS connection


def _peer_tuple(addr: Any) -> tuple[str, int] | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]), int(addr[1]))
    return None


def _lower_names(
    headers: list[tuple[str, str]], cache: dict[str, bytes], drop_underscore: bool
) -> list[Any]:
    """ASGI headers: lower-cased byte names, byte values (names cached: few distinct ones).

    With header_map = drop, names with "_" are left out as for WSGI: frameworks that build a
    WSGI-style META (Django) would let X_Forwarded_For pose as X-Forwarded-For.
    """
    out = []
    for name, value in headers:
        if drop_underscore and "_" in name:
            continue
        key = cache.get(name)
        if key is None:
            key = name.lower().encode("latin-1")
            if len(cache) < 512:
                cache[name] = key
        out.append((key, value.encode("latin-1")))
    return out


def app_headers(raw: Iterable[Any]) -> list[tuple[str, str]]:
    """The app's ``[(name, value), ...]`` byte pairs as the latin-1 strings the core takes."""
    try:
        # The common case, in one pass; anything that is not bytes fails here and is named below.
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
    except (AttributeError, TypeError, ValueError):
        pass
    out = []
    for pair in raw:
        name, value = pair
        if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"ASGI header names and values must be bytes, got {pair!r}")
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    return out


class ASGIGateway:
    """Everything one worker's HTTP cycles share: the app, scope parts, hooks, log, metrics."""

    def __init__(
        self,
        app: ASGIApp,
        worker: ServingWorker,
        metrics: Metrics,
        state: dict[str, Any],
        root_path: str,
    ) -> None:
        cfg: Config = worker.cfg
        self.app = app
        self.worker = worker
        self.cfg = cfg
        self.log = worker.log
        self.books = Bookkeeping(worker, metrics)
        self.activity = worker.scoreboard.mine()  # the loop's one thread
        self.state = state
        self.root_path = root_path
        server = cfg.server_header
        self.server_header: bytes | None = server.encode("latin-1") if server else None
        self._trusted = TrustedPeers(cfg.forwarded_allow_ips)
        self._client_from_proxy = bool(cfg.proxy_headers)
        self._schemes = SchemeHeaders(cfg.secure_scheme_headers)
        self._names: dict[str, bytes] = {}
        self._drop_underscore = cfg.header_map == "drop"

    def peer(self, peername: Any, sockname: Any) -> Peer:
        """Addresses of one accepted connection, and whether it may set the scheme."""
        client = _peer_tuple(peername)
        server: tuple[str, int | None] = _peer_tuple(sockname) or (str(sockname or ""), None)
        return Peer(client, server, self._trusted.trusts(client[0] if client else ""))

    def queue_time(self, req: Request, peer: Peer, queued: float) -> float:
        """How long the request waited before the app (a trusted proxy's X-Request-Start
        covers the wait in front of corral too); recorded in the metrics' histogram."""
        if peer.trusted:
            for name, value in req.headers:
                if len(name) == 15 and name.lower() == "x-request-start":
                    queued = proxy_queue_time(value, queued)
                    break
        if self.books.record_queue is not None:
            self.books.record_queue(queued)
        return queued

    def scope(self, kind: str, req: Request, peer: Peer) -> dict[str, Any]:
        """The ``http`` or ``websocket`` connection scope of one request (ASGI spec 2.4)."""
        tls = peer.tls
        key = (kind, tls is not None, peer.trusted)
        memo = req.memo
        if memo is not None and memo[0] is self and memo[1] == key:
            part, client = memo[2], memo[3]
        else:
            # What the head alone gives is kept on it for the head's repeats (one Request
            # serves them all: readers.parse_head_cached).
            part, client = self._head_part(kind, req, peer)
            req.memo = (self, key, part, client)
        scope: dict[str, Any] = part.copy()
        scope["headers"] = list(part["headers"])  # the app's own list: middleware changes it
        scope["client"] = client or peer.client
        scope["server"] = peer.server
        scope["state"] = self.state.copy()
        if kind == "http":
            scope["extensions"] = (
                {"http.response.trailers": {}}
                if tls is None
                else {"http.response.trailers": {}, "tls": tls}
            )
        return scope

    def _head_part(
        self, kind: str, req: Request, peer: Peer
    ) -> tuple[dict[str, Any], tuple[str, int] | None]:
        """The scope's keys that come from the head, and the client a trusted proxy named."""
        path = req.path
        scheme = "https" if peer.tls is not None else "http"
        if peer.trusted and self._schemes:
            scheme = self._schemes.scheme(req.headers) or scheme
        if kind == "websocket":
            scheme = "wss" if scheme == "https" else "ws"
        part: dict[str, Any] = {
            "type": kind,
            "asgi": ASGI_VERSION,
            "http_version": req.http_version,
            "method": req.method,
            "scheme": scheme,
            # The spec's path is percent-decoded and UTF-8 decoded; raw_path keeps the bytes.
            "path": unquote(path) if "%" in path else path,
            "raw_path": path.encode("latin-1"),
            "query_string": req.query.encode("latin-1"),
            "root_path": self.root_path,
            "headers": tuple(_lower_names(req.headers, self._names, self._drop_underscore)),
        }
        client = None
        if self._client_from_proxy and peer.trusted:
            name = forwarded_client(req.headers, self._trusted)
            if name is not None:
                client = (name, 0)
        return part, client

    def finish(
        self,
        req: Request,
        scope: Scope | None,
        peer: Peer,
        status: int,
        length: int,
        headers: list[tuple[str, str]],
        started: float,
        duration: float,
    ) -> None:
        """After every request, once: the shared bookkeeping (access log, hooks, metrics)."""
        if self.books.quiet:
            self.worker.request_done()
            return
        client = peer.client
        outcome = Outcome(
            client[0] if client else "",
            client[1] if client else None,
            status,
            length,
            headers,
            started,
            duration,
        )
        self.books.end(req, scope, _Response(status, headers, length), outcome)


class _Response:
    """What the ``post_request`` hook sees of an ASGI response."""

    __slots__ = ("headers", "response_length", "sent", "status", "status_code")

    def __init__(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
        self.status = self.status_code = status
        self.headers = headers
        self.response_length = self.sent = length


class HTTPCycle:
    """One request and its response: the app's ``receive`` and ``send``, and its outcome."""

    __slots__ = (
        "aborted",
        "arrived",
        "body_done",
        "body_sent",
        "channel",
        "client_left",
        "complete",
        "gateway",
        "head_sent",
        "headers",
        "in_app",
        "length",
        "peer",
        "req",
        "started",
        "status",
        "t0",
        "timed_out",
        "trailers",
    )

    def __init__(
        self,
        gateway: ASGIGateway,
        channel: HTTPChannel,
        req: Request,
        peer: Peer,
        arrived: float = 0.0,
    ) -> None:
        self.gateway = gateway
        self.channel = channel
        self.req = req
        self.peer = peer
        self.arrived = arrived  # time.monotonic() the head's first bytes came; 0: unknown
        self.t0 = 0.0  # when the app was called (the scoreboard reads it)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.started = False  # http.response.start received
        self.head_sent = False  # the head is on its way to the client
        self.trailers = False  # the app promised http.response.trailers
        self.body_sent = False  # the last http.response.body was sent
        self.complete = False  # the response is fully written
        self.aborted = False  # an error response went out instead: the connection closes
        self.body_done = False  # the request body was read to its end
        self.client_left = False  # receive() told the app http.disconnect before the response
        self.timed_out = False  # request_timeout cancelled the app (drivers/aio.py)
        self.in_app = False  # the app is running: request_timeout may stop it
        self.length = 0

    async def run(self) -> None:
        """Call the app; answer for it when it fails. ``complete`` tells the driver the outcome."""
        gateway = self.gateway
        req = self.req
        # Wall-clock time is only for the access log's %(t)s.
        started = time.time() if gateway.log.access_enabled else 0.0
        t0 = self.t0 = time.monotonic()
        scope: Scope | None = None
        queued = t0 - self.arrived if self.arrived else 0.0
        try:
            books = gateway.books
            if books.hooked:  # a copy for the hooks to change, and pre_request
                req = books.own(req)
                books.begin(req)
            scope = gateway.scope("http", req, self.peer)
            queued = gateway.queue_time(req, self.peer, queued)
            scope["extensions"]["corral"] = {"queue_time": queued}
            # request_timeout stops the app only while in_app, which is cleared inside this
            # try: a stop never lands in the bookkeeping below, which must reach cycle_done.
            self.in_app = True
            try:
                await gateway.app(scope, self.receive, self.send)
            finally:
                self.in_app = False
            if self.client_left and not self.complete:
                # A long poll whose client went away: returning without a response is what
                # the app should do then, not an error (uvicorn does not log it either).
                gateway.log.debug("client left before the response to %s", req.target)
                self.aborted = True
            elif not (self.complete or self.aborted or self.channel.disconnected):
                if not self.head_sent:
                    gateway.log.error(
                        "ASGI app returned without a complete response: %s", req.target
                    )
                    self._fail(500)
                else:
                    gateway.log.error("ASGI app returned during its response body: %s", req.target)
        except BaseException as exc:  # the error ladder; CancelledError is a stop only if timed out
            status = answer(
                exc,
                gateway.log,
                req,
                stops=_STOPS if self.timed_out else (),
                gone=self.channel.disconnected,
            )
            if status == 504:
                _uncancel()
            if status is not None:
                self._fail(status)
        took = time.monotonic() - t0
        gateway.activity.record(took, queued)
        gateway.finish(req, scope, self.peer, self.status, self.length, self.headers, started, took)
        # Called here rather than by a wrapping coroutine: one frame less per request.
        self.channel.cycle_done(self)

    def _fail(self, status: int) -> None:
        """An error page when no head went out yet; either way the connection closes."""
        self.complete = False
        self.aborted = True
        if self.head_sent or self.channel.disconnected:
            return
        self.head_sent = True
        self.status = status
        self.headers = []
        with contextlib.suppress(ClientDisconnected, LocalProtocolError):
            out = self.channel.conn.error_page(status, self.gateway.server_header)
            if out:
                self.channel.write(out)

    # -- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``http.request`` piece, then ``http.disconnect`` once the client goes."""
        if self.body_done or self.complete:
            if not self.complete:
                await self.channel.wait_disconnect()
                self.client_left = not self.complete
            return {"type": "http.disconnect"}
        body = await self._read_body()
        if body is None:
            self.client_left = not self.complete
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": not self.body_done}

    async def _read_body(self) -> bytes | None:
        """Body bytes from the core (at least one byte, or the end); None when the client left."""
        channel = self.channel
        conn = channel.conn
        interim = conn.send_continue()
        if interim:
            channel.write(interim)
        pieces: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                # A broken body: the app never sees the rest; the client gets the status.
                self.gateway.log.debug("bad request body for %s: %s", self.req.target, exc)
                self._fail(exc.status)
                self.body_done = True
                return None
            if type(event) is Data:
                pieces.append(event.data)
                size += len(event.data)
                if size < COALESCE:
                    continue
                break
            if type(event) is EndOfMessage:
                self.body_done = True
                break
            if event is NEED_DATA:
                if pieces:
                    break
                if not await channel.wait_data():
                    if channel.body_stalled:  # RFC 9110 §15.5.9; the connection then closes
                        self._fail(408)
                        self.body_done = True
                    return None
                continue
            return None  # PAUSED / ConnectionClosed: nothing more of this body
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Turn the app's response messages into HTTP bytes through the core."""
        channel = self.channel
        if self.aborted or (self.head_sent and channel.disconnected):
            raise ClientDisconnected("the connection is closed")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.status = int(message["status"])
            self.headers = app_headers(message.get("headers", ()))
            self.trailers = bool(message.get("trailers", False))
            return
        if self.complete:
            if self.channel.disconnected:
                raise ClientDisconnected("the client has closed the connection")
            raise RuntimeError(f"ASGI message {kind!r} after the response was complete")
        conn = channel.conn
        if kind == "http.response.body":
            out = self._body(conn, message)
        elif kind == "http.response.trailers" and self.trailers and self.body_sent:
            if message.get("more_trailers", False):
                raise RuntimeError("more_trailers is not supported by HTTP/1.1 framing")
            out = conn.send_end(app_headers(message.get("headers", ())))
            self.complete = True
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} during a response")
        if out:
            channel.write(out)
        if self.complete:
            # Even when the last message wrote nothing (an empty final body under the app's
            # own Content-Length): a receive() waiting for the disconnect must wake.
            channel.response_complete()
        if channel.write_blocked:  # an HTTP/2 stream queues its frames and writes b""
            await channel.drain()

    def _body(self, conn: Exchange, message: Message) -> bytes:
        if self.body_sent:
            raise RuntimeError("http.response.body after the last body message")
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        more = bool(message.get("more_body", False))
        if not self.head_sent:
            # The core validates the app's headers here; a bad one raises before anything
            # is marked as sent, so the client still gets a clean 500.
            if not more and not self.trailers:
                out = conn.send_full(self.status, self.headers, body)
                self.head_sent = self.body_sent = self.complete = True
                self.length = len(body)
                return out
            out = conn.send_response(self.status, self.headers)
            self.head_sent = True
            if body:
                out += conn.send_data(body)
        else:
            out = conn.send_data(body) if body else b""
        self.length += len(body)
        if not more:
            self.body_sent = True
            if not self.trailers:
                out += conn.send_end()
                self.complete = True
        return out


def _uncancel() -> None:
    """Forget the cancel request_timeout made, once it is answered (Python 3.11+ counts them)."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
