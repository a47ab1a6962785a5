"""`-w auto`: the arbiter sizes the workers to the CPUs it may use, and says so."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess

Start = Callable[..., CorralProcess]


@pytest.mark.parametrize(("worker", "expected"), [("sync", 3), ("threaded", 1)])
def test_auto_on_one_cpu(corral_factory: Start, worker: str, expected: int) -> None:
    cpu = str(min(os.sched_getaffinity(0)))
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "auto", "-k", worker, "simple:app",
        prefix=["taskset", "-c", cpu],
    )  # fmt: skip
    server.wait_for(rf"workers = auto: {expected} {worker} workers for 1 usable CPU\(s\)")
    assert len(server.wait_workers(lambda pids: len(pids) == expected)) == expected
    assert server.get()[0] == 200
    assert server.stop() == 0
