"""What /proc and the cgroup files say about the server's processes and the machine's memory."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.arbiter.sizing import cgroup_memory_limit

PROC = Path("/proc")


def own_group() -> dict[str, Any]:
    """Popen arguments for a child in a process group of its own, in its parent's session
    (tune's servers and load generators, and the benchmark suite's servers).

    Its own group: a Ctrl-C at the terminal reaches the parent, not the child. The session: under
    the kernel's autogroup scheduling a session is a scheduling group, and a server and its
    load generators in sessions of their own would share the CPUs group against group, not as
    they do when started from one shell (benchmarks/README.md, "How a workload runs").
    """
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # Python 3.10 has no process_group


@dataclass(frozen=True)
class Usage:
    """One process's CPU time (all threads, ns precision) and run-queue wait, read at once."""

    cpu_s: float
    runq_s: float


def parse_stat(text: str) -> tuple[int, int, int, int]:
    """(ppid, num_threads, start_time, utime + stime in ticks) from /proc/<pid>/stat."""
    fields = text.rpartition(")")[2].split()
    # After comm: state(3) ppid(4) ... utime(14) stime(15) ... num_threads(20) ... starttime(22).
    return int(fields[1]), int(fields[17]), int(fields[19]), int(fields[11]) + int(fields[12])


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def stat_of(pid: int) -> tuple[int, int, int, int] | None:
    """parse_stat of a live process; None once it is gone."""
    text = _read(PROC / str(pid) / "stat")
    return None if text is None else parse_stat(text)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (one scan of /proc)."""
    found = []
    for entry in os.listdir(PROC):
        if entry.isdigit():
            stat = stat_of(int(entry))
            if stat is not None and stat[0] == pid:
                found.append(int(entry))
    return sorted(found)


def usage(pid: int) -> Usage | None:
    """CPU and run-queue time summed over the process's threads (schedstat: nanoseconds).

    /proc/<pid>/stat counts in clock ticks (10 ms), too coarse for a second of a worker that
    computes 30 ms in it; schedstat per thread is exact. A thread that exits between two reads
    takes its time with it, which the pool's threads rarely do within a measurement. Falls back
    to the ticks when schedstat is missing.
    """
    cpu = runq = 0.0
    try:
        tasks = os.listdir(PROC / str(pid) / "task")
    except OSError:
        return None
    for tid in tasks:
        text = _read(PROC / str(pid) / "task" / tid / "schedstat")
        if text is None:
            continue
        fields = text.split()
        cpu += int(fields[0]) / 1e9
        runq += int(fields[1]) / 1e9
    if cpu == 0.0:
        stat = stat_of(pid)
        if stat is None:
            return None
        return Usage(stat[3] / os.sysconf("SC_CLK_TCK"), 0.0)
    return Usage(cpu, runq)


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB. PSS splits pages shared after fork between the processes sharing them,
    so summed over the workers it is what they take together; RSS counts shared pages in each.
    PSS is 0 when smaps_rollup is missing (before Linux 4.14)."""
    rss = pss = 0
    for line in (_read(PROC / str(pid) / "status") or "").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in (_read(PROC / str(pid) / "smaps_rollup") or "").splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def host_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, from /proc/stat's cpu line."""
    text = _read(PROC / "stat") or ""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            ticks = os.sysconf("SC_CLK_TCK")
            return (sum(values) - idle) / ticks, sum(values) / ticks
    return 0.0, 0.0


def memory_limit() -> tuple[int | None, str]:
    """The memory limit the pick must fit in, in bytes, and where it comes from: the tightest
    cgroup limit on this process's path (v2 `memory.max` or v1 `memory.limit_in_bytes`, read
    by `corral.arbiter.sizing`), else the machine's RAM (MemTotal)."""
    limit = cgroup_memory_limit()
    if limit is not None:
        return limit, "the cgroup memory limit"
    total = meminfo_total()
    return total, "MemTotal in /proc/meminfo: no cgroup memory limit" if total else "unknown"


def meminfo_total() -> int | None:
    """MemTotal in bytes."""
    for line in (_read(PROC / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def begin_stop(pid: int, start_time: int, signum: int = signal.SIGINT) -> list[tuple[int, int]]:
    """Signal a server's master to stop (INT: corral's quick stop); returns its workers (PID,
    start time), listed first, so any the master leaves behind can be killed by PID."""
    workers = [(w, s[2]) for w in children(pid) if (s := stat_of(w)) is not None]
    _signal(pid, start_time, signum)
    return workers


def finish_stop(pid: int, start_time: int, workers: list[tuple[int, int]], grace: float) -> None:
    """Wait up to `grace` seconds for the master to exit, then KILL it and its workers by PID."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid, start_time):
        time.sleep(0.02)
    for victim, started in [(pid, start_time), *workers]:
        if _alive(victim, started):
            _signal(victim, started, signal.SIGKILL)


def _alive(pid: int, start_time: int) -> bool:
    stat = stat_of(pid)
    if stat is None:
        return False
    state = (_read(PROC / str(pid) / "stat") or "").rpartition(")")[2].split()[:1]
    return stat[2] == start_time and state != ["Z"]


def _signal(pid: int, start_time: int, signum: int) -> None:
    if _alive(pid, start_time):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
