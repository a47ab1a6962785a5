"""The sync worker: one connection at a time, one request per connection, as in gunicorn."""

from __future__ import annotations

import select
import selectors
import socket
import time

from corral.drivers.blocking import DriverContext, Session
from corral.drivers.listening import Listening
from corral.drivers.policy import AcceptGate
from corral.gateway.ladder import ClientDisconnected
from corral.gateway.loader import LoadedApp
from corral.workers.base import Worker, drain_pipe
from corral.workers.context import driver_context

# Connections the worker serves from one listener per wake-up while more wait in its backlog.
# Like gunicorn's sync worker, it goes back to select only when none is left (or after this
# many, so that other listeners and the parent check get their turn): a busy worker pays for
# select and its bookkeeping once per batch, not once per connection.
ACCEPT_BATCH = 16


class SyncWorker(Worker):
    """Serves one connection at a time and closes it after the response.

    A sync worker that kept connections alive would let one idle client block every other, so
    each response carries ``Connection: close`` (gunicorn's sync worker does the same). A client
    that stalls while sending its head is cut off after ``header_timeout``.
    """

    kind = "sync"

    def serve(self, app: LoadedApp) -> None:
        ctx = driver_context(self, app, multithread=False)
        gate = AcceptGate(self.log)
        wake_r = self.signal_pipe()
        selector = selectors.DefaultSelector()
        listening = {}
        for listener in self.listeners:
            listening[listener.fileno()] = Listening(listener)
            selector.register(listener, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        self._refresh_scoreboard()
        while self.alive and self.parent_alive():
            self.heartbeat.notify()
            for key, _ in selector.select(timeout=self.heartbeat_interval()):
                if key.fileobj == wake_r:
                    drain_pipe(wake_r)
                    continue
                pause = self._accept(listening[key.fd], ctx, gate)
                if pause:
                    self._rest(pause, wake_r)
                if not self.alive:
                    break
        if self.stopping():
            self._drain_backlog(listening, ctx, gate)

    def _accept(self, listening: Listening, ctx: DriverContext, gate: AcceptGate) -> float:
        """Accept and serve connections while more wait, ACCEPT_BATCH at most; the seconds to
        rest when accept() failed."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return 0.0
            except OSError as exc:
                return gate.failed(exc, time.monotonic())
            self._serve_connection(sock, peer, listening.name, ctx)
            if not self.alive:
                break
            self.heartbeat.notify()
        return 0.0

    def _rest(self, pause: float, wake_r: int) -> None:
        """accept() ran out of descriptors: wait (beating, woken by signals) before retrying."""
        until = time.monotonic() + pause
        while self.alive and (left := until - time.monotonic()) > 0:
            self.heartbeat.notify()
            select.select([wake_r], [], [], min(left, self.heartbeat_interval()))
            drain_pipe(wake_r)

    def _drain_backlog(
        self, listening: dict[int, Listening], ctx: DriverContext, gate: AcceptGate
    ) -> None:
        """The server is shutting down: serve the connections already queued on the listeners
        before this worker lets go of them (each would be reset otherwise), within
        graceful_timeout."""
        deadline = time.monotonic() + max(self.cfg.graceful_timeout, 0)
        ctx.policy.begin_stop(time.monotonic())
        served = True
        while served and time.monotonic() < deadline:
            served = False
            self.heartbeat.notify()
            for one in listening.values():
                try:
                    sock, peer = one.accept()
                except OSError as exc:
                    if not isinstance(exc, BlockingIOError):
                        gate.failed(exc, time.monotonic())
                    continue
                self._serve_connection(sock, peer, one.name, ctx)
                served = True

    def _serve_connection(
        self, sock: socket.socket, peer: object, sockname: object, ctx: DriverContext
    ) -> None:
        sock.setblocking(False)
        session = Session(sock, peer, sockname, ctx)
        session.conn.close_after()
        try:
            if session.handshaking and not session.finish_handshake():
                return
            while True:
                try:
                    data = session.transport.recv_by(session.deadline)
                except ClientDisconnected:
                    session.expire()
                    return
                session.conn.receive_data(data)
                if not session.serve_buffered(bool(data)):
                    return
        finally:
            session.close()
