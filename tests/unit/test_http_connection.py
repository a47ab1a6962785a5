"""The receiving side of ServerConnection: cycles, limits, EOF, errors, 100-continue, upgrades."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import corral.http
from corral.http.connection import Limits, ServerConnection
from corral.http.errors import LocalProtocolError, ProtocolError
from corral.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)

GET = b"GET /%s HTTP/1.1\r\nHost: example.org\r\n\r\n"


def connection(data: bytes = b"", limits: Limits | None = None) -> ServerConnection:
    conn = ServerConnection(limits or Limits())
    if data:
        conn.receive_data(data)
    return conn


def request_of(conn: ServerConnection) -> Request:
    event = conn.next_event()
    assert isinstance(event, Request), event
    return event


def finish(conn: ServerConnection) -> list[object]:
    """Read up to EndOfMessage; return the events."""
    events: list[object] = []
    for _ in range(100):
        event = conn.next_event()
        events.append(event)
        if isinstance(event, EndOfMessage):
            return events
        assert event is not NEED_DATA
    raise AssertionError("no EndOfMessage")


def test_http_package_imports_no_io_modules() -> None:
    """The core is sans-I/O: no socket, select, selectors, threading, asyncio or ssl."""
    forbidden = {"socket", "select", "selectors", "threading", "asyncio", "ssl"}
    package = Path(corral.http.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_need_data_then_request_then_end_then_paused() -> None:
    conn = connection()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a\r\n")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n")
    request = request_of(conn)
    assert (request.method, request.path, request.content_length) == ("GET", "/x", None)
    assert conn.body_complete
    end = conn.next_event()
    assert isinstance(end, EndOfMessage) and end.trailers == []
    assert conn.next_event() is PAUSED
    assert conn.next_event() is PAUSED


def test_pipelined_requests_wait_for_the_next_cycle() -> None:
    conn = connection(GET % b"one" + GET % b"two")
    assert request_of(conn).path == "/one"
    finish_events = [conn.next_event(), conn.next_event()]
    assert isinstance(finish_events[0], EndOfMessage) and finish_events[1] is PAUSED
    assert conn.trailing_data == GET % b"two"
    conn.send_full(200, [], b"1")
    conn.start_next_cycle()
    assert request_of(conn).path == "/two"


def test_end_of_message_takes_the_end_where_next_event_gives_it() -> None:
    conn = connection(GET % b"one" + GET % b"two")
    request_of(conn)
    assert conn.end_of_message()
    assert conn.next_event() is PAUSED
    conn.send_full(200, [], b"1")
    conn.start_next_cycle()
    assert request_of(conn).path == "/two"
    # A body first: its bytes are taken (False), then its end.
    conn = connection(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
    request_of(conn)
    assert not conn.end_of_message()
    assert conn.end_of_message()
    assert conn.body_complete and conn.next_event() is PAUSED
    # A chunked body's end carries trailers: taken through next_event.
    conn = connection(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
    request_of(conn)
    assert not conn.end_of_message()  # NEED_DATA: the trailer section is still to come
    conn.receive_data(b"X-Sum: 0\r\n\r\n")
    assert conn.end_of_message()
    assert conn.next_event() is PAUSED
    # A broken body raises as next_event does.
    conn = connection(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    request_of(conn)
    with pytest.raises(ProtocolError):
        conn.end_of_message()


def test_start_next_cycle_needs_request_and_response_done() -> None:
    conn = connection(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    request_of(conn)
    conn.send_full(200, [], b"")
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # the body is not read yet
    conn.receive_data(b"ok")
    assert finish(conn)[0].data == b"ok"  # type: ignore[attr-defined]
    conn.start_next_cycle()
    conn.receive_data(GET % b"next")
    request_of(conn)
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # no response yet
    conn.next_event()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # response body not ended
    conn.send_end()
    conn.start_next_cycle()


def test_start_next_cycle_refused_when_closing() -> None:
    conn = connection(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    request_of(conn)
    finish(conn)
    conn.send_full(200, [], b"")
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError, match="must close"):
        conn.start_next_cycle()


def test_content_length_body_in_one_event_when_buffered() -> None:
    conn = connection(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
    request_of(conn)
    events = finish(conn)
    assert [type(e) for e in events] == [Data, EndOfMessage]
    assert events[0].data == b"0123456789"  # type: ignore[attr-defined]


def test_content_length_body_in_pieces_and_the_next_request_kept() -> None:
    conn = connection(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab")
    request_of(conn)
    assert conn.next_event().data == b"ab"  # type: ignore[union-attr]
    assert conn.next_event() is NEED_DATA
    assert not conn.body_complete
    conn.receive_data(b"cdef" + GET % b"next")
    assert conn.next_event().data == b"cdef"  # type: ignore[union-attr]
    assert conn.body_complete
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.trailing_data == GET % b"next"


@pytest.mark.parametrize("pieces", [[b"ab", b"cdef"], [b"ab", b"cd", b"ef"], [b"a", b"bcdef"]])
def test_a_body_gathered_before_it_is_read_is_one_event(pieces: list[bytes]) -> None:
    # As the threaded worker gathers a small body: every piece is received before the first
    # read, and the last piece may carry the next request too.
    conn = connection(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n" + pieces[0])
    request_of(conn)
    for piece in pieces[1:-1]:
        conn.receive_data(piece)
    conn.receive_data(pieces[-1] + GET % b"next")
    data = conn.next_event()
    assert isinstance(data, Data) and type(data.data) is bytes and data.data == b"abcdef"
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.trailing_data == GET % b"next"


def test_chunked_body_joined_per_read_and_trailers() -> None:
    conn = connection(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n1"
    )
    request = request_of(conn)
    assert request.chunked and request.content_length is None
    assert conn.next_event().data == b"abcde"  # type: ignore[union-attr]
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\nf\r\n0\r\nX-Sum: 6\r\n\r\n")
    assert conn.next_event().data == b"f"  # type: ignore[union-attr]
    end = conn.next_event()
    assert isinstance(end, EndOfMessage) and end.trailers == [("X-Sum", "6")]


def test_eof_at_a_message_boundary_is_connection_closed() -> None:
    conn = connection(GET % b"")
    request_of(conn)
    finish(conn)
    conn.send_full(204, [], b"")
    conn.start_next_cycle()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert not conn.keep_alive


def test_eof_before_anything_is_connection_closed() -> None:
    conn = connection()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_eof_after_the_one_empty_line_is_connection_closed() -> None:
    conn = connection(b"\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_eof_inside_a_head_is_400() -> None:
    conn = connection(b"GET / HTTP/1.1\r\nHo")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 400


def test_eof_inside_a_body_is_400() -> None:
    conn = connection(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    request_of(conn)
    assert conn.next_event().data == b"ab"  # type: ignore[union-attr]
    conn.receive_data(b"")
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 400


def test_receive_data_after_eof_is_a_bug() -> None:
    conn = connection()
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"GET")


def test_errors_are_sticky_and_later_bytes_never_parsed() -> None:
    conn = connection(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        conn.next_event()
    assert first.value.status == 400
    conn.receive_data(GET % b"valid")
    for _ in range(3):
        with pytest.raises(ProtocolError) as again:
            conn.next_event()
        assert (again.value.status, again.value.reason) == (400, first.value.reason)
    assert not conn.keep_alive


def test_error_after_a_request_on_a_kept_alive_connection() -> None:
    conn = connection(GET % b"ok" + b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    request_of(conn)
    finish(conn)
    conn.send_full(200, [], b"")
    conn.start_next_cycle()
    with pytest.raises(ProtocolError):
        conn.next_event()
    with pytest.raises(ProtocolError):
        conn.next_event()


# -------------------------------------------------------------- default limits


def _line(length: int) -> bytes:
    prefix = b"GET /"
    suffix = b" HTTP/1.1"
    return prefix + b"a" * (length - len(prefix) - len(suffix)) + suffix


def test_default_request_line_limit_is_4094() -> None:
    ok = connection(_line(4094) + b"\r\nHost: a\r\n\r\n")
    assert len(_line(4094)) == 4094
    assert len(request_of(ok).target) == 4094 - len("GET  HTTP/1.1")
    for data in (_line(4095) + b"\r\nHost: a\r\n\r\n", _line(4095)[:-1] + b"a" * 10):
        with pytest.raises(ProtocolError) as err:
            connection(data).next_event()
        assert err.value.status == 414


def test_default_header_count_limit_is_100() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(99))
    ok = connection(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert len(request_of(ok).headers) == 100
    over = connection(b"GET / HTTP/1.1\r\nHost: a\r\nX-Last: 1\r\n" + fields + b"\r\n")
    with pytest.raises(ProtocolError) as err:
        over.next_event()
    assert err.value.status == 431


def test_default_field_size_limit_is_8190_with_crlf() -> None:
    value = b"v" * (8190 - len(b"X-Big: ") - 2)
    ok = connection(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + value + b"\r\n\r\n")
    assert request_of(ok).headers[1][1] == value.decode()
    over = connection(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + value + b"v\r\n\r\n")
    with pytest.raises(ProtocolError) as err:
        over.next_event()
    assert err.value.status == 431


def test_default_head_limit_is_64_kib() -> None:
    fields = b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 8000) for i in range(9))
    with pytest.raises(ProtocolError) as err:
        connection(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields).next_event()
    assert err.value.status == 431


def test_head_limit_checked_while_waiting() -> None:
    conn = connection(b"GET / HTTP/1.1\r\nHost: a\r\n", Limits(max_header_block=100))
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"X-Filler: " + b"f" * 100)
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 431


def test_bare_lf_refused_before_the_head_ends() -> None:
    conn = connection(b"GET / HTTP/1.1\r\nHost: a\nX: ")
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 400


def test_trickled_head_is_parsed() -> None:
    data = b"GET /slow?q=1 HTTP/1.1\r\nHost: a\r\nX-Data: " + b"z" * 3000 + b"\r\n\r\n"
    conn = connection()
    for byte in data[:-1]:
        conn.receive_data(bytes([byte]))
        assert conn.next_event() is NEED_DATA
    conn.receive_data(data[-1:])
    assert request_of(conn).headers[1] == ("X-Data", "z" * 3000)


def test_chunked_body_limit_checked_while_streaming() -> None:
    conn = connection(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n",
        Limits(max_body=6),
    )
    request_of(conn)
    assert conn.next_event().data == b"abcd"  # type: ignore[union-attr]
    conn.receive_data(b"4\r\nefgh\r\n")
    with pytest.raises(ProtocolError) as err:
        conn.next_event()
    assert err.value.status == 413


# ----------------------------------------------------------- keep-alive rules


@pytest.mark.parametrize(
    ("version", "connection_field", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", "close", False),
        ("1.1", "Keep-Alive", True),
        ("1.1", "keep-alive, close", False),
        ("1.0", None, False),
        ("1.0", "keep-alive", True),
        ("1.0", "close", False),
    ],
)
def test_request_keep_alive(version: str, connection_field: str | None, keep_alive: bool) -> None:
    head = f"GET / HTTP/{version}\r\nHost: a\r\n"
    if connection_field:
        head += f"Connection: {connection_field}\r\n"
    conn = connection((head + "\r\n").encode())
    assert request_of(conn).keep_alive is keep_alive
    assert conn.keep_alive is keep_alive
    finish(conn)
    conn.send_full(200, [], b"x")
    assert conn.keep_alive is keep_alive


def test_close_after_forces_connection_close() -> None:
    conn = connection(GET % b"")
    request_of(conn)
    conn.close_after()
    assert not conn.keep_alive
    head = conn.send_full(200, [], b"")
    assert b"\r\nConnection: close\r\n" in head


def test_connect_closes_after_its_response() -> None:
    conn = connection(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
    request = request_of(conn)
    assert (request.path, request.keep_alive) == ("example.org:443", False)
    finish(conn)
    assert b"Connection: close" in conn.send_full(200, [], b"")
    assert not conn.keep_alive


# ----------------------------------------------------------- 100-continue

EXPECTING = b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"


def test_continue_sent_once_before_the_body() -> None:
    conn = connection(EXPECTING)
    assert request_of(conn).expect_continue
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_continue() == b""
    conn.receive_data(b"abc")
    assert finish(conn)[0].data == b"abc"  # type: ignore[attr-defined]
    conn.send_full(200, [], b"")
    assert conn.keep_alive


def test_continue_not_sent_once_the_body_was_read() -> None:
    conn = connection(EXPECTING + b"ab")
    request_of(conn)
    assert conn.next_event().data == b"ab"  # type: ignore[union-attr]
    assert conn.send_continue() == b""


def test_continue_not_sent_without_expect_or_body_or_on_http10() -> None:
    plain = connection(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    request_of(plain)
    assert plain.send_continue() == b""
    empty = connection(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
    request_of(empty)
    assert empty.send_continue() == b""
    old = connection(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert not request_of(old).expect_continue
    assert old.send_continue() == b""


def test_continue_not_sent_after_the_response_started() -> None:
    conn = connection(EXPECTING)
    request_of(conn)
    conn.send_response(413, [("Content-Length", "0")])
    assert conn.send_continue() == b""


def test_final_response_without_continue_closes() -> None:
    """The client may or may not send the body it held back: the connection must close."""
    conn = connection(EXPECTING)
    request_of(conn)
    head = conn.send_full(417, [], b"no")
    assert b"Connection: close" in head
    assert not conn.keep_alive


# ----------------------------------------------------------- upgrade hand-off

UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
FRAME = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"


def test_upgrade_hands_off_the_trailing_bytes() -> None:
    conn = connection(UPGRADE + FRAME)
    assert request_of(conn).upgrade == "websocket"
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.next_event() is PAUSED
    head = conn.send_response(
        101, [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nConnection: upgrade\r\n" in head and b"\r\nUpgrade: websocket\r\n" in head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert conn.switched and not conn.keep_alive
    assert conn.trailing_data == FRAME
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_declined_upgrade_continues_as_http() -> None:
    conn = connection(UPGRADE + GET % b"after")
    request_of(conn)
    finish(conn)
    conn.send_full(426, [("Upgrade", "websocket")], b"")
    assert conn.keep_alive and not conn.switched
    conn.start_next_cycle()
    assert request_of(conn).path == "/after"


def test_101_without_an_upgrade_request_is_refused() -> None:
    conn = connection(GET % b"")
    request_of(conn)
    with pytest.raises(LocalProtocolError):
        conn.send_response(101, [("Upgrade", "websocket")])


def test_field_name_memos_stay_bounded() -> None:
    """Clients and apps choose field names: the per-process memos must not grow without end."""
    from corral.http import readers, writers

    for batch in range(30):
        fields = b"".join(b"X-Unique-%d-%d: v\r\n" % (batch, i) for i in range(90))
        conn = connection(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
        assert len(request_of(conn).headers) == 91
        finish(conn)
        conn.send_full(200, [(f"X-Out-{batch}-{i}", "v") for i in range(90)], b"")
    assert len(readers._NAME_CACHE) <= readers._NAME_CACHE_MAX
    assert len(writers._NAME_CACHE) <= writers._NAME_CACHE_MAX


def test_host_check_is_remembered_only_for_valid_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # Valid hosts are remembered (bounded); a bad one is checked every time, however many
    # good ones came first, and a port out of range is refused after the same name passed.
    from corral.http import readers

    monkeypatch.setattr(readers, "_HOST_CACHE", set())
    bad_hosts = (b"a b", b"user@host", b"h1:99999", b"[::1")

    def refuse_each_twice() -> None:
        for bad in bad_hosts * 2:
            conn = connection(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n")
            with pytest.raises(ProtocolError) as err:
                conn.next_event()
            assert err.value.status == 400
            assert bad.decode() not in readers._HOST_CACHE

    refuse_each_twice()  # while the cache has room
    for n in range(300):
        assert request_of(connection(b"GET / HTTP/1.1\r\nHost: h%d:80\r\n\r\n" % n)).path == "/"
    assert "h0:80" in readers._HOST_CACHE
    assert len(readers._HOST_CACHE) == readers._HOST_CACHE_MAX
    refuse_each_twice()  # and once it is full
