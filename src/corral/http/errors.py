"""Errors of the HTTP core and the one renderer of every error response."""

from __future__ import annotations

from corral.http.httpdate import date_bytes

__all__ = ["REASONS", "LocalProtocolError", "ProtocolError", "render_error"]

# RFC 9110 §15: the standard reason phrases (plus 418 and the RFC 6585 codes).
REASONS: dict[int, bytes] = {
    100: b"Continue",
    101: b"Switching Protocols",
    102: b"Processing",
    103: b"Early Hints",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    203: b"Non-Authoritative Information",
    204: b"No Content",
    205: b"Reset Content",
    206: b"Partial Content",
    207: b"Multi-Status",
    208: b"Already Reported",
    226: b"IM Used",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    305: b"Use Proxy",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    409: b"Conflict",
    410: b"Gone",
    411: b"Length Required",
    412: b"Precondition Failed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable",
    417: b"Expectation Failed",
    418: b"I'm a teapot",
    421: b"Misdirected Request",
    422: b"Unprocessable Content",
    423: b"Locked",
    424: b"Failed Dependency",
    425: b"Too Early",
    426: b"Upgrade Required",
    428: b"Precondition Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
    506: b"Variant Also Negotiates",
    507: b"Insufficient Storage",
    508: b"Loop Detected",
    510: b"Not Extended",
    511: b"Network Authentication Required",
}


class ProtocolError(Exception):
    """The peer broke HTTP; ``status`` is the response to send before closing."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class LocalProtocolError(Exception):
    """Our side (usually the application) broke HTTP; callers answer 500 and log it."""


def render_error(status: int, *, server: bytes | None = b"corral", extra: bytes = b"") -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 error response with a short text body;
    ``extra`` is more header lines, each ending in CRLF (``Allow`` for a 405)."""
    phrase = REASONS.get(status, b"Error")
    body = b"%d %s\n" % (status, phrase)
    parts = [
        b"HTTP/1.1 %d %s\r\n" % (status, phrase),
        date_bytes(),
    ]
    if server is not None:
        parts.append(b"Server: %s\r\n" % server)
    if extra:
        parts.append(extra)
    parts.append(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body)
    )
    parts.append(body)
    return b"".join(parts)
