"""The scoreboard in the metrics: counts that add up under load, requests in flight, queue
time for the app, utilisation, backlog, and worker restarts by reason (issue 20)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CorralProcess, http_get, wait_until

Start = Callable[..., CorralProcess]
SERVING = r"Serving metrics at: http://127\.0\.0\.1:(\d+)/metrics"
APPS = {"sync": "observe:app", "threaded": "observe:app", "asyncio": "observe:asgi"}
CLIENTS, EACH = 3, 100  # bounded load: 300 requests on keep-alive pools


def _start(factory: Start, worker: str, *extra: str) -> tuple[CorralProcess, tuple[str, int]]:
    server = factory(
        "-b", "127.0.0.1:0", "-w", "2", "-k", worker, "--metrics-bind", "127.0.0.1:0",
        *extra, APPS[worker],
    )  # fmt: skip
    port = int(server.wait_for(SERVING)[0].group(1))
    server.wait_workers(lambda pids: len(pids) == 2)
    return server, ("127.0.0.1", port)


def scrape(address: tuple[str, int]) -> dict[str, float]:
    """Every sample, parsed by prometheus_client's own text parser."""
    status, text = http_get(address, "/metrics")
    assert status == 200, text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def _until(address: tuple[str, int], check: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """Scrape until ``check`` holds (workers publish with their heartbeat, about each second)."""
    return wait_until(lambda: scrape(address), check, 15.0)


def _load(server: CorralProcess) -> int:
    """CLIENTS keep-alive pools sending EACH requests; the number that got a 200."""
    host, port = server.addr
    ok = [0] * CLIENTS

    def client(i: int) -> None:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as c:
            ok[i] = sum(c.get("/").status_code == 200 for _ in range(EACH))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sum(ok)


@pytest.mark.parametrize("worker", sorted(APPS))
def test_counts_add_up_to_the_requests_sent(corral_factory: Start, worker: str) -> None:
    server, metrics = _start(corral_factory, worker)
    assert _load(server) == CLIENTS * EACH
    total = CLIENTS * EACH
    got = _until(metrics, lambda s: s.get('corral_requests_total{status="2xx"}') == total)
    assert got["corral_request_queue_seconds_count"] == total
    assert got['corral_request_queue_seconds_bucket{le="+Inf"}'] == total
    assert got["corral_request_duration_seconds_count"] == total
    assert got["corral_requests_in_flight"] == 0
    assert 0 <= got['corral_utilisation{window="60s"}'] <= 1
    assert got["corral_listen_backlog"] == 0 and got["corral_listen_backlog_limit"] > 0
    assert got['corral_worker_restarts_total{reason="crash"}'] == 0


@pytest.mark.parametrize("worker", sorted(APPS))
def test_a_held_request_is_in_flight_on_a_busy_thread(
    corral_factory: Start, worker: str, tmp_path: Path
) -> None:
    server, metrics = _start(corral_factory, worker)
    release = tmp_path / "release"
    held = threading.Thread(target=server.get, args=(f"/hold?{release}", 30))
    held.start()
    try:
        got = _until(metrics, lambda s: s.get("corral_requests_in_flight") == 1)
        if worker != "asyncio":
            assert got['corral_threads{state="busy"}'] == 1
            assert got['corral_threads{state="idle"}'] >= 1  # the other worker's
        _until(metrics, lambda s: s['corral_utilisation{window="1s"}'] > 0)
    finally:
        release.touch()
        held.join(30)
    _until(metrics, lambda s: s.get("corral_requests_in_flight") == 0)


@pytest.mark.parametrize("worker", sorted(APPS))
def test_the_app_sees_its_queue_time_and_a_proxy_stamp(corral_factory: Start, worker: str) -> None:
    server, _ = _start(corral_factory, worker)
    host, port = server.addr
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as c:
        own = float(c.get("/queue").text)
        assert 0 <= own < 1.0
        # 127.0.0.1 is a trusted proxy by default (forwarded_allow_ips): its stamp counts.
        stamp = f"t={time.time() - 0.5:.3f}"
        stamped = float(c.get("/queue", headers={"X-Request-Start": stamp}).text)
        assert 0.5 <= stamped < 5.0


def test_restarts_are_counted_by_reason(corral_factory: Start) -> None:
    server, metrics = _start(corral_factory, "threaded", "--max-requests", "5")
    for _ in range(12):  # spends both workers' budgets at least once
        assert server.get("/")[0] == 200
    _until(metrics, lambda s: s['corral_worker_restarts_total{reason="max_requests"}'] >= 1)
    victim = min(server.worker_pids())
    os.kill(victim, signal.SIGKILL)
    got = _until(metrics, lambda s: s['corral_worker_restarts_total{reason="crash"}'] == 1)
    assert got['corral_worker_restarts_total{reason="timeout"}'] == 0
