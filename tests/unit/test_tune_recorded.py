"""corral tune's search replayed on recorded grids: every configuration of the three reference
apps measured on this project's shared 2-core VM (tests/unit/tune_records/, from
benchmarks/tune_check.py), as they were and with extra noise."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from corral.tune.choose import pick
from corral.tune.model import Cell, Measurement
from corral.tune.search import Bounds, run_search

RECORDS = Path(__file__).parent / "tune_records"
BOUNDS = Bounds(cpus=2, kinds=("threaded", "sync"), max_workers=5, max_threads=128)


def recorded(app: str) -> tuple[Measurement, dict[Cell, Measurement]]:
    data = json.loads((RECORDS / f"{app}.json").read_text())
    grid = [Measurement.from_dict(m) for m in data["grid"]]
    return Measurement.from_dict(data["probe"]), {m.cell: m for m in grid}


def best_of(grid: dict[Cell, Measurement]) -> Measurement:
    return max(grid.values(), key=lambda m: m.rps)


def test_io_grows_threads_then_workers():
    probe, grid = recorded("io")
    steps, history = run_search(probe, BOUNDS, grid)
    chosen, _ = pick(history, BOUNDS, steps)
    assert chosen is not None
    assert [m.cell for m in history[:4]] == [Cell("threaded", 2, t) for t in (16, 32, 64, 128)]
    assert max(m.cell.workers for m in history) >= 4
    assert chosen.rps >= 0.9 * best_of(grid).rps  # 4x32: 9,338 against 5x32: 9,829
    assert len(history) <= BOUNDS.max_runs and steps[-1].reason.endswith("Search over.")


def test_cpu_keeps_one_thread_and_tries_the_sync_worker():
    probe, grid = recorded("cpu")
    steps, history = run_search(probe, BOUNDS, grid)
    chosen, _ = pick(history, BOUNDS, steps)
    assert chosen is not None and chosen.cell == best_of(grid).cell == Cell("threaded", 2, 1)
    assert max(m.cell.threads for m in history) <= 2
    assert any(m.cell.kind == "sync" for m in history)
    assert any("pool grew to 1 of its 2 threads" in s.reason for s in steps)
    assert "mostly computes" not in steps[0].reason  # the first step says where it starts


def test_mixed_stops_adding_threads_when_p99_climbs_then_spreads_them():
    """2x8 -> 2x16 lost 10 % and p99 rose 61 %: the threads stop there. 3x8 is no better, so
    the workers phase halves the threads and grows to 4x4, the fastest; 2x8, within a fifth of
    it, is measured again beside it and loses the pair by 13 %: 4x4 is the pick. (The grid's
    best, 2x128, was a lucky run: in turns, tune's 2x16 of the same day beat it by a third.)"""
    probe, grid = recorded("mixed")
    steps, history = run_search(probe, BOUNDS, grid)
    chosen, _ = pick(history, BOUNDS, steps)
    assert any("p99 climbed by 61%: stop adding threads" in s.reason for s in steps)
    assert any("Half the threads instead" in s.reason for s in steps)
    assert chosen is not None and chosen.cell == Cell("threaded", 4, 4)
    assert chosen.rps >= 0.85 * best_of(grid).rps


@pytest.mark.parametrize("app", ["io", "cpu", "mixed"])
def test_recorded_grids_with_more_noise(app: str):
    """Every run off by up to 10 % more: the pick stays within 25 % of the recorded best in
    nine seeds of ten, and never takes more than the run budget."""
    probe, grid = recorded(app)
    best = best_of(grid).rps
    good = 0
    for seed in range(30):
        rng = random.Random(seed)
        noisy = {c: replace(m, rps=m.rps * rng.uniform(0.9, 1.1)) for c, m in grid.items()}
        steps, history = run_search(probe, BOUNDS, noisy)
        assert len(history) <= BOUNDS.max_runs
        chosen, _ = pick(history, BOUNDS, steps)
        assert chosen is not None
        good += grid[chosen.cell].rps >= 0.75 * best
    assert good >= 27


# The pick's floor against the recorded best, which is one run: 0.67 (single runs are up to 20 %
# lucky: mixed-2's best, 5x8 at 3,774 req/s, is 19 % above the next). cpu-3's grid was measured
# at a load average of 5-10, other processes keeping 0 to 1.4 of the 2 CPUs busy from run to run:
# its best, 4x4 at 2,224 req/s, ran while they kept 0.2 busy, 2x1 (1,422) while they kept 0.5.
# In turns, tune's pick of that hour (2x2) measured 0.94 of 4x4.
FLOOR = {"cpu-3": 0.6}


@pytest.mark.parametrize(
    "record", ["io", "cpu", "mixed", "io-2", "cpu-2", "mixed-2", "io-3", "cpu-3", "mixed-3"]
)
def test_every_recorded_grid_gives_a_reasoned_pick_within_the_budget(record: str):
    """Every recorded run of each app: the pick is within a third of the recorded best (FLOOR),
    every step says why, and the budget holds. When the runner-up is within a fifth of the
    leader, both are measured again, back to back, in shorter runs (there was one shorter run,
    the leader's, when the means decided), and the pick is one of the two."""
    probe, grid = recorded(record)
    steps, history = run_search(probe, BOUNDS, grid)
    chosen, why = pick(history, BOUNDS, steps)
    assert chosen is not None and why
    assert grid[chosen.cell].rps >= FLOOR.get(record, 0.67) * best_of(grid).rps
    assert len(history) <= BOUNDS.max_runs
    assert all(step.reason for step in steps)
    again = [s for s in steps if s.window_share < 1.0]
    assert len(again) in (0, 2) and all(s.paired for s in again)
    if again:
        assert "both are measured again, back to back" in again[0].reason
        assert again[0].cell != again[1].cell and chosen.cell in (again[0].cell, again[1].cell)
        assert "Back to back" in steps[-1].reason and "Back to back" in why


# What a tune run costs beyond its runs' own seconds: the Python start and `corral
# --check-config` (1.3 s), and the app alone (0.5 s window, 0.2 s warm-up: 1.3-1.4 s), as measured
# against the full check's grid on the shared VM (tune_check.py --reuse-grid).
TUNE_OVERHEAD_S = 2.7


@pytest.mark.parametrize(
    "record", ["io", "cpu", "mixed", "io-2", "cpu-2", "mixed-2", "io-3", "cpu-3", "mixed-3"]
)
def test_tune_takes_under_a_fifth_of_the_grids_time(record: str):
    """Issue 21's time goal on the recorded grids: a run of tune's search takes as long as the
    grid's run of that configuration (the same --time and --warmup), a shorter run the share of
    the window less, and the whole under a fifth of the grid's 45 runs (today 10-19 %: io-3
    at 19 %, one of its searched cells, 2x64, having taken 7.6 s where a run averaged 5.25 s)."""
    probe, grid = recorded(record)
    steps, _ = run_search(probe, BOUNDS, grid)
    tune_s = TUNE_OVERHEAD_S + sum(
        grid[s.cell].seconds - (1 - s.window_share) * grid[s.cell].window_s
        for s in steps
        if s.cell is not None
    )
    assert tune_s < 0.2 * sum(m.seconds for m in grid.values())
