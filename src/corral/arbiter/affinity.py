"""CPU affinity for workers: each one pinned to a CPU of its own, spread over the allowed ones."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from corral.arbiter.plan import Phase

if TYPE_CHECKING:
    from corral.arbiter.children import Child
    from corral.logging import Logger


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order; empty where the OS cannot tell (not Linux).

    A worker is pinned within this set, so `taskset`, a container's cpuset or systemd's
    CPUAffinity= on the arbiter still bound where the workers run.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return []
    return sorted(getaffinity(0))


def pick_cpu(allowed: list[int], taken: Iterable[int]) -> int | None:
    """The allowed CPU with the fewest workers on it (the first such one); None if none is.

    Chosen at each fork from the workers alive then, so a replacement takes the place of the
    worker it replaces, and more workers than CPUs share them evenly.
    """
    if not allowed:
        return None
    load = Counter(cpu for cpu in taken if cpu in allowed)
    return min(allowed, key=lambda cpu: load[cpu])


def pin_process(cpu: int) -> None:
    """Bind the calling process (and the threads it starts from now on) to one CPU.

    Raises OSError when the CPU is not available to it.
    """
    os.sched_setaffinity(0, {cpu})


class Placement:
    """cpu_affinity = auto: the CPU for each new worker, given the workers there are."""

    def __init__(self) -> None:
        self.warned = False

    def next_cpu(self, setting: str, children: Iterable[Child], log: Logger) -> int | None:
        """The CPU the next worker is pinned to; None when `setting` is not auto."""
        if setting != "auto":
            return None
        allowed = allowed_cpus()
        if not allowed and not self.warned:
            self.warned = True
            log.warning("cpu_affinity = auto: this OS cannot pin processes; ignored")
        # Only workers that stay count: one already told to go (hung, retired, killed) would
        # otherwise push its own replacement onto another CPU and leave its CPU idle.
        taken = (
            child.cpu for child in children if child.cpu is not None and child.phase is Phase.ACTIVE
        )
        return pick_cpu(allowed, taken)
