"""The threaded worker: a pool of threads sharing one epoll, each serving what it picks up."""

from __future__ import annotations

import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from corral.drivers.blocking import DriverContext, Session
from corral.drivers.listening import Listening
from corral.drivers.policy import LINGER_SECONDS, AcceptGate
from corral.drivers.transport import any_readable
from corral.errors import AppLoadError
from corral.gateway.loader import LoadedApp
from corral.workers.base import Worker, drain_pipe
from corral.workers.context import driver_context
from corral.workers.pool import PoolTuner, ThreadSlot

if TYPE_CHECKING:
    from corral.config import Config

ARMED = select.EPOLLIN | select.EPOLLONESHOT
MONITOR_INTERVAL = 0.1
# How long a thread with spare threads behind it waits on its own connection for the next
# request before giving the connection back to epoll. A client on a busy keep-alive connection
# (a load balancer's pool, a page's subresources) sends again within this; one that does not
# costs a parked thread for this long, which the spare threads cover meanwhile.
FOLLOW_SECONDS = 0.05
# Events a thread takes from epoll at once while it is the pool's only thread. Alone, it serves
# them in turn either way, so taking several saves an epoll_wait per request (0.13 instead of
# 1 on `hello`). The rest wait in `pending`, where threads the pool adds meanwhile find them;
# with more than one thread, each takes one event, so no thread holds ready work another could
# start on.
HARVEST = 8
_SWEEPER = object()  # the monitor's claim on a connection it closes
_H2 = object()  # an HTTP/2 connection's claim: its own I/O thread serves it
# Connections a thread accepts into epoll at once, beyond the one it serves itself.
ACCEPT_BATCH = 32


def pool_bound(cfg: Config) -> int:
    """The most threads a worker's pool may run (0: the tuner's automatic bound).

    ``threads = N`` caps it at N, as in gunicorn (corral's ``max_threads`` may raise that);
    left unset, or ``auto``, the pool sizes itself up to ``max_threads``.
    """
    threads: int = cfg.threads
    max_threads: int = cfg.max_threads
    if threads > 0 and cfg.given("threads") is not None:
        return max(threads, max_threads)
    return max_threads


class ThreadedWorker(Worker):
    """Threads that each take the next ready connection themselves (leader/followers).

    Every socket sits in one epoll with EPOLLONESHOT, so an event goes to exactly one thread,
    which reads, runs the app and answers on its own stack: no hand-off between a poller thread
    and a pool, no queue between them, no re-registration dance. A connection that is idle or
    still sending its head holds no thread; it only takes one when its bytes are there. The pool
    grows when every thread is busy and the busy time is spent waiting rather than computing
    (see pool.py).

    After answering, a thread follows its connection for a moment (FOLLOW_SECONDS, a blocking
    read) while another thread is watching epoll: with threads to spare, each busy connection
    gets one to itself, and a request costs one wake-up instead of an epoll round trip. When no
    thread is left watching, it hands the connection back to epoll at once, so that connections
    outnumbering threads still take their turns in order.
    """

    kind = "threaded"
    concurrent_threads = True
    serves_h2 = True

    def serve(self, app: LoadedApp) -> None:
        if not hasattr(select, "epoll"):
            # gevent's monkey.patch_all() left in an app moved from -k gevent replaces select
            # without epoll: say so once, rather than crash at every boot.
            raise AppLoadError(
                "select.epoll is gone: the app (or its config) monkey-patches the standard "
                "library, as gevent.monkey.patch_all() does; remove that to run on "
                "corral's threaded worker (docs/migrating.md, gevent)"
            )
        self.ctx: DriverContext = driver_context(self, app, multithread=True)
        self.ep = select.epoll()
        self.sessions: dict[int, Session] = {}
        # Session -> who is serving it. dict.setdefault is one atomic step under the GIL, so a
        # thread claims a connection without a lock (a lock would convoy behind a holder that
        # waits for the GIL). Keyed by the Session, not the fd: a closed fd's number comes back
        # for the next connection, and a stale event or sweep must not touch that one.
        self.claims: dict[Session, object] = {}
        self.paused: set[int] = set()  # listeners left disarmed at worker_connections
        self.watching: set[ThreadSlot] = set()  # threads waiting in epoll for work
        self.pending: deque[int] = deque()  # fds taken from epoll (one-shot fired), not yet served
        self.idle_wait = self.heartbeat_interval()
        self.listening: dict[int, Listening] = {}
        self.gate = AcceptGate(self.log)
        self.resting: dict[int, float] = {}  # listener fd -> when it may accept again
        # Threads between accept() and the connection's registration: a stopping worker must
        # not exit under them (the connection would be reset with its request unread).
        self.in_accept: set[ThreadSlot] = set()
        self.accepting = True
        self.running = True
        # Work handed to the pool (HTTP/2 streams): an eventfd counts it, one-shot in epoll
        # like any connection, so the thread that takes it is one already waiting there.
        self.tasks: deque[Callable[[], None]] = deque()
        self.task_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_SEMAPHORE | os.EFD_CLOEXEC)
        self.ep.register(self.task_fd, ARMED)
        self.h2conns: dict[Session, Any] = {}  # their H2Thread, imported with the first
        self.progress = time.monotonic()
        for listener in self.listeners:
            # Its connections come blocking, with a receive timeout: a following thread waits
            # for the next request in one plain recv (see _follow).
            listening = Listening(listener, recv_wait=FOLLOW_SECONDS)
            self.listening[listening.fd] = listening
            self.ep.register(listening.fd, ARMED)
        self.tuner = PoolTuner(1, pool_bound(self.cfg), self._start_thread)
        self.tuner.start()
        try:
            self._monitor()
        finally:
            self.running = False
            self.tuner.join(timeout=2.0)
            self.ep.close()
            os.close(self.task_fd)

    # -- threads ---------------------------------------------------------------------------------

    def _start_thread(self, slot: ThreadSlot) -> threading.Thread:
        thread = threading.Thread(target=self._thread_main, args=(slot,), daemon=True)
        thread.start()
        return thread

    def _thread_main(self, slot: ThreadSlot) -> None:
        slot.tid = threading.get_native_id()
        listening = self.listening
        next_fd = self._next_fd
        while self.running and not slot.retire:
            try:
                fd = next_fd(slot)
            except (OSError, ValueError):
                return  # the epoll is closed: the worker is stopping
            if fd is None:
                continue
            slot.begin()
            try:
                if fd in listening:
                    self._accept(fd, slot)
                elif fd == self.task_fd:
                    self._run_task()
                else:
                    self._serve(fd, slot)
            except Exception:
                self.log.exception("Unexpected error in worker thread")
            finally:
                slot.end()

    def _next_fd(self, slot: ThreadSlot) -> int | None:
        """The next ready fd: one already taken from epoll, else from epoll (None: nothing yet).

        Threads mark progress each time they take work or come back from epoll; when all of
        them are stuck in the app, the heartbeat stops and the arbiter kills us after
        ``timeout``.
        """
        pending = self.pending
        if pending:
            try:
                fd = pending.popleft()
            except IndexError:
                pass  # another thread took the last one
            else:
                self.progress = time.monotonic()
                return fd
        self.watching.add(slot)
        try:
            events = self.ep.poll(self.idle_wait, HARVEST if self.tuner.alone() else 1)
        finally:
            self.watching.discard(slot)
        self.progress = time.monotonic()
        if not events:
            return None
        if len(events) > 1:
            if self.tuner.alone():
                pending.extend(fd for fd, _ in events[1:])
            else:  # the pool grew while this thread waited: the new threads poll for these
                self._rearm(fd for fd, _ in events[1:])
        return events[0][0]

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on a pool thread (any thread may call this)."""
        self.tasks.append(task)
        os.eventfd_write(self.task_fd, 1)

    def _run_task(self) -> None:
        try:
            os.eventfd_read(self.task_fd)  # one count: one task
        except BlockingIOError:
            return
        finally:
            self._rearm((self.task_fd,))  # the next task goes to another waiting thread
        self.tasks.popleft()()

    def _rearm(self, fds: Iterable[int]) -> None:
        """Give events taken from epoll but not served back to it (their one-shot fired)."""
        for fd in fds:
            if fd in self.listening:
                self._rearm_listener(fd)
                continue
            try:
                self.ep.modify(fd, ARMED)
            except (OSError, ValueError):
                pass  # closed meanwhile by the sweep, or the epoll is gone

    def _accept(self, lfd: int, slot: ThreadSlot) -> None:
        self.in_accept.add(slot)
        try:
            session = self._take_connection(lfd, slot)
            if session is not None:
                self._take_queued(lfd)
        finally:
            self.in_accept.discard(slot)
        if session is not None:
            # Most clients send the request with the handshake's last ACK (and
            # TCP_DEFER_ACCEPT waits for it), so read it now instead of after a round trip
            # through epoll.
            self._read_and_rearm(session, slot, self.ep.register)

    def _take_connection(self, lfd: int, slot: ThreadSlot) -> Session | None:
        """Accept one connection and register it as this thread's; None when there was none."""
        if not self.accepting:
            return None  # an event taken before a graceful stop: the next worker takes it
        listening = self.listening[lfd]
        try:
            sock, peer = listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            self._rearm_listener(lfd)
            return None
        except OSError as exc:
            pause = self.gate.failed(exc, time.monotonic())
            if pause:
                self.resting[lfd] = time.monotonic() + pause  # re-armed by the monitor
            else:
                self._rearm_listener(lfd)
            return None
        try:
            session = self._register(sock, peer, listening.name, slot)
        finally:
            # Counted first, so that worker_connections holds; re-armed whatever happened.
            self._rearm_listener(lfd)
        return session

    def _take_queued(self, lfd: int) -> None:
        """Accept what else waits in the backlog, up to ACCEPT_BATCH, into epoll.

        One accept per listener event would let a busy pool take a new client only once per
        round of the ready connections, leaving it seconds in the backlog (wrk's 256 clients
        on threads = 8 timed out at 2 s); in epoll, its request takes its turn with the others.
        """
        listening = self.listening[lfd]
        for _ in range(ACCEPT_BATCH):
            if not self.accepting or len(self.sessions) >= self.cfg.worker_connections:
                return
            try:
                sock, peer = listening.accept()
            except OSError:
                return  # none left, or a failure the listener's next event reports
            session = self._register(sock, peer, listening.name, None)
            try:
                self.ep.register(session.fd, ARMED)
            except (OSError, ValueError):
                self._close(session, linger=0.0)  # the epoll is closed: the worker is stopping

    def _register(
        self, sock: socket.socket, peer: object, sockname: object, slot: ThreadSlot | None
    ) -> Session:
        """A new connection's session, counted (and claimed by ``slot``, when given)."""
        try:
            session = Session(sock, peer, sockname, self.ctx)
            if slot is not None:
                self.claims[session] = slot
            self.sessions[session.fd] = session
        except BaseException:
            sock.close()
            raise
        return session

    def _rearm_listener(self, lfd: int) -> None:
        if not self.accepting:
            return
        if len(self.sessions) >= self.cfg.worker_connections:
            self.paused.add(lfd)  # re-armed by _close (or the monitor) below the limit
            return
        try:
            self.ep.modify(lfd, ARMED)
        except (OSError, ValueError):
            pass  # the epoll is closed: the worker is stopping

    def _resume_listeners(self) -> None:
        """Re-arm listeners paused at worker_connections once there is room again."""
        while self.paused and len(self.sessions) < self.cfg.worker_connections:
            try:
                lfd = self.paused.pop()
            except KeyError:
                return
            self._rearm_listener(lfd)

    def _serve(self, fd: int, slot: ThreadSlot) -> None:
        session = self.sessions.get(fd)
        if session is None or self.claims.setdefault(session, slot) is not slot:
            return
        self._read_and_rearm(session, slot, self.ep.modify)

    def _read_and_rearm(
        self, session: Session, slot: ThreadSlot, arm: Callable[[int, int], None]
    ) -> None:
        """Serve what a claimed connection has sent, then give it back to epoll, or close it."""
        try:
            keep = session.read_ready()
            if keep:
                keep = self._follow(session, slot)
        except BaseException:
            self._close(session)
            raise
        if not keep:
            if session.h2_start is None:
                self._close(session)
            else:
                self._to_h2(session)
            return
        # The claim must go before re-arming: an event that fires in between would find the
        # connection claimed, be dropped, and leave the socket disarmed.
        self.claims.pop(session, None)
        try:
            arm(session.fd, ARMED)
        except (OSError, ValueError):
            pass  # closed meanwhile by a graceful stop, or the epoll is gone

    def _follow(self, session: Session, slot: ThreadSlot) -> bool:
        """Serve the connection's next requests while other threads watch epoll; False to close.

        A head still arriving goes back to epoll, where the sweep enforces its deadline.
        """
        policy = self.ctx.policy
        follows = session.transport.follows  # a TLS connection goes back to epoll at once
        while (
            follows
            and self.watching
            and not session.in_head
            and not policy.closing
            and not slot.retire
        ):
            slot.end()  # the wait below is the client's time, not a request's (see pool.py)
            slot.following = True
            data = session.wait_next()
            slot.following = False
            slot.begin()
            if data is None:
                return True
            if not session.take(data):
                return False
            # A body still arriving is most often already in the kernel: read it now rather
            # than after a round trip through epoll and another thread.
            if session.held is not None and not session.read_ready():
                return False
        return True

    def _to_h2(self, session: Session) -> None:
        """The client turned to HTTP/2: an I/O thread of its own serves the connection, and its
        streams come back to the pool as tasks. It stays counted in ``sessions``."""
        from corral.drivers.h2threads import H2Thread  # h2 is imported only when asked for

        try:
            self.ep.unregister(session.fd)
        except (OSError, ValueError):
            pass  # a new connection, not registered yet
        self.claims[session] = _H2
        assert session.h2_start is not None
        try:
            link = H2Thread(session, self.ctx, self.submit, self._h2_finished)
            link.start(*session.h2_start)
        except Exception as exc:
            self.log.debug("HTTP/2 hand-over failed: %s", exc)
            self._close(session)
            return
        self.h2conns[session] = link
        if self.ctx.policy.closing:  # it began after a graceful stop: GOAWAY at once
            link.shutdown()

    def _h2_finished(self, session: Session) -> None:
        self.h2conns.pop(session, None)
        self._close(session)

    def _close(self, session: Session, linger: float = LINGER_SECONDS) -> None:
        """Close a connection this thread has claimed."""
        fd = session.fd
        # Only this session's entry: the fd number may already belong to a newer connection.
        if self.sessions.get(fd) is session:
            del self.sessions[fd]
        session.close(linger)
        self.claims.pop(session, None)
        if self.paused:
            self._resume_listeners()
        if self.resting:
            self._wake_listeners(math.inf)  # a descriptor is free again

    # -- the main thread: signals, heartbeat, pool size, idle connections, graceful stop ----------

    def _monitor(self) -> None:
        wake_r = self.signal_pipe()
        next_sweep = 0.0
        stop_by = 0.0
        idle_wait = self.idle_wait
        while True:
            select.select([wake_r], [], [], MONITOR_INTERVAL)
            drain_pipe(wake_r)
            now = time.monotonic()
            # Threads mark progress as they take work (see _next_fd).
            if now - self.progress < 2 * idle_wait:
                self.heartbeat.notify()
            else:  # every thread is on a long request: show them, without a beat
                self.heartbeat.refresh()
            if self.alive and now >= next_sweep:
                self.parent_alive()
            if not self.alive and not stop_by:
                stop_by = now + max(self.cfg.graceful_timeout, 0)
                self._begin_stop(now)
            if now >= next_sweep or stop_by:
                next_sweep = now + 1.0
                self._sweep(now)
            self._wake_listeners(now)
            if stop_by and self._stopped(now >= stop_by):
                return
            self.tuner.tune()
            # Utilisation is busy threads over the pool's threads: a pool that cannot grow
            # (its bound, or CPU-bound work) with every thread busy is full.
            self.scoreboard.capacity = len(self.tuner.slots)
            # With other threads waiting for the GIL, a write that cannot block keeps it
            # (drivers/keepgil.py).
            self.ctx.sends.crowded(len(self.tuner.slots) > 1)

    def _begin_stop(self, now: float) -> None:
        """A graceful stop: a retiring worker stops accepting at once; when the whole server
        drains (TERM to the master), it first serves what is queued on the listeners."""
        self.ctx.policy.begin_stop(now)
        if not self.stopping():
            self._stop_accepting()
        for link in list(self.h2conns.values()):
            link.shutdown()

    def _stopped(self, late: bool) -> bool:
        """Whether the stop is done: nothing left to serve, or graceful_timeout is over.

        A draining worker goes on accepting while it has connections open or queued: it is
        alive for those anyway, and a connection still queued when the last worker lets go of
        the listeners would be reset. New requests are answered with Connection: close.
        """
        if self.accepting and (late or not (self.sessions or self._queued())):
            self._stop_accepting()
        return late or not (self.accepting or self.sessions or self.in_accept)

    def _queued(self) -> bool:
        """Whether a connection waits in a listener's backlog (or a thread is taking one)."""
        return bool(self.in_accept) or any_readable(self.listening)

    def _stop_accepting(self) -> None:
        self.accepting = False
        for lfd in self.listening:
            try:
                self.ep.unregister(lfd)
            except OSError:
                pass

    def _wake_listeners(self, now: float) -> None:
        """Accept again on listeners that rested after accept() failed (out of descriptors),
        once their rest is over; ``now`` = inf when a closed connection has freed one."""
        for lfd, until in list(self.resting.items()):
            # pop: another thread may be waking the same listener.
            if now >= until and self.resting.pop(lfd, None) is not None:
                self._rearm_listener(lfd)

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline, and idle ones once a stop caps their keepalive.

        An idle connection whose client has just sent something is left to the thread that
        epoll hands it to: closing it now would lose that request.
        """
        expired = []
        claims = self.claims
        policy = self.ctx.policy
        taken = set(self.pending)  # ready, waiting for a thread: not idle
        for session in list(self.sessions.values()):
            if session in claims or session.fd in taken:
                continue
            deadline = session.deadline
            if not session.in_head:
                deadline = policy.idle_deadline(session.idle_since, deadline)
            if now < deadline or (not session.in_head and session.has_input()):
                continue
            if claims.setdefault(session, _SWEEPER) is _SWEEPER:
                expired.append(session)
        self._resume_listeners()
        for session in expired:
            if session.in_head:
                session.expire()
            # No waiting here: the monitor sweeps every connection and beats the heartbeat,
            # and half a second per expired head would stall both.
            self._close(session, linger=0.0)
