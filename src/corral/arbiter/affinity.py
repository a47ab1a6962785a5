"""CPU affinity for workers: each one pinned to a CPU of its own, spread over the allowed ones."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from corral.arbiter.plan import Phase
from corral.arbiter.sizing import CGROUP_ROOT, PROC_CGROUP, cgroup_cpu_quota, memberships

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


def online_cpus() -> list[int]:
    """The machine's online CPUs (Linux's /sys list), else 0 .. cpu_count - 1."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
        cpus: list[int] = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus += range(int(low), int(high or low) + 1)
        return cpus
    except (OSError, ValueError):
        return list(range(os.cpu_count() or 1))


def cpuset_exclusive(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> str | None:
    """How the kernel says our cpuset is ours alone, if it does: a cgroup v2 partition
    (`cpuset.cpus.partition` root or isolated), or cgroup v1's `cpuset.cpu_exclusive` below
    the root (the root cpuset is trivially exclusive)."""
    for controllers, path in memberships(proc_cgroup):
        names = controllers.split(",")
        if path.strip("/") == "" or not (controllers == "" or "cpuset" in names):
            continue
        base = (
            cgroup_root / path.strip("/")
            if controllers == ""
            else (cgroup_root / "cpuset" / path.strip("/"))
        )
        name = "cpuset.cpus.partition" if controllers == "" else "cpuset.cpu_exclusive"
        try:
            value = (base / name).read_text().split()[0]
        except (OSError, IndexError):
            continue
        if value in ("root", "isolated", "1"):
            return f"{name} = {value}"
    return None


def exclusive_reason(
    allowed: list[int], online: list[int], exclusive: str | None, quota: float | None
) -> tuple[bool, str]:
    """cpu_affinity = exclusive: whether to pin, and why, in words for the log.

    Pinning pays when the CPUs are this server's alone (a GIL hand-off between a worker's
    threads stays on one CPU); on CPUs that others share, a pinned worker cannot move off one
    they keep busy. The CPUs are ours when the kernel says so (an exclusive cpuset), or when
    we were given some CPUs of the machine, not all, and any CPU quota covers all of them:
    Kubernetes' static CPU manager gives a Guaranteed pod with whole CPUs exactly that, and
    `taskset`/`--cpuset-cpus` with a matching `--cpus` is a deliberate choice of the same kind.
    """
    span = _ranges(allowed)
    if not allowed:
        return False, "this OS cannot tell which CPUs the server may use"
    if exclusive is not None:
        return True, f"its cpuset ({span}) is exclusive ({exclusive})"
    if len(allowed) >= len(online):
        return False, f"it may run on every CPU of the machine ({span}), which others may share"
    if quota is not None and abs(quota - len(allowed)) >= 0.5:
        return False, (
            f"its CPU quota ({quota:g} CPUs) does not match its CPUs ({span}): they are shared"
        )
    cpus = "CPUs" if len(allowed) > 1 else "CPU"
    return True, f"it has {cpus} {span} of {_ranges(online)} to itself" + (
        f", with a quota of {quota:g} CPUs" if quota is not None else ""
    )


def _ranges(cpus: list[int]) -> str:
    """0,1,2,5 as "0-2,5"."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


class Placement:
    """cpu_affinity = auto (always) or exclusive (when the CPUs are ours): the CPU for each new
    worker, given the workers there are."""

    def __init__(self) -> None:
        self.warned = False
        self.decided: bool | None = None  # exclusive: decided once, at the first worker

    def next_cpu(self, setting: str, children: Iterable[Child], log: Logger) -> int | None:
        """The CPU the next worker is pinned to; None when it is not pinned."""
        if setting == "exclusive":
            if self.decided is None:
                quota = cgroup_cpu_quota(CGROUP_ROOT, PROC_CGROUP)
                self.decided, why = exclusive_reason(
                    allowed_cpus(), online_cpus(), cpuset_exclusive(), quota
                )
                verdict = "pinning each worker to a CPU" if self.decided else "not pinning"
                log.info("cpu_affinity = exclusive: %s: %s", verdict, why)
            if not self.decided:
                return None
        elif setting != "auto":
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
