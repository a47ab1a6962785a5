"""The connection driver of the sync and threaded workers: socket bytes through the HTTP core."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from corral.drivers.transport import (
    NOWAIT,
    RECV_SIZE,
    ClientDisconnected,
    SocketTransport,
)
from corral.gateway.wsgi import WSGIGateway
from corral.http.connection import Limits, ServerConnection
from corral.http.errors import ProtocolError, render_error
from corral.http.events import NEED_DATA, ConnectionClosed, Request
from corral.lifecycle import RequestLifecycle

# Lingering close after an error response: how long, and how many reads, at most.
LINGER_SECONDS = 0.5
LINGER_READS = 16


@dataclass
class DriverContext:
    """What every connection of one worker shares."""

    lifecycle: RequestLifecycle
    gateway: WSGIGateway
    limits: Limits
    proxy_limits: Limits | None  # used for peers allowed to send a PROXY preamble
    proxy_peers: Any  # TrustedPeers for proxy_allow_ips, or None
    io_timeout: float  # one stalled read or write of a request in progress
    header_timeout: float  # whole request head, from its first byte
    keepalive: float  # idle time allowed between requests
    closing: bool = False  # graceful stop: answer what arrives with Connection: close


class Session:
    """One client connection: feeds the HTTP core and runs each complete request.

    A session never holds a thread while it waits: the caller reads what the socket has, and
    the session runs requests only once a whole head is buffered.
    """

    __slots__ = (
        "conn",
        "ctx",
        "deadline",
        "env_base",
        "errored",
        "fd",
        "in_head",
        "proxied",
        "sock",
        "transport",
        "trusted",
    )

    def __init__(self, sock: socket.socket, peer: Any, sockname: Any, ctx: DriverContext) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.ctx = ctx
        limits = ctx.limits
        self.proxied = False
        if ctx.proxy_limits is not None and ctx.proxy_peers is not None:
            addr = peer[0] if isinstance(peer, tuple) else ""
            if ctx.proxy_peers.trusts(addr):
                limits = ctx.proxy_limits
                self.proxied = True
        self.conn = ServerConnection(limits, server_header=ctx.lifecycle.server_header)
        self.transport = SocketTransport(sock, ctx.io_timeout)
        self.env_base, self.trusted = ctx.gateway.connection_environ(peer, sockname)
        self.in_head = False
        self.errored = False
        self.deadline = time.monotonic() + ctx.header_timeout

    def read_ready(self) -> bool:
        """Read what the socket holds now and serve every complete request; False to close."""
        try:
            data = self.sock.recv(RECV_SIZE, NOWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return self.take(data)

    def wait_next(self) -> bytes | None:
        """Block for the client's next bytes, up to the socket's receive timeout.

        None when nothing came in time; ``b""`` when the peer closed or the connection failed.
        Only for a socket set up by ``wait_in_kernel``: on a non-blocking one it is None at once.
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
        ctx = self.ctx
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                self.reject(exc.status)
                return False
            if event is NEED_DATA:
                # A head has begun when this read brought bytes, or when a pipelined request
                # left the start of the next one behind: either way header_timeout applies.
                if not self.in_head and (got_bytes or conn.buffered):
                    self.in_head = True
                    self.deadline = time.monotonic() + ctx.header_timeout
                return True
            if type(event) is Request:
                self.in_head = False
                if self.proxied and conn.proxy is not None:
                    self._apply_proxy()
                if ctx.closing or ctx.keepalive <= 0 or ctx.lifecycle.worker.last_request():
                    # Say so in this response rather than drop the connection after it: a
                    # client (or load balancer) reusing it would race our close.
                    conn.close_after()
                if not ctx.lifecycle.handle(
                    event, conn, self.transport, self.env_base, self.trusted
                ):
                    return False
                conn.start_next_cycle()
                self.deadline = time.monotonic() + ctx.keepalive
                got_bytes = False
                continue
            if type(event) is ConnectionClosed:
                return False
            # PAUSED after an upgrade request: a WSGI app cannot take the connection over.
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
        if self.in_head:
            self.errored = True
            try:
                self.sock.send(render_error(408, server=self.ctx.lifecycle.server_header), NOWAIT)
            except OSError:
                pass

    def close(self, linger: float = LINGER_SECONDS) -> None:
        """Close the socket; after an error response, linger up to ``linger`` seconds first.

        Closing with unread bytes in the receive queue makes the kernel send RST, which can
        destroy the error response before the client reads it. So after an error we stop
        sending, then read and discard what the peer still sends, for a bounded time and
        amount (the "lingering close" of RFC 9112 §9.6), before closing. With ``linger`` 0,
        only what has already arrived is discarded.
        """
        sock = self.sock
        if self.errored:
            try:
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + linger
                for _ in range(LINGER_READS):
                    if not self.transport.recv_by(deadline):
                        break
            except (OSError, ClientDisconnected):
                pass  # reset, or nothing more within the linger time
        sock.close()
