"""Pure supervision decisions: what to spawn, retire, abort and kill, and crash-loop backoff."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


class Phase(enum.Enum):
    """What the arbiter last did to a worker."""

    ACTIVE = "active"  # serving, or booting
    RETIRING = "retiring"  # sent TERM: finishing in-flight work, then exiting
    ABORTED = "aborted"  # hung: sent ABRT, so it logs its stacks and exits
    KILLED = "killed"  # sent KILL: waiting to be reaped


@dataclass(frozen=True)
class WorkerView:
    """One worker as the plan sees it. Times are `time.monotonic()` seconds."""

    pid: int
    age: int  # spawn order: lower is older
    generation: int  # bumped by every reload (HUP)
    spawned_at: float
    last_beat: float  # the heartbeat's last update (its creation time until the first notify)
    booted: bool  # it has notified its heartbeat at least once
    phase: Phase = Phase.ACTIVE
    phase_since: float = 0.0  # when the signal of the current phase was sent
    rss: int = 0  # resident memory in bytes; 0 when not measured (max_worker_memory off)
    booted_at: float = 0.0  # when the arbiter first saw it booted; 0.0 until then
    asks_replacement: bool = False  # a request on it would not stop (request_timeout)


@dataclass(frozen=True)
class Timing:
    """The deadlines the plan enforces."""

    timeout: float  # heartbeat age that counts as hung; <= 0 disables the check (as in gunicorn)
    graceful_timeout: float  # how long a retiring worker may take before it is killed
    kill_grace: float = 3.0  # how long an aborted worker may take to dump its stacks


@dataclass(frozen=True)
class Plan:
    """The actions for this turn of the loop, each to be applied in this order."""

    kill: tuple[int, ...] = ()  # SIGKILL: aborted or retiring workers past their deadline
    abort: tuple[int, ...] = ()  # SIGABRT: hung workers
    retire: tuple[int, ...] = ()  # SIGTERM, oldest first: surplus or previous-generation workers
    spawn: int = 0
    wake_at: float = math.inf  # the earliest time at which this plan can change by itself
    over_memory: tuple[int, ...] = ()  # of `retire`: those replaced for their resident memory
    asked: tuple[int, ...] = ()  # of `retire`: those replaced because they asked to be


# How long a worker serves, from its boot, before its memory is judged (max_worker_memory).
MEMORY_MIN_AGE = 3.0


def decide(
    desired: int,
    generation: int,
    workers: Sequence[WorkerView],
    now: float,
    timing: Timing,
    spawn_after: float = -math.inf,
    max_rss: int = 0,
) -> Plan:
    """Compare the desired state with the workers and say what to do now.

    `spawn_after` is the crash-loop backoff's earliest spawn time. Workers of an older
    generation are retired only as new ones boot, so a reload never leaves fewer than `desired`
    workers serving, and a new generation that cannot boot leaves the old one in place.
    A worker that asks to be replaced, or whose resident memory is over `max_rss` bytes (0: no
    limit), is replaced the same way: its replacement boots first, then it is retired (see
    `_to_replace`).
    """
    kill: list[int] = []
    abort: list[int] = []
    deadlines: list[float] = []
    active = _check_deadlines(workers, now, timing, kill, abort, deadlines)
    current = sorted((w for w in active if w.generation >= generation), key=lambda w: w.age)
    older = sorted((w for w in active if w.generation < generation), key=lambda w: w.age)
    replaced = _to_replace(current, workers, max_rss, now)
    if replaced is not None and len(current) - 1 <= desired:
        current.remove(replaced)
        older.append(replaced)  # the youngest of them: a previous generation's go first
    else:
        replaced = None  # or a surplus beside its replacement (TTOU) goes first, as usual
    retire = _retire(desired, current, older)
    now_retired = () if replaced is None or replaced.pid not in retire else (replaced.pid,)
    asked = replaced is not None and replaced.asks_replacement
    spawn = max(0, desired - len(current))
    if spawn and now < spawn_after:
        deadlines.append(spawn_after)
        spawn = 0
    return Plan(
        kill=tuple(kill),
        abort=tuple(abort),
        retire=tuple(retire),
        spawn=spawn,
        wake_at=min(deadlines, default=math.inf),
        over_memory=() if asked else now_retired,
        asked=now_retired if asked else (),
    )


def _check_deadlines(
    workers: Sequence[WorkerView],
    now: float,
    timing: Timing,
    kill: list[int],
    abort: list[int],
    deadlines: list[float],
) -> list[WorkerView]:
    """Sort hung and overdue workers into `abort` and `kill`; return the active rest.

    `deadlines` gets the time at which each worker left in place would be overdue.
    """
    active: list[WorkerView] = []
    for w in workers:
        if w.phase is Phase.ACTIVE:
            if timing.timeout > 0 and now - w.last_beat >= timing.timeout:
                abort.append(w.pid)
                continue
            active.append(w)
            if timing.timeout > 0:
                deadlines.append(w.last_beat + timing.timeout)
        elif w.phase is not Phase.KILLED:
            limit = timing.kill_grace if w.phase is Phase.ABORTED else timing.graceful_timeout
            if now - w.phase_since >= limit:
                kill.append(w.pid)
            else:
                deadlines.append(w.phase_since + limit)
    return active


def _to_replace(
    current: list[WorkerView], workers: Sequence[WorkerView], max_rss: int, now: float
) -> WorkerView | None:
    """The one worker to replace now: the oldest that asked, else the largest over `max_rss`.

    One at a time, and not while any worker is still retiring, so that what replacing costs
    at most is one fresh worker beside the one it replaces, on a host that is short of memory
    already. For memory, only workers that have served for MEMORY_MIN_AGE since they booted:
    a limit below what a fresh worker needs then replaces a worker every few seconds, each
    time with a warning that gives its age, rather than as fast as workers boot.
    """
    if any(w.phase is Phase.RETIRING for w in workers):
        return None
    asking = [w for w in current if w.booted and w.asks_replacement]
    if asking:
        return asking[0]
    if max_rss <= 0:
        return None
    over = [
        w for w in current if w.booted and w.rss > max_rss and now - w.booted_at >= MEMORY_MIN_AGE
    ]
    return max(over, key=lambda w: w.rss, default=None)


def _retire(desired: int, current: list[WorkerView], older: list[WorkerView]) -> list[int]:
    """Oldest first: surplus current workers, then old ones as new ones have booted."""
    if len(current) > desired:
        surplus = current[: len(current) - desired]
        return [w.pid for w in older] + [w.pid for w in surplus]
    booted_new = sum(1 for w in current if w.booted)
    n = max(0, len(older) + booted_new - desired)
    return [w.pid for w in older[:n]]


@dataclass(frozen=True)
class Exit:
    """How a worker ended, as the backoff needs to know it."""

    requested: bool  # we signalled it (retire, abort, kill, shutdown)
    booted: bool
    exit_code: int  # os.waitstatus_to_exitcode: negative for a signal
    uptime: float


# A worker that served for less than this before dying of an error counts as crash-looping.
MIN_UPTIME = 1.0


def is_crash(ex: Exit) -> bool:
    """Whether an exit is part of a crash loop: unrequested, and before or right after boot.

    A clean exit (code 0) of a booted worker is a normal recycle (max_requests, reload), however
    short its life was.
    """
    if ex.requested:
        return False
    if not ex.booted:
        return True
    return ex.exit_code != 0 and ex.uptime < MIN_UPTIME


@dataclass
class Backoff:
    """Exponential delay between spawns while workers keep crashing at boot.

    After the n-th crash in a row the next spawn waits `base * 2**(n-1)`, at most `cap` seconds.
    One worker that stays up for MIN_UPTIME after booting resets the count.
    """

    base: float = 0.5
    cap: float = 30.0
    failures: int = 0
    spawn_after: float = field(default=-math.inf)

    def record(self, ex: Exit, now: float) -> float:
        """Account for one exit; return the delay before the next spawn (0 when none)."""
        if not is_crash(ex):
            return 0.0
        self.failures += 1
        delay = self.delay()
        self.spawn_after = now + delay
        return delay

    def delay(self) -> float:
        """The current delay, for `failures` crashes in a row."""
        if self.failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(self.failures - 1, 64))

    def healthy(self, view: WorkerView, now: float) -> bool:
        """Reset after a worker that booted has stayed up; True when this call reset the count."""
        if self.failures and view.booted and now - view.spawned_at >= MIN_UPTIME:
            self.failures = 0
            self.spawn_after = -math.inf
            return True
        return False
