"""The arbiter's watch over what its workers do: scoreboards, statsd gauges, adaptive mode."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from corral.arbiter.adapt import Adapter, Bounds
from corral.arbiter.board import Boards, ScoreboardDumps
from corral.arbiter.children import Child, resident_bytes
from corral.arbiter.plan import Phase
from corral.arbiter.scrape import Census
from corral.arbiter.sizing import cgroup_memory_limit
from corral.metrics import RESTARTS

if TYPE_CHECKING:
    from corral.logging import Logger

REPORT_EVERY = 1.0  # seconds between statsd's activity gauges


class Watch:
    """Reads the workers' scoreboards for the metrics, ``corral ctl`` and ``corral top``, counts
    their exits by reason, and in adaptive mode decides the number of workers."""

    def __init__(self, log: Logger, statsd: bool, backlog_metric: bool = False) -> None:
        self.log = log
        self.statsd = statsd
        self.backlog_metric = backlog_metric  # enable_backlog_metric: gunicorn.backlog too
        self.boards = Boards()
        self.dumps = ScoreboardDumps()
        self.adapter: Adapter | None = None
        self.changes: Counter[str] = Counter(up=0, down=0)
        self._reported = 0.0
        self._holding = ""  # why adaptive mode last held the count, without its figures

    def adaptive(self, cpus: int, fewest: int = 1) -> None:
        """`workers = auto` with `threads = auto`: the worker count follows the load."""
        limit = cgroup_memory_limit()
        self.adapter = Adapter(Bounds(cpus, limit, fewest))
        self.log.info(
            "Adaptive mode: workers follow the load, from %d up to %d (CPUs + 1%s)",
            fewest,
            cpus + 1,
            f", and what fits in {limit // (1 << 20)} MiB" if limit else "",
        )

    def census(
        self, children: Iterable[Child], target: int, listeners: Iterable[socket.socket]
    ) -> Census:
        """The live workers and what they do now, as a scrape (or statsd) reports them."""
        children = list(children)
        resident = sum(resident_bytes(child.worker.pid) for child in children)
        heartbeats = [child.heartbeat for child in children]
        census = self.boards.census(heartbeats, target, resident, listeners)
        census.adaptive = dict(self.changes) if self.adapter is not None else None
        return census

    def tick(
        self,
        children: Iterable[Child],
        target: int,
        listeners: Iterable[socket.socket],
        now: float,
    ) -> int:
        """Sample the boards; send statsd's gauges each second; return the number of workers
        wanted (``target`` unless adaptive mode changes it, which is logged with its reason)."""
        children = list(children)
        self.boards.sample([child.heartbeat for child in children], now)
        if self.statsd and now - self._reported >= REPORT_EVERY:
            self._reported = now
            census = self.census(children, target, listeners)
            self.boards.report(self.log.metrics, census, self.backlog_metric)
        if self.adapter is None:
            return target
        serving = [c.heartbeat for c in children if c.phase is Phase.ACTIVE]
        decision = self.adapter.decide(self.boards.reading(serving, now))
        if not decision.change:
            # Why it holds, at debug, each time the reason (not its figures) changes: the
            # answer to "why did it not add a worker?".
            kind = decision.reason.split(" (")[0]
            if kind != self._holding:
                self._holding = kind
                self.log.debug("Adaptive mode holds at %d workers: %s", target, decision.reason)
            return target
        self._holding = ""
        wanted = max(self.adapter.bounds.fewest, target + decision.change)
        if wanted != target:
            self.changes["up" if wanted > target else "down"] += 1
            self.log.info("Adaptive mode: %d -> %d workers: %s", target, wanted, decision.reason)
        return wanted

    def exited(self, child: Child, code: int) -> None:
        """Count a worker's exit under its reason (before its heartbeat closes)."""
        reason = self.boards.exited(child.heartbeat, child.exit_reason, code)
        self.log.metrics.incr(RESTARTS + reason)

    def detail(self, child: Child) -> dict[str, object]:
        """What ``show workers`` adds to a worker's row (see Boards.detail)."""
        return self.boards.detail(child.heartbeat)
