"""A WSGI app that answers with its pid and the raw_env variables the tests set (raw_env on HUP)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

NAMES = ("GREETING", "EXTRA")


def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
    shown = " ".join(f"{name}={os.environ.get(name, '<unset>')}" for name in NAMES)
    body = f"{os.getpid()} {shown}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
