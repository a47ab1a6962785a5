"""The sync and threaded workers' listeners: connections accepted with their options already set."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

_TCP = (socket.AF_INET, socket.AF_INET6)


def timeval(seconds: float) -> bytes:
    """``seconds`` as the ``struct timeval`` that SO_RCVTIMEO takes."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class Listening:
    """One listener, whose ``accept`` returns a blocking client socket ready to serve.

    A client socket gets ``TCP_NODELAY`` (each response goes out at once, not after Nagle's wait
    for an ACK) and, when ``recv_wait`` is given, ``SO_RCVTIMEO`` (a plain ``recv`` waits at most
    that long: the threaded worker follows a connection that way). Linux copies both from a TCP
    listener into every connection it accepts, so they are set once here, not with two syscalls
    per connection; the first connection is checked, and where they were not copied (a Unix
    socket, another kernel) each connection gets them itself.
    """

    __slots__ = ("_each", "_kind", "_options", "_take", "_unchecked", "fd", "name", "sock")

    def __init__(self, sock: socket.socket, recv_wait: float | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.name: Any = sock.getsockname()
        # Plain ints: socket.accept() converts both to enums for every connection.
        self._kind = (int(sock.family), int(sock.type), sock.proto)
        # What socket.accept() calls first; it returns the descriptor and the peer's address.
        self._take: Callable[[], tuple[int, Any]] = sock._accept  # type: ignore[attr-defined]
        self._options: list[tuple[int, int, int | bytes]] = []
        if sock.family in _TCP:
            self._options.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
        if recv_wait is not None:
            self._options.append((socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(recv_wait)))
        self._each = sock.family not in _TCP
        self._unchecked = not self._each
        if not self._each:
            self._each = not self._set(sock)

    def accept(self) -> tuple[socket.socket, Any]:
        """A new connection and its peer's address; OSError (BlockingIOError: none waiting)
        as from socket.accept()."""
        fd, peer = self._take()
        try:
            sock = socket.socket(*self._kind, fileno=fd)
        except BaseException:
            socket.close(fd)
            raise
        if self._each or self._unchecked:
            self._settle(sock)
        if sock.gettimeout() is not None:
            # socket.setdefaulttimeout() in the app would make Python poll before every call.
            sock.settimeout(None)
        return sock, peer

    def _settle(self, sock: socket.socket) -> None:
        """Give a connection the options it lacks; the first one tells whether they are copied."""
        if self._unchecked:
            self._unchecked = False
            try:
                self._each = not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                self._each = True
        if self._each:
            self._set(sock)

    def _set(self, sock: socket.socket) -> bool:
        """Set the options on ``sock``; False when the kernel refused one (a reset connection)."""
        try:
            for level, name, value in self._options:
                sock.setsockopt(level, name, value)
        except OSError:
            return False
        return True
