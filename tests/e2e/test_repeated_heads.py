"""A head repeated byte for byte is parsed once, and what a gateway derives from it (the WSGI
environ's request keys, the ASGI scope's) is kept with it: every request must still get the
view of its own peer, and none may see what the app changed in another's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import CorralProcess
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]
# The one head every request below sends: a proxy's claims, believed from a trusted peer only.
FIELDS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"  # forwarded_allow_ips is 127.0.0.1 by default


def _view(server: CorralProcess, source: str, target: str) -> dict[str, Any]:
    with RawClient(server.addr, source=source) as c:
        c.send(request("GET", target, FIELDS))
        resp = c.read_response()
    assert resp.status == 200
    doc: dict[str, Any] = json.loads(resp.body)
    return doc


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_wsgi_a_repeated_head_gives_each_peer_its_own_environ(
    corral_factory: Factory, worker: str
) -> None:
    server = corral_factory(
        "-w", "1", "-k", worker, "-b", "127.0.0.1:0", "--proxy-headers", "behaviours:app"
    )
    for source in (TRUSTED, TRUSTED, UNTRUSTED, UNTRUSTED, TRUSTED):
        env = _view(server, source, "/environ")
        trusted = source == TRUSTED
        assert env["wsgi.url_scheme"] == ("https" if trusted else "http")
        assert env["REMOTE_ADDR"] == ("203.0.113.9" if trusted else UNTRUSTED)
        assert env["HTTP_X_FORWARDED_PROTO"] == "https"
        assert "HTTP_X_REQUEST_MARK" not in env  # the app's change to an earlier environ


def test_asgi_a_repeated_head_gives_each_peer_its_own_scope(corral_factory: Factory) -> None:
    server = corral_factory(
        "-w", "1", "-k", "asyncio", "-b", "127.0.0.1:0", "--proxy-headers", "asgi_app:app"
    )
    first = None
    for source in (TRUSTED, TRUSTED, UNTRUSTED, UNTRUSTED, TRUSTED):
        scope = _view(server, source, "/scope")
        trusted = source == TRUSTED
        assert scope["scheme"] == ("https" if trusted else "http")
        assert scope["client"][0] == ("203.0.113.9" if trusted else UNTRUSTED)
        # The app appended a header to each scope it got; the next one starts clean.
        first = first or scope["headers"]
        assert scope["headers"] == first
        assert ["x-request-mark", "1"] not in scope["headers"]
