"""The IMF-fixdate for the Date header, computed at most once per second."""

from __future__ import annotations

import time

__all__ = ["DateCache", "date_bytes", "date_line", "format_date"]

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(seconds: float) -> str:
    """The IMF-fixdate (RFC 9110 §5.6.7) of a timestamp: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class DateCache:
    """Holds the formatted ``Date`` line of one second, recomputed when the second changes."""

    __slots__ = ("line", "line_bytes", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = ""
        self.line_bytes = b""

    def get(self, second: int) -> str:
        """``Date: <IMF-fixdate>\\r\\n`` for ``second`` (a POSIX time in whole seconds)."""
        if second != self.second:
            # Two threads may both refresh at a second boundary; each stores a
            # complete, identical value, so no lock is needed.
            line = f"Date: {format_date(second)}\r\n"
            self.line = line
            self.line_bytes = line.encode("ascii")
            self.second = second
            return line
        return self.line


_CACHE = DateCache()


def date_line() -> str:
    """``Date: <IMF-fixdate>\\r\\n`` for the current second (formatted once per second)."""
    second = int(time.time())
    cache = _CACHE
    # The hit is checked here, not in DateCache.get: one call less on every response.
    if second == cache.second:
        return cache.line
    return cache.get(second)


def date_bytes() -> bytes:
    """``date_line()`` as bytes, encoded once per second too."""
    second = int(time.time())
    cache = _CACHE
    if second != cache.second:
        cache.get(second)
    return cache.line_bytes
