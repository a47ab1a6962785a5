"""The sync and threaded workers' listeners: connections accepted with their options already set."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

_TCP = (socket.AF_INET, socket.AF_INET6)
# Connections checked for the listener's options before concluding that the kernel does not
# copy them. Connections queued before the options were set lack them (a worker starting while
# clients wait), so one without them proves nothing; one with them shows every later one has
# them too, since the accept queue is first in, first out.
CHECKS = 64


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
    per connection. Connections are checked until one shows them copied, and any that lacks
    them gets them; where they are not copied (a Unix socket, another kernel), each connection
    gets them itself.
    """

    __slots__ = ("_checks", "_each", "_kind", "_options", "_take", "fd", "name", "sock")

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
        tcp = sock.family in _TCP
        if tcp:
            self._options.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
        if recv_wait is not None:
            self._options.append((socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(recv_wait)))
        self._each = not (tcp and self._set(sock))
        self._checks = 0 if self._each else CHECKS

    def accept(self) -> tuple[socket.socket, Any]:
        """A new connection and its peer's address; OSError (BlockingIOError: none waiting)
        as from socket.accept(), ConnectionAbortedError when its options cannot be set."""
        # Read before the accept: another thread may vouch for a connection queued after this
        # one meanwhile, and this one must still be checked (see _copied).
        each, checks = self._each, self._checks
        fd, peer = self._take()
        try:
            sock = socket.socket(*self._kind, fileno=fd)
        except BaseException:
            socket.close(fd)
            raise
        if (each or (checks and not self._copied(sock))) and not self._set(sock):
            sock.close()
            raise ConnectionAbortedError("the connection's socket options could not be set")
        if sock.gettimeout() is not None:
            # socket.setdefaulttimeout() in the app would make Python poll before every call.
            sock.settimeout(None)
        return sock, peer

    def _copied(self, sock: socket.socket) -> bool:
        """Whether every option came with ``sock`` from the listener; once one connection shows
        that, the later ones are not checked. Each option is looked at: another owner of the
        listener (a sync worker before a reload, systemd's ``NoDelay=``) may have set only some.
        """
        try:
            copied = all(
                any(sock.getsockopt(level, name, len(value)))
                if isinstance(value, bytes)
                else sock.getsockopt(level, name)
                for level, name, value in self._options
            )
        except OSError:
            copied = False  # reset already: it tells nothing
        if copied:
            self._checks = 0
        elif self._checks:  # not if another thread has just stopped the checks
            self._checks -= 1
            self._each = not self._checks
        return copied

    def _set(self, sock: socket.socket) -> bool:
        """Set the options on ``sock``; False when the kernel refused one (a reset connection)."""
        try:
            for level, name, value in self._options:
                sock.setsockopt(level, name, value)
        except OSError:
            return False
        return True
