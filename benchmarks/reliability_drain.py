"""The TERM row: slow requests in flight and more waiting in the backlog when TERM arrives.

One worker; ten connections each send `GET /slow` (0.3 s). Once the app has begun the first
(it says so on stderr), TERM goes to the master. A sync worker has the other nine still in the
listen backlog; every one of them was sent before TERM and must be answered.
"""

from __future__ import annotations

import signal

from benchmarks import reliability_clients as rc
from benchmarks.reliability_apps import SLOW_MARKER
from benchmarks.reliability_load import Tally
from benchmarks.reliability_process import ServerProcess

CONNECTIONS = 10
MARKER_TIMEOUT_S = 10.0


def _connect(server: ServerProcess) -> rc.RawConnection | rc.Outcome:
    try:
        conn = rc.RawConnection(server.addr)
        conn.sock.sendall(rc.raw_request("GET", "/slow", close=True))
    except OSError as exc:
        return rc.classify_error(exc)
    return conn


def run_drain(server: ServerProcess, tally: Tally, designed: frozenset[int]) -> bool:
    """Send, TERM, read every answer into `tally`; True when the master then exited by itself."""
    mark = len(server.lines())
    conns = [_connect(server)]
    server.wait_for(SLOW_MARKER, since=mark, timeout=MARKER_TIMEOUT_S)
    conns += [_connect(server) for _ in range(CONNECTIONS - 1)]
    server.signal(signal.SIGTERM)
    tally.add([rc.read_one(conn, designed) for conn in conns])
    return server.wait_gone(server.master)
