"""One connection policy for every worker: when a connection ends, and how it ends without loss."""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from corral.gateway.exchange import Exchange
from corral.gateway.forwarded import TrustedPeers
from corral.http.connection import Limits, ServerConnection
from corral.http.events import Request
from corral.http2.settings import PREFACE, HTTP2Policy

# After our last response on a connection (an error, or one that said Connection: close) the
# client may still be sending: closing with unread input makes the kernel answer with RST, which
# can destroy that response before the client reads it (RFC 9112 §9.6). So we stop sending and
# read and discard what comes, for this long and this much at most, before closing.
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024
# Unread request body read and discarded to keep a connection; past this, closing is cheaper.
DRAIN_LIMIT = 256 * 1024
# A request body up to this size is gathered before the app runs, while the connection waits in
# epoll: a client trickling its body then holds a descriptor, not one of the pool's threads.
BODY_BUFFER = 256 * 1024
# A stopping worker keeps its idle kept-alive connections open this long at most (never longer
# than their keepalive), so that a request a client is already sending on one is answered, with
# Connection: close, instead of racing our close. gunicorn 27's gthread waits the same 2 s.
STOP_KEEPALIVE_LINGER = 2.0
# accept() failing for want of descriptors or memory: the listener rests this long (or until
# one of the worker's connections closes, freeing a descriptor), and the failure is logged once
# per rest rather than once per attempt.
ACCEPT_PAUSE = 1.0
_SCARCE = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class PolicyWorker(Protocol):
    """What the policy needs to know of its worker process."""

    def last_request(self) -> bool:
        """The next request spends the max_requests budget."""
        ...

    def draining(self) -> bool:
        """The whole server is shutting down (TERM), not just this worker retiring."""
        ...


@dataclass
class ConnectionPolicy:
    """The rules every worker's connections follow, whatever drives their I/O.

    Both drivers (blocking, asyncio) ask it the same questions: which limits a peer gets, whether
    a response must close its connection, how long an idle connection lives, whether a request
    is a health check. A rule changed here changes for sync, threaded and asyncio at once.
    """

    limits: Limits
    proxy_limits: Limits | None  # for peers allowed to send a PROXY preamble
    proxy_peers: TrustedPeers | None  # proxy_allow_ips
    body_timeout: float  # a request body that stops arriving (408)
    send_timeout: float  # a response the client stops reading
    header_timeout: float  # a whole request head, from its first byte
    keepalive: float  # idle time allowed between requests
    worker: PolicyWorker
    health_path: str = ""  # answered by corral itself; "" = off
    http2: HTTP2Policy | None = None  # None: HTTP/1.x only
    closing: bool = False  # stopping: every response says Connection: close
    stop_idle_by: float = math.inf  # stopping: when idle kept-alive connections close

    def limits_for(self, peer: Any) -> tuple[Limits, bool]:
        """The parser limits for a peer, and whether it may send a PROXY preamble."""
        if self.proxy_limits is not None and self.proxy_peers is not None:
            addr = peer[0] if isinstance(peer, tuple) else ""
            if self.proxy_peers.trusts(addr):
                return self.proxy_limits, True
        return self.limits, False

    def must_close(self, req: Request, conn: ServerConnection) -> bool:
        """Whether the response to ``req`` ends its connection; the response then says so.

        Said in the response rather than done silently after it: a client reusing the
        connection would race our close (RFC 9112 §9.6). A stopping worker, or one spending its
        max_requests budget, first answers the requests a client has already pipelined behind
        this one, so that none of them is left for the client to resend.
        """
        if self.keepalive <= 0:
            return True
        if not (self.closing or self.worker.last_request()):
            return False
        pipelined = conn.buffered and req.content_length is None and not req.chunked
        return not pipelined

    def preface(self, status: int, conn: ServerConnection) -> Literal["h2", "more", "reject"]:
        """What a head the parser refused with ``status`` is: HTTP/2's connection preface sent
        with prior knowledge (RFC 9113 §3.3: "h2", the connection turns to HTTP/2), the start
        of one still arriving in parts ("more": rewind and read on), or an error to answer.

        The parser refuses the preface's ``PRI * HTTP/2.0`` line with 505.
        """
        h2 = self.http2
        if status != 505 or h2 is None or not h2.prior_knowledge:
            return "reject"
        data = conn.trailing_data
        if data.startswith(PREFACE):
            return "h2"
        return "more" if PREFACE.startswith(data) else "reject"

    def gathers(self, req: Request, conn: ServerConnection) -> bool:
        """Whether ``req``'s body is still arriving and should be waited for before the app
        runs: a body of known length up to BODY_BUFFER, not sent yet in full. Not when the
        client waits for ``100 Continue`` (RFC 9110 §10.1.1), which the app's first read sends.
        """
        length = req.content_length
        return (
            length is not None
            and 0 < length <= BODY_BUFFER
            and not req.expect_continue
            and conn.buffered_size < length
        )

    def begin_stop(self, now: float) -> None:
        """The worker stops: responses from now on close; idle connections end soon."""
        self.closing = True
        self.stop_idle_by = now + min(STOP_KEEPALIVE_LINGER, max(self.keepalive, 0.0))

    def idle_until(self, now: float) -> float:
        """When a connection idle from ``now`` on is closed: after its keepalive, or once
        stopping after STOP_KEEPALIVE_LINGER at most: a response that began before the stop
        promised keep-alive, and its client may send again at once."""
        if self.closing:
            return now + min(self.keepalive, STOP_KEEPALIVE_LINGER)
        return now + self.keepalive

    def idle_deadline(self, idle_since: float, deadline: float) -> float:
        """When a connection idle since ``idle_since`` closes: its ``deadline``, capped once
        stopping, at the later of the stop's cap and its own STOP_KEEPALIVE_LINGER (for a
        deadline set just before the stop, from the whole keepalive)."""
        if not self.closing:
            return deadline
        return min(deadline, max(self.stop_idle_by, idle_since + STOP_KEEPALIVE_LINGER))

    def health(self, req: Request, conn: Exchange) -> bytes | None:
        """The answer to a health check (health_check_path), without calling the app; None
        when ``req`` is not one. 200 while serving, 503 once the server is draining, so that a
        readiness probe or load balancer stops sending before the listeners close."""
        if not self.health_path or req.path != self.health_path:
            return None
        if self.worker.draining():
            status, body = 503, b"draining\n"
        else:
            status, body = 200, b"OK\n"
        headers = [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        return conn.send_full(status, headers, body)


class AcceptLog(Protocol):
    """Where accept failures are reported."""

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


class AcceptGate:
    """accept() failures: how long the listener rests, with one log line per rest.

    Out of descriptors (EMFILE, ENFILE) or memory, every retry fails again until a connection
    closes; retrying at once spins the CPU and floods the log. The worker keeps serving the
    connections it has meanwhile, and accepts again after the rest.
    """

    def __init__(self, log: AcceptLog, pause: float = ACCEPT_PAUSE) -> None:
        self.log = log
        self.pause = pause
        self._logged_at = -math.inf
        self._unlogged = 0

    def failed(self, exc: OSError, now: float) -> float:
        """Seconds the listener should rest after ``exc`` (0: try again at once)."""
        if exc.errno in (errno.ECONNABORTED, errno.EAGAIN, errno.EINTR, errno.EPROTO):
            return 0.0  # that one connection is gone; the next may be fine
        scarce = exc.errno in _SCARCE
        if now - self._logged_at >= self.pause:
            more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
            advice = f"; pausing accepts for {self.pause:g} s" if scarce else ""
            self.log.error("accept() failed: %s%s%s", exc, advice, more)
            self._logged_at = now
            self._unlogged = 0
        else:
            self._unlogged += 1
        # Any other persistent failure would spin too: rest briefly.
        return self.pause if scarce else min(self.pause, 0.1)
