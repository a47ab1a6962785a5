"""The events a ServerConnection hands out: a request, its body, its end, and sentinels."""

from __future__ import annotations

from typing import Any, Final, TypeAlias

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Request",
    "Sentinel",
]


class Request:
    """A parsed request head; every string is latin-1 decoded, nothing percent-decoded.

    Read-only once built: the parser hands the same object to every repeat of a head it has
    seen before (readers.parse_head_cached), on any connection and in any thread. Code that
    may change one, the user's hooks, gets a ``copy()`` (lifecycle.Bookkeeping.own).

    ``memo`` is the one field set after the build: what a gateway derives from the head alone
    (the WSGI environ's request keys, the ASGI scope's), kept for the head's next repeat as
    ``(gateway, key, value...)``. Any thread may replace it; a copy starts without one.
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "memo",
        "method",
        "path",
        "query",
        "scheme",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        method: str,
        target: str,
        path: str,
        query: str,
        http_version: str,
        headers: list[tuple[str, str]],
        keep_alive: bool,
        expect_continue: bool,
        upgrade: str | None,
        content_length: int | None,
        chunked: bool,
        scheme: str | None = None,
        host: str | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.content_length = content_length
        self.chunked = chunked
        self.scheme = scheme
        self.host = host
        self.memo: tuple[Any, ...] | None = None

    def copy(self) -> Request:
        """A copy with a headers list of its own, for code that may change it."""
        return Request(
            self.method,
            self.target,
            self.path,
            self.query,
            self.http_version,
            list(self.headers),
            self.keep_alive,
            self.expect_continue,
            self.upgrade,
            self.content_length,
            self.chunked,
            self.scheme,
            self.host,
        )

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, target={self.target!r}, "
            f"http_version={self.http_version!r}, headers={self.headers!r})"
        )


class Data:
    """A piece of the request body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    """The request body is complete; ``trailers`` holds a chunked body's trailer fields."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: list[tuple[str, str]] | None = None) -> None:
        self.trailers: list[tuple[str, str]] = [] if trailers is None else trailers

    def __repr__(self) -> str:
        return f"EndOfMessage(trailers={self.trailers!r})"


class ConnectionClosed:
    """The peer closed its sending side at a message boundary."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class Sentinel:
    """A named marker returned by ``next_event`` when there is no event to hand out."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: More bytes are needed before the next event.
NEED_DATA: Final = Sentinel("NEED_DATA")
#: The request is complete; nothing more is read until ``start_next_cycle()``.
PAUSED: Final = Sentinel("PAUSED")

#: Anything ``next_event`` returns that is not a sentinel.
Event: TypeAlias = Request | Data | EndOfMessage | ConnectionClosed
