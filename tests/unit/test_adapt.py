"""Adaptive mode's decisions on recorded readings, noisy ones included: it grows under load
when a core is free, shrinks when idle for long, and never flaps."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from corral.arbiter.adapt import (
    GROW_WINDOW,
    REVERSE_AFTER,
    SETTLE,
    SHRINK_WINDOW,
    Adapter,
    Bounds,
    Reading,
)

MIB = 1 << 20
BASE = Reading(at=0.0, workers=2, busy_short=0.5, busy_long=0.5, cpu=0.5, queue=0.001, rss=60 * MIB)


def _run(adapter: Adapter, readings: list[Reading]) -> list[int]:
    """Apply each decision as the arbiter would; the worker counts after each reading."""
    workers = readings[0].workers
    counts = []
    for r in readings:
        workers += adapter.decide(replace(r, workers=workers)).change
        counts.append(workers)
    return counts


def _series(seconds: float, start: float = 0.0, **fields: float) -> list[Reading]:
    return [replace(BASE, at=start + t, **fields) for t in range(int(seconds))]  # type: ignore[arg-type]


def test_waits_for_its_first_window_before_any_change() -> None:
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    decision = adapter.decide(replace(BASE, busy_short=1.0))
    assert decision.change == 0 and decision.reason == "settling"


def test_grows_when_busy_and_a_core_is_free_then_settles() -> None:
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    counts = _run(adapter, _series(60, busy_short=0.95, cpu=1.0))
    assert counts[0] == 2 and counts[-1] > 2
    steps = [b - a for a, b in itertools.pairwise(counts) if b != a]
    assert all(step == 1 for step in steps)
    changes = [i for i in range(1, len(counts)) if counts[i] != counts[i - 1]]
    assert all(b - a >= SETTLE for a, b in itertools.pairwise(changes))


def test_does_not_grow_cpu_bound_work_past_the_cores() -> None:
    adapter = Adapter(Bounds(cpus=2, memory_limit=None))
    counts = _run(adapter, _series(120, busy_short=1.0, cpu=1.9))
    assert set(counts) == {2}
    assert "CPUs are used" in adapter.decide(replace(BASE, at=500, busy_short=1.0, cpu=1.9)).reason


def test_memory_limit_bounds_the_workers() -> None:
    bounds = Bounds(cpus=16, memory_limit=300 * MIB)
    assert bounds.most(60 * MIB) == 4  # 300 / (60 x 1.25)
    adapter = Adapter(bounds)
    counts = _run(adapter, _series(200, busy_short=1.0, cpu=0.5))
    assert max(counts) == 4


def test_shrinks_only_after_a_long_idle_window() -> None:
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    counts = _run(adapter, _series(SHRINK_WINDOW + 30, busy_short=0.1, busy_long=0.1))
    first_drop = next(i for i, c in enumerate(counts) if c < 2)
    assert first_drop >= SHRINK_WINDOW
    assert min(counts) == 1  # never below the fewest


@pytest.mark.parametrize("seed", range(5))
def test_noisy_load_around_one_level_does_not_flap(seed: int) -> None:
    """Utilisation jitters between 0.4 and 0.8, below the grow bar and above the shrink one:
    nothing changes, whatever the noise."""
    rng = random.Random(seed)
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    readings = [
        replace(BASE, at=float(t), busy_short=rng.uniform(0.4, 0.8), busy_long=0.6, cpu=1.0)
        for t in range(600)
    ]
    assert set(_run(adapter, readings)) == {2}


def test_a_load_that_comes_and_goes_changes_at_most_once_per_settle() -> None:
    """Bursts of 5 s busy, 5 s idle: the short window sees the bursts, but changes are spaced
    by SETTLE and shrinking waits for a whole idle minute, which never comes."""
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    readings = [
        replace(BASE, at=float(t), busy_short=1.0 if (t // 5) % 2 else 0.2, busy_long=0.6)
        for t in range(300)
    ]
    counts = _run(adapter, readings)
    changes = [t for t in range(1, 300) if counts[t] != counts[t - 1]]
    assert all(b - a >= SETTLE for a, b in itertools.pairwise(changes))
    assert all(b >= a for a, b in itertools.pairwise(counts))  # never back down
    assert (changes[0] if changes else GROW_WINDOW) >= GROW_WINDOW


def test_cpu_bound_work_on_more_workers_than_cores_sheds_one_at_a_time() -> None:
    adapter = Adapter(Bounds(cpus=2, memory_limit=None))
    counts = _run(adapter, _series(120, workers=3, busy_short=1.0, busy_long=1.0, cpu=1.9))
    assert counts[0] == 3 and counts[-1] == 2
    assert "CPUs are used" in adapter.decide(replace(BASE, at=500, workers=3, cpu=1.9)).reason


def test_a_change_back_waits_a_long_window() -> None:
    """Grown for waiting work, then computing work fills the cores at once: the worker goes
    again only a long window after it came (no flap on a load near the line)."""
    adapter = Adapter(Bounds(cpus=2, memory_limit=None))
    readings = _series(20, busy_short=1.0, cpu=0.3) + _series(
        120, start=20, busy_short=1.0, cpu=1.9
    )
    counts = _run(adapter, [replace(r, workers=2) for r in readings])
    grown = counts.index(3)
    shrunk = counts.index(2, grown)
    assert shrunk - grown >= REVERSE_AFTER


def test_a_machine_busy_with_others_has_no_core_to_give() -> None:
    adapter = Adapter(Bounds(cpus=4, memory_limit=None))
    counts = _run(adapter, _series(60, busy_short=1.0, cpu=0.5, idle=0.2))
    assert set(counts) == {2}


def test_holding_for_a_busy_machine_says_how_idle_it_was() -> None:
    adapter = Adapter(Bounds(cpus=2, memory_limit=None))
    adapter.decide(BASE)  # its first reading starts the window
    reason = adapter.decide(replace(BASE, at=500, busy_short=1.0, cpu=0.4, idle=0.3)).reason
    assert reason == "busy, but the CPUs are used (0.4 of 2, 0.3 idle on the machine)"
