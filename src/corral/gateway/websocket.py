"""ASGI WebSocket sessions over RFC 6455: whole data frames read here, the rest by wsproto."""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from corral.gateway.asgi import Message, app_headers
from corral.gateway.ladder import ClientDisconnected
from corral.gateway.ws_frames import FIN_BINARY, FIN_TEXT, data_frame, next_frame, unmask
from corral.gateway.ws_handshake import HandshakeError, accept_headers, check_handshake
from corral.http.connection import ServerConnection
from corral.http.errors import LocalProtocolError, render_error

if TYPE_CHECKING:
    import asyncio

    from wsproto.connection import Connection
    from wsproto.events import CloseConnection

    from corral.gateway.asgi import ASGIGateway, Peer
    from corral.http.events import Request

# Close codes (RFC 6455 §7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, ABNORMAL = 1000, 1001, 1002, 1006
BAD_DATA, TOO_BIG, INTERNAL_ERROR = 1007, 1009, 1011
# Messages queued for an app that does not receive: past this, stop reading from the peer.
QUEUE_HIGH = 1 << 20
# How long we wait for the peer's close frame after sending ours, before closing TCP.
CLOSE_TIMEOUT = 5.0
# Bytes a client may send before the handshake is answered (it should send none); past
# this, reading stops until the app accepts or refuses.
EARLY_LIMIT = 65536

_CONNECTING, _OPEN, _CLOSING, _CLOSED, _REJECTED = range(5)


def engine_available() -> bool:
    """Whether wsproto, the optional frame engine (``corral[websocket]``), can be imported."""
    try:
        import wsproto.connection  # noqa: F401
    except ImportError:
        return False
    return True


class _Engine:
    """wsproto's names, imported once (wsproto is an optional extra, so not at import time)."""

    __slots__ = ("Connection", "ConnectionType", "close_event", "closing", "messages", "ping")

    def __init__(self) -> None:
        from wsproto.connection import Connection, ConnectionState, ConnectionType
        from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

        self.Connection = Connection
        self.ConnectionType = ConnectionType
        self.closing = (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)
        self.close_event = CloseConnection
        self.messages = (TextMessage, BytesMessage)
        self.ping = Ping


@functools.cache
def _engine() -> _Engine:
    return _Engine()


@dataclass(frozen=True)
class WSSettings:
    """The WebSocket settings of one worker."""

    max_message_size: int
    ping_interval: float
    ping_timeout: float


class WSChannel(Protocol):
    """What a WebSocket session needs from the driver."""

    conn: ServerConnection
    write_blocked: bool  # drain() would wait or raise: checked before awaiting it

    @property
    def disconnected(self) -> bool:
        """The transport is gone."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer; raises ClientDisconnected once the connection is gone."""
        ...

    async def drain(self) -> None:
        """Wait while the peer reads more slowly than we write."""
        ...

    def pause_reading(self) -> None:
        """Stop taking bytes from the peer until resume_reading()."""
        ...

    def resume_reading(self) -> None:
        """Take bytes from the peer again."""
        ...

    def close(self) -> None:
        """Flush what is queued, then close the connection."""
        ...


class WebSocketSession:
    """One WebSocket connection from its handshake to its close, as an ASGI app sees it."""

    def __init__(
        self,
        gateway: ASGIGateway,
        settings: WSSettings,
        channel: WSChannel,
        req: Request,
        peer: Peer,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self.channel = channel
        self.req = req
        self.peer = peer
        self.loop = loop
        self.state = _CONNECTING
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.key = ""
        self.ws: Connection | None = None
        self._early = bytearray()
        self._connect_sent = False
        self._inbox: deque[Message] = deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[Any] = []
        self._size = 0
        self._rx = bytearray()  # the start of a client frame whose rest has not arrived
        self._need = 0  # how long _rx must grow before that frame is whole
        self._in_message = False  # wsproto holds a fragmented message's first pieces
        self._raw = False  # every byte goes straight to wsproto from now on
        self._close_code: int | None = None
        self._close_reason = ""
        self._denial_started = False
        self.next_ping = 0.0
        self.pong_deadline = 0.0
        self.close_deadline = 0.0

    # -- the app ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the app for this connection, then finish the handshake or the close for it."""
        gateway = self.gateway
        req = self.req
        started = time.time()
        t0 = time.perf_counter()
        scope = None
        try:
            self.key, subprotocols = check_handshake(req)
            req = gateway.books.own(req)
            gateway.books.begin(req)
            scope = gateway.scope("websocket", req, self.peer)
            scope["subprotocols"] = subprotocols
            scope["extensions"] = {"websocket.http.response": {}}
            await gateway.app(scope, self.receive, self.send)
            self._app_returned()
        except HandshakeError as exc:
            gateway.log.debug("WebSocket handshake refused for %s: %s", req.target, exc)
            self._respond(exc.status, exc.headers)
        except ClientDisconnected:
            gateway.log.debug("WebSocket client went away: %s", req.target)
        except LocalProtocolError as exc:
            gateway.log.error("Invalid WebSocket response from the app for %s: %s", req.target, exc)
            self._app_failed()
        except Exception:
            gateway.log.exception("Exception in ASGI application (WebSocket) %s", req.target)
            self._app_failed()
        finally:
            if self.state in (_REJECTED, _CLOSED):
                self.channel.close()
        gateway.finish(
            req, scope, self.peer, self.status, 0, self.headers, started, time.perf_counter() - t0
        )

    def _app_returned(self) -> None:
        if self.state == _CONNECTING:
            if self._denial_started:
                self.state = _REJECTED  # its body was cut short; closing says so
                return
            self.gateway.log.error("ASGI app returned without accepting or closing the WebSocket")
            self._respond(500, [])
        elif self.state == _OPEN:
            self._send_close(NORMAL, "")

    def _app_failed(self) -> None:
        if self.state == _CONNECTING and not self._denial_started:
            self._respond(500, [])
        elif self.state == _OPEN:
            self._send_close(INTERNAL_ERROR, "")
        else:
            self.state = _CLOSED

    async def receive(self) -> Message:
        """``websocket.connect`` first, then messages, then ``websocket.disconnect``."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while not self._inbox:
            if self.state in (_CLOSED, _REJECTED) or self.channel.disconnected:
                return self._disconnect_message()
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._inbox.popleft()
        self._queued -= _message_size(message)
        self._resume_if_drained()
        return message

    def _resume_if_drained(self) -> None:
        """Read from the peer again once the app has taken most of what is queued."""
        if self._paused and self._queued < QUEUE_HIGH // 4:
            self._paused = False
            self.channel.resume_reading()

    def _disconnect_message(self) -> Message:
        code = ABNORMAL if self._close_code is None else self._close_code
        return {"type": "websocket.disconnect", "code": code, "reason": self._close_reason}

    async def send(self, message: Message) -> None:
        """The app's handshake answer, its messages and its close, as frames."""
        kind = message["type"]
        state = self.state
        if state == _CONNECTING:
            self._send_connecting(kind, message)
        elif state == _OPEN and kind == "websocket.send":
            # _OPEN means wsproto's state is OPEN too: every close sets our state first.
            data = message.get("bytes")
            if data is not None:
                self.channel.write(data_frame(FIN_BINARY, bytes(data)))
            else:
                text = message.get("text")
                if text is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                self.channel.write(data_frame(FIN_TEXT, str(text).encode("utf-8")))
        elif state == _OPEN and kind == "websocket.close":
            self._send_close(int(message.get("code") or NORMAL), str(message.get("reason") or ""))
        elif state in (_CLOSING, _CLOSED, _REJECTED) and kind in (
            "websocket.send",
            "websocket.close",
        ):
            raise ClientDisconnected("the WebSocket is closed")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")
        if self.channel.write_blocked:
            await self.channel.drain()

    def _send_connecting(self, kind: str, message: Message) -> None:
        if self._denial_started:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected 'websocket.http.response.body', got {kind!r}")
            conn = self.channel.conn
            out = conn.send_data(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                out += conn.send_end()
                self.state = _REJECTED
            self.channel.write(out)
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            # ASGI: closing before accepting rejects the handshake with 403.
            self._respond(403, [])
        elif kind == "websocket.http.response.start":
            self._denial_started = True
            self.status = int(message["status"])
            self.headers = app_headers(message.get("headers", ()))
            conn = self.channel.conn
            conn.close_after()
            self.channel.write(conn.send_response(self.status, self.headers))
        else:
            raise RuntimeError(f"expected 'websocket.accept' or 'websocket.close', got {kind!r}")

    def _accept(self, message: Message) -> None:
        engine = _engine()
        subprotocol = message.get("subprotocol")
        extra = app_headers(message.get("headers", ()))
        self.headers = accept_headers(self.key, subprotocol, extra)
        conn = self.channel.conn
        self.channel.write(conn.send_response(101, self.headers))
        self.status = 101
        self.state = _OPEN
        self.next_ping = self.loop.time() + self.settings.ping_interval
        trailing = conn.trailing_data + bytes(self._early)
        self._early = bytearray()
        self.ws = engine.Connection(engine.ConnectionType.SERVER)
        if trailing:
            self.feed(trailing)
        self._resume_if_drained()  # reading paused on early bytes resumes here

    def _respond(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Refuse the upgrade with an HTTP response; the connection then closes."""
        self.state = _REJECTED
        self.status = status
        self.headers = headers
        conn = self.channel.conn
        if self.channel.disconnected:
            return
        conn.close_after()
        if not headers:
            out = render_error(status, server=self.gateway.server_header)
        else:
            body = b"%d\n" % status
            out = conn.send_full(status, [*headers, ("Content-Type", "text/plain")], body)
        with contextlib.suppress(ClientDisconnected):
            self.channel.write(out)

    # -- frames from the peer --------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the peer after the handshake request."""
        ws = self.ws
        if ws is None:
            if self.state == _CONNECTING:
                self._early += data
                if len(self._early) >= EARLY_LIMIT and not self._paused:
                    # Frames sent before our 101 wait in the kernel, not in memory; none
                    # may be dropped, or every later frame would be read out of step.
                    self._paused = True
                    self.channel.pause_reading()
            return
        if self.state == _CLOSED:
            return
        self.next_ping = self.loop.time() + self.settings.ping_interval
        self.pong_deadline = 0.0
        if self._rx:
            # Appending, and joining once the frame is whole: a large frame arriving in many
            # reads is copied once, not once per read.
            self._rx += data
            if len(self._rx) < self._need:
                return
            data, self._rx = bytes(self._rx), bytearray()
        if not self._raw:
            data = self._read_frames(data)
        if data and self.state != _CLOSED:
            ws.receive_data(data)
            self._engine_events()

    def _read_frames(self, data: bytes) -> bytes:
        """Take the whole frames from ``data``; what is left over is for wsproto, if raw.

        A whole, unfragmented data frame (what nearly every message is) is unmasked and
        delivered here: wsproto's event machinery costs ~9 µs for a 16-byte message, this
        ~1 µs. Any other well-formed frame (a control frame, a fragment) goes to wsproto
        whole, so wsproto never holds part of a frame and the two never disagree about where
        a frame starts. A frame whose header says it is over the size limit fails at once.
        Anything odd sends this and every later byte to wsproto, which fails the connection
        with the right code (RFC 6455 §5-7).
        """
        ws = self.ws
        assert ws is not None
        pos, size = 0, len(data)
        while pos < size and self.state == _OPEN:
            frame = next_frame(data, pos)
            if frame is None:
                self._need = 0  # a header in pieces: look again at the next read
                break
            opcode = frame.first & 0x0F
            # A continuation with no message begun, or a new message inside one (§5.4), is
            # as malformed as a bad header: wsproto fails it before its payload arrives.
            if not frame.well_formed() or (opcode < 0x8 and (opcode == 0) != self._in_message):
                self._raw = True
                return data[pos:]
            if opcode < 0x8 and self._size + frame.length > self.settings.max_message_size:
                self.fail(TOO_BIG, "message too big")  # known from the header
                return b""
            if frame.end > size:
                self._need = frame.end - pos
                break
            first = frame.first
            if first in (FIN_TEXT, FIN_BINARY) and not self._in_message:
                payload = unmask(data[frame.start : frame.end], frame.mask)
                if not self._deliver_frame(first, payload):
                    return b""
            else:
                if opcode < 0x8:  # a fragment: its message ends with a FIN frame
                    self._in_message = not first & 0x80
                ws.receive_data(data[pos : frame.end])
                if not self._engine_events():
                    return b""
            pos = frame.end
        if self.state == _OPEN:
            if pos < size:
                self._rx = bytearray(data[pos:])
            return b""
        self._raw = True  # after our close frame, wsproto reads the peer's
        return data[pos:]

    def _deliver_frame(self, first: int, payload: bytes) -> bool:
        """One whole data frame's message; False when it failed the connection."""
        if first == FIN_BINARY:
            return self._fragment(payload, True)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:  # RFC 6455 §8.1: fail the connection with 1007
            self.fail(BAD_DATA, "invalid UTF-8 in a text message")
            return False
        return self._fragment(text, True)

    def _engine_events(self) -> bool:
        """Act on wsproto's events; False once the connection is closing or closed."""
        ws = self.ws
        assert ws is not None
        engine = _engine()
        for event in ws.events():
            if isinstance(event, engine.messages):
                if not self._fragment(event.data, event.message_finished):
                    return False
            elif isinstance(event, engine.ping):
                if self.state == _OPEN:  # RFC 6455 §5.5.3: no pong after our close frame
                    self._write(ws.send(event.response()))
            elif isinstance(event, engine.close_event):
                if ws.state in engine.closing:
                    self._peer_closed(event.code, event.reason or "")
                else:
                    # wsproto reports a frame it could not parse as a close with the code
                    # to fail with: 1002, or 1007 for invalid UTF-8 (RFC 6455 §7.1.7).
                    self.fail(event.code, event.reason or "")
                return False
        return True

    def _fragment(self, data: Any, finished: bool) -> bool:
        """Collect one piece of a message; False when the message is too large."""
        self._size += (
            len(data)
            if isinstance(data, (bytes, bytearray)) or data.isascii()
            else (len(data.encode("utf-8")))
        )
        if self._size > self.settings.max_message_size:
            self.fail(TOO_BIG, "message too big")
            return False
        if not finished:
            self._fragments.append(data)
            return True
        if self._fragments:
            self._fragments.append(data)
            joined: Any = ("" if isinstance(data, str) else b"").join(self._fragments)
            self._fragments = []
        else:
            joined = data
        self._size = 0
        if isinstance(joined, str):
            self._deliver({"type": "websocket.receive", "text": joined})
        else:
            self._deliver({"type": "websocket.receive", "bytes": bytes(joined)})
        return True

    def _deliver(self, message: Message) -> None:
        self._inbox.append(message)
        self._queued += _message_size(message)
        if self._queued > QUEUE_HIGH and not self._paused:
            self._paused = True
            self.channel.pause_reading()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _peer_closed(self, code: int, reason: str) -> None:
        """The peer's close frame: answer it (unless we closed first), then close TCP."""
        ws = self.ws
        assert ws is not None
        if self.state == _OPEN:
            self._write(ws.send(_engine().close_event(code=code, reason=reason)))
        self._close_code, self._close_reason = code, reason
        self._finish()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a close frame, then close TCP."""
        self.gateway.log.debug("WebSocket %s failed: %d %s", self.req.target, code, reason)
        self._send_close(code, reason)
        self._close_code, self._close_reason = code, reason
        self._finish()

    def _send_close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or self.state != _OPEN:
            return
        self.state = _CLOSING
        self.close_deadline = self.loop.time() + CLOSE_TIMEOUT
        close: type[CloseConnection] = _engine().close_event
        self._write(ws.send(close(code=code, reason=reason or None)))

    def _finish(self) -> None:
        self.state = _CLOSED
        self.channel.close()
        self._wake()

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(ClientDisconnected):
            self.channel.write(data)

    # -- driver notifications --------------------------------------------------------------

    def connection_lost(self) -> None:
        """The transport is gone: the app sees ``websocket.disconnect`` (1006 if no close)."""
        if self.state != _REJECTED:
            self.state = _CLOSED
        self._wake()

    def going_away(self) -> None:
        """Graceful stop: close with 1001 (RFC 6455 §7.4.1)."""
        if self.state == _OPEN:
            self._send_close(GOING_AWAY, "server shutting down")

    def tick(self, now: float) -> None:
        """Once a second: idle pings, pong and close timeouts."""
        state = self.state
        if state == _CLOSING and now >= self.close_deadline:
            self._finish()
        elif state != _OPEN or self._paused or self.settings.ping_interval <= 0:
            return
        elif self.pong_deadline and now >= self.pong_deadline:
            self.fail(INTERNAL_ERROR, "keepalive ping timeout")
        elif now >= self.next_ping and not self.pong_deadline:
            ws = self.ws
            assert ws is not None
            self._write(ws.send(_engine().ping(payload=b"corral")))
            self.next_ping = now + self.settings.ping_interval
            if self.settings.ping_timeout > 0:
                self.pong_deadline = now + self.settings.ping_timeout


def _message_size(message: Message) -> int:
    data = message.get("bytes") or message.get("text") or b""
    return len(data) + 64
