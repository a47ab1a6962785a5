"""What the WSGI gateway writes for a response given whole: one buffer for a small body; a large
one after its head, the app's own bytes object, never a copy joined to the head."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from corral.gateway.wsgi import JOIN_MAX, ResponseState, WSGIGateway
from corral.http.connection import ServerConnection
from corral.http.errors import LocalProtocolError
from corral.http.events import Request

LARGE = b"L" * (JOIN_MAX + 1)


class Recorder:
    """A transport that keeps every buffer it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def send_after(self, head: bytes, body: bytes) -> None:
        self.sent += [head, body]

    def recv(self) -> bytes:
        return b""

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        raise AssertionError("no file here")


def respond(
    body: bytes, headers: list[tuple[str, str]], method: str = "GET", status: Any = "200 OK"
) -> tuple[list[bytes], ResponseState]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(status, list(headers))
        return [body]

    return serve(gateway_for(app), method)


def gateway_for(app: Callable[..., list[bytes]]) -> WSGIGateway:
    cfg = SimpleNamespace(
        header_map="drop",
        forwarded_allow_ips=[],
        proxy_headers=False,
        secure_scheme_headers={},
        forwarder_headers=[],
        sendfile=True,
    )
    return WSGIGateway(app, cfg, multithread=False, log_warning=lambda _: None)


def serve(gateway: WSGIGateway, method: str = "GET") -> tuple[list[bytes], ResponseState]:
    conn = ServerConnection()
    conn.receive_data(f"{method} / HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    req = conn.next_event()
    assert isinstance(req, Request)
    transport, state = Recorder(), ResponseState()
    gateway.run({}, req, conn, transport, state)  # type: ignore[arg-type]
    return transport.sent, state


def test_a_small_body_goes_out_with_its_head_in_one_write() -> None:
    sent, _ = respond(b"small", [])
    assert len(sent) == 1 and sent[0].endswith(b"\r\n\r\nsmall")
    assert b"Content-Length: 5\r\n" in sent[0]


@pytest.mark.parametrize("declared", [True, False])
def test_a_large_body_follows_its_head_as_the_apps_own_object(declared: bool) -> None:
    headers = [("Content-Length", str(len(LARGE)))] if declared else []
    sent, state = respond(LARGE, headers)
    assert len(sent) == 2 and sent[1] is LARGE
    assert sent[0].endswith(b"\r\n\r\n")
    assert sent[0].count(f"Content-Length: {len(LARGE)}\r\n".encode()) == 1
    assert state.body_bytes == len(LARGE)


def test_a_large_body_to_head_is_not_sent() -> None:
    sent, state = respond(LARGE, [], method="HEAD")
    assert f"Content-Length: {len(LARGE)}\r\n".encode() in sent[0]
    assert b"".join(sent[1:]) == b""  # the head alone: no body bytes
    assert state.status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [([("Content-Length", "7")], "200 OK"), ([], "304 Not Modified")],
)
def test_send_full_answers_what_its_checks_decide(
    headers: list[tuple[str, str]], status: str
) -> None:
    """A length that does not match, or a 304: send_full's rules, unchanged by the size."""
    if status == "200 OK":
        with pytest.raises(LocalProtocolError, match="does not match"):
            respond(LARGE, headers, status=status)
        return
    sent, _ = respond(LARGE, headers, status=status)
    assert len(sent) == 1 and b"Content-Length" not in sent[0]


class Status(str):
    """A str subclass, as some frameworks' status objects are."""


def test_status_lines_are_checked_whatever_the_memo_holds() -> None:
    """A str subclass is taken whether or not its plain twin was seen; a bytearray, which a
    memo cannot hold, is refused as an invalid status line, not a TypeError."""
    lines: list[Any] = [Status("201 Created"), "201 Created", Status("201 Created")]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(lines.pop(0), [])
        return [b"x"]

    gateway = gateway_for(app)
    for _ in range(3):
        sent, state = serve(gateway)
        assert (state.status, sent[0][:21]) == (201, b"HTTP/1.1 201 Created\r")
    with pytest.raises(LocalProtocolError, match="invalid status line"):
        respond(b"x", [], status=bytearray(b"200 OK"))
