"""metrics_bind's endpoint on real loopback sockets, driven by poll turns as the arbiter does."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from corral.arbiter.scrape import MAX_SCRAPERS, SCRAPE_TIMEOUT, MetricsEndpoint
from corral.sockets import create_listener, parse_bind

BODY = b"corral_workers 2\n"


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda msg, *args, **kw: self.lines.append(f"{level}: {msg % args}")


@pytest.fixture
def endpoint() -> Any:
    listener = create_listener(parse_bind("127.0.0.1:0"), backlog=64)
    served = MetricsEndpoint(listener, Log(), lambda: BODY)  # type: ignore[arg-type]
    yield served
    served.close(unlink=False)


def _turn(endpoint: MetricsEndpoint, now: float | None = None, wait_ms: int = 20) -> None:
    poller = select.poll()
    for fd, events in endpoint.watched().items():
        poller.register(fd, events)
    endpoint.ready(poller.poll(wait_ms), time.monotonic() if now is None else now)


def _exchange(endpoint: MetricsEndpoint, *pieces: bytes) -> bytes:
    """Send the pieces (a pause between), read to EOF, while this thread runs poll turns."""
    out: list[bytes] = []

    def client() -> None:
        with socket.create_connection(endpoint.listener.sock.getsockname(), timeout=5) as sock:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.05)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            out.append(data)

    thread = threading.Thread(target=client)
    thread.start()
    give_up = time.monotonic() + 5
    while thread.is_alive() and time.monotonic() < give_up:
        _turn(endpoint)
    thread.join(1)
    assert out, "the scrape did not finish"
    return out[0]


def test_get_metrics_in_pieces(endpoint: MetricsEndpoint) -> None:
    answer = _exchange(endpoint, b"GET /metr", b"ics HTTP/1.1\r\nHost: x\r\n", b"\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in head
    assert b"Connection: close" in head
    assert body == BODY


def test_head_has_no_body(endpoint: MetricsEndpoint) -> None:
    answer = _exchange(endpoint, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),  # no Host (RFC 9112 section 3.2)
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", b"400"),
    ],
)
def test_other_requests_get_their_error(
    endpoint: MetricsEndpoint, request_bytes: bytes, status: bytes
) -> None:
    assert _exchange(endpoint, request_bytes).startswith(b"HTTP/1.1 " + status)


def _half_request(address: Any) -> socket.socket:
    """A scraper that sends part of its head and then nothing (a connect that sends nothing
    at all is not even accepted: the listener defers accept until data arrives)."""
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    return sock


def test_a_silent_scraper_is_dropped_at_its_deadline(endpoint: MetricsEndpoint) -> None:
    with _half_request(endpoint.listener.sock.getsockname()) as sock:
        _turn(endpoint)
        _turn(endpoint)
        assert len(endpoint.watched()) == 2  # the listener and this scraper
        _turn(endpoint, now=time.monotonic() + SCRAPE_TIMEOUT + 1)
        assert sock.recv(100) == b""  # closed without an answer
    assert len(endpoint.watched()) == 1


def test_at_most_max_scrapers_are_taken_at_once(endpoint: MetricsEndpoint) -> None:
    address = endpoint.listener.sock.getsockname()
    socks = [_half_request(address) for _ in range(MAX_SCRAPERS + 3)]
    try:
        for _ in range(MAX_SCRAPERS + 10):
            _turn(endpoint, wait_ms=5)
        watched = endpoint.watched()
        assert len(watched) == MAX_SCRAPERS  # the listener is no longer watched
        assert endpoint.listener.fileno() not in watched
    finally:
        for sock in socks:
            sock.close()


def test_a_method_other_than_get_is_told_which_are_allowed(endpoint: MetricsEndpoint) -> None:
    answer = _exchange(endpoint, b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET, HEAD\r\n" in answer  # RFC 9110 section 15.5.6


def test_a_failing_render_costs_the_scrape_not_the_arbiter() -> None:
    def broken() -> bytes:
        raise ZeroDivisionError("a bug")

    log = Log()
    listener = create_listener(parse_bind("127.0.0.1:0"), backlog=64)
    served = MetricsEndpoint(listener, log, broken)  # type: ignore[arg-type]
    try:
        answer = _exchange(served, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500 ")
        assert log.lines == ["exception: metrics_bind: cannot render the metrics"]
        # Served again on the next scrape.
        assert _exchange(served, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    finally:
        served.close(unlink=False)
