"""RFC 6455 frame headers: reading a client's frames in pieces, unmasking, writing ours."""

from __future__ import annotations

import os
import struct

import pytest
from tests.wsframes import frame, xor_mask

from corral.gateway.ws_frames import (
    close_frame,
    data_frame,
    next_frame,
    parse_close,
    unmask,
    valid_close_code,
)

KEY = b"\x01\x02\xfe\xff"


def client_frame(first: int, payload: bytes, masked: bool = True) -> bytes:
    fin, rsv, opcode = bool(first & 0x80), first & 0x70, first & 0x0F
    return frame(opcode, payload, fin=fin, mask=masked, rsv=rsv, key=KEY)


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536])
def test_a_header_is_read_only_once_whole(n: int) -> None:
    payload = os.urandom(n)
    raw = b"junk" + client_frame(0x82, payload)
    head_len = 2 + (2 if 126 <= n < 65536 else 8 if n >= 65536 else 0) + 4
    for cut in range(4, 4 + head_len):
        assert next_frame(raw[:cut], 4) is None
    frame = next_frame(raw[: 4 + head_len], 4)
    assert frame is not None
    assert (frame.first, frame.start, frame.length, frame.mask) == (0x82, 4 + head_len, n, KEY)
    assert frame.end == len(raw)
    assert unmask(raw[frame.start : frame.end], frame.mask) == payload


def test_unmask_matches_bytewise_xor() -> None:
    for n in (0, 1, 3, 4, 7, 70001):
        payload = os.urandom(n)
        assert unmask(payload, KEY) == xor_mask(payload, KEY)


@pytest.mark.parametrize(
    ("first", "payload", "masked", "rsv1", "in_message", "ok"),
    [
        (0x81, b"text", True, False, False, True),
        (0x01, b"first fragment", True, False, False, True),
        (0x80, b"last fragment", True, False, True, True),
        (0x88, b"\x03\xe8", True, False, True, True),  # a control frame inside a message
        (0x89, b"x" * 125, True, False, False, True),
        (0xC1, b"compressed", True, True, False, True),  # RSV1 with permessage-deflate
        (0x81, b"unmasked", False, False, False, False),
        (0xC1, b"rsv1", True, False, False, False),  # RSV1 without the extension
        (0xC0, b"rsv1 on a continuation", True, True, True, False),  # RFC 7692 §6.1
        (0xC9, b"rsv1 on a ping", True, True, False, False),
        (0xA1, b"rsv2", True, True, False, False),
        (0x83, b"reserved opcode", True, False, False, False),
        (0x8B, b"reserved control opcode", True, False, False, False),
        (0x09, b"fragmented ping", True, False, False, False),
        (0x89, b"x" * 126, True, False, False, False),
        (0x80, b"continuation of nothing", True, False, False, False),
        (0x81, b"new message inside one", True, False, True, False),
    ],
)
def test_header_problems(
    first: int, payload: bytes, masked: bool, rsv1: bool, in_message: bool, ok: bool
) -> None:
    frame = next_frame(client_frame(first, payload, masked), 0)
    assert frame is not None and (frame.problem(rsv1, in_message) == "") is ok


def test_close_payloads() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"\x03") == 1002
    assert parse_close(struct.pack("!H", 1000) + "bye ✓".encode()) == (1000, "bye ✓")
    assert parse_close(struct.pack("!H", 1000) + b"\xc3\x28") == 1007
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        assert not valid_close_code(code) and parse_close(struct.pack("!H", code)) == 1002
    for code in (1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999):
        assert valid_close_code(code)
    assert close_frame(1005, "ignored") == b"\x88\x00"
    # A long reason is cut to fit 125 bytes, not in the middle of a character.
    out = close_frame(1000, "é" * 100)
    assert out[1] == 2 + 122 and out[4:].decode("utf-8") == "é" * 61


@pytest.mark.parametrize(("n", "head"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_server_frames_are_unmasked_with_the_shortest_length(n: int, head: int) -> None:
    out = data_frame(0x82, b"a" * n)
    assert len(out) == head + n and out[0] == 0x82 and not out[1] & 0x80
    frame = next_frame(out, 0)
    assert frame is not None and frame.length == n and frame.mask == b""


@pytest.mark.parametrize(
    "head",
    [
        bytes([0x82, 0x80 | 126]) + struct.pack("!H", 125),
        bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 65535),
        bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 63),
    ],
    ids=["16-bit-for-125", "64-bit-for-65535", "64-bit-top-bit"],
)
def test_a_length_in_more_bytes_than_needed_is_not_well_formed(head: bytes) -> None:
    frame = next_frame(head + KEY, 0)  # RFC 6455 §5.2: "the minimal number of bytes"
    assert frame is not None and not frame.minimal and frame.problem(False, False)
