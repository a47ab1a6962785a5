"""Blocking reads and writes with deadlines over a non-blocking socket (sync and threaded)."""

from __future__ import annotations

import os
import select
import socket
import time

RECV_SIZE = 65536


class ClientDisconnected(Exception):
    """The peer went away, reset the connection, or stopped reading or writing for too long."""


def wait_fd(fd: int, events: int, timeout: float) -> bool:
    """Wait until ``fd`` is ready for ``events`` (select.POLLIN/POLLOUT); False on timeout."""
    if timeout <= 0:
        return False
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(timeout * 1000.0))


class SocketTransport:
    """One client socket (kept non-blocking) seen as blocking calls bounded by ``timeout``.

    The socket stays non-blocking so the fast path is a single syscall; ``poll`` is only used
    when the kernel has nothing for us yet, or no room.
    """

    __slots__ = ("fd", "sock", "timeout")

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = timeout

    def recv(self) -> bytes:
        """Wait up to ``timeout`` for bytes; ``b""`` when the peer closed its side."""
        return self.recv_by(time.monotonic() + self.timeout)

    def recv_by(self, deadline: float) -> bytes:
        """Wait until the monotonic ``deadline`` for bytes; ``b""`` when the peer closed."""
        while True:
            try:
                return self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not wait_fd(self.fd, select.POLLIN, deadline - time.monotonic()):
                raise ClientDisconnected("timed out waiting for the client to send")

    def sendall(self, data: bytes) -> None:
        """Write every byte, waiting (bounded by ``timeout`` per stall) while the peer is slow."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            if not wait_fd(self.fd, select.POLLOUT, self.timeout):
                raise ClientDisconnected("timed out waiting for the client to read")
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of ``fd`` from ``offset`` with the kernel's sendfile."""
        while True:
            try:
                return os.sendfile(self.fd, fd, offset, count)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not wait_fd(self.fd, select.POLLOUT, self.timeout):
                raise ClientDisconnected("timed out waiting for the client to read")
