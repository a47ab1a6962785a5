"""secure_scheme_headers: the environ pre-check and the scheme it decides."""

from __future__ import annotations

import pytest

from corral.gateway.forwarded import SchemeHeaders
from corral.http.errors import ProtocolError

GUNICORN_DEFAULT = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}


def test_environ_without_a_scheme_field_skips_the_scan() -> None:
    schemes = SchemeHeaders(GUNICORN_DEFAULT)
    assert not schemes.may_be_in({"HTTP_HOST": "a", "REQUEST_METHOD": "GET"})
    assert schemes.may_be_in({"HTTP_HOST": "a", "HTTP_X_FORWARDED_SSL": "on"})


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
    schemes = SchemeHeaders({"X_SCHEME": "https"})
    assert schemes.may_be_in({"HTTP_HOST": "a"})
    assert schemes.scheme([("Host", "a"), ("X_Scheme", "https")]) == "https"


def test_no_scheme_fields_configured() -> None:
    schemes = SchemeHeaders({})
    assert not schemes
    assert not schemes.may_be_in({"HTTP_X_FORWARDED_PROTO": "https"})


def test_fields_without_an_http_prefix_are_looked_for_under_their_own_keys() -> None:
    # PEP 3333 puts Content-Type and Content-Length in the environ without HTTP_.
    schemes = SchemeHeaders({"CONTENT-TYPE": "application/x-https"})
    assert schemes.may_be_in({"CONTENT_TYPE": "application/x-https"})
    assert not schemes.may_be_in({"HTTP_HOST": "a"})
    assert schemes.scheme([("Content-Type", "application/x-https")]) == "https"
