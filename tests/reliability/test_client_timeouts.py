"""body_timeout and send_timeout (issue 18), in every worker: a body that stops arriving gets
408, a slow but steady one is never cut off, and a client that stops reading is dropped."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess, kill_leftovers, wait_until
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]
APPS = str(Path(__file__).parent)
WORKERS = {
    "sync": ["-k", "sync", "slow_apps:app"],
    "threaded": ["-k", "threaded", "slow_apps:app"],
    "asyncio": ["-k", "asyncio", "slow_apps:asgi"],
}
# Gathered by the driver before the app runs (up to 256 KiB), and read by the app itself.
BODIES = {"gathered": 100_000, "read-by-app": 1_000_000}


@pytest.fixture
def corral_factory(tmp_path: Path) -> Iterator[Factory]:
    """Start corral processes for one test; each is stopped by its PID at teardown."""
    started: list[CorralProcess] = []

    def start(worker: str, *args: str) -> CorralProcess:
        argv = ["-w", "1", "-b", "127.0.0.1:0", "--pythonpath", APPS, *args, *WORKERS[worker]]
        proc = CorralProcess(argv, cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()
        kill_leftovers(proc.booted_pids())


TCP_ESTABLISHED = 1  # linux/tcp_states.h


def _tcp_state(local_port: int, remote_port: int) -> int:
    """The kernel's state of the loopback TCP socket local_port -> remote_port, from
    /proc/net/tcp (0 when there is none)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if (
            int(local.split(":")[1], 16) == local_port
            and int(remote.split(":")[1], 16) == remote_port
        ):
            return int(state, 16)
    return 0


def _digest(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


@pytest.mark.parametrize("size", sorted(BODIES))
@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_a_body_that_stops_arriving_gets_408(
    corral_factory: Factory, worker: str, size: str
) -> None:
    server = corral_factory(worker, "--body-timeout", "1")
    length = BODIES[size]
    with RawClient(server.addr, timeout=15) as c:
        c.send(request("POST", "/read", {"Content-Length": str(length)}) + b"a" * 1000)
        resp = c.read_response()  # the client sends nothing more
        assert resp.status == 408
        assert resp.header("connection") == "close"
        assert c.at_eof()
    assert server.get("/ok") == (200, "ok")


@pytest.mark.parametrize("size", sorted(BODIES))
@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_a_slow_steady_body_is_never_cut_off(
    corral_factory: Factory, worker: str, size: str
) -> None:
    """Five pieces 0.4 s apart: 2 s in all, twice body_timeout, but never 1 s silent."""
    server = corral_factory(worker, "--body-timeout", "1")
    body = bytes(range(256)) * (BODIES[size] // 256)
    piece = len(body) // 5 + 1
    with RawClient(server.addr, timeout=15) as c:
        c.send(request("POST", "/read", {"Content-Length": str(len(body))}))
        for start in range(0, len(body), piece):
            c.send(body[start : start + piece])
            time.sleep(0.4)  # the client's pace, not a wait for the server
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == _digest(body)


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_a_client_that_stops_reading_is_dropped_after_send_timeout(
    corral_factory: Factory, worker: str
) -> None:
    server = corral_factory(worker, "--send-timeout", "1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(15)
    sock.connect(server.addr)
    asked = 20  # 20 MiB of responses, far more than the socket buffers hold
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * asked)
    # A second client is served: by the other threads, or (sync, one worker) once the
    # stalled one is dropped after send_timeout rather than after the default 30 s.
    with RawClient(server.addr, timeout=15) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().body == b"ok"
    # The client keeps not reading until the server gives up: the server's end of this
    # connection leaves ESTABLISHED when it closes it (its FIN waits behind the unread bytes).
    ends = (sock.getpeername()[1], sock.getsockname()[1])
    wait_until(lambda: _tcp_state(*ends), lambda state: state != TCP_ESTABLISHED, 20)
    received = 0
    try:
        while data := sock.recv(1 << 20):
            received += len(data)
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert 0 < received < asked * (1 << 20)
