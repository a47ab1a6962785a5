"""The hot-path tools: hotpath.py's table, and the loops instructions.py runs under callgrind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import hotpath  # noqa: E402

STEPS = ("connection", "parse", "parse-new", "environ", "app+resp", "syscalls", "whole")
ROWS = (
    "parse",
    "environ",
    "app+resp",
    "syscalls",
    "whole",
    "lifecycle, driver, end of cycle",
    "parse, a head not seen before",
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_by_stage_takes_the_overlapping_steps_out() -> None:
    cost = {"connection": 2, "parse": 10, "environ": 1, "app+resp": 15, "syscalls": 3, "whole": 30}
    cost["parse-new"] = 40
    rows = dict(hotpath.by_stage(lambda step: cost[step]))
    assert rows["parse"] == 8  # a new connection is not parsing
    assert rows["app+resp"] == 5  # it parses first, from a new connection
    assert rows["whole"] == 30
    assert rows["lifecycle, driver, end of cycle (whole - the rest)"] == 30 - (8 + 1 + 5 + 3)
    # The parser's full cost is shown beside the table, not taken out of whole.
    assert rows["parse, a head not seen before (not in whole)"] == 38


def test_every_step_serves_wrks_request() -> None:
    calls = hotpath.stage_calls()
    assert tuple(calls) == STEPS
    for _ in range(3):
        for call in calls.values():
            call()  # whole() raises SystemExit if the session closed instead of answering


def test_hotpath_prints_every_stage() -> None:
    done = _run("benchmarks/hotpath.py", "--number", "200")
    assert done.returncode == 0, done.stderr
    for row in ROWS:
        assert re.search(rf"^\| {re.escape(row)}[^|]* \| -?\d+\.\d\d \|$", done.stdout, re.M), row


@pytest.mark.parametrize(
    "args",
    [
        ("--serve", "wrk", "50"),
        ("--serve", "browser", "50"),
        ("--serve", "browser-new", "50"),
        *(("--step", step, "50") for step in STEPS),
    ],
)
def test_the_loops_counted_under_callgrind_run(args: tuple[str, ...]) -> None:
    done = _run("benchmarks/instructions.py", *args)
    assert done.returncode == 0, done.stderr
