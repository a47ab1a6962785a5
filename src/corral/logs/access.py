"""Render an AccessRecord as a gunicorn `access_log_format` line or as one JSON object."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from corral.logs.record import AccessRecord

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
JSON_FORMAT = "json"

Renderer = Callable[[AccessRecord], str]
Headers = dict[str, str]
# An atom's value from the record and the request/response headers picked for this format.
Getter = Callable[[AccessRecord, Headers, Headers], object]

# English month names: CLF must not depend on the process locale, which %b would.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BRACE_ATOM = re.compile(r"\{(.*)\}([ioe])")
_EMPTY: Headers = {}


def make_renderer(access_log_format: str) -> Renderer:
    """Return the renderer for a format: the built-in JSON one for "json", else a CLF-style one."""
    if access_log_format == JSON_FORMAT:
        return JsonRenderer()
    return FormatRenderer(access_log_format)


def _escape(value: str) -> str:
    # gunicorn escapes double quotes in every string atom so quoted fields stay parseable.
    return value.replace('"', '\\"') if '"' in value else value


def pick_headers(headers: Iterable[tuple[str, str]], wanted: frozenset[str]) -> Headers:
    """One pass over the headers, keeping the lower-cased names in `wanted`.

    Repeated fields are joined with ", " as RFC 9110 section 5.3 allows a recipient to do.
    """
    found: Headers = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            previous = found.get(key)
            found[key] = value if previous is None else f"{previous}, {value}"
    return found


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name from an HTTP Basic `Authorization` value (RFC 7617), or None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip().encode("latin-1"))
        return decoded.split(b":", 1)[0].decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None


class ClfClock:
    """Formats `[27/Nov/2026:13:05:01 +0000]` in local time, cached for the current second."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        # One tuple replaced whole, so threads never see a second paired with another's text.
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, timestamp: float) -> str:
        second = int(timestamp)
        cached = self._cached
        if cached[0] == second:
            return cached[1]
        tm = time.localtime(second)
        offset = tm.tm_gmtoff // 60
        sign = "-" if offset < 0 else "+"
        hours, minutes = divmod(abs(offset), 60)
        text = (
            f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{hours:02d}{minutes:02d}]"
        )
        self._cached = (second, text)
        return text


def _micros(rec: AccessRecord) -> int:
    return round(rec.duration * 1_000_000)


def _request_line(rec: AccessRecord) -> str:
    target = f"{rec.path}?{rec.query}" if rec.query else rec.path
    return _escape(f"{rec.method} {target} HTTP/{rec.http_version}")


def _user(rec: AccessRecord, req: Headers) -> str:
    user = rec.username or basic_auth_user(req.get("authorization"))
    return _escape(user) if user else "-"


def _length_or_dash(rec: AccessRecord) -> str:
    return "-" if rec.response_length is None else str(rec.response_length)


def _decimal_seconds(rec: AccessRecord) -> str:
    seconds, micros = divmod(_micros(rec), 1_000_000)
    return f"{seconds}.{micros:06d}"


def _fixed_atoms(clock: ClfClock) -> dict[str, Getter]:
    """gunicorn's single-letter atoms, as documented for its `access_log_format` setting."""
    return {
        "h": lambda r, q, o: _escape(r.remote_addr) if r.remote_addr else "-",
        "l": lambda r, q, o: "-",
        "u": lambda r, q, o: _user(r, q),
        # "date of the request at logging time": the end of the cycle.
        "t": lambda r, q, o: clock(r.start_time + r.duration),
        "r": lambda r, q, o: _request_line(r),
        "m": lambda r, q, o: _escape(r.method),
        "U": lambda r, q, o: _escape(r.path),
        "q": lambda r, q, o: _escape(r.query),
        "H": lambda r, q, o: f"HTTP/{r.http_version}",
        "s": lambda r, q, o: r.status,
        "B": lambda r, q, o: r.response_length or 0,
        "b": lambda r, q, o: _length_or_dash(r),
        "f": lambda r, q, o: _escape(q.get("referer", "-")),
        "a": lambda r, q, o: _escape(q.get("user-agent", "-")),
        "T": lambda r, q, o: _micros(r) // 1_000_000,
        "D": lambda r, q, o: _micros(r),
        "M": lambda r, q, o: _micros(r) // 1_000,
        "L": lambda r, q, o: _decimal_seconds(r),
        "p": lambda r, q, o: f"<{r.pid}>",
    }


# Request headers each fixed atom reads, so one pass over the headers serves the whole line.
_ATOM_REQUEST_HEADERS = {"u": "authorization", "f": "referer", "a": "user-agent"}


def environ_value(environ: Mapping[str, Any] | None, name: str) -> object:
    """gunicorn matches `{var}e` case-insensitively; try the usual spellings before a scan."""
    if environ is None:
        return "-"
    for key in (name.upper(), name):
        if key in environ:
            value = environ[key]
            return _escape(value) if isinstance(value, str) else value
    for key, value in environ.items():
        if key.lower() == name:
            return _escape(value) if isinstance(value, str) else value
    return "-"


class _KeyProbe(dict[str, object]):
    """Records every mapping key `%` formatting asks for: exactly the atoms a format uses."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_seen: list[str] = []

    def __missing__(self, key: str) -> object:
        self.keys_seen.append(key)
        return 0


class FormatRenderer:
    """Renders gunicorn's `%(atom)s` formats, computing only the atoms the format names."""

    def __init__(self, fmt: str) -> None:
        probe = _KeyProbe()
        try:
            fmt % probe
        except (TypeError, ValueError) as exc:
            raise ValueError(f"access_log_format {fmt!r} is not a valid format: {exc}") from exc
        fixed = _fixed_atoms(ClfClock())
        getters: list[tuple[str, Getter]] = []
        request_names: set[str] = set()
        response_names: set[str] = set()
        for key in dict.fromkeys(probe.keys_seen):
            getter, header = self._atom(key, fixed)
            getters.append((key, getter))
            if header is not None:
                (response_names if header[1] == "o" else request_names).add(header[0])
        self._fmt = fmt
        self._getters = tuple(getters)
        self._request_names = frozenset(request_names)
        self._response_names = frozenset(response_names)

    @staticmethod
    def _atom(key: str, fixed: dict[str, Getter]) -> tuple[Getter, tuple[str, str] | None]:
        """The getter for one atom and the (header name, i|o) it needs picked, if any."""
        if key in fixed:
            header = _ATOM_REQUEST_HEADERS.get(key)
            return fixed[key], ((header, "i") if header else None)
        match = _BRACE_ATOM.fullmatch(key.lower()) if key.startswith("{") else None
        if match is None:
            return (lambda r, q, o: "-"), None  # unknown atoms render as "-", as in gunicorn
        name, kind = match.group(1), match.group(2)
        if kind == "e":
            return (lambda r, q, o: environ_value(r.environ, name)), None
        if kind == "i":
            return (lambda r, q, o: _escape(q.get(name, "-"))), (name, "i")
        return (lambda r, q, o: _escape(o.get(name, "-"))), (name, "o")

    def __call__(self, rec: AccessRecord) -> str:
        req = (
            pick_headers(rec.request_headers, self._request_names)
            if self._request_names
            else _EMPTY
        )
        resp = (
            pick_headers(rec.response_headers, self._response_names)
            if self._response_names
            else _EMPTY
        )
        return self._fmt % {key: getter(rec, req, resp) for key, getter in self._getters}


_JSON_REQUEST_HEADERS = frozenset({"referer", "user-agent", "authorization", "x-request-id"})


class JsonRenderer:
    """One JSON object per line with typed fields (`access_log_format = "json"`)."""

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(separators=(",", ":"))
        self._utc_second: tuple[int, str] = (-1, "")

    def _iso_utc(self, timestamp: float) -> str:
        """ISO 8601 in UTC with milliseconds, e.g. 2026-11-27T13:05:01.123Z."""
        second = int(timestamp)
        cached = self._utc_second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._utc_second = cached
        millis = min(int((timestamp - second) * 1000), 999)
        return f"{cached[1]}.{millis:03d}Z"

    def __call__(self, rec: AccessRecord) -> str:
        req = pick_headers(rec.request_headers, _JSON_REQUEST_HEADERS)
        port = rec.remote_port
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        doc: dict[str, object] = {
            "time": self._iso_utc(rec.start_time),
            "remote_addr": rec.remote_addr,
            "remote_port": port,
            "user": rec.username or basic_auth_user(req.get("authorization")),
            "method": rec.method,
            "path": rec.path,
            "query": rec.query,
            "protocol": f"HTTP/{rec.http_version}",
            "status": rec.status,
            "bytes": rec.response_length,
            "duration_ms": round(rec.duration * 1000, 3),
            "referer": req.get("referer"),
            "user_agent": req.get("user-agent"),
            "pid": rec.pid,
        }
        request_id = req.get("x-request-id")
        if request_id is not None:
            doc["request_id"] = request_id
        return self._encoder.encode(doc)
