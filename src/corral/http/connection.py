"""The sans-I/O HTTP/1.1 server connection: bytes in, events out; responses in, bytes out."""

from __future__ import annotations

from corral.http import state
from corral.http.chunked import ChunkedReader
from corral.http.errors import LocalProtocolError, ProtocolError, render_error
from corral.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Request,
    Sentinel,
)
from corral.http.grammar import CTL_MARKS
from corral.http.limits import Limits
from corral.http.proxy import ProxyInfo, parse_proxy
from corral.http.readers import parse_head_cached, request_line_pattern
from corral.http.writers import (
    build_head,
    chunk,
    last_chunk,
)

__all__ = ["Limits", "ProxyInfo", "ServerConnection"]

# Receiving side.
_R_HEAD, _R_BODY, _R_CHUNKED, _R_END, _R_PAUSED, _R_CLOSED, _R_ERROR = range(7)
# Sending side.
_S_IDLE, _S_BODY, _S_DONE = range(3)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DEFAULT_LIMITS = Limits()
# The Server line of each server_header value, checked once: a worker has one.
_SERVER_LINES: dict[bytes | None, str] = {None: ""}


def _server_line(server_header: bytes | None) -> str:
    """``Server: <value>\\r\\n`` for a valid value (no CTL: it could split the head); "" for
    None, no Server field."""
    if server_header is None:
        return ""
    if server_header.translate(CTL_MARKS).count(1):
        raise ValueError(f"invalid Server header value {server_header!r}")
    line = f"Server: {server_header.decode('latin-1')}\r\n"
    if len(_SERVER_LINES) < 16:
        _SERVER_LINES[server_header] = line
    return line


class ServerConnection:
    """One client connection, seen from the server; holds no socket.

    A cycle: feed bytes with receive_data() and call next_event() until it returns
    NEED_DATA (read more), a Request, Data pieces, then EndOfMessage; then PAUSED,
    during which the driver should not read more. Answer with send_full(), or
    send_response() + send_data() + send_end(), writing the returned bytes. When the
    request body and the response are both complete, start_next_cycle() if keep_alive,
    else close. A ProtocolError from next_event() is answered with
    ``render_error(exc.status)`` (when no response started) and the connection closed.
    """

    __slots__ = (
        "_body_read",
        "_buf",
        "_chunked",
        "_close_after",
        "_continue_sent",
        "_eof",
        "_error",
        "_framing",
        "_keep_alive",
        "_limits",
        "_line_ok",
        "_line_re",
        "_out_length",
        "_proxy_pending",
        "_remaining",
        "_request",
        "_rstate",
        "_scan",
        "_sent",
        "_server_line",
        "_skipped_crlf",
        "_sstate",
        "_switched",
        "body_suppressed",
        "proxy",
    )

    def __init__(
        self, limits: Limits = _DEFAULT_LIMITS, *, server_header: bytes | None = b"corral"
    ) -> None:
        self._limits = limits
        self._line_re = request_line_pattern(limits)
        line = _SERVER_LINES.get(server_header)
        self._server_line = line if line is not None else _server_line(server_header)
        self._buf: bytes | bytearray = b""
        self._eof = False
        self._error: ProtocolError | None = None
        self._proxy_pending = limits.proxy_protocol
        #: The PROXY protocol preamble of this connection, once parsed.
        self.proxy: ProxyInfo | None = None
        self._close_after = False
        self._switched = False
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._rstate = _R_HEAD
        self._request: Request | None = None
        self._chunked: ChunkedReader | None = None
        self._remaining = 0
        self._scan = 0  # where to resume looking for the end of the head
        self._line_ok = False  # the request line is known to be within its limit
        self._skipped_crlf = False
        self._body_read = False  # a Data event was handed out
        self._continue_sent = False
        self._sstate = _S_IDLE
        self._framing = state.NO_BODY
        self._sent = 0  # body bytes sent, counted against Content-Length
        self._out_length = 0  # the response's Content-Length
        self._keep_alive = True
        #: The app sent body bytes that this response must not carry (HEAD, 1xx, 204, 304).
        self.body_suppressed = False

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its sending side."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data() after the end of input")
        if self._rstate == _R_ERROR:
            return  # nothing more from this peer is ever parsed
        buf = self._buf
        if not buf:
            self._buf = data
        elif type(buf) is bytearray:
            buf += data  # amortised: a head trickling in is not copied again and again
        elif self._rstate == _R_BODY and len(buf) + len(data) >= self._remaining:
            # The piece that completes a body: joined once, and the body goes out as it is,
            # where a bytearray would be copied once more into the app's bytes.
            self._buf = buf + data
        else:
            grown = bytearray(buf)
            grown += data
            self._buf = grown

    def next_event(self) -> Event | Sentinel:
        """The next event, or NEED_DATA / PAUSED; raises ProtocolError on bad input."""
        rstate = self._rstate
        try:
            if rstate == _R_HEAD:
                return self._read_head()
            if rstate == _R_BODY:
                return self._read_body()
            if rstate == _R_END:
                self._rstate = _R_PAUSED
                reader = self._chunked
                return EndOfMessage(None if reader is None else reader.trailers)
            if rstate == _R_CHUNKED:
                return self._read_chunked()
            if rstate == _R_PAUSED:
                return PAUSED
            if rstate == _R_CLOSED:
                return ConnectionClosed()
        except ProtocolError as exc:
            self._error = exc
            self._rstate = _R_ERROR
            raise
        error = self._error
        assert error is not None
        raise ProtocolError(error.status, error.reason)

    def _read_head(self) -> Request | ConnectionClosed | Sentinel:
        buf = self._buf
        if self._proxy_pending:
            if not buf and not self._eof:
                return NEED_DATA
            buf = self._read_proxy(buf)
            if self._proxy_pending:
                return NEED_DATA
        if not self._skipped_crlf and buf[:1] == b"\r":
            # RFC 9112 §2.2: one empty line before a request line is ignored.
            if buf[:2] == b"\r\n":
                buf = self._buf = buf[2:]
                self._skipped_crlf = True
            elif len(buf) == 1 and not self._eof:
                return NEED_DATA
        if not buf:
            if self._eof:
                self._rstate = _R_CLOSED
                return ConnectionClosed()
            return NEED_DATA
        end = buf.find(b"\r\n\r\n", self._scan)
        if end < 0:
            return self._head_incomplete(buf)
        limits = self._limits
        try:
            if end + 4 > limits.max_header_block:
                if buf.find(b"\r\n", 0, limits.max_request_line + 2) < 0:
                    raise ProtocolError(414, "request line too long")
                raise ProtocolError(431, "request head too large")
            request = parse_head_cached(buf[:end], limits, self._line_re)
        except ProtocolError:
            # Name a bare LF as such, as when the head arrives in pieces (RFC 9112 §2.2).
            if buf.count(b"\n", 0, end) != buf.count(b"\r\n", 0, end):
                raise ProtocolError(400, "bare LF in request head") from None
            raise
        self._buf = buf[end + 4 :]
        self._request = request
        if request.chunked:
            self._chunked = ChunkedReader(limits)
            self._rstate = _R_CHUNKED
        elif request.content_length:
            self._remaining = request.content_length
            self._rstate = _R_BODY
        else:
            self._rstate = _R_END
        return request

    def _read_proxy(self, buf: bytes | bytearray) -> bytes | bytearray:
        """Consume a PROXY preamble at the start of the first request, if there is one."""
        parsed = parse_proxy(buf)
        if parsed is None:
            if not self._eof:
                return buf
            parsed = None, 0  # the peer stopped; let the head reader judge its bytes
        self._proxy_pending = False
        self.proxy, used = parsed
        want = self._limits.proxy_version
        if self.proxy is not None and want and self.proxy.version != want:
            raise ProtocolError(
                400, f"PROXY protocol v{self.proxy.version} preamble; only v{want} is accepted"
            )
        if used:
            buf = self._buf = buf[used:]
        return buf

    def _head_incomplete(self, buf: bytes | bytearray) -> Sentinel:
        """No end of head yet: enforce the limits on what came so far, then wait."""
        # RFC 9112 §2.2: lines end with CRLF. A bare LF can never end this head the
        # way we read it, so refuse it now instead of waiting for a limit.
        nl = buf.find(b"\n", self._scan)
        while nl >= 0:
            if nl == 0 or buf[nl - 1] != 0x0D:
                raise ProtocolError(400, "bare LF in request head")
            nl = buf.find(b"\n", nl + 1)
        limits = self._limits
        size = len(buf)
        if not self._line_ok:
            eol = buf.find(b"\r\n", 0, limits.max_request_line + 2)
            if eol < 0 and size >= limits.max_request_line + 2:
                raise ProtocolError(414, "request line too long")
            self._line_ok = eol >= 0
        if size > limits.max_header_block:
            raise ProtocolError(431, "request head too large")
        self._scan = max(size - 3, 0)
        if self._eof:
            raise ProtocolError(400, "connection closed before the request head was complete")
        return NEED_DATA

    def _read_body(self) -> Data | Sentinel:
        buf = self._buf
        if not buf:
            if self._eof:
                raise ProtocolError(400, "connection closed before the request body was complete")
            return NEED_DATA
        remaining = self._remaining
        if len(buf) <= remaining:
            data = buf if type(buf) is bytes else bytes(buf)
            self._buf = b""
            remaining -= len(data)
        else:
            data = bytes(buf[:remaining])
            self._buf = buf[remaining:]
            remaining = 0
        self._remaining = remaining
        if not remaining:
            self._rstate = _R_END
        self._body_read = True
        return Data(data)

    def _read_chunked(self) -> Data | EndOfMessage | Sentinel:
        reader = self._chunked
        assert reader is not None
        pieces: list[bytes] = []
        buf = self._buf
        used = reader.feed(buf, pieces)
        if used:
            self._buf = buf[used:]
        if reader.done:
            self._rstate = _R_END
        if pieces:
            self._body_read = True
            return Data(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if reader.done:
            self._rstate = _R_PAUSED
            return EndOfMessage(reader.trailers)
        if self._eof:
            raise ProtocolError(400, "connection closed before the chunked body was complete")
        return NEED_DATA

    def end_of_message(self) -> bool:
        """Take the next event and say whether it was the request's end, as ``type(next_event())
        is EndOfMessage`` (raising as it does; a body piece it takes is lost). Once per request,
        for a request without a body, so the end of one without trailers makes no event."""
        if self._rstate == _R_END and self._chunked is None:
            self._rstate = _R_PAUSED
            return True
        return type(self.next_event()) is EndOfMessage

    # ------------------------------------------------------------------ sending

    def send_continue(self) -> bytes:
        """``100 Continue``, exactly once, when the client waits for it; else ``b""``."""
        request = self._request
        if (
            request is None
            or not request.expect_continue
            or self._continue_sent
            or self._body_read
            or self._sstate != _S_IDLE
            or self._rstate not in (_R_BODY, _R_CHUNKED)
        ):
            return b""
        self._continue_sent = True
        return _CONTINUE

    def send_response(
        self, status: int, headers: list[tuple[str, str]], reason: str | None = None
    ) -> bytes:
        """The response head; the body follows with send_data() and send_end()."""
        head = self._head(status, headers, reason, None)
        self._sstate = _S_BODY
        return head

    def send_full(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        reason: str | None = None,
    ) -> bytes:
        """A whole response, head and body, in one buffer (one write)."""
        head, body = self.send_full_parts(status, headers, body, reason)
        return head + body

    def send_full_parts(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        reason: str | None = None,
    ) -> tuple[bytes, bytes]:
        """send_full's head and body, not joined (the body b"" where the response carries
        none): a driver writes them in one go without copying a large body onto its head."""
        head = self._head(status, headers, reason, len(body))
        self._sstate = _S_DONE
        if self._framing == state.NO_BODY or self._framing == state.SWITCHED:
            if body:
                self.body_suppressed = True
            return head, b""
        return head, body

    def send_data(self, data: bytes) -> bytes:
        """Frame a piece of the response body."""
        if self._sstate != _S_BODY:
            raise LocalProtocolError("send_data() outside a response body")
        framing = self._framing
        if framing == state.CHUNKED:
            return chunk(data)
        if framing == state.LENGTH:
            self._sent += len(data)
            if self._sent > self._out_length:
                self._keep_alive = False
                raise LocalProtocolError("response body longer than its Content-Length")
            return data
        if framing == state.CLOSE_DELIMITED:
            return data
        if data:
            if framing == state.SWITCHED:
                raise LocalProtocolError("send_data() after a protocol switch")
            self.body_suppressed = True
        return b""

    @property
    def body_allowed(self) -> bool:
        """Whether the response started may carry body bytes (not HEAD, 1xx, 204 or 304)."""
        return self._sstate == _S_BODY and self._framing in (
            state.CHUNKED,
            state.LENGTH,
            state.CLOSE_DELIMITED,
        )

    def count_body_bytes(self, n: int) -> None:
        """Account for ``n`` body bytes the driver sent itself (sendfile), unframed.

        Only for Content-Length and close-delimited framing, where body bytes go out as they are.
        """
        if self._framing == state.CHUNKED:
            raise LocalProtocolError("a chunked body cannot bypass send_data()")
        if self._framing == state.LENGTH:
            self._sent += n
            if self._sent > self._out_length:
                self._keep_alive = False
                raise LocalProtocolError("response body longer than its Content-Length")

    def rewind(self) -> None:
        """Forget the error of a first head that may be the start of another protocol's
        preface (HTTP/2's, RFC 9113 §3.4, arriving in parts): its bytes stay buffered, more are
        taken, and the head is parsed again from its start."""
        self._rstate = _R_HEAD
        self._error = None
        self._scan = 0

    def error_page(self, status: int, server: bytes | None) -> bytes:
        """An error response, when no response has started (the connection then closes)."""
        return render_error(status, server=server)

    def send_end(self, trailers: list[tuple[str, str]] | None = None) -> bytes:
        """End the response body: the last chunk and trailers, or nothing."""
        if self._sstate != _S_BODY:
            raise LocalProtocolError("send_end() outside a response body")
        self._sstate = _S_DONE
        if self._framing == state.CHUNKED:
            return last_chunk(trailers)
        if self._framing == state.LENGTH and self._sent != self._out_length:
            self._keep_alive = False
            raise LocalProtocolError("response body shorter than its Content-Length")
        return b""

    def _head(
        self,
        status: int,
        headers: list[tuple[str, str]],
        reason: str | None,
        full_length: int | None,
    ) -> bytes:
        """Build and check a final response head; commit the framing once it is valid."""
        request = self._require_request()
        if self._sstate != _S_IDLE:
            raise LocalProtocolError("a response was already started")
        # RFC 9110 §10.1.1: the client may still be holding its body back.
        unread_expect = (
            request.expect_continue
            and not self._continue_sent
            and not self._body_read
            and self._rstate in (_R_BODY, _R_CHUNKED)
        )
        head, framing, length, keep_alive = build_head(
            request,
            status,
            headers,
            reason,
            full_length,
            request.keep_alive and not self._close_after,
            unread_expect,
            self._server_line,
        )
        self._framing = framing
        self._out_length = length
        self._keep_alive = keep_alive
        self._switched = framing == state.SWITCHED
        return head

    def _require_request(self) -> Request:
        request = self._request
        if request is None or self._rstate == _R_ERROR:
            raise LocalProtocolError("no request to respond to")
        return request

    # ------------------------------------------------------------------ cycle

    @property
    def keep_alive(self) -> bool:
        """May this connection serve another request after the current one?"""
        if self._rstate == _R_ERROR or self._rstate == _R_CLOSED:
            return False
        if self._close_after or self._switched:
            return False
        request = self._request
        if request is None:
            return True
        if self._sstate == _S_IDLE:
            return request.keep_alive
        return self._keep_alive

    def close_after(self) -> None:
        """Close after the current exchange: the coming response says Connection: close.

        Once a response head has gone out promising keep-alive it is too late: closing after
        it anyway would race a client that reuses the connection, so the promise stands.
        """
        if self._sstate == _S_IDLE:
            self._close_after = True

    @property
    def body_complete(self) -> bool:
        """The current request's body has been read to its end."""
        return self._request is not None and self._rstate in (_R_END, _R_PAUSED)

    @property
    def switched(self) -> bool:
        """A 101 was sent: the bytes that follow are the upgraded protocol's, not HTTP."""
        return self._switched

    @property
    def buffered(self) -> bool:
        """Bytes were received and not consumed yet (the start of the next head, say)."""
        return bool(self._buf)

    @property
    def buffered_size(self) -> int:
        """How many received bytes are not consumed yet (after a head: its body so far)."""
        return len(self._buf)

    @property
    def peer_closed(self) -> bool:
        """The peer has closed its sending side (``receive_data(b"")``)."""
        return self._eof

    @property
    def trailing_data(self) -> bytes:
        """Bytes received and not consumed (after a switch: the new protocol's)."""
        return bytes(self._buf)

    def start_next_cycle(self) -> None:
        """Go on to the next request, once this request and its response are complete."""
        if self._rstate != _R_PAUSED or self._sstate != _S_DONE:
            raise LocalProtocolError("the request and the response must both be complete")
        # keep_alive, for a request and a response both complete: the response's verdict.
        if self._close_after or self._switched or not self._keep_alive:
            raise LocalProtocolError("this connection must close")
        self._reset_cycle()
