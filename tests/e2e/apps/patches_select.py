"""An app that monkey-patches ``select`` as gevent.monkey.patch_all() does (no epoll left)."""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

# gevent's patched select module has no epoll; this is what a leftover patch_all() leaves.
if hasattr(select, "epoll"):
    del select.epoll


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
