"""The asyncio worker's listeners: connections accepted, set up (TLS) and handed to HTTPProtocol."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from corral.drivers.aio import AioContext, HTTPProtocol
from corral.drivers.policy import AcceptGate
from corral.drivers.transport import any_readable

# Connections accepted per readiness event before the loop runs other work.
ACCEPT_BATCH = 32


class Acceptor:
    """Accepts connections from the inherited listeners, at most ``limit`` open at once."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listeners: list[socket.socket],
        ctx: AioContext,
        limit: int,
    ) -> None:
        self.loop = loop
        self.listeners = listeners
        self.ctx = ctx
        self.limit = max(limit, 1)
        self.pending = 0
        self.running = False
        self.paused = False
        self.log = ctx.gateway.log
        self.gate = AcceptGate(self.log)
        self._names = {sock.fileno(): sock.getsockname() for sock in listeners}
        ctx.on_closed = self._connection_closed

    def start(self) -> None:
        """Watch the listeners."""
        self.running = True
        self._watch()

    def stop(self) -> None:
        """Stop accepting (the listeners stay open for the other workers)."""
        self.running = False
        self._unwatch()

    def _watch(self) -> None:
        self.paused = False
        for sock in self.listeners:
            sock.setblocking(False)
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _unwatch(self) -> None:
        for sock in self.listeners:
            self.loop.remove_reader(sock.fileno())

    def _full(self) -> bool:
        return len(self.ctx.connections) + self.pending >= self.limit

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._full():
                self.paused = True
                self._unwatch()
                return
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                pause = self.gate.failed(exc, self.loop.time())
                if pause:
                    self.paused = True
                    self._unwatch()
                    self.loop.call_later(pause, self._connection_closed)
                return
            sock.setblocking(False)
            self.pending += 1
            self.loop.create_task(self._attach(sock, peer, self._names[listener.fileno()]))

    async def _attach(self, sock: socket.socket, peer: Any, sockname: Any) -> None:
        try:
            proto = HTTPProtocol(self.ctx, peer, sockname)
            ctx = self.ctx
            if ctx.tls is None:
                await self.loop.connect_accepted_socket(lambda: proto, sock)
            else:
                # The loop drives the handshake alongside every other connection, and drops
                # a client that has not finished it within header_timeout.
                await self.loop.connect_accepted_socket(
                    lambda: proto,
                    sock,
                    ssl=ctx.tls,
                    ssl_handshake_timeout=ctx.policy.header_timeout,
                )
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            self.log.debug("could not set up an accepted connection: %s", exc)
            sock.close()
        finally:
            self.pending -= 1

    def _connection_closed(self) -> None:
        # Also the end of a rest after EMFILE, which a closed connection (a descriptor freed)
        # ends early.
        if self.running and self.paused and not self._full():
            self._watch()

    def backlog(self) -> bool:
        """Whether a connection waits in a listener's backlog (or is being set up)."""
        return bool(self.pending) or any_readable(sock.fileno() for sock in self.listeners)
