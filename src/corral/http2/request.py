"""An HTTP/2 request's header block (RFC 9113 §8.3) as the core's Request event."""

from __future__ import annotations

from collections.abc import Iterable

from corral.http.errors import ProtocolError
from corral.http.events import Request
from corral.http.grammar import FIELD_VALUE_BAD, REQUEST_TARGET
from corral.http.limits import Limits

_PSEUDO = frozenset((":method", ":scheme", ":path", ":authority"))


def build_request(raw: Iterable[tuple[bytes, bytes]], limits: Limits, ended: bool) -> Request:
    """The core's Request from a decoded header block; ProtocolError (400, 414, 431) when it
    breaks a limit or a rule h2 does not check itself.

    ``ended``: the HEADERS frame carried END_STREAM, so there is no body.
    """
    pseudo: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    for bname, bvalue in raw:
        name = bname.decode("latin-1")
        value = bvalue.decode("latin-1")
        if FIELD_VALUE_BAD.search(value) or value != value.strip(" \t"):
            # RFC 9113 §8.2.1: no NUL, CR or LF, and no leading or trailing whitespace.
            raise ProtocolError(400, f"invalid value in field {name!r}")
        if len(name) + len(value) + 4 > limits.max_field_size:
            raise ProtocolError(431, f"header field {name!r} too large")
        if limits.refuse_underscore_headers and "_" in name:
            raise ProtocolError(400, f"underscore in header name {name!r}")
        if name[:1] == ":":
            if name not in _PSEUDO:
                raise ProtocolError(400, f"unknown pseudo-header {name!r}")
            pseudo[name] = value
        elif name == "cookie":
            cookies.append(value)  # RFC 9113 §8.2.3: joined with "; " below
        else:
            headers.append((name, value))
    if cookies:
        headers.append(("cookie", "; ".join(cookies)))
    if len(headers) > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    method = pseudo.get(":method", "")
    target = pseudo.get(":path", "")
    if method == "CONNECT" or not target:
        # Extended CONNECT (RFC 8441, WebSocket over HTTP/2) is not offered: no
        # SETTINGS_ENABLE_CONNECT_PROTOCOL in our settings.
        raise ProtocolError(501 if method == "CONNECT" else 400, "CONNECT is not served")
    if len(target) > limits.max_request_line:
        raise ProtocolError(414, "request target too long")
    if not REQUEST_TARGET.fullmatch(target) or (target[0] != "/" and target != "*"):
        raise ProtocolError(400, "invalid :path")
    authority = pseudo.get(":authority")
    hosts = [value for name, value in headers if name == "host"]
    if authority is not None:
        if any(host != authority for host in hosts):
            # RFC 9113 §8.3.1: a Host that names another entity than :authority is malformed
            # (apps and proxies routing on either would disagree).
            raise ProtocolError(400, "Host differs from :authority")
        if not hosts:
            headers.append(("host", authority))  # :authority stands for Host, which apps read
    length = _content_length(headers)
    if limits.max_body and (length or 0) > limits.max_body:
        raise ProtocolError(413, "request body too large")
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    expect = any(n == "expect" and v.lower() == "100-continue" for n, v in headers)
    # A body of no declared length is read to END_STREAM: the gateways treat it as a chunked
    # one (no CONTENT_LENGTH, wsgi.input_terminated).
    chunked = length is None and not ended
    return Request(
        method, target, path, query, "2", headers, True, expect and not ended, None, length, chunked
    )


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    """The one Content-Length (h2 checks the DATA frames add up to it); 400 when unclear."""
    found: int | None = None
    for name, value in headers:
        if name != "content-length":
            continue
        if not value.isdigit() or (found is not None and int(value) != found):
            raise ProtocolError(400, "invalid Content-Length")
        found = int(value)
    return found
