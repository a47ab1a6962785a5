"""The threaded worker's HTTP/2 connections: one thread does the connection's I/O and frames,
and each stream's request runs on a pool thread, through the same RequestLifecycle as an
HTTP/1.1 request."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable

from corral.drivers.blocking import DriverContext, Session
from corral.drivers.h2exchange import StreamConn
from corral.gateway.ladder import BodyStalled, ClientDisconnected
from corral.http.events import Request
from corral.http2.session import H2Closed, H2Session, Stream

# How often the I/O thread looks at the clock when nothing happens (idle deadline, stop).
POLL_SECONDS = 1.0
# Frames queued for the I/O thread past this: response bodies wait in their streams (their
# threads in commit()) until it has written them, however large the client's windows.
OUTBOX_HIGH = 256 * 1024


class H2Thread:
    """One HTTP/2 connection: its I/O thread reads and writes; pool threads run its streams.

    Only the I/O thread touches the socket (an SSL object is not safe for a read and a write
    from two threads); the streams' threads change the session under ``lock`` and wake it
    through an eventfd to write what they queued.
    """

    def __init__(
        self,
        session: Session,
        ctx: DriverContext,
        submit: Callable[[Callable[[], None]], None],
        finished: Callable[[Session], None],
    ) -> None:
        self.conn = session
        self.ctx = ctx
        self.submit = submit
        self.finished = finished
        policy = ctx.policy
        assert policy.http2 is not None
        log = ctx.lifecycle.log
        self.session = H2Session(
            policy.http2.settings, policy.limits, ctx.lifecycle.server_header, log.warning
        )
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # streams: body, window or reset news
        self.outbox = bytearray()
        self.flushing = False  # the I/O thread is writing what it took from the outbox
        self.sent_at = time.monotonic()  # when frames last went out
        # Without TLS a stream's thread writes its frames itself when nothing is queued before
        # them (a send that does not wait, under the lock): no wake-up of the I/O thread per
        # response. An SSL object may not be written by one thread while another reads it.
        self.direct = session.ctx.tls is None
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.active = 0  # streams whose request runs on a pool thread
        self.lost = False
        self.stopping = False
        self.broken = False  # the client broke the protocol or flooded: read nothing more
        self.io_thread = threading.Thread(target=self._run, daemon=True, name="h2-io")
        self._first = b""

    def start(self, data: bytes, upgraded: tuple[Request, bytes] | None) -> None:
        """Begin with what the client already sent (the preface, or the rest after the h2c
        request) and, for h2c, the upgrading request as stream 1."""
        with self.lock:
            if upgraded is not None:
                req, settings = upgraded
                self.session.start(settings)
                self._dispatch(self.session.adopt(1, req))
            else:
                self.session.start()
            self.commit()
        self._first = data
        self.io_thread.start()

    # -- the link StreamConn writes through -----------------------------------------------------

    def commit(self, stream: Stream | None = None) -> None:
        """Queue what the session made for the I/O thread (held: ``lock``). A stream's thread
        then waits while the client's window holds its response back, up to send_timeout."""
        io = threading.current_thread() is self.io_thread
        while not self.lost:
            out = self.session.outbound()
            if not out:
                break
            if self.direct and not (io or self.outbox or self.flushing):
                out = out[self._send_now(out) :]
                self.sent_at = time.monotonic()
            if out:
                self.outbox += out
                self.session.paused = len(self.outbox) > OUTBOX_HIGH
                if not io:
                    os.eventfd_write(self.wake_fd, 1)
                break
            self.session.flush_all()  # all written: the bodies' next pieces
        if stream is None or io:
            return
        limit = self.ctx.policy.send_timeout
        deadline = time.monotonic() + limit
        while stream.blocked and not self.lost:
            left = deadline - time.monotonic()
            if left <= 0:
                self.session.cancel(stream)
                raise ClientDisconnected(f"the client read nothing for {limit:g}s (send_timeout)")
            self.changed.wait(left)
        if stream.reset or self.lost:
            raise ClientDisconnected("the client reset the stream")

    def _send_now(self, data: bytes) -> int:
        """What of ``data`` the socket takes without waiting (held: ``lock``)."""
        try:
            return self.conn.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError:
            return len(data)  # the connection is gone: the I/O thread finds out by reading

    # -- the I/O thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._first:
                self._received(self._first)
            self._loop()
        except (ClientDisconnected, OSError):
            pass  # the client went away
        except Exception:
            self.ctx.lifecycle.log.exception("HTTP/2 connection failed")
        finally:
            with self.lock:
                self.lost = True
                for stream in list(self.session.streams.values()):
                    stream.reset = True
                self.changed.notify_all()
                os.close(self.wake_fd)  # under the lock: no thread writes to it once lost
            self.finished(self.conn)

    def _loop(self) -> None:
        transport = self.conn.transport
        poller = select.poll()
        poller.register(self.conn.fd, select.POLLIN)
        poller.register(self.wake_fd, select.POLLIN)
        idle_since = time.monotonic()
        reading = True
        while True:
            self._flush()
            if self._done():
                return
            if self.broken and reading:
                # Its GOAWAY is out; streams still in their apps finish (writing to streams
                # now reset). Reading on would feed a flood to a session that is over; the
                # close lingers over what is left in the socket.
                poller.unregister(self.conn.fd)
                reading = False
            # Frames still queued (a body moving a batch at a time): write them at once.
            timeout = 0 if self.outbox else POLL_SECONDS * 1000
            for fd, _ in poller.poll(timeout):
                if fd == self.wake_fd:
                    try:
                        os.eventfd_read(self.wake_fd)
                    except BlockingIOError:
                        pass
                    continue
                while True:
                    data = transport.recv_now()
                    if data is None:
                        break
                    if not data or not self._received(data):
                        return
                    idle_since = time.monotonic()
                    if not transport.pending():
                        break
            now = time.monotonic()
            if self.session.sending and now - self.sent_at > self.ctx.policy.send_timeout:
                self._give_up_sending()
            if self.active or self.session.sending:
                idle_since = now
            elif time.monotonic() > self.ctx.policy.idle_deadline(
                idle_since, self.ctx.policy.idle_until(idle_since)
            ):
                self.shutdown()

    def _give_up_sending(self) -> None:
        """Finished responses the client stopped taking for send_timeout: reset, as a stream
        whose thread still writes would be in commit()."""
        with self.lock:
            if self.active:
                return  # a writing thread times its own stream out
            for stream in list(self.session.streams.values()):
                self.session.cancel(stream)
            self.commit()

    def _received(self, data: bytes) -> bool:
        """Feed the client's bytes; start the new streams. False when the connection ends."""
        with self.lock:
            try:
                streams = self.session.receive(data, time.monotonic())
            except H2Closed:
                self.stopping = self.broken = True
                self.commit()
                return True  # _flush writes the GOAWAY, then _done ends the loop
            for stream in streams:
                if not stream.reset:  # reset in the same read (rapid reset): no app call
                    self._dispatch(stream)
            self.changed.notify_all()
            self.commit()
        return True

    def _flush(self) -> None:
        with self.lock:
            out = bytes(self.outbox)
            self.outbox.clear()
            self.flushing = bool(out)
        if out:
            self.sent_at = time.monotonic()
            try:
                self.conn.transport.sendall(out)
            finally:
                with self.lock:
                    self.flushing = False
                    self.session.paused = False  # written: the streams' bodies may go on
                    self.session.flush_all()
                    self.commit()

    def _done(self) -> bool:
        with self.lock:
            if not self.stopping or self.active or self.session.sending:
                return False
            self.session.close()
            self.commit()
        self._flush()
        return True

    def shutdown(self) -> None:
        """Graceful stop (any thread): GOAWAY; the streams in flight finish, then it closes."""
        with self.lock:
            if self.lost:
                return  # already over (its eventfd is closed)
            self.stopping = True
            self.session.goaway()
            self.commit()
            if threading.current_thread() is not self.io_thread:
                os.eventfd_write(self.wake_fd, 1)

    # -- streams -----------------------------------------------------------------------------

    def _dispatch(self, stream: Stream) -> None:
        """Run the stream's request on a pool thread (held: ``lock``)."""
        stream.wake = self.changed.notify_all
        self.active += 1
        arrived = time.monotonic()
        self.submit(lambda: self._serve(stream, arrived))

    def _serve(self, stream: Stream, arrived: float) -> None:
        """On a pool thread: the request, as any HTTP/1.1 one, then the stream's end.
        ``arrived``: when its head was complete (its wait for a thread is its queue time)."""
        conn = StreamConn(self, stream)
        transport = StreamTransport(self, conn)
        session = self.conn
        try:
            if not stream.reset:  # a stream reset while it waited for a thread is skipped
                ctx = self.ctx
                if ctx.policy.health(stream.req, conn) is None:
                    ctx.lifecycle.handle(
                        stream.req, conn, transport, session.env_base, session.trusted, arrived
                    )
        except ClientDisconnected:
            pass
        finally:
            with self.lock:
                self.active -= 1
                self.session.done(stream)
                self.commit()
                if not self.active and not self.lost:
                    os.eventfd_write(self.wake_fd, 1)  # a stop or the idle deadline may be due


class StreamTransport:
    """The WSGI transport of one stream: the body waits on the I/O thread's news; the frames
    themselves go out through the stream's exchange."""

    def __init__(self, link: H2Thread, conn: StreamConn) -> None:
        self.link = link
        self.conn = conn

    def recv(self) -> bytes:
        """Wait for body bytes (the exchange hands them out); BodyStalled after body_timeout."""
        link, stream = self.link, self.conn.stream
        limit = link.ctx.policy.body_timeout
        with link.lock:
            deadline = time.monotonic() + limit
            while not (stream.body or stream.ended or stream.reset or link.lost):
                left = deadline - time.monotonic()
                if left <= 0:  # answered 408 by the lifecycle; done() then resets the rest
                    raise BodyStalled(f"no request body bytes for {limit:g}s (body_timeout)")
                link.changed.wait(left)
        return b""

    def sendall(self, data: bytes) -> None:
        """Nothing to write: a stream's frames are queued by its exchange (``data`` is b"")."""
        if self.conn.stream.reset or self.link.lost:
            raise ClientDisconnected("the client reset the stream")

    def send_after(self, head: bytes, body: bytes) -> None:
        """As sendall: the exchange queued the head and the body as frames (both are b"")."""
        self.sendall(head + body)

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """A file's bytes as DATA frames, a piece at a time."""
        data = os.pread(fd, min(count, 256 * 1024), offset)
        if data:
            self.conn.send_data(data)
        return len(data)
