"""The PROXY protocol preamble (v1 text, v2 binary) before the first request."""

from __future__ import annotations

import pytest

from corral.http.connection import Limits, ServerConnection
from corral.http.errors import ProtocolError
from corral.http.events import NEED_DATA, Request
from corral.http.proxy import V2_SIGNATURE, ProxyInfo, parse_proxy

GET = b"GET /behind-proxy HTTP/1.1\r\nHost: a\r\n\r\n"
ON = Limits(proxy_protocol=True)


def v2(command: int, family_protocol: int, addresses: bytes) -> bytes:
    return (
        V2_SIGNATURE
        + bytes([0x20 | command, family_protocol])
        + len(addresses).to_bytes(2, "big")
        + addresses
    )


V2_TCP4 = v2(
    1,
    0x11,
    bytes([192, 0, 2, 10, 198, 51, 100, 1]) + (56324).to_bytes(2, "big") + (443).to_bytes(2, "big"),
)
V2_TCP6 = v2(
    1,
    0x21,
    bytes.fromhex("20010db8000000000000000000000001")
    + bytes.fromhex("20010db8000000000000000000000002")
    + (1234).to_bytes(2, "big")
    + (80).to_bytes(2, "big")
    + b"\x04\x00\x01\x00",  # a TLV after the addresses is skipped
)


def parse_with_proxy(data: bytes, byte_by_byte: bool = False) -> tuple[ProxyInfo | None, Request]:
    conn = ServerConnection(ON)
    chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
    for chunk in chunks:
        conn.receive_data(chunk)
        event = conn.next_event()
        if isinstance(event, Request):
            return conn.proxy, event
        assert event is NEED_DATA
    raise AssertionError("no request")


@pytest.mark.parametrize("byte_by_byte", [False, True])
@pytest.mark.parametrize(
    ("preamble", "expected"),
    [
        (
            b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n",
            ProxyInfo("TCP4", "192.0.2.10", 56324, "198.51.100.1", 443, 1),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n",
            ProxyInfo("TCP6", "2001:db8::1", 1234, "2001:db8::2", 80, 1),
        ),
        (b"PROXY UNKNOWN\r\n", ProxyInfo("UNKNOWN", version=1)),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ProxyInfo("UNKNOWN", version=1)),
        (V2_TCP4, ProxyInfo("TCP4", "192.0.2.10", 56324, "198.51.100.1", 443, 2)),
        (V2_TCP6, ProxyInfo("TCP6", "2001:db8::1", 1234, "2001:db8::2", 80, 2)),
        (v2(0, 0x00, b""), ProxyInfo("LOCAL", version=2)),
        (v2(1, 0x00, b""), ProxyInfo("UNSPEC", version=2)),
    ],
)
def test_valid_preambles(preamble: bytes, expected: ProxyInfo, byte_by_byte: bool) -> None:
    proxy, request = parse_with_proxy(preamble + GET, byte_by_byte)
    assert proxy == expected
    assert request.path == "/behind-proxy"


def test_no_preamble_is_accepted_when_enabled() -> None:
    proxy, request = parse_with_proxy(GET, byte_by_byte=True)
    assert proxy is None and request.path == "/behind-proxy"


def test_leading_empty_line_still_works_with_proxy_protocol_on() -> None:
    proxy, request = parse_with_proxy(b"\r\n" + GET)
    assert proxy is None and request.path == "/behind-proxy"


@pytest.mark.parametrize(
    "preamble",
    [
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 extra\r\n",
        b"PROXY TCP4 not-an-ip 198.51.100.1 56324 443\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 56324 443\r\n",
        b"PROXY TCP6 192.0.2.10 2001:db8::2 1 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 443\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 443\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 5x 443\r\n",
        b"PROXY UDP4 192.0.2.10 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.010 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n",
        b"PROXY TCP4 \xff 198.51.100.1 1 2\r\n",
        b"PROXY " + b"x" * 120 + b"\r\n",
        v2(2, 0x11, bytes(12)),  # unknown command
        V2_SIGNATURE + bytes([0x10, 0x11, 0, 0]),  # version 1 in a v2 header
        v2(1, 0x12, bytes(12)),  # DGRAM
        v2(1, 0x31, bytes(216)),  # AF_UNIX
        v2(1, 0x11, bytes(8)),  # IPv4 block too short
        v2(1, 0x21, bytes(20)),  # IPv6 block too short
    ],
)
def test_invalid_preambles_are_400(preamble: bytes) -> None:
    conn = ServerConnection(ON)
    conn.receive_data(preamble + GET)
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 400
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_preamble_cut_short_at_eof_is_400() -> None:
    conn = ServerConnection(ON)
    conn.receive_data(b"PROXY TCP4 192.0.2.10")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 400


def test_preamble_only_before_the_first_request() -> None:
    conn = ServerConnection(ON)
    conn.receive_data(b"PROXY UNKNOWN\r\n" + GET + b"PROXY UNKNOWN\r\n" + GET)
    assert isinstance(conn.next_event(), Request)
    conn.next_event()
    conn.send_full(200, [], b"")
    conn.start_next_cycle()
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_parse_proxy_waits_for_enough_bytes() -> None:
    assert parse_proxy(b"PRO") is None
    assert parse_proxy(V2_SIGNATURE[:7]) is None
    assert parse_proxy(V2_TCP4[:20]) is None
    assert parse_proxy(b"GET / HTTP/1.1\r\n") == (None, 0)
    info, used = parse_proxy(V2_TCP4 + b"rest")  # type: ignore[misc]
    assert used == len(V2_TCP4) and info is not None and info.src_port == 56324
