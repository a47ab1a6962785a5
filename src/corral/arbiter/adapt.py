"""Adaptive mode (`workers = auto` with `threads = auto`): the worker count follows the load."""

from __future__ import annotations

from dataclasses import dataclass

# A server busier than this share of its capacity for a whole window wants another worker...
GROW_AT = 0.85
# ...and one idler than this for a whole long window can do with one fewer. The gap between the
# two, the windows and the pause after each change are the hysteresis that keeps it from
# oscillating: a change never undoes itself within SETTLE seconds.
SHRINK_AT = 0.30
GROW_WINDOW = 10.0
SHRINK_WINDOW = 60.0
SETTLE = 20.0
# A change back the other way (a worker added, then retired) waits this long after the first:
# a load near a line would otherwise flip the count at every SETTLE.
REVERSE_AFTER = 40.0
# Another worker only helps CPU-bound work when a core is left for it: the workers must be
# using less than the usable CPUs by this much.
CPU_HEADROOM = 0.5
# Memory per worker, with margin: what one more worker is counted at against the memory limit.
MEMORY_MARGIN = 1.25


@dataclass(frozen=True)
class Reading:
    """What the arbiter measured, over the windows above."""

    at: float  # time.monotonic()
    workers: int
    busy_short: float  # utilisation over GROW_WINDOW
    busy_long: float  # utilisation over SHRINK_WINDOW
    cpu: float  # cores the workers used over GROW_WINDOW, summed
    queue: float  # mean queue time over GROW_WINDOW, seconds
    rss: int  # mean resident bytes of one worker
    idle: float = float("inf")  # cores the whole machine left idle over GROW_WINDOW


@dataclass(frozen=True)
class Bounds:
    """The most and fewest workers: CPUs and memory set the most."""

    cpus: int
    memory_limit: int | None  # bytes, the cgroup's; None when unlimited
    fewest: int = 1

    def most(self, rss: int) -> int:
        """Workers that fit the CPUs (one each, and one for the waits) and the memory."""
        most = self.cpus + 1
        if self.memory_limit and rss > 0:
            most = min(most, int(self.memory_limit // (rss * MEMORY_MARGIN)))
        return max(self.fewest, most)


@dataclass(frozen=True)
class Decision:
    """A change of worker count (0: none) and why, as the log says it."""

    change: int
    reason: str


class Adapter:
    """Decides, from one reading at a time, whether to add or retire a worker."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.changed_at = float("-inf")
        self.last_change = 0  # +1 or -1: a change back the other way waits REVERSE_AFTER
        self.started_at: float | None = None

    def decide(self, r: Reading) -> Decision:
        """The change to make now, if any; the caller applies it and logs the reason."""
        if self.started_at is None:
            self.started_at = r.at
        if r.at - self.changed_at < SETTLE or r.at - self.started_at < GROW_WINDOW:
            return Decision(0, "settling")
        most = self.bounds.most(r.rss)
        if r.workers > most:
            return self._made(r, -1, f"over the bound of {most} workers (CPUs and memory)")
        # The cores are used when our workers use them, or when others on the machine do.
        cores_used = r.cpu >= self.bounds.cpus - CPU_HEADROOM or r.idle < CPU_HEADROOM
        if cores_used and r.workers > self.bounds.cpus:
            # Work that fills the cores gains nothing from more processes than cores: they
            # only take turns on them (and each costs its memory).
            return self._made(
                r, -1, f"the CPUs are used ({r.cpu:.1f} of {self.bounds.cpus}) by more workers"
            )
        if r.busy_short >= GROW_AT:
            if r.workers >= most:
                return Decision(0, f"busy, but at the bound of {most} workers")
            if cores_used:
                idle = "" if r.idle == float("inf") else f", {r.idle:.1f} idle on the machine"
                return Decision(
                    0, f"busy, but the CPUs are used ({r.cpu:.1f} of {self.bounds.cpus}{idle})"
                )
            return self._made(
                r, +1,
                f"utilisation {r.busy_short:.0%} over {GROW_WINDOW:g} s, queue "
                f"{r.queue * 1000:.1f} ms, CPU {r.cpu:.1f} of {self.bounds.cpus}",
            )  # fmt: skip
        if (
            r.busy_long <= SHRINK_AT
            and r.workers > self.bounds.fewest
            and r.at - self.started_at >= SHRINK_WINDOW
            and r.at - self.changed_at >= SHRINK_WINDOW
        ):
            return self._made(r, -1, f"utilisation {r.busy_long:.0%} over {SHRINK_WINDOW:g} s")
        return Decision(0, "steady")

    def _made(self, r: Reading, change: int, reason: str) -> Decision:
        if change == -self.last_change and r.at - self.changed_at < REVERSE_AFTER:
            # Undoing the last change this soon would be a flap: the load is near the line.
            return Decision(0, f"would undo the last change within {REVERSE_AFTER:g} s")
        self.changed_at = r.at
        self.last_change = change
        return Decision(change, reason)
