"""permessage-deflate (RFC 7692): what each offer is answered with, and the codec's limits."""

from __future__ import annotations

import os
import time
import zlib

import pytest

from corral.gateway.ws_deflate import (
    TAIL,
    BadDeflate,
    Deflate,
    DeflateParams,
    MessageTooBig,
    negotiate,
)

PMD = "permessage-deflate"


@pytest.mark.parametrize(
    ("offer", "response", "server_bits", "client_bits"),
    [
        (PMD, f"{PMD}; server_max_window_bits=12", 12, 15),
        # §7.1.2.2: the client may take a window limit; without a value we pick ours.
        (f"{PMD}; client_max_window_bits", f"{PMD}; server_max_window_bits=12; "
         "client_max_window_bits=12", 12, 12),
        (f"{PMD}; client_max_window_bits=10", f"{PMD}; server_max_window_bits=12; "
         "client_max_window_bits=10", 12, 10),
        (f"{PMD}; client_max_window_bits=15", f"{PMD}; server_max_window_bits=12; "
         "client_max_window_bits=12", 12, 12),
        (f'{PMD}; client_max_window_bits="9"', f"{PMD}; server_max_window_bits=12; "
         "client_max_window_bits=9", 12, 9),
        # §7.1.2.1: answered with the same or a smaller value.
        (f"{PMD}; server_max_window_bits=10", f"{PMD}; server_max_window_bits=10", 10, 15),
        (f"{PMD}; server_max_window_bits=15", f"{PMD}; server_max_window_bits=12", 12, 15),
        (f"{PMD}; server_no_context_takeover; client_no_context_takeover",
         f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=12", 12, 15),
        # Offers in order of preference: the first we can accept wins (§5).
        (f"x-webkit-deflate-frame, {PMD}; server_max_window_bits=8, {PMD}; "
         "client_no_context_takeover", f"{PMD}; client_no_context_takeover; "
         "server_max_window_bits=12", 12, 15),
        ("Permessage-Deflate", f"{PMD}; server_max_window_bits=12", 12, 15),
    ],
)  # fmt: skip
def test_accepted_offers(offer: str, response: str, server_bits: int, client_bits: int) -> None:
    agreed = negotiate([offer])
    assert agreed is not None
    assert agreed.response == response
    assert (agreed.server_window_bits, agreed.client_window_bits) == (server_bits, client_bits)


@pytest.mark.parametrize(
    "offer",
    [
        "",
        "x-webkit-deflate-frame",
        f"{PMD}; foo",  # an unknown parameter (§7)
        f"{PMD}; server_no_context_takeover; server_no_context_takeover",  # repeated
        f"{PMD}; server_no_context_takeover=1",  # this one takes no value (§7.1.1.1)
        f"{PMD}; server_max_window_bits",  # this one needs a value (§7.1.2.1)
        f"{PMD}; server_max_window_bits=8",  # zlib cannot compress with a 256-byte window
        f"{PMD}; server_max_window_bits=16",
        f"{PMD}; server_max_window_bits=010",  # no leading zeros
        f"{PMD}; client_max_window_bits=7",
        f"{PMD}; client_max_window_bits=abc",
    ],
)
def test_declined_offers(offer: str) -> None:
    assert negotiate([offer]) is None


def test_offers_across_header_lines() -> None:
    agreed = negotiate(["foo; bar=1", f"{PMD}; client_no_context_takeover"])
    assert agreed is not None and agreed.client_no_context_takeover


def inflate(data: bytes, decompressor: zlib._Decompress) -> bytes:
    return decompressor.decompress(data + TAIL)


def test_compressed_messages_inflate_with_the_window_agreed() -> None:
    deflate = Deflate(DeflateParams(server_window_bits=10))
    peer = zlib.decompressobj(wbits=-10)  # the client's decompressor, as agreed
    message = b"the same words again and again, " * 20
    first = deflate.compress(message)
    second = deflate.compress(message)
    assert not first.endswith(TAIL)
    assert inflate(first, peer) == message and inflate(second, peer) == message
    assert len(second) < len(first) // 2  # the context carries over: mostly back-references
    assert deflate.compress(b"") == b"\x00" or inflate(deflate.compress(b""), peer) == b""


def test_server_no_context_takeover_starts_each_message_afresh() -> None:
    deflate = Deflate(DeflateParams(server_no_context_takeover=True))
    message = b"the same words again and again, " * 20
    assert deflate.compress(message) == deflate.compress(message)
    assert inflate(deflate.compress(message), zlib.decompressobj(wbits=-15)) == message


def client_compressor(bits: int = 15) -> zlib._Compress:
    return zlib.compressobj(6, zlib.DEFLATED, -bits)


def client_message(compressor: zlib._Compress, data: bytes) -> bytes:
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def test_decompress_across_frames_and_messages() -> None:
    deflate = Deflate(DeflateParams())
    compressor = client_compressor()
    payload = client_message(compressor, b"hello " * 1000)
    pieces = [payload[:3], payload[3:10], payload[10:]]
    out = b"".join(
        deflate.decompress(p, i == len(pieces) - 1, 1 << 20) for i, p in enumerate(pieces)
    )
    assert out == b"hello " * 1000
    again = client_message(compressor, b"hello " * 1000)  # uses the previous message's window
    fresh = client_message(client_compressor(), b"hello " * 1000)
    assert len(again) < len(fresh)
    assert deflate.decompress(again, True, 1 << 20) == b"hello " * 1000


def test_a_final_deflate_block_ends_the_context() -> None:
    # §7.2.3.4: a sender may end a message with BFINAL set; the next message starts afresh.
    deflate = Deflate(DeflateParams())
    for word in (b"first", b"second"):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        assert deflate.decompress(compressor.compress(word) + compressor.flush(), True, 100) == word


def test_a_zip_bomb_is_refused_without_inflating_it() -> None:
    compressor = client_compressor()
    bomb = client_message(compressor, bytes(200 * 1024 * 1024))  # 200 MiB of zeros
    assert len(bomb) < 300 * 1024
    deflate = Deflate(DeflateParams())
    started = time.perf_counter()
    with pytest.raises(MessageTooBig):
        deflate.decompress(bomb, True, 1024 * 1024)
    assert time.perf_counter() - started < 5  # stopped near 1 MiB, not after 200
    # At the limit exactly, a message is fine.
    exact = client_message(client_compressor(), bytes(1000))
    assert Deflate(DeflateParams()).decompress(exact, True, 1000) == bytes(1000)
    with pytest.raises(MessageTooBig):
        Deflate(DeflateParams()).decompress(exact, True, 999)


def test_data_that_is_not_deflate() -> None:
    with pytest.raises(BadDeflate):
        Deflate(DeflateParams()).decompress(b"\xff" * 8 + os.urandom(16), True, 1000)
