"""cpu_affinity: workers pinned one CPU each, threads included, and replacements take the gap."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess, wait_until

Start = Callable[..., CorralProcess]
ALLOWED = sorted(os.sched_getaffinity(0))  # the arbiter inherits this test's CPUs


def cpus_of(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def thread_cpus(pid: int) -> list[set[int]]:
    """The CPUs each thread of a process may run on."""
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


def spread(count: int) -> list[int]:
    """Where `count` workers go over ALLOWED: fewest per CPU first, in CPU order."""
    return sorted(ALLOWED[i % len(ALLOWED)] for i in range(count))


def test_auto_pins_each_worker_and_its_threads_to_one_cpu(corral_factory: Start) -> None:
    # One worker more than two CPUs' worth, so that CPUs are shared on small machines too.
    workers = min(len(ALLOWED), 2) + 1
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", str(workers), "-k", "threaded", "--threads", "4",
        "--cpu-affinity", "auto", "simple:app",
    )  # fmt: skip
    pids = server.wait_workers(lambda p: len(p) == workers)
    for _ in range(workers * 4):
        assert server.get()[0] == 200  # every worker is serving: its pool threads exist
    placed = []
    for pid in pids:
        cpus = cpus_of(pid)
        assert len(cpus) == 1, f"worker {pid} may run on {cpus}"
        threads = thread_cpus(pid)
        assert len(threads) >= 5  # the monitor and the 4 pool threads
        assert all(t == cpus for t in threads), f"threads of {pid}: {threads}"
        placed.extend(cpus)
    assert sorted(placed) == spread(workers)
    assert server.stop() == 0


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs to tell the places apart")
def test_a_replacement_takes_the_cpu_its_predecessor_left(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "--cpu-affinity", "auto", "simple:app")
    pids = server.wait_workers(lambda p: len(p) == 2)
    by_cpu = {next(iter(cpus_of(pid))): pid for pid in pids}
    assert sorted(by_cpu) == ALLOWED[:2]
    # The worker on the second CPU: a replacement placed without regard to the gap would
    # land on the first one, as it is the first in order.
    victim = by_cpu[ALLOWED[1]]
    os.kill(victim, signal.SIGKILL)
    now = server.wait_workers(lambda p: victim not in p and len(p) == 2)
    (newcomer,) = now - pids
    assert cpus_of(newcomer) == {ALLOWED[1]}
    assert cpus_of(by_cpu[ALLOWED[0]]) == {ALLOWED[0]}
    assert server.stop() == 0


def test_off_by_default_leaves_placement_to_the_kernel(corral_factory: Start) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "simple:app")
    pids = server.wait_workers(lambda p: len(p) == 2)
    for pid in pids:
        assert cpus_of(pid) == set(ALLOWED)
    assert server.stop() == 0


def test_a_bad_value_names_the_setting(corral_factory: Start) -> None:
    server = corral_factory("--cpu-affinity", "sometimes", "simple:app", wait=False)
    assert server.wait_exit() != 0
    line = wait_until(server.log_text, lambda text: "cpu_affinity" in text, 5)
    assert "sometimes" in line or "off | auto" in line
