"""The benchmark harness end to end: a workload's servers take turns, round by round."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")


def test_servers_of_a_workload_run_in_turns_and_are_all_stopped() -> None:
    argv = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--workloads", "hello"]
    argv += ["--servers", "corral-sync,corral-threaded", "--runs", "2", "--duration", "1"]
    argv += ["--warmup", "0"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    turns = re.findall(r"^hello x (\S+), run (\d)/2$", done.stderr, re.MULTILINE)
    # Round by round, not server by server: run 1 of both comes before run 2 of either.
    assert turns == [
        ("corral-sync", "1"),
        ("corral-threaded", "1"),
        ("corral-sync", "2"),
        ("corral-threaded", "2"),
    ]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| hello |")]
    assert [row.split("|")[2].strip() for row in rows] == ["corral-sync", "corral-threaded"]
    assert "take turns" in done.stdout
    # Both servers were stopped: no process is left running in benchmarks/apps, their cwd.
    assert not _running_in(ROOT / "benchmarks" / "apps")


def _running_in(folder: Path) -> list[int]:
    """PIDs of the processes whose working directory is `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(proc / "cwd").resolve(strict=True) == folder:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
