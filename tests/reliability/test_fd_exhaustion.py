"""Out of file descriptors (EMFILE): every worker pauses, logs once a while, serves, recovers.

corral runs under a low RLIMIT_NOFILE (set by a prefix that execs corral in place, so the pids
in the log are ours): the limit is the worker's idle descriptors plus HEADROOM. The threaded
and asyncio workers run out when clients hold more than HEADROOM connections open; the sync
worker, which holds one connection at a time, runs out when the app takes every descriptor
(`/hog`). While out, a worker must not spin on accept() nor log each attempt (at most
MAX_LOG_LINES over HOLD seconds), must keep serving the connections it has, and once
descriptors are free again it must serve new connections within RECOVER_SECONDS by itself,
still the same process.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BOOTING, CorralProcess, wait_until
from tests.e2e.rawhttp import RawClient, request
from tests.reliability.test_faults import (
    CLIENT_TIMEOUT,
    connect,
    fd_kinds,
    get,
    server_env,
    stop_corral,
)

APP_OF = {"sync": "fault_apps:wsgi", "threaded": "fault_apps:wsgi", "asyncio": "fault_apps:asgi"}
HEADROOM = 16  # descriptors above the idle worker's highest one
HOGS = 3 * HEADROOM  # idle connections that hold them (threaded, asyncio)
HOLD = 3.0  # seconds the worker stays out of descriptors
MAX_LOG_LINES = 5  # over HOLD: once a second, give or take one
RECOVER_SECONDS = 5.0
EXHAUSTED = re.compile(r"Too many open files|EMFILE")
# Sets RLIMIT_NOFILE, then becomes `python -m corral ...` in the same process.
LIMIT_CODE = (
    "import os, resource, sys; n = int(os.environ['CORRAL_TEST_NOFILE']); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[1], sys.argv[1:])"
)


def highest_fd(pid: int) -> int:
    return max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


def start(kind: str, cwd: Path, nofile: int | None = None) -> CorralProcess:
    """corral with one worker of `kind`, under RLIMIT_NOFILE = `nofile` if given."""
    env = server_env()
    prefix = None
    if nofile is not None:
        env["CORRAL_TEST_NOFILE"] = str(nofile)
        prefix = [sys.executable, "-c", LIMIT_CODE]
    args = ["-b", "127.0.0.1:0", "-w", "1", "-k", kind, APP_OF[kind]]
    return CorralProcess(args, cwd=cwd, env=env, prefix=prefix)


def worker_of(proc: CorralProcess) -> int:
    (pid,) = proc.wait_workers(lambda pids: len(pids) == 1)
    return pid


def limit_for(kind: str, cwd: Path) -> int:
    """The idle worker's highest descriptor after a request, plus one, plus HEADROOM."""
    proc = start(kind, cwd)
    try:
        assert get(proc.addr, "/ok") == (200, b"ok")
        pid = worker_of(proc)
        wait_until(lambda: fd_kinds(pid), lambda k: k["tcp"] == 0, 5)
        return highest_fd(pid) + 1 + HEADROOM
    finally:
        stop_corral(proc)


@pytest.fixture
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CorralProcess]:
    """corral under a descriptor limit, for the worker kind the test is parametrized with."""
    kind = request.param
    proc = start(kind, tmp_path, limit_for(kind, tmp_path))
    try:
        assert get(proc.addr, "/ok") == (200, b"ok")
        yield proc
    finally:
        stop_corral(proc)


def exhausted_lines(proc: CorralProcess) -> int:
    return len(proc.matches(EXHAUSTED))


def logged_until(proc: CorralProcess, deadline: float) -> int:
    """Lines about EMFILE by `deadline`, or as soon as there are more than MAX_LOG_LINES."""
    for _ in range(1000):
        logged = exhausted_lines(proc)
        if logged > MAX_LOG_LINES or time.monotonic() >= deadline:
            return logged
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return exhausted_lines(proc)


def served_soon(proc: CorralProcess, seconds: float) -> float:
    """Seconds until a new connection is answered 200 "ok"; fails after `seconds`."""
    began = time.monotonic()
    for _ in range(1000):
        try:
            if get(proc.addr, "/ok") == (200, b"ok"):
                return time.monotonic() - began
        except OSError:
            pass  # refused, reset or timed out: not yet
        if time.monotonic() - began > seconds:
            break
        time.sleep(0.1)
    raise AssertionError(f"no new connection served within {seconds} s\n{proc.log_text()[-3000:]}")


def nofile_of(pid: int) -> int:
    """The soft RLIMIT_NOFILE of a process, from /proc."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError(f"no open files limit for {pid}")


@contextlib.contextmanager
def idle_connections(addr: tuple[str, int], count: int) -> Iterator[list[socket.socket]]:
    """`count` connections, each with one byte of a head sent (past TCP_DEFER_ACCEPT)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(connect(addr))
            socks[-1].sendall(b"G")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def ask(client: RawClient) -> float:
    """Seconds a GET /ok on an open keep-alive connection took to be answered 200 "ok"."""
    began = time.monotonic()
    client.send(request("GET", "/ok"))
    resp = client.read_response()
    assert (resp.status, resp.body) == (200, b"ok")
    return time.monotonic() - began


@pytest.mark.parametrize("limited", ["threaded", "asyncio"], indirect=True)
def test_too_many_connections(limited: CorralProcess) -> None:
    proc = limited
    pid = worker_of(proc)
    idle = wait_until(lambda: fd_kinds(pid), lambda k: k["tcp"] == 0, 5)
    with RawClient(proc.addr, timeout=CLIENT_TIMEOUT) as kept:
        assert ask(kept) < 1.0
        assert exhausted_lines(proc) == 0
        with idle_connections(proc.addr, HOGS):
            proc.wait_for(EXHAUSTED, timeout=5)
            began = time.monotonic()
            assert len(os.listdir(f"/proc/{pid}/fd")) >= nofile_of(pid) - 1, "not exhausted"
            assert ask(kept) < 1.0, "a kept-alive connection waited while out of descriptors"
            logged = logged_until(proc, began + HOLD)
            within = time.monotonic() - began
        assert logged <= MAX_LOG_LINES, f"{logged} lines about EMFILE in {within:.2f} s"
        recovered = served_soon(proc, RECOVER_SECONDS)
        assert ask(kept) < 1.0
    assert worker_of(proc) == pid, f"the worker was replaced\n{proc.log_text()[-3000:]}"
    assert len(proc.matches(BOOTING)) == 1
    after = wait_until(lambda: fd_kinds(pid), lambda k: k == idle, 5)
    assert after == idle, f"recovered in {recovered:.1f} s"


@pytest.mark.parametrize("limited", ["sync"], indirect=True)
def test_app_takes_every_descriptor(limited: CorralProcess) -> None:
    proc = limited
    pid = worker_of(proc)
    assert get(proc.addr, f"/hog?{HOLD}") == (200, b"ok")
    hog_ends = time.monotonic() + HOLD
    # Every descriptor taken, the one of the /hog connection too once the worker closed it.
    limit = nofile_of(pid)
    wait_until(lambda: fd_kinds(pid), lambda k: k["tcp"] == 0 and k.total() >= limit, 2)
    with contextlib.ExitStack() as stack:
        waiting = [stack.enter_context(RawClient(proc.addr)) for _ in range(3)]
        for client in waiting:
            client.send(request("GET", "/ok"))
        proc.wait_for(EXHAUSTED, timeout=5)
        for client in waiting:  # answered once the app gives its descriptors back
            client.sock.settimeout(HOLD + RECOVER_SECONDS)
            resp = client.read_response()
            assert (resp.status, resp.body) == (200, b"ok")
        logged = exhausted_lines(proc)
    assert worker_of(proc) == pid, f"the worker was replaced\n{proc.log_text()[-3000:]}"
    assert len(proc.matches(BOOTING)) == 1
    assert time.monotonic() >= hog_ends - 0.5, "served while the app held every descriptor?"
    assert logged <= MAX_LOG_LINES, f"{logged} lines about EMFILE in {HOLD} s"
    served_soon(proc, RECOVER_SECONDS)
    assert worker_of(proc) == pid
