"""wsgi.input over the real HTTP core, with the body arriving in pieces of chosen sizes."""

from __future__ import annotations

import pytest

from corral.gateway.wsgi_input import WSGIInput
from corral.http.connection import Limits, ServerConnection
from corral.http.events import Request

BODY = bytes(range(256)) * 40  # 10,240 bytes, no two neighbouring pieces alike


class Pieces:
    """A body source that hands out the request's remaining bytes ``size`` at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size

    def recv(self) -> bytes:
        piece, self.data = self.data[: self.size], self.data[self.size :]
        return piece

    def sendall(self, data: bytes) -> None:
        raise AssertionError("no interim response was expected")


class StallsOnce(Pieces):
    """Like Pieces, but the third read fails once, as a client stalling past the timeout."""

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data, size)
        self.reads = 0

    def recv(self) -> bytes:
        self.reads += 1
        if self.reads == 3:
            raise TimeoutError("the client stopped sending")
        return super().recv()


def stream(
    piece: int, body: bytes = BODY, chunked: bool = False, source: type[Pieces] = Pieces
) -> WSGIInput:
    if chunked:
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700])
                         for i in range(0, len(body), 700)) + b"0\r\n\r\n"  # fmt: skip
    else:
        head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
        framed = body
    conn = ServerConnection(Limits())
    conn.receive_data(head)
    assert type(conn.next_event()) is Request
    return WSGIInput(conn, source(framed, piece))


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("piece", [1, 10, 999, 4096, 65536])
@pytest.mark.parametrize("size", [1, 7, 4096, 10_240, 65536])
def test_reads_of_any_size_return_the_body_in_order(piece: int, size: int, chunked: bool) -> None:
    body = stream(piece, chunked=chunked)
    got = []
    while chunk := body.read(size):
        # Full reads until the end: a short one only when the body runs out.
        assert len(chunk) == size or len(b"".join(got)) + len(chunk) == len(BODY)
        got.append(chunk)
    assert b"".join(got) == BODY
    assert body.read(size) == b"" and body.read() == b""


def test_a_read_larger_than_a_piece_joins_the_pieces() -> None:
    body = stream(10)
    assert body.read(100) == BODY[:100]
    assert body.read(5) == BODY[100:105]


def test_the_rest_of_a_piece_is_kept_for_the_next_read_and_readline() -> None:
    lines = b"first line\nsecond line\nthird"
    body = stream(1000, lines)
    assert body.read(3) == b"fir"
    assert body.readline() == b"st line\n"
    assert body.read(4) == b"seco"
    assert body.read() == b"nd line\nthird"


def test_read_whole_after_a_partial_read() -> None:
    body = stream(333)
    assert body.read(1) == BODY[:1]
    assert body.read(-1) == BODY[1:]
    assert body.read(None) == b""


def test_read_zero_returns_nothing_and_loses_nothing() -> None:
    body = stream(10)
    assert body.read(0) == b""
    assert body.read() == BODY


def test_bytes_read_before_a_failed_read_are_not_lost() -> None:
    body = stream(10, source=StallsOnce)
    with pytest.raises(TimeoutError):
        body.read(100)  # two pieces arrive, the third read fails
    assert body.read(100) == BODY[:100]
