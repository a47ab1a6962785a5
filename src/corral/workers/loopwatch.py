"""request_timeout on the asyncio worker: a watchdog thread for code holding the event loop."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from corral.gateway.ladder import RequestTimeout
from corral.workers.deadline import STOP_SIGNAL, Watchdog, thread_stack

if TYPE_CHECKING:
    from corral.logging import Logger


class LoopWatch(Watchdog):
    """The asyncio worker's watchdog: an event loop held past request_timeout by one callback.

    While app code blocks the loop (``time.sleep``, a synchronous client), no timer runs, so the
    loop cannot time its own requests. A thread watches the loop's beat instead: once it is
    ``limit`` old, the stack of the code holding the loop is logged, and when that code is a
    request's task, RequestTimeout is raised in it through STOP_SIGNAL (which also breaks a
    blocking call), so that request ends with 504 and the loop serves the others again.
    """

    thread_name = "loop-watchdog"

    def __init__(
        self,
        limit: float,
        log: Logger,
        loop: asyncio.AbstractEventLoop,
        claim: Callable[[asyncio.Task[Any]], bool],
    ) -> None:
        super().__init__()
        self.limit = limit
        self.log = log
        self.loop = loop
        self.claim = claim  # marks the task's request as timed out; False if it is no request
        self.last = time.monotonic()
        self.reported = 0.0  # the beat of the stall already reported
        self.suspect: tuple[float, object] | None = None  # (beat, task) of a stall seen once
        self.main_ident = threading.main_thread().ident or 0

    def beat(self) -> None:
        """From the loop, at least every limit/4 s: it is running."""
        self.last = time.monotonic()

    def check(self, now: float) -> None:
        """Report a stall once, and stop the request holding the loop if one does."""
        last = self.last
        if now - last < self.limit or self.reported == last:
            return
        # A stall must be seen twice, a tick apart, with no beat between and the same task
        # running. Seen once, it may have been the whole process stalling (another thread
        # holding the GIL in C code, a long garbage collection): the loop then beats as soon
        # as it runs again, and whatever task runs first is not the one to blame.
        holder = (last, asyncio.current_task(self.loop))
        if self.suspect != holder:
            self.suspect = holder
            return
        self.reported = last
        self.log.error(
            "The event loop has not run for %.1f s, over request_timeout (%g s); the code "
            "holding it (stopped if it serves a request):\n%s",
            now - last,
            self.limit,
            thread_stack(self.main_ident),
        )
        signal.pthread_kill(self.main_ident, STOP_SIGNAL)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        """In the main thread, inside the code holding the loop: stop it if it is a request."""
        if time.monotonic() - self.last < self.limit:
            return  # the loop ran again meanwhile
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop running
            return
        if task is not None and self.claim(task):
            raise RequestTimeout()
