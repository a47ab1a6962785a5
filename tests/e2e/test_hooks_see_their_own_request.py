"""Hooks may change the request they are given; the change stays with that one request.

The parser hands one Request object to every repeat of a head (readers.parse_head_cached), so a
hook that appended to `req.headers` of the shared object would add to every later request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CorralProcess

Factory = Callable[..., CorralProcess]
HOOKS = """
def pre_request(worker, req):
    req.headers.append(("X-Hooked", "pre"))


def post_request(worker, req, environ, resp):
    req.headers.append(("X-Post", "after"))
"""


def _wsgi_fields(doc: dict[str, object]) -> tuple[object, object]:
    return doc.get("HTTP_X_HOOKED"), doc.get("HTTP_X_POST")


def _asgi_fields(doc: dict[str, object]) -> tuple[object, object]:
    pairs = doc["headers"]
    assert isinstance(pairs, list)
    hooked = [v for k, v in pairs if k == "x-hooked"]
    post = [v for k, v in pairs if k == "x-post"]
    return ", ".join(hooked) or None, ", ".join(post) or None


CASES = {
    "threaded": (["-k", "threaded", "behaviours:app"], "/environ", _wsgi_fields),
    "sync": (["-k", "sync", "behaviours:app"], "/environ", _wsgi_fields),
    "asyncio": (["-k", "asyncio", "asgi_app:app"], "/scope", _asgi_fields),
}


@pytest.mark.parametrize("worker", sorted(CASES))
def test_a_hooks_change_reaches_its_request_and_no_other(
    corral_factory: Factory, tmp_path: Path, worker: str
) -> None:
    args, path, fields = CASES[worker]
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS)
    # One worker, so every request meets the heads the ones before it left in the memo.
    server = corral_factory("-c", str(conf), "-b", "127.0.0.1:0", "-w", "1", *args)
    seen = []
    with httpx.Client(base_url=server.urls[0], timeout=10) as client:
        for _ in range(3):
            response = client.get(path, headers={"X-Same": "1"})
            assert response.status_code == 200
            seen.append(fields(json.loads(response.text)))
    assert seen == [("pre", None)] * 3
    assert server.stop() == 0
