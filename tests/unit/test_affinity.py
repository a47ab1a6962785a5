"""Where cpu_affinity = auto puts the next worker."""

from __future__ import annotations

import os

import pytest

from corral.arbiter.affinity import allowed_cpus, pick_cpu


@pytest.mark.parametrize(
    ("allowed", "taken", "expected"),
    [
        ([0, 1], [], 0),
        ([0, 1], [0], 1),
        ([0, 1], [0, 1], 0),
        ([0, 1], [1], 0),  # a replacement fills the gap, whatever its place in the order
        ([0, 1, 2, 3], [0, 1, 3], 2),
        ([2, 5], [2, 2, 5], 5),
        ([2, 5], [0, 1, 7], 2),  # workers pinned outside the set (it shrank) do not count
        ([], [0], None),  # the OS cannot pin: nothing is chosen
    ],
)
def test_pick_cpu(allowed: list[int], taken: list[int], expected: int | None) -> None:
    assert pick_cpu(allowed, taken) == expected


def test_workers_forked_one_by_one_spread_evenly() -> None:
    allowed = [0, 1, 2]
    placed: list[int] = []
    for _ in range(7):
        cpu = pick_cpu(allowed, placed)
        assert cpu is not None
        placed.append(cpu)
    assert sorted(placed) == [0, 0, 0, 1, 1, 2, 2]


def test_allowed_cpus_are_this_process_s() -> None:
    assert allowed_cpus() == sorted(os.sched_getaffinity(0))
