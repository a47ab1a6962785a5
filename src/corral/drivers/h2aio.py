"""The asyncio worker's HTTP/2 connections: an h2 session on the transport, and one ASGI
cycle task per stream, each through the same HTTPCycle as an HTTP/1.1 request."""

from __future__ import annotations

import asyncio
import contextlib

from corral.drivers.aio import AioContext, closing
from corral.drivers.h2exchange import StreamConn
from corral.drivers.policy import LINGER_BYTES, LINGER_SECONDS
from corral.gateway.asgi import HTTPCycle, Peer
from corral.gateway.ladder import ClientDisconnected
from corral.http.events import Request
from corral.http2.session import H2Closed, H2Session, Stream

# Frames we queued that the client does not read (PING and SETTINGS acknowledgements, error
# pages): past this much in the transport's buffer the connection is dropped.
OUTBOUND_LIMIT = 4 * 1024 * 1024


class StreamChannel:
    """One stream as an ASGI cycle's channel (gateway.asgi.HTTPChannel).

    An app may read in one task and write in another: each wait has a future of its own, and
    news about the stream (body, window, reset, the end) wakes them all.
    """

    def __init__(self, proto: H2Protocol, stream: Stream) -> None:
        self.proto = proto
        self.stream = stream
        self.conn = StreamConn(proto, stream)
        self.body_stalled = False
        self.cycle: HTTPCycle | None = None
        self.task: asyncio.Task[None] | None = None
        self.began = 0.0  # loop time the app was handed the request
        self.answered = False
        self.reading_since = 0.0  # waiting for body bytes since (loop time); 0: not
        self.sending_since = 0.0  # waiting for the client's window since; 0: not
        self._waiters: set[asyncio.Future[None]] = set()
        stream.wake = self._wake

    @property
    def write_blocked(self) -> bool:
        return self.stream.blocked or self.proto.lost or self.stream.reset

    @property
    def disconnected(self) -> bool:
        return self.stream.reset or self.proto.lost

    def write(self, data: bytes) -> None:
        """Only ever b"" from a stream's exchange; raises once the stream is gone."""
        if self.disconnected:
            raise ClientDisconnected("the client reset the stream")

    async def drain(self) -> None:
        """Wait while the client's flow-control window holds the response back."""
        self.sending_since = self.proto.loop.time()
        try:
            while self.stream.blocked and not self.disconnected:
                await self._wait()
        finally:
            self.sending_since = 0.0
        if self.disconnected:
            raise ClientDisconnected("the client reset the stream")

    async def wait_data(self) -> bool:
        """Wait for more of the request body; False when none will come."""
        stream = self.stream
        if not (stream.body or stream.ended or self.disconnected):
            self.reading_since = self.proto.loop.time()
            try:
                await self._wait()
            finally:
                self.reading_since = 0.0
        return not (self.disconnected or self.body_stalled)

    async def wait_disconnect(self) -> None:
        """Wait until the client resets the stream or the response is complete."""
        while not (self.disconnected or self.answered):
            await self._wait()

    def response_complete(self) -> None:
        self.answered = True
        self._wake()

    def cycle_done(self, cycle: HTTPCycle) -> None:
        self.proto.stream_done(self)

    async def _wait(self) -> None:
        waiter = self.proto.loop.create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stalled(self, now: float) -> bool:
        """A wait on the client past its limit: the body stalls (body_timeout: the cycle
        answers 408), or the response cannot go out (send_timeout: the stream is cancelled)."""
        policy = self.proto.ctx.policy
        if self.sending_since and now - self.sending_since > policy.send_timeout:
            self.sending_since = 0.0
            self.proto.cancel(self)
        elif self.reading_since and now - self.reading_since > policy.body_timeout:
            self.reading_since = 0.0
            self.body_stalled = True
        else:
            return False
        self._wake()
        return True


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection, taken over from the HTTPProtocol that found it (ALPN h2, the
    preface, or Upgrade: h2c)."""

    def __init__(self, ctx: AioContext, peer: Peer) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.peer = peer
        policy = ctx.policy
        assert policy.http2 is not None
        gateway = ctx.gateway
        self.session = H2Session(
            policy.http2.settings, policy.limits, gateway.server_header, gateway.log.warning
        )
        self.lock: contextlib.nullcontext[None] = contextlib.nullcontext()
        self.channels: dict[int, StreamChannel] = {}
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.closing_at = 0.0
        self._write_soon = False
        self.sent_at = 0.0  # loop time frames last went to the transport
        self.lingering = 0.0  # when our last GOAWAY went out with our half-close; 0: not yet
        self.lingered = 0
        self.deadline = policy.idle_until(self.loop.time())

    def begin(
        self,
        transport: asyncio.Transport,
        data: bytes,
        upgraded: tuple[Request, bytes] | None = None,
    ) -> None:
        """Take the connection over; ``data``: what the client sent already (the preface);
        ``upgraded``: the HTTP/1.1 request that asked for h2c and its HTTP2-Settings, the
        request then answered as stream 1."""
        self.transport = transport
        transport.set_protocol(self)
        self.ctx.connections.add(self)
        if upgraded is not None:
            req, settings = upgraded
            self.session.start(settings)
            self._serve(self.session.adopt(1, req))
        else:
            self.session.start()
        self.commit()
        if data:
            self.data_received(data)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.lingering:  # after our last GOAWAY: read and discard, a bounded amount
            self.lingered += len(data)
            if self.lingered > LINGER_BYTES and self.transport is not None:
                self.transport.close()
            return
        try:
            streams = self.session.receive(data, self.loop.time())
        except H2Closed:
            self.commit()
            self.close()
            return
        for stream in streams:
            if not stream.reset:  # reset in the same read (rapid reset): no app call
                self._serve(stream)
        self.commit()
        if not self._busy():
            self.deadline = self.ctx.policy.idle_until(self.loop.time())

    def _busy(self) -> bool:
        """A stream's app runs, or a finished response still waits for the client's window."""
        return bool(self.channels) or self.session.sending

    def pause_writing(self) -> None:
        """The transport's buffer is full: response bodies wait in their streams (their apps
        in drain()), however large the client's windows, so what we hold stays bounded."""
        self.session.paused = True

    def resume_writing(self) -> None:
        self.session.paused = False
        self.session.flush_all()
        self.commit()

    def eof_received(self) -> bool:
        return False  # the client closed: so do we (HTTP/2 has no half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.ctx.connections.discard(self)
        for channel in list(self.channels.values()):
            channel._wake()
        self.ctx.on_closed()

    # -- the link StreamConn writes through -----------------------------------------------------

    def commit(self, stream: Stream | None = None) -> None:
        """Have what the session queued written once the loop has run what is ready: the
        responses of every stream that ran meanwhile go out in one write, not one syscall each
        (a stream's back-pressure is its channel's drain())."""
        if not self._write_soon:
            self._write_soon = True
            self.loop.call_soon(self._write)

    def _write(self) -> None:
        """Write what the session queued, now."""
        self._write_soon = False
        out = self.session.outbound()
        transport = self.transport
        if (
            out
            and transport is not None
            and not (self.lost or self.lingering or transport.is_closing())
        ):
            transport.write(out)
            self.sent_at = self.loop.time()
            if transport.get_write_buffer_size() > OUTBOUND_LIMIT:
                self.ctx.gateway.log.debug("HTTP/2 client does not read its frames: dropped")
                transport.abort()
                return
            if not self.session.paused:
                self.session.flush_all()
            if self.session.moved:
                self.commit()  # the next piece of the bodies, once the loop has turned
            elif self.session.going_away and not self._busy():
                self.loop.call_soon(self.close)  # the last response a stop waited for is out

    # -- streams -----------------------------------------------------------------------------

    def _serve(self, stream: Stream) -> None:
        ctx = self.ctx
        channel = StreamChannel(self, stream)
        health = ctx.policy.health(stream.req, channel.conn)
        if health is not None:  # answered by the policy, through the stream's exchange
            self.session.done(stream)
            return
        cycle = HTTPCycle(ctx.gateway, channel, stream.req, self.peer, self.loop.time())
        channel.cycle = cycle
        channel.began = self.loop.time()
        self.channels[stream.id] = channel
        channel.task = self.loop.create_task(cycle.run())

    def stream_done(self, channel: StreamChannel) -> None:
        """A cycle ended: the stream is finished (or reset, when its response did not end)."""
        self.channels.pop(channel.stream.id, None)
        if self.lost:
            return
        self.session.done(channel.stream)
        self.commit()
        if not self._busy():
            self.deadline = self.ctx.policy.idle_until(self.loop.time())
            if self.session.going_away:
                self.close()

    def cancel(self, channel: StreamChannel) -> None:
        """Give up on a stream whose client stopped reading (send_timeout)."""
        self.session.cancel(channel.stream)
        self.commit()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The streams' tasks."""
        return [ch.task for ch in self.channels.values() if ch.task is not None]

    def running(self) -> list[tuple[HTTPCycle, asyncio.Task[None]]]:
        """The cycles in flight, with their tasks."""
        return [
            (ch.cycle, ch.task)
            for ch in self.channels.values()
            if ch.cycle is not None and ch.task is not None
        ]

    # -- the worker's sweep and stop -------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Stalled streams, request_timeout, the idle deadline, a close that does not end."""
        transport = self.transport
        if transport is None or self.lost:
            return
        if closing(self, transport, now):
            return
        if self.lingering:
            if now - self.lingering > LINGER_SECONDS:
                transport.close()
            return
        limit = self.ctx.request_timeout
        for channel in list(self.channels.values()):
            if channel.stalled(now):
                continue
            cycle, task = channel.cycle, channel.task
            if limit and cycle is not None and task is not None and now - channel.began > limit:
                self.ctx.time_out(cycle, task, self.peer, now - channel.began)
        if not self.channels and self.session.sending:
            if now - self.sent_at > self.ctx.policy.send_timeout:
                # Finished responses the client stopped taking (send_timeout), as a stream
                # whose app still writes would be in its drain().
                for stream in list(self.session.streams.values()):
                    self.session.cancel(stream)
                self.commit()
            return
        if not self.channels and now >= self.deadline:
            self.session.goaway()
            self.commit()
            self.close()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY; the streams in flight finish, then the connection closes."""
        self.session.goaway()
        self.commit()
        if not self._busy():
            self.close()

    def close(self) -> None:
        """The final GOAWAY, then close once it is written. As HTTP/1.1's _linger: closing
        with unread input (a flood's) makes the kernel send RST, which destroys the GOAWAY
        before the client reads it; so half-close, and discard input for a bounded time."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.lingering:
            return
        self.session.close()
        self._write()
        if transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = self.loop.time()
        transport.write_eof()

    def abort(self, cancel: bool = False) -> None:
        """Drop the connection now; ``cancel`` also cancels the streams' apps."""
        if cancel:
            for channel in self.channels.values():
                if channel.task is not None and not channel.task.done():
                    channel.task.cancel()
        if self.transport is not None:
            self.transport.abort()
