"""Limits and compatibility switches of the HTTP/1.1 parser."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """What the parser accepts; defaults follow gunicorn's settings of the same meaning."""

    #: Longest request line, without its CRLF (``limit_request_line``); over it: 414.
    max_request_line: int = 4094
    #: Most header fields in a head or trailer section (``limit_request_fields``); over it: 431.
    max_header_count: int = 100
    #: Longest header field line, CRLF included (``limit_request_field_size``); over it: 431.
    max_field_size: int = 8190
    #: Longest request head (request line and header section); over it: 431.
    max_header_block: int = 65536
    #: Longest chunk extension on one chunk-size line; over it: 400.
    max_chunk_ext: int = 4096
    #: Largest request body in bytes, 0 for no limit (``limit_request_body``); over it: 413.
    max_body: int = 0
    #: Accept obs-fold continuation lines (RFC 9112 §5.2), joining them with one SP.
    permit_obsolete_folding: bool = False
    #: Accept (and drop) whitespace between a field name and its colon.
    strip_header_spaces: bool = False
    #: Accept any token as a method, not only 3-20 characters without lower case or ``#``.
    permit_unconventional_http_method: bool = False
    #: Upper-case the method (only meaningful with unconventional methods permitted).
    casefold_http_method: bool = False
    #: An HTTP/1.1 request without Host is rejected (RFC 9112 §3.2).
    require_host: bool = True
    #: Parse a PROXY protocol v1/v2 preamble before the first request, when one is sent.
    proxy_protocol: bool = False
    #: Only this PROXY protocol version (1 or 2) is accepted; 0 accepts either.
    proxy_version: int = 0
    #: Reject header names containing ``_`` (gunicorn's ``header_map = "refuse"``).
    refuse_underscore_headers: bool = False
