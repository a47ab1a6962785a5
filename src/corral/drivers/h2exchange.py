"""One HTTP/2 stream seen as the gateways see an HTTP/1.1 connection's exchange: the request
body as events, the response as send_full / send_response / send_data / send_end."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from corral.gateway.ladder import ClientDisconnected
from corral.http.errors import LocalProtocolError, render_error
from corral.http.events import NEED_DATA, PAUSED, Data, EndOfMessage, Sentinel
from corral.http.grammar import FIELD_VALUE_BAD, TOKEN
from corral.http2.session import H2Session, Stream

# RFC 9110 §6.4.1: no content for these statuses, nor for a HEAD request.
_NO_BODY = frozenset((204, 304))


class Link(Protocol):
    """The driver's side: the session, its lock, and how what it queued gets written."""

    session: H2Session

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held around every use of the session."""
        ...

    def commit(self, stream: Stream | None = None) -> None:
        """Write (or have written) what the session queued; called holding ``lock``. With
        ``stream``, a blocking driver may wait there while the stream's response is held back
        by the client's window (back-pressure; the asyncio driver's channel waits in drain())."""
        ...


class StreamConn:
    """The exchange of one stream; its methods return b"": the frames go out through the link.

    Calls come from the app's thread (threaded worker) or task (asyncio worker); each takes
    the link's lock for the session's state.
    """

    __slots__ = (
        "_continued",
        "_declared",
        "_eof",
        "_head_only",
        "_sent",
        "body_suppressed",
        "link",
        "stream",
    )

    def __init__(self, link: Link, stream: Stream) -> None:
        self.link = link
        self.stream = stream
        self._eof = False
        self._continued = False
        self._head_only = False  # HEAD, 204, 304: the body is dropped
        self._declared: int | None = None  # the app's Content-Length
        self._sent = 0
        self.body_suppressed = False

    # -- the request body ----------------------------------------------------------------------

    def send_continue(self) -> bytes:
        """100 Continue once, when the client asked and nothing of the body was read."""
        stream = self.stream
        if stream.req.expect_continue and not self._continued and not stream.head_sent:
            self._continued = True
            with self.link.lock:
                self.link.session.respond(stream, 100, [], False)
                self.link.commit()
        return b""

    def next_event(self) -> Data | EndOfMessage | Sentinel:
        """The next piece of the body, its end, or NEED_DATA; raises ClientDisconnected when
        the client reset the stream or left."""
        if self._eof:
            return PAUSED
        self._continued = True  # reading started: too late for 100 Continue
        stream = self.stream
        with self.link.lock:
            data = self.link.session.take_body(stream)
            if data:
                self.link.commit()  # the window update
        if data is None:
            if stream.reset:
                raise ClientDisconnected("the client reset the stream")
            return NEED_DATA
        if not data:
            self._eof = True
            return EndOfMessage()
        return Data(data)

    def end_of_message(self) -> bool:
        """Take the next event; whether it was the request's end (see Exchange)."""
        return type(self.next_event()) is EndOfMessage

    def receive_data(self, data: bytes) -> None:
        """Nothing to do: the stream's body arrives through the session."""

    @property
    def body_complete(self) -> bool:
        """The request body was read to its end."""
        return self._eof

    @property
    def keep_alive(self) -> bool:
        """False: nothing follows on a stream, so the WSGI lifecycle does not read the rest of
        an unread body to keep it (done() refuses that body with RST_STREAM NO_ERROR)."""
        return False

    # -- the response ------------------------------------------------------------------------

    def send_full(
        self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None
    ) -> bytes:
        """Head and whole body."""
        block = self._head(status, headers)
        if self._head_only:
            self.body_suppressed = bool(body)
            body = b""
        self._check_length(len(body), final=True)
        with self.link.lock:
            session = self.link.session
            session.respond(self.stream, status, block, not body)
            if body:
                session.send(self.stream, body, True)
            self.link.commit(self.stream)
        return b""

    def send_full_parts(
        self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None
    ) -> tuple[bytes, bytes]:
        """As send_full: the frames are written here, nothing is left for the driver."""
        return self.send_full(status, headers, body, reason), b""

    def send_response(
        self, status: int, headers: list[tuple[str, str]], reason: str | None = None
    ) -> bytes:
        """The head; the body follows with send_data and send_end."""
        block = self._head(status, headers)
        with self.link.lock:
            self.link.session.respond(self.stream, status, block, False)
            self.link.commit()
        return b""

    def send_data(self, data: bytes) -> bytes:
        """A piece of the body; raises ClientDisconnected once the stream is reset."""
        if self.stream.reset:
            raise ClientDisconnected("the client reset the stream")
        if self._head_only:
            self.body_suppressed = self.body_suppressed or bool(data)
            return b""
        self._check_length(len(data), final=False)
        if data:
            with self.link.lock:
                self.link.session.send(self.stream, data, False)
                self.link.commit(self.stream)
        return b""

    def send_end(self, trailers: list[tuple[str, str]] | None = None) -> bytes:
        """The end of the body, with trailers if any."""
        self._check_length(0, final=True)
        with self.link.lock:
            session = self.link.session
            if trailers:
                session.send_trailers(self.stream, _fields(trailers))
            else:
                session.send(self.stream, b"", True)
            self.link.commit(self.stream)
        return b""

    def error_page(self, status: int, server: bytes | None) -> bytes:
        """An error response, when no head went out."""
        body = render_error(status, server=None).partition(b"\r\n\r\n")[2]
        self._head_only = self.stream.req.method == "HEAD"
        self.send_full(status, [("Content-Type", "text/plain")], body)
        return b""

    @property
    def body_allowed(self) -> bool:
        """Whether body bytes may be sent (not for HEAD, 204, 304)."""
        return not self._head_only

    def count_body_bytes(self, n: int) -> None:
        """Body bytes the transport sent by itself (sendfile): already counted by send_data."""

    def _head(self, status: int, headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
        """The app's fields as HTTP/2 wants them: lower-case names (RFC 9113 §8.2.1)."""
        self._declared, self._sent = None, 0  # an error page after a failed head starts over
        self._head_only = self.stream.req.method == "HEAD" or status in _NO_BODY
        block = _fields(headers)
        for name, value in block:
            if name == b"content-length":
                self._declared = int(value) if value.isdigit() else None
        return block

    def _check_length(self, size: int, *, final: bool) -> None:
        """The app's Content-Length is what goes out, no more and no less (RFC 9110 §8.6)."""
        declared = self._declared
        if declared is None or self._head_only:
            return
        self._sent += size
        if self._sent > declared or (final and self._sent < declared):
            raise LocalProtocolError(
                f"the app sent {self._sent} body bytes with Content-Length {declared}"
            )


def _fields(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        if not TOKEN.fullmatch(name) or FIELD_VALUE_BAD.search(value):
            raise LocalProtocolError(f"invalid response header from the app: {name!r}")
        out.append((name.lower().encode("latin-1"), value.strip().encode("latin-1")))
    return out
