"""Request readers: the request line, header and trailer sections, and chunked bodies."""

from __future__ import annotations

import re

from corral.http.errors import ProtocolError
from corral.http.events import Request
from corral.http.grammar import (
    ABSOLUTE_FORM,
    AUTHORITY,
    AUTHORITY_FORM,
    CONVENTIONAL_METHOD,
    CTL_MARKS,
    FAST_REQUEST_LINE,
    FAST_REQUEST_LINE_ANY_METHOD,
    FIELD_VALUE_BAD,
    HOST,
    HTTP_VERSION,
    REQUEST_TARGET,
    TOKEN,
)
from corral.http.limits import Limits
from corral.http.state import request_persistence

__all__ = [
    "TRAILER_FORBIDDEN",
    "parse_fields",
    "parse_head",
    "parse_head_cached",
    "request_line_pattern",
]

# Header fields that decide framing, routing or the connection (lower-cased name → kind).
_CL, _TE, _HOST, _CONN, _EXPECT, _UPGRADE, _CTYPE = range(1, 8)
_HEAD_SPECIAL = {
    "content-length": _CL,
    "transfer-encoding": _TE,
    "host": _HOST,
    "connection": _CONN,
    "expect": _EXPECT,
    "upgrade": _UPGRADE,
    "content-type": _CTYPE,
}
# RFC 9110 §6.5.1: fields that must not come in trailers, as they would change framing,
# routing or authentication after the fact (the list gunicorn enforces).
TRAILER_FORBIDDEN = dict.fromkeys(
    ("host", "content-length", "transfer-encoding", "trailer", "te", "authorization"), 0
)
# RFC 9112 §7: the transfer codings we recognise; "identity" is obsolete but still
# recognised so that "identity, chunked" keeps working. Anything else gets 501.
_KNOWN_CODINGS = frozenset(
    ("chunked", "gzip", "deflate", "compress", "x-gzip", "x-compress", "identity")
)
# Field names seen before, checked against the token grammar: name -> lower-case name.
# Only valid names get in and the size is bounded, so a client cannot grow it.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 1024
# Host values seen before and found valid; bounded the same way. A server answers a handful
# of names, and the grammar check is ~0.6 µs, a few per cent of a small request.
_HOST_CACHE: set[str] = set()
_HOST_CACHE_MAX = 256
# Heads parsed before, byte for byte: head -> (the limits it was parsed under, its Request).
# A keep-alive client that repeats a request (a load balancer's health check, a poller, the
# same API call from one proxy, a load generator) skips the parser, about a quarter of a
# small request's Python. A head is a pure function of its bytes and the limits, and a
# Request is never changed once built (the user's hooks get a copy), so one object can serve
# every repeat, in any thread. Any other head pays a lookup (its bytes' SipHash, randomised
# per process, so no colliding set can be crafted) and its keeping, ~0.3 µs. Small heads
# only, and emptied when full: at most ~2 MiB alive (128 heads of 1 KiB, parsed, by tracemalloc).
_PARSED: dict[bytes, tuple[Limits, Request]] = {}
_PARSED_ITEM = 1024
_PARSED_MAX = 128
# Content-Length must fit in a signed 64-bit integer.
_MAX_CONTENT_LENGTH = 2**63 - 1

Fields = list[tuple[str, str]]
Found = list[tuple[int, str]]


def request_line_pattern(limits: Limits) -> re.Pattern[str]:
    """The fast-path request-line pattern for these limits."""
    if limits.permit_unconventional_http_method:
        return FAST_REQUEST_LINE_ANY_METHOD
    return FAST_REQUEST_LINE


def parse_head_cached(head: bytes | bytearray, limits: Limits, line_re: re.Pattern[str]) -> Request:
    """``parse_head``, answered from memory for a small head seen before under these limits."""
    if len(head) > _PARSED_ITEM:
        return parse_head(head, limits, line_re)
    if type(head) is not bytes:
        head = bytes(head)  # a head that came in pieces: a bytearray cannot be a key
    hit = _PARSED.get(head)
    if hit is not None and hit[0] is limits:
        return hit[1]
    request = parse_head(head, limits, line_re)  # a ProtocolError is raised, never kept
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[head] = (limits, request)
    return request


def parse_head(head: bytes | bytearray, limits: Limits, line_re: re.Pattern[str]) -> Request:
    """Parse a complete request head (its bytes, without the final empty line)."""
    eol = head.find(b"\r\n")
    line = (head if eol < 0 else head[:eol]).decode("latin-1")
    if len(line) > limits.max_request_line:
        raise ProtocolError(414, "request line too long")
    m = line_re.fullmatch(line)
    scheme = host = None
    if m is not None:
        method, target, minor = m.groups()
        version = "1.1" if minor == "1" else "1.0"
        if limits.casefold_http_method:
            method = method.upper()
        if method == "CONNECT":
            raise ProtocolError(400, "CONNECT needs an authority-form target")
        if "#" in target:
            # A fragment is not part of a request-target (RFC 9112 §3.2); dropped.
            target_nf = target.partition("#")[0]
            path, _, query = target_nf.partition("?")
        else:
            path, _, query = target.partition("?")
    else:
        method, target, version, path, query, scheme, host = _parse_request_line_slow(line, limits)
    if eol < 0:
        headers: Fields = []
        found: Found = []
    else:
        headers, found = parse_fields(head[eol + 2 :], limits, _HEAD_SPECIAL)
    return _build_request(
        method, target, path, query, version, headers, found, limits, scheme, host
    )


def _parse_request_line_slow(
    line: str, limits: Limits
) -> tuple[str, str, str, str, str, str | None, str | None]:
    """Every request line the fast pattern refused: other target forms, or an error."""
    parts = line.split(" ")
    if len(parts) != 3:
        # RFC 9112 §3: exactly one SP between the three parts; no tabs, no padding.
        raise ProtocolError(400, "malformed request line")
    method, target, raw_version = parts
    if raw_version == "HTTP/1.1" or raw_version == "HTTP/1.0":
        version = raw_version[5:]
    elif HTTP_VERSION.fullmatch(raw_version):
        # Well-formed but not 1.x (this includes the HTTP/2 preface "PRI * HTTP/2.0").
        raise ProtocolError(505, f"HTTP version {raw_version} not supported")
    else:
        raise ProtocolError(400, "malformed HTTP version")
    method_re = TOKEN if limits.permit_unconventional_http_method else CONVENTIONAL_METHOD
    if not method_re.fullmatch(method):
        raise ProtocolError(400, "invalid method")
    if limits.casefold_http_method:
        method = method.upper()
    if not REQUEST_TARGET.fullmatch(target):
        raise ProtocolError(400, "invalid characters in request target")
    scheme = host = None
    if method == "CONNECT":
        # RFC 9112 §3.2.3: CONNECT takes authority-form, and only CONNECT does.
        if not AUTHORITY_FORM.fullmatch(target):
            raise ProtocolError(400, "CONNECT needs an authority-form target")
        path, query = target, ""
    elif target[0] == "/":
        path, _, query = target.partition("#")[0].partition("?")
    elif target == "*":
        # RFC 9112 §3.2.4: asterisk-form is for OPTIONS only.
        if method != "OPTIONS":
            raise ProtocolError(400, "asterisk-form target is only allowed with OPTIONS")
        path, query = target, ""
    else:
        scheme, host, path, query = _parse_absolute_form(target)
    return method, target, version, path, query, scheme, host


def _parse_absolute_form(target: str) -> tuple[str, str, str, str]:
    """RFC 9112 §3.2.2 absolute-form with an http(s) URI: scheme, host[:port], path, query."""
    m = ABSOLUTE_FORM.fullmatch(target)
    if m is None:
        raise ProtocolError(400, "invalid request target")
    scheme = m.group(1).lower()
    if scheme != "http" and scheme != "https":
        raise ProtocolError(400, "absolute-form target must be http or https")
    auth = AUTHORITY.fullmatch(m.group(2))
    # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid.
    if auth is None or auth.group(1)[:1] in ("", ":"):
        raise ProtocolError(400, "invalid authority in request target")
    return scheme, auth.group(1), m.group(3) or "/", m.group(4) or ""


def parse_fields(
    raw: bytes | bytearray, limits: Limits, special: dict[str, int]
) -> tuple[Fields, Found]:
    """Parse a header or trailer section; ``found`` lists the ``special`` fields met.

    RFC 9112 §5 and RFC 9110 §5.5: field-line = field-name ":" OWS field-value OWS, a
    field-name is a token, a value holds no CTL but HTAB, lines end with CRLF only. One
    C-level pass finds every CTL: valid when they are exactly the CRLFs between lines.
    Names are checked against the token grammar once per process each (a bounded memo).
    Anything else (obs-fold, a padded name, an error to name) goes line by line.
    """
    block = raw.decode("latin-1")
    lines = block.split("\r\n")
    if raw.translate(CTL_MARKS).count(1) != 2 * len(lines) - 2 or (
        limits.refuse_underscore_headers and "_" in block
    ):
        return _parse_fields_slow(lines, limits, special)
    headers: Fields = []
    append = headers.append
    found: Found = []
    names = _NAME_CACHE
    for line in lines:
        name, colon, value = line.partition(":")
        lname = names.get(name)
        if lname is None or not colon:
            if not colon or not TOKEN.fullmatch(name):
                return _parse_fields_slow(lines, limits, special)
            lname = name.lower()
            if len(names) < _NAME_CACHE_MAX:
                names[name] = lname
        value = value.strip(" \t")
        append((name, value))
        kind = special.get(lname)
        if kind is not None:
            found.append((kind, value))
    if len(lines) > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    if len(block) + 2 > limits.max_field_size:
        limit = limits.max_field_size - 2
        for line in lines:
            if len(line) > limit:
                raise ProtocolError(431, "header field too long")
    return headers, found


def _parse_fields_slow(
    lines: list[str], limits: Limits, special: dict[str, int]
) -> tuple[Fields, Found]:
    """Field lines the block pattern refused: obs-fold, padded names, or an error to name."""
    names: list[str] = []
    values: list[str] = []
    size = 0  # bytes of the current field, continuation lines and CRLFs included
    size_limit = limits.max_field_size
    for line in lines:
        if line[:1] in (" ", "\t"):
            # RFC 9112 §5.2: obs-fold; §2.2: whitespace before the first field.
            if not names:
                raise ProtocolError(400, "whitespace before the first header field")
            if not limits.permit_obsolete_folding:
                raise ProtocolError(400, "obsolete line folding")
            size += len(line) + 2
            if size > size_limit:
                raise ProtocolError(431, "header field too long")
            # Folded into one value with a single SP, as RFC 9112 §5.2 recommends.
            values[-1] = " ".join(filter(None, (values[-1], line.strip(" \t"))))
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(400, "header line without a colon")
        if limits.strip_header_spaces:
            name = name.rstrip(" \t")
        if not TOKEN.fullmatch(name):
            # RFC 9110 §5.1 and RFC 9112 §5.1: a token, with no whitespace before the colon.
            raise ProtocolError(400, "invalid header name")
        if limits.refuse_underscore_headers and "_" in name:
            raise ProtocolError(400, "header name with an underscore")
        if len(names) >= limits.max_header_count:
            raise ProtocolError(431, "too many header fields")
        size = len(line) + 2
        if size > size_limit:
            raise ProtocolError(431, "header field too long")
        names.append(name)
        values.append(value.strip(" \t"))
    found: Found = []
    for name, value in zip(names, values, strict=True):
        if FIELD_VALUE_BAD.search(value):
            # RFC 9110 §5.5 and RFC 9112 §2.2: no CTLs, no bare CR or LF in a value.
            raise ProtocolError(400, "invalid character in header value")
        kind = special.get(name.lower())
        if kind is not None:
            found.append((kind, value))
    return list(zip(names, values, strict=True)), found


def _build_request(
    method: str,
    target: str,
    path: str,
    query: str,
    version: str,
    headers: Fields,
    found: Found,
    limits: Limits,
    scheme: str | None,
    host: str | None,
) -> Request:
    """Interpret the fields that decide framing and the connection; build the Request."""
    length, te, conn, upgrade, host_value, expect = _special_fields(found)
    if host_value is None:
        if version == "1.1" and limits.require_host:
            raise ProtocolError(400, "missing Host header")  # RFC 9112 §3.2
    else:
        _check_host(host_value)
    content_length = None if length is None else _content_length(length, limits)
    chunked = te is not None and _is_chunked(te, version, content_length)
    keep_alive, upgrade = request_persistence(version, method, conn, upgrade)
    return Request(
        method,
        target,
        path,
        query,
        version,
        headers,
        keep_alive,
        expect and version == "1.1",  # RFC 9110 §10.1.1: ignored in HTTP/1.0
        upgrade,
        content_length,
        chunked,
        scheme,
        host,
    )


def _special_fields(
    found: Found,
) -> tuple[str | None, str | None, str | None, str | None, str | None, bool]:
    """Content-Length, Transfer-Encoding, Connection, Upgrade, Host and Expect, checked."""
    length: str | None = None
    te = conn = upgrade = host_value = None
    expect = content_type = False
    for kind, value in found:
        if kind == _CL:
            if length is not None:
                # RFC 9112 §6.3: duplicates (even equal ones) are refused outright.
                raise ProtocolError(400, "duplicate Content-Length")
            length = value
        elif kind == _TE:
            te = value if te is None else f"{te},{value}"
        elif kind == _HOST:
            if host_value is not None:
                raise ProtocolError(400, "duplicate Host")  # RFC 9110 §5.3 singleton
            host_value = value
        elif kind == _CONN:
            conn = value if conn is None else f"{conn},{value}"
        elif kind == _EXPECT:
            # RFC 9110 §10.1.1: 100-continue is the only expectation defined.
            if value.lower() != "100-continue":
                raise ProtocolError(417, "unsupported expectation")
            expect = True
        elif kind == _UPGRADE:
            upgrade = value if upgrade is None else upgrade
        elif content_type:
            raise ProtocolError(400, "duplicate Content-Type")  # RFC 9110 §5.3 singleton
        else:
            content_type = True
    return length, te, conn, upgrade, host_value, expect


def _check_host(value: str) -> None:
    """RFC 9110 §7.2: Host = uri-host [ ":" port ]; no userinfo, no whitespace."""
    if value in _HOST_CACHE:
        return
    m = HOST.fullmatch(value)
    if m is None:
        raise ProtocolError(400, "invalid Host header")
    port = m.group(1)
    if port and int(port) > 65535:
        raise ProtocolError(400, "invalid port in Host header")
    if len(_HOST_CACHE) < _HOST_CACHE_MAX:
        _HOST_CACHE.add(value)


def _content_length(value: str, limits: Limits) -> int:
    """RFC 9110 §8.6: Content-Length = 1*DIGIT; no sign, no list, at most 63 bits."""
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise ProtocolError(400, "invalid Content-Length")
    length = int(value)
    if length > _MAX_CONTENT_LENGTH:
        raise ProtocolError(400, "Content-Length too large")
    if 0 < limits.max_body < length:
        raise ProtocolError(413, "request body too large")
    return length


def _is_chunked(te: str, version: str, content_length: int | None) -> bool:
    """RFC 9112 §6.1 and §6.3: Transfer-Encoding must end with exactly one chunked."""
    codings = [c for c in (c.strip(" \t").lower() for c in te.split(",")) if c]
    for coding in codings:
        if coding not in _KNOWN_CODINGS:
            raise ProtocolError(501, "unsupported transfer coding")
    if not codings or codings[-1] != "chunked":
        raise ProtocolError(400, "Transfer-Encoding does not end with chunked")
    if codings.count("chunked") > 1:
        raise ProtocolError(400, "chunked applied more than once")
    if version == "1.0":
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if content_length is not None:
        raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
    return True
