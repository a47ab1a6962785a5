"""Pure parts of the metrics back ends: address parsing, prefixes, back-end choice."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from corral.metrics import (
    NullMetrics,
    StatsdMetrics,
    make_metrics,
    normalize_prefix,
    parse_statsd_host,
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:9125", (socket.AF_INET, ("127.0.0.1", 9125))),
        ("statsd", (socket.AF_INET, ("statsd", 8125))),
        ("[::1]:8126", (socket.AF_INET, ("::1", 8126))),
        ("[::1]", (socket.AF_INET, ("::1", 8125))),
        ("unix:///run/statsd.sock", (socket.AF_UNIX, "/run/statsd.sock")),
        ("unix:/run/statsd.sock", (socket.AF_UNIX, "/run/statsd.sock")),
        ("unix:8125", (socket.AF_INET, ("unix", 8125))),
    ],
)
def test_parse_statsd_host(host: str, expected: tuple[object, object]) -> None:
    assert parse_statsd_host(host) == expected


@pytest.mark.parametrize(
    "host", ["", ":8125", "host:port", "host:0", "host:65536", "[::1", "::1:8125", "unix://"]
)
def test_bad_statsd_host(host: str) -> None:
    with pytest.raises(ValueError, match="statsd_host"):
        parse_statsd_host(host)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("app", "app."), ("app.", "app."), ("app...", "app."), ("a", "a."), (".", "")],
)
def test_normalize_prefix(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


@dataclass
class MetricsCfg:
    statsd_host: str | None = None
    statsd_prefix: str = ""
    dogstatsd_tags: str = ""


def test_make_metrics_without_host_is_null() -> None:
    assert isinstance(make_metrics(MetricsCfg()), NullMetrics)


def test_make_metrics_with_host_is_statsd() -> None:
    metrics = make_metrics(MetricsCfg(statsd_host="127.0.0.1:9125", statsd_prefix="web"))
    try:
        assert isinstance(metrics, StatsdMetrics)
        assert metrics.prefix == "web."
        assert metrics.error is None
    finally:
        metrics.close()
