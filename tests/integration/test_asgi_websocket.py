"""WebSocket on the asyncio worker, byte-exact: handshake, frames, close codes, pings."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from tests.e2e.rawhttp import RawClient, request
from tests.integration.test_asgi_http import Server, serve, wait_for
from tests.wsframes import frame, xor_mask

__all__ = ["serve"]  # the fixture, shared with test_asgi_http

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def upgrade(path: str = "/", **extra: str) -> bytes:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": RFC_KEY,
    }
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return request("GET", path, {k: v for k, v in headers.items() if v})


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason)


def read_frame(c: RawClient) -> tuple[int, bool, bytes]:
    """(opcode, fin, payload) of the next server frame; server frames are never masked."""
    first, second = c._exact(2)
    assert not second & 0x80, "a server must not mask its frames"
    n = second & 0x7F
    if n == 126:
        n = struct.unpack("!H", c._exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", c._exact(8))[0]
    return first & 0x0F, bool(first & 0x80), c._exact(n)


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


class Recorder:
    """An echo app that records what it saw, for assertions from the test thread."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.done = threading.Event()
        self.may_accept = threading.Event()  # /slow accepts only once this is set

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        path = scope["path"]
        if path == "/reject":
            await send({"type": "websocket.close"})
            return
        if path == "/slow":  # the test sends its first frames before letting us accept
            assert await asyncio.to_thread(self.may_accept.wait, 10)
        accept: dict[str, Any] = {"type": "websocket.accept", "headers": [(b"x-extra", b"1")]}
        if scope["subprotocols"]:
            accept["subprotocol"] = scope["subprotocols"][0]
        await send(accept)
        if path == "/close":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.events.append(("disconnect", message["code"]))
                    try:
                        await send({"type": "websocket.send", "text": "too late"})
                    except OSError as exc:
                        self.events.append(("send-raised", type(exc).__name__))
                    return
                if path == "/close":
                    continue
                key = "text" if message.get("text") is not None else "bytes"
                await send({"type": "websocket.send", key: message[key]})
        finally:
            self.done.set()


def connect(server: Server, path: str = "/", **extra: str) -> RawClient:
    c = RawClient(server.addr)
    c.send(upgrade(path, **extra))
    resp = c.read_response()
    assert resp.status == 101, resp
    return c


# -- the opening handshake ---------------------------------------------------------------------


def test_accept_with_subprotocol_and_extra_headers(serve: Callable[..., Server]) -> None:
    server = serve(Recorder())
    with RawClient(server.addr) as c:
        c.send(upgrade("/", Sec_WebSocket_Protocol="chat, superchat"))
        resp = c.read_response()
        assert resp.status == 101
        assert resp.header("sec-websocket-accept") == RFC_ACCEPT
        assert resp.header("upgrade") == "websocket"
        assert (resp.header("connection") or "").lower() == "upgrade"
        assert resp.header("sec-websocket-protocol") == "chat"
        assert resp.header("x-extra") == "1"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec_WebSocket_Key": "not-base64!"}, 400),
        ({"Sec_WebSocket_Key": "c2hvcnQ="}, 400),  # base64, but not of 16 bytes
        ({"Sec_WebSocket_Key": ""}, 400),
        ({"Sec_WebSocket_Version": "8"}, 426),
        ({"Sec_WebSocket_Version": ""}, 426),
    ],
)
def test_bad_handshakes_are_refused(
    serve: Callable[..., Server], headers: dict[str, str], status: int
) -> None:
    server = serve(Recorder())
    with RawClient(server.addr) as c:
        c.send(upgrade("/", **headers))
        resp = c.read_response()
        assert resp.status == status
        if status == 426:
            assert resp.header("sec-websocket-version") == "13"
        assert c.at_eof()


def test_close_before_accept_is_403(serve: Callable[..., Server]) -> None:
    server = serve(Recorder())
    with RawClient(server.addr) as c:
        c.send(upgrade("/reject"))
        assert c.read_response().status == 403


# -- messages ----------------------------------------------------------------------------------


def test_text_and_binary_messages_are_echoed(serve: Callable[..., Server]) -> None:
    server = serve(Recorder())
    with connect(server) as c:
        c.send(frame(TEXT, "héllo".encode()))
        assert read_frame(c) == (TEXT, True, "héllo".encode())
        c.send(frame(BINARY, b"\x00\xff" * 40000))
        assert read_frame(c) == (BINARY, True, b"\x00\xff" * 40000)


def test_fragments_are_reassembled_and_pings_answered_between(
    serve: Callable[..., Server],
) -> None:
    server = serve(Recorder())
    word = "wörld".encode()
    with connect(server) as c:
        c.send(frame(TEXT, b"Hel", fin=False))
        c.send(frame(PING, b"are you there"))
        c.send(frame(CONT, b"lo " + word[:2], fin=False))  # splits the UTF-8 of "ö"
        c.send(frame(CONT, word[2:]))
        assert read_frame(c) == (PONG, True, b"are you there")
        assert read_frame(c) == (TEXT, True, "Hello wörld".encode())
        c.send(frame(BINARY, b"whole again"))  # the fragmented message is over
        assert read_frame(c) == (BINARY, True, b"whole again")


def test_many_frames_in_one_read_and_one_frame_in_many(serve: Callable[..., Server]) -> None:
    server = serve(Recorder())
    with connect(server) as c:
        c.send(b"".join(frame(TEXT, b"m%d" % i) for i in range(50)) + frame(PING, b"p"))
        got = [read_frame(c) for _ in range(51)]
        got.remove((PONG, True, b"p"))  # answered by the server, so maybe before the echoes
        assert got == [(TEXT, True, b"m%d" % i) for i in range(50)]
        big = frame(BINARY, os.urandom(70000))
        # The header arrives in pieces, then the payload in parts, then another frame.
        for piece in (big[:1], big[1:5], big[5:9000], big[9000:], frame(TEXT, b"next")):
            c.send(piece)
        assert read_frame(c) == (BINARY, True, unmasked_payload(big))
        assert read_frame(c) == (TEXT, True, b"next")


def test_frames_sent_with_the_upgrade_and_before_the_accept(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app)
    with RawClient(server.addr) as c:
        c.send(upgrade() + frame(TEXT, b"eager"))  # in one write with the request
        assert c.read_response().status == 101
        assert read_frame(c) == (TEXT, True, b"eager")
    chunks = [os.urandom(5000) for _ in range(100)]  # 500 KB, past the 64 KiB early limit
    with RawClient(server.addr) as c:
        c.send(upgrade("/slow") + b"".join(frame(BINARY, chunk) for chunk in chunks))
        app.may_accept.set()  # every byte is sent (or in the kernel's buffers) by now
        assert c.read_response().status == 101
        assert [read_frame(c) for _ in chunks] == [(BINARY, True, chunk) for chunk in chunks]


def unmasked_payload(raw: bytes) -> bytes:
    """The payload of one masked client frame with a 64-bit length, as the app sees it."""
    return xor_mask(raw[14:], raw[10:14])


def test_client_close_is_answered_and_the_app_told(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app)
    with connect(server) as c:
        c.send(close_frame(1000, b"bye"))
        opcode, _, payload = read_frame(c)
        assert opcode == CLOSE and close_code(payload) == 1000
        assert c.at_eof()  # RFC 6455 §7.1.1: the server closes TCP first
    assert app.done.wait(5)
    assert app.events == [("disconnect", 1000), ("send-raised", "ClientDisconnected")]


def test_app_close_sends_code_and_reason(
    serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(Recorder())
    with connect(server, "/close") as c:
        opcode, _, payload = read_frame(c)
        assert opcode == CLOSE
        assert close_code(payload) == 4001 and payload[2:] == b"bye now"
        c.send(frame(PING, b"late") + close_frame(4001))  # a ping after our close: no pong
        assert c.at_eof() and c.buf == b""
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no "Fatal error" either


def test_client_vanishing_gives_1006(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app)
    c = connect(server)
    c.close()
    assert app.done.wait(5)
    assert app.events[0] == ("disconnect", 1006)


# -- failing the connection ----------------------------------------------------------------------


def expect_close(c: RawClient, code: int) -> None:
    while True:
        opcode, _, payload = read_frame(c)
        if opcode == CLOSE:
            assert close_code(payload) == code
            assert c.at_eof()
            return


def test_message_over_the_size_limit_closes_1009(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app, "--websocket-max-message-size", "1000")
    with connect(server) as c:
        c.send(frame(BINARY, b"a" * 1000))
        assert read_frame(c) == (BINARY, True, b"a" * 1000)  # at the limit: fine
        c.send(frame(TEXT, b"b" * 600, fin=False) + frame(CONT, b"b" * 600))
        expect_close(c, 1009)
    assert app.done.wait(5) and app.events[0] == ("disconnect", 1009)


def test_one_frame_over_the_size_limit_closes_1009(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app, "--websocket-max-message-size", "1000")
    with connect(server) as c:
        c.send(frame(TEXT, b"c" * 1001)[:500])  # refused from its header, before its payload
        expect_close(c, 1009)
    assert app.done.wait(5) and app.events[0] == ("disconnect", 1009)


def test_invalid_utf8_closes_1007(serve: Callable[..., Server]) -> None:
    server = serve(Recorder())
    with connect(server) as c:
        c.send(frame(TEXT, b"ok \xc3\x28 not utf-8"))
        expect_close(c, 1007)


@pytest.mark.parametrize(
    "bad",
    [
        frame(TEXT, b"unmasked", mask=False),
        frame(0x3, b"reserved opcode"),
        frame(PING, b"fragmented control", fin=False),
        frame(TEXT, b"rsv1 without an extension", rsv=0x40),
        frame(CONT, b"continuation of nothing"),
        frame(CLOSE, b"\x03"),  # a one-byte close payload
        frame(PING, b"x" * 126),  # control frames carry at most 125 bytes
        bytes([0x82, 0x80 | 126]) + struct.pack("!H", 5) + bytes(4) + b"short",
        # Known bad from the header alone: no need to wait for 100,000 bytes of payload.
        bytes([0x80, 0x80 | 127]) + struct.pack("!Q", 100000) + bytes(4) + b"orphan",
        frame(TEXT, b"part", fin=False)
        + bytes([0x82, 0x80 | 127])
        + struct.pack("!Q", 100000)
        + bytes(4)
        + b"x",  # wsproto fails it at its first payload byte
    ],
    ids=[
        "unmasked",
        "opcode",
        "fragmented-ping",
        "rsv1",
        "orphan-cont",
        "close-1-byte",
        "big-ping",
        "long-length-form",
        "orphan-cont-header",
        "new-message-inside-one",
    ],
)
def test_protocol_errors_close_1002(serve: Callable[..., Server], bad: bytes) -> None:
    server = serve(Recorder())
    with connect(server) as c:
        c.send(bad)
        expect_close(c, 1002)


def test_idle_pings_and_pong_timeout(serve: Callable[..., Server]) -> None:
    server = serve(Recorder(), "--websocket-ping-interval", "1", "--websocket-ping-timeout", "1")
    with connect(server) as c:
        c.sock.settimeout(10)
        opcode, _, payload = read_frame(c)
        assert opcode == PING
        c.send(frame(PONG, payload))  # answered: the connection stays up
        assert read_frame(c)[0] == PING  # the next idle ping; this one goes unanswered
        expect_close(c, 1011)


def test_graceful_stop_sends_going_away(serve: Callable[..., Server]) -> None:
    app = Recorder()
    server = serve(app)
    with connect(server) as c:
        c.send(frame(TEXT, b"before"))
        assert read_frame(c) == (TEXT, True, b"before")
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        opcode, _, payload = read_frame(c)
        assert opcode == CLOSE and close_code(payload) == 1001
        c.send(close_frame(1001))
        assert c.at_eof()
        stopper.join(15)
    wait_for(lambda: app.done.is_set(), "the app to end")
    assert app.events[0] == ("disconnect", 1001)
