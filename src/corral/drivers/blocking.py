"""The connection driver of the sync and threaded workers: socket bytes through the HTTP core."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from corral.drivers.keepgil import SendMode
from corral.drivers.policy import LINGER_BYTES, LINGER_SECONDS, ConnectionPolicy
from corral.drivers.transport import RECV_SIZE, SocketTransport, wait_fd
from corral.gateway.ladder import ClientDisconnected
from corral.gateway.lifecycle import RequestLifecycle
from corral.gateway.wsgi import WSGIGateway
from corral.http.connection import ServerConnection
from corral.http.errors import ProtocolError, render_error
from corral.http.events import NEED_DATA, EndOfMessage, Request

if TYPE_CHECKING:
    import ssl

    from corral.drivers.tls_socket import TLSTransport


@dataclass
class DriverContext:
    """What every connection of one worker shares."""

    lifecycle: RequestLifecycle
    gateway: WSGIGateway
    policy: ConnectionPolicy
    tls: ssl.SSLContext | None = None  # certfile set: every connection is TLS
    ragged_eofs_ok: bool = True  # suppress_ragged_eofs
    # Whether writes keep the GIL: the threaded worker turns it on while its pool is crowded.
    sends: SendMode = field(default_factory=SendMode)


class Session:
    """One client connection: feeds the HTTP core and runs each complete request.

    A session never holds a thread while it waits: the caller reads what the socket has, and
    the session runs requests only once a whole head is buffered.
    """

    __slots__ = (
        "arrived",
        "conn",
        "ctx",
        "deadline",
        "env_base",
        "errored",
        "fd",
        "h2_start",
        "handshaking",
        "held",
        "idle_since",
        "in_head",
        "proxied",
        "sock",
        "transport",
        "trusted",
    )

    def __init__(self, sock: socket.socket, peer: Any, sockname: Any, ctx: DriverContext) -> None:
        policy = ctx.policy
        self.handshaking = ctx.tls is not None
        self.transport: SocketTransport
        if ctx.tls is not None:
            # Imported here: a server without TLS never loads ssl (tls_socket.py).
            from corral.drivers.tls_socket import TLSTransport

            # The handshake is driven by read_ready (or finish_handshake), never blocking.
            sock.setblocking(False)
            sock = ctx.tls.wrap_socket(
                sock,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=ctx.ragged_eofs_ok,
            )
            self.transport = TLSTransport(
                sock, policy.body_timeout, policy.send_timeout, ctx.ragged_eofs_ok
            )
        else:
            self.transport = SocketTransport(
                sock, policy.body_timeout, policy.send_timeout, ctx.sends
            )
        self.sock = sock
        self.fd = sock.fileno()
        self.ctx = ctx
        limits, self.proxied = policy.limits_for(peer)
        self.conn = ServerConnection(limits, server_header=ctx.lifecycle.server_header)
        scheme = "https" if self.handshaking else "http"
        self.env_base, self.trusted = ctx.gateway.connection_environ(peer, sockname, scheme)
        # A TLS handshake counts as the head: header_timeout bounds it, and the sweep drops a
        # client that stalls in it (without a 408, which it could not read).
        self.in_head = self.handshaking
        self.held: Request | None = None  # a request whose body is still being gathered
        # Set when the client turns to HTTP/2: the bytes it sent already and, for h2c, the
        # upgrading request and its HTTP2-Settings; the worker hands the connection over.
        self.h2_start: tuple[bytes, tuple[Request, bytes] | None] | None = None
        self.errored = False
        self.idle_since = time.monotonic()
        self.deadline = self.idle_since + policy.header_timeout
        # When the next request was first seen, for its queue time: its connection's accept,
        # or the first bytes of a head read in parts; 0 when it is read whole (just now).
        self.arrived = self.idle_since

    def read_ready(self) -> bool:
        """Read what the socket holds now and serve every complete request; False to close."""
        if self.handshaking and not self._handshake():
            return False
        if self.h2_start is not None:
            return False  # ALPN chose h2
        transport = self.transport
        while not self.handshaking:
            data = transport.recv_now()
            if data is None:
                return True
            if not self.take(data):
                return False
            # Read on while a TLS record was read only in part, or while a body is gathered:
            # what the kernel already holds is read now, not after a round trip through epoll.
            if self.held is None and not transport.pending():
                return True
        return True

    def finish_handshake(self) -> bool:
        """The sync worker's wait for the TLS handshake, bounded by header_timeout."""
        while self.handshaking:
            if not self._handshake():
                return False
            if self.handshaking and not wait_fd(
                self.fd, select.POLLIN, self.deadline - time.monotonic()
            ):
                return False
        return True

    def _handshake(self) -> bool:
        """One step of the TLS handshake; False when it failed (the connection then closes)."""
        transport = cast("TLSTransport", self.transport)
        done = transport.handshake(self.ctx.lifecycle.log.debug)
        if done is None:
            return True  # the client's next flight: epoll (or the caller) waits for it
        if not done:
            return False
        self.handshaking = self.in_head = False
        self.env_base = {**self.env_base, **transport.environ()}
        if transport.alpn() == "h2" and self.ctx.policy.http2 is not None:
            self.h2_start = (b"", None)
        return True

    def wait_next(self) -> bytes | None:
        """Block for the client's next bytes, up to the socket's receive timeout.

        None when nothing came in time; ``b""`` when the peer closed or the connection failed.
        Only for a socket accepted by a ``Listening`` given ``recv_wait`` (the threaded worker's):
        on a non-blocking one it is None at once.
        """
        try:
            return self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def take(self, data: bytes) -> bool:
        """Feed bytes read from the socket and serve what they complete; False to close."""
        self.conn.receive_data(data)
        return self.serve_buffered(bool(data))

    def serve_buffered(self, got_bytes: bool = True) -> bool:
        """Serve the requests already buffered; False when the connection must close."""
        conn = self.conn
        policy = self.ctx.policy
        while True:
            req = self._next_request(got_bytes)
            if req is None:
                return True  # waiting for more bytes
            if req is False:
                return False
            if policy.must_close(req, conn):
                conn.close_after()
            health = policy.health(req, conn) if policy.health_path else None
            if not self._serve(req, health):
                return False
            conn.start_next_cycle()
            self.idle_since = time.monotonic()
            self.deadline = policy.idle_until(self.idle_since)
            self.arrived = 0.0
            if not conn.buffered and not conn.peer_closed:
                return True  # nothing pipelined: the common case needs no look at the parser
            got_bytes = False

    def _next_request(self, got_bytes: bool) -> Request | Literal[False] | None:
        """The next request ready to serve (its head, and its body when gathered); None while
        more bytes are needed; False when the connection must close."""
        conn = self.conn
        policy = self.ctx.policy
        if self.held is not None:
            if conn.buffered_size < (self.held.content_length or 0):
                if conn.peer_closed:
                    return False  # the body will never be whole
                if got_bytes:  # still coming: the stall limit starts again
                    self.deadline = time.monotonic() + policy.body_timeout
                return None
            req, self.held, self.in_head = self.held, None, False
            self.arrived = 0.0  # the body's wait was the client's, not a queue
            return req
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            turn = policy.preface(exc.status, conn)
            if turn == "more":
                conn.rewind()
                return None
            if turn == "h2":
                if self.proxied and conn.proxy is not None:
                    self._apply_proxy()
                self.h2_start = (conn.trailing_data, None)
            else:
                self.reject(exc.status)
            return False
        if event is NEED_DATA:
            # A head has begun when this read brought bytes, or when a pipelined request left
            # the start of the next one behind: either way header_timeout applies.
            if not self.in_head and (got_bytes or conn.buffered):
                self.in_head = True
                self.arrived = time.monotonic()
                self.deadline = self.arrived + policy.header_timeout
            return None
        if type(event) is not Request:
            # ConnectionClosed, or PAUSED after an upgrade request: a WSGI app cannot take the
            # connection over.
            return False
        self.in_head = False
        if self.proxied and conn.proxy is not None:
            self._apply_proxy()
        if event.upgrade == "h2c" and self._upgrade_h2c(event):
            return False
        if event.content_length and policy.gathers(event, conn) and not conn.peer_closed:
            # In epoll, not on a thread, until the body is here (or stalls past body_timeout,
            # when the sweep answers 408 as for a head).
            self.held, self.in_head = event, True
            self.deadline = time.monotonic() + policy.body_timeout
            return None
        return event

    def _upgrade_h2c(self, req: Request) -> bool:
        """``Upgrade: h2c`` (RFC 7540 §3.2), when allowed and the request has no body: 101,
        and the connection goes to HTTP/2 with this request as stream 1. Otherwise the request
        is served on HTTP/1.1, as RFC 9110 §7.8 allows."""
        h2 = self.ctx.policy.http2
        settings = next((v for n, v in req.headers if n.lower() == "http2-settings"), None)
        if h2 is None or not h2.upgrade or settings is None:
            return False
        if req.content_length or req.chunked or self.ctx.tls is not None:
            return False
        from corral.http2.session import H2Session  # h2 only when a client asks for it

        if not H2Session.upgrade_settings_ok(settings.encode("latin-1")):
            return False
        if type(self.conn.next_event()) is not EndOfMessage:
            return False
        self.transport.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        self.h2_start = (self.conn.trailing_data, (req, settings.encode("latin-1")))
        return True

    def _serve(self, req: Request, health: bytes | None) -> bool:
        """One request: the app's, or a health check answered here; True to keep going."""
        if health is None:
            return self.ctx.lifecycle.handle(
                req, self.conn, self.transport, self.env_base, self.trusted, self.arrived
            )
        try:
            self.transport.sendall(health)
            # A health check with a body is odd enough to end the connection.
            return type(self.conn.next_event()) is EndOfMessage and self.conn.keep_alive
        except (ProtocolError, ClientDisconnected):
            return False

    def _apply_proxy(self) -> None:
        proxy = self.conn.proxy
        self.proxied = False
        if proxy is None or not proxy.src_addr:
            return
        self.env_base = dict(self.env_base)
        self.env_base["REMOTE_ADDR"] = proxy.src_addr
        self.env_base["REMOTE_PORT"] = str(proxy.src_port)

    def reject(self, status: int) -> None:
        """Answer a request the core refused, then let the caller close."""
        self.errored = True
        try:
            self.transport.sendall(render_error(status, server=self.ctx.lifecycle.server_header))
        except ClientDisconnected:
            pass

    def expire(self) -> None:
        """Past the deadline: a head still arriving gets 408 (RFC 9110 §15.5.9); idle closes."""
        if self.in_head and not self.handshaking:
            self.errored = True
            self.transport.send_now(render_error(408, server=self.ctx.lifecycle.server_header))

    def close(self, linger: float = LINGER_SECONDS) -> None:
        """Close the socket so that our last response is not destroyed by a reset.

        Closing with unread input makes the kernel send RST, which can destroy a response before
        the client reads it (RFC 9112 §9.6). After an error, or when the client has sent more
        than we served (a pipelined request after a Connection: close response), we stop
        sending, then read and discard what it still sends, for a bounded time and amount,
        before closing. With ``linger`` 0 only what has already arrived is discarded.
        """
        sock = self.sock
        if self.ctx.tls is not None and not self.handshaking:
            cast("TLSTransport", self.transport).close_notify()
        if self.errored or self.has_input():
            try:
                sock.shutdown(socket.SHUT_WR)  # on TLS, the raw socket's from here on
                deadline = time.monotonic() + linger
                discarded = 0
                while discarded < LINGER_BYTES:
                    data = SocketTransport.recv_by(self.transport, deadline)
                    if not data:
                        break
                    discarded += len(data)
            except (OSError, ClientDisconnected):
                pass  # reset, or nothing more within the linger time
        sock.close()

    def has_input(self) -> bool:
        """Whether the client has sent input we have not read."""
        return self.transport.has_input()
