"""statsd from a running server: gunicorn's metric names reach a real UDP collector on loopback."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import CorralProcess

Start = Callable[..., CorralProcess]
RECV_WAIT = 10.0
APPS = {
    "sync": ("simple:app", "/", "/fail", 200),
    "threaded": ("simple:app", "/", "/fail", 200),
    "asyncio": ("asgi_app:app", "/nowhere", "/boom", 404),
}


class Collector:
    """A statsd server's socket: keeps every metric line it has received."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.lines: list[str] = []

    @property
    def host(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def wait(self, predicate: Callable[[list[str]], bool], timeout: float = RECV_WAIT) -> None:
        """Receive until `predicate(lines so far)` holds; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not received in {timeout}s; got:\n" + "\n".join(self.lines))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.lines.extend(data.decode("utf-8").split("\n"))

    def count(self, pattern: str) -> int:
        return sum(1 for line in self.lines if re.fullmatch(pattern, line))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    got = Collector()
    yield got
    got.close()


def _has(pattern: str, times: int = 1) -> Callable[[list[str]], bool]:
    regex = re.compile(pattern)
    return lambda lines: sum(1 for line in lines if regex.fullmatch(line)) >= times


@pytest.mark.parametrize("worker", ["sync", "threaded", "asyncio"])
def test_gunicorn_names_arrive(corral_factory: Start, collector: Collector, worker: str) -> None:
    app, ok_path, fail_path, ok_status = APPS[worker]
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "2", "-k", worker, "--statsd-host", collector.host, app
    )  # fmt: skip
    # The master's gauge, as gunicorn's arbiter sends it once the workers are spawned.
    collector.wait(_has(r"gunicorn\.workers:2\|g"))
    for _ in range(4):
        assert server.get(ok_path)[0] == ok_status
    assert server.get(fail_path)[0] == 500
    collector.wait(_has(r"gunicorn\.requests:1\|c\|@1\.0", 5))
    collector.wait(_has(r"gunicorn\.log\.(error|exception):1\|c\|@1\.0"))
    assert collector.count(r"gunicorn\.request\.duration:\d+\.\d+\|ms") == 5
    assert collector.count(rf"gunicorn\.request\.status\.{ok_status}:1\|c\|@1\.0") == 4
    assert collector.count(r"gunicorn\.request\.status\.500:1\|c\|@1\.0") == 1
    assert not [line for line in collector.lines if line.startswith("corral.")]
    # One worker fewer: the gauge follows, as gunicorn's does when its worker count changes.
    server.signal(signal.SIGTTOU)
    collector.wait(_has(r"gunicorn\.workers:1\|g"))
    assert server.stop() == 0


def test_prefix_tags_and_corral_names(corral_factory: Start, collector: Collector) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--statsd-host", collector.host,
        "--statsd-prefix", "shop", "--dogstatsd-tags", "env:test,team:web",
        "--statsd-names", "corral", "simple:app",
    )  # fmt: skip
    tags = r"\|#env:test,team:web"
    collector.wait(_has(rf"shop\.corral\.workers:1\|g{tags}"))
    assert server.get("/")[0] == 200
    collector.wait(_has(rf"shop\.corral\.request\.status\.200:1\|c\|@1\.0{tags}"))
    assert collector.count(rf"shop\.corral\.requests:1\|c\|@1\.0{tags}") == 1
    assert collector.count(rf"shop\.corral\.request\.duration:\d+\.\d+\|ms{tags}") == 1
    assert not [line for line in collector.lines if "gunicorn." in line]
    assert server.stop() == 0


@pytest.mark.parametrize("worker", ["threaded", "asyncio"])
def test_the_scoreboard_series_arrive(
    corral_factory: Start, collector: Collector, worker: str
) -> None:
    """The series the Prometheus endpoint has beyond gunicorn's: queue time per request, and
    the arbiter's gauges each second (in flight, threads, utilisation, backlog) and restarts."""
    app = APPS[worker][0]
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "2", "-k", worker, "--max-requests", "3",
        "--statsd-host", collector.host, app,
    )  # fmt: skip
    for _ in range(7):  # spends a worker's budget
        server.get(APPS[worker][1])
    collector.wait(_has(r"gunicorn\.request\.queue_time:\d+\.\d+\|ms", 7))
    collector.wait(_has(r"gunicorn\.requests\.in_flight:\d+\|g"))
    collector.wait(_has(r"gunicorn\.utilisation\.10s:[\d.]+\|g"))
    collector.wait(_has(r"gunicorn\.listen\.backlog:0\|g"))
    collector.wait(_has(r"gunicorn\.worker\.restarts\.max_requests:1\|c\|@1\.0"))
    if worker == "threaded":
        collector.wait(_has(r"gunicorn\.threads\.(busy|idle):\d+\|g"))
    assert server.stop() == 0


def test_enable_backlog_metric_sends_gunicorns_backlog_histogram(
    corral_factory: Start, collector: Collector
) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--statsd-host", collector.host,
        "--enable-backlog-metric", "simple:app",
    )  # fmt: skip
    collector.wait(_has(r"gunicorn\.backlog:0\|h", 2))  # each second
    assert server.stop() == 0
