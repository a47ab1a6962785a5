"""The asyncio connection driver: socket bytes through the HTTP core into ASGI cycles."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from corral.drivers.awaits import await_stack
from corral.drivers.policy import (
    DRAIN_LIMIT,
    LINGER_BYTES,
    LINGER_SECONDS,
    ConnectionPolicy,
)
from corral.drivers.tls import asgi_extension
from corral.gateway.asgi import ASGIGateway, HTTPCycle, Peer
from corral.gateway.ladder import ClientDisconnected
from corral.gateway.websocket import WebSocketSession, WSSettings
from corral.gateway.ws_handshake import is_websocket_upgrade
from corral.http.connection import ServerConnection
from corral.http.errors import ProtocolError, render_error
from corral.http.events import NEED_DATA, PAUSED, Data, EndOfMessage, Request

# Request bytes we take in while the app is not reading them; past this we stop reading.
READ_HIGH = 256 * 1024
# Python 3.12+: a request's task runs its first step at once, in the callback that read the
# request, with current_task() already set to it (asyncio's eager_start). A request the app
# answers without waiting on anything ends there and is never scheduled on the loop: about a
# tenth of the instructions of a small request. Earlier Pythons schedule every task.
EAGER = sys.version_info >= (3, 12)


class Connection(Protocol):
    """What the worker asks of each connection: HTTP/1.1 (HTTPProtocol) or HTTP/2."""

    def tick(self, now: float) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self, cancel: bool = False) -> None: ...

    def tasks(self) -> list[asyncio.Task[None]]: ...

    def running(self) -> list[tuple[HTTPCycle, asyncio.Task[None]]]: ...


@dataclass
class AioContext:
    """What every connection of one asyncio worker shares."""

    gateway: ASGIGateway
    policy: ConnectionPolicy
    websocket: WSSettings
    tls: ssl.SSLContext | None = None  # certfile set: every connection is TLS
    request_timeout: float = 0.0  # an HTTP request's task is cancelled past this; 0: never
    connections: set[Connection] = field(default_factory=set)
    on_closed: Callable[[], None] = lambda: None

    def claim_late(self, task: asyncio.Task[Any]) -> bool:
        """request_timeout, while app code holds the loop: whether ``task`` is a request's, to
        be stopped (its cycle then answers 504). Only called when the loop stalls, so a scan.
        A cycle whose app has returned, or whose response is complete, is not stopped."""
        for proto in self.connections:
            for cycle, running in proto.running():
                if running is task and _may_stop(cycle):
                    cycle.timed_out = True
                    return True
        return False

    def time_out(self, cycle: HTTPCycle, task: asyncio.Task[Any], peer: Peer, ran: float) -> None:
        """request_timeout: log where the app's task waits, then cancel it (HTTPCycle answers)."""
        if task.done() or not _may_stop(cycle):
            return
        req = cycle.req
        self.gateway.log.error(
            "Request %s %s from %s has run %.1f s, over request_timeout (%g s); cancelling it. "
            "Stack:\n%s",
            req.method,
            req.target,
            peer.client[0] if peer.client else "-",
            ran,
            self.request_timeout,
            await_stack(task.get_coro()),
        )
        cycle.timed_out = True
        task.cancel()


class HTTPProtocol(asyncio.Protocol):
    """One client connection: feeds the HTTP core and runs one ASGI cycle at a time."""

    def __init__(self, ctx: AioContext, peername: Any, sockname: Any) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        limits, self.proxied = ctx.policy.limits_for(peername)
        self.conn = ServerConnection(limits, server_header=ctx.gateway.server_header)
        self.peer: Peer = ctx.gateway.peer(peername, sockname)
        self.transport: asyncio.Transport | None = None
        self.cycle: HTTPCycle | None = None
        self.ws: WebSocketSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.starting = False  # a cycle's task is running its eager first step (EAGER)
        self.lost = False
        self.eof = False
        self.in_head = False
        self.draining = False
        self.drained = 0
        self.lingering = False
        self.lingered = 0
        self.write_paused = False
        self.write_blocked = False  # write_paused or lost: drain() would wait or raise
        self.read_paused = False
        self.stalled_at = 0.0  # since when the cycle waits on the client (0: it does not)
        self.stall_limit = 0.0  # how long it may: body_timeout or send_timeout
        self.body_stalled = False  # the request body stopped arriving for body_timeout
        self.cycle_began = 0.0  # loop time the current cycle started, with request_timeout
        self.arrived = 0.0  # when the current head's first bytes came (queue time)
        self.closing_at = 0.0
        self.unread = 0
        self.deadline = self.loop.time() + ctx.policy.header_timeout
        self._drain_waiter: asyncio.Future[None] | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._gone_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.ctx.connections.add(self)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:  # the handshake is done: what it says goes into every scope
            self.peer.tls = asgi_extension(tls)
            if tls.selected_alpn_protocol() == "h2" and self.ctx.policy.http2 is not None:
                self._to_h2(b"")

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.lingered += len(data)
            if self.lingered > LINGER_BYTES:
                self.close()
            return
        if self.ws is not None:
            self.ws.feed(data)
            return
        self.conn.receive_data(data)
        if self.cycle is not None:
            self.unread += len(data)
            if self.unread > READ_HIGH:
                self.pause_reading()
            _wake(self._data_waiter)
        elif self.draining:
            self._finish_body()
        else:
            if not self.in_head:
                self.in_head = True
                self.arrived = self.loop.time()
                self.deadline = self.arrived + self.ctx.policy.header_timeout
            self._next_request()

    def eof_received(self) -> bool:
        self.eof = True
        if self.ws is not None or self.lingering:
            return False  # close; for a WebSocket, connection_lost reports 1006
        self.conn.receive_data(b"")
        _wake(self._data_waiter)
        _wake(self._gone_waiter)
        if self.cycle is None:
            if self.draining:
                self._finish_body()
            else:
                self._next_request()
        # Keep the sending side open: a client that half-closes still gets its response
        # (TLS has no half-close: there the transport closes either way).
        return self.peer.tls is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.write_blocked = True
        self.ctx.connections.discard(self)
        _wake(self._drain_waiter)
        _wake(self._data_waiter)
        _wake(self._gone_waiter)
        if self.ws is not None:
            self.ws.connection_lost()
        self.ctx.on_closed()

    def pause_writing(self) -> None:
        self.write_paused = self.write_blocked = True
        self.stalled_at = self.loop.time()
        self.stall_limit = self.ctx.policy.send_timeout

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_blocked = self.lost
        self.stalled_at = 0.0
        _wake(self._drain_waiter)

    # -- the channel the gateway writes to and reads from ----------------------------------

    @property
    def disconnected(self) -> bool:
        """The transport is gone: nothing more can be written."""
        return self.lost

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer."""
        transport = self.transport
        if self.lost or transport is None or transport.is_closing():
            raise ClientDisconnected("the client has closed the connection")
        transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self.write_paused and not self.lost:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self.lost:
            raise ClientDisconnected("the client has closed the connection")

    async def wait_data(self) -> bool:
        """Wait for more request bytes; False when the peer will send none."""
        if self.lost or self.eof:
            return False
        self.unread = 0
        self.resume_reading()
        self._data_waiter = self.loop.create_future()
        self.stalled_at = self.loop.time()
        self.stall_limit = self.ctx.policy.body_timeout
        try:
            await self._data_waiter
        finally:
            self._data_waiter = None
            self.stalled_at = 0.0
        return not (self.lost or self.body_stalled)

    async def wait_disconnect(self) -> None:
        """Wait until the peer closes its side or the connection is lost."""
        if self.lost or self.eof:
            return
        self._gone_waiter = self.loop.create_future()
        try:
            await self._gone_waiter
        finally:
            self._gone_waiter = None

    def response_complete(self) -> None:
        """The response is written: a ``receive()`` waiting for disconnect may return."""
        if self._gone_waiter is not None:
            _wake(self._gone_waiter)

    def pause_reading(self) -> None:
        """Stop reading until resume_reading() (the app is not keeping up)."""
        if not self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the peer again."""
        if self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Flush what is queued, then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- requests ----------------------------------------------------------------------------

    def _next_request(self) -> None:
        """Hand the next complete request head to a cycle, or wait for more bytes."""
        conn = self.conn
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            turn = self.ctx.policy.preface(exc.status, conn)
            if turn == "h2":
                if self.proxied:
                    self._apply_proxy()
                self._to_h2(conn.trailing_data)
            elif turn == "more":
                conn.rewind()
            else:
                self._reject(exc.status)
            return
        if type(event) is Request:
            self._start(event)
        elif event is NEED_DATA:
            return
        else:  # ConnectionClosed, or PAUSED after a protocol switch we did not make
            self.close()

    def _start(self, req: Request) -> None:
        self.in_head = False
        ctx = self.ctx
        if self.proxied:
            self._apply_proxy()
        if ctx.policy.must_close(req, self.conn):
            self.conn.close_after()
        health = ctx.policy.health(req, self.conn)
        if health is not None:
            self._answer_health(health)
            return
        if req.upgrade is not None:
            if is_websocket_upgrade(req):
                self._start_websocket(req)
                return
            if req.upgrade == "h2c" and self._upgrade_h2c(req):
                return
        cycle = HTTPCycle(ctx.gateway, self, req, self.peer, self.arrived)
        self.cycle = cycle
        if ctx.request_timeout:
            self.cycle_began = self.loop.time()
        if not EAGER or self.starting or self.loop.get_task_factory() is not None:
            # A request pipelined behind one that ran eagerly starts from the loop: run here,
            # each would nest inside the one before it. A task factory the app installed
            # (tracing, say) makes every request's task, as it did before.
            self.task = self.loop.create_task(cycle.run())
            return
        self.starting = True
        try:
            task = asyncio.Task(cycle.run(), loop=self.loop, eager_start=True)  # type: ignore[call-arg]
        finally:
            self.starting = False
        if not task.done():  # else its cycle_done ran: this connection has moved on
            self.task = task

    def _upgrade_h2c(self, req: Request) -> bool:
        """``Upgrade: h2c`` (RFC 7540 §3.2), when allowed and the request has no body: 101,
        then HTTP/2, with this request as stream 1. Otherwise it is served on HTTP/1.1."""
        h2 = self.ctx.policy.http2
        if h2 is None or not h2.upgrade or req.content_length or req.chunked:
            return False
        from corral.http2.session import H2Session  # h2 only when a client asks for it

        settings = next((v for n, v in req.headers if n.lower() == "http2-settings"), None)
        if self.peer.tls is not None or settings is None:
            return False
        if not H2Session.upgrade_settings_ok(settings.encode("latin-1")):
            return False
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        if type(self.conn.next_event()) is EndOfMessage:
            self._to_h2(self.conn.trailing_data, (req, settings.encode("latin-1")))
        else:
            self.close()
        return True

    def _to_h2(self, data: bytes, upgraded: tuple[Request, bytes] | None = None) -> None:
        """Hand the connection to HTTP/2 (h2 is imported only when a client asks for it)."""
        from corral.drivers.h2aio import H2Protocol

        self.ctx.connections.discard(self)
        assert self.transport is not None
        self.in_head = False
        proto = H2Protocol(self.ctx, self.peer)
        proto.begin(self.transport, data, upgraded)
        if self.ctx.policy.closing:  # it began after a graceful stop: GOAWAY at once
            proto.shutdown()

    def _answer_health(self, response: bytes) -> None:
        """A health check, answered here without the app; then on to the next request."""
        if self.transport is not None and not self.lost:
            self.transport.write(response)
        if not self.conn.keep_alive:  # Connection: close, HTTP/1.0, a worker stopping
            self._linger()
            return
        self.drained = 0
        self._finish_body()

    def _apply_proxy(self) -> None:
        self.proxied = False
        proxy = self.conn.proxy
        if proxy is not None and proxy.src_addr:
            client = (proxy.src_addr, proxy.src_port or 0)
            self.peer = self.ctx.gateway.peer(client, self.peer.server)

    def _start_websocket(self, req: Request) -> None:
        ctx = self.ctx
        session = WebSocketSession(ctx.gateway, ctx.websocket, self, req, self.peer, self.loop)
        self.ws = session
        self.task = self.loop.create_task(session.run())

    def cycle_done(self, cycle: HTTPCycle) -> None:
        """The cycle's task is ending: discard what is left of the body, serve the next request."""
        self.cycle = None
        self.task = None
        if self.lost:
            return
        if self.read_paused:
            self.resume_reading()
        if not cycle.complete or not self.conn.keep_alive:
            self._linger()
            return
        self.drained = 0
        self._finish_body()

    def _finish_body(self) -> None:
        """Read past what the app left of the body, then serve the next request."""
        conn = self.conn
        self.draining = False
        while True:
            try:
                event = conn.next_event()
            except ProtocolError:
                self.close()
                return
            if event is PAUSED or type(event) is EndOfMessage:
                break  # PAUSED: the app read the body to its end itself
            if type(event) is Data:
                self.drained += len(event.data)
                if self.drained > DRAIN_LIMIT:
                    self._linger()
                    return
            elif event is NEED_DATA:
                self.draining = True
                self.deadline = self.ctx.policy.idle_until(self.loop.time())
                return
            else:
                self.close()
                return
        # The callers saw keep_alive (cycle_done, _answer_health); reading the body's rest
        # cannot take it back (a broken body closed above).
        conn.start_next_cycle()
        self.deadline = self.ctx.policy.idle_until(self.loop.time())
        if conn.buffered or conn.peer_closed:  # else the next head is still to come
            self._next_request()

    def _reject(self, status: int) -> None:
        """Answer a request the core refused, then close."""
        transport = self.transport
        if transport is None or self.lost:
            return
        if not transport.is_closing():
            transport.write(render_error(status, server=self.ctx.gateway.server_header))
        self._linger()

    def linger(self) -> None:
        """A failed WebSocket (WSChannel): close after its close frame, lingering as below."""
        self._linger()

    def _linger(self) -> None:
        """Close after our last response; first stop sending and read what is in flight.

        Closing with unread input makes the kernel send RST, which can destroy the response
        before the client reads it (RFC 9112 §9.6); so half-close, discard input for a
        bounded time, and close when the client does.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        self.resume_reading()
        self.deadline = self.loop.time() + LINGER_SECONDS
        transport.write_eof()

    # -- the worker's once-a-second sweep and graceful stop ----------------------------------

    def tick(self, now: float) -> None:
        """Enforce deadlines: stalls, header_timeout (408), keepalive, lingering, pings."""
        transport = self.transport
        if transport is None or self.lost:
            return
        if closing(self, transport, now):
            return
        if self.stalled_at and now - self.stalled_at > self.stall_limit:
            self._stalled(now)
            return
        if self.ws is not None and not self.lingering:
            self.ws.tick(now)
            return
        cycle = self.cycle
        if cycle is not None:
            limit = self.ctx.request_timeout
            if limit and now - self.cycle_began > limit and self.task is not None:
                self.ctx.time_out(cycle, self.task, self.peer, now - self.cycle_began)
            return
        if now < self.deadline:
            return
        if self.in_head and not self.lingering:
            # RFC 9110 §15.5.9: 408 for a request head that did not arrive in time.
            self.ctx.gateway.log.debug("request head timed out")
            self.in_head = False
            self._reject(408)
            return
        self.close()

    def _stalled(self, now: float) -> None:
        """The client stopped sending its body (body_timeout: the cycle answers 408 when it
        can, and the app receives http.disconnect) or reading our response (send_timeout: the
        connection is dropped, and the app's send() fails)."""
        self.ctx.gateway.log.debug("client stalled for %.0fs", now - self.stalled_at)
        self.stalled_at = 0.0
        if self._data_waiter is not None and not self.write_paused:
            self.body_stalled = True
            _wake(self._data_waiter)
        else:
            self.abort()

    def shutdown(self) -> None:
        """Graceful stop: the response in flight closes the connection; an idle one is kept
        until the policy's stop deadline, so that a request already on its way is answered
        (with Connection: close) rather than racing our close."""
        if self.ws is not None:
            self.ws.going_away()
        elif self.cycle is not None or self.draining:
            if not self.conn.buffered:  # pipelined requests are answered first
                self.conn.close_after()
        elif not self.in_head:
            self.deadline = min(self.deadline, self.ctx.policy.stop_idle_by)

    def tasks(self) -> list[asyncio.Task[None]]:
        """The app's task on this connection (an HTTP cycle's or a WebSocket's), if any."""
        return [] if self.task is None else [self.task]

    def running(self) -> list[tuple[HTTPCycle, asyncio.Task[None]]]:
        """The HTTP cycle in flight, with its task."""
        cycle, task = self.cycle, self.task
        if cycle is not None and task is None and self.starting:
            # Asked from inside the eager first step (request_timeout stopping an app that
            # holds the loop): the task is not ours to hold yet, but it is the one running.
            task = asyncio.current_task(self.loop)
        return [] if cycle is None or task is None else [(cycle, task)]

    def abort(self, cancel: bool = False) -> None:
        """Drop the connection now; ``cancel`` also cancels the app (the worker is exiting)."""
        if cancel and self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()


class _Closes(Protocol):
    closing_at: float  # when the sweep first saw the transport closing; 0: not yet


def closing(conn: _Closes, transport: asyncio.Transport, now: float) -> bool:
    """Whether ``transport`` is closing (nothing else to sweep on it). close() waits for the
    write buffer to drain, and a peer that never reads would hold the connection forever: past
    LINGER_SECONDS it is aborted."""
    if not transport.is_closing():
        return False
    if not conn.closing_at:
        conn.closing_at = now
    elif now - conn.closing_at > LINGER_SECONDS:
        transport.abort()
    return True


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _may_stop(cycle: HTTPCycle) -> bool:
    """request_timeout times a request until its response is complete: work an app does after
    that (a background task) is not stopped, while a streamed response is, however long."""
    return cycle.in_app and not cycle.complete and not cycle.timed_out
