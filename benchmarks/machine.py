"""What the numbers were measured on: CPUs, CPU model, kernel, Python, load, wake-up cost,
tool versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass

# Round trips timed per placement by wakeup_round_trip_us, after a few untimed ones.
WAKEUP_TRIPS = 2000
WAKEUP_WARMUP = 200


@dataclass(frozen=True)
class Machine:
    """A description of the host, taken when the suite starts."""

    date: str
    nproc: int
    cpu_model: str
    kernel: str
    python: str
    load_at_start: str
    wakeup: str = "not measured"


def cpu_model(cpuinfo: str) -> str:
    """The first `model name` in /proc/cpuinfo text (some ARM kernels give none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def wakeup_round_trip_us(cpus: tuple[int, int] | None, trips: int = WAKEUP_TRIPS) -> float:
    """Median µs for a byte to go to a child process through a pipe and come back.

    Each side sleeps in read() until the other writes, so a round trip is two wake-ups: what
    a thread pays when it hands the GIL on or is woken by the network. That cost moves with the
    host (on this project's shared VMs, `io` and gunicorn gthread move with it), so reports
    state it. ``cpus`` pins the parent and the child to those CPUs; None leaves them unpinned.
    """
    from_parent, to_child = os.pipe()
    from_child, to_parent = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: echo each byte until the parent closes its end
        try:
            os.close(to_child)
            os.close(from_child)
            if cpus is not None:
                os.sched_setaffinity(0, {cpus[1]})
            while os.read(from_parent, 1):
                os.write(to_parent, b"x")
        finally:
            os._exit(0)
    os.close(from_parent)
    os.close(to_parent)
    saved = os.sched_getaffinity(0)
    times: list[int] = []
    try:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[0]})
        clock = time.perf_counter_ns
        for i in range(WAKEUP_WARMUP + trips):
            start = clock()
            os.write(to_child, b"x")
            os.read(from_child, 1)
            if i >= WAKEUP_WARMUP:
                times.append(clock() - start)
    finally:
        os.sched_setaffinity(0, saved)
        os.close(to_child)
        os.close(from_child)
        os.waitpid(pid, 0)
    return statistics.median(times) / 1000


def wakeup_cost() -> str:
    """The wake-up round trip across two CPUs and on one, as the report's machine line says it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not hasattr(os, "fork"):
        return "not measured (needs two CPUs and fork)"
    across = wakeup_round_trip_us((cpus[0], cpus[1]))
    same = wakeup_round_trip_us((cpus[0], cpus[0]))
    return (
        f"{across:.1f} µs across two CPUs, {same:.1f} µs on one "
        "(median pipe round trip between two processes: two wake-ups)"
    )


def describe_machine() -> Machine:
    """Read the host's description now."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = cpu_model(f.read())
    except OSError:
        model = platform.processor() or "unknown"
    return Machine(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=model,
        kernel=f"{platform.system()} {platform.release()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        load_at_start=load_average(),
        wakeup=wakeup_cost(),
    )


def wrk_version(wrk: str) -> str:
    """wrk's version from the first line of `wrk -v` (which exits non-zero after printing it)."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    words = (done.stdout or done.stderr).split()
    return words[1] if len(words) > 1 and words[0] == "wrk" else "unknown"


def package_version(distribution: str) -> str | None:
    """An installed Python distribution's version, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
