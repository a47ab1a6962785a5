"""Pure parts of logging setup: levels, syslog addresses and idents, gunicorn logger aliases."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from corral.logs.logconfig import alias_gunicorn_loggers, default_dict_config
from corral.logs.logger import parse_loglevel
from corral.logs.syslog import FACILITIES, parse_syslog_addr, syslog_ident


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("WARNING", logging.WARNING),
        ("Error", logging.ERROR),
        ("critical", logging.CRITICAL),
    ],
)
def test_parse_loglevel(name: str, level: int) -> None:
    assert parse_loglevel(name) == level


def test_unknown_loglevel_names_the_setting() -> None:
    with pytest.raises(ValueError, match="loglevel 'loud'"):
        parse_loglevel("loud")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("udp://localhost:514", (socket.SOCK_DGRAM, ("localhost", 514))),
        ("udp://10.0.0.5:5514", (socket.SOCK_DGRAM, ("10.0.0.5", 5514))),
        ("udp://LogHost", (socket.SOCK_DGRAM, ("loghost", 514))),
        ("udp://", (socket.SOCK_DGRAM, ("localhost", 514))),
        ("tcp://127.0.0.1:601", (socket.SOCK_STREAM, ("127.0.0.1", 601))),
        ("udp://[::1]:514", (socket.SOCK_DGRAM, ("::1", 514))),
        ("tcp://[2001:db8::1]", (socket.SOCK_STREAM, ("2001:db8::1", 514))),
        ("unix:///dev/log", (None, "/dev/log")),
        ("unix:///var/run/syslog#dgram", (socket.SOCK_DGRAM, "/var/run/syslog")),
        ("unix:///var/run/syslog#stream", (socket.SOCK_STREAM, "/var/run/syslog")),
    ],
)
def test_parse_syslog_addr(addr: str, expected: tuple[object, object]) -> None:
    assert parse_syslog_addr(addr) == expected


@pytest.mark.parametrize(
    "addr",
    [
        "localhost:514",
        "http://localhost:514",
        "udp://host:port",
        "udp://host:70000",
        "udp://[::1",
        "udp://[::1]x",
        "udp://::1:514",
        "unix://",
        "unix:///dev/log#seqpacket",
    ],
)
def test_bad_syslog_addr(addr: str) -> None:
    with pytest.raises(ValueError, match="syslog_addr"):
        parse_syslog_addr(addr)


def test_facilities_match_rfc_5424_codes() -> None:
    assert FACILITIES["user"] == 1
    assert FACILITIES["daemon"] == 3
    assert FACILITIES["local7"] == 23


@dataclass
class SyslogNames:
    syslog_prefix: str | None
    proc_name: str | None


def test_syslog_ident_prefers_prefix_then_proc_name() -> None:
    assert syslog_ident(SyslogNames("shop", "web:app"), "error") == "corral.shop.error"  # type: ignore[arg-type]
    assert syslog_ident(SyslogNames(None, "web:app"), "access") == "corral.web.app.access"  # type: ignore[arg-type]
    assert syslog_ident(SyslogNames(None, None), "error") == "corral.corral.error"  # type: ignore[arg-type]


def test_gunicorn_logger_names_are_renamed() -> None:
    user: dict[str, Any] = {
        "version": 1,
        "loggers": {
            "gunicorn.error": {"level": "DEBUG", "handlers": ["f"], "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["g"]},
            "myapp": {"level": "WARNING"},
        },
    }
    aliased = alias_gunicorn_loggers(user)
    assert aliased["loggers"] == {
        "corral.error": {"level": "DEBUG", "handlers": ["f"], "qualname": "corral.error"},
        "corral.access": {"level": "INFO", "handlers": ["g"]},
        "myapp": {"level": "WARNING"},
    }
    assert "gunicorn.error" in user["loggers"], "the caller's dict is not modified"


def test_our_logger_name_wins_over_the_gunicorn_alias() -> None:
    user = {"loggers": {"gunicorn.error": {"level": "DEBUG"}, "corral.error": {"level": "ERROR"}}}
    assert alias_gunicorn_loggers(user)["loggers"] == {"corral.error": {"level": "ERROR"}}


def test_config_without_loggers_is_copied_unchanged() -> None:
    assert alias_gunicorn_loggers({"version": 1, "root": {"level": "INFO"}}) == {
        "version": 1,
        "root": {"level": "INFO"},
    }


def test_defaults_do_not_propagate_our_loggers() -> None:
    loggers = default_dict_config()["loggers"]
    assert loggers["corral.error"]["propagate"] is False
    assert loggers["corral.access"]["propagate"] is False
