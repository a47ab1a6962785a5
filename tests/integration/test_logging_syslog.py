"""Syslog output of the error and access logs, received on sockets the tests bind."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from corral.logs import AccessRecord, Logger

RECV_TIMEOUT = 5.0


@dataclass
class Cfg:
    accesslog: str | None = None
    errorlog: str = "-"
    loglevel: str = "info"
    access_log_format: str = "%(m)s %(U)s %(s)s"
    capture_output: bool = False
    logconfig: str | None = None
    logconfig_dict: dict[str, Any] = field(default_factory=dict)
    logconfig_json: str | None = None
    syslog: bool = True
    syslog_addr: str = "udp://127.0.0.1:514"
    syslog_prefix: str | None = None
    syslog_facility: str = "user"
    disable_redirect_access_to_syslog: bool = False
    proc_name: str | None = "web:app"
    statsd_host: str | None = None
    statsd_prefix: str = ""
    dogstatsd_tags: str = ""


def record() -> AccessRecord:
    return AccessRecord(
        remote_addr="127.0.0.1",
        remote_port=40000,
        method="GET",
        path="/hello",
        query="",
        http_version="1.1",
        status=200,
        response_length=13,
        request_headers=[],
        response_headers=[],
        start_time=time.time(),
        duration=0.001,
        pid=os.getpid(),
    )


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    yield
    for name in ("corral.error", "corral.access"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(RECV_TIMEOUT)
    yield sock
    sock.close()


def make_logger(**settings: Any) -> Logger:
    # errorlog goes to a file so the console stays quiet; syslog gets its own copy.
    return Logger(Cfg(**settings))


def test_error_and_access_lines_over_udp(udp_receiver: socket.socket, tmp_path: Path) -> None:
    port = udp_receiver.getsockname()[1]
    log = make_logger(
        syslog_addr=f"udp://127.0.0.1:{port}",
        syslog_facility="local0",
        errorlog=str(tmp_path / "error.log"),
    )
    try:
        log.info("hello %s", "syslog")
        log.warning("careful")
        log.access(record())
        received = [udp_receiver.recv(4096) for _ in range(3)]
    finally:
        log.close()
    pid = os.getpid()
    # PRI = facility * 8 + severity (RFC 5424 section 6.2.1): local0 = 16, info = 6, warning = 4.
    assert received == [
        f"<134>corral.web.app.error: [{pid}] hello syslog\x00".encode(),
        f"<132>corral.web.app.error: [{pid}] careful\x00".encode(),
        f"<134>corral.web.app.access: [{pid}] GET /hello 200\x00".encode(),
    ]
    assert log.access_enabled is False  # closed
    assert "hello syslog" in (tmp_path / "error.log").read_text(encoding="utf-8")


def test_access_enabled_by_syslog_alone(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    log = make_logger(syslog_addr=f"udp://127.0.0.1:{port}", errorlog=os.devnull)
    try:
        assert log.access_enabled
    finally:
        log.close()


def test_disable_redirect_access_to_syslog(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    log = make_logger(
        syslog_addr=f"udp://127.0.0.1:{port}",
        syslog_prefix="shop",
        disable_redirect_access_to_syslog=True,
        errorlog=os.devnull,
    )
    try:
        assert not log.access_enabled
        log.access(record())
        log.error("marker")
        first = udp_receiver.recv(4096)
    finally:
        log.close()
    # user = 1, err = 3: the first datagram is the marker, so no access line was sent.
    assert first == f"<11>corral.shop.error: [{os.getpid()}] marker\x00".encode()


def test_syslog_over_tcp() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(RECV_TIMEOUT)
        port = server.getsockname()[1]
        log = make_logger(syslog_addr=f"tcp://127.0.0.1:{port}", errorlog=os.devnull)
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(RECV_TIMEOUT)
                log.info("over tcp")
                expected = f"<14>corral.web.app.error: [{os.getpid()}] over tcp\x00".encode()
                data = b""
                for _ in range(100):  # bounded: TCP may deliver the line in pieces
                    if len(data) >= len(expected):
                        break
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        finally:
            log.close()
    assert data == expected


def test_syslog_over_a_unix_datagram_socket(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(RECV_TIMEOUT)
        for addr in (f"unix://{path}#dgram", f"unix://{path}"):
            log = make_logger(syslog_addr=addr, errorlog=os.devnull)
            try:
                log.info("via %s", addr)
                got = receiver.recv(4096)
            finally:
                log.close()
            assert got == f"<14>corral.web.app.error: [{os.getpid()}] via {addr}\x00".encode()


def test_unreachable_tcp_syslog_is_a_setup_error() -> None:
    # A bound socket that never listens: connecting to it is refused at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        with pytest.raises(ValueError, match="syslog_addr"):
            make_logger(syslog_addr=f"tcp://127.0.0.1:{port}", errorlog=os.devnull)


def test_unknown_facility_is_a_setup_error() -> None:
    with pytest.raises(ValueError, match="syslog_facility 'local9'"):
        make_logger(syslog_facility="local9", errorlog=os.devnull)
