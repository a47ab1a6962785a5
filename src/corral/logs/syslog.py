"""Syslog handlers for the error and access logs, from gunicorn's `syslog_*` settings."""

from __future__ import annotations

import logging
import socket
from logging.handlers import SysLogHandler

from corral.hostport import port_number, split_host_port
from corral.logs.settings import LogSettings

# The facility codes of RFC 5424 section 6.2.1, by the names gunicorn accepts.
FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "security": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "local0": 16,
    "local1": 17,
    "local2": 18,
    "local3": 19,
    "local4": 20,
    "local5": 21,
    "local6": 22,
    "local7": 23,
}

SyslogAddress = tuple[str, int] | str
DEFAULT_PORT = 514


def parse_syslog_addr(addr: str) -> tuple[socket.SocketKind | None, SyslogAddress]:
    """`udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///path[#dgram|#stream]`.

    For a unix socket without a fragment the type is None: SysLogHandler then tries
    a datagram socket and falls back to a stream one.
    """
    scheme, sep, rest = addr.partition("://")
    if not sep:
        raise ValueError(f"syslog_addr {addr!r}: expected udp://, tcp:// or unix://")
    if scheme == "unix":
        path, _, kind = rest.partition("#")
        kinds = {"": None, "dgram": socket.SOCK_DGRAM, "stream": socket.SOCK_STREAM}
        if not path or kind not in kinds:
            raise ValueError(f"syslog_addr {addr!r}: expected unix:///path[#dgram|#stream]")
        return kinds[kind], path
    kinds_inet = {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM}
    if scheme not in kinds_inet:
        raise ValueError(f"syslog_addr {addr!r}: unknown scheme {scheme!r}")
    return kinds_inet[scheme], _host_port(addr, rest)


def _host_port(addr: str, rest: str) -> tuple[str, int]:
    try:
        host, port_text, _ = split_host_port(rest)
    except ValueError as exc:
        raise ValueError(f"syslog_addr {addr!r}: {exc}") from None
    port = port_number(port_text) if port_text else DEFAULT_PORT
    if port is None:
        raise ValueError(f"syslog_addr {addr!r}: {port_text!r} is not a port number")
    if not 0 < port < 65536:
        raise ValueError(f"syslog_addr {addr!r}: port out of range")
    return (host or "localhost").lower(), port


def syslog_ident(cfg: LogSettings, log_name: str) -> str:
    """`corral.<prefix>.<error|access>`, the prefix being syslog_prefix or proc_name."""
    prefix = cfg.syslog_prefix or (cfg.proc_name or "corral").replace(":", ".")
    return f"corral.{prefix}.{log_name}"


def make_syslog_handler(cfg: LogSettings, log_name: str) -> SysLogHandler:
    """A SysLogHandler for one of our logs; raises ValueError on a bad address or facility."""
    facility = FACILITIES.get(cfg.syslog_facility.lower())
    if facility is None:
        raise ValueError(f"syslog_facility {cfg.syslog_facility!r}: unknown facility")
    socktype, address = parse_syslog_addr(cfg.syslog_addr)
    try:
        handler = SysLogHandler(address=address, facility=facility, socktype=socktype)
    except OSError as exc:
        raise ValueError(f"syslog_addr {cfg.syslog_addr!r}: {exc}") from exc
    ident = syslog_ident(cfg, log_name).replace("%", "%%")
    handler.setFormatter(logging.Formatter(f"{ident}: [%(process)d] %(message)s"))
    return handler
