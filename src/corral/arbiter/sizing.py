"""`workers = auto`: how many worker processes fit the CPUs this process may use."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.config import Config
    from corral.workers.base import Worker

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def resolve_workers(cfg: Config, cls: type[Worker]) -> int | None:
    """`workers = auto` (stored as 0): set `cfg.workers` to the count for this worker type and
    machine, and return the CPUs counted; None when a number was given.

    The count is written back into the settings, so hooks (`server.cfg.workers`), a worker's
    `cfg` and `--print-config` see the number that runs, never 0. Its recorded source stays
    where `auto` came from.
    """
    if cfg.workers > 0:
        return None
    cpus = usable_cpus()
    cfg.workers = auto_workers(cls.kind, cpus)
    return cpus


def auto_workers(kind: str, cpus: int) -> int:
    """Processes for `cpus` CPUs: 2 x CPUs + 1 for sync workers, one per CPU for the others.

    A sync worker cannot overlap one request's waits with another's, so extra processes cover
    the waits (gunicorn's documented rule of thumb). The threaded and asyncio workers overlap
    waits inside each process (the pool grows with demand), so one process per CPU keeps every
    CPU busy; more would only compete for the CPUs, and for a threaded worker a CPU of its own
    makes the GIL's hand-offs cheap (see cpu_affinity).
    """
    return 2 * cpus + 1 if kind == "sync" else cpus


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may run on, capped by its cgroup's CPU quota (containers).

    In a container with a CPU limit (Kubernetes `resources.limits.cpu`, `docker --cpus`),
    `os.cpu_count()` still reports every CPU of the host; the quota is what the process gets.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        # To the nearest whole CPU, at least one: 2.1 CPUs is 2, not 3 (which would start
        # 7 sync workers on 2 CPUs' worth of time); 0.5 CPU is 1.
        cpus = min(cpus, max(1, math.floor(quota + 0.5)))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup path; None when unlimited.

    cgroup v2 keeps it in `cpu.max` ("QUOTA PERIOD" or "max PERIOD"); v1 in
    `cpu.cfs_quota_us` (-1: none) and `cpu.cfs_period_us`, under the cpu controller's mount.
    A limit may sit on any ancestor, so every level from the process's cgroup up is read.
    """
    limits: list[float] = []
    for controllers, path in memberships(proc_cgroup):
        names = controllers.split(",")
        if controllers == "":
            limits += _levels(cgroup_root, path, _v2_quota)
        elif "cpu" in names:
            for mount in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (cgroup_root / mount).is_dir():
                    limits += _levels(cgroup_root / mount, path, _v1_quota)
                    break
    return min(limits, default=None)


def memberships(proc_cgroup: Path) -> list[tuple[str, str]]:
    """(controllers, path) for each line of /proc/self/cgroup ("" controllers: cgroup v2);
    none when it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    return [(f[1], f[2]) for line in lines if len(f := line.split(":", 2)) == 3]


def _levels(base: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas set on `path` and on each of its ancestors under `base`."""
    found = []
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(base.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def cgroup_memory_limit(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> int | None:
    """The tightest memory limit (bytes) on this process's cgroup path; None when unlimited.

    cgroup v2: `memory.max` ("max" or bytes); v1: `memory.limit_in_bytes` under the memory
    controller's mount, where "unlimited" is a huge number (above 2**60).
    """
    limits: list[float] = []
    for controllers, path in memberships(proc_cgroup):
        if controllers == "":
            limits += _levels(cgroup_root, path, lambda d: _bytes(d / "memory.max"))
        elif "memory" in controllers.split(","):
            base = cgroup_root / "memory"
            limits += _levels(base, path, lambda d: _bytes(d / "memory.limit_in_bytes"))
    return int(min(limits)) if limits else None


def _bytes(file: Path) -> float | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= 1 << 60:
        return None  # "max", or v1's "unlimited"
    return float(text)
