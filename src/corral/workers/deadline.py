"""Per-request deadlines (request_timeout): log a late request's stack, then stop it."""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from corral.gateway.ladder import RequestTimeout

if TYPE_CHECKING:
    from corral.http.events import Request
    from corral.logging import Logger

# The signal that stops a request running in the main thread (the sync worker's). Python runs
# its handler in the main thread, between bytecodes or when a blocking call returns EINTR, so
# it reaches a request asleep in time.sleep or a socket read. SIGURG is ignored by default and
# is only sent for TCP urgent data to a process that asked for it with F_SETOWN; the Go
# runtime uses it for preemption for the same reasons. SIGALRM is left to apps (signal.alarm).
STOP_SIGNAL = signal.SIGURG


class Watchdog:
    """A daemon thread that calls ``check`` every ``tick`` seconds until stopped."""

    limit: float
    log: Logger
    thread_name = "watchdog"

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def start(self) -> None:
        """Install the stop signal's handler (main thread only) and start the thread."""
        signal.signal(STOP_SIGNAL, self._on_stop_signal)
        tick = max(0.05, min(1.0, self.limit / 4))
        threading.Thread(
            target=self._watch, args=(tick,), name=self.thread_name, daemon=True
        ).start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self, tick: float) -> None:
        while not self._stopped.wait(tick):
            try:
                self.check(time.monotonic())
            except Exception:  # a failed check must not end the watching for good
                self.log.exception("request_timeout's watchdog failed a check; it goes on")

    def check(self, now: float) -> None:
        raise NotImplementedError

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        raise NotImplementedError


class Watch:
    """One request in flight on one thread."""

    __slots__ = ("delivered", "fired", "ident", "owner", "peer", "req", "started")

    def __init__(self, owner: Deadlines, ident: int, req: Request, peer: str) -> None:
        self.owner = owner
        self.ident = ident
        self.req = req
        self.peer = peer
        self.started = time.monotonic()
        self.fired = 0.0  # when the watchdog stopped it (monotonic); 0 while in time
        self.delivered = False  # the stop signal's handler raised in it (main thread only)

    def end(self) -> None:
        """The request ended, or caught its RequestTimeout (see Deadlines.done)."""
        self.owner.done(self)


class Deadlines(Watchdog):
    """The requests in flight on a worker's threads, and the watchdog thread that times them.

    A request past ``limit`` gets its thread's stack logged and a RequestTimeout raised in it:
    through STOP_SIGNAL on the main thread, through ``PyThreadState_SetAsyncExc`` on another.
    The latter lands only when the thread next runs Python code, so a thread blocked in a call
    that never returns keeps its request; when a request is still running ``limit`` seconds
    after it was told to stop, ``on_stuck`` is called once (the worker asks the arbiter for a
    replacement, so the stuck thread does not hold the process forever).
    """

    thread_name = "request-watchdog"

    def __init__(self, limit: float, log: Logger, on_stuck: Callable[[], None]) -> None:
        super().__init__()
        self.limit = limit
        self.log = log
        self.on_stuck = on_stuck
        self.active: dict[int, Watch] = {}  # thread ident -> its request
        # Serialises the watchdog's decision to stop a request with the request's own end
        # (done), so a stop meant for one request never lands in the next one on that thread.
        self.lock = threading.Lock()
        self.main_ident = threading.main_thread().ident
        self.stuck_reported = False

    # -- the serving thread ------------------------------------------------------------------

    def begin(self, req: Request, peer: str) -> Watch:
        """A request starts on this thread."""
        watch = Watch(self, threading.get_ident(), req, peer)
        self.active[watch.ident] = watch  # one atomic step under the GIL
        return watch

    def done(self, watch: Watch) -> None:
        """The request ended (or caught its RequestTimeout): stop watching it.

        Call it inside the ``try`` that catches RequestTimeout: a stop raised a moment earlier
        may still land until the pending one is revoked here.
        """
        with self.lock:
            if self.active.get(watch.ident) is watch:
                del self.active[watch.ident]
            fired = watch.fired
        if fired and watch.ident != self.main_ident:
            _set_async_exc(watch.ident, None)  # revoke it, if it has not landed yet

    # -- the watchdog ------------------------------------------------------------------------

    def check(self, now: float) -> None:
        """Stop every request past its deadline; report one that would not stop."""
        for watch in list(self.active.values()):
            if now - watch.started < self.limit:
                continue
            if not watch.fired:
                self._stop(watch, now)
            elif now - watch.fired >= self.limit and not self.stuck_reported:
                self.stuck_reported = True
                self.log.error(
                    "%s has not stopped %.0f s after its request_timeout; asking for this "
                    "worker to be replaced. Stack:\n%s",
                    _describe(watch),
                    now - watch.fired,
                    thread_stack(watch.ident),
                )
                self.on_stuck()

    def _stop(self, watch: Watch, now: float) -> None:
        with self.lock:
            if self.active.get(watch.ident) is not watch:
                return  # it ended meanwhile
            # Logged before the stop, under the lock (the request's end waits for it), so the
            # stack is where the request was stuck and the log reads in order.
            self.log.error(
                "%s has run %.1f s, over request_timeout (%g s); stopping it. Stack:\n%s",
                _describe(watch),
                now - watch.started,
                self.limit,
                thread_stack(watch.ident),
            )
            watch.fired = now
            if watch.ident == self.main_ident:
                signal.pthread_kill(watch.ident, STOP_SIGNAL)
            else:
                _set_async_exc(watch.ident, RequestTimeout)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        """In the main thread: raise RequestTimeout in the request the watchdog stopped."""
        watch = self.active.get(threading.get_ident())
        if watch is not None and watch.fired and not watch.delivered:
            watch.delivered = True
            raise RequestTimeout()


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` when it next runs Python code (None: revoke it)."""
    # Imported here, not with the module: ctypes (with libffi) and asyncio would add ~6 MiB to
    # every WSGI worker's RSS, and only request_timeout's stops need ctypes.
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


def _describe(watch: Watch) -> str:
    req = watch.req
    return f"Request {req.method} {req.target} from {watch.peer or '-'}"


def thread_stack(ident: int) -> str:
    frame = sys._current_frames().get(ident)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"
