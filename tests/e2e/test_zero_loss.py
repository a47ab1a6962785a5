"""No request lost to keep-alive rules, retirement or shutdown: issue 17's findings, per worker."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess
from tests.e2e.rawhttp import RawClient, Response, request

Factory = Callable[..., CorralProcess]

APPS = {
    "sync": ["-k", "sync", "zero_loss:app"],
    "threaded": ["-k", "threaded", "zero_loss:app"],
    "asyncio": ["-k", "asyncio", "zero_loss:asgi"],
}
KEEPING = ["threaded", "asyncio"]  # the workers that keep connections alive
ENTERED = r"zero-loss: entered /slow"


def start(factory: Factory, worker: str, *extra: str) -> CorralProcess:
    # Debug level: the tests wait for the worker's "stopping gracefully" line.
    return factory("-w", "1", "-b", "127.0.0.1:0", "--log-level", "debug", *extra, *APPS[worker])


@pytest.mark.parametrize("query", ["", "100"])
@pytest.mark.parametrize("worker", KEEPING)
def test_keepalive_survives_an_app_reading_an_empty_body(
    corral_factory: Factory, worker: str, query: str
) -> None:
    """Finding 1: read() (or read(100)) of a GET's empty body used to end the connection."""
    server = start(corral_factory, worker)
    target = f"/?{query}" if query else "/"
    with RawClient(server.addr) as c:
        c.send(request("GET", target) * 2)  # pipelined
        for _ in range(2):
            resp = c.read_response()
            assert resp.status == 200 and resp.header("connection") is None
        c.send(request("GET", target))  # and the connection is still good for more
        assert c.read_response().status == 200
        assert not c.at_eof(timeout=0.3)


def _queued_clients(addr: tuple[str, int], count: int) -> list[socket.socket]:
    """Connections that each sent a GET and wait, in the backlog or on a busy worker."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(addr, timeout=15)
        sock.sendall(request("GET", "/queued"))
        clients.append(sock)
    return clients


def _read_status(sock: socket.socket) -> int:
    """The status of the one response a queued client gets (0: none, the connection ended)."""
    data = b""
    with sock:
        while b"\r\n" not in data:
            try:
                piece = sock.recv(4096)
            except ConnectionResetError:
                return 0
            if not piece:
                return 0
            data += piece
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("worker", sorted(APPS))
def test_term_serves_the_connections_waiting_in_the_backlog(
    corral_factory: Factory, worker: str
) -> None:
    """Finding 3: TERM while one request runs and nine wait used to reset the nine."""
    server = start(corral_factory, worker)
    slow = RawClient(server.addr, timeout=15)
    slow.send(request("GET", "/slow?0.5"))
    server.wait_for(ENTERED)
    waiting = _queued_clients(server.addr, 9)
    server.signal(signal.SIGTERM)
    assert slow.read_response().status == 200
    slow.close()
    assert [_read_status(sock) for sock in waiting] == [200] * 9
    assert server.wait_exit() == 0


@pytest.mark.parametrize("worker", sorted(APPS))
def test_health_check_is_answered_by_corral_200_then_503_while_draining(
    corral_factory: Factory, worker: str
) -> None:
    server = start(corral_factory, worker, "--health-check-path", "/healthz")
    with RawClient(server.addr) as c:
        c.send(request("GET", "/healthz"))
        resp = c.read_response()
    assert (resp.status, resp.body) == (200, b"OK\n")  # the app would say "... read at"
    slow = RawClient(server.addr, timeout=15)
    slow.send(request("GET", "/slow?1"))
    server.wait_for(ENTERED)
    probe = socket.create_connection(server.addr, timeout=15)
    server.signal(signal.SIGTERM)
    server.wait_for("Handling signal: term")  # the probe comes after, as a readiness probe's
    if worker in KEEPING:
        # These answer the probe as soon as it comes, and the worker learns of the TERM after
        # the master: wait until the worker has begun to drain. (The sync worker, busy with
        # /slow, takes the probe from its backlog only once it has.)
        server.wait_for(r"Worker stopping gracefully \(pid: \d+\): the server drains")
    probe.sendall(request("GET", "/healthz"))
    assert _read_status(probe) == 503
    assert slow.read_response().status == 200
    slow.close()
    assert server.wait_exit() == 0


@pytest.mark.parametrize(
    "probe",
    [request("GET", "/healthz", {"Connection": "close"}), b"GET /healthz HTTP/1.0\r\n\r\n"],
    ids=["connection-close", "http-1.0"],
)
@pytest.mark.parametrize("worker", sorted(APPS))
def test_a_health_check_that_ends_its_connection_is_answered_then_closed(
    corral_factory: Factory, worker: str, probe: bytes
) -> None:
    """kube-probe sends Connection: close; HAProxy's httpchk speaks HTTP/1.0."""
    server = start(corral_factory, worker, "--health-check-path", "/healthz")
    with RawClient(server.addr) as c:
        c.send(probe)
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"OK\n")
        assert c.at_eof(timeout=5)  # closed at once, not at the idle deadline
    assert server.get("/")[0] == 200
    assert "Traceback" not in server.log_text()


STOPPING = r"Worker stopping gracefully \(pid: \d+\): this worker retires"


def _reuse_after_reload(server: CorralProcess, c: RawClient) -> Response:
    """HUP; once the old worker is stopping, send again on the connection it holds."""
    server.signal(signal.SIGHUP)
    server.wait_for(STOPPING)
    c.send(request("GET", "/again"))
    return c.read_response()


@pytest.mark.parametrize("worker", KEEPING)
def test_a_retiring_worker_answers_the_next_request_on_a_kept_alive_connection(
    corral_factory: Factory, worker: str
) -> None:
    """Graceful retirement: the idle kept-alive connection is not closed under the client;
    its next request is answered, saying Connection: close."""
    server = start(corral_factory, worker)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/first"))
        assert c.read_response().status == 200
        resp = _reuse_after_reload(server, c)
        assert resp.status == 200 and resp.body == b"0 bytes read at /again"
        assert resp.header("connection") == "close"
        assert c.at_eof()


@pytest.mark.parametrize("worker", KEEPING)
def test_a_retiring_worker_answers_requests_already_pipelined(
    corral_factory: Factory, worker: str
) -> None:
    """Closing after the first of two pipelined requests would leave the second unanswered."""
    server = start(corral_factory, worker)
    with RawClient(server.addr) as c:
        c.send(request("GET", "/first"))
        assert c.read_response().status == 200
        server.signal(signal.SIGHUP)
        server.wait_for(STOPPING)
        c.send(request("GET", "/a") + request("GET", "/b"))
        first, second = c.read_response(), c.read_response()
        assert (first.status, second.status) == (200, 200)
        assert second.body == b"0 bytes read at /b"
        assert second.header("connection") == "close"
