"""secure_scheme_headers: the scheme the fields decide, and the WSGI gateway's pre-check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from corral.gateway.forwarded import SchemeHeaders, TrustedPeers, forwarded_client
from corral.gateway.wsgi import WSGIGateway
from corral.http.connection import ServerConnection
from corral.http.errors import ProtocolError
from corral.http.events import Request

GUNICORN_DEFAULT = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}


def gateway(
    schemes: dict[str, str], header_map: str = "drop", proxy_headers: bool = False
) -> WSGIGateway:
    cfg = SimpleNamespace(
        header_map=header_map,
        forwarded_allow_ips=["127.0.0.1"],
        proxy_headers=proxy_headers,
        secure_scheme_headers=schemes,
        forwarder_headers=[],
        sendfile=True,
    )
    return WSGIGateway(lambda env, start: [], cfg, multithread=False, log_warning=print)


def environ_for(gw: WSGIGateway, fields: bytes) -> dict[str, Any]:
    """The environ a trusted peer's GET with these header lines gets."""
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    req = conn.next_event()
    assert isinstance(req, Request)
    base, trusted = gw.connection_environ(("127.0.0.1", 5000), ("127.0.0.1", 8000))
    assert trusted
    return gw.build_environ(base, trusted, req, None)  # type: ignore[arg-type]


def scans(gw: WSGIGateway, fields: bytes) -> bool:
    """Whether building the environ scans the headers for scheme fields."""
    seen: list[object] = []
    schemes = gw._schemes
    original = schemes.scheme
    schemes.scheme = lambda headers: seen.append(headers) or original(headers)  # type: ignore[method-assign]
    try:
        environ_for(gw, fields)
    finally:
        del schemes.scheme
    return bool(seen)


def test_environ_without_a_scheme_field_skips_the_scan() -> None:
    gw = gateway(GUNICORN_DEFAULT)
    assert not scans(gw, b"Accept: */*\r\n")
    assert scans(gw, b"X-Forwarded-Ssl: on\r\n")
    assert environ_for(gw, b"X-Forwarded-Ssl: on\r\n")["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ([("Host", "a")], None),
        ([("x-forwarded-proto", "HTTPS")], "https"),
        ([("X-Forwarded-Proto", "http")], "http"),
        ([("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "https")], "https"),
    ],
)
def test_scheme_from_the_fields(headers: list[tuple[str, str]], scheme: str | None) -> None:
    assert SchemeHeaders(GUNICORN_DEFAULT).scheme(headers) == scheme


def test_fields_that_disagree_are_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        SchemeHeaders(GUNICORN_DEFAULT).scheme(
            [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")]
        )
    assert info.value.status == 400


def test_a_name_with_an_underscore_is_always_scanned() -> None:
    # header_map drops such a field from the environ, so the environ cannot tell: the scan
    # of the headers themselves must still find it.
    gw = gateway({"X_SCHEME": "https"})
    assert scans(gw, b"Accept: */*\r\n")
    env = environ_for(gw, b"X_Scheme: https\r\n")
    assert "HTTP_X_SCHEME" not in env
    assert env["wsgi.url_scheme"] == "https"


def test_no_scheme_fields_configured() -> None:
    gw = gateway({})
    assert not gw._schemes
    assert not scans(gw, b"X-Forwarded-Proto: https\r\n")
    assert environ_for(gw, b"X-Forwarded-Proto: https\r\n")["wsgi.url_scheme"] == "http"


def test_fields_without_an_http_prefix_are_looked_for_under_their_own_keys() -> None:
    # PEP 3333 puts Content-Type and Content-Length in the environ without HTTP_.
    gw = gateway({"CONTENT-TYPE": "application/x-https"})
    assert not scans(gw, b"Accept: */*\r\n")
    env = environ_for(gw, b"Content-Type: application/x-https\r\n")
    assert env["CONTENT_TYPE"] == "application/x-https"
    assert env["wsgi.url_scheme"] == "https"


TRUSTED = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("fields", "client"),
    [
        ([("X-Forwarded-For", "203.0.113.9")], "203.0.113.9"),
        # The client may write anything left of the first hop we trust: read from the right.
        ([("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.2.3")], "203.0.113.9"),
        ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9")], "203.0.113.9"),
        ([("X-Forwarded-For", "10.0.0.5, 10.1.2.3")], "10.0.0.5"),  # every hop ours: the first
        ([("Forwarded", 'for="[2001:db8::1]:4711";proto=https, for=10.1.2.3')], "2001:db8::1"),
        ([("Forwarded", "for=192.0.2.60:8080"), ("X-Forwarded-For", "6.6.6.6")], "192.0.2.60"),
        ([("Forwarded", "for=unknown")], None),
        ([("X-Forwarded-For", "not-an-address")], None),
        ([], None),
    ],
)
def test_forwarded_client(fields: list[tuple[str, str]], client: str | None) -> None:
    assert forwarded_client(fields, TRUSTED) == client


@pytest.mark.parametrize(("on", "addr"), [(False, "127.0.0.1"), (True, "203.0.113.9")])
def test_proxy_headers_sets_remote_addr_only_when_asked(on: bool, addr: str) -> None:
    env = environ_for(gateway({}, proxy_headers=on), b"X-Forwarded-For: 203.0.113.9\r\n")
    assert env["REMOTE_ADDR"] == addr


def test_trusted_peers_answer_the_same_from_their_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("corral.gateway.forwarded.TRUSTS_MEMO_MAX", 3)
    peers = TrustedPeers(["127.0.0.1", "10.0.0.0/8", "::1"])
    asked = ["127.0.0.1", "10.1.2.3", "192.0.2.7", "::1", "2001:db8::1", "not-an-ip", ""]
    expected = [True, True, False, True, False, False, True]
    # Twice over, past the memo's size: answers computed, remembered, and after it empties.
    for _ in range(2):
        assert [peers.trusts(addr) for addr in asked] == expected
    assert len(peers._answers) <= 3
