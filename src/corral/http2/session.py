"""One HTTP/2 connection (RFC 9113): frames in, request streams out, responses out within
flow control, and the limits that keep a client from making it cost more than it serves."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from corral.http.errors import REASONS, ProtocolError, render_error
from corral.http.events import Request
from corral.http.httpdate import date_bytes
from corral.http.limits import Limits
from corral.http2.guard import Guard
from corral.http2.request import build_request
from corral.http2.settings import H2Settings

# A stream whose response waits for more than this much flow-control window is "blocked":
# its writer waits (the threaded worker's thread, the ASGI app's send()) until it drains.
PENDING_HIGH = 256 * 1024
# Response body moved into h2's output between two outbound() calls, at most: the driver
# writes it, then flush_all() moves more. However large the client's windows, what waits in
# user space for the socket stays about this size (the rest waits in its streams).
OUTPUT_HIGH = 256 * 1024
# The connection-level receive window we open at the start (RFC 9113 §6.9.2: it starts at
# 65,535 whatever SETTINGS say), so that uploads on several streams are not throttled by it.
CONNECTION_WINDOW = 1 << 20
# RFC 9113 §8.2.2: fields that mean something only to an HTTP/1.1 connection.
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


class H2Closed(Exception):
    """The connection is over (a GOAWAY is queued, or the peer broke the protocol): flush
    what ``outbound()`` holds, then close."""


def _nothing() -> None:
    pass


class Stream:
    """One request and its response on the connection."""

    __slots__ = (
        "app_done",
        "body",
        "complete",
        "end_pending",
        "ended",
        "head_sent",
        "id",
        "pending",
        "received",
        "req",
        "reset",
        "trailers",
        "unacked",
        "wake",
    )

    def __init__(self, stream_id: int, req: Request) -> None:
        self.id = stream_id
        self.req = req
        self.body: deque[bytes] = deque()  # request body received, not yet read by the app
        self.unacked = 0  # of it, bytes whose flow-control window is not handed back yet
        self.received = 0
        self.ended = False  # END_STREAM received: the request body is whole
        self.reset = False  # reset by either side: nothing more goes either way
        self.head_sent = False
        self.pending = bytearray()  # response body waiting for flow-control window
        self.end_pending = False  # END_STREAM goes out after `pending`
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.complete = False  # END_STREAM sent
        self.app_done = False  # the app has returned; its response may still be going out
        self.wake: Callable[[], None] = _nothing  # the driver's: body, window or reset news

    @property
    def blocked(self) -> bool:
        """The response waits on the client's flow-control window past PENDING_HIGH."""
        return len(self.pending) > PENDING_HIGH and not self.reset

    @property
    def finished(self) -> bool:
        """Both sides are done: the stream can be forgotten."""
        return self.reset or (self.complete and self.ended)


class H2Session:
    """The h2 state machine with corral's rules around it. Holds no socket and no lock: the
    driver feeds ``receive()``, writes ``outbound()``, and calls the response side from one
    thread at a time."""

    def __init__(
        self,
        settings: H2Settings,
        limits: Limits,
        server_header: bytes | None,
        log_warning: Callable[[str], None],
    ) -> None:
        # Outbound fields are ours to get right, and are: names lower-cased, values checked
        # and stripped (StreamConn._fields), the pseudo and date fields made here; h2's own
        # check of every field of every response cost about a tenth of a hello's CPU.
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = conn = H2Connection(config)
        conn.local_settings.update(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
                SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
            }
        )
        conn.local_settings.acknowledge()  # ours from the start: we enforce them at once
        # h2 read these at construction, before our settings: the HPACK bomb bound and the
        # largest frame we take.
        conn.decoder.max_header_list_size = settings.max_header_list_size
        conn.max_inbound_frame_size = settings.max_frame_size
        self.settings = settings
        self.limits = limits
        self.server = server_header
        self.guard = Guard(settings.max_concurrent_streams, settings.max_header_list_size)
        self.log_warning = log_warning
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0  # after a graceful GOAWAY: streams above it are refused
        self.going_away = False
        # The driver's socket is not keeping up (its write buffer is full): response bodies
        # wait in their streams, whatever the client's windows allow, until flush_all().
        self.paused = False
        self._queued = 0  # body bytes given to h2 since the last outbound()
        self.peer_gone = False  # the client sent GOAWAY: it opens no more streams
        self._extra = b""

    # -- the connection ------------------------------------------------------------------------

    def start(self, upgrade_settings: bytes | None = None) -> None:
        """Our preface (SETTINGS), and the larger connection window. With ``upgrade_settings``
        (the HTTP2-Settings of an ``Upgrade: h2c`` request) stream 1 is that request."""
        if upgrade_settings is None:
            self.h2.initiate_connection()
        else:
            self.h2.initiate_upgrade_connection(upgrade_settings)
        # Every stream's full window at once: streams whose apps have not read yet (queued for
        # a thread) must not take the window the running ones need for the rest of theirs.
        settings = self.settings
        window = settings.max_concurrent_streams * settings.initial_window_size
        grow = min(max(CONNECTION_WINDOW, window), 2**31 - 1) - 65535
        if grow > 0:
            self.h2.increment_flow_control_window(grow)

    @staticmethod
    def upgrade_settings_ok(value: bytes) -> bool:
        """Whether an HTTP2-Settings field decodes to valid settings (RFC 7540 §3.2.1), checked
        before we answer 101: a bad one leaves the request on HTTP/1.1."""
        try:
            H2Connection(H2Configuration(client_side=False)).initiate_upgrade_connection(value)
        except Exception:  # binascii.Error, hyperframe's and h2's errors: all mean "bad value"
            return False
        return True

    def adopt(self, stream_id: int, req: Request) -> Stream:
        """The request an ``Upgrade: h2c`` carried, as stream 1 (RFC 7540 §3.2). It is answered
        over HTTP/2, so the app is told HTTP/2 (a copy: the parser may share ``req``)."""
        req = req.copy()
        req.http_version = "2"
        stream = Stream(stream_id, req)
        stream.ended = True
        self.streams[stream_id] = stream
        return stream

    def outbound(self) -> bytes:
        """Frames to write to the client."""
        data = self.h2.data_to_send()
        self._queued = 0
        if self._extra:  # what came before our graceful GOAWAY, and the GOAWAY itself
            data, self._extra = self._extra + data, b""
        return data

    @property
    def idle(self) -> bool:
        """No stream is open."""
        return not self.streams

    def goaway(self) -> None:
        """Graceful stop: GOAWAY naming the last stream we will serve (RFC 9113 §6.8); the
        streams up to it finish. The frame is made here, not by h2, which would then refuse
        every later frame, the open streams' included."""
        if self.going_away:
            return
        self.going_away = True
        self.last_stream = self.h2.highest_inbound_stream_id
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.last_stream
        frame.error_code = ErrorCodes.NO_ERROR
        # After what h2 has queued already (our SETTINGS must open the connection, RFC 9113
        # §3.4) and before what it queues later (its own last GOAWAY).
        self._extra += self.h2.data_to_send() + frame.serialize()

    def close(self) -> None:
        """The last GOAWAY, once nothing is open (or to end the connection now)."""
        try:
            self.h2.close_connection(last_stream_id=self._last_id())
        except H2Error:
            pass  # already closed by the protocol

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Stream]:
        """Feed the client's bytes; the new requests to serve, in order. Raises H2Closed when
        the connection must end (its GOAWAY is then queued)."""
        try:
            self.guard.scan(data, now)
            events = self.h2.receive_data(data)
        except H2Error as exc:
            # h2 queued GOAWAY with the error code (PROTOCOL_ERROR, FLOW_CONTROL_ERROR,
            # FRAME_SIZE_ERROR, ...); a header block past our limits is an HPACK bomb.
            self._reset_all()
            raise H2Closed(f"protocol error: {exc}") from None
        except Guard.Exceeded as exc:
            self._calm(str(exc))
        new: list[Stream] = []
        for event in events:
            stream = self._event(event, now)
            if stream is not None:
                new.append(stream)
        if self.peer_gone:
            # The client's GOAWAY: h2 sends and takes nothing more on this connection (its
            # state is CLOSED), so the streams in flight cannot be answered here; a client
            # retries those above the id it named on a new connection.
            self._reset_all()
            raise H2Closed("the client sent GOAWAY")
        return new

    def _event(self, event: ev.Event, now: float) -> Stream | None:
        kind = type(event)
        if kind is ev.RequestReceived:
            assert isinstance(event, ev.RequestReceived)
            return self._request(event)
        if kind is ev.DataReceived:
            assert isinstance(event, ev.DataReceived)
            self._data(event, now)
        elif kind is ev.StreamEnded:
            assert isinstance(event, ev.StreamEnded)
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.ended = True
                self._forget(stream)
                stream.wake()
        elif kind is ev.StreamReset:
            assert isinstance(event, ev.StreamReset)
            self._peer_reset(event, now)
        elif kind is ev.WindowUpdated or kind is ev.RemoteSettingsChanged:
            self.flush_all()
        elif kind is ev.ConnectionTerminated:
            self.peer_gone = True
        # PING, SETTINGS, PRIORITY and unknown frames are counted by the guard's scan, before
        # h2 answers them (an ACK each).
        return None

    def _request(self, event: ev.RequestReceived) -> Stream | None:
        sid = event.stream_id or 0
        ended = event.stream_ended is not None
        if self.going_away and sid > self.last_stream:
            # Sent before the client read our GOAWAY: refused, so it may retry elsewhere.
            self._reset(sid, ErrorCodes.REFUSED_STREAM)
            return None
        try:
            req = build_request(event.headers or (), self.limits, ended)
        except ProtocolError as exc:
            self._refuse(sid, exc.status)
            if not ended:  # the answer is complete; the body that would follow is not wanted
                self._reset(sid, ErrorCodes.NO_ERROR)
            return None
        stream = Stream(sid, req)
        stream.ended = ended
        self.streams[sid] = stream
        return stream

    def _data(self, event: ev.DataReceived, now: float) -> None:
        sid = event.stream_id or 0
        size = event.flow_controlled_length or 0
        data = event.data or b""
        stream = self.streams.get(sid)
        if (
            not data
            and size
            and event.stream_ended is None
            and not self.guard.idle_frames.take(now)
        ):
            # Empty DATA frames cost us a wake-up each and carry nothing (CVE-2019-9518); the
            # guard's scan counts those without padding.
            self._calm("flood of empty DATA frames")
        if stream is None or stream.reset or not data:
            # Nobody reads it, or nothing to read (not the end of the body): the window
            # goes back now.
            self._ack(sid, size)
            return
        stream.received += len(data)
        limit = self.limits.max_body
        if limit and stream.received > limit:
            self._ack(sid, size)
            if not stream.head_sent:
                self._refuse(sid, 413)  # then NO_ERROR: the 413 stands (RFC 9113 §8.1)
            self._reset(sid, ErrorCodes.NO_ERROR if not stream.head_sent else ErrorCodes.CANCEL)
            self._drop(stream)
            return
        stream.body.append(data)
        stream.unacked += size
        stream.wake()

    def _peer_reset(self, event: ev.StreamReset, now: float) -> None:
        stream = self.streams.get(event.stream_id or 0)
        if stream is None:
            return
        stream.reset = True
        self._drop(stream)
        if not stream.complete and not self.guard.resets.take(now):
            # CVE-2023-44487: streams opened and cancelled at once cost us work each, while
            # the concurrency limit never sees them.
            self._calm("too many streams reset by the client (rapid reset)")

    def _calm(self, why: str) -> None:
        """A flood: GOAWAY ENHANCE_YOUR_CALM and the end of the connection."""
        self.log_warning(f"HTTP/2 client closed: {why} (GOAWAY ENHANCE_YOUR_CALM)")
        try:
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=self._last_id())
        except H2Error:
            pass
        self._reset_all()
        raise H2Closed(why)

    def _last_id(self) -> int:
        """The last stream id a GOAWAY may name: never above one sent before (§6.8)."""
        return self.last_stream if self.going_away else self.h2.highest_inbound_stream_id

    def _reset_all(self) -> None:
        """The connection is over: every stream counts as reset, so that its app's next read
        or write sees a disconnect rather than h2's error for a closed connection."""
        for stream in list(self.streams.values()):
            stream.reset = True
            stream.pending.clear()
            stream.wake()

    # -- the request body as the app reads it ------------------------------------------------------

    def take_body(self, stream: Stream) -> bytes | None:
        """Body bytes received and not read yet (b"" at the end); None while more must come."""
        if stream.body:
            data = b"".join(stream.body) if len(stream.body) > 1 else stream.body[0]
            stream.body.clear()
            self._ack(stream.id, stream.unacked)
            stream.unacked = 0
            return data
        return b"" if stream.ended else None

    def _ack(self, stream_id: int, size: int) -> None:
        if size:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except H2Error:
                pass  # the connection is closing

    # -- the response -------------------------------------------------------------------------

    def respond(
        self, stream: Stream, status: int, headers: list[tuple[bytes, bytes]], end: bool
    ) -> None:
        """The response head (RFC 9113 §8.3.2); ``end`` when there is no body."""
        if stream.reset:
            return
        block = [(b":status", b"%d" % status)]
        if self.server is not None:
            block.append((b"server", self.server))
        block.append((b"date", date_bytes()[6:-2]))  # the value of "Date: ...\r\n"
        block.extend((name, value) for name, value in headers if name not in _HOP_BY_HOP)
        try:
            self.h2.send_headers(stream.id, block, end_stream=end)
        except H2Error:  # closed by the client, or the whole connection is
            self._drop(stream)
            return
        stream.head_sent = stream.head_sent or status >= 200
        if end:
            self._completed(stream)

    def send(self, stream: Stream, data: bytes, end: bool) -> None:
        """Body bytes, sent as far as the client's windows allow; the rest waits in pending."""
        if stream.reset:
            return
        stream.pending += data
        stream.end_pending = stream.end_pending or end
        self._flush(stream)

    def send_trailers(self, stream: Stream, trailers: list[tuple[bytes, bytes]]) -> None:
        """Trailers end the stream once the body is out."""
        stream.trailers = trailers
        self.send(stream, b"", True)

    def _flush(self, stream: Stream) -> None:
        h2 = self.h2
        sid = stream.id
        pending = stream.pending
        if stream.reset:
            pending.clear()
            return
        try:
            while pending:
                if self.paused or self._queued >= OUTPUT_HIGH:
                    return
                room = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
                if room <= 0:
                    return
                piece = bytes(pending[:room])
                del pending[:room]
                last = not pending and stream.end_pending and stream.trailers is None
                h2.send_data(sid, piece, end_stream=last)
                self._queued += len(piece)
                if last:
                    self._completed(stream)
                    return
            if stream.end_pending and not stream.complete:
                if stream.trailers is not None:
                    h2.send_headers(sid, stream.trailers, end_stream=True)
                else:
                    h2.end_stream(sid)
                self._queued += 9  # the frame that ends the stream
                self._completed(stream)
        except H2Error:  # closed by the client, or the whole connection is
            self._drop(stream)
        finally:
            if len(pending) <= PENDING_HIGH:  # what `blocked` waits for
                stream.wake()

    def flush_all(self) -> bool:
        """The client's windows grew, or the driver wrote what it had: send what waited on
        them. True when a stream's body still waits."""
        waiting = False
        for stream in list(self.streams.values()):
            if stream.pending or (stream.end_pending and not stream.complete):
                self._flush(stream)
                waiting = waiting or bool(stream.pending)
        return waiting

    @property
    def moved(self) -> bool:
        """Frames of a response body went to h2 since the last outbound(): there is output."""
        return self._queued > 0

    def _completed(self, stream: Stream) -> None:
        stream.complete = True
        if stream.app_done:
            self._finish(stream)
        else:
            self._forget(stream)

    def done(self, stream: Stream) -> None:
        """The app is done with the stream. A response that did not end is reset (INTERNAL_
        ERROR); one that ended but still waits for the client's window goes on, and the stream
        is finished when its last frame is out."""
        stream.app_done = True
        if stream.reset or stream.complete:
            self._finish(stream)
        elif not stream.end_pending:
            self._reset(stream.id, ErrorCodes.INTERNAL_ERROR)
            self._drop(stream)

    def _finish(self, stream: Stream) -> None:
        """Both the app and the response are done: a request body not read to its end is
        refused with RST_STREAM NO_ERROR (RFC 9113 §8.1), and the stream is forgotten."""
        if not stream.reset and not stream.ended:
            self._reset(stream.id, ErrorCodes.NO_ERROR)
        self._drop(stream)

    @property
    def sending(self) -> bool:
        """A response the app has finished still waits for the client's window."""
        return any(s.end_pending and not s.complete for s in self.streams.values())

    def cancel(self, stream: Stream) -> None:
        """The server gives up on the stream (a stalled client, a timeout)."""
        if not stream.reset:
            self._reset(stream.id, ErrorCodes.CANCEL)
        self._drop(stream)

    def _refuse(self, stream_id: int, status: int) -> None:
        """An error response on a stream whose request was refused (RFC 9110 §15)."""
        body = render_error(status, server=None).partition(b"\r\n\r\n")[2]
        headers = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain"),
            (b"content-length", b"%d" % len(body)),
        ]
        assert status in REASONS
        try:
            self.h2.send_headers(stream_id, headers)
            self.h2.send_data(stream_id, body, end_stream=True)
        except H2Error:
            self._reset(stream_id, ErrorCodes.PROTOCOL_ERROR)

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except H2Error:
            pass  # already closed

    def _drop(self, stream: Stream) -> None:
        """Forget a stream that is over; the connection window of its unread body goes back.
        One that did not finish both ways counts as reset from here on."""
        stream.reset = stream.reset or not (stream.complete and stream.ended)
        if stream.unacked:
            self._ack(stream.id, stream.unacked)
            stream.unacked = 0
        stream.body.clear()
        stream.pending.clear()
        self.streams.pop(stream.id, None)
        stream.wake()

    def _forget(self, stream: Stream) -> None:
        if stream.finished:
            self.streams.pop(stream.id, None)
