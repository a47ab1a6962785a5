"""What the numbers were measured on: CPUs, CPU model, kernel, Python, load, tool versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """A description of the host, taken when the suite starts."""

    date: str
    nproc: int
    cpu_model: str
    kernel: str
    python: str
    load_at_start: str


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
