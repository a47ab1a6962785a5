"""Statsd metrics on the wire: the exact lines a collector on 127.0.0.1 receives."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from corral.logs import Logger
from corral.metrics import StatsdMetrics, make_metrics

RECV_TIMEOUT = 5.0


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(RECV_TIMEOUT)
    yield sock
    sock.close()


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(65536).decode("utf-8").split("\n")


def test_request_sends_timer_and_counters_in_one_datagram(collector: socket.socket) -> None:
    metrics = StatsdMetrics(address(collector))
    try:
        metrics.request(0.0125, 404)
        assert receive(collector) == [
            "corral.request.duration:12.500|ms",
            "corral.requests:1|c|@1.0",
            "corral.request.status.404:1|c|@1.0",
        ]
    finally:
        metrics.close()


def test_gauge_and_counter_lines(collector: socket.socket) -> None:
    metrics = StatsdMetrics(address(collector))
    try:
        metrics.gauge("corral.workers", 4)
        metrics.gauge("corral.load", 0.5)
        metrics.incr("corral.log.error")
        metrics.incr("corral.custom", 5)
        assert [receive(collector) for _ in range(4)] == [
            ["corral.workers:4|g"],
            ["corral.load:0.5|g"],
            ["corral.log.error:1|c|@1.0"],
            ["corral.custom:5|c|@1.0"],
        ]
    finally:
        metrics.close()


def test_prefix_and_dogstatsd_tags(collector: socket.socket) -> None:
    metrics = StatsdMetrics(address(collector), prefix="shop", tags="env:prod,team:web")
    try:
        metrics.request(0.001, 200)
        metrics.gauge("corral.workers", 2)
        assert receive(collector) == [
            "shop.corral.request.duration:1.000|ms|#env:prod,team:web",
            "shop.corral.requests:1|c|@1.0|#env:prod,team:web",
            "shop.corral.request.status.200:1|c|@1.0|#env:prod,team:web",
        ]
        assert receive(collector) == ["shop.corral.workers:2|g|#env:prod,team:web"]
    finally:
        metrics.close()


def test_unix_datagram_collector(tmp_path: Path) -> None:
    path = tmp_path / "statsd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(RECV_TIMEOUT)
        metrics = StatsdMetrics(f"unix://{path}")
        try:
            metrics.incr("corral.requests")
            assert receive(sock) == ["corral.requests:1|c|@1.0"]
        finally:
            metrics.close()


def test_send_errors_never_raise(tmp_path: Path) -> None:
    metrics = StatsdMetrics(f"unix://{tmp_path / 'nobody-listens.sock'}")
    assert metrics.error is None  # nothing to resolve for a unix path; failures come per send
    metrics.request(0.01, 500)
    metrics.gauge("corral.workers", 1)
    metrics.incr("corral.log.error")
    metrics.close()
    metrics.incr("corral.log.error")  # after close too
    assert metrics.error is None


@dataclass
class Cfg:
    accesslog: str | None = None
    errorlog: str = os.devnull
    loglevel: str = "info"
    access_log_format: str = "%(s)s"
    capture_output: bool = False
    logconfig: str | None = None
    logconfig_dict: dict[str, Any] = field(default_factory=dict)
    logconfig_json: str | None = None
    syslog: bool = False
    syslog_addr: str = "udp://localhost:514"
    syslog_prefix: str | None = None
    syslog_facility: str = "user"
    disable_redirect_access_to_syslog: bool = False
    proc_name: str | None = None
    statsd_host: str | None = None
    statsd_prefix: str = ""
    dogstatsd_tags: str = ""


def test_logger_counts_error_level_lines_into_statsd(collector: socket.socket) -> None:
    log = Logger(Cfg(statsd_host=address(collector), statsd_prefix="app"))
    try:
        assert isinstance(log.metrics, StatsdMetrics)
        log.info("not counted")
        log.error("counted")
        log.critical("counted too")
        assert [receive(collector) for _ in range(2)] == [
            ["app.corral.log.error:1|c|@1.0"],
            ["app.corral.log.critical:1|c|@1.0"],
        ]
    finally:
        log.close()
        for name in ("corral.error", "corral.access"):
            logging.getLogger(name).handlers.clear()


def test_make_metrics_sends_to_the_configured_host(collector: socket.socket) -> None:
    metrics = make_metrics(Cfg(statsd_host=address(collector), dogstatsd_tags="a:b"))
    try:
        metrics.incr("corral.requests", 3)
        assert receive(collector) == ["corral.requests:3|c|@1.0|#a:b"]
    finally:
        metrics.close()
