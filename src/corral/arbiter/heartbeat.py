"""Worker liveness: an unlinked temp file whose mtime the worker bumps and the arbiter reads."""

from __future__ import annotations

import math
import mmap
import os
import stat
import tempfile
import time
from collections.abc import Callable

# tmpfs lives in RAM: bumping an mtime there never waits on a disk. On a disk-backed /tmp (or a
# container's overlay filesystem) every bump is a metadata write that can stall behind other I/O,
# and a worker stalled in its heartbeat looks hung to the arbiter.
_SHM = "/dev/shm"


def default_dir() -> str:
    """/dev/shm when it is a writable directory, else the platform's temp directory."""
    if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK | os.X_OK):
        return _SHM
    return tempfile.gettempdir()


class Heartbeat:
    """One worker's heartbeat, created by the arbiter before fork and shared with the child.

    The stored time is `time.monotonic()` written into the file's mtime (as gunicorn does), so a
    wall-clock jump neither kills healthy workers nor hides hung ones; CLOCK_MONOTONIC is one
    clock for every process on the machine. The file is unlinked at once, so nothing is left
    behind when processes die; the arbiter and the worker keep it alive through the open fd.
    """

    def __init__(
        self,
        tmpdir: str | None = None,
        *,
        min_interval: float = 1.0,
        owner: tuple[int, int] | None = None,
        board: int = 0,
    ) -> None:
        fd, path = tempfile.mkstemp(prefix="corral-heartbeat-", dir=tmpdir or default_dir())
        try:
            os.unlink(path)
            if owner is not None:
                # A worker that drops privileges must still be allowed to set the mtime.
                os.fchown(fd, *owner)
            now = time.monotonic()
            os.utime(fd, (now, now))
            # Read back, so `last_update() > created` means "notified since" without rounding noise.
            self.created = os.fstat(fd).st_mtime
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._min_interval = min_interval
        # -inf, not `created`: the child inherits this object, and its first notify() (the
        # "booted" signal) must always reach the file.
        self._last = -math.inf
        # `board` bytes of memory shared with the child (an anonymous MAP_SHARED mapping made
        # before fork), where the worker publishes its scoreboard (and, with metrics_bind, its
        # request counts) at each notify and the arbiter reads them: no system call, and the
        # file's mtime (the beat) is left alone. Pages nobody writes take no memory.
        self.board = mmap.mmap(-1, board) if board > 0 else None
        # Worker side: writes what it publishes into the board.
        self.publisher: Callable[[mmap.mmap], None] | None = None
        self._published = -math.inf

    def notify(self) -> None:
        """Tell the arbiter we are alive; cheap in a hot loop (one write per interval at most)."""
        now = time.monotonic()
        if now - self._last < self._min_interval:
            return
        self._last = now
        self.publish()
        os.utime(self._fd, (now, now))

    def publish(self) -> None:
        """Worker side: put what the publisher gives on the board (at each notify, and once
        more on the way out)."""
        if self.publisher is not None and self.board is not None:
            self._published = time.monotonic()
            self.publisher(self.board)

    def refresh(self) -> None:
        """Worker side: publish (at most once per interval) without beating: a worker whose
        requests all run long still shows them, while its silence still means it is stuck."""
        if time.monotonic() - self._published >= self._min_interval:
            self.publish()

    def published(self, size: int, offset: int = 0) -> bytes:
        """Arbiter side: ``size`` bytes of the board from ``offset`` (zeros until published)."""
        return b"" if self.board is None else self.board[offset : offset + size]

    def ask_replacement(self) -> None:
        """Worker side: ask the arbiter to boot a replacement, then retire this worker.

        The owner's execute bit, on a file nobody executes, carries the request on the file
        both processes already share, with no signal or pipe to add (the arbiter reads it with
        the heartbeat, see `asks_replacement`).
        """
        self._set_mode(stat.S_IXUSR)

    def asks_replacement(self) -> bool:
        """Arbiter side: whether the worker called `ask_replacement`."""
        return bool(os.fstat(self._fd).st_mode & stat.S_IXUSR)

    def tell_draining(self) -> None:
        """Arbiter side, before it sends TERM for a shutdown: the whole server is draining.

        A worker told so serves what waits in the listeners' backlog before it exits, and
        answers health checks with 503; a worker merely retired (HUP, TTOU, max_requests)
        stops accepting at once and leaves new connections to the others. The group's execute
        bit carries it, as the owner's carries `ask_replacement` the other way.
        """
        self._set_mode(stat.S_IXGRP)

    def draining(self) -> bool:
        """Worker side: whether the arbiter called `tell_draining`."""
        return bool(os.fstat(self._fd).st_mode & stat.S_IXGRP)

    def _set_mode(self, bit: int) -> None:
        os.fchmod(self._fd, stat.S_IMODE(os.fstat(self._fd).st_mode) | bit)

    def notified(self) -> bool:
        """Whether the worker has called notify() at least once (it has booted)."""
        return self.last_update() > self.created

    def last_update(self) -> float:
        """The monotonic time of the last notify() (or of creation, before the first one)."""
        return os.fstat(self._fd).st_mtime

    def fileno(self) -> int:
        """The file descriptor, -1 once closed."""
        return self._fd

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        if self.board is not None:
            self.board.close()
            self.board = None
