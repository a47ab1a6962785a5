"""RFC 6455 frames: the server's frames, reading a client's, and close-frame payloads."""

from __future__ import annotations

import struct
from typing import NamedTuple

# RFC 6455 §5.2: the opcodes, FIN, and RSV1 (set on a compressed message's first frame when
# permessage-deflate is in use, RFC 7692 §6); RSV2 and RSV3 have no meaning here.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN, RSV1 = 0x80, 0x40
FIN_TEXT, FIN_BINARY = FIN | TEXT, FIN | BINARY
CONTROL_MAX = 125  # RFC 6455 §5.5: a control frame's payload is at most 125 bytes
_KNOWN_OPCODES = frozenset((CONT, TEXT, BINARY, CLOSE, PING, PONG))  # §5.2: the rest reserved

# Close codes (RFC 6455 §7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, NO_STATUS, ABNORMAL = 1000, 1001, 1002, 1005, 1006
BAD_DATA, TOO_BIG, INTERNAL_ERROR = 1007, 1009, 1011


def data_frame(first: int, payload: bytes) -> bytes:
    """One whole, unmasked server frame (RFC 6455 §5.2: a server never masks).

    ``first`` is the FIN, RSV and opcode byte: ``FIN_TEXT``, ``FIN_BINARY``, a control
    frame's ``FIN | PING``, or with ``RSV1`` for a compressed message.
    """
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def close_frame(code: int, reason: str) -> bytes:
    """A close frame (§5.5.1): the code, then the reason in UTF-8, cut to fit 125 bytes."""
    if code == NO_STATUS:
        return bytes((FIN | CLOSE, 0))  # §7.4.1: 1005 is never sent; an empty close says it
    # The cut must not split a character (§5.5.1: the reason is valid UTF-8).
    raw = reason.encode("utf-8")[: CONTROL_MAX - 2].decode("utf-8", "ignore").encode("utf-8")
    return data_frame(FIN | CLOSE, struct.pack("!H", code) + raw)


def valid_close_code(code: int) -> bool:
    """A code a peer may send (§7.4.1-7.4.2): the defined ones, IANA's 1012-1014, 3000-4999.

    1004 is reserved, and 1005, 1006 and 1015 are for reporting only, never on the wire.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int, str] | int:
    """A peer's close frame as (code, reason); or the code to fail with when it is malformed.

    §5.5.1: no payload means no code (reported as 1005); one byte, or a code not allowed on
    the wire, is a protocol error (1002); a reason that is not UTF-8 is 1007 (§8.1).
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        return PROTOCOL_ERROR
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        return PROTOCOL_ERROR
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return BAD_DATA


class Frame(NamedTuple):
    """Where one client frame lies in a buffer; its payload may not all have arrived yet."""

    first: int  # FIN, RSV and opcode bits
    start: int  # the payload's first byte
    end: int  # one past the frame's last byte
    mask: bytes  # the 4-byte masking key; empty when the frame is not masked
    minimal: bool  # its length took the fewest bytes, as RFC 6455 §5.2 requires

    @property
    def length(self) -> int:
        return self.end - self.start

    def problem(self, rsv1: bool, in_message: bool) -> str:
        """Why this header is a protocol error (1002), or "" when it is well formed.

        ``rsv1``: permessage-deflate is in use, so RSV1 may mark a message's first frame
        (RFC 7692 §6); ``in_message``: a fragmented message has begun (§5.4).
        """
        first = self.first
        opcode = first & 0x0F
        if not self.mask:
            return "a client frame must be masked (RFC 6455 §5.3)"
        if not self.minimal:
            return "a length not in its shortest form (RFC 6455 §5.2)"
        if opcode not in _KNOWN_OPCODES:
            return f"reserved opcode {opcode:#x} (RFC 6455 §5.2)"
        if first & 0x30 or (first & RSV1 and not (rsv1 and opcode in (TEXT, BINARY))):
            return "a reserved bit set (RFC 6455 §5.2, RFC 7692 §6)"
        if opcode >= CLOSE:
            if not first & FIN:
                return "a fragmented control frame (RFC 6455 §5.5)"
            if self.length > CONTROL_MAX:
                return "a control frame over 125 bytes (RFC 6455 §5.5)"
        elif (opcode == CONT) != in_message:
            return "a continuation out of place (RFC 6455 §5.4)"
        return ""


def next_frame(buf: bytes, pos: int) -> Frame | None:
    """The frame whose header starts at ``pos``, or None while that header is incomplete."""
    size = len(buf)
    head = pos + 2
    if head > size:
        return None
    first, second = buf[pos], buf[pos + 1]
    length = second & 0x7F
    minimal = True
    if length == 126:  # §5.2: a 16-bit extended length follows
        if head + 2 > size:
            return None
        length = int.from_bytes(buf[head : head + 2], "big")
        minimal = length >= 126
        head += 2
    elif length == 127:  # a 64-bit one, whose most significant bit must be 0
        if head + 8 > size:
            return None
        length = int.from_bytes(buf[head : head + 8], "big")
        minimal = 65536 <= length < 1 << 63
        head += 8
    mask = b""
    if second & 0x80:
        if head + 4 > size:
            return None
        mask = buf[head : head + 4]
        head += 4
    return Frame(first, head, head + length, mask, minimal)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR the payload with the repeated masking key (RFC 6455 §5.3), as one big integer."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
