"""Slow and hostile clients do not stop normal requests (issue 18): slowloris heads, trickled
bodies and clients that never read, against a 2-worker server, on loopback, bounded in time."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CorralProcess, kill_leftovers
from tests.e2e.rawhttp import RawClient, request

Factory = Callable[..., CorralProcess]
APP = Path(__file__).with_name("slow_apps.py")
HOSTILE = {"slowloris": 500, "slow-body": 200, "slow-read": 200}
LOAD_SECONDS = 4.0
# The normal requests' p99 must stay under this. A hostile client that held a worker (or its
# loop) would stall the requests behind it for seconds: a slowloris head for header_timeout,
# a silent TLS connection for TCP_DEFER_ACCEPT's 5-7 s. The bound was 100 ms, which the shared
# 2-CPU host alone crossed (113 and 278 ms in two CI runs of 7 December, every request served).
P99_BOUND = 0.25


@pytest.fixture
def corral_factory(tmp_path: Path) -> Iterator[Factory]:
    """Start corral processes for one test; each is stopped by its PID at teardown."""
    started: list[CorralProcess] = []

    def start(*args: str) -> CorralProcess:
        proc = CorralProcess(list(args), cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()
        kill_leftovers(proc.booted_pids())


async def _slowloris(host: str, port: int, stop: asyncio.Event) -> None:
    _, w = await asyncio.open_connection(host, port)
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    while not stop.is_set():  # a header line a second, never the end of the head
        w.write(b"X-A: b\r\n")
        await asyncio.sleep(1.0)
    w.close()


async def _slow_body(host: str, port: int, stop: asyncio.Event) -> None:
    _, w = await asyncio.open_connection(host, port)
    w.write(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    while not stop.is_set():  # a byte a second
        w.write(b"a")
        await asyncio.sleep(1.0)
    w.close()


async def _slow_read(host: str, port: int, stop: asyncio.Event) -> None:
    _, w = await asyncio.open_connection(host, port)
    w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    w.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 20)  # 20 MiB it will never read
    w.transport.pause_reading()
    await stop.wait()
    w.close()


async def _normal(
    host: str, port: int, stop: asyncio.Event, times: list[float], **connect: Any
) -> int:
    """GETs on a new connection each (``connect``: open_connection's ssl options), until
    ``stop``; the times of those answered 200 go into ``times``; returns how many were not."""
    failed = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port, **connect), 2)
            w.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            if data.startswith(b"HTTP/1.1 200 "):
                times.append(time.perf_counter() - started)
            else:
                failed += 1
        except (OSError, asyncio.TimeoutError):
            failed += 1
        await asyncio.sleep(0.01)
    return failed


async def _attack(addr: tuple[str, int]) -> tuple[list[float], int]:
    host, port = addr
    stop = asyncio.Event()
    kinds = {"slowloris": _slowloris, "slow-body": _slow_body, "slow-read": _slow_read}
    hostile = [
        asyncio.create_task(kinds[kind](host, port, stop))
        for kind, count in HOSTILE.items()
        for _ in range(count)
    ]
    await asyncio.sleep(1.0)  # the hostile clients are in place
    times: list[float] = []
    normal = [asyncio.create_task(_normal(host, port, stop, times)) for _ in range(4)]
    await asyncio.sleep(LOAD_SECONDS)
    stop.set()
    failed = sum(await asyncio.gather(*normal))
    await asyncio.gather(*hostile, return_exceptions=True)
    return times, failed


@pytest.mark.parametrize("worker", ["threaded", "asyncio"])
def test_hostile_clients_do_not_stop_normal_requests(corral_factory: Factory, worker: str) -> None:
    app = "slow_apps:asgi" if worker == "asyncio" else "slow_apps:app"
    server = corral_factory(
        "-w", "2", "-k", worker, "-b", "127.0.0.1:0", "--pythonpath", str(APP.parent), app
    )  # fmt: skip
    times, failed = asyncio.run(_attack(server.addr))
    served = len(times) / (len(times) + failed)
    times.sort()
    p99 = times[int(len(times) * 0.99)]
    assert served >= 0.99, f"{len(times)} served, {failed} failed"
    assert p99 < P99_BOUND, f"p99 {p99 * 1000:.0f} ms over {len(times)} requests"


def test_a_trickled_body_holds_no_thread_and_arrives_whole(corral_factory: Factory) -> None:
    """Two threads, five clients trickling bodies: before, they held both threads."""
    server = corral_factory(
        "-w", "1", "-k", "threaded", "--threads", "2", "-b", "127.0.0.1:0",
        "--pythonpath", str(APP.parent), "slow_apps:app",
    )  # fmt: skip
    body = bytes(range(256)) * 400  # 100 KiB
    trickling = []
    for _ in range(5):
        c = RawClient(server.addr)
        c.send(request("POST", "/read", {"Content-Length": str(len(body))}) + body[:1000])
        trickling.append(c)
    # Answered while the bodies still trickle: had they held both threads, this read would
    # time out (the trickling clients send the rest only below).
    with RawClient(server.addr, timeout=10) as c:
        c.send(request("GET", "/ok"))
        assert c.read_response().status == 200
    for c in trickling:  # the rest of each body: every request is served, its body whole
        c.send(body[1000:])
        resp = c.read_response()
        assert resp.body == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        c.close()
