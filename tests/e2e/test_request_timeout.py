"""request_timeout: a late request is logged with its stack and stopped; the worker lives on."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess, InFlight, http_get, wait_until

Start = Callable[..., CorralProcess]
LIMIT = 1.0
LONG = 30  # far longer than any of these tests waits: only request_timeout can end it early


def _start(factory: Start, worker: str, app: str, *extra: str) -> tuple[CorralProcess, int]:
    server = factory(
        "-b", "127.0.0.1:0", "-w", "1", "-k", worker, "--request-timeout", str(LIMIT),
        "--access-logfile", "-", *extra, app,
    )  # fmt: skip
    return server, server.wait_workers(lambda pids: len(pids) == 1).pop()


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_python_code_past_the_limit_is_stopped_with_504_and_its_stack(
    corral_factory: Start, worker: str
) -> None:
    server, pid = _start(corral_factory, worker, "simple:app")
    began = time.monotonic()
    assert http_get(server.addr, f"/spin?s={LONG}", timeout=LONG)[0] == 504
    assert time.monotonic() - began < LONG / 2
    found = server.wait_for(
        rf"Request GET /spin\?s={LONG} from 127\.0\.0\.1 has run (\d+\.\d) s, "
        rf"over request_timeout \(1 s\); stopping it"
    )
    assert float(found[0].group(1)) >= LIMIT
    # The stack shows where the request was: in the app's loop.
    server.wait_for(r'simple\.py", line \d+, in spin_in_python')
    server.wait_for(rf'"GET /spin\?s={LONG} HTTP/1\.1" 504 ')
    # The same worker serves on: only the request was stopped.
    assert server.get() == (200, f"hello from {pid}")
    assert server.worker_pids() == {pid}
    assert server.stop() == 0


def test_the_sync_worker_interrupts_a_blocking_call(corral_factory: Start) -> None:
    server, pid = _start(corral_factory, "sync", "simple:app")
    began = time.monotonic()
    assert http_get(server.addr, f"/sleep?s={LONG}", timeout=LONG)[0] == 504
    assert time.monotonic() - began < LONG / 2
    server.wait_for(r'simple\.py", line \d+, in sleep$')
    server.wait_for(r"^\s+time\.sleep\(seconds\)$")
    assert server.get() == (200, f"hello from {pid}")
    assert server.stop() == 0


def test_a_threaded_request_that_will_not_stop_restarts_its_worker(
    corral_factory: Start,
) -> None:
    # A thread asleep in C gets the stop only when the call returns. Meanwhile its worker is
    # replaced: a new worker boots first, then the old one finishes what it has and exits.
    sleep = 6
    server, old = _start(corral_factory, "threaded", "simple:app")
    stuck = InFlight(server.addr, f"/sleep?s={sleep}")
    server.wait_for(rf"simple: sleeping {old}")
    server.wait_for(r"over request_timeout \(1 s\); stopping it")
    server.wait_for(
        rf"Request GET /sleep\?s={sleep} from 127\.0\.0\.1 has not stopped \d s after its "
        r"request_timeout; asking for this worker to be replaced"
    )
    server.wait_for(rf"Worker \(pid:{old}\) asked to be replaced")
    new = (server.wait_workers(lambda pids: len(pids - {old}) == 1) - {old}).pop()
    # Until the old worker has taken in its TERM it may still answer a new connection itself.
    answer = wait_until(server.get, lambda got: got == (200, f"hello from {new}"), 10.0)
    assert answer == (200, f"hello from {new}")
    assert stuck.running()
    # The sleep returns, the stop lands in the app, and the client gets its 504.
    outcome = stuck.result()
    assert not isinstance(outcome, BaseException) and outcome[0] == 504
    server.wait_for(rf"Worker exiting \(pid: {old}\)")
    assert server.stop() == 0


def test_an_asgi_request_past_the_limit_is_cancelled(corral_factory: Start) -> None:
    server, pid = _start(corral_factory, "asyncio", "asgi_app:app")
    began = time.monotonic()
    assert http_get(server.addr, f"/slow?s={LONG}", timeout=LONG)[0] == 504
    assert time.monotonic() - began < LONG / 2
    server.wait_for(
        rf"Request GET /slow\?s={LONG} from 127\.0\.0\.1 has run \d+\.\d s, over "
        r"request_timeout \(1 s\); cancelling it"
    )
    # The await chain, down to the app's own sleep.
    server.wait_for(r'asgi_app\.py", line \d+, in _slow$')
    server.wait_for(r"^\s+await asyncio\.sleep\(seconds\)$")
    server.wait_for(rf'"GET /slow\?s={LONG} HTTP/1\.1" 504 ')
    assert server.get("/pid") == (200, str(pid))
    assert server.stop() == 0


@pytest.mark.parametrize("loop", ["asyncio", "auto"])  # auto: uvloop when installed
def test_asgi_code_holding_the_event_loop_is_shown_and_stopped(
    corral_factory: Start, loop: str
) -> None:
    server, pid = _start(corral_factory, "asyncio", "asgi_app:app", "--loop", loop)
    began = time.monotonic()
    assert http_get(server.addr, f"/block?s={LONG}", timeout=LONG)[0] == 504
    assert time.monotonic() - began < LONG / 2
    server.wait_for(r"The event loop has not run for \d+\.\d s, over request_timeout \(1 s\)")
    server.wait_for(r'asgi_app\.py", line \d+, in _block$')
    server.wait_for(r"^\s+time\.sleep\(seconds\)$")
    server.wait_for(rf'"GET /block\?s={LONG} HTTP/1\.1" 504 ')
    # The loop serves again, in the same worker.
    assert server.get("/pid") == (200, str(pid))
    assert server.stop() == 0


def _keep_alive_pair(addr: tuple[str, int], first: str, second: str) -> list[bytes]:
    """Two GETs on one connection, the second sent once the first's answer arrived."""
    answers = []
    with socket.create_connection(addr, timeout=LONG) as sock:
        for path in (first, second):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            answers.append(_read_response(sock))
    return answers


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"!"
        assert not data.endswith(b"!"), data
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0] + b" " + body


def test_asgi_work_after_a_complete_response_is_not_timed(corral_factory: Start) -> None:
    # Starlette's BackgroundTasks run in the request's task once the response is sent: the
    # request is served, so request_timeout leaves them be and the connection stays open.
    server, pid = _start(corral_factory, "asyncio", "asgi_app:app")
    began = time.monotonic()
    answers = _keep_alive_pair(server.addr, f"/after?s={2 * LIMIT}", "/pid")
    assert answers == [b"HTTP/1.1 200 OK sent", f"HTTP/1.1 200 OK {pid}".encode()]
    assert time.monotonic() - began >= 2 * LIMIT  # the second waited for the first's task
    server.wait_for(rf"asgi_app: background done {pid}")
    assert "over request_timeout" not in server.log_text()
    assert server.stop() == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is Python 3.11+")
def test_asgi_code_holding_the_loop_in_a_task_group_is_stopped(corral_factory: Start) -> None:
    # The stop lands in the task group's body, which wraps it in a BaseExceptionGroup.
    server, pid = _start(corral_factory, "asyncio", "asgi_app:app")
    assert http_get(server.addr, f"/group-block?s={LONG}", timeout=LONG)[0] == 504
    server.wait_for(r'asgi_app\.py", line \d+, in _group_block$')
    server.wait_for(rf'"GET /group-block\?s={LONG} HTTP/1\.1" 504 ')
    assert server.get("/pid") == (200, str(pid))
    assert server.stop() == 0
