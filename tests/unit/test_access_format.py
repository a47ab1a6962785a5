"""Access-log rendering: every gunicorn atom, the default line, and the JSON format."""

from __future__ import annotations

import base64
import calendar
import json
import time
from collections.abc import Iterator

import pytest

from corral.logs.access import (
    DEFAULT_FORMAT,
    ClfClock,
    FormatRenderer,
    JsonRenderer,
    basic_auth_user,
    make_renderer,
    pick_headers,
)
from corral.logs.record import AccessRecord

# 2026-11-27 13:05:01.250 UTC
START = calendar.timegm((2026, 11, 27, 13, 5, 1, 0, 0, 0)) + 0.25


@pytest.fixture(autouse=True)
def fixed_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CLF times are local: pin the zone so expected strings do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def basic(user: str, password: str = "secret") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def make_record(**overrides: object) -> AccessRecord:
    fields: dict[str, object] = {
        "remote_addr": "192.0.2.7",
        "remote_port": 51234,
        "method": "GET",
        "path": "/items/7",
        "query": "page=2&sort=asc",
        "http_version": "1.1",
        "status": 200,
        "response_length": 1234,
        "request_headers": [
            ("Host", "example.com"),
            ("User-Agent", "curl/8.5.0"),
            ("Referer", "https://example.com/list"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
        "response_headers": [("Content-Type", "text/html"), ("X-Cache", "HIT")],
        "start_time": START,
        "duration": 1.5,
        "pid": 4242,
        "environ": {"REMOTE_ADDR": "192.0.2.7", "wsgi.url_scheme": "https", "SCRIPT_NAME": ""},
    }
    fields.update(overrides)
    return AccessRecord(**fields)  # type: ignore[arg-type]


def render(fmt: str, **overrides: object) -> str:
    return FormatRenderer(fmt)(make_record(**overrides))


def test_default_format_line() -> None:
    rec = make_record(
        request_headers=[*make_record().request_headers, ("Authorization", basic("ann"))]
    )
    assert FormatRenderer(DEFAULT_FORMAT)(rec) == (
        '192.0.2.7 - ann [27/Nov/2026:13:05:02 +0000] "GET /items/7?page=2&sort=asc HTTP/1.1" '
        '200 1234 "https://example.com/list" "curl/8.5.0"'
    )


def test_default_format_without_optional_headers() -> None:
    line = render(DEFAULT_FORMAT, request_headers=[], query="", response_length=None)
    assert (
        line == '192.0.2.7 - - [27/Nov/2026:13:05:02 +0000] "GET /items/7 HTTP/1.1" 200 - "-" "-"'
    )


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "192.0.2.7"),
        ("l", "-"),
        ("u", "-"),
        ("t", "[27/Nov/2026:13:05:02 +0000]"),
        ("r", "GET /items/7?page=2&sort=asc HTTP/1.1"),
        ("m", "GET"),
        ("U", "/items/7"),
        ("q", "page=2&sort=asc"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "1234"),
        ("b", "1234"),
        ("f", "https://example.com/list"),
        ("a", "curl/8.5.0"),
        ("T", "1"),
        ("D", "1500000"),
        ("M", "1500"),
        ("L", "1.500000"),
        ("p", "<4242>"),
        ("{x-forwarded-for}i", "203.0.113.9"),
        ("{X-Forwarded-For}i", "203.0.113.9"),
        ("{x-cache}o", "HIT"),
        ("{content-type}o", "text/html"),
        ("{remote_addr}e", "192.0.2.7"),
        ("{REMOTE_ADDR}e", "192.0.2.7"),
        ("{wsgi.url_scheme}e", "https"),
        ("{script_name}e", ""),
        ("{x-missing}i", "-"),
        ("{x-missing}o", "-"),
        ("{missing}e", "-"),
        ("{x-forwarded-for}z", "-"),
        ("nope", "-"),
        ("", "-"),
    ],
)
def test_each_atom(atom: str, expected: str) -> None:
    assert render(f"%({atom})s") == expected


def test_durations_are_truncated_like_timedelta_fields() -> None:
    line = render("%(T)s %(D)s %(M)s %(L)s", duration=0.0123456)
    assert line == "0 12346 12 0.012346"


def test_numeric_atoms_keep_their_types_for_numeric_conversions() -> None:
    assert render("%(s)d %(D)08d %(B)d %(T)d", duration=0.25) == "200 00250000 1234 0"


def test_missing_length_gives_dash_for_b_and_zero_for_big_b() -> None:
    assert render("%(b)s %(B)s", response_length=None) == "- 0"
    assert render("%(b)s %(B)s", response_length=0) == "0 0"


def test_http_1_0_request_line() -> None:
    assert (
        render('"%(r)s" %(H)s', http_version="1.0", query="") == '"GET /items/7 HTTP/1.0" HTTP/1.0'
    )


def test_unix_socket_peer_without_address_renders_dash() -> None:
    assert render("%(h)s", remote_addr="") == "-"


def test_repeated_request_headers_are_joined() -> None:
    headers = [("X-Forwarded-For", "203.0.113.9"), ("x-forwarded-for", "10.0.0.1")]
    assert render("%({x-forwarded-for}i)s", request_headers=headers) == "203.0.113.9, 10.0.0.1"


def test_double_quotes_in_values_are_escaped() -> None:
    headers = [("User-Agent", 'evil" "agent'), ("Referer", '"x"')]
    line = render('"%(a)s" "%(f)s" "%(r)s"', request_headers=headers, path='/a"b', query="")
    assert line == r'"evil\" \"agent" "\"x\"" "GET /a\"b HTTP/1.1"'


def test_percent_literal_and_atom_used_twice() -> None:
    assert render("%(s)s 100%% %(s)s") == "200 100% 200"


def test_environ_atom_without_environ_is_dash() -> None:
    assert render("%({remote_addr}e)s", environ=None) == "-"


def test_environ_atom_matches_mixed_case_keys() -> None:
    assert render("%({x-custom}e)s", environ={"X-Custom": "v"}) == "v"


def test_username_on_record_wins_over_authorization() -> None:
    headers = [("Authorization", basic("from-header"))]
    assert render("%(u)s", request_headers=headers, username="app-user") == "app-user"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (basic("ann"), "ann"),
        ("basic " + base64.b64encode(b"bob:pw:with:colons").decode(), "bob"),
        ("Basic " + base64.b64encode("zoë:pw".encode()).decode(), "zoë"),
        ("Bearer abc.def", None),
        ("Basic !!!not-base64", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:pw").decode(), None),
        ("Basic " + base64.b64encode(b":pw").decode(), None),
        ("", None),
        (None, None),
    ],
)
def test_basic_auth_user(value: str | None, expected: str | None) -> None:
    assert basic_auth_user(value) == expected


def test_pick_headers_keeps_only_wanted_lowercased() -> None:
    headers = [("HOST", "a"), ("User-Agent", "b"), ("X-Other", "c")]
    assert pick_headers(headers, frozenset({"host", "user-agent"})) == {
        "host": "a",
        "user-agent": "b",
    }


@pytest.mark.parametrize("bad", ["%(h)s %s", "%(h", "%(h)y"])
def test_invalid_format_is_rejected_at_startup(bad: str) -> None:
    with pytest.raises(ValueError, match="access_log_format"):
        FormatRenderer(bad)


def test_make_renderer_selects_json() -> None:
    assert isinstance(make_renderer("json"), JsonRenderer)
    assert isinstance(make_renderer(DEFAULT_FORMAT), FormatRenderer)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", "[27/Nov/2026:13:05:01 +0000]"),
        ("EST5", "[27/Nov/2026:08:05:01 -0500]"),
        ("IST-5:30", "[27/Nov/2026:18:35:01 +0530]"),
    ],
)
def test_clf_clock_offsets(monkeypatch: pytest.MonkeyPatch, zone: str, expected: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    assert ClfClock()(START) == expected


def test_clf_clock_moves_to_the_next_second() -> None:
    clock = ClfClock()
    assert clock(START) == "[27/Nov/2026:13:05:01 +0000]"
    assert clock(START + 0.5) == "[27/Nov/2026:13:05:01 +0000]"
    assert clock(START + 1) == "[27/Nov/2026:13:05:02 +0000]"


def test_json_line_has_typed_fields() -> None:
    headers = [
        ("User-Agent", "curl/8.5.0"),
        ("Referer", "https://example.com/"),
        ("X-Request-ID", "req-123"),
        ("Authorization", basic("ann")),
    ]
    line = JsonRenderer()(make_record(request_headers=headers, duration=0.0123456))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-11-27T13:05:01.250Z",
        "remote_addr": "192.0.2.7",
        "remote_port": 51234,
        "user": "ann",
        "method": "GET",
        "path": "/items/7",
        "query": "page=2&sort=asc",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 1234,
        "duration_ms": 12.346,
        "referer": "https://example.com/",
        "user_agent": "curl/8.5.0",
        "pid": 4242,
        "request_id": "req-123",
    }


def test_json_absent_values_are_null_and_request_id_omitted() -> None:
    doc = json.loads(
        JsonRenderer()(
            make_record(request_headers=[], response_length=None, remote_port=None, query="")
        )
    )
    assert doc["bytes"] is None
    assert doc["remote_port"] is None
    assert doc["user"] is None
    assert doc["referer"] is None
    assert doc["user_agent"] is None
    assert doc["query"] == ""
    assert "request_id" not in doc


def test_json_numeric_string_port_becomes_int() -> None:
    assert json.loads(JsonRenderer()(make_record(remote_port="8080")))["remote_port"] == 8080


def test_json_escapes_control_and_non_ascii_characters() -> None:
    line = JsonRenderer()(make_record(request_headers=[("User-Agent", 'a"b\x7fé')]))
    assert line.isascii()
    assert json.loads(line)["user_agent"] == 'a"b\x7fé'
