"""The PROXY protocol preamble, versions 1 (text) and 2 (binary), as HAProxy specifies it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from corral.http.errors import ProtocolError

__all__ = ["V2_SIGNATURE", "ProxyInfo", "parse_proxy"]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# v1: the whole line, CRLF included, is at most 107 bytes.
_V1_MAX_LINE = 107
_V2_HEADER = 16


@dataclass(frozen=True)
class ProxyInfo:
    """What the proxy said about the client connection it relays.

    ``protocol`` is ``TCP4``/``TCP6`` with all four address fields set, or ``UNKNOWN``
    (v1), ``LOCAL`` or ``UNSPEC`` (v2) with none: the peer's own address then stands.
    """

    protocol: str
    src_addr: str | None = None
    src_port: int | None = None
    dst_addr: str | None = None
    dst_port: int | None = None
    version: int = 1


def parse_proxy(buf: bytes | bytearray) -> tuple[ProxyInfo | None, int] | None:
    """Parse a preamble at the start of ``buf``.

    Returns None when more bytes are needed to tell, ``(None, 0)`` when ``buf`` does
    not start with a preamble, or ``(info, length)``. Raises ProtocolError(400) on a
    malformed preamble.
    """
    head = bytes(buf[:12])
    if head == V2_SIGNATURE:
        return _parse_v2(buf)
    if head[:6] == V1_PREFIX:
        return _parse_v1(buf)
    if V2_SIGNATURE.startswith(head) or V1_PREFIX.startswith(head):
        return None  # a prefix of either signature: wait for more
    return None, 0


def _bad(what: str) -> ProtocolError:
    return ProtocolError(400, f"invalid PROXY protocol preamble: {what}")


def _parse_v1(buf: bytes | bytearray) -> tuple[ProxyInfo, int] | None:
    """``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or ``PROXY UNKNOWN...\\r\\n``."""
    eol = buf.find(b"\r\n", 0, _V1_MAX_LINE)
    if eol < 0:
        if len(buf) >= _V1_MAX_LINE or buf.find(b"\n", 0, _V1_MAX_LINE) >= 0:
            raise _bad("line too long or not CRLF-terminated")
        return None
    try:
        parts = bytes(buf[:eol]).decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise _bad("not ASCII") from None
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyInfo("UNKNOWN", version=1), eol + 2
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise _bad("expected PROXY TCP4|TCP6 src dst sport dport")
    family = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    try:
        src, dst = str(family(parts[2])), str(family(parts[3]))
    except ValueError:
        raise _bad("invalid address") from None
    return ProxyInfo(parts[1], src, _port(parts[4]), dst, _port(parts[5]), 1), eol + 2


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise _bad("invalid port")
    return int(text)


def _parse_v2(buf: bytes | bytearray) -> tuple[ProxyInfo, int] | None:
    """The binary header: signature, version/command, family/protocol, length, addresses."""
    if len(buf) < _V2_HEADER:
        return None
    ver_cmd, fam_proto = buf[12], buf[13]
    length = int.from_bytes(buf[14:16], "big")
    if ver_cmd >> 4 != 2:
        raise _bad("unsupported version")
    command = ver_cmd & 0x0F
    if command > 1:
        raise _bad("unsupported command")
    total = _V2_HEADER + length
    if len(buf) < total:
        return None
    if command == 0:  # LOCAL: the proxy's own connection, e.g. a health check
        return ProxyInfo("LOCAL", version=2), total
    family, protocol = fam_proto >> 4, fam_proto & 0x0F
    if family == 0:
        return ProxyInfo("UNSPEC", version=2), total
    if protocol != 1:
        raise _bad("only STREAM (TCP) is supported")
    addrs = bytes(buf[_V2_HEADER:total])
    if family == 1 and length >= 12:
        src4, dst4 = ipaddress.IPv4Address(addrs[0:4]), ipaddress.IPv4Address(addrs[4:8])
        ports = addrs[8:12]
        info = ProxyInfo("TCP4", str(src4), _be16(ports, 0), str(dst4), _be16(ports, 2), 2)
    elif family == 2 and length >= 36:
        src6, dst6 = ipaddress.IPv6Address(addrs[0:16]), ipaddress.IPv6Address(addrs[16:32])
        ports = addrs[32:36]
        info = ProxyInfo("TCP6", str(src6), _be16(ports, 0), str(dst6), _be16(ports, 2), 2)
    else:
        raise _bad("unsupported address family or short address block")
    return info, total


def _be16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "big")
