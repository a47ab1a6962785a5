"""When a worker will close a connection, the response says so first (no silent close)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]

WORKERS = {
    "threaded": ["-k", "threaded", "behaviours:app"],
    "asyncio": ["-k", "asyncio", "asgi_app:app"],
}


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_the_response_that_spends_max_requests_says_connection_close(
    corral_factory: Factory, worker: str
) -> None:
    server = corral_factory("-w", "1", "--max-requests", "2", "-b", "127.0.0.1:0", *WORKERS[worker])
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        first = c.read_response()
        assert first.status == 200 and first.header("connection") is None
        c.send(request("GET", "/"))
        second = c.read_response()
        assert second.status == 200 and second.header("connection") == "close"
        assert c.at_eof()
    server.wait_for("Booting worker", count=2)  # and the worker was replaced


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_keepalive_zero_closes_after_every_response(corral_factory: Factory, worker: str) -> None:
    server = corral_factory("-w", "1", "--keep-alive", "0", "-b", "127.0.0.1:0", *WORKERS[worker])
    with RawClient(server.addr) as c:
        c.send(request("GET", "/"))
        resp = c.read_response()
        assert resp.status == 200 and resp.header("connection") == "close"
        assert c.at_eof()
