"""benchmarks/floor.py, the pure-Python floor docs/performance.md measures `io` against: it serves
keep-alive requests from forked workers and stops them all on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import children_of

FLOOR = Path(__file__).resolve().parents[2] / "benchmarks" / "floor.py"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"Hello, World!"):
        piece = sock.recv(4096)
        assert piece, data
        data += piece
    return data


def test_floor_answers_keep_alive_requests_after_its_sleep_and_stops_its_workers() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(FLOOR), "--workers", "2", "--sleep-ms", "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: set[int] = set()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        workers = children_of(proc.pid)
        assert len(workers) == 2
        with socket.create_connection(("127.0.0.1", int(found[1])), timeout=10) as sock:
            for _ in range(3):  # one connection, one request after another
                t0 = time.monotonic()
                sock.sendall(REQUEST)
                response = _read_response(sock)
                assert time.monotonic() - t0 >= 0.05  # the app's wait was served
                assert response.startswith(b"HTTP/1.1 200 OK\r\n")
                assert b"Content-Length: 13\r\n" in response
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # Reaped by floor.py before it exits: gone, not orphaned (an orphan's parent is init).
        assert not [pid for pid in workers if _is_floor(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:  # left only if an assert failed
            if _is_floor(pid):
                os.kill(pid, signal.SIGKILL)


def _is_floor(pid: int) -> bool:
    """Whether ``pid`` is still a floor.py process (a pid may be reused)."""
    try:
        return b"floor.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
