"""A client's WebSocket frames (RFC 6455 §5) read into messages, control frames and its close."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any, Protocol

from corral.gateway.ws_deflate import BadDeflate, Deflate, MessageTooBig
from corral.gateway.ws_frames import (
    BAD_DATA,
    BINARY,
    CLOSE,
    CONT,
    FIN,
    FIN_BINARY,
    FIN_TEXT,
    PING,
    PROTOCOL_ERROR,
    RSV1,
    TEXT,
    TOO_BIG,
    Frame,
    next_frame,
    parse_close,
    unmask,
)

if TYPE_CHECKING:
    from corral.gateway.asgi import Message

_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# The first byte of an unfragmented data frame, and of a compressed one (RFC 7692 §6).
_WHOLE = (FIN_TEXT, FIN_BINARY)
_WHOLE_DEFLATED = (FIN_TEXT, FIN_BINARY, FIN_TEXT | RSV1, FIN_BINARY | RSV1)


def compressed_bound(max_size: int) -> int:
    """The most compressed bytes a message within ``max_size`` may take on the wire.

    DEFLATE's stored blocks add 5 bytes per 65,535, so incompressible data grows a little;
    past this the message cannot inflate to within the limit (RFC 7692 §7.2).
    """
    return max_size + max_size // 1024 + 64


class ReaderSink(Protocol):
    """What the reader tells the session."""

    def deliver(self, message: Message) -> None:
        """A whole message, as the ASGI ``websocket.receive`` event."""
        ...

    def ping(self, payload: bytes) -> None:
        """A ping, to answer with a pong of the same payload (§5.5.2)."""
        ...

    def peer_closed(self, code: int, reason: str) -> None:
        """The peer's close frame (§5.5.1); nothing more is read."""
        ...

    def fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: fail the connection with this code (§7.1.7)."""
        ...


class FrameReader:
    """Reads a client's frames from the bytes as they arrive, one connection's worth.

    A whole, unfragmented, uncompressed data frame (nearly every message) takes the fast
    path: header, unmask, UTF-8 check, delivered, ~1 µs for a small one. Everything else
    (fragments, control frames between them, compressed messages, malformed headers) takes
    the general path; a frame is handled only once it is whole, and a header that breaks the
    protocol fails the connection before its payload is read.
    """

    __slots__ = (
        "_bound",
        "_compressed",
        "_decoder",
        "_fast",
        "_in_message",
        "_need",
        "_parts",
        "_rx",
        "_size",
        "_text",
        "_wire",
        "deflate",
        "done",
        "max_size",
        "sink",
    )

    def __init__(self, sink: ReaderSink, max_size: int, deflate: Deflate | None) -> None:
        self.sink = sink
        self.max_size = max_size
        self.deflate = deflate  # permessage-deflate was agreed: RSV1 marks a compressed message
        self.done = False  # a close frame was read or the connection failed: read no more
        self._fast = _WHOLE if deflate is None else _WHOLE_DEFLATED
        self._bound = compressed_bound(max_size)
        self._rx = bytearray()  # the start of a frame whose rest has not arrived
        self._need = 0  # how long _rx must grow before that frame is whole
        self._in_message = False  # a fragmented message has begun (§5.4)
        self._text = False
        self._compressed = False
        self._decoder: Any = None  # the text message's incremental UTF-8 decoder
        self._parts: list[Any] = []
        self._size = 0  # the message's bytes so far, inflated
        self._wire = 0  # and as they came, compressed

    def feed(self, data: bytes) -> None:
        """Bytes from the peer: every frame they complete is acted on, the rest kept."""
        if self.done:
            return
        if self._rx:
            # Appending, and joining once the frame is whole: a large frame arriving in many
            # reads is copied once, not once per read.
            self._rx += data
            if len(self._rx) < self._need:
                return
            data, self._rx = bytes(self._rx), bytearray()
        pos, size = 0, len(data)
        deliver, fast = self.sink.deliver, self._fast
        while pos < size:  # each pass takes one whole frame, or stops
            frame = next_frame(data, pos)
            if frame is None:
                self._need = 0  # a header in pieces: look again at the next read
                break
            first = frame.first
            if first in fast and frame.mask and frame.minimal and not self._in_message:
                if frame.end - frame.start > (self._bound if first & RSV1 else self.max_size):
                    self._fail(TOO_BIG, "message too big")  # known from the header
                    return
                if frame.end > size:
                    self._need = frame.end - pos
                    break
                payload = unmask(data[frame.start : frame.end], frame.mask)
                if first & RSV1:
                    if not self._inflated(first, payload):
                        return
                elif first == FIN_BINARY:
                    deliver({"type": "websocket.receive", "bytes": payload})
                else:
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:  # RFC 6455 §8.1: fail with 1007
                        self._fail(BAD_DATA, "invalid UTF-8 in a text message")
                        return
                    deliver({"type": "websocket.receive", "text": text})
            else:
                if not self._header_ok(frame):
                    return
                if frame.end > size:
                    self._need = frame.end - pos
                    break
                self._frame(first, unmask(data[frame.start : frame.end], frame.mask))
                if self.done:
                    return
            pos = frame.end
        if pos < size:
            self._rx = bytearray(data[pos:])

    def _header_ok(self, frame: Frame) -> bool:
        """Fail the connection for a header that breaks the protocol or the size limit."""
        problem = frame.problem(self.deflate is not None, self._in_message)
        if problem:
            self._fail(PROTOCOL_ERROR, problem)
            return False
        opcode = frame.first & 0x0F
        if opcode >= CLOSE:
            return True
        starts = opcode != CONT
        compressed = bool(frame.first & RSV1) if starts else self._compressed
        if compressed:
            wire = (0 if starts else self._wire) + frame.length
            too_big = wire > self._bound
        else:
            too_big = (0 if starts else self._size) + frame.length > self.max_size
        if too_big:
            self._fail(TOO_BIG, "message too big")
        return not too_big

    def _inflated(self, first: int, payload: bytes) -> bool:
        """A whole compressed message in one frame (the fast path's); False when it failed."""
        deflate = self.deflate
        assert deflate is not None  # RSV1 is off the fast path without it
        try:
            data = deflate.decompress(payload, True, self.max_size)
        except MessageTooBig:
            self._fail(TOO_BIG, "message too big once inflated")
            return False
        except BadDeflate:  # RFC 7692 §8: the payload cannot be decompressed
            self._fail(BAD_DATA, "invalid compressed data")
            return False
        if first & 0x0F == BINARY:
            self.sink.deliver({"type": "websocket.receive", "bytes": data})
            return True
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # RFC 6455 §8.1
            self._fail(BAD_DATA, "invalid UTF-8 in a text message")
            return False
        self.sink.deliver({"type": "websocket.receive", "text": text})
        return True

    def _frame(self, first: int, payload: bytes) -> None:
        """One whole frame off the general path, unmasked."""
        opcode = first & 0x0F
        if opcode >= CLOSE:
            self._control(opcode, payload)
            return
        last = bool(first & FIN)
        if opcode != CONT:  # a message begins (§5.4)
            self._text = opcode == TEXT
            self._compressed = bool(first & RSV1)
            # A fragmented text message is checked piece by piece; a whole one at once.
            self._decoder = _utf8_decoder() if self._text and not last else None
            self._parts = []
            self._size = self._wire = 0
        self._wire += len(payload)
        if self._compressed:
            deflate = self.deflate
            assert deflate is not None  # RSV1 is refused in the header without it
            try:
                payload = deflate.decompress(payload, last, self.max_size - self._size)
            except MessageTooBig:
                self._fail(TOO_BIG, "message too big once inflated")
                return
            except BadDeflate:  # RFC 7692 §8: the payload cannot be decompressed
                self._fail(BAD_DATA, "invalid compressed data")
                return
        self._size += len(payload)
        piece: Any = payload
        if self._text:
            decoder = self._decoder
            try:  # checked as each fragment arrives, so an invalid one fails at once (§8.1)
                piece = (
                    payload.decode("utf-8") if decoder is None else decoder.decode(payload, last)
                )
            except UnicodeDecodeError:
                self._fail(BAD_DATA, "invalid UTF-8 in a text message")
                return
        self._in_message = not last
        if not last:
            self._parts.append(piece)
            return
        if self._parts:
            self._parts.append(piece)
            piece = ("" if self._text else b"").join(self._parts)
            self._parts = []
        self._decoder = None
        key = "text" if self._text else "bytes"
        self.sink.deliver({"type": "websocket.receive", key: piece})

    def _control(self, opcode: int, payload: bytes) -> None:
        """A ping is answered, a pong needs nothing, a close ends the reading (§5.5)."""
        if opcode == PING:
            self.sink.ping(payload)
        elif opcode == CLOSE:
            parsed = parse_close(payload)
            if isinstance(parsed, int):
                self._fail(parsed, "invalid close frame")
                return
            self.done = True
            self.sink.peer_closed(*parsed)

    def _fail(self, code: int, reason: str) -> None:
        self.done = True
        self._rx = bytearray()
        self.sink.fail(code, reason)
