"""Where cpu_affinity = auto puts the next worker, and when exclusive pins at all."""

from __future__ import annotations

import os
from pathlib import Path
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

    info = warning


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


@pytest.mark.parametrize(
    ("allowed", "online", "exclusive", "quota", "pin", "words"),
    [
        ([0, 1], [0, 1], None, None, False, "every CPU of the machine (0-1)"),
        ([0, 1, 2, 3], [0, 1, 2, 3], None, 2.0, False, "every CPU of the machine (0-3)"),
        ([2, 3], list(range(8)), None, 2.0, True, "CPUs 2-3 of 0-7 to itself, with a quota"),
        ([2, 3], list(range(8)), None, None, True, "CPUs 2-3 of 0-7 to itself"),
        ([2, 3, 5], list(range(8)), None, 1.5, False, "quota (1.5 CPUs) does not match"),
        ([0, 1], [0, 1], "cpuset.cpus.partition = isolated", None, True, "is exclusive"),
        ([], [0, 1], None, None, False, "cannot tell"),
    ],
)
def test_exclusive_pins_only_cpus_that_are_the_servers(
    allowed: list[int],
    online: list[int],
    exclusive: str | None,
    quota: float | None,
    pin: bool,
    words: str,
) -> None:
    decided, why = affinity.exclusive_reason(allowed, online, exclusive, quota)
    assert decided is pin and words in why, why


def test_the_kernels_exclusive_cpuset_is_read_for_v1_and_v2(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("3:cpuset:/pod/a\n0::/pod/b\n")
    (tmp_path / "cpuset/pod/a").mkdir(parents=True)
    (tmp_path / "cpuset/pod/a/cpuset.cpu_exclusive").write_text("0\n")
    (tmp_path / "pod/b").mkdir(parents=True)
    (tmp_path / "pod/b/cpuset.cpus.partition").write_text("root\n")
    assert affinity.cpuset_exclusive(tmp_path, proc) == "cpuset.cpus.partition = root"
    (tmp_path / "pod/b/cpuset.cpus.partition").write_text("member\n")
    assert affinity.cpuset_exclusive(tmp_path, proc) is None
    (tmp_path / "cpuset/pod/a/cpuset.cpu_exclusive").write_text("1\n")
    assert affinity.cpuset_exclusive(tmp_path, proc) == "cpuset.cpu_exclusive = 1"
    proc.write_text("3:cpuset:/\n")  # the root cpuset is exclusive by construction: not ours
    assert affinity.cpuset_exclusive(tmp_path, proc) is None


def test_exclusive_decides_once_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity, "allowed_cpus", lambda: [2, 3])
    monkeypatch.setattr(affinity, "online_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(affinity, "cpuset_exclusive", lambda: None)
    monkeypatch.setattr(affinity, "cgroup_cpu_quota", lambda root, proc: None)
    placement, log = Placement(), Warnings()
    assert placement.next_cpu("exclusive", [], log) == 2  # type: ignore[arg-type]
    assert placement.next_cpu("exclusive", [], log) == 2  # type: ignore[arg-type]
    assert log.lines == [
        "cpu_affinity = exclusive: pinning each worker to a CPU: it has CPUs 2-3 of 0-3 to itself"
    ]
    decided, why = affinity.exclusive_reason([1], [0, 1], None, None)
    assert decided and why == "it has CPU 1 of 0-1 to itself"
    assert affinity.exclusive_reason([0, 1, 2, 5], list(range(8)), None, 4.0)[1] == (
        "it has CPUs 0-2,5 of 0-7 to itself, with a quota of 4 CPUs"
    )
