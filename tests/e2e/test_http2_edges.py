"""HTTP/2 edge cases a review found: a bad HTTP2-Settings, the preface in parts, a connection
that turns to HTTP/2 after a graceful stop began, and the client's own GOAWAY."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived
from hyperframe.frame import Frame, GoAwayFrame, SettingsFrame

from tests.e2e.conftest import CorralProcess

Factory = Callable[..., CorralProcess]
WORKERS = {
    "threaded": ["-k", "threaded", "h2_app:app"],
    "asyncio": ["-k", "asyncio", "h2_app:asgi"],
}
H2C = ["--http-protocols", "h2,h1", "--http2-cleartext", "both"]
workers = pytest.mark.parametrize("worker", sorted(WORKERS))


def _serve(factory: Factory, worker: str, *extra: str) -> CorralProcess:
    return factory("-w", "1", "-b", "127.0.0.1:0", *H2C, *extra, *WORKERS[worker])


def _chunks(sock: socket.socket, limit: float) -> Iterator[bytes]:
    """What the server sends, read by read, until it closes or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            return
        yield chunk


def _read_until(sock: socket.socket, done: Callable[[bytes], bool], limit: float = 10) -> bytes:
    got = b""
    if done(got):
        return got
    for chunk in _chunks(sock, limit):
        got += chunk
        if done(got):
            break
    return got


def _events(sock: socket.socket, client: H2Connection, want: type, limit: float = 10) -> list:
    """Feed the server's frames to ``client`` until an event of type ``want`` (or the end)."""
    seen: list = []
    for data in _chunks(sock, limit):
        seen += client.receive_data(data)
        sock.sendall(client.data_to_send())
        if any(isinstance(e, want) for e in seen):
            break
    return seen


def _frames(raw: bytes) -> list[Frame]:
    """The whole frames in ``raw``, in order."""
    frames, pos = [], 0
    while pos + 9 <= len(raw):
        frame, length = Frame.parse_frame_header(memoryview(raw[pos : pos + 9]))
        if pos + 9 + length > len(raw):
            break
        frame.parse_body(memoryview(raw[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames


@workers
def test_a_bad_http2_settings_leaves_the_request_on_http11(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker)
    with socket.create_connection(server.addr, timeout=10) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: a\r\n\r\n"
        )
        reply = _read_until(sock, lambda got: b"\r\n\r\n" in got)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:80]
    assert b"101" not in reply.split(b"\r\n", 1)[0]
    assert server.get()[0] == 200  # the worker is fine, and its connection slot was given back
    assert not server.matches("Traceback|Fatal error")


@workers
def test_the_preface_in_parts_is_still_http2(corral_factory: Factory, worker: str) -> None:
    server = _serve(corral_factory, worker)
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    first = client.data_to_send()
    with socket.create_connection(server.addr, timeout=10) as sock:
        sock.sendall(first[:18])  # "PRI * HTTP/2.0\r\n\r\n": a whole HTTP/1 head, of version 2.0
        time.sleep(0.3)  # the server has read it alone (no other way to split a read)
        sock.sendall(first[18:])
        client.send_headers(
            1,
            [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")],
            end_stream=True,
        )
        sock.sendall(client.data_to_send())
        events = _events(sock, client, ResponseReceived)
    heads = [e for e in events if isinstance(e, ResponseReceived)]
    assert heads and dict(heads[0].headers)[b":status"] == b"200", events


@workers
def test_a_connection_that_turns_to_http2_after_a_graceful_stop_gets_goaway(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker, "--graceful-timeout", "10", "--log-level", "debug")
    held = socket.create_connection(server.addr, timeout=10)  # keeps the draining worker accepting
    held.sendall(b"GET /gate?f=/nonexistent-never HTTP/1.1\r\nHost: x\r\n\r\n")
    server.wait_for("h2_app: waiting")  # the held request is in the app
    server.signal(signal.SIGTERM)
    server.wait_for("Worker stopping gracefully")  # the stop has begun in the worker
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    try:
        with socket.create_connection(server.addr, timeout=10) as sock:
            sock.sendall(client.data_to_send())
            raw = _read_until(
                sock, lambda got: any(isinstance(f, GoAwayFrame) for f in _frames(got)), limit=5
            )
    except ConnectionRefusedError:
        pytest.skip("the listener closed before the new connection: nothing to check")
    finally:
        held.close()
    kinds = [type(frame) for frame in _frames(raw)]
    # The server's preface (SETTINGS) first, as RFC 9113 §3.4 wants, then the GOAWAY.
    assert kinds[:1] == [SettingsFrame] and GoAwayFrame in kinds, kinds


@workers
def test_the_clients_goaway_ends_the_connection_cleanly(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker)
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    with socket.create_connection(server.addr, timeout=10) as sock:
        sock.sendall(client.data_to_send())
        client.send_headers(
            1,
            [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")],
            end_stream=True,
        )
        client.close_connection()
        sock.sendall(client.data_to_send())
        rest = _read_until(sock, lambda got: False, limit=5)  # until the server closes
    assert len(rest) < 1_000_000
    assert server.get()[0] == 200
    assert not server.matches("Traceback|Fatal error|Unexpected error")
