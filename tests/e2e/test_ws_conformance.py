"""A WebSocket conformance run against a real corral (RFC 6455, RFC 7692).

The client is not the one the unit and integration tests use (tests/wsframes.py): frames are
built and parsed by the `websockets` library's sans-I/O layer (`websockets.frames.Frame`, its
`PerMessageDeflate` extension), over a plain socket. Frames that library refuses to build (a
reserved opcode, a long ping) are its valid frames with the header bits changed. Every frame
corral sends is parsed by `Frame.parse`, which checks it as strictly as a client must.

The cases follow Autobahn's sections: framing (1-2), reserved bits and opcodes (3-4),
fragmentation (5), UTF-8 (6), close handling (7), limits (9), compression (12-13).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from tests.e2e.conftest import CorralProcess

LIMIT = 65536  # the server's websocket_max_message_size in this run
PMD_OFFER = "permessage-deflate; client_max_window_bits"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralProcess]:
    args = ["-k", "asyncio", "-w", "1", "-b", "127.0.0.1:0"]
    args += ["--websocket-max-message-size", str(LIMIT), "asgi_app:app"]
    proc = CorralProcess(args, cwd=Path(tmp_path_factory.mktemp("conformance")))
    yield proc
    proc.stop()


class Client:
    """One WebSocket connection: a handshake by hand, frames by the websockets library."""

    def __init__(self, server: CorralProcess, offer: str | None = None) -> None:
        self.sock = socket.create_connection(server.addr, timeout=10)
        key = base64.b64encode(os.urandom(16))
        head = (
            "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else "")
            + "\r\n"
        )
        self.sock.sendall(head.encode())
        buf = b""
        for _ in range(100):  # the head is a few hundred bytes
            if b"\r\n\r\n" in buf:
                break
            buf += self.sock.recv(4096)
        response, _, rest = buf.partition(b"\r\n\r\n")
        lines = response.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101 "), lines
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        self.extension = headers.get("sec-websocket-extensions")
        self.extensions: list[PerMessageDeflate] = []
        if self.extension:
            assert self.extension == (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            )
            self.extensions = [PerMessageDeflate(False, False, 12, 12)]
        self.reader = StreamReader()
        self.reader.feed_data(rest)

    def send(self, frame: Frame) -> None:
        self.sock.sendall(frame.serialize(mask=True, extensions=self.extensions))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> Frame:
        parser = Frame.parse(
            self.reader.read_exact, mask=False, max_size=None, extensions=self.extensions
        )
        for _ in range(100_000):  # one read per pass; a frame here is at most ~1 MB
            try:
                next(parser)
            except StopIteration as done:
                frame: Frame = done.value
                return frame
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the server closed the connection mid-frame")
            self.reader.feed_data(data)
        raise AssertionError("no whole frame")

    def expect(self, opcode: Opcode, data: bytes) -> None:
        frame = self.recv()
        assert (frame.opcode, frame.fin, bytes(frame.data)) == (opcode, True, data)

    def expect_close(self, code: int | None) -> None:
        """The server's close frame with this code (None: an empty one), then TCP's end:
        the server closes first (RFC 6455 §7.1.1)."""
        frame = self.recv()
        assert frame.opcode is Opcode.CLOSE, frame
        if code is None:
            assert frame.data == b""
        else:
            assert Close.parse(frame.data).code == code
        self.sock.settimeout(10)
        assert self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def patched(frame: Frame, first: int | None = None, set_bits: int = 0) -> bytes:
    """A valid frame, masked, with its first byte replaced or bits added: what the library
    will not build itself (reserved bits and opcodes, a long control frame)."""
    raw = bytearray(frame.serialize(mask=True))
    raw[0] = (raw[0] if first is None else first) | set_bits
    return bytes(raw)


@pytest.fixture
def client(server: CorralProcess) -> Iterator[Client]:
    c = Client(server)
    yield c
    c.close()


# -- framing and pings (Autobahn 1-2) -------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_and_binary_of_every_length_form(client: Client, size: int) -> None:
    client.send(Frame(Opcode.TEXT, b"*" * size))
    client.expect(Opcode.TEXT, b"*" * size)
    client.send(Frame(Opcode.BINARY, b"\xfe" * size))
    client.expect(Opcode.BINARY, b"\xfe" * size)


@pytest.mark.parametrize("payload", [b"", b"ping", b"\x00\xff" * 62 + b"!"])
def test_ping_is_answered_with_its_payload(client: Client, payload: bytes) -> None:
    client.send(Frame(Opcode.PING, payload))
    client.expect(Opcode.PONG, payload)


def test_unsolicited_pong_is_ignored(client: Client) -> None:
    client.send(Frame(Opcode.PONG, b"unasked"))
    client.send(Frame(Opcode.TEXT, b"after"))
    client.expect(Opcode.TEXT, b"after")


def test_ten_pings_in_one_write(client: Client) -> None:
    client.send_raw(b"".join(Frame(Opcode.PING, b"%d" % i).serialize(mask=True) for i in range(10)))
    for i in range(10):
        client.expect(Opcode.PONG, b"%d" % i)


# -- reserved bits, opcodes, control frame rules (Autobahn 2-4) -----------------------------


@pytest.mark.parametrize("bits", [0x40, 0x20, 0x10, 0x70], ids=["rsv1", "rsv2", "rsv3", "all"])
def test_reserved_bits_without_an_extension_close_1002(client: Client, bits: int) -> None:
    client.send_raw(patched(Frame(Opcode.TEXT, b"hi"), set_bits=bits))
    client.expect_close(1002)


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_close_1002(client: Client, opcode: int) -> None:
    client.send_raw(patched(Frame(Opcode.BINARY, b"x"), first=0x80 | opcode))
    client.expect_close(1002)


def test_a_ping_of_126_bytes_closes_1002(client: Client) -> None:
    client.send_raw(patched(Frame(Opcode.BINARY, b"p" * 126), first=0x80 | Opcode.PING.value))
    client.expect_close(1002)


def test_a_fragmented_ping_closes_1002(client: Client) -> None:
    client.send_raw(patched(Frame(Opcode.PING, b"half"), first=Opcode.PING.value))  # no FIN
    client.expect_close(1002)


def test_an_unmasked_frame_closes_1002(client: Client) -> None:
    client.send_raw(Frame(Opcode.TEXT, b"bare").serialize(mask=False))
    client.expect_close(1002)


# -- fragmentation (Autobahn 5) -------------------------------------------------------------


def test_fragments_with_control_frames_between(client: Client) -> None:
    client.send(Frame(Opcode.TEXT, b"frag", fin=False))
    client.send(Frame(Opcode.PING, b"in between"))
    client.send(Frame(Opcode.CONT, b"", fin=False))  # an empty fragment
    client.send(Frame(Opcode.PONG, b"unasked"))
    client.send(Frame(Opcode.CONT, b"mented"))
    client.expect(Opcode.PONG, b"in between")  # answered before the message is whole
    client.expect(Opcode.TEXT, b"fragmented")


def test_a_hundred_binary_fragments(client: Client) -> None:
    client.send(Frame(Opcode.BINARY, b"\x00", fin=False))
    for i in range(1, 99):
        client.send(Frame(Opcode.CONT, bytes([i]), fin=False))
    client.send(Frame(Opcode.CONT, b"\x63"))
    client.expect(Opcode.BINARY, bytes(range(100)))


def test_a_continuation_with_no_message_closes_1002(client: Client) -> None:
    client.send(Frame(Opcode.CONT, b"orphan"))
    client.expect_close(1002)


def test_a_new_message_inside_a_fragmented_one_closes_1002(client: Client) -> None:
    client.send(Frame(Opcode.TEXT, b"first", fin=False))
    client.send(Frame(Opcode.TEXT, b"second"))
    client.expect_close(1002)


# -- UTF-8 (Autobahn 6) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    ["κόσμε".encode(), "\U0001f600".encode(), b"\xef\xbb\xbf", b"\xf4\x8f\xbf\xbf"],
    ids=["greek", "emoji", "bom", "max-code-point"],
)
def test_valid_utf8_split_at_every_byte(client: Client, data: bytes) -> None:
    client.send(Frame(Opcode.TEXT, data[:1], fin=len(data) == 1))
    for i in range(1, len(data)):
        client.send(Frame(Opcode.CONT, data[i : i + 1], fin=i == len(data) - 1))
    client.expect(Opcode.TEXT, data)


@pytest.mark.parametrize(
    "data",
    [b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok\xff", b"\xe2\x82"],
    ids=["bad-continuation", "surrogate", "above-max", "overlong", "0xff", "truncated"],
)
def test_invalid_utf8_closes_1007(client: Client, data: bytes) -> None:
    client.send(Frame(Opcode.TEXT, data))
    client.expect_close(1007)


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends(client: Client) -> None:
    client.send(Frame(Opcode.TEXT, b"valid ", fin=False))
    client.send(
        Frame(Opcode.CONT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", fin=False)
    )
    client.expect_close(1007)  # no final fragment was sent: the server did not wait for it


# -- closing (Autobahn 7) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
)
def test_a_valid_close_code_is_echoed(client: Client, code: int) -> None:
    client.send(Frame(Opcode.CLOSE, Close(code, "bye ✓").serialize()))
    client.expect_close(code)


def test_an_empty_close_is_answered_empty(client: Client) -> None:
    client.send(Frame(Opcode.CLOSE, b""))
    client.expect_close(None)


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_an_invalid_close_code_closes_1002(client: Client, code: int) -> None:
    client.send_raw(patched(Frame(Opcode.CLOSE, struct.pack("!H", code))))
    client.expect_close(1002)


def test_a_one_byte_close_payload_closes_1002(client: Client) -> None:
    client.send_raw(patched(Frame(Opcode.CLOSE, b"\x03")))
    client.expect_close(1002)


def test_a_close_reason_that_is_not_utf8_closes_1007(client: Client) -> None:
    client.send_raw(patched(Frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80")))
    client.expect_close(1007)


def test_nothing_is_answered_after_the_close(client: Client) -> None:
    client.send_raw(
        Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True)
        + Frame(Opcode.PING, b"late").serialize(mask=True)
        + Frame(Opcode.TEXT, b"late").serialize(mask=True)
    )
    client.expect_close(1000)  # and then EOF: no pong, no echo


def test_the_app_closing_is_a_close_frame_then_eof(client: Client) -> None:
    client.send(Frame(Opcode.TEXT, b"close-me"))  # the app answers with websocket.close 1000
    frame = client.recv()
    assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data) == Close(1000, "as asked")
    client.send(Frame(Opcode.CLOSE, Close(1000, "").serialize()))
    client.sock.settimeout(10)
    assert client.sock.recv(1) == b""


# -- limits (Autobahn 9, with a small websocket_max_message_size) ---------------------------


def test_a_message_at_the_limit_passes(client: Client) -> None:
    client.send(Frame(Opcode.BINARY, b"L" * (LIMIT // 2), fin=False))
    client.send(Frame(Opcode.CONT, b"L" * (LIMIT // 2)))
    client.expect(Opcode.BINARY, b"L" * LIMIT)


def test_one_frame_over_the_limit_closes_1009(client: Client) -> None:
    client.send(Frame(Opcode.BINARY, b"L" * (LIMIT + 1)))
    client.expect_close(1009)


def test_fragments_over_the_limit_close_1009(client: Client) -> None:
    for _ in range(8):
        client.send(Frame(Opcode.TEXT if _ == 0 else Opcode.CONT, b"f" * (LIMIT // 8), fin=False))
    client.send(Frame(Opcode.CONT, b"one byte too many"))
    client.expect_close(1009)


# -- permessage-deflate (Autobahn 12-13) ----------------------------------------------------


@pytest.fixture
def deflating(server: CorralProcess) -> Iterator[Client]:
    c = Client(server, PMD_OFFER)
    assert c.extensions, "permessage-deflate was not agreed"
    yield c
    c.close()


def test_compressed_echo_each_way(deflating: Client) -> None:
    text = ("compress me " * 500).encode()
    for _ in range(3):  # the context carries over between messages, both ways
        deflating.send(Frame(Opcode.TEXT, text))
        frame = deflating.recv()  # inflated by the library; RSV1 checked by it
        assert (frame.opcode, bytes(frame.data)) == (Opcode.TEXT, text)
    deflating.send(Frame(Opcode.BINARY, os.urandom(5000)))  # incompressible data grows a bit
    assert len(deflating.recv().data) == 5000


def test_compressed_fragments_with_a_ping_between(deflating: Client) -> None:
    deflating.send(Frame(Opcode.TEXT, b"part one, ", fin=False))
    deflating.send(Frame(Opcode.PING, b"mid"))
    deflating.send(Frame(Opcode.CONT, b"part two"))
    deflating.expect(Opcode.PONG, b"mid")
    deflating.expect(Opcode.TEXT, b"part one, part two")


def test_rsv1_on_a_continuation_closes_1002(deflating: Client) -> None:
    deflating.send_raw(Frame(Opcode.TEXT, b"a", fin=False).serialize(mask=True))
    deflating.send_raw(patched(Frame(Opcode.CONT, b"b"), set_bits=0x40))  # RFC 7692 §6.1
    deflating.expect_close(1002)


def test_rsv1_on_a_ping_closes_1002(deflating: Client) -> None:
    deflating.send_raw(patched(Frame(Opcode.PING, b"z"), set_bits=0x40))
    deflating.expect_close(1002)


def test_compressed_invalid_utf8_closes_1007(deflating: Client) -> None:
    deflating.send(Frame(Opcode.TEXT, b"\xc3\x28 not utf-8" * 10))
    deflating.expect_close(1007)


def test_compressed_message_inflating_past_the_limit_closes_1009(deflating: Client) -> None:
    deflating.send(Frame(Opcode.BINARY, bytes(LIMIT * 64)))  # 4 MiB of zeros, ~4 KiB sent
    deflating.expect_close(1009)
