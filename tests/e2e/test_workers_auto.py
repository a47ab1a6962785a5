"""`-w auto`: the arbiter sizes the workers to the CPUs it may use, and says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess

Start = Callable[..., CorralProcess]


ONE_CPU = ["taskset", "-c", str(min(os.sched_getaffinity(0)))]
HOOK = """
import sys

def on_starting(server):
    sys.stderr.write(f"hook: {server.num_workers} {server.cfg.workers}\\n")
"""


@pytest.mark.parametrize(("worker", "expected"), [("sync", 3), ("threaded", 1)])
def test_auto_on_one_cpu(corral_factory: Start, tmp_path: Path, worker: str, expected: int) -> None:
    conf = tmp_path / "hook.conf.py"
    conf.write_text(HOOK)
    server = corral_factory(
        "-c", str(conf), "-b", "127.0.0.1:0", "-w", "auto", "-k", worker, "simple:app",
        prefix=ONE_CPU,
    )  # fmt: skip
    # The first hook already sees the count that will run, in the server and its settings.
    server.wait_for(rf"^hook: {expected} {expected}$")
    server.wait_for(rf"workers = auto: {expected} {worker} workers for 1 usable CPU\(s\)")
    assert len(server.wait_workers(lambda pids: len(pids) == expected)) == expected
    assert server.get()[0] == 200
    assert server.stop() == 0


def test_print_config_shows_what_auto_comes_to() -> None:
    out = subprocess.run(
        [*ONE_CPU, sys.executable, "-m", "corral", "--print-config", "-w", "auto"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert re.search(r"^workers +=  *3  # command line -w$", out, re.MULTILINE), out
