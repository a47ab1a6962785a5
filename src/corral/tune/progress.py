"""A one-line progress bar on stderr (plain ANSI and carriage returns), off when not a TTY."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

REDRAW_EVERY_S = 0.1


class Progress:
    """Draws `[####----] run 3/9  threaded 2x16  measuring  best ...`; prints lines above it."""

    def __init__(self, total_runs: int, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.total = max(1, total_runs)
        self.run = 0
        self.label = ""
        self.best = ""
        self._drawn = 0.0
        self._shown = False

    def start_run(self, run: int, label: str) -> None:
        """A new configuration starts (run counts from 1)."""
        self.run, self.label = run, label
        self.tick("starting", 0.0, force=True)

    def tick(self, what: str, fraction: float, force: bool = False) -> None:
        """Redraw (at most ten times a second) with `fraction` of the current run done."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < REDRAW_EVERY_S:
            return
        self._drawn = now
        self.stream.write("\r\x1b[2K" + self.render(what, fraction))
        self.stream.flush()
        self._shown = True

    def render(self, what: str, fraction: float) -> str:
        """The bar's text, fitted to the terminal's width."""
        done = min(1.0, (max(0, self.run - 1) + max(0.0, min(1.0, fraction))) / self.total)
        if not self.run:  # the app alone, before the runs the bar counts
            done = 0.0
        width = shutil.get_terminal_size((100, 20)).columns
        bar_width = 20
        filled = round(done * bar_width)
        where = f"run {self.run}/{self.total} " if self.run else ""
        text = f"[{'#' * filled}{'-' * (bar_width - filled)}] {where}{self.label}  {what}"
        if self.best:
            text += f"  best: {self.best}"
        return text[: max(10, width - 1)]

    def line(self, text: str) -> None:
        """Print a line that stays (the bar is redrawn below it on the next tick)."""
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self._shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False
