"""The parsed-head memo: repeats skip the parser, and never change a verdict."""

from __future__ import annotations

import pytest

from corral.http import readers
from corral.http.connection import Limits, ServerConnection
from corral.http.errors import ProtocolError
from corral.http.events import EndOfMessage, Request
from corral.http.readers import parse_head, parse_head_cached, request_line_pattern

HEAD = b"GET /a?b=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\nX-Trace: 7"


def cached(head: bytes | bytearray, limits: Limits) -> Request:
    return parse_head_cached(head, limits, request_line_pattern(limits))


def test_a_repeated_head_gives_the_same_request_object() -> None:
    limits = Limits()
    first = cached(HEAD, limits)
    again = cached(bytes(HEAD), limits)
    assert again is first
    fresh = parse_head(HEAD, limits, request_line_pattern(limits))
    assert (again.method, again.path, again.query, again.headers) == (
        fresh.method,
        fresh.path,
        fresh.query,
        fresh.headers,
    )


def test_a_head_that_came_in_pieces_hits_as_well() -> None:
    limits = Limits()
    first = cached(HEAD, limits)
    assert cached(bytearray(HEAD), limits) is first


def test_other_limits_parse_again_and_keep_their_own_verdict() -> None:
    lenient = Limits()
    strict = Limits(max_header_count=2)
    assert cached(HEAD, lenient).headers[2] == ("X-Trace", "7")
    with pytest.raises(ProtocolError) as refused:
        cached(HEAD, strict)
    assert refused.value.status == 431
    # The refusal left the lenient entry in place: it is not remembered.
    assert readers._PARSED[HEAD][0] is lenient


def test_a_refused_head_is_refused_every_time() -> None:
    limits = Limits()
    bad = b"GET / HTTP/1.1\r\nHost: example.org\r\nBad Name: x"
    for _ in range(2):
        with pytest.raises(ProtocolError) as refused:
            cached(bad, limits)
        assert refused.value.status == 400
    assert bad not in readers._PARSED


def test_the_memo_stays_bounded_and_skips_large_heads() -> None:
    limits = Limits()
    for i in range(3 * readers._PARSED_MAX):
        cached(b"GET /%d HTTP/1.1\r\nHost: example.org" % i, limits)
        assert len(readers._PARSED) <= readers._PARSED_MAX
    large = b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Pad: " + b"p" * readers._PARSED_ITEM
    first = cached(large, limits)
    assert cached(large, limits) is not first
    assert large not in readers._PARSED


def test_a_connection_frames_each_repeat_by_its_own_head() -> None:
    """Two identical POSTs on one connection: each body is read by the shared Request."""
    post = b"POST /f HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n\r\n"
    conn = ServerConnection(Limits())
    conn.receive_data(post + b"abc" + post + b"xyz")
    requests = []
    bodies = []
    for _ in range(2):
        request = conn.next_event()
        assert isinstance(request, Request)
        requests.append(request)
        body = conn.next_event()
        bodies.append(getattr(body, "data", None))
        assert isinstance(conn.next_event(), EndOfMessage)
        conn.send_full(200, [("Content-Length", "0")], b"")
        conn.start_next_cycle()
    assert requests[0] is requests[1]
    assert bodies == [b"abc", b"xyz"]
