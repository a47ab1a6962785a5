"""``wsgi.input``: the request body streamed from the HTTP core, never read whole into memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from corral.gateway.exchange import Exchange
from corral.http.errors import ProtocolError
from corral.http.events import NEED_DATA, Data, EndOfMessage


class BodySource(Protocol):
    """What the input stream needs from a driver: bytes in (blocking), bytes out."""

    def recv(self) -> bytes:
        """Wait (bounded) for more bytes from the peer; ``b""`` at end of stream."""
        ...

    def sendall(self, data: bytes) -> None:
        """Write every byte to the peer."""
        ...


class WSGIInput:
    """A file-like reader over the request body (PEP 3333 ``wsgi.input``).

    Bytes are pulled from the connection only as the app asks for them, so a large upload is never
    held in memory whole. ``100 Continue`` is sent the first time the app reads (RFC 9110 §10.1.1:
    a server that will read the body should send it, and need not when it will not).
    """

    __slots__ = ("_buf", "_conn", "_eof", "_source")

    def __init__(self, conn: Exchange, source: BodySource) -> None:
        self._conn = conn
        self._source = source
        self._buf = bytearray()
        self._eof = False

    @property
    def done(self) -> bool:
        """The body has been read to its end (EndOfMessage taken from the core)."""
        return self._eof

    def _fill(self) -> bool:
        """Pull one more piece of the body into the buffer; False once the body is complete."""
        data = self._pull()
        if not data:
            return False
        self._buf += data
        return True

    def _pull(self) -> bytes:
        """The next piece of the body as the core parsed it; ``b""`` once the body is complete."""
        if self._eof:
            return b""
        conn = self._conn
        interim = conn.send_continue()
        if interim:
            self._source.sendall(interim)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(self._source.recv())
            elif type(event) is Data:
                return event.data
            elif type(event) is EndOfMessage:
                self._eof = True
                return b""
            else:
                raise ProtocolError(400, "request body ended unexpectedly")

    def _take(self, size: int) -> bytes:
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes, or everything that is left when size is negative or None."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buf))
        if not self._buf and size > 0:
            return self._read_direct(size)
        while len(self._buf) < size and self._fill():
            pass
        return self._take(size)

    def _read_direct(self, size: int) -> bytes:
        """``read(size)`` with nothing buffered, copying as little as it can.

        The core's piece goes to the app as it is when it fits, and pieces are joined once when
        it does not: through the buffer, a 64 KiB upload read whole would be copied in, sliced
        out and copied again.
        """
        data = self._pull()
        total = len(data)
        if total < size and data:
            parts = [data]
            try:
                while total < size:
                    more = self._pull()
                    if not more:
                        break
                    parts.append(more)
                    total += len(more)
            except BaseException:
                # The core has let go of these bytes: keep them for a read after the error.
                self._buf += b"".join(parts)
                raise
            data = b"".join(parts)
        if total > size:
            self._buf += memoryview(data)[size:]
            return data[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line, including its ``\\n``; at most ``size`` bytes when size is given."""
        limit = -1 if size is None else size
        start = 0
        while True:
            idx = self._buf.find(b"\n", start)
            if idx >= 0:
                end = idx + 1
                break
            if 0 <= limit <= len(self._buf):
                end = limit
                break
            start = len(self._buf)
            if not self._fill():
                end = len(self._buf)
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end)

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read lines until the end, or until about ``hint`` bytes were read."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self, limit: int) -> bool:
        """Discard what the app left unread, up to ``limit`` bytes; True when the body is done."""
        discarded = len(self._buf)
        self._buf.clear()
        while discarded <= limit and self._fill():
            discarded += len(self._buf)
            self._buf.clear()
        return self._eof
