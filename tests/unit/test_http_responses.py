"""The sending side of ServerConnection: framing, Date/Server, validation, persistence."""

from __future__ import annotations

import re
import time

import pytest

from corral.http import httpdate, writers
from corral.http.connection import ServerConnection
from corral.http.errors import LocalProtocolError
from corral.http.events import EndOfMessage, Request
from corral.http.httpdate import DateCache, date_line, format_date

_DATE = re.compile(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


def ready(
    method: str = "GET",
    version: str = "1.1",
    extra: str = "",
    server_header: bytes | None = b"corral",
) -> ServerConnection:
    """A connection whose request (without body) has been read to its end."""
    conn = ServerConnection(server_header=server_header)
    host = "Host: a\r\n" if version == "1.1" else ""
    conn.receive_data(f"{method} / HTTP/{version}\r\n{host}{extra}\r\n".encode())
    assert isinstance(conn.next_event(), Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    return conn


def split_head(data: bytes) -> tuple[bytes, dict[str, list[str]], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep
    status, *lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(": ")
        fields.setdefault(name.lower(), []).append(value)
    return status.encode(), fields, body


# ------------------------------------------------------------------- framing


def test_send_full_is_one_buffer_with_content_length() -> None:
    conn = ready()
    out = conn.send_full(200, [("Content-Type", "text/plain")], b"Hello, world!")
    status, fields, body = split_head(out)
    assert status == b"HTTP/1.1 200 OK"
    assert fields["content-length"] == ["13"] and fields["content-type"] == ["text/plain"]
    assert "transfer-encoding" not in fields and "connection" not in fields
    assert body == b"Hello, world!"
    assert conn.keep_alive


def test_app_content_length_is_kept_and_counted() -> None:
    conn = ready()
    _, fields, _ = split_head(conn.send_response(200, [("Content-Length", "5")]))
    assert fields["content-length"] == ["5"] and "transfer-encoding" not in fields
    assert conn.send_data(b"abc") == b"abc"
    assert conn.send_data(b"de") == b"de"
    assert conn.send_end() == b""
    assert conn.keep_alive
    conn.start_next_cycle()


def test_body_longer_than_content_length_is_refused() -> None:
    conn = ready()
    conn.send_response(200, [("Content-Length", "2")])
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"abc")
    assert not conn.keep_alive


def test_body_shorter_than_content_length_closes() -> None:
    conn = ready()
    conn.send_response(200, [("Content-Length", "4")])
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    assert not conn.keep_alive


def test_send_full_with_a_mismatched_content_length_is_refused() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_full(200, [("Content-Length", "3")], b"four")
    out = conn.send_full(500, [], b"")  # nothing was committed: a 500 can still go out
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


@pytest.mark.parametrize("value", ["-1", "1.0", "0x10", "", " 5", "5, 5", "\u00b2"])
def test_invalid_app_content_length(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        ready().send_response(200, [("Content-Length", value)])


def test_duplicate_app_content_length() -> None:
    with pytest.raises(LocalProtocolError):
        ready().send_response(200, [("Content-Length", "1"), ("content-length", "1")])


def test_streamed_http11_response_is_chunked() -> None:
    conn = ready()
    _, fields, _ = split_head(conn.send_response(200, [("Content-Type", "text/plain")]))
    assert fields["transfer-encoding"] == ["chunked"] and "content-length" not in fields
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n"
    assert conn.send_data(b"") == b""
    assert conn.send_data(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"
    assert conn.send_end() == b"0\r\n\r\n"
    assert conn.keep_alive


def test_chunked_trailers() -> None:
    conn = ready()
    conn.send_response(200, [("Trailer", "X-Checksum")])
    end = conn.send_end([("X-Checksum", "abc")])
    assert end == b"0\r\nX-Checksum: abc\r\n\r\n"


def test_bad_trailers_are_refused() -> None:
    conn = ready()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_end([("X-Sum", "a\r\nInjected: yes")])


def test_app_transfer_encoding_is_replaced_by_our_framing() -> None:
    conn = ready()
    _, fields, _ = split_head(conn.send_response(200, [("Transfer-Encoding", "chunked")]))
    assert fields["transfer-encoding"] == ["chunked"]
    conn2 = ready()
    out = conn2.send_full(200, [("Transfer-Encoding", "chunked"), ("Keep-Alive", "5")], b"ab")
    _, fields2, body = split_head(out)
    assert "transfer-encoding" not in fields2 and "keep-alive" not in fields2
    assert fields2["content-length"] == ["2"] and body == b"ab"


def test_http10_streamed_response_is_close_delimited() -> None:
    conn = ready(version="1.0", extra="Connection: keep-alive\r\n")
    status, fields, _ = split_head(conn.send_response(200, []))
    assert status == b"HTTP/1.1 200 OK"
    assert fields["connection"] == ["close"]
    assert "transfer-encoding" not in fields and "content-length" not in fields
    assert conn.send_data(b"raw") == b"raw"
    assert conn.send_end() == b""
    assert not conn.keep_alive


def test_http10_keep_alive_with_a_length() -> None:
    conn = ready(version="1.0", extra="Connection: keep-alive\r\n")
    _, fields, _ = split_head(conn.send_full(200, [], b"ok"))
    assert fields["connection"] == ["keep-alive"] and fields["content-length"] == ["2"]
    assert conn.keep_alive
    conn.start_next_cycle()


def test_http10_without_keep_alive_closes() -> None:
    conn = ready(version="1.0")
    _, fields, _ = split_head(conn.send_full(200, [], b"ok"))
    assert fields["connection"] == ["close"]
    assert not conn.keep_alive


def test_head_response_has_no_body() -> None:
    conn = ready(method="HEAD")
    out = conn.send_full(200, [("Content-Type", "text/html")], b"<html>12345</html>")
    _, fields, body = split_head(out)
    assert body == b"" and fields["content-length"] == ["18"]
    assert conn.body_suppressed and conn.keep_alive


def test_head_streamed_response_drops_data() -> None:
    conn = ready(method="HEAD")
    _, fields, _ = split_head(conn.send_response(200, [("Content-Length", "100")]))
    assert fields["content-length"] == ["100"] and "transfer-encoding" not in fields
    assert not conn.body_suppressed
    assert conn.send_data(b"") == b""
    assert not conn.body_suppressed
    assert conn.send_data(b"body") == b""
    assert conn.body_suppressed
    assert conn.send_end() == b""
    assert conn.keep_alive


def test_204_drops_content_length_and_body() -> None:
    conn = ready()
    out = conn.send_full(204, [("Content-Length", "5")], b"hello")
    _, fields, body = split_head(out)
    assert "content-length" not in fields and "transfer-encoding" not in fields
    assert body == b"" and conn.body_suppressed and conn.keep_alive


def test_304_keeps_the_app_content_length_but_no_body() -> None:
    conn = ready()
    _, fields, _ = split_head(conn.send_response(304, [("Content-Length", "42")]))
    assert fields["content-length"] == ["42"] and "transfer-encoding" not in fields
    assert conn.send_data(b"x") == b""
    assert conn.body_suppressed
    conn.send_end()
    assert conn.keep_alive


def test_final_1xx_has_no_body_and_closes() -> None:
    conn = ready()
    out = conn.send_full(100, [], b"junk")
    status, fields, body = split_head(out)
    assert status == b"HTTP/1.1 100 Continue" and body == b""
    assert "content-length" not in fields and fields["connection"] == ["close"]
    assert not conn.keep_alive


def test_second_response_and_stray_body_calls_are_refused() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"early")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    conn.send_full(200, [], b"")
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"late")


def test_no_response_without_a_request() -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().send_full(200, [], b"")


# ------------------------------------------------------ status line, Date, Server


def test_status_line_reason_phrases() -> None:
    assert ready().send_full(404, [], b"").startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert ready().send_full(200, [], b"", reason="Fine").startswith(b"HTTP/1.1 200 Fine\r\n")
    assert ready().send_full(299, [], b"").startswith(b"HTTP/1.1 299 \r\n")


@pytest.mark.parametrize("status", [99, 1000, -200, "200", 200.0])
def test_invalid_status_codes(status: object) -> None:
    with pytest.raises(LocalProtocolError):
        ready().send_full(status, [], b"")  # type: ignore[arg-type]


def test_reason_with_a_line_break_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ready().send_full(200, [], b"", reason="OK\r\nSet-Cookie: evil=1")


def test_date_and_server_are_added() -> None:
    out = ready().send_full(200, [], b"")
    assert _DATE.search(out)
    _, fields, _ = split_head(out)
    assert fields["server"] == ["corral"]
    assert len(fields["date"]) == 1


def test_date_and_server_from_the_app_are_kept() -> None:
    app = [("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Server", "my-app")]
    _, fields, _ = split_head(ready().send_full(200, app, b""))
    assert fields["date"] == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    assert fields["server"] == ["my-app"]


def test_server_header_can_be_changed_or_dropped() -> None:
    _, fields, _ = split_head(ready(server_header=b"edge/2").send_full(200, [], b""))
    assert fields["server"] == ["edge/2"]
    _, fields, _ = split_head(ready(server_header=None).send_full(200, [], b""))
    assert "server" not in fields
    with pytest.raises(ValueError):
        ServerConnection(server_header=b"x\r\nInjected: 1")


def test_date_format_and_cache_per_second() -> None:
    assert format_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    cache = DateCache()
    first = cache.get(784111777)
    assert first == "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    assert cache.get(784111777) is first  # formatted once per second
    assert cache.get(784111778) == "Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n"
    now = time.time()
    assert date_line() in (f"Date: {format_date(now)}\r\n", f"Date: {format_date(now + 1)}\r\n")


# ------------------------------------------------------------ the head cache


class _Clock:
    """Stands in for the time module inside httpdate, so a test picks the second."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def gmtime(self, seconds: float) -> time.struct_time:
        return time.gmtime(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock(1_700_000_000.0)
    monkeypatch.setattr(httpdate, "time", fake)
    return fake


def test_a_repeated_head_comes_from_the_cache_with_this_seconds_date(clock: _Clock) -> None:
    fields = [("Content-Type", "text/plain"), ("X-Trace", "abc")]
    first = ready().send_full(200, fields, b"hi")
    clock.now += 61
    again = ready().send_full(200, fields, b"hi")
    assert f"Date: {format_date(clock.now - 61)}\r\n".encode() in first
    assert f"Date: {format_date(clock.now)}\r\n".encode() in again
    assert _DATE.sub(b"\r\nDATE\r\n", first) == _DATE.sub(b"\r\nDATE\r\n", again)
    assert any(key[0] == 200 and ("X-Trace", "abc") in key for key in writers._HEAD_CACHE)


def test_a_field_that_quotes_the_date_line_does_not_move_the_cut(clock: _Clock) -> None:
    # The value ends with what the Date line says, so searching the head for the Date line
    # would cut inside this field and keep the real Date line, stale, in the cached part.
    quoted = date_line()[:-2]
    fields = [("X-Quote", quoted)]
    ready().send_full(200, fields, b"")
    clock.now += 5
    _, got, _ = split_head(ready().send_full(200, fields, b""))
    assert got["x-quote"] == [quoted]
    assert got["date"] == [format_date(clock.now)]


def test_the_apps_own_date_is_kept_by_the_cache(clock: _Clock) -> None:
    fields = [("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]
    ready().send_full(200, fields, b"")
    clock.now += 5
    _, got, _ = split_head(ready().send_full(200, fields, b""))
    assert got["date"] == ["Sun, 06 Nov 1994 08:49:37 GMT"]


def test_what_the_cache_holds_does_not_let_an_equal_bad_value_through() -> None:
    ready().send_full(200, [], b"")
    with pytest.raises(LocalProtocolError):
        ready().send_full(200.0, [], b"")  # type: ignore[arg-type]  # 200.0 == 200


def test_the_head_depends_on_the_request_as_well_as_the_response() -> None:
    # Each pair differs in one request fact only, the first response of the pair cached.
    fields = [("Content-Type", "text/plain")]
    keep = "Connection: keep-alive\r\n"
    _, got11, _ = split_head(ready(extra=keep).send_response(200, fields))
    _, got10, _ = split_head(ready(version="1.0", extra=keep).send_response(200, fields))
    assert got11["transfer-encoding"] == ["chunked"]
    assert "transfer-encoding" not in got10 and got10["connection"] == ["close"]

    get = ready()
    assert get.send_full(200, fields, b"abc").endswith(b"\r\n\r\nabc")
    head = ready(method="HEAD")
    assert head.send_full(200, fields, b"abc").endswith(b"\r\n\r\n")  # RFC 9110 §9.3.2

    upgrade = "Connection: upgrade\r\nUpgrade: websocket\r\n"
    assert ready(extra=upgrade).send_response(101, fields).startswith(b"HTTP/1.1 101 ")
    with pytest.raises(LocalProtocolError):
        ready().send_response(101, fields)


def test_a_long_head_is_built_every_time_and_not_kept() -> None:
    fields = [("X-Big", "v" * writers._HEAD_CACHE_ITEM)]
    for _ in range(2):
        _, got, _ = split_head(ready().send_full(200, fields, b""))
        assert got["x-big"] == ["v" * writers._HEAD_CACHE_ITEM]
    assert not any(("X-Big", "v" * writers._HEAD_CACHE_ITEM) in key for key in writers._HEAD_CACHE)


def test_fields_given_other_than_as_a_list_of_tuples_are_still_served() -> None:
    pairs = [("Content-Type", "text/plain"), ("X-One", "1")]
    expected = _DATE.sub(b"\r\n", ready().send_full(200, pairs, b"x"))
    for fields in (iter(pairs), tuple(pairs), [list(p) for p in pairs]):
        writers._HEAD_CACHE.clear()  # built from these fields alone, not from a cached twin
        out = ready().send_full(200, fields, b"x")  # type: ignore[arg-type]
        assert _DATE.sub(b"\r\n", out) == expected


def test_a_full_cache_is_emptied_and_keeps_serving() -> None:
    for n in range(writers._HEAD_CACHE_MAX * 2 + 3):
        _, got, _ = split_head(ready().send_full(200, [("X-N", str(n))], b""))
        assert got["x-n"] == [str(n)]
        assert len(writers._HEAD_CACHE) <= writers._HEAD_CACHE_MAX


# ------------------------------------------------------------ header validation


@pytest.mark.parametrize(
    "header",
    [
        ("X-Bad", "one\r\nSet-Cookie: injected=1"),
        ("X-Bad", "one\ntwo"),
        ("X-Bad", "one\rtwo"),
        ("X-Bad", "nul\x00"),
        ("X-Bad", "bell\x07"),
        ("X-Bad", "del\x7f"),
        ("X-Bad", "snowman \u2603"),
        ("X Bad", "v"),
        ("X-Bad:", "v"),
        ("", "v"),
        ("X-Bad\r\nInjected", "v"),
        ("X-Caf\u00e9", "v"),
    ],
)
def test_invalid_app_headers_are_refused(header: tuple[str, str]) -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [header])
    # nothing was sent: the caller can still answer 500
    assert conn.send_full(500, [], b"").startswith(b"HTTP/1.1 500 ")


def test_non_str_header_parts_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ready().send_response(200, [(b"X-Bytes", "v")])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        ready().send_response(200, [("X-Int", 5)])  # type: ignore[list-item]


def test_obs_text_and_tabs_in_app_values_are_allowed() -> None:
    out = ready().send_full(200, [("X-Name", "Ren\u00e9\tB")], b"")
    assert b"\r\nX-Name: Ren\xe9\tB\r\n" in out


def test_app_connection_close_is_honoured() -> None:
    conn = ready()
    _, fields, _ = split_head(conn.send_full(200, [("Connection", "close")], b""))
    assert fields["connection"] == ["close"]
    assert not conn.keep_alive


def test_app_connection_keep_alive_does_not_override_the_client() -> None:
    conn = ready(extra="Connection: close\r\n")
    _, fields, _ = split_head(conn.send_full(200, [("Connection", "keep-alive")], b""))
    assert fields["connection"] == ["close"]
    assert not conn.keep_alive


def test_body_allowed_and_bytes_sent_by_the_driver() -> None:
    conn = ready()
    assert not conn.body_allowed  # no response yet
    conn.send_response(200, [("Content-Length", "6")])
    assert conn.body_allowed
    conn.count_body_bytes(4)  # e.g. sent with sendfile, unframed
    assert conn.send_data(b"ab") == b"ab"
    with pytest.raises(LocalProtocolError):
        conn.count_body_bytes(1)
    chunked = ready()
    chunked.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        chunked.count_body_bytes(1)
    head = ready(method="HEAD")
    head.send_response(200, [])
    assert not head.body_allowed
