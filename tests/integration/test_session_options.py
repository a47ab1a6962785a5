"""What a sync or threaded worker's Session sets on the client socket it is given."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from corral.arbiter.heartbeat import Heartbeat
from corral.config import load
from corral.drivers.blocking import DriverContext, Session
from corral.gateway.loader import LoadedApp
from corral.logging import Logger
from corral.workers.context import driver_context
from corral.workers.threaded import ThreadedWorker


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b""]


@pytest.fixture
def ctx() -> DriverContext:
    cfg = load(["-k", "threaded", "--error-logfile", "/dev/null", "x:y"], {})
    worker = ThreadedWorker(1, 0, [], cfg, Logger(cfg), Heartbeat(None))
    return driver_context(worker, LoadedApp(_app, "wsgi"), multithread=True)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket, object]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, peer = listener.accept()
    yield server, client, peer
    server.close()
    client.close()


def test_a_tcp_connection_gets_nodelay(
    ctx: DriverContext, tcp_pair: tuple[socket.socket, socket.socket, object]
) -> None:
    server, _, peer = tcp_pair
    assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    Session(server, peer, server.getsockname(), ctx)
    assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("peer", ["", ("127.0.0.1", 5000)])
def test_a_unix_connection_is_served_without_tcp_options(ctx: DriverContext, peer: object) -> None:
    # A Unix socket's peer is a path (""); a socketpair handed a TCP-like peer address, as the
    # benchmarks' in-process harness does, must not fail either.
    server, client = socket.socketpair()
    with server, client:
        session = Session(server, peer, "/run/app.sock", ctx)
        assert session.fd == server.fileno()
