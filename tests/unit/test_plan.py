"""The arbiter's pure decisions: spawn, retire, abort, kill, and crash-loop backoff."""

from __future__ import annotations

import math

import pytest

from corral.arbiter.plan import (
    MEMORY_MIN_AGE,
    MIN_UPTIME,
    Backoff,
    Exit,
    Phase,
    Timing,
    WorkerView,
    decide,
    is_crash,
)

T = Timing(timeout=30.0, graceful_timeout=20.0, kill_grace=3.0)
NOW = 1000.0


def w(
    pid: int,
    *,
    age: int | None = None,
    gen: int = 0,
    beat: float = NOW,
    booted: bool = True,
    phase: Phase = Phase.ACTIVE,
    since: float = 0.0,
    spawned: float = NOW - 100,
    rss: int = 0,
    booted_at: float = NOW - 99,
    asks: bool = False,
) -> WorkerView:
    return WorkerView(
        pid=pid,
        age=pid if age is None else age,
        generation=gen,
        spawned_at=spawned,
        last_beat=beat,
        booted=booted,
        phase=phase,
        phase_since=since,
        rss=rss,
        booted_at=booted_at if booted else 0.0,
        asks_replacement=asks,
    )


class TestSpawn:
    def test_empty_spawns_desired(self) -> None:
        plan = decide(3, 0, [], NOW, T)
        assert plan.spawn == 3
        assert plan.retire == plan.abort == plan.kill == ()

    def test_steady_state_does_nothing(self) -> None:
        plan = decide(2, 0, [w(1), w(2)], NOW, T)
        assert (plan.spawn, plan.retire, plan.abort, plan.kill) == (0, (), (), ())

    def test_replaces_missing(self) -> None:
        assert decide(4, 0, [w(1), w(2)], NOW, T).spawn == 2

    def test_retiring_and_aborted_workers_do_not_count(self) -> None:
        workers = [
            w(1, phase=Phase.RETIRING, since=NOW),
            w(2, phase=Phase.ABORTED, since=NOW),
            w(3, phase=Phase.KILLED, since=NOW),
            w(4),
        ]
        assert decide(2, 0, workers, NOW, T).spawn == 1

    def test_backoff_blocks_spawning_and_sets_wake(self) -> None:
        plan = decide(2, 0, [], NOW, T, spawn_after=NOW + 4)
        assert plan.spawn == 0
        assert plan.wake_at == NOW + 4

    def test_backoff_over_spawns_again(self) -> None:
        assert decide(2, 0, [], NOW, T, spawn_after=NOW).spawn == 2

    def test_backoff_irrelevant_when_nothing_to_spawn(self) -> None:
        plan = decide(1, 0, [w(1)], NOW, T, spawn_after=NOW + 4)
        assert plan.wake_at != NOW + 4


class TestRetire:
    def test_surplus_retires_oldest_first(self) -> None:
        workers = [w(30, age=3), w(10, age=1), w(20, age=2), w(40, age=4)]
        assert decide(2, 0, workers, NOW, T).retire == (10, 20)

    def test_desired_zero_retires_all(self) -> None:
        assert sorted(decide(0, 0, [w(1), w(2)], NOW, T).retire) == [1, 2]

    def test_reload_keeps_old_until_new_boot(self) -> None:
        old = [w(1, gen=0), w(2, gen=0)]
        new = [w(3, gen=1, booted=False), w(4, gen=1, booted=False)]
        plan = decide(2, 1, old + new, NOW, T)
        assert plan.retire == ()
        assert plan.spawn == 0

    def test_reload_retires_one_old_per_booted_new(self) -> None:
        old = [w(1, gen=0), w(2, gen=0)]
        new = [w(3, gen=1, booted=True), w(4, gen=1, booted=False)]
        assert decide(2, 1, old + new, NOW, T).retire == (1,)

    def test_reload_all_booted_retires_all_old(self) -> None:
        old = [w(1, gen=0), w(2, gen=0)]
        new = [w(3, gen=1), w(4, gen=1)]
        assert decide(2, 1, old + new, NOW, T).retire == (1, 2)

    def test_reload_first_spawns_new_generation(self) -> None:
        plan = decide(2, 1, [w(1, gen=0), w(2, gen=0)], NOW, T)
        assert plan.spawn == 2
        assert plan.retire == ()

    def test_reload_to_fewer_workers(self) -> None:
        old = [w(1, gen=0), w(2, gen=0), w(3, gen=0)]
        new = [w(4, gen=1)]
        assert decide(1, 1, old + new, NOW, T).retire == (1, 2, 3)

    def test_surplus_new_also_retires_every_old(self) -> None:
        old = [w(1, gen=0)]
        new = [w(2, gen=1), w(3, gen=1)]
        assert decide(1, 1, old + new, NOW, T).retire == (1, 2)


MIB = 1024 * 1024
LIMIT = 100 * MIB


class TestMemory:
    def test_a_worker_over_the_limit_is_replaced_before_it_is_retired(self) -> None:
        bloated = w(1, rss=LIMIT + MIB)
        plan = decide(2, 0, [bloated, w(2, rss=LIMIT)], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire, plan.over_memory) == (1, (), ())
        booting = w(3, booted=False)
        plan = decide(2, 0, [bloated, w(2), booting], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire) == (0, ())
        plan = decide(2, 0, [bloated, w(2), w(3)], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire, plan.over_memory) == (0, (1,), (1,))

    def test_at_or_under_the_limit_nothing_happens(self) -> None:
        plan = decide(1, 0, [w(1, rss=LIMIT)], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire) == (0, ())

    def test_no_limit_means_no_replacement_whatever_the_size(self) -> None:
        plan = decide(1, 0, [w(1, rss=64 * 1024 * MIB)], NOW, T)
        assert (plan.spawn, plan.retire) == (0, ())

    def test_one_at_a_time_the_largest_first(self) -> None:
        workers = [w(1, rss=LIMIT + MIB), w(2, rss=LIMIT + 9 * MIB), w(3)]
        plan = decide(3, 0, workers, NOW, T, max_rss=LIMIT)
        assert plan.spawn == 1
        plan = decide(3, 0, [*workers, w(4)], NOW, T, max_rss=LIMIT)
        assert (plan.retire, plan.over_memory) == ((2,), (2,))

    def test_a_surplus_goes_first_and_never_with_a_serving_worker(self) -> None:
        """TTOU during a replacement: the surplus is retired, not the worker still needed."""
        workers = [w(1), w(2), w(3, rss=LIMIT + MIB), w(4, booted=False)]
        plan = decide(2, 0, workers, NOW, T, max_rss=LIMIT)
        assert plan.retire == (1, 2)
        assert plan.over_memory == ()

    def test_none_while_another_worker_is_retiring(self) -> None:
        leaving = w(4, phase=Phase.RETIRING, since=NOW - 1)
        plan = decide(1, 0, [w(1, rss=LIMIT + MIB), leaving], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire) == (0, ())

    def test_a_worker_just_booted_is_not_judged_yet(self) -> None:
        """A limit below a fresh worker's size replaces one every few seconds, not in a loop."""
        young = w(1, rss=LIMIT + MIB, spawned=NOW - 60, booted_at=NOW - MEMORY_MIN_AGE + 0.5)
        plan = decide(1, 0, [young], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire) == (0, ())
        plan = decide(1, 0, [young], NOW + 0.5, T, max_rss=LIMIT)
        assert plan.spawn == 1

    def test_a_worker_still_booting_is_not_judged(self) -> None:
        plan = decide(1, 0, [w(1, rss=LIMIT + MIB, booted=False)], NOW, T, max_rss=LIMIT)
        assert (plan.spawn, plan.retire) == (0, ())

    def test_a_reload_retires_the_old_generation_first(self) -> None:
        """A bloated new-generation worker waits behind the old one a reload retires."""
        workers = [w(1, gen=0), w(2, gen=1, rss=LIMIT + MIB), w(3, gen=1)]
        plan = decide(2, 1, workers, NOW, T, max_rss=LIMIT)
        assert plan.retire[0] == 1
        assert plan.over_memory == ()


class TestAskedReplacement:
    """A worker whose request would not stop (request_timeout) asks to be replaced."""

    def test_it_is_replaced_before_it_is_retired(self) -> None:
        asking = w(1, asks=True)
        plan = decide(2, 0, [asking, w(2)], NOW, T)
        assert (plan.spawn, plan.retire, plan.asked) == (1, (), ())
        plan = decide(2, 0, [asking, w(2), w(3, booted=False)], NOW, T)
        assert (plan.spawn, plan.retire) == (0, ())
        plan = decide(2, 0, [asking, w(2), w(3)], NOW, T)
        assert (plan.spawn, plan.retire, plan.asked, plan.over_memory) == (0, (1,), (1,), ())

    def test_right_after_booting_and_before_a_bloated_worker(self) -> None:
        young = w(1, asks=True, booted_at=NOW - 0.1)
        bloated = w(2, rss=LIMIT + 9 * MIB)
        plan = decide(2, 0, [young, bloated, w(3)], NOW, T, max_rss=LIMIT)
        assert (plan.retire, plan.asked) == ((1,), (1,))

    def test_one_at_a_time(self) -> None:
        leaving = w(3, phase=Phase.RETIRING, since=NOW - 1)
        plan = decide(1, 0, [w(1, asks=True), leaving], NOW, T)
        assert (plan.spawn, plan.retire) == (0, ())


class TestTimeouts:
    def test_hung_worker_is_aborted_and_replaced(self) -> None:
        plan = decide(2, 0, [w(1, beat=NOW - 31), w(2)], NOW, T)
        assert plan.abort == (1,)
        assert plan.spawn == 1

    def test_fresh_heartbeat_is_not_aborted(self) -> None:
        plan = decide(1, 0, [w(1, beat=NOW - 29)], NOW, T)
        assert plan.abort == ()
        assert plan.wake_at == pytest.approx(NOW + 1)

    def test_boot_longer_than_timeout_is_aborted(self) -> None:
        plan = decide(1, 0, [w(1, beat=NOW - 30, booted=False)], NOW, T)
        assert plan.abort == (1,)

    def test_timeout_zero_disables(self) -> None:
        timing = Timing(timeout=0, graceful_timeout=20)
        plan = decide(1, 0, [w(1, beat=NOW - 10_000)], NOW, timing)
        assert plan.abort == ()
        assert plan.wake_at == math.inf

    def test_aborted_worker_killed_after_grace(self) -> None:
        plan = decide(1, 0, [w(1, phase=Phase.ABORTED, since=NOW - 3)], NOW, T)
        assert plan.kill == (1,)

    def test_aborted_worker_within_grace_waits(self) -> None:
        plan = decide(1, 0, [w(1, phase=Phase.ABORTED, since=NOW - 1)], NOW, T)
        assert plan.kill == ()
        assert plan.wake_at == pytest.approx(NOW + 2)

    def test_retiring_worker_killed_after_graceful_timeout(self) -> None:
        workers = [w(1, phase=Phase.RETIRING, since=NOW - 20), w(2)]
        assert decide(1, 0, workers, NOW, T).kill == (1,)

    def test_retiring_worker_is_not_aborted_for_heartbeat(self) -> None:
        workers = [w(1, phase=Phase.RETIRING, since=NOW - 5, beat=NOW - 100), w(2)]
        plan = decide(1, 0, workers, NOW, T)
        assert plan.abort == plan.kill == ()

    def test_killed_worker_is_left_alone(self) -> None:
        plan = decide(0, 0, [w(1, phase=Phase.KILLED, since=NOW - 100)], NOW, T)
        assert (plan.kill, plan.abort, plan.retire) == ((), (), ())

    def test_wake_at_is_the_earliest_deadline(self) -> None:
        workers = [
            w(1, beat=NOW - 10),  # hung at NOW + 20
            w(2, phase=Phase.RETIRING, since=NOW - 15),  # killed at NOW + 5
        ]
        assert decide(1, 0, workers, NOW, T).wake_at == pytest.approx(NOW + 5)


class TestCrashClassification:
    def test_requested_exit_is_never_a_crash(self) -> None:
        assert not is_crash(Exit(requested=True, booted=False, exit_code=1, uptime=0.1))

    def test_death_before_boot_is_a_crash(self) -> None:
        assert is_crash(Exit(requested=False, booted=False, exit_code=0, uptime=5))

    def test_error_right_after_boot_is_a_crash(self) -> None:
        assert is_crash(Exit(requested=False, booted=True, exit_code=1, uptime=0.2))

    def test_signal_right_after_boot_is_a_crash(self) -> None:
        assert is_crash(Exit(requested=False, booted=True, exit_code=-11, uptime=0.2))

    def test_clean_short_life_is_a_recycle(self) -> None:
        assert not is_crash(Exit(requested=False, booted=True, exit_code=0, uptime=0.01))

    def test_error_after_long_life_is_not_a_loop(self) -> None:
        assert not is_crash(Exit(requested=False, booted=True, exit_code=1, uptime=MIN_UPTIME))


class TestBackoff:
    crash = Exit(requested=False, booted=False, exit_code=1, uptime=0.01)

    def test_delays_double_up_to_the_cap(self) -> None:
        b = Backoff(base=0.5, cap=4.0)
        delays = [b.record(self.crash, NOW) for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert b.spawn_after == NOW + 4.0

    def test_non_crash_changes_nothing(self) -> None:
        b = Backoff()
        b.record(self.crash, NOW)
        ok = Exit(requested=True, booted=True, exit_code=0, uptime=100)
        assert b.record(ok, NOW + 1) == 0.0
        assert b.failures == 1

    def test_booted_worker_that_stays_up_resets(self) -> None:
        b = Backoff()
        for _ in range(3):
            b.record(self.crash, NOW)
        young = w(1, booted=True, spawned=NOW - MIN_UPTIME / 2)
        assert not b.healthy(young, NOW)
        assert b.failures == 3
        assert b.healthy(w(1, booted=True, spawned=NOW - MIN_UPTIME), NOW)
        assert b.failures == 0
        assert b.spawn_after == -math.inf
        assert b.record(self.crash, NOW) == b.base

    def test_unbooted_worker_never_resets(self) -> None:
        b = Backoff()
        b.record(self.crash, NOW)
        assert not b.healthy(w(1, booted=False, spawned=NOW - 100), NOW)
        assert b.failures == 1

    def test_huge_failure_count_stays_at_cap(self) -> None:
        b = Backoff(base=0.5, cap=30.0, failures=10_000)
        assert b.delay() == 30.0
