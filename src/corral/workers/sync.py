"""The sync worker: one connection at a time, one request per connection, as in gunicorn."""

from __future__ import annotations

import selectors
import socket
from typing import cast

from corral.drivers.blocking import DriverContext, Session
from corral.drivers.transport import ClientDisconnected
from corral.gateway.loader import LoadedApp
from corral.workers.base import Worker, drain_pipe
from corral.workers.context import driver_context


class SyncWorker(Worker):
    """Serves one connection at a time and closes it after the response.

    A sync worker that kept connections alive would let one idle client block every other, so
    each response carries ``Connection: close`` (gunicorn's sync worker does the same). A client
    that stalls while sending its head is cut off after ``header_timeout``.
    """

    kind = "sync"

    def serve(self, app: LoadedApp) -> None:
        ctx = driver_context(self, app, multithread=False)
        wake_r = self.signal_pipe()
        selector = selectors.DefaultSelector()
        names = {}
        for listener in self.listeners:
            listener.setblocking(False)
            selector.register(listener, selectors.EVENT_READ)
            names[listener.fileno()] = listener.getsockname()
        selector.register(wake_r, selectors.EVENT_READ)
        while self.alive and self.parent_alive():
            self.heartbeat.notify()
            for key, _ in selector.select(timeout=self.heartbeat_interval()):
                if key.fileobj == wake_r:
                    drain_pipe(wake_r)
                    continue
                listener = cast(socket.socket, key.fileobj)
                try:
                    sock, peer = listener.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                self._serve_connection(sock, peer, names[listener.fileno()], ctx)
                if not self.alive:
                    break

    def _serve_connection(
        self, sock: socket.socket, peer: object, sockname: object, ctx: DriverContext
    ) -> None:
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(sock, peer, sockname, ctx)
        session.conn.close_after()
        try:
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
