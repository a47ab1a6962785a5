"""ASGI WebSocket sessions over RFC 6455: the app's side of one connection, frames ours."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from corral.gateway.asgi import Message, app_headers
from corral.gateway.ladder import ClientDisconnected
from corral.gateway.ws_deflate import Deflate, negotiate
from corral.gateway.ws_frames import (
    ABNORMAL,
    FIN,
    FIN_BINARY,
    FIN_TEXT,
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL,
    PING,
    PONG,
    RSV1,
    close_frame,
    data_frame,
)
from corral.gateway.ws_handshake import HandshakeError, accept_headers, check_handshake
from corral.gateway.ws_reader import FrameReader
from corral.http.connection import ServerConnection
from corral.http.errors import LocalProtocolError, render_error

if TYPE_CHECKING:
    import asyncio

    from corral.gateway.asgi import ASGIGateway, Peer
    from corral.http.events import Request

# Messages queued for an app that does not receive: past this, stop reading from the peer.
QUEUE_HIGH = 1 << 20
# How long we wait for the peer's close frame after sending ours, before closing TCP.
CLOSE_TIMEOUT = 5.0
# Bytes a client may send before the handshake is answered (it should send none); past
# this, reading stops until the app accepts or refuses.
EARLY_LIMIT = 65536

_CONNECTING, _OPEN, _CLOSING, _CLOSED, _REJECTED = range(5)


@dataclass(frozen=True)
class WSSettings:
    """The WebSocket settings of one worker."""

    max_message_size: int
    ping_interval: float
    ping_timeout: float
    per_message_deflate: bool = True  # agree to permessage-deflate when a client offers it


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

    def linger(self) -> None:
        """Close after what is queued, first reading and discarding what the peer still
        sends, for a bounded time: closing with unread input sends RST, which can destroy
        our close frame before the peer reads it."""
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
        self.extensions: list[str] = []  # the client's Sec-WebSocket-Extensions values
        self.reader: FrameReader | None = None  # from the accept on
        self.deflate: Deflate | None = None
        self._early = bytearray()
        self._connect_sent = False
        self._inbox: deque[Message] = deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
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
            self.key, subprotocols, self.extensions = check_handshake(req)
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
            data = message.get("bytes")
            first = FIN_BINARY
            if data is None:
                text = message.get("text")
                if text is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                data, first = str(text).encode("utf-8"), FIN_TEXT
            deflate = self.deflate
            if deflate is None:
                self.channel.write(data_frame(first, bytes(data)))
            else:  # RFC 7692 §6: RSV1 marks a compressed message
                self.channel.write(data_frame(first | RSV1, deflate.compress(bytes(data))))
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
        subprotocol = message.get("subprotocol")
        extra = app_headers(message.get("headers", ()))
        settings = self.settings
        agreed = negotiate(self.extensions) if settings.per_message_deflate else None
        if agreed is not None:
            self.deflate = Deflate(agreed)
        self.headers = accept_headers(
            self.key, subprotocol, extra, agreed.response if agreed is not None else None
        )
        conn = self.channel.conn
        self.channel.write(conn.send_response(101, self.headers))
        self.status = 101
        self.state = _OPEN
        self.next_ping = self.loop.time() + self.settings.ping_interval
        trailing = conn.trailing_data + bytes(self._early)
        self._early = bytearray()
        self.reader = FrameReader(self, settings.max_message_size, self.deflate)
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
        reader = self.reader
        if reader is None:
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
        reader.feed(data)

    # -- what the reader found (ReaderSink) ------------------------------------------------

    def deliver(self, message: Message) -> None:
        """A whole message for the app; after our close frame, messages are dropped."""
        if self.state != _OPEN:
            return
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

    def ping(self, payload: bytes) -> None:
        """Answer a ping with a pong (RFC 6455 §5.5.3), unless our close frame has gone."""
        if self.state == _OPEN:
            self._write(data_frame(FIN | PONG, payload))

    def peer_closed(self, code: int, reason: str) -> None:
        """The peer's close frame: echo its code (RFC 6455 §5.5.1) unless we closed first,
        then close TCP (the server closes first, §7.1.1)."""
        if self.state == _OPEN:
            self._write(close_frame(code, reason))
        self._close_code, self._close_reason = code, reason
        self._finish()

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a close frame, then close TCP.

        The peer may still be sending (the rest of a frame over the limit): its bytes are
        read and dropped while the connection lingers, so that our close frame arrives.
        """
        self.gateway.log.debug("WebSocket %s failed: %d %s", self.req.target, code, reason)
        self._send_close(code, reason)
        self._close_code, self._close_reason = code, reason
        self._finish(linger=True)

    def _send_close(self, code: int, reason: str) -> None:
        if self.reader is None or self.state != _OPEN:
            return
        self.state = _CLOSING
        self.close_deadline = self.loop.time() + CLOSE_TIMEOUT
        self._write(close_frame(code, reason))

    def _finish(self, linger: bool = False) -> None:
        self.state = _CLOSED
        if linger:
            self.channel.linger()
        else:
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
            self._write(data_frame(FIN | PING, b"corral"))
            self.next_ping = now + self.settings.ping_interval
            if self.settings.ping_timeout > 0:
                self.pong_deadline = now + self.settings.ping_timeout


def _message_size(message: Message) -> int:
    data = message.get("bytes") or message.get("text") or b""
    return len(data) + 64
