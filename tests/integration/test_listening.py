"""What the sync and threaded workers' listeners hand over: client sockets, options set."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.arbiter.heartbeat import Heartbeat
from corral.config import load
from corral.drivers.blocking import DriverContext, Session
from corral.drivers.listening import Listening
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


@pytest.fixture(params=["127.0.0.1", "::1"])
def tcp_listener(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in request.param else socket.AF_INET
    try:
        listener = socket.create_server((request.param, 0), family=family)
    except OSError:
        pytest.skip(f"no {request.param} on this machine")
    with listener:
        yield listener


def _receive_timeout(sock: socket.socket) -> float:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    seconds, micros = struct.unpack("ll", raw)
    return float(seconds + micros / 1e6)


def _accept_each(listening: Listening, address: object, count: int) -> list[socket.socket]:
    clients = [socket.create_connection(address) for _ in range(count)]  # type: ignore[arg-type]
    accepted = []
    for client in clients:
        socket.socket.setblocking(listening.sock, True)
        sock, peer = listening.accept()
        assert isinstance(peer, tuple) and peer[1] == client.getsockname()[1]
        accepted.append(sock)
        client.close()
    return accepted


def test_tcp_connections_come_blocking_with_nodelay_and_the_receive_timeout(
    tcp_listener: socket.socket,
) -> None:
    listening = Listening(tcp_listener, recv_wait=0.05)
    assert tcp_listener.getblocking() is False  # the worker's own accept never waits
    # The first connection (the one checked for inherited options) and the ones after it.
    for sock in _accept_each(listening, tcp_listener.getsockname()[:2], 3):
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert 0.04 <= _receive_timeout(sock) <= 0.06  # the kernel rounds to its tick
            assert sock.gettimeout() is None  # a plain recv waits in the kernel


@pytest.mark.parametrize("before", ["nothing", "a sync worker"])
def test_connections_queued_before_the_listener_was_set_up_get_the_options_too(
    tcp_listener: socket.socket, before: str
) -> None:
    # A worker starting while clients wait: the first connections were accepted by the kernel
    # before the listener had the options, so they were not copied into them. After a reload
    # from the sync worker, the listener already had TCP_NODELAY: those connections carry it
    # but not the receive timeout, and one without it would hold a thread in recv for good.
    address = tcp_listener.getsockname()[:2]
    if before == "a sync worker":
        Listening(tcp_listener)
    early = [socket.create_connection(address) for _ in range(3)]
    listening = Listening(tcp_listener, recv_wait=0.05)
    accepted = []
    for client in early:
        socket.socket.setblocking(tcp_listener, True)
        accepted.append(listening.accept()[0])
        client.close()
    accepted += _accept_each(listening, address, 2)
    for sock in accepted:
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert 0.04 <= _receive_timeout(sock) <= 0.06


def test_the_sync_workers_connections_get_nodelay_and_no_receive_timeout(
    tcp_listener: socket.socket,
) -> None:
    listening = Listening(tcp_listener)
    for sock in _accept_each(listening, tcp_listener.getsockname()[:2], 2):
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert _receive_timeout(sock) == 0.0


def test_an_app_default_timeout_does_not_reach_the_connections(
    tcp_listener: socket.socket,
) -> None:
    # socket.setdefaulttimeout() in an app would make every recv poll first.
    listening = Listening(tcp_listener, recv_wait=0.05)
    socket.setdefaulttimeout(5.0)
    try:
        (sock,) = _accept_each(listening, tcp_listener.getsockname()[:2], 1)
    finally:
        socket.setdefaulttimeout(None)
    with sock:
        assert sock.gettimeout() is None


def test_unix_connections_get_the_receive_timeout_each(tmp_path: Path) -> None:
    # Linux does not copy a Unix listener's options into its connections: each gets its own.
    path = str(tmp_path / "app.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        listening = Listening(listener, recv_wait=0.05)
        for _ in range(2):
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(path)
                socket.socket.setblocking(listener, True)
                sock, peer = listening.accept()
                with sock:
                    assert peer == ""
                    assert 0.04 <= _receive_timeout(sock) <= 0.06


def test_accept_with_nothing_waiting_raises_blocking_io_error(
    tcp_listener: socket.socket,
) -> None:
    listening = Listening(tcp_listener)
    with pytest.raises(BlockingIOError):
        listening.accept()


@pytest.mark.parametrize("peer", ["", ("127.0.0.1", 5000)])
def test_a_unix_connection_is_served_without_tcp_options(ctx: DriverContext, peer: object) -> None:
    # A Unix socket's peer is a path (""); a socketpair handed a TCP-like peer address, as the
    # benchmarks' in-process harness does, must not fail either.
    server, client = socket.socketpair()
    with server, client:
        session = Session(server, peer, "/run/app.sock", ctx)
        assert session.fd == server.fileno()
