"""metrics_bind: the arbiter serves Prometheus metrics that count every worker, gone or alive."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess, children_of, http_get, kill_leftovers, wait_until

Start = Callable[..., CorralProcess]
SERVING = r"\[(\d+)\] \[INFO\] Serving metrics at: http://127\.0\.0\.1:(\d+)/metrics"
APPS = {"sync": ("simple:app", "/fail"), "threaded": ("simple:app", "/fail")}
APPS["asyncio"] = ("asgi_app:app", "/boom")


def _start(factory: Start, worker: str, *extra: str) -> tuple[CorralProcess, tuple[str, int]]:
    app = APPS[worker][0]
    server = factory(
        "-b", "127.0.0.1:0", "-w", "2", "-k", worker, "--metrics-bind", "127.0.0.1:0",
        *extra, app,
    )  # fmt: skip
    port = int(server.wait_for(SERVING)[0].group(2))
    server.wait_workers(lambda pids: len(pids) == 2)
    return server, ("127.0.0.1", port)


def scrape(address: tuple[str, int]) -> dict[str, float]:
    status, text = http_get(address, "/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _until(address: tuple[str, int], name: str, value: float) -> dict[str, float]:
    """Scrape until the sample reaches `value` (workers publish with their heartbeat)."""
    return wait_until(lambda: scrape(address), lambda got: got.get(name) == value, 10.0)


OK = 'corral_requests_total{status="2xx"}'
FAILED = 'corral_requests_total{status="5xx"}'


@pytest.mark.parametrize("worker", ["sync", "threaded", "asyncio"])
def test_requests_are_counted_by_status_and_duration(corral_factory: Start, worker: str) -> None:
    server, metrics = _start(corral_factory, worker)
    for _ in range(6):
        assert server.get("/")[0] == 200
    assert server.get(APPS[worker][1])[0] == 500
    got = _until(metrics, OK, 6)
    got = _until(metrics, FAILED, 1)
    assert got["corral_request_duration_seconds_count"] == 7
    assert got['corral_request_duration_seconds_bucket{le="+Inf"}'] == 7
    assert got['corral_request_duration_seconds_bucket{le="1.0"}'] == 7
    assert 0 < got["corral_request_duration_seconds_sum"] < 7
    assert got["corral_workers"] == 2 and got["corral_workers_target"] == 2
    assert got["corral_workers_resident_bytes"] > 2 * 1024 * 1024
    assert got["corral_worker_exits_total"] == 0
    assert server.stop() == 0


def test_counts_outlive_the_workers_that_made_them(corral_factory: Start) -> None:
    server, metrics = _start(corral_factory, "threaded")
    for _ in range(5):
        assert server.get("/")[0] == 200
    _until(metrics, OK, 5)
    # A reload replaces both workers, which exit gracefully with their final counts.
    old = server.worker_pids()
    server.signal(signal.SIGHUP)
    server.wait_workers(lambda pids: len(pids) == 2 and not pids & old)
    got = _until(metrics, "corral_worker_exits_total", 2)
    assert got[OK] == 5
    for _ in range(3):
        assert server.get("/")[0] == 200
    _until(metrics, OK, 8)
    # A worker killed outright keeps what it published with its last heartbeat.
    os.kill(min(server.worker_pids()), signal.SIGKILL)
    got = _until(metrics, "corral_worker_exits_total", 3)
    assert got[OK] == 8
    assert server.stop() == 0


def test_a_bad_or_taken_address_names_the_setting(corral_factory: Start) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "corral", "--metrics-bind", "127.0.0.1:99999", "simple:app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "metrics_bind = '127.0.0.1:99999' (from command line --metrics-bind)" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = corral_factory(
            "-b", "127.0.0.1:0", "--metrics-bind", f"127.0.0.1:{port}", "simple:app", wait=False
        )  # fmt: skip
        assert server.wait_exit() != 0
        assert re.search(
            rf"metrics_bind: cannot listen at 127\.0\.0\.1:{port}: Address already in use",
            server.log_text(),
        )


def test_after_usr2_the_new_master_takes_the_address_once_the_old_one_exits(
    corral_factory: Start, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port free now, for an address both masters want
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    old = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--metrics-bind", f"127.0.0.1:{port}", "simple:app"
    )  # fmt: skip
    old.wait_workers(lambda pids: len(pids) == 1)
    assert old.get()[0] == 200
    metrics = ("127.0.0.1", port)
    _until(metrics, OK, 1)
    old.signal(signal.SIGUSR2)
    found = old.wait_for(rf"Listening at: {old.urls[0]} \((\d+)\)", count=2)
    new_pid = int(found[1].group(1))
    try:
        old.wait_for(
            rf"\[{new_pid}\] \[INFO\] metrics_bind: cannot listen at 127\.0\.0\.1:{port}: "
            r"Address already in use; trying again each second"
        )
        assert scrape(metrics)[OK] == 1  # still the old master's
        old.signal(signal.SIGTERM)
        assert old.wait_exit() == 0
        old.wait_for(rf"\[{new_pid}\] \[INFO\] Serving metrics at: http://127\.0\.0\.1:{port}/")
        got = wait_until(lambda: scrape(metrics), lambda s: s["corral_workers"] == 1, 10.0)
        assert got[OK] == 0  # a new master counts from zero, as a restarted process does
    finally:
        with contextlib.suppress(FileNotFoundError):
            kill_leftovers([*children_of(new_pid), new_pid])
