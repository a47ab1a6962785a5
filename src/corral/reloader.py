"""Code reloading for development (`reload`): a thread that polls source files' mtimes."""

from __future__ import annotations

import glob
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator


def module_files() -> Iterator[str]:
    """The source file of every loaded module that has one."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path:
            yield path[:-1] if path.endswith((".pyc", ".pyo")) else path


def expand(patterns: Iterable[str]) -> list[str]:
    """Extra files as given; entries with glob characters expand (recursively with `**`)."""
    out: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            out.extend(sorted(glob.glob(pattern, recursive=True)))
        else:
            out.append(pattern)
    return out


class Reloader(threading.Thread):
    """Calls `callback(path)` from a daemon thread when a watched file's mtime changes.

    Watched: the files of every module in sys.modules (rescanned each pass, so modules imported
    later are watched from when they appear) plus `extra_files`. A file that disappears is
    skipped; one that reappears with a new mtime counts as modified. Polling, rather than
    inotify, needs nothing installed and costs one stat per file per `interval`.
    """

    def __init__(
        self,
        extra_files: Iterable[str] = (),
        interval: float = 1.0,
        callback: Callable[[str], None] = lambda path: None,
    ) -> None:
        super().__init__(name="corral-reloader", daemon=True)
        self.extra_files = list(extra_files)
        self.interval = interval
        self.callback = callback
        self._stopped = threading.Event()
        self._mtimes: dict[str, float] = {}
        # The baseline is taken now, in the caller's thread, so that a change made between
        # construction and the thread's first pass is still seen as a change.
        self.check()

    def files(self) -> list[str]:
        """Every file watched right now."""
        return list(dict.fromkeys([*module_files(), *expand(self.extra_files)]))

    def check(self) -> list[str]:
        """One pass: record new files, return the ones whose mtime changed since the last pass."""
        changed: list[str] = []
        for path in self.files():
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            old = self._mtimes.setdefault(path, mtime)
            if mtime != old:
                self._mtimes[path] = mtime
                changed.append(path)
        return changed

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            for path in self.check():
                self.callback(path)

    def stop(self) -> None:
        """Ask the thread to end after its current pass."""
        self._stopped.set()
