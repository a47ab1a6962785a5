"""Memory-based recycling: a worker over max_worker_memory is replaced and loses no request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import CorralProcess, InFlight, wait_until

Start = Callable[..., CorralProcess]
LIMIT_MIB = 150  # well above a fresh worker of the test app (~20-30 MiB)
GROWTH_MIB = 200
# The request in flight: long enough to be running when its worker is retired, which is at
# least MEMORY_MIN_AGE after it booted, then a replacement's boot and a turn of the arbiter.
SLEEP = 12


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_a_worker_over_the_limit_is_replaced_and_finishes_its_request(
    corral_factory: Start, worker: str
) -> None:
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "-k", worker,
        "--max-worker-memory", str(LIMIT_MIB), "simple:app",
    )  # fmt: skip
    old = server.wait_workers(lambda pids: len(pids) == 1).pop()
    # One request makes its worker grow past the limit, then stays in flight for a while.
    growing = InFlight(server.addr, f"/grow?mb={GROWTH_MIB}&s={SLEEP}")
    server.wait_for(rf"simple: sleeping {old}")
    found = server.wait_for(
        rf"Worker \(pid:{old}\) uses (\d+) MiB \d+ s after booting, over max_worker_memory "
        rf"\({LIMIT_MIB} MiB\)"
    )
    assert int(found[0].group(1)) > LIMIT_MIB
    # Retired while its request still ran, and only once the replacement had booted: it is
    # answering (a worker answers only after its app is loaded). Until the old threaded worker
    # has taken in its TERM it may still answer a new connection itself, so poll past it.
    assert growing.running()
    new = (server.worker_pids() - {old}).pop()
    answer = wait_until(server.get, lambda got: got != (200, f"hello from {old}"), 10.0)
    assert answer == (200, f"hello from {new}")
    assert growing.result() == (200, f"slept {float(SLEEP)} in {old}, grew {old} by 200 MiB")
    server.wait_for(rf"Worker exiting \(pid: {old}\)")
    assert server.wait_workers(lambda pids: pids == {new}) == {new}
    assert server.stop() == 0
