"""RFC 6455 frame headers: the server's data frames, and reading a client's whole frames."""

from __future__ import annotations

import struct
from typing import NamedTuple

# RFC 6455 §5.2: FIN set, no RSV bits (we negotiate no extension), and the opcode.
FIN_TEXT, FIN_BINARY = 0x81, 0x82
_CONTROL_MAX = 125  # RFC 6455 §5.5: a control frame's payload is at most 125 bytes
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))  # §5.2: the rest are reserved


def data_frame(opcode_byte: int, payload: bytes) -> bytes:
    """One whole, unmasked server data frame (RFC 6455 §5.2: a server never masks).

    wsproto's general path (events, fragmentation state, extensions) costs several times more
    per message; with no extension negotiated the frame is just this header and the payload.
    """
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", opcode_byte, 126, n) + payload
    return struct.pack("!BBQ", opcode_byte, 127, n) + payload


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

    def well_formed(self) -> bool:
        """Masked, no RSV bit, a known opcode, the shortest length; short, whole control frames.

        RFC 6455 §5.1-5.5; what fails here, wsproto fails with 1002.
        """
        first = self.first
        opcode = first & 0x0F
        if not self.mask or not self.minimal or first & 0x70 or opcode not in _KNOWN_OPCODES:
            return False
        return opcode < 0x8 or (bool(first & 0x80) and self.length <= _CONTROL_MAX)


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
