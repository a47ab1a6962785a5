"""TLS on one connection of the sync and threaded workers: its transport, handshake and close.

Imported only when the settings ask for TLS (workers/base.py, in the arbiter): a sync or
threaded server without it never loads ``ssl``, about 3 MiB of OpenSSL resident in the arbiter
alone (asyncio imports ``ssl`` itself).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import time
from collections.abc import Callable

from corral.drivers.tls import wsgi_environ
from corral.drivers.transport import PEEK, RECV_SIZE, SocketTransport, wait_fd
from corral.gateway.ladder import ClientDisconnected

# Rounds of a TLS handshake whose flight waits for room in the socket buffer.
HANDSHAKE_WRITES = 8


class TLSTransport(SocketTransport):
    """The same calls over a non-blocking ``ssl.SSLSocket``.

    TLS takes no MSG_DONTWAIT: the socket stays non-blocking and a want-read or want-write is
    waited out with ``poll``. A record may hold more than one read returns (``pending``), and
    ``sendfile`` copies through the process, since the kernel's would bypass the encryption.
    """

    __slots__ = ("ragged_eof_ok",)
    follows = False

    def __init__(
        self, sock: ssl.SSLSocket, recv_timeout: float, send_timeout: float, ragged_eof_ok: bool
    ) -> None:
        super().__init__(sock, recv_timeout, send_timeout)
        # suppress_ragged_eofs: a close without close_notify ends the stream as a FIN would.
        self.ragged_eof_ok = ragged_eof_ok

    def recv_now(self) -> bytes | None:
        try:
            return self.sock.recv(RECV_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except ssl.SSLEOFError:
            if self.ragged_eof_ok:
                return b""
            raise ClientDisconnected("TLS connection closed without close_notify") from None
        except OSError:
            return b""

    def recv_until(self, deadline: float) -> bytes | None:
        while True:
            data = self.recv_now()
            if data is not None:
                return data
            if not wait_fd(self.fd, select.POLLIN, deadline - time.monotonic()):
                return None

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
                continue
            except ssl.SSLWantReadError:
                events = select.POLLIN
            except ssl.SSLWantWriteError:
                events = select.POLLOUT
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not wait_fd(self.fd, events, self.send_timeout):
                raise ClientDisconnected("timed out waiting for the client to read")

    def send_after(self, head: bytes, body: bytes) -> None:
        # Records are made per write: two writes copy nothing more than one would.
        self.sendall(head)
        self.sendall(body)

    def send_now(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except OSError:
            pass

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        chunk = os.pread(fd, min(count, RECV_SIZE), offset)
        self.sendall(chunk)
        return len(chunk)

    def has_input(self) -> bool:
        if self.pending():
            return True
        try:  # the raw bytes under the TLS layer, as the kernel holds them
            return bool(socket.socket.recv(self.sock, 1, PEEK))
        except OSError:
            return False

    def pending(self) -> bool:
        sock = self.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def handshake(self, log_debug: Callable[..., None]) -> bool | None:
        """One step of the server handshake, never blocking on the client: True when done,
        None while the client's next flight is awaited (in epoll, or by the caller), False
        when it failed (the connection then closes)."""
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        for _ in range(HANDSHAKE_WRITES):
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                return None
            except ssl.SSLWantWriteError:
                # Our flight did not fit the socket buffer: wait for room, briefly.
                if wait_fd(self.fd, select.POLLOUT, self.send_timeout):
                    continue
                return False
            except (ssl.SSLError, OSError) as exc:
                log_debug("TLS handshake failed: %s", exc)
                return False
            return True
        return False

    def environ(self) -> dict[str, str]:
        """The connection's ``SSL_*`` environ keys, once the handshake is done."""
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        return wsgi_environ(sock)

    def alpn(self) -> str | None:
        """The protocol ALPN chose, once the handshake is done."""
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        return sock.selected_alpn_protocol()

    def close_notify(self) -> None:
        """Send close_notify (RFC 8446 §6.1): the client can tell our close from a
        truncation, and OpenSSL keeps the session for resumption only after it."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass  # sent; the client's own close_notify is not waited for
