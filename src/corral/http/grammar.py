"""RFC 9110/9112 grammar as compiled regular expressions, each citing its section."""

from __future__ import annotations

import re

__all__ = [
    "ABSOLUTE_FORM",
    "AUTHORITY",
    "AUTHORITY_FORM",
    "CHUNK_LINE",
    "CONVENTIONAL_METHOD",
    "CTL_MARKS",
    "FAST_REQUEST_LINE",
    "FAST_REQUEST_LINE_ANY_METHOD",
    "FIELD_VALUE_BAD",
    "HOST",
    "HTTP_VERSION",
    "REQUEST_TARGET",
    "TOKEN",
]

# The request head is decoded as latin-1 before it is matched, so every byte is one
# character and these str patterns speak about bytes.

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#   "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA;  token = 1*tchar
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN = re.compile(_TCHAR + "+")

# RFC 9110 §9.1: method = token. gunicorn further refuses lower case and "#" and
# bounds the length to 3..20 unless permit_unconventional_http_method is set; every
# IANA-registered method passes.
_CONVENTIONAL = r"[!$%&'*+\-.^_`|~0-9A-Z]{3,20}"
CONVENTIONAL_METHOD = re.compile(_CONVENTIONAL)

# RFC 9112 §3.2 with RFC 3986 §2: a request-target is printable ASCII; anything
# else (CTLs, SP, DEL, bytes >= 0x80) must have been percent-encoded.
_TARGET_CHAR = r"[\x21-\x7e]"
REQUEST_TARGET = re.compile(_TARGET_CHAR + "+")

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version, exactly one SP
# between the parts. The fast path covers origin-form (§3.2.1) with HTTP/1.0 or 1.1;
# every other line goes through the slow path, which also names the error.
FAST_REQUEST_LINE = re.compile(rf"({_CONVENTIONAL}) (/{_TARGET_CHAR}*) HTTP/1\.([01])")
FAST_REQUEST_LINE_ANY_METHOD = re.compile(rf"({_TCHAR}+) (/{_TARGET_CHAR}*) HTTP/1\.([01])")

# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT (case-sensitive).
HTTP_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")

# RFC 3986 §3.2.2: host = IP-literal / IPv4address / reg-name, where
#   IP-literal = "[" ( IPv6address / IPvFuture ) "]"
#   reg-name = *( unreserved / pct-encoded / sub-delims )  (IPv4address is a reg-name)
_IP_LITERAL = r"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
# (written as an unrolled loop: one character class, then pct-encoded runs, which the
# regex engine matches far faster than an alternation per character)
_REG_CHAR = r"[A-Za-z0-9\-._~!$&'()*+,;=]"
_REG_NAME = rf"{_REG_CHAR}*(?:%[0-9A-Fa-f]{{2}}{_REG_CHAR}*)*"
_URI_HOST = rf"(?:{_IP_LITERAL}|{_REG_NAME})"
# RFC 3986 §3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
_USERINFO = r"[A-Za-z0-9\-._~!$&'()*+,;=:]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9\-._~!$&'()*+,;=:]*)*"

# RFC 9110 §7.2: Host = uri-host [ ":" port ], port = *DIGIT (RFC 3986 §3.2.3).
# No userinfo, no whitespace. The port (group 1) is range-checked by the reader.
HOST = re.compile(rf"{_URI_HOST}(?::([0-9]{{0,5}}))?")

# RFC 9112 §3.2.3: authority-form = uri-host ":" port (CONNECT only).
AUTHORITY_FORM = re.compile(rf"{_URI_HOST}:[0-9]{{1,5}}")

# RFC 9112 §3.2.2: absolute-form = absolute-URI (RFC 3986 §4.3), http or https only
# here. Groups: scheme, authority, path, query. A fragment is tolerated and dropped,
# as for origin-form.
ABSOLUTE_FORM = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?")
# RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ]; group 1 is host[:port].
AUTHORITY = re.compile(rf"(?:{_USERINFO}@)?({_URI_HOST}(?::[0-9]{{0,5}})?)")

# RFC 9110 §5.5: a field value must not hold CTLs other than HTAB (NUL, CR, LF, BEL,
# DEL, ...); used line by line once the fast check of a section failed.
FIELD_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9110 §5.5: each CTL but HTAB maps to 1, every other byte to 0. So
# ``data.translate(CTL_MARKS).count(1)`` counts the CTLs: for a header section, exactly the
# CRLFs between its lines when no field holds a CR, LF, NUL or other control (received: a
# 400; sent by an app: it would split the response). A 256-byte table is built once; a
# ``translate(None, deletechars)`` would rebuild its own on every call, twice the cost.
CTL_MARKS = bytes(0 if b == 0x09 or 0x20 <= b != 0x7F else 1 for b in range(256))

# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF, where
#   chunk-size = 1*HEXDIG (bounded here to 16 digits, 64 bits)
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string (RFC 9110 §5.6.4), no bare CR or LF.
# BWS is allowed only before a ";", so "0 " alone is not a chunk size. Matched on the
# raw bytes of the line without its CRLF; group 1 is the size.
_BTCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _BTCHAR
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _BTCHAR
    + rb"|"
    + _QUOTED_STRING
    + rb"))?)*"
)
