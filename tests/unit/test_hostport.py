"""The one host:port splitter behind bind, statsd_host and syslog_addr."""

from __future__ import annotations

import pytest

from corral.hostport import HostPort, port_number, split_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:80", HostPort("example.com", "80", False)),
        ("example.com", HostPort("example.com", None, False)),
        ("example.com:", HostPort("example.com", "", False)),
        (":9000", HostPort("", "9000", False)),
        ("[::1]:8080", HostPort("::1", "8080", True)),
        ("[::1]", HostPort("::1", None, True)),
        ("[::1]:", HostPort("::1", "", True)),
        ("[]:1", HostPort("", "1", True)),
        ("host:port", HostPort("host", "port", False)),
    ],
)
def test_split(text: str, expected: HostPort) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[::1", r"expected \[IPV6\]:PORT"),
        ("[::1]8000", r"expected \[IPV6\]:PORT"),
        ("::1:8000", "in brackets"),
        ("fe80::1", "in brackets"),
    ],
)
def test_split_rejects_bad_brackets(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_host_port(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("8125", 8125), ("70000", 70000), ("", None), ("http", None), ("-1", None),
     ("+1", None), (" 1", None), ("٣", None)],
)  # fmt: skip
def test_port_number(text: str, expected: int | None) -> None:
    assert port_number(text) == expected
