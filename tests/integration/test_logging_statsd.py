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


def test_request_sends_gunicorns_timer_and_counters_in_one_datagram(
    collector: socket.socket,
) -> None:
    # The names and types gunicorn 27's statsd logger sends (gunicorn/instrument/statsd.py).
    metrics = StatsdMetrics(address(collector))
    try:
        metrics.request(0.0125, 404)
        assert receive(collector) == [
            "gunicorn.request.duration:12.500|ms",
            "gunicorn.requests:1|c|@1.0",
            "gunicorn.request.status.404:1|c|@1.0",
        ]
    finally:
        metrics.close()


def test_corral_names_on_request(collector: socket.socket) -> None:
    metrics = StatsdMetrics(address(collector), names="corral")
    try:
        metrics.request(0.0125, 201)
        assert receive(collector) == [
            "corral.request.duration:12.500|ms",
            "corral.requests:1|c|@1.0",
            "corral.request.status.201:1|c|@1.0",
        ]
    finally:
        metrics.close()


@pytest.mark.parametrize(("names", "space"), [("gunicorn", "gunicorn"), ("corral", "corral")])
def test_gauge_and_counter_lines(collector: socket.socket, names: str, space: str) -> None:
    metrics = StatsdMetrics(address(collector), names=names)
    try:
        metrics.gauge("corral.workers", 4)
        metrics.gauge("corral.load", 0.5)
        metrics.incr("corral.log.error")
        metrics.incr("corral.custom", 5)
        metrics.incr("myapp.signups", 2)  # not in corral's namespace: sent as given
        assert [receive(collector) for _ in range(5)] == [
            [f"{space}.workers:4|g"],
            [f"{space}.load:0.5|g"],
            [f"{space}.log.error:1|c|@1.0"],
            [f"{space}.custom:5|c|@1.0"],
            ["myapp.signups:2|c|@1.0"],
        ]
    finally:
        metrics.close()


def test_unknown_statsd_names_is_refused() -> None:
    with pytest.raises(ValueError, match="statsd_names"):
        StatsdMetrics("127.0.0.1:8125", names="datadog")


def test_prefix_and_dogstatsd_tags(collector: socket.socket) -> None:
    metrics = StatsdMetrics(address(collector), prefix="shop", tags="env:prod,team:web")
    try:
        metrics.request(0.001, 200)
        metrics.gauge("corral.workers", 2)
        assert receive(collector) == [
            "shop.gunicorn.request.duration:1.000|ms|#env:prod,team:web",
            "shop.gunicorn.requests:1|c|@1.0|#env:prod,team:web",
            "shop.gunicorn.request.status.200:1|c|@1.0|#env:prod,team:web",
        ]
        assert receive(collector) == ["shop.gunicorn.workers:2|g|#env:prod,team:web"]
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
            assert receive(sock) == ["gunicorn.requests:1|c|@1.0"]
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
    statsd_names: str = "gunicorn"


@pytest.mark.parametrize("names", ["gunicorn", "corral"])
def test_logger_counts_error_level_lines_into_statsd(collector: socket.socket, names: str) -> None:
    log = Logger(Cfg(statsd_host=address(collector), statsd_prefix="app", statsd_names=names))
    try:
        assert isinstance(log.metrics, StatsdMetrics)
        log.info("not counted")
        log.debug("not counted either")
        log.warning("counted")
        log.error("counted")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("counted")
        log.critical("counted too")
        # gunicorn's Statsd logger: one counter per level, exception apart from error.
        assert [receive(collector) for _ in range(4)] == [
            [f"app.{names}.log.warning:1|c|@1.0"],
            [f"app.{names}.log.error:1|c|@1.0"],
            [f"app.{names}.log.exception:1|c|@1.0"],
            [f"app.{names}.log.critical:1|c|@1.0"],
        ]
    finally:
        log.close()
        for name in ("corral.error", "corral.access"):
            logging.getLogger(name).handlers.clear()


def test_settings_without_statsd_names_send_gunicorns(collector: socket.socket) -> None:
    @dataclass
    class Older:
        statsd_host: str | None
        statsd_prefix: str = ""
        dogstatsd_tags: str = ""

    metrics = make_metrics(Older(address(collector)))
    try:
        metrics.gauge("corral.workers", 3)
        assert receive(collector) == ["gunicorn.workers:3|g"]
    finally:
        metrics.close()


def test_make_metrics_sends_to_the_configured_host(collector: socket.socket) -> None:
    metrics = make_metrics(Cfg(statsd_host=address(collector), dogstatsd_tags="a:b"))
    try:
        metrics.incr("corral.requests", 3)
        assert receive(collector) == ["gunicorn.requests:3|c|@1.0|#a:b"]
    finally:
        metrics.close()


def test_make_metrics_with_corral_names(collector: socket.socket) -> None:
    metrics = make_metrics(Cfg(statsd_host=address(collector), statsd_names="corral"))
    try:
        metrics.incr("corral.requests", 3)
        assert receive(collector) == ["corral.requests:3|c|@1.0"]
    finally:
        metrics.close()
