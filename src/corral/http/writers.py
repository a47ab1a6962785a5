"""Response writers: the status line, validated header lines, and chunked framing."""

from __future__ import annotations

from corral.http import state
from corral.http.errors import REASONS, LocalProtocolError
from corral.http.events import Request
from corral.http.grammar import CTL_MARKS, FIELD_VALUE_BAD, TOKEN
from corral.http.httpdate import date_bytes, date_line

__all__ = [
    "AppFields",
    "build_head",
    "chunk",
    "encode_head",
    "last_chunk",
    "scan_app_headers",
    "status_line",
]

# "HTTP/1.1 200 OK\r\n" for every status with a standard reason phrase.
_STATUS_LINES: dict[int, str] = {
    code: f"HTTP/1.1 {code} {phrase.decode('ascii')}\r\n" for code, phrase in REASONS.items()
}

# Field names the application sends again and again ("Content-Type", ...) are checked
# against the token grammar once per process: valid name -> its lower-case form. Only
# valid names get in, and the size is bounded, so a hostile app cannot grow it.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 512

# App fields the framing depends on (lower-case name -> kind).
_LENGTH, _TRANSFER, _CONNECTION, _KEEP_ALIVE, _DATE, _SERVER = range(1, 7)
_FRAMING_FIELDS = {
    "content-length": _LENGTH,
    "transfer-encoding": _TRANSFER,
    "connection": _CONNECTION,
    "keep-alive": _KEEP_ALIVE,
    "date": _DATE,
    "server": _SERVER,
}


def status_line(status: int, reason: str | None) -> str:
    """``HTTP/1.1 <status> <reason>\\r\\n``; the standard phrase when ``reason`` is None."""
    if type(status) is not int or not 100 <= status <= 999:
        raise LocalProtocolError(f"invalid status code {status!r}")
    line = _STATUS_LINES.get(status)
    # WSGI apps give the phrase with the status ("200 OK"); the standard one needs no new line.
    if line is not None and (reason is None or line[13:-2] == reason):
        return line
    return f"HTTP/1.1 {status} {reason or ''}\r\n"


def _field_name(name: str) -> str:
    """The lower-case form of a valid field name (RFC 9110 §5.1: a token)."""
    if type(name) is not str or not TOKEN.fullmatch(name):
        raise LocalProtocolError(f"invalid header name {name!r}")
    lname = name.lower()
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = lname
    return lname


# What the app's fields tell the framing: its Content-Length (None when it set none), whether
# its Connection field asked to close, and whether it set Date and Server itself. A plain
# tuple: this runs once per response, and an object with six attributes cost a third of it.
AppFields = tuple[int | None, bool, bool, bool]


def scan_app_headers(headers: list[tuple[str, str]], lines: list[str]) -> AppFields:
    """Format the app's fields into ``lines``; drop the hop-by-hop ones we own.

    Transfer-Encoding, Connection and Keep-Alive are dropped: this connection frames the
    body and decides persistence itself (RFC 9110 §7.6.1), honouring ``close`` from the
    app's Connection field.
    """
    length: int | None = None
    close = has_date = has_server = False
    append = lines.append
    cache = _NAME_CACHE
    for name, value in headers:
        lname = cache.get(name)
        if lname is None:
            lname = _field_name(name)
        if type(value) is not str:
            raise LocalProtocolError(f"header {name!r} value is not a str")
        kind = _FRAMING_FIELDS.get(lname)
        if kind is None:
            append(f"{name}: {value}\r\n")
        elif kind == _LENGTH:
            if length is not None:
                raise LocalProtocolError("duplicate Content-Length header")
            if not (value.isascii() and value.isdigit()):
                raise LocalProtocolError(f"invalid Content-Length {value!r}")
            length = int(value)
        elif kind == _CONNECTION:
            close = close or "close" in {t.strip(" \t") for t in value.lower().split(",")}
        elif kind == _DATE:
            has_date = True
            append(f"{name}: {value}\r\n")
        elif kind == _SERVER:
            has_server = True
            append(f"{name}: {value}\r\n")
    return length, close, has_date, has_server


def encode_head(lines: list[str]) -> bytes:
    """Join and encode a head whose every item is one CRLF-terminated line.

    A CR, LF or other CTL inside a value would show up as more CRs or LFs than lines,
    or as a CTL: refused, so an app can never split a response (RFC 9110 §5.5).
    """
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("header text not encodable as latin-1") from None
    if head.translate(CTL_MARKS).count(1) != 2 * len(lines):
        raise LocalProtocolError(_name_bad_line(lines))
    return head


def _name_bad_line(lines: list[str]) -> str:
    """Say which line of a refused head is bad (the error path only)."""
    for line in lines:
        body = line[:-2]
        if FIELD_VALUE_BAD.search(body) or "\r" in body:
            return f"invalid character in response head line {body.partition(':')[0]!r}"
    return "invalid response head"


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked coding (RFC 9112 §7.1); empty data gives nothing."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: list[tuple[str, str]] | None) -> bytes:
    """The last chunk and the trailer section (RFC 9112 §7.1.2)."""
    if not trailers:
        return b"0\r\n\r\n"
    lines = ["0\r\n"]
    for name, value in trailers:
        _field_name(name)
        if type(value) is not str:
            raise LocalProtocolError(f"trailer {name!r} value is not a str")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return encode_head(lines)


# An app answers most requests with the same status and fields, and a head depends only on
# build_head's arguments and the current second (its Date line). So a head that passed every
# check is kept, encoded and cut around its Date line, under the arguments that built it: the
# next identical response costs a lookup and a join instead of the checks (-13 % of the
# instructions of a `hello` request). Full, the cache is emptied, so an app whose fields change
# on every response (a Content-Length per body, cookies) pays one lookup and a rebuild. Heads
# longer than _HEAD_CACHE_ITEM are not kept, which bounds the memory to about 2 MiB.
_HEAD_CACHE: dict[tuple[object, ...], tuple[bytes, bytes | None, int, int, bool]] = {}
_HEAD_CACHE_MAX = 256
_HEAD_CACHE_ITEM = 4096


def build_head(
    request: Request,
    status: int,
    headers: list[tuple[str, str]],
    reason: str | None,
    full_length: int | None,
    persistent: bool,
    unread_expect: bool,
    server_line: str,
) -> tuple[bytes, int, int, bool]:
    """A final response head: (bytes, framing, Content-Length or 0, keep-alive).

    ``full_length`` is the length of a whole body given at once (send_full), ``persistent``
    whether the request side allows keeping the connection, ``unread_expect`` whether
    the client still waits for a 100 Continue that was never sent.
    """
    key: tuple[object, ...] | None = None
    # An equal key must mean the same head. 200.0 == 200, but a float status is refused, so
    # only an int is looked up; the callers pass a str or None as the reason and len() as the
    # full length. (A str subclass equal to a cached field value gets that value's head; alone
    # it would be refused as not a str.) Any iterable but a list would be used up by the key.
    if type(status) is int and type(headers) is list:
        key = (
            status,
            reason,
            full_length,
            persistent,
            unread_expect,
            request.method,
            request.http_version,
            request.upgrade,
            server_line,
            *headers,
        )
        try:
            hit = _HEAD_CACHE.get(key)
        except TypeError:  # an unhashable field, such as a list: checked every time
            key = hit = None
        if hit is not None:
            pre, post, framing, length, keep_alive = hit
            if post is None:
                return pre, framing, length, keep_alive
            return pre + date_bytes() + post, framing, length, keep_alive
    lines, framing, length, keep_alive, date_at = _head_lines(
        request, status, headers, reason, full_length, persistent, unread_expect, server_line
    )
    head = encode_head(lines)
    if key is not None and len(head) <= _HEAD_CACHE_ITEM:
        if len(_HEAD_CACHE) >= _HEAD_CACHE_MAX:
            _HEAD_CACHE.clear()
        if date_at is None:
            _HEAD_CACHE[key] = (head, None, framing, length, keep_alive)
        else:
            # Latin-1: one byte per character, so the line's offsets carry over to the bytes.
            start = sum(map(len, lines[:date_at]))
            end = start + len(lines[date_at])
            _HEAD_CACHE[key] = (head[:start], head[end:], framing, length, keep_alive)
    return head, framing, length, keep_alive


def _head_lines(
    request: Request,
    status: int,
    headers: list[tuple[str, str]],
    reason: str | None,
    full_length: int | None,
    persistent: bool,
    unread_expect: bool,
    server_line: str,
) -> tuple[list[str], int, int, bool, int | None]:
    """build_head's lines and facts, and the index of the Date line it added (None: the app's)."""
    if status == 101 and request.upgrade is None:
        raise LocalProtocolError("101 Switching Protocols without an Upgrade request")
    lines = [status_line(status, reason)]
    length, app_close, has_date, has_server = scan_app_headers(headers, lines)
    if length is not None and full_length is not None and length != full_length:
        raise LocalProtocolError("Content-Length does not match the body")
    framing = state.response_framing(
        status,
        request.method,
        request.http_version,
        full_length if length is None else length,
        request.upgrade is not None,
    )
    if framing == state.LENGTH or (framing == state.NO_BODY and status >= 200):
        # RFC 9110 §8.6: no Content-Length on 1xx or 204; a HEAD or 304 response
        # may carry the length the full response would have.
        if length is None and full_length and status != 304:
            length = full_length
        if length is not None and status != 204:
            lines.append(f"Content-Length: {length}\r\n")
    elif framing == state.CHUNKED:
        lines.append("Transfer-Encoding: chunked\r\n")
    keep_alive = state.response_keep_alive(persistent, app_close, framing, status, unread_expect)
    date_at = None
    if not has_date:
        date_at = len(lines)
        lines.append(date_line())
    if not has_server and server_line:
        lines.append(server_line)
    connection = state.connection_field(framing, keep_alive, request.http_version)
    if connection:
        lines.append(connection)
    lines.append("\r\n")
    return lines, framing, length or 0, keep_alive, date_at
