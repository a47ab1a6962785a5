"""The chunked transfer coding reader (RFC 9112 §7.1), trailers included."""

from __future__ import annotations

from corral.http.errors import ProtocolError
from corral.http.grammar import CHUNK_LINE
from corral.http.limits import Limits
from corral.http.readers import TRAILER_FORBIDDEN, parse_fields

__all__ = ["ChunkedReader"]

_SIZE, _DATA, _DATA_CRLF, _TRAILERS, _DONE = range(5)
# Longest chunk-size part of a chunk line: 16 hex digits (64 bits).
_MAX_SIZE_DIGITS = 16

Buffer = bytes | bytearray


class ChunkedReader:
    """Decodes a chunked body from a buffer it is handed again and again."""

    __slots__ = ("_limits", "_max_line", "_remaining", "_scan", "_state", "_total", "trailers")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _SIZE
        self._remaining = 0  # bytes left in the current chunk
        self._total = 0  # body bytes so far, for limits.max_body
        self._scan = 0  # where to resume looking for the end of the trailer section
        # chunk-size, chunk-ext and CRLF; a longer line is refused without reading on.
        self._max_line = _MAX_SIZE_DIGITS + limits.max_chunk_ext + 2
        self.trailers: list[tuple[str, str]] = []

    @property
    def done(self) -> bool:
        """The last chunk and the trailer section have been read."""
        return self._state == _DONE

    def feed(self, buf: Buffer, pieces: list[bytes]) -> int:
        """Decode what ``buf`` holds, appending body bytes to ``pieces``; return bytes used."""
        pos = 0
        end = len(buf)
        while True:
            state = self._state
            if state == _DATA:
                take = min(end - pos, self._remaining)
                if take == 0:
                    return pos
                pieces.append(bytes(buf[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining:
                    return pos
                self._state = _DATA_CRLF
            elif state == _SIZE:
                pos = self._chunk_line(buf, pos)
                if self._state == _SIZE:
                    return pos
            elif state == _DATA_CRLF:
                if end - pos < 2:
                    if end > pos and buf[pos] != 0x0D:
                        raise ProtocolError(400, "missing CRLF after chunk data")
                    return pos
                if buf[pos] != 0x0D or buf[pos + 1] != 0x0A:
                    raise ProtocolError(400, "missing CRLF after chunk data")
                pos += 2
                self._state = _SIZE
            elif state == _TRAILERS:
                return self._trailer_section(buf, pos)
            else:
                return pos

    def _chunk_line(self, buf: Buffer, pos: int) -> int:
        """Read one chunk-size line at ``pos``; return the new position."""
        eol = buf.find(b"\r\n", pos, pos + self._max_line)
        if eol < 0:
            # RFC 9112 §7.1.1: no bare CR or LF anywhere in a chunk line.
            if buf.find(b"\n", pos) >= 0 or buf.find(b"\r", pos, len(buf) - 1) >= 0:
                raise ProtocolError(400, "bare CR or LF in chunk line")
            if len(buf) - pos >= self._max_line:
                raise ProtocolError(400, "chunk line or extension too long")
            return pos
        m = CHUNK_LINE.fullmatch(buf, pos, eol)
        if m is None:
            raise ProtocolError(400, "invalid chunk size or extension")
        if eol - m.end(1) > self._limits.max_chunk_ext:
            raise ProtocolError(400, "chunk extension too long")
        size = int(m.group(1), 16)
        if size == 0:
            self._state = _TRAILERS
            return eol + 2
        self._total += size
        if 0 < self._limits.max_body < self._total:
            raise ProtocolError(413, "request body too large")
        self._remaining = size
        self._state = _DATA
        return eol + 2

    def _trailer_section(self, buf: Buffer, pos: int) -> int:
        """Read the trailer section (RFC 9112 §7.1.2) that starts at ``pos``."""
        if len(buf) - pos < 2:
            return pos
        if buf[pos] == 0x0D and buf[pos + 1] == 0x0A:
            self._state = _DONE
            return pos + 2
        end = buf.find(b"\r\n\r\n", pos + self._scan)
        if end < 0:
            limits = self._limits
            if len(buf) - pos > limits.max_header_block:
                raise ProtocolError(431, "trailer section too large")
            scan = pos + self._scan
            nl = buf.find(b"\n", scan)
            while nl >= 0:
                if nl == pos or buf[nl - 1] != 0x0D:
                    raise ProtocolError(400, "bare LF in trailer section")
                nl = buf.find(b"\n", nl + 1)
            self._scan = max(len(buf) - pos - 3, 0)
            return pos
        if end - pos > self._limits.max_header_block:
            raise ProtocolError(431, "trailer section too large")
        trailers, forbidden = parse_fields(buf[pos:end], self._limits, TRAILER_FORBIDDEN)
        if forbidden:
            raise ProtocolError(400, "forbidden field in trailer section")
        self.trailers = trailers
        self._state = _DONE
        return end + 4
