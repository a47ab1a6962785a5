"""A WebSocket session reads the same messages however the client's bytes are split."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
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


class Gateway:
    log = logging.getLogger("test_ws_session_reads")


class Req:
    target = "/"


def frame(first: int, payload: bytes) -> bytes:
    return client_frame(first & 0x0F, payload, fin=bool(first & 0x80))


def read_all(pieces: list[bytes], max_size: int = 1 << 20) -> tuple[list[Any], list[bytes]]:
    """Feed the pieces to a fresh open session: the app's messages and the bytes written."""
    loop = asyncio.new_event_loop()
    try:
        channel = Channel()
        settings = WSSettings(max_size, 0, 0)
        session = WebSocketSession(Gateway(), settings, channel, Req(), None, loop)  # type: ignore[arg-type]
        assert loop.run_until_complete(session.receive())["type"] == "websocket.connect"
        loop.run_until_complete(session.send({"type": "websocket.accept"}))
        for piece in pieces:
            session.feed(piece)
        messages = []
        while True:
            message = loop.run_until_complete(session.receive())
            messages.append(message)
            if message["type"] == "websocket.disconnect":
                return messages, channel.out
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
