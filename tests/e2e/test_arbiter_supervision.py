"""Supervision: hung workers, crash loops, boot failures, idle heartbeats and orphans."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    CorralProcess,
    InFlight,
    children_of,
    free_to_connect,
    proc_stat,
    wait_until,
)

Start = Callable[..., CorralProcess]
# The threaded worker is hung only when every thread is stuck: one thread makes one request do.
HUNG_WORKERS = {
    "sync": ["-k", "sync"],
    "threaded": ["-k", "threaded", "--threads", "1", "--max-threads", "1"],
}


@pytest.mark.parametrize("worker", sorted(HUNG_WORKERS))
def test_hung_worker_is_aborted_with_its_stack(corral_factory: Start, worker: str) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--timeout", "2", *HUNG_WORKERS[worker], "simple:app"
    )
    hung = InFlight(server.addr, "/hang")
    pid = int(server.wait_for(r"simple: hanging (\d+)")[0].group(1))
    server.wait_for(rf"WORKER TIMEOUT \(pid:{pid}\): no heartbeat")
    server.wait_for(rf"Worker \(pid:{pid}\) exited after its timeout")
    assert isinstance(hung.result(), BaseException)
    log = server.log_text()
    # The worker's own report: the stack of the thread stuck in the app.
    assert "stack of every thread follows" in log
    assert "in hang_forever_in_the_app" in log
    assert "sending SIGKILL" not in log
    server.wait_for("Booting worker", count=2)
    status, body = server.get()
    assert status == 200 and body != f"hello from {pid}"
    assert server.stop() == 0


def test_worker_ignoring_abort_is_killed(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--timeout", "1", "simple:app")
    InFlight(server.addr, "/hang-hard")
    pid = int(server.wait_for(r"simple: hanging (\d+)")[0].group(1))
    server.wait_for(rf"WORKER TIMEOUT \(pid:{pid}\)")
    server.wait_for(rf"Worker \(pid:{pid}\) did not exit in time; sending SIGKILL")
    server.wait_for(rf"Worker \(pid:{pid}\) was killed \(SIGKILL\)")
    assert server.get()[0] == 200
    assert server.stop() == 0


def test_idle_workers_keep_their_heartbeat(corral_factory: Start) -> None:
    """Idle for two timeouts, a healthy worker is not taken for a hung one."""
    # timeout 4 with a beat every second: a loaded machine may delay a beat by almost 3 s
    # before the arbiter would take the worker for hung.
    timeout = 4
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "--timeout", str(timeout), "simple:app")
    before = server.wait_workers(lambda pids: len(pids) == 2)
    # Not a readiness wait: the test is that nothing happens meanwhile. A worker whose heartbeat
    # stopped would be aborted within one timeout (plus the arbiter's 1 s tick) and replaced.
    time.sleep(2 * timeout)
    assert server.worker_pids() == before
    assert server.get()[0] == 200
    assert "WORKER TIMEOUT" not in server.log_text()


def test_crash_loop_backs_off(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "dies_at_import:app")
    found = server.wait_for(r"died while booting \((\d+) in a row\); next spawn in ([\d.]+)s", 4)
    delays = [float(m.group(2)) for m in found[:4]]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    # The fifth spawn waits 4 s after the fourth crash: no fork loop in between.
    assert len(server.booted_pids()) <= 5
    assert server.proc.poll() is None  # a crash loop is not a reason to give up serving
    assert server.stop() == 0


def test_app_that_fails_to_import_halts(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "fails_import:app")
    assert server.wait_exit() == 4
    log = server.log_text()
    assert "App failed to load." in log
    assert "simulated failure while importing the app" in log
    assert len(server.booted_pids()) <= 2


def test_preload_failure_halts_before_forking(corral_factory: Start) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "2", "--preload", "fails_import:app", wait=False
    )
    assert server.wait_exit() == 4
    assert "simulated failure while importing the app" in server.log_text()
    assert server.booted_pids() == []
    assert "Listening at" not in server.log_text()


def test_post_fork_failure_halts_as_boot_error(corral_factory: Start, tmp_path: Path) -> None:
    conf = tmp_path / "corral.conf.py"
    conf.write_text("def post_fork(server, worker):\n    raise RuntimeError('no database')\n")
    server = corral_factory("-c", str(conf), "-b", "127.0.0.1:0", "-w", "2", "simple:app")
    assert server.wait_exit() == 3
    log = server.log_text()
    assert "Worker failed to boot." in log
    assert "RuntimeError: no database" in log
    assert len(server.booted_pids()) <= 2


def test_failing_startup_hook_halts(corral_factory: Start, tmp_path: Path) -> None:
    conf = tmp_path / "corral.conf.py"
    conf.write_text("def when_ready(server):\n    raise RuntimeError('cache unreachable')\n")
    server = corral_factory("-c", str(conf), "-b", "127.0.0.1:0", "simple:app")
    assert server.wait_exit() == 1
    assert "the when_ready hook failed: cache unreachable" in server.log_text()
    assert server.booted_pids() == []
    assert free_to_connect(server.addr)


SUBREAPER = textwrap.dedent(
    """
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36

    def on_starting(server):
        # What PID 1 in a container is by nature: orphans below us are re-parented to us.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        server.log.info("hook: subreaper set")
    """
)


def test_orphans_are_reaped_quietly(corral_factory: Start, tmp_path: Path) -> None:
    conf = tmp_path / "corral.conf.py"
    conf.write_text(SUBREAPER)
    server = corral_factory(
        "-c", str(conf), "-b", "127.0.0.1:0", "-w", "1", "--log-level", "info", "simple:app"
    )
    server.wait_for("hook: subreaper set")
    workers = server.wait_workers(lambda pids: len(pids) == 1)
    orphans = []
    for _ in range(3):
        status, body = server.get("/orphan")
        assert status == 200
        orphans.append(int(body))
        # Its parent has exited: while it lives, its parent is the arbiter, not the worker.
        st = proc_stat(orphans[-1])
        assert st is None or st[1] == server.pid
    # Gone entirely: a zombie would stay in /proc until its new parent, the arbiter, reaps it.
    wait_until(
        lambda: [proc_stat(pid) for pid in orphans],
        lambda states: states == [None] * len(orphans),
        10,
        server.log_text,
    )
    assert server.worker_pids() == workers
    noisy = [line for line in server.lines() if re.search(r"\[(WARNING|ERROR|CRITICAL)\]", line)]
    assert noisy == []
    assert server.get()[0] == 200
    assert server.stop() == 0


# A pid namespace of its own, where corral is PID 1 as in a container; --kill-child ends the
# namespace (and everything in it) if the test has to kill unshare.
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs root and unshare(1) for a pid namespace")
def test_as_pid_1_orphans_are_reaped(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "simple:app", prefix=UNSHARE)
    assert server.matches(r"Listening at: \S+ \((\d+)\)")[0].group(1) == "1"
    (arbiter,) = wait_until(lambda: children_of(server.pid), lambda c: len(c) == 1, 10)
    for _ in range(3):
        assert server.get("/orphan")[0] == 200  # each leaves a grandchild to PID 1
    # Seen from outside: in the end the arbiter has one child, its worker, and no zombie.
    wait_until(
        lambda: (children_of(arbiter, zombies=True), children_of(arbiter)),
        lambda kids: len(kids[0]) == 1 and kids[0] == kids[1],
        10,
        server.log_text,
    )
    noisy = [line for line in server.lines() if re.search(r"\[(WARNING|ERROR|CRITICAL)\]", line)]
    assert noisy == []
    os.kill(arbiter, signal.SIGTERM)
    assert server.wait_exit() == 0
