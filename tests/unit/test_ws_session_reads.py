"""A WebSocket session reads the same messages however the client's bytes are split."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from typing import Any

from tests.wsframes import frame as client_frame

from corral.gateway.websocket import WebSocketSession, WSSettings


class FakeConn:
    """The HTTP core's side of the upgrade: the 101 is not under test here."""

    trailing_data = b""

    def send_response(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        return b""


class Channel:
    """Records what the session writes; the transport is not under test here."""

    def __init__(self) -> None:
        self.conn = FakeConn()
        self.write_blocked = False
        self.disconnected = False
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    async def drain(self) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def linger(self) -> None:
        self.closed = True


class Gateway:
    log = logging.getLogger("test_ws_session_reads")


class Req:
    target = "/"


def frame(first: int, payload: bytes) -> bytes:
    return client_frame(first & 0x0F, payload, fin=bool(first & 0x80))


def read_all(
    pieces: list[bytes], max_size: int = 1 << 20, offer: str | None = None
) -> tuple[list[Any], list[bytes]]:
    """Feed the pieces to a fresh open session: the app's messages and the bytes written.

    ``offer``: the client's Sec-WebSocket-Extensions, for permessage-deflate.
    """
    loop = asyncio.new_event_loop()
    try:
        channel = Channel()
        settings = WSSettings(max_size, 0, 0)
        session = WebSocketSession(Gateway(), settings, channel, Req(), None, loop)  # type: ignore[arg-type]
        session.extensions = [offer] if offer else []
        assert loop.run_until_complete(session.receive())["type"] == "websocket.connect"
        loop.run_until_complete(session.send({"type": "websocket.accept"}))
        for piece in pieces:
            session.feed(piece)
        messages = []
        for _ in range(10_000):  # every message fed is queued: none of these waits for long
            message = loop.run_until_complete(asyncio.wait_for(session.receive(), 5))
            messages.append(message)
            if message["type"] == "websocket.disconnect":
                return messages, channel.out
        raise AssertionError("no websocket.disconnect")
    finally:
        loop.close()


STREAM = b"".join(
    [
        frame(0x81, "héllo".encode()),
        frame(0x82, os.urandom(200)),
        frame(0x01, b"frag"),
        frame(0x89, b"ping"),
        frame(0x80, b"mented"),
        frame(0x82, os.urandom(70000)),
        frame(0x81, b""),
        frame(0x88, struct.pack("!H", 1000) + b"done"),
    ]
)


def test_every_split_reads_alike() -> None:
    whole = read_all([STREAM])
    texts = [m.get("text") for m in whole[0]]
    assert texts[:3] == ["héllo", None, "fragmented"] and texts[4] == ""
    assert whole[0][-1] == {"type": "websocket.disconnect", "code": 1000, "reason": "done"}
    assert whole[1][1:] == [b"\x8a\x04ping", b"\x88\x06\x03\xe8done"]  # after the 101: pong, close
    head = STREAM[: len(STREAM) - 70000]  # every cut in the frames before the big one
    for cut in range(1, len(head) + 20):
        assert read_all([STREAM[:cut], STREAM[cut:]]) == whole, cut
    small = [STREAM[i : i + 7] for i in range(0, len(STREAM), 7)]
    assert read_all(small) == whole


def test_bad_frame_after_a_frame_in_pieces_fails_1002() -> None:
    good = frame(0x82, b"x" * 300)
    unmasked = bytes([0x81, 5]) + b"plain"
    messages, out = read_all([good[:100], good[100:] + unmasked])
    assert messages[0]["bytes"] == b"x" * 300
    assert messages[-1]["code"] == 1002
    assert out[-1][:1] == b"\x88" and out[-1][2:4] == struct.pack("!H", 1002)


def compressed(compressor: Any, data: bytes) -> bytes:
    out: bytes = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # RFC 7692 §7.2.1: less the 00 00 ff ff tail


def test_compressed_messages_read_alike_however_split() -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -12)
    text = ("héllo wörld " * 50).encode()
    one = compressed(compressor, text)
    two = compressed(compressor, b"\x00\x01" * 300)  # refers back into the first message
    cut = len(two) // 2
    stream = b"".join(
        [
            client_frame(0x1, one, rsv=0x40),  # RFC 7692 §6: RSV1 on the first frame only
            client_frame(0x2, two[:cut], fin=False, rsv=0x40),
            frame(0x89, b"ping"),
            client_frame(0x0, two[cut:]),
            frame(0x81, b"plain"),  # an uncompressed message between compressed ones
            frame(0x88, struct.pack("!H", 1000)),
        ]
    )
    offer = "permessage-deflate; client_max_window_bits"
    whole = read_all([stream], offer=offer)
    assert [m.get("text", m.get("bytes")) for m in whole[0][:3]] == [
        text.decode(),
        b"\x00\x01" * 300,
        "plain",
    ]
    assert whole[0][3]["code"] == 1000
    for at in range(1, len(stream)):
        assert read_all([stream[:at], stream[at:]], offer=offer) == whole, at


def test_compressed_frames_without_the_extension_fail_1002() -> None:
    payload = compressed(zlib.compressobj(6, zlib.DEFLATED, -15), b"hello")
    messages, _ = read_all([client_frame(0x1, payload, rsv=0x40)])
    assert messages[-1]["code"] == 1002


def test_inflating_past_the_limit_fails_1009() -> None:
    bomb = compressed(zlib.compressobj(6, zlib.DEFLATED, -15), bytes(50_000_000))
    offer = "permessage-deflate"
    messages, out = read_all([client_frame(0x2, bomb, rsv=0x40)], max_size=100_000, offer=offer)
    assert messages == [
        {"type": "websocket.disconnect", "code": 1009, "reason": "message too big once inflated"}
    ]
    assert out[-1][2:4] == struct.pack("!H", 1009)
    garbage = client_frame(0x2, b"\xff\xff\xff\xff", rsv=0x40)
    assert read_all([garbage], offer=offer)[0][-1]["code"] == 1007


def test_fragmented_text_fails_1007_at_the_bad_fragment() -> None:
    # RFC 6455 §8.1: invalid UTF-8 fails the connection as soon as it is seen, even though
    # the message has not ended; a character split between fragments is fine.
    good = "wörld".encode()
    messages, _ = read_all(
        [frame(0x01, good[:2]), frame(0x00, good[2:] + b"\xc3\x28"), frame(0x80, b"never")]
    )
    assert messages[-1]["code"] == 1007
    bye = frame(0x88, b"")
    messages, _ = read_all([frame(0x01, good[:2]), frame(0x80, good[2:]), bye])
    assert messages == [
        {"type": "websocket.receive", "text": "wörld"},
        {"type": "websocket.disconnect", "code": 1005, "reason": ""},  # a close without a code
    ]
    messages, _ = read_all([frame(0x01, b"ok"), frame(0x80, good[:2]), bye])  # ends mid-character
    assert messages[-1]["code"] == 1007
