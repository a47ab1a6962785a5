"""Split `HOST:PORT`, `[IPV6]:PORT`, `HOST` and `[IPV6]` (bind, statsd_host, syslog_addr)."""

from __future__ import annotations

from typing import NamedTuple


class HostPort(NamedTuple):
    """An address split at its port colon; callers apply their own defaults and limits."""

    host: str  # without brackets; "" when the text starts with the colon
    port: str | None  # the text after the colon ("" for a trailing colon); None without one
    bracketed: bool  # the host was written as `[...]`, i.e. meant as an IPv6 literal


def split_host_port(text: str) -> HostPort:
    """Split `text`; ValueError (its message names the mistake) when the brackets are wrong.

    An IPv6 literal must be bracketed (RFC 3986 section 3.2.2), since its colons would
    otherwise be taken for the port's.
    """
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("expected [IPV6]:PORT")
        return HostPort(host, after[1:] if after else None, True)
    if text.count(":") > 1:
        raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:PORT")
    host, colon, port = text.partition(":")
    return HostPort(host, port if colon else None, False)


def port_number(text: str) -> int | None:
    """The number ASCII decimal `text` spells, None when it is not one; callers check the range."""
    return int(text) if text.isascii() and text.isdigit() else None
