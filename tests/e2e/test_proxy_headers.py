"""proxy_headers: the client address a trusted proxy reports, in WSGI and ASGI."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]
CHAIN = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}  # 6.6.6.6 may be the client's own invention


def _client(server: CorralProcess, asgi: bool) -> str:
    with RawClient(server.addr) as c:
        c.send(request("GET", "/scope" if asgi else "/environ", CHAIN))
        doc = json.loads(c.read_response().body)
    return str(doc["client"][0] if asgi else doc["REMOTE_ADDR"])


@pytest.mark.parametrize(
    ("worker", "app"), [("threaded", "behaviours:app"), ("asyncio", "asgi_app:app")]
)
@pytest.mark.parametrize(
    ("flags", "client"),
    [
        ([], "127.0.0.1"),  # gunicorn's default: the peer
        (["--proxy-headers"], "203.0.113.9"),  # the rightmost hop we do not trust
        (["--proxy-headers", "--forwarded-allow-ips", "10.9.9.9"], "127.0.0.1"),  # untrusted
    ],
)
def test_proxy_headers(
    corral_factory: Factory, worker: str, app: str, flags: list[str], client: str
) -> None:
    server = corral_factory("-w", "1", "-k", worker, "-b", "127.0.0.1:0", *flags, app)
    assert _client(server, worker == "asyncio") == client
