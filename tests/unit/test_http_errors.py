"""ProtocolError, the reason-phrase table and render_error, the one error renderer."""

from __future__ import annotations

import re

import pytest

from corral.http.errors import REASONS, LocalProtocolError, ProtocolError, render_error


def test_protocol_error_carries_status_and_reason() -> None:
    err = ProtocolError(431, "too many header fields")
    assert (err.status, err.reason) == (431, "too many header fields")
    assert str(err) == "431 too many header fields"
    assert isinstance(LocalProtocolError("x"), Exception)
    assert not isinstance(LocalProtocolError("x"), ProtocolError)


def test_reason_table_has_the_statuses_the_core_uses() -> None:
    for status, phrase in {
        100: b"Continue",
        101: b"Switching Protocols",
        200: b"OK",
        204: b"No Content",
        304: b"Not Modified",
        400: b"Bad Request",
        413: b"Content Too Large",
        414: b"URI Too Long",
        417: b"Expectation Failed",
        431: b"Request Header Fields Too Large",
        500: b"Internal Server Error",
        501: b"Not Implemented",
        505: b"HTTP Version Not Supported",
    }.items():
        assert REASONS[status] == phrase


@pytest.mark.parametrize("status", [400, 413, 414, 417, 431, 500, 501, 505])
def test_render_error(status: int) -> None:
    out = render_error(status)
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    phrase = REASONS[status]
    assert lines[0] == b"HTTP/1.1 %d %s" % (status, phrase)
    fields = dict(line.split(b": ", 1) for line in lines[1:])
    assert re.fullmatch(
        rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", fields[b"Date"]
    )
    assert fields[b"Server"] == b"corral"
    assert fields[b"Content-Type"] == b"text/plain; charset=utf-8"
    assert fields[b"Connection"] == b"close"
    assert body == b"%d %s\n" % (status, phrase)
    assert int(fields[b"Content-Length"]) == len(body)


def test_render_error_server_header_changed_or_omitted() -> None:
    assert b"\r\nServer: edge\r\n" in render_error(400, server=b"edge")
    assert b"Server:" not in render_error(400, server=None)


def test_render_error_unknown_status() -> None:
    out = render_error(599)
    assert out.startswith(b"HTTP/1.1 599 Error\r\n")
    assert out.endswith(b"\r\n\r\n599 Error\n")
