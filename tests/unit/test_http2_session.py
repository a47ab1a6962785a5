"""The HTTP/2 session without sockets: an h2 client connection talks to H2Session in memory."""

from __future__ import annotations

import contextlib

import h2.events as ev
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame

from corral.drivers.h2exchange import StreamConn
from corral.http.errors import LocalProtocolError, ProtocolError
from corral.http.limits import Limits
from corral.http2.guard import Allowance, Guard
from corral.http2.request import build_request
from corral.http2.session import OUTPUT_HIGH, PENDING_HIGH, H2Closed, H2Session, Stream
from corral.http2.settings import H2Settings

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/a?b=1"), (b":authority", b"x")]
warnings: list[str] = []


def pair(**settings: int) -> tuple[H2Connection, H2Session]:
    """A client that has sent its preface, and a server session that has taken it."""
    server = H2Session(H2Settings(**settings), Limits(), b"corral", warnings.append)
    server.start()
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.receive_data(server.outbound())
    assert server.receive(client.data_to_send(), 1.0) == []
    client.receive_data(server.outbound())
    return client, server


def exchange(client: H2Connection, server: H2Session, now: float = 1.0) -> list[Stream]:
    """Client bytes to the server; returns the new streams (and the client reads the reply)."""
    streams = server.receive(client.data_to_send(), now)
    return streams


def replies(client: H2Connection, server: H2Session) -> list[ev.Event]:
    return client.receive_data(server.outbound())


def test_a_request_becomes_the_cores_request_and_its_answer_goes_back() -> None:
    client, server = pair()
    client.send_headers(1, [*GET, (b"cookie", b"a=1"), (b"cookie", b"b=2")], end_stream=True)
    [stream] = exchange(client, server)
    req = stream.req
    assert (req.method, req.path, req.query, req.http_version) == ("GET", "/a", "b=1", "2")
    assert ("cookie", "a=1; b=2") in req.headers and ("host", "x") in req.headers
    assert stream.ended and not req.chunked and req.content_length is None
    server.respond(stream, 200, [(b"content-type", b"text/plain"), (b"connection", b"x")], False)
    server.send(stream, b"hello", True)
    events = replies(client, server)
    [head] = [e for e in events if isinstance(e, ev.ResponseReceived)]
    names = [name for name, _ in head.headers or []]
    assert b"connection" not in names and b"server" in names and b"date" in names
    assert [e.data for e in events if isinstance(e, ev.DataReceived)] == [b"hello"]
    assert any(isinstance(e, ev.StreamEnded) for e in events) and stream.complete


def test_a_body_without_length_is_read_to_end_stream_and_acked_as_read() -> None:
    client, server = pair()
    client.send_headers(1, [(b":method", b"POST"), *GET[1:]])
    [stream] = exchange(client, server)
    assert stream.req.method == "POST" and stream.req.chunked
    for _ in range(4):
        client.send_data(1, b"x" * 10000)
    exchange(client, server)
    before = client.local_flow_control_window(1)
    assert server.take_body(stream) == b"x" * 40000
    client.receive_data(server.outbound())  # the WINDOW_UPDATEs, sent once the app read it
    assert client.local_flow_control_window(1) > before
    assert server.take_body(stream) is None  # more may come
    client.end_stream(1)
    exchange(client, server)
    assert server.take_body(stream) == b""


def test_flow_control_holds_the_response_until_the_client_opens_its_window() -> None:
    client, server = pair()
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.send_headers(1, GET, end_stream=True)
    [stream] = exchange(client, server)
    replies(client, server)
    server.respond(stream, 200, [], False)
    server.send(stream, b"y" * (PENDING_HIGH + 5000), True)
    got = sum(len(e.data or b"") for e in replies(client, server) if isinstance(e, ev.DataReceived))
    assert got == 1000 and stream.blocked and not stream.complete
    client.increment_flow_control_window(10**7, stream_id=1)
    client.increment_flow_control_window(10**7)
    exchange(client, server)
    for _ in range(10):  # what a driver does: write a batch, then let the streams move more
        events = replies(client, server)
        got += sum(len(e.data or b"") for e in events if isinstance(e, ev.DataReceived))
        server.flush_all()
    assert got == PENDING_HIGH + 5000 and stream.complete and not stream.blocked


def test_graceful_goaway_lets_open_streams_finish_and_refuses_later_ones() -> None:
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    [first] = exchange(client, server)
    server.goaway()
    events = replies(client, server)
    [away] = [e for e in events if isinstance(e, ev.ConnectionTerminated)]
    assert away.last_stream_id == 1 and away.error_code == ErrorCodes.NO_ERROR
    # h2 as a client stops after GOAWAY: a second client state that did not read it sends on.
    server.respond(first, 200, [], True)
    assert first.complete
    late = H2Connection(H2Configuration(client_side=True))
    late.initiate_connection()
    late.send_headers(3, GET, end_stream=True)
    fresh = H2Session(H2Settings(), Limits(), None, warnings.append)
    fresh.start()
    fresh.goaway()
    assert fresh.receive(late.data_to_send(), 1.0) == []  # refused, never served


def test_refused_heads_get_their_status_on_the_stream() -> None:
    client, server = pair()
    client.send_headers(1, [*GET[:2], (b":path", b"/" + b"a" * 5000), GET[3]], end_stream=True)
    assert exchange(client, server) == []
    [head] = [e for e in replies(client, server) if isinstance(e, ev.ResponseReceived)]
    assert dict(head.headers or [])[b":status"] == b"414"


def test_rapid_reset_ends_the_connection_with_enhance_your_calm() -> None:
    client, server = pair(max_concurrent_streams=10)
    with pytest.raises(H2Closed, match="rapid reset"):
        for sid in range(1, 400, 2):
            client.send_headers(sid, GET, end_stream=True)
            client.reset_stream(sid)
            exchange(client, server)
    [away] = [e for e in replies(client, server) if isinstance(e, ev.ConnectionTerminated)]
    assert away.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert any("rapid reset" in line for line in warnings)


def test_a_ping_flood_is_refused_but_a_few_pings_are_answered() -> None:
    client, server = pair()
    for n in range(5):
        client.ping(b"%08d" % n)
    exchange(client, server)
    assert sum(isinstance(e, ev.PingAckReceived) for e in replies(client, server)) == 5
    with pytest.raises(H2Closed, match="PING flood"):
        for n in range(200):
            client.ping(b"%08d" % n)
            exchange(client, server, now=1.0)


def test_a_header_block_over_the_limit_is_stopped_while_continuations_arrive() -> None:
    _, server = pair(max_header_list_size=4096)
    head = HeadersFrame(1)
    head.data = b"\x82" * 1000
    frames = head.serialize()
    for _ in range(10):
        cont = ContinuationFrame(1)
        cont.data = b"\x82" * 1000
        frames += cont.serialize()
    with pytest.raises(H2Closed):
        server.receive(frames, 1.0)


def test_the_guard_follows_frames_split_anywhere() -> None:
    guard = Guard(100, 100)
    frame = HeadersFrame(1)
    frame.data = b"a" * 60
    frame.flags.add("END_HEADERS")
    data = b"P" * 24 + frame.serialize() * 3
    for byte in range(len(data)):
        guard.scan(data[byte : byte + 1], 1.0)  # one byte at a time: no block over 100
    cont = HeadersFrame(3)
    cont.data = b"a" * 60
    more = ContinuationFrame(3)
    more.data = b"a" * 60
    with pytest.raises(Guard.Exceeded):
        guard.scan(cont.serialize() + more.serialize(), 1.0)


def test_allowance_refills_with_time() -> None:
    bucket = Allowance(rate=10, burst=2)
    assert bucket.take(1.0) and bucket.take(1.0) and not bucket.take(1.0)
    assert bucket.take(1.1) and not bucket.take(1.1)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b":method", b"CONNECT"), (b":authority", b"x:1")], 501),
        ([*GET[:2], (b":path", b"a b")], 400),
        ([*GET, (b"x", b"a\x00b")], 400),
        ([*GET, (b"content-length", b"1"), (b"content-length", b"2")], 400),
        ([*GET, (b"host", b"elsewhere")], 400),  # RFC 9113 §8.3.1: not the :authority
        ([*GET, *[(b"x-%d" % n, b"v") for n in range(200)]], 431),
    ],
)
def test_build_request_refuses_what_http2_forbids(
    headers: list[tuple[bytes, bytes]], status: int
) -> None:
    with pytest.raises(ProtocolError) as info:
        build_request(headers, Limits(), True)
    assert info.value.status == status


def test_a_response_outlives_its_app_until_the_client_has_taken_it() -> None:
    client, server = pair()
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.send_headers(1, GET, end_stream=True)
    [stream] = exchange(client, server)
    replies(client, server)
    server.respond(stream, 200, [], False)
    server.send(stream, b"z" * 50_000, True)
    server.done(stream)  # the app returned; 49,000 bytes still wait for the window
    assert not stream.reset and server.sending
    client.increment_flow_control_window(10**6, stream_id=1)
    client.increment_flow_control_window(10**6)
    exchange(client, server)
    events = replies(client, server)
    body = sum(len(e.data or b"") for e in events if isinstance(e, ev.DataReceived))
    assert body == 50_000 and any(isinstance(e, ev.StreamEnded) for e in events)
    assert not any(isinstance(e, ev.StreamReset) for e in events) and not server.sending


def test_what_waits_in_user_space_for_the_socket_stays_bounded() -> None:
    client, server = pair()
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 2**30})
    client.increment_flow_control_window(2**30)
    client.send_headers(1, GET, end_stream=True)
    [stream] = exchange(client, server)
    replies(client, server)
    server.respond(stream, 200, [], False)
    server.send(stream, b"w" * (4 << 20), True)  # 4 MiB, and the client's windows allow it all
    got = 0
    for _ in range(100):
        out = server.outbound()
        assert len(out) <= OUTPUT_HIGH + 2 * 16_384  # a batch, then the driver writes it
        got += sum(
            len(e.data or b"") for e in client.receive_data(out) if isinstance(e, ev.DataReceived)
        )
        if not server.flush_all() and not server.moved:
            break
    assert got == 4 << 20 and stream.complete


class Link:
    """The driver's side of a StreamConn, without a socket."""

    def __init__(self, session: H2Session) -> None:
        self.session = session
        self.lock = contextlib.nullcontext()

    def commit(self, stream: Stream | None = None) -> None:
        pass


def test_a_body_shorter_than_its_content_length_still_gets_its_500() -> None:
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    [stream] = exchange(client, server)
    conn = StreamConn(Link(server), stream)
    with pytest.raises(LocalProtocolError):
        conn.send_full(200, [("Content-Length", "10")], b"hello")
    conn.error_page(500, None)  # the ladder's answer: a page of its own length
    [head] = [e for e in replies(client, server) if isinstance(e, ev.ResponseReceived)]
    assert dict(head.headers or [])[b":status"] == b"500"


def test_the_last_goaway_never_names_a_later_stream_than_the_first() -> None:
    client, server = pair()
    client.send_headers(1, GET, end_stream=True)
    exchange(client, server)
    server.goaway()
    client.send_headers(3, GET, end_stream=True)  # sent before the client read the GOAWAY
    exchange(client, server)
    server.close()
    out = server.outbound()
    away = [f for f in _frames(out) if isinstance(f, GoAwayFrame)]
    assert [f.last_stream_id for f in away] == [1, 1]


def _frames(raw: bytes) -> list[Frame]:
    frames, pos = [], 0
    while pos + 9 <= len(raw):
        frame, length = Frame.parse_frame_header(memoryview(raw[pos : pos + 9]))
        frame.parse_body(memoryview(raw[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames
