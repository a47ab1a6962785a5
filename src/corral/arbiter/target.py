"""The control socket's commands as the arbiter runs them (commands.ControlTarget)."""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from corral.arbiter.commands import (
    DUMP_TIMEOUT,
    Pending,
    ServerStats,
    StackCollection,
    config_view,
    listeners_view,
    worker_row,
)
from corral.arbiter.plan import Phase

if TYPE_CHECKING:
    from corral.arbiter.children import Child
    from corral.arbiter.scrape import MetricsService
    from corral.arbiter.watch import Watch
    from corral.config import Config
    from corral.sockets import Listener


class ControlCommands:
    """The Arbiter's thin side of each command: what it shows, and the signal each action is.

    A mixin of the Arbiter, kept apart so the supervision loop reads on its own.
    """

    pid: int
    cfg: Config
    listeners: list[Listener]
    num_workers: int
    _children: dict[int, Child]
    _metrics: MetricsService
    _watch: Watch
    _stats: ServerStats

    def _signal(self, pid: int, sig: int, phase: Phase | None = None) -> None:
        raise NotImplementedError

    def workers_view(self) -> list[dict[str, object]]:
        """Each live worker as `show workers` lists it (`commands.worker_row`), oldest first."""
        now = time.monotonic()
        children = sorted(self._children.values(), key=lambda child: child.worker.age)
        return [
            {**worker_row(c, now, self._metrics.served(c.heartbeat)), **self._watch.detail(c)}
            for c in children
        ]

    def stats_view(self) -> dict[str, object]:
        return self._stats.view(self.pid, len(self._children), self.num_workers)

    def config_view(self) -> dict[str, object]:
        return config_view(self.cfg)

    def listeners_view(self) -> list[dict[str, object]]:
        return listeners_view(self.listeners, self.cfg.scheme)

    def add_workers(self, count: int) -> tuple[int, int]:
        previous = self.num_workers
        self.num_workers = previous + count
        return previous, self.num_workers

    def remove_workers(self, count: int) -> tuple[int, int]:
        previous = self.num_workers  # never below 1, as TTOU; never up (0 after WINCH)
        self.num_workers = min(previous, max(1, previous - count))
        return previous, self.num_workers

    def kill_worker(self, pid: int) -> bool:
        """Retire one worker as TTOU retires the surplus; the plan spawns its replacement."""
        child = self._children.get(pid)
        if child is None:
            return False
        if child.phase is Phase.ACTIVE:  # one already going keeps its deadline
            self._signal(pid, signal.SIGTERM, Phase.RETIRING)
        return True

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)  # the signals' own path, logged as theirs are

    def reopen(self) -> None:
        os.kill(self.pid, signal.SIGUSR1)

    def shutdown(self, graceful: bool) -> None:
        os.kill(self.pid, signal.SIGTERM if graceful else signal.SIGINT)

    def dump_stacks(self) -> Pending:
        ask = self._watch.dumps.ask
        asks = [(c.worker.pid, c.worker.age, ask(c)) for c in self._children.values()]
        return StackCollection(asks, time.monotonic() + DUMP_TIMEOUT)
