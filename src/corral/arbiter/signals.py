"""The arbiter's signal intake: handlers only queue; the loop sleeps on a wakeup fd."""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
from collections.abc import Iterable, Iterator, Mapping
from types import FrameType
from typing import Any

# The signals the arbiter acts on (gunicorn's set, plus CHLD so a dying worker wakes the loop).
HANDLED: tuple[signal.Signals, ...] = (
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCHLD,
)

# Like gunicorn: a burst of signals beyond this is dropped rather than queued without bound.
QUEUE_LIMIT = 5


def signal_name(signum: int) -> str:
    """`SIGTERM` -> "term", the suffix of the arbiter's handle_* method."""
    try:
        return signal.Signals(signum).name[3:].lower()
    except ValueError:
        return str(signum)


class SignalQueue:
    """Queues the arbiter's signals and wakes `wait()` through `signal.set_wakeup_fd`.

    The C-level handler writes a byte to the wakeup pipe as soon as a signal arrives, even while
    the main thread sits in poll(), so `wait()` never sleeps through a signal and never polls.
    The Python-level handler only appends to a bounded deque. CHLD is queued at most once at a
    time: the loop reaps every dead child on each wake, and a burst of worker deaths must not
    crowd TERM out of the queue.
    """

    def __init__(self, signals: Iterable[int] = HANDLED, limit: int = QUEUE_LIMIT) -> None:
        self.signals = tuple(signals)
        self.limit = limit
        self.dropped = 0
        self._queue: collections.deque[int] = collections.deque()
        self._previous: dict[int, Any] = {}
        self._read_fd = -1
        self._write_fd = -1
        self._old_wakeup_fd = -1

    def install(self) -> None:
        """Create the wakeup pipe and install the handlers (main thread only)."""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGCHLD and signum in self._queue:
            return
        if len(self._queue) >= self.limit:
            self.dropped += 1  # counted here, logged by the loop: a handler must not log
            return
        self._queue.append(signum)

    def wait(self, timeout: float) -> list[int]:
        """Signals queued so far, oldest first, waiting up to `timeout` seconds for one."""
        return self.wait_io(timeout, {})[0]

    def wait_io(
        self, timeout: float, watched: Mapping[int, int]
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """As `wait`, also waking when an fd in `watched` (fd -> poll events) is ready: the
        signals, and the (fd, events) that poll reported for the watched fds."""
        ready: list[tuple[int, int]] = []
        if (not self._queue and timeout > 0) or watched:
            poller = select.poll()
            poller.register(self._read_fd, select.POLLIN)
            for fd, events in watched.items():
                poller.register(fd, events)
            wait_ms = max(0, int(timeout * 1000) + 1) if not self._queue else 0
            ready = [event for event in poller.poll(wait_ms) if event[0] != self._read_fd]
        self._drain()
        out: list[int] = []
        while self._queue:
            out.append(self._queue.popleft())
        return out, ready

    def _drain(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def uninstall(self) -> None:
        """Restore the previous handlers and wakeup fd, and close the pipe."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._old_wakeup_fd)
        self._close()

    @contextlib.contextmanager
    def blocked_for_fork(self) -> Iterator[None]:
        """Hold our signals back across fork(); the child calls `reset_in_child()` after it.

        Without this, a TERM sent to a just-forked child would run the arbiter's handler in the
        child, land in a copy of the queue that nobody reads, and be lost: the worker would then
        serve on, never told to stop. Blocked, it stays pending until the child has default
        dispositions (or its own handlers).
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)

    def reset_in_child(self) -> None:
        """In a forked child: default dispositions, no wakeup fd, the pipe closed.

        The signals stay blocked (as they were across fork) until the worker has installed its
        own handlers and unblocks them (`Worker._install_signals`): a TERM sent while the worker
        boots is then a graceful stop once it can act on it, with its exit hooks, rather than the
        default action killing it mid-boot. None is queued in a copy of the arbiter's queue.
        """
        signal.set_wakeup_fd(-1)
        for signum in self.signals:
            signal.signal(signum, signal.SIG_DFL)
        self._previous.clear()
        self._queue.clear()
        self._close()

    def _close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1
