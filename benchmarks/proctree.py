"""A server's process tree from /proc: its peak summed RSS while under load, and stopping it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SAMPLE_INTERVAL_S = 0.1
# Rescanning all of /proc costs a few ms; the tree changes rarely (a worker respawns), so the list
# of PIDs is refreshed once a second and only their VmRSS lines are read every 100 ms.
RESCAN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that identify a process and its parent."""

    pid: int
    ppid: int
    start_time: int  # clock ticks since boot: tells a PID apart from a later reuse of it


def parse_stat(text: str) -> ProcStat:
    """Parse /proc/<pid>/stat; comm (field 2) may hold spaces and parentheses, so split after it."""
    pid_part, _, rest = text.rpartition(")")
    fields = rest.split()
    # After comm: state(3) ppid(4) ... starttime(22), i.e. indexes 0, 1 and 19 of `fields`.
    pid = int(pid_part.split("(", 1)[0])
    return ProcStat(pid=pid, ppid=int(fields[1]), start_time=int(fields[19]))


def parse_vmrss_kib(status_text: str) -> int:
    """VmRSS in KiB from /proc/<pid>/status; 0 for a process without one (a zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """root and every process below it, given a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found = [root]
    seen = {root}
    index = 0
    while index < len(found):  # each PID enters once, so this ends after len(parents) + 1 steps
        for child in children.get(found[index], ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
        index += 1
    return found


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:  # the process exited between listing and reading
        return None


def read_proc_stats() -> dict[int, ProcStat]:
    """Every process now in /proc."""
    stats: dict[int, ProcStat] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text is not None:
                stat = parse_stat(text)
                stats[stat.pid] = stat
    return stats


def process_tree(root: int) -> list[ProcStat]:
    """The processes of root's tree that exist now."""
    stats = read_proc_stats()
    parents = {pid: stat.ppid for pid, stat in stats.items()}
    return [stats[pid] for pid in descendants(root, parents) if pid in stats]


def tree_rss_kib(pids: Iterable[int]) -> int:
    """Summed VmRSS of these processes (pages shared after fork count once per process)."""
    total = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/status")
        if text is not None:
            total += parse_vmrss_kib(text)
    return total


def tree_cpu_s(root: int) -> float:
    """User plus system CPU seconds the live processes of root's tree have used so far (their
    threads included; a process that has exited no longer counts)."""
    ticks = 0
    for stat in process_tree(root):
        text = _read(f"/proc/{stat.pid}/stat")
        if text is not None:
            fields = text.rpartition(")")[2].split()  # fields 14 and 15: utime, stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process tree's summed RSS every 100 ms on a thread; keeps the peak and the PIDs."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self.seen: dict[int, ProcStat] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        pids: list[int] = []
        rescan_at = 0.0
        while not self._stop.is_set():  # ends when __exit__ sets the event
            now = time.monotonic()
            if now >= rescan_at:
                tree = process_tree(self.root)
                self.seen.update((s.pid, s) for s in tree)
                pids = [s.pid for s in tree]
                rescan_at = now + RESCAN_INTERVAL_S
            self.peak_kib = max(self.peak_kib, tree_rss_kib(pids))
            self._stop.wait(SAMPLE_INTERVAL_S)


def _same_process(stat: ProcStat) -> bool:
    text = _read(f"/proc/{stat.pid}/stat")
    return text is not None and parse_stat(text).start_time == stat.start_time


def stop_tree(proc: subprocess.Popen[bytes], known: Iterable[ProcStat], timeout_s: float) -> None:
    """SIGTERM the server's main process, SIGKILL it after timeout_s, then SIGKILL by PID any
    process of its tree still alive (checked by start time, so a reused PID is left alone)."""
    tree = {s.pid: s for s in known}
    if proc.poll() is None:
        tree.update((s.pid, s) for s in process_tree(proc.pid))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    for stat in tree.values():
        if stat.pid != proc.pid and _same_process(stat):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stat.pid, signal.SIGKILL)
