"""The benchmark report's wake-up probe: a real pipe round trip between two real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine, tables  # noqa: E402
from benchmarks.suite import Options  # noqa: E402

CPUS = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize("placement", ["across", "one CPU", "unpinned"])
def test_round_trip_is_timed_and_the_affinity_restored(placement: str) -> None:
    if placement == "across" and len(CPUS) < 2:
        pytest.skip("needs two CPUs")
    cpus = {"across": (CPUS[0], CPUS[-1]), "one CPU": (CPUS[0], CPUS[0]), "unpinned": None}
    before = os.sched_getaffinity(0)
    us = machine.wakeup_round_trip_us(cpus[placement], trips=200)
    # Two wake-ups and four syscalls: more than a tenth of a µs, far less than a second.
    assert 0.1 < us < 1_000_000
    assert os.sched_getaffinity(0) == before


def test_one_cpu_is_reported_as_not_measured() -> None:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CPUS[0]})
    try:
        assert machine.wakeup_cost().startswith("not measured")
    finally:
        os.sched_setaffinity(0, before)


def test_report_states_the_wakeup_cost() -> None:
    host = machine.Machine("d", 2, "cpu", "Linux", "CPython", "0.00 0.00 0.00", "9.9 µs across")
    report = tables.render(host, "0.10 0.10 0.10", Options([], [], 1, 1, 1), [], {})
    assert "- Wake-up cost at start: 9.9 µs across" in report.splitlines()
