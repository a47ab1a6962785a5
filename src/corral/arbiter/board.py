"""The arbiter's reading of its workers' scoreboards: utilisation, backlog, restarts by reason."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corral.arbiter.adapt import GROW_WINDOW, SHRINK_WINDOW, Reading
from corral.arbiter.children import resident_bytes
from corral.arbiter.heartbeat import Heartbeat
from corral.arbiter.scrape import Census
from corral.metrics import (
    BACKLOG,
    GUNICORN_BACKLOG,
    IN_FLIGHT,
    THREADS_BUSY,
    THREADS_IDLE,
    UTILISATION,
    Metrics,
)
from corral.scoreboard import REASONS, WorkerScore, ask_dump, percentile, read, read_dump

if TYPE_CHECKING:
    from corral.arbiter.children import Child

WINDOWS = (1.0, 10.0, 60.0)  # seconds over which utilisation is averaged
SAMPLE_EVERY = 0.5  # the arbiter's loop samples the boards at most this often
# struct tcp_info (linux/tcp.h): for a listening socket, tcpi_unacked is the number of
# connections waiting in the accept queue and tcpi_sacked the queue's size (its backlog).
_TCP_INFO_QUEUE = struct.Struct("=24xII")


def listen_queue(sock: socket.socket) -> tuple[int, int] | None:
    """(connections waiting to be accepted, backlog) of a TCP listener; None off Linux or
    for a unix socket, whose queue the kernel does not report."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(raw) < _TCP_INFO_QUEUE.size:
        return None
    waiting, backlog = _TCP_INFO_QUEUE.unpack_from(raw)
    return int(waiting), int(backlog)


@dataclass
class Sample:
    """A worker's cumulative counts at one moment, and its capacity then."""

    at: float
    busy: float
    capacity: int
    requests: int = 0
    queued: float = 0.0
    hist: list[int] = field(default_factory=list)
    cpu: float = 0.0  # the worker's process CPU seconds


@dataclass
class WorkerNow:
    """One worker as ``corral ctl`` and ``corral top`` show it."""

    score: WorkerScore
    utilisation: dict[float, float]  # window -> busy fraction of capacity


class Boards:
    """Every live worker's last scoreboard, its utilisation windows, and the workers' exits
    by reason (a counter that outlives them)."""

    def __init__(self) -> None:
        self._samples: dict[Heartbeat, deque[Sample]] = {}
        self._last: dict[Heartbeat, WorkerScore] = {}
        self._sampled = 0.0
        self._idle: deque[tuple[float, float]] = deque()  # (when, machine idle CPU seconds)
        self.restarts: Counter[str] = Counter({reason: 0 for reason in REASONS})

    def sample(self, heartbeats: Iterable[Heartbeat], now: float | None = None) -> None:
        """Read every board (at most every SAMPLE_EVERY); keep 60 s of busy time per worker."""
        now = time.monotonic() if now is None else now
        if now - self._sampled < SAMPLE_EVERY:
            return
        self._sampled = now
        idle = machine_idle()
        if idle is not None:
            self._idle.append((now, idle))
            while self._idle and now - self._idle[0][0] > WINDOWS[-1] + SAMPLE_EVERY:
                self._idle.popleft()
        live = set()
        for heartbeat in heartbeats:
            live.add(heartbeat)
            score = self.read(heartbeat)
            if score is None:
                continue
            samples = self._samples.setdefault(heartbeat, deque())
            samples.append(
                Sample(
                    now, score.busy, max(score.capacity, 1), score.requests, score.queued,
                    score.hist, score.cpu,
                )
            )  # fmt: skip
            while samples and now - samples[0].at > WINDOWS[-1] + SAMPLE_EVERY:
                samples.popleft()
        for gone in set(self._samples) - live:
            del self._samples[gone]
            self._last.pop(gone, None)

    def read(self, heartbeat: Heartbeat) -> WorkerScore | None:
        """A worker's scoreboard now (the last good one when this read is torn)."""
        board = heartbeat.board
        score = read(board) if board is not None else None
        if score is not None:
            self._last[heartbeat] = score
        return score or self._last.get(heartbeat)

    def utilisation(self, heartbeat: Heartbeat, window: float) -> float | None:
        """The worker's busy fraction of its capacity over the last ``window`` seconds."""
        samples = self._samples.get(heartbeat)
        if not samples or len(samples) < 2:
            return None
        last = samples[-1]
        first = next((s for s in samples if last.at - s.at <= window), samples[0])
        if first is last:
            first = samples[-2]
        span = last.at - first.at
        if span <= 0:
            return None
        return min(1.0, max(0.0, (last.busy - first.busy) / (span * last.capacity)))

    def rates(self, heartbeat: Heartbeat, window: float) -> dict[str, float]:
        """Over the last ``window`` seconds: requests per second, p50 and p99 (seconds, to a
        power of two of µs) and the mean queue time; empty until two samples exist."""
        samples = self._samples.get(heartbeat)
        if not samples or len(samples) < 2:
            return {}
        last = samples[-1]
        first = next((s for s in samples if last.at - s.at <= window), samples[0])
        if first is last:
            first = samples[-2]
        span, served = last.at - first.at, last.requests - first.requests
        out = {"req_per_s": served / span if span > 0 else 0.0}
        if served > 0:
            hist = [b - a for a, b in zip(first.hist, last.hist, strict=True)]
            for name, share in (("p50", 0.5), ("p99", 0.99)):
                value = percentile(hist, share)
                if value is not None:
                    out[name] = value
            out["queue_mean"] = (last.queued - first.queued) / served
        return out

    def detail(self, heartbeat: Heartbeat, window: float = 10.0) -> dict[str, object]:
        """What ``corral ctl show workers`` and ``corral top`` show of one worker beyond its
        pid and age: each thread (or in-flight request) with its current request and how long
        it has run, requests served, utilisation, and req/s, p50, p99, queue time over
        ``window``. Empty before the worker's first publish."""
        score = self.read(heartbeat)
        if score is None:
            return {}
        wall = time.time()
        threads: list[dict[str, object]] = []
        for slot in score.slots:
            row: dict[str, object] = {"state": "busy" if slot.busy else "idle"}
            if score.kind != "asyncio":
                row["requests"] = slot.requests
            if slot.busy:
                row.update(method=slot.method, path=slot.path, age=round(wall - slot.started, 3))
            threads.append(row)
        windows = {w: self.utilisation(heartbeat, w) for w in WINDOWS}
        return {
            "kind": score.kind,
            "rss": resident_bytes(score.pid),
            "requests": score.requests,
            "in_flight": score.inflight,
            "capacity": score.capacity,
            "utilisation": {f"{w:g}s": round(u, 4) for w, u in windows.items() if u is not None},
            **{k: round(v, 6) for k, v in self.rates(heartbeat, window).items()},
            "threads": threads,
        }

    def reading(self, heartbeats: Sequence[Heartbeat], now: float) -> Reading:
        """What adaptive mode decides on: utilisation over its two windows, the cores the
        workers used, the mean queue time and the mean worker's resident memory."""
        cpu = queued = 0.0
        served = rss = 0
        for heartbeat in heartbeats:
            samples = self._samples.get(heartbeat)
            if not samples or len(samples) < 2:
                continue
            last = samples[-1]
            first = next((s for s in samples if last.at - s.at <= GROW_WINDOW), samples[-2])
            if last.at > first.at:
                cpu += (last.cpu - first.cpu) / (last.at - first.at)
            served += last.requests - first.requests
            queued += last.queued - first.queued
            score = self._last.get(heartbeat)
            rss += resident_bytes(score.pid) if score is not None else 0
        count = max(len(heartbeats), 1)
        return Reading(
            at=now,
            workers=len(heartbeats),
            busy_short=self.server_utilisation(heartbeats, GROW_WINDOW),
            busy_long=self.server_utilisation(heartbeats, SHRINK_WINDOW),
            cpu=cpu,
            queue=queued / served if served else 0.0,
            rss=rss // count,
            idle=self._machine_idle(),
        )

    def _machine_idle(self) -> float:
        """Cores the machine left idle over GROW_WINDOW (infinite when unknown)."""
        if len(self._idle) < 2:
            return float("inf")
        at, idle = self._idle[-1]
        then, before = next(
            ((t, i) for t, i in self._idle if at - t <= GROW_WINDOW), self._idle[-2]
        )
        return (idle - before) / (at - then) if at > then else float("inf")

    def now(self, heartbeats: Iterable[Heartbeat]) -> list[WorkerNow]:
        """Each worker's scoreboard and utilisation, for a view."""
        out = []
        for heartbeat in heartbeats:
            score = self.read(heartbeat)
            if score is None:
                continue
            windows = {w: self.utilisation(heartbeat, w) for w in WINDOWS}
            out.append(WorkerNow(score, {w: u for w, u in windows.items() if u is not None}))
        return out

    def server_utilisation(self, heartbeats: Sequence[Heartbeat], window: float) -> float:
        """The whole server's busy fraction of its capacity over ``window`` (0 when unknown)."""
        busy = capacity = 0.0
        for heartbeat in heartbeats:
            samples = self._samples.get(heartbeat)
            share = self.utilisation(heartbeat, window)
            if share is None or not samples:
                continue
            busy += share * samples[-1].capacity
            capacity += samples[-1].capacity
        return busy / capacity if capacity else 0.0

    def exited(self, heartbeat: Heartbeat, reason: str | None, code: int) -> str:
        """Count a worker's exit under its reason: the arbiter's (``reason``: timeout, memory,
        request_timeout), else the worker's own (max_requests, reload), else a crash for a
        failure nobody asked for, else exit. Returns the reason counted."""
        score = self.read(heartbeat)
        told = score.reason if score is not None else "exit"
        if reason is None:
            reason = told if told != "exit" else ("crash" if code != 0 else "exit")
        self.restarts[reason] += 1
        self._samples.pop(heartbeat, None)
        self._last.pop(heartbeat, None)
        return reason

    def census(
        self,
        heartbeats: list[Heartbeat],
        target: int,
        resident: int,
        listeners: Iterable[socket.socket],
    ) -> Census:
        """What a scrape reports: the workers, what they do now, the backlog, the restarts."""
        census = Census(heartbeats, target, resident, restarts=dict(self.restarts))
        for worker in self.now(heartbeats):
            score = worker.score
            census.inflight += score.inflight
            if score.kind != "asyncio":
                busy = sum(1 for slot in score.slots if slot.busy)
                census.threads_busy += busy
                census.threads_idle += max(score.capacity, score.threads) - busy
        census.utilisation = {w: self.server_utilisation(heartbeats, w) for w in WINDOWS}
        census.backlog = backlog(listeners)
        return census

    def report(self, metrics: Metrics, census: Census, gunicorn_backlog: bool = False) -> None:
        """The same series as gauges for statsd (sent by the arbiter's loop, each second)."""
        metrics.gauge(IN_FLIGHT, census.inflight)
        metrics.gauge(THREADS_BUSY, census.threads_busy)
        metrics.gauge(THREADS_IDLE, census.threads_idle)
        for window, share in census.utilisation.items():
            metrics.gauge(f"{UTILISATION}{window:g}s", round(share, 4))
        if census.backlog is not None:
            metrics.gauge(BACKLOG, census.backlog[0])
            if gunicorn_backlog:
                metrics.histogram(GUNICORN_BACKLOG, census.backlog[0])


def backlog(listeners: Iterable[socket.socket]) -> tuple[int, int] | None:
    """Connections waiting in the TCP listeners' accept queues, and the queues' size, summed;
    None when no listener reports one (unix sockets only)."""
    found = [q for sock in listeners if (q := listen_queue(sock)) is not None]
    if not found:
        return None
    return sum(q[0] for q in found), sum(q[1] for q in found)


def machine_idle(stat: str = "/proc/stat") -> float | None:
    """The machine's idle CPU time so far, in seconds summed over its CPUs (idle + iowait of
    /proc/stat's first line); None off Linux."""
    try:
        with open(stat, "rb") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[4]) + int(fields[5])) / ticks
    except (OSError, ValueError, IndexError):
        return None


class ScoreboardDumps:
    """The workers' side of ``corral ctl dump``: the ask goes on the worker's board, SIGWINCH
    wakes it to answer there (workers/base.py), and the text is read back from the board."""

    def __init__(self) -> None:
        self._seq = 0

    def ask(self, child: Child) -> Callable[[], str | None]:
        """Ask ``child`` for the stacks of its running requests; the callable gives its text
        once written, None before (and for a worker gone meanwhile)."""
        board = child.heartbeat.board
        if board is None:
            return lambda: None
        self._seq += 1
        seq = self._seq
        ask_dump(board, seq)
        try:
            os.kill(child.worker.pid, signal.SIGWINCH)
        except ProcessLookupError:
            return lambda: None
        heartbeat = child.heartbeat
        return lambda: read_dump(board, seq) if heartbeat.board is not None else None
