"""cpu_affinity: workers pinned one CPU each, threads included, and replacements take the gap."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from corral.arbiter.affinity import online_cpus
from tests.e2e.conftest import CorralProcess, threads_of, wait_until

Start = Callable[..., CorralProcess]
CAN_PIN = hasattr(os, "sched_getaffinity")
pytestmark = pytest.mark.skipif(not CAN_PIN, reason="this OS cannot pin processes")
ALLOWED = sorted(os.sched_getaffinity(0)) if CAN_PIN else []  # the arbiter inherits these
TWO_CPUS = pytest.mark.skipif(len(ALLOWED) < 2, reason="with one CPU, pinned looks unpinned")


def cpus_of(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def pinned_cpu(pid: int) -> int:
    """The one CPU a worker is pinned to, once it has pinned itself (just after fork)."""
    (cpu,) = wait_until(lambda: cpus_of(pid), lambda cpus: len(cpus) == 1, 10)
    return cpu


def thread_cpus(pid: int) -> list[set[int]]:
    """The CPUs each thread of a process may run on."""
    return [cpus_of(tid) for tid in threads_of(pid)]


def spread(count: int) -> list[int]:
    """Where `count` workers go over ALLOWED: fewest per CPU first, in CPU order."""
    return sorted(ALLOWED[i % len(ALLOWED)] for i in range(count))


@TWO_CPUS
def test_auto_pins_each_worker_and_its_threads_to_one_cpu(corral_factory: Start) -> None:
    # One worker more than two CPUs' worth, so that CPUs are shared on small machines too.
    workers = min(len(ALLOWED), 2) + 1
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", str(workers), "-k", "threaded", "--threads", "4",
        "--cpu-affinity", "auto", "simple:app",
    )  # fmt: skip
    pids = server.wait_workers(lambda p: len(p) == workers)
    placed = []
    for pid in pids:
        cpu = pinned_cpu(pid)
        # The monitor and the first pool thread (more start on demand), once started.
        threads = wait_until(lambda pid=pid: thread_cpus(pid), lambda t: len(t) >= 2, 10)
        assert all(t == {cpu} for t in threads), f"threads of {pid}: {threads}"
        placed.append(cpu)
    assert sorted(placed) == spread(workers)
    assert server.get()[0] == 200
    assert server.stop() == 0


@TWO_CPUS
def test_a_replacement_takes_the_cpu_its_predecessor_left(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "--cpu-affinity", "auto", "simple:app")
    pids = server.wait_workers(lambda p: len(p) == 2)
    by_cpu = {pinned_cpu(pid): pid for pid in pids}
    assert sorted(by_cpu) == ALLOWED[:2]
    # The worker on the second CPU: a replacement placed without regard to the gap would
    # land on the first one, as it is the first in order.
    victim = by_cpu[ALLOWED[1]]
    os.kill(victim, signal.SIGKILL)
    now = server.wait_workers(lambda p: victim not in p and len(p) == 2)
    (newcomer,) = now - pids
    assert pinned_cpu(newcomer) == ALLOWED[1]
    assert cpus_of(by_cpu[ALLOWED[0]]) == {ALLOWED[0]}
    assert server.stop() == 0


@TWO_CPUS
def test_by_default_a_server_on_every_cpu_is_not_pinned(corral_factory: Start) -> None:
    if len(ALLOWED) < len(online_cpus()):
        pytest.skip("this test runs on some of the machine's CPUs: the default pins there")
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "simple:app")
    server.wait_for("Booting worker", count=2)  # logged after the place a worker pins itself
    pids = server.wait_workers(lambda p: len(p) == 2)
    for pid in pids:
        assert cpus_of(pid) == set(ALLOWED)
    assert server.matches("cpu_affinity = exclusive: not pinning: it may run on every CPU")
    assert server.stop() == 0


@TWO_CPUS
def test_by_default_a_server_given_some_cpus_pins_its_workers(corral_factory: Start) -> None:
    # As taskset -c or a cpuset would: the arbiter inherits the last CPU alone.
    mine = ALLOWED[-1]
    os.sched_setaffinity(0, {mine})
    try:
        server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "simple:app")
    finally:
        os.sched_setaffinity(0, set(ALLOWED))
    pids = server.wait_workers(lambda p: len(p) == 2)
    assert all(pinned_cpu(pid) == mine for pid in pids)
    assert server.matches(
        f"cpu_affinity = exclusive: pinning each worker to a CPU: it has CPU {mine} "
    )
    assert server.get()[0] == 200
    assert server.stop() == 0


def test_a_bad_value_names_the_setting(corral_factory: Start) -> None:
    server = corral_factory("--cpu-affinity", "sometimes", "simple:app", wait=False)
    assert server.wait_exit() != 0
    text = wait_until(server.log_text, lambda text: "cpu_affinity" in text, 5)
    assert "cpu_affinity = 'sometimes' (from command line --cpu-affinity)" in text
