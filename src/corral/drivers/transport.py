"""Blocking reads and writes with deadlines over a client socket (sync and threaded)."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterable

from corral.drivers.keepgil import FLAGS, QUICK_MAX, SendMode
from corral.gateway.ladder import BodyStalled, ClientDisconnected

RECV_SIZE = 65536
# Every read and write of the transport is a single non-blocking attempt first, whatever the
# socket's own mode: the threaded worker keeps its sockets in blocking mode (see
# listening.py), the sync worker does not. Plain ints: ORing socket's enums runs Python code.
NOWAIT = int(socket.MSG_DONTWAIT)
PEEK = int(socket.MSG_DONTWAIT | socket.MSG_PEEK)


def wait_fd(fd: int, events: int, timeout: float) -> bool:
    """Wait until ``fd`` is ready for ``events`` (select.POLLIN/POLLOUT); False on timeout."""
    if timeout <= 0:
        return False
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(timeout * 1000.0))


def any_readable(fds: Iterable[int]) -> bool:
    """Whether one of ``fds`` is readable now: for a listener, a connection waits in its
    backlog (a draining worker serves those before it lets go of the listeners)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class SocketTransport:
    """One client socket seen as blocking calls, each wait bounded: a read of the request
    body by ``recv_timeout`` (body_timeout), a write by ``send_timeout``.

    Each call first tries once without waiting, so the fast path is a single syscall; ``poll``
    is only used when the kernel has nothing for us yet, or no room.
    """

    __slots__ = ("fd", "mode", "recv_timeout", "send_timeout", "sock")

    def __init__(
        self,
        sock: socket.socket,
        recv_timeout: float,
        send_timeout: float,
        mode: SendMode | None = None,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.recv_timeout = recv_timeout
        self.send_timeout = send_timeout
        self.mode = mode or SendMode()  # shared by a worker's transports (keepgil.py)

    # A thread may wait on this connection in the kernel for the client's next request
    # (threaded worker, listening.py); a TLS one only waits in epoll.
    follows = True

    def recv_now(self) -> bytes | None:
        """What the socket holds now: None when nothing yet, ``b""`` when it is closed."""
        try:
            return self.sock.recv(RECV_SIZE, NOWAIT)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def send_now(self, data: bytes) -> None:
        """Write what fits now, without waiting (a last word before closing)."""
        try:
            self.sock.send(data, NOWAIT)
        except OSError:
            pass

    def has_input(self) -> bool:
        """Whether the kernel holds input we have not read (one non-blocking peek)."""
        try:
            return bool(self.sock.recv(1, PEEK))
        except OSError:
            return False  # nothing there (EAGAIN), or the connection is already gone

    def pending(self) -> bool:
        """Whether bytes already read from the socket wait to be returned (TLS records)."""
        return False

    def recv(self) -> bytes:
        """The request body's next bytes, waiting up to ``recv_timeout``; ``b""`` when the peer
        closed its side. A client silent for longer raises BodyStalled (408)."""
        data = self.recv_until(time.monotonic() + self.recv_timeout)
        if data is None:
            raise BodyStalled(f"no request body bytes for {self.recv_timeout:g}s (body_timeout)")
        return data

    def recv_by(self, deadline: float) -> bytes:
        """Wait until the monotonic ``deadline`` for bytes; ``b""`` when the peer closed."""
        data = self.recv_until(deadline)
        if data is None:
            raise ClientDisconnected("timed out waiting for the client to send")
        return data

    def recv_until(self, deadline: float) -> bytes | None:
        """Bytes, or ``b""`` when the peer closed; None when ``deadline`` passed first."""
        while True:
            try:
                return self.sock.recv(RECV_SIZE, NOWAIT)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not wait_fd(self.fd, select.POLLIN, deadline - time.monotonic()):
                return None

    def sendall(self, data: bytes) -> None:
        """Write every byte, waiting (``send_timeout`` per stall at most) while the peer is slow."""
        quick = self.mode.send
        if quick is not None and type(data) is bytes and len(data) <= QUICK_MAX:
            # fileno(), not the fd kept at the start: -1 once the socket is closed, where a
            # kept number could by now name another connection.
            sent = quick(self.sock.fileno(), data, len(data), FLAGS)
            if sent == len(data):
                return
            if sent > 0:
                data = data[sent:]
            # Else nothing went (-1): the call below meets the same errno, and raises or waits.
        try:
            sent = self.sock.send(data, NOWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        if sent != len(data):
            self._send_rest(memoryview(data)[sent:])

    def send_after(self, head: bytes, body: bytes) -> None:
        """Send ``head``, then ``body``, in one write as far as they fit (sendmsg): a large
        body is not copied to join it to its head, nor sent as a second packet."""
        try:
            sent = self.sock.sendmsg((head, body), (), NOWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        if sent < len(head):
            self._send_rest(memoryview(head)[sent:])
            sent = len(head)
        if sent - len(head) < len(body):
            self._send_rest(memoryview(body)[sent - len(head) :])

    def _send_rest(self, view: memoryview) -> None:
        """Write what is left of a buffer, waiting (``send_timeout`` per stall at most)."""
        while view:
            if not wait_fd(self.fd, select.POLLOUT, self.send_timeout):
                raise ClientDisconnected("timed out waiting for the client to read")
            try:
                view = view[self.sock.send(view, NOWAIT) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of ``fd`` from ``offset`` with the kernel's sendfile."""
        if self.sock.getblocking():
            # os.sendfile takes no MSG_DONTWAIT, and on a blocking socket it waits for the
            # whole count, unbounded: SO_SNDTIMEO does not cover it (seen on Linux 6.18).
            self.sock.setblocking(False)
            try:
                return self._sendfile(fd, offset, count)
            finally:
                self.sock.setblocking(True)
        return self._sendfile(fd, offset, count)

    def _sendfile(self, fd: int, offset: int, count: int) -> int:
        while True:
            try:
                return os.sendfile(self.fd, fd, offset, count)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not wait_fd(self.fd, select.POLLOUT, self.send_timeout):
                raise ClientDisconnected("timed out waiting for the client to read")
