"""AccessRecord: everything the access log and metrics need to know about one finished request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class AccessRecord:
    """One request/response cycle, filled in by the lifecycle once the response is done.

    Header lists hold names as received (any case) and latin-1 decoded values.
    `response_length` counts body bytes sent, not the head; None when unknown.
    `start_time` is `time.time()` when the request head arrived; `duration` is in seconds.
    """

    remote_addr: str
    remote_port: str | int | None
    method: str
    path: str
    query: str
    http_version: str
    status: int
    response_length: int | None
    request_headers: list[tuple[str, str]]
    response_headers: list[tuple[str, str]]
    start_time: float
    duration: float
    pid: int
    environ: Mapping[str, Any] | None = None
    username: str | None = None
