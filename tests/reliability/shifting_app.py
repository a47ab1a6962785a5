"""An app whose work shifts between waiting and computing, by the mode file the test writes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

MODE_FILE = os.environ.get("SHIFTING_MODE_FILE", "")


def _mode() -> str:
    try:
        with open(MODE_FILE) as f:
            return f.read().strip()
    except OSError:
        return "io"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if _mode() == "cpu":
        until = time.thread_time() + 0.005  # 5 ms of this thread's CPU
        while time.thread_time() < until:
            pass
    else:
        # 50 ms of waiting, as on a slow query: the pools stay full while the clients and
        # the server use little CPU, so the machine has the free core growth asks for
        # (with 10 ms, 12 clients' own CPU often took it on a shared 2-core host).
        time.sleep(0.05)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
