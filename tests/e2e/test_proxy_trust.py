"""Which peers may say the scheme and the client's address, and the PROXY version asked for."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]
FORWARDED = {"X-Forwarded-Proto": "https"}


def _unix_get(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)  # a loaded machine may take a while to boot the worker
        sock.connect(str(path))
        sock.sendall(data)
        out = b""
        while piece := sock.recv(65536):
            out += piece
    return out


def _body(raw: bytes) -> dict[str, object]:
    doc: dict[str, object] = json.loads(raw.partition(b"\r\n\r\n")[2])
    return doc


@pytest.mark.parametrize(
    ("worker", "app", "key"),
    [("sync", "behaviours:app", "wsgi.url_scheme"), ("asyncio", "asgi_app:app", "scheme")],
)
def test_a_unix_socket_peer_is_trusted_as_in_gunicorn(
    corral_factory: Factory, tmp_path: Path, worker: str, app: str, key: str
) -> None:
    """nginx on the same host says https through a unix socket: the app must believe it,
    or an app that redirects to https loops (the docs always said so; the code now agrees)."""
    path = tmp_path / "corral.sock"
    corral_factory("-w", "1", "-k", worker, "-b", f"unix:{path}", app)
    target = "/environ" if worker == "sync" else "/scope"
    raw = _unix_get(path, request("GET", target, {**FORWARDED, "Connection": "close"}))
    assert _body(raw)[key] == "https"


def test_a_tcp_peer_outside_forwarded_allow_ips_cannot_say_https(
    corral_factory: Factory,
) -> None:
    trusting = corral_factory("-w", "1", "-b", "127.0.0.1:0", "behaviours:app")
    wary = corral_factory(
        "-w", "1", "-b", "127.0.0.1:0", "--forwarded-allow-ips", "10.1.2.3", "behaviours:app"
    )
    for server, scheme in ((trusting, "https"), (wary, "http")):
        with RawClient(server.addr) as c:
            c.send(request("GET", "/environ", FORWARDED))
            assert json.loads(c.read_response().body)["wsgi.url_scheme"] == scheme


V1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 8000\r\n"
V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11"
    + struct.pack("!H", 12)
    + socket.inet_aton("203.0.113.7")
    + socket.inet_aton("127.0.0.1")
    + struct.pack("!HH", 40000, 8000)
)


@pytest.mark.parametrize(
    ("mode", "preamble", "status"),
    [("v1", V1, 200), ("v1", V2, 400), ("v2", V2, 200), ("v2", V1, 400), ("auto", V2, 200)],
)
def test_proxy_protocol_takes_only_the_version_asked_for(
    corral_factory: Factory, mode: str, preamble: bytes, status: int
) -> None:
    server = corral_factory(
        "-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", mode, "behaviours:app"
    )
    with RawClient(server.addr) as c:
        c.send(preamble + request("GET", "/environ"))
        resp = c.read_response()
    assert resp.status == status
    if status == 200:
        assert json.loads(resp.body)["REMOTE_ADDR"] == "203.0.113.7"
