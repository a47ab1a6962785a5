"""A WebSocket client's frames for tests, built byte by byte (RFC 6455 §5.2-5.3)."""

from __future__ import annotations

import os
import struct


def xor_mask(data: bytes, key: bytes) -> bytes:
    """Masking as §5.3 words it, one byte at a time: a reference for the server's unmasking."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
) -> bytes:
    """One client frame with the shortest length encoding, masked unless told otherwise."""
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = bytes([first, bit | n])
    elif n < 65536:
        head = bytes([first, bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + xor_mask(payload, key)
