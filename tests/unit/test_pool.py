"""The threaded worker's pool sizing decisions, driven without real work."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from corral.workers import pool
from corral.workers.pool import PoolTuner, ThreadSlot


def make(threads: int, max_threads: int) -> PoolTuner:
    # Threads are created but never started: the tuner only reads the slots.
    tuner = PoolTuner(threads, max_threads, lambda slot: threading.Thread(target=lambda: None))
    tuner.start()
    return tuner


def all_busy(tuner: PoolTuner, since: float) -> None:
    for slot in tuner.slots:
        slot.busy_since = since
    idle_window()


def idle_window() -> None:
    """Let a measurement window pass in which this process uses (almost) no CPU."""
    time.sleep(0.05)


def test_starts_at_threads_and_auto_bound_is_160() -> None:
    tuner = make(3, 0)
    assert len(tuner.slots) == 3
    assert (tuner.minimum, tuner.maximum) == (3, 160)


def sizes_over_busy_ticks(tuner: PoolTuner, ticks: int) -> list[int]:
    """The pool's size after each of ``ticks`` tunings with every thread waiting in a request."""
    sizes = []
    for _ in range(ticks):
        all_busy(tuner, time.perf_counter() - 0.05)
        tuner.tune()
        sizes.append(len(tuner.slots))
    return sizes


def test_doubles_up_to_128_threads_then_grows_by_an_eighth() -> None:
    assert sizes_over_busy_ticks(make(64, 200), 4) == [128, 144, 162, 182]
    assert [pool.growth_step(n) for n in (1, 127, 128, 255)] == [1, 127, 16, 31]


def test_grows_when_every_thread_waits_inside_a_request() -> None:
    tuner = make(2, 16)
    all_busy(tuner, time.perf_counter() - 0.05)
    tuner.tune()
    assert len(tuner.slots) == 4  # doubled
    all_busy(tuner, time.perf_counter() - 0.05)
    tuner.tune()
    assert len(tuner.slots) == 8


def test_automatic_bound_stops_the_eighths_at_160() -> None:
    assert sizes_over_busy_ticks(make(128, 0), 3) == [144, 160, 160]


def test_does_not_grow_past_max_threads() -> None:
    tuner = make(4, 5)
    for _ in range(3):
        all_busy(tuner, time.perf_counter() - 0.05)
        tuner.tune()
    assert len(tuner.slots) == 5


def test_does_not_grow_when_busy_time_is_cpu() -> None:
    tuner = make(2, 16)
    tuner.tune()
    for slot in tuner.slots:
        # Finished requests whose wall time was all CPU time, and nothing running now.
        slot.cpu += 0.05
        slot.wall += 0.05
        slot.busy_since = 0.0
    tuner.slots[0].busy_since = time.perf_counter()
    tuner.slots[1].busy_since = time.perf_counter()
    tuner.slots[0].cpu += 10.0  # far more CPU than wall in this tick: computing, not waiting
    idle_window()
    tuner.tune()
    assert len(tuner.slots) == 2


def test_does_not_grow_while_a_thread_is_idle() -> None:
    tuner = make(2, 16)
    tuner.slots[0].busy_since = time.perf_counter() - 0.05
    idle_window()
    tuner.tune()
    assert len(tuner.slots) == 2


def test_shrinks_back_after_a_calm_period(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "SHRINK_AFTER", 0.0)
    tuner = make(2, 16)
    all_busy(tuner, time.perf_counter() - 0.05)
    tuner.tune()
    assert len(tuner.slots) == 4
    for slot in tuner.slots:
        slot.busy_since = 0.0
    tuner.tune()
    retiring = [s for s in tuner.slots if s.retire]
    assert len(retiring) == 1
    assert not any(s.retire for s in tuner.slots[:2])  # never below the starting size


def test_slot_accounts_busy_time_on_a_sample_of_requests() -> None:
    slot = ThreadSlot()
    for n in range(1, pool.SAMPLE_EVERY + 1):
        slot.begin()
        assert slot.busy_since > 0
        time.sleep(0.002)
        slot.end()
        assert slot.busy_since == 0.0
        if n < pool.SAMPLE_EVERY:
            assert slot.wall == 0.0  # not measured yet
    # The measured request counts for the whole sample: about SAMPLE_EVERY x 2 ms of wall time.
    assert slot.wall >= 0.002 * pool.SAMPLE_EVERY
    assert 0.0 <= slot.cpu < slot.wall  # it slept: little CPU


def test_time_spent_waiting_for_a_core_does_not_grow_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tuner = make(2, 16)
    runq = {id(slot): 0.0 for slot in tuner.slots}
    monkeypatch.setattr(ThreadSlot, "runqueue_wait", lambda self: runq.get(id(self)))
    all_busy(tuner, time.perf_counter())
    tuner.tune()  # the first reading is only a baseline
    assert len(tuner.slots) == 2
    for slot in tuner.slots:
        runq[id(slot)] += 1.0  # the whole busy time was spent runnable, waiting for a CPU
    idle_window()
    tuner.tune()
    assert len(tuner.slots) == 2


def test_time_blocked_off_the_run_queue_grows_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    tuner = make(2, 16)
    monkeypatch.setattr(ThreadSlot, "runqueue_wait", lambda self: 0.0)
    all_busy(tuner, time.perf_counter())
    tuner.tune()  # baseline
    idle_window()
    tuner.tune()
    assert len(tuner.slots) == 4


def real_pool(block: Callable[[], object]) -> PoolTuner:
    """A tuner over real threads that each block in ``block``, so the kernel says where."""

    def start(slot: ThreadSlot) -> threading.Thread:
        def run() -> None:
            slot.tid = threading.get_native_id()
            block()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    tuner = PoolTuner(2, 16, start)
    tuner.start()
    deadline = time.monotonic() + 5
    while not all(s.tid and s.kernel_wait() not in (None, "0") for s in tuner.slots):
        assert time.monotonic() < deadline, "the threads did not block"
        time.sleep(0.01)
    return tuner


def two_ticks(tuner: PoolTuner, request_age: float) -> int:
    """Two growth ticks with every thread inside a request begun ``request_age`` ago."""
    for _ in range(2):  # the first tick only takes the run-queue baseline
        idle_window()
        for slot in tuner.slots:
            slot.busy_since = time.perf_counter() - request_age
        tuner.tune()
    return len(tuner.slots)


def test_requests_asleep_on_io_grow_the_pool() -> None:
    tuner = real_pool(lambda: time.sleep(60))
    assert two_ticks(tuner, request_age=0.0) == 4


def test_short_waits_on_a_futex_are_the_gil_and_do_not_grow_the_pool() -> None:
    lock = threading.Lock()
    lock.acquire()
    tuner = real_pool(lock.acquire)
    assert two_ticks(tuner, request_age=0.0) == 2


def test_requests_waiting_long_on_an_app_lock_grow_the_pool() -> None:
    # Another request may be the one to release it: with no new thread, none would come.
    lock = threading.Lock()
    lock.acquire()
    tuner = real_pool(lock.acquire)
    assert two_ticks(tuner, request_age=pool.GIL_WAIT_BOUND * 4) == 4
