"""Where cpu_affinity = auto puts the next worker."""

from __future__ import annotations

import os
from typing import Any

import pytest

from corral.arbiter import affinity
from corral.arbiter.affinity import Placement, allowed_cpus, pick_cpu
from corral.arbiter.children import Child
from corral.arbiter.plan import Phase


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


def test_without_sched_getaffinity_no_cpu_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert allowed_cpus() == []


class Warnings:
    """Stands in for the arbiter's logger: keeps what was warned."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


def children_on(cpus: list[tuple[int, Phase]]) -> list[Child]:
    return [
        Child(None, None, 1, 0.0, phase, 0.0, cpu)  # type: ignore[arg-type]
        for cpu, phase in cpus
    ]


def test_a_replacement_takes_the_cpu_of_the_worker_told_to_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    # The worker on CPU 1 hung and was aborted; it is not reaped yet when its replacement forks.
    for going in (Phase.ABORTED, Phase.RETIRING, Phase.KILLED):
        children = children_on([(0, Phase.ACTIVE), (1, going)])
        assert Placement().next_cpu("auto", children, Warnings()) == 1  # type: ignore[arg-type]


def test_off_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert Placement().next_cpu("off", [], Warnings()) is None  # type: ignore[arg-type]


def test_an_os_that_cannot_pin_is_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    placement, log = Placement(), Warnings()
    assert placement.next_cpu("auto", [], log) is None  # type: ignore[arg-type]
    assert placement.next_cpu("auto", [], log) is None  # type: ignore[arg-type]
    assert log.lines == ["cpu_affinity = auto: this OS cannot pin processes; ignored"]
