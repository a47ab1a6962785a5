"""The request_timeout watchdog on real threads: who gets stopped, and who does not."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

from corral.drivers.awaits import await_stack
from corral.gateway.ladder import RequestTimeout
from corral.http.events import Request
from corral.workers.deadline import STOP_SIGNAL, Deadlines
from corral.workers.loopwatch import LoopWatch

LIMIT = 0.2


class Lines:
    """Collects what the watchdog logs (the Logger's error, with %-formatting)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    def exception(self, msg: str, *args: Any) -> None:
        self.lines.append("EXCEPTION " + msg % args)


def _request(target: str) -> Request:
    return Request("GET", target, target, "", "1.1", [], True, False, None, None, False)


def _deadlines(stuck: list[str] | None = None) -> tuple[Deadlines, Lines]:
    lines = Lines()
    on_stuck = (lambda: stuck.append("stuck")) if stuck is not None else (lambda: None)
    return Deadlines(LIMIT, lines, on_stuck), lines  # type: ignore[arg-type]


def _serve(deadlines: Deadlines, target: str, work: Any, outcome: list[str]) -> None:
    """One request as the WSGI lifecycle runs it: the stop lands inside the outer try."""
    watch = deadlines.begin(_request(target), "127.0.0.1")
    try:
        work()
        watch.end()
        outcome.append("finished")
    except RequestTimeout:
        watch.end()
        outcome.append("stopped")


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_late_request_on_a_pool_thread_is_stopped_and_its_stack_logged() -> None:
    deadlines, log = _deadlines()
    outcome: list[str] = []
    thread = threading.Thread(target=_serve, args=(deadlines, "/late", lambda: _spin(5), outcome))
    thread.start()
    time.sleep(0.05)
    deadlines.check(time.monotonic())  # not late yet
    assert log.lines == []
    deadlines.check(time.monotonic() + LIMIT)
    thread.join(2.0)
    assert outcome == ["stopped"]
    assert len(log.lines) == 1
    assert "Request GET /late from 127.0.0.1 has run" in log.lines[0]
    assert "in _spin" in log.lines[0]
    assert deadlines.active == {}


def test_a_request_that_ended_is_not_stopped_nor_is_the_next_one() -> None:
    deadlines, log = _deadlines()
    outcome: list[str] = []
    release = threading.Event()

    def two_requests() -> None:
        _serve(deadlines, "/first", release.wait, outcome)  # blocked in C when stopped
        _serve(deadlines, "/second", lambda: _spin(0.3), outcome)

    thread = threading.Thread(target=two_requests)
    thread.start()
    time.sleep(0.05)
    deadlines.check(time.monotonic() + LIMIT)
    release.set()
    thread.join(3.0)
    # The first got its stop when it came back to Python code; the second ran to its end.
    assert outcome == ["stopped", "finished"]
    assert len(log.lines) == 1 and "/first" in log.lines[0]


def test_a_request_that_will_not_stop_is_reported_once() -> None:
    stuck: list[str] = []
    deadlines, log = _deadlines(stuck)
    outcome: list[str] = []
    release = threading.Event()
    thread = threading.Thread(target=_serve, args=(deadlines, "/stuck", release.wait, outcome))
    thread.start()
    time.sleep(0.05)
    now = time.monotonic() + LIMIT
    deadlines.check(now)
    deadlines.check(now + LIMIT / 2)  # told to stop, not yet past the second limit
    assert stuck == []
    deadlines.check(now + LIMIT)
    deadlines.check(now + 2 * LIMIT)
    assert stuck == ["stuck"]
    assert "has not stopped" in log.lines[1] and "in _serve" in log.lines[1]
    release.set()
    thread.join(2.0)
    assert outcome == ["stopped"]


def test_the_watchdog_thread_stops_a_late_request_by_itself() -> None:
    deadlines, log = _deadlines()
    deadlines.start()  # installs the stop signal's handler in this (the main) thread
    try:
        outcome: list[str] = []
        began = time.monotonic()
        _serve(deadlines, "/main", lambda: _spin(5), outcome)  # on the main thread: a signal
        assert outcome == ["stopped"]
        assert LIMIT <= time.monotonic() - began < 2.0
        assert "Request GET /main" in log.lines[0]
    finally:
        deadlines.stop()
        signal.signal(STOP_SIGNAL, signal.SIG_DFL)


def test_await_stack_follows_the_awaits_down_to_the_innermost() -> None:
    import asyncio

    async def inner() -> None:
        await asyncio.sleep(10)

    async def outer() -> None:
        await inner()

    async def main() -> str:
        task = asyncio.get_running_loop().create_task(outer())
        await asyncio.sleep(0.01)
        try:
            return await_stack(task.get_coro())
        finally:
            task.cancel()

    stack = asyncio.run(main())
    assert stack.index("in outer") < stack.index("in inner")
    assert "await asyncio.sleep(10)" in stack


def test_a_stalled_loop_is_reported_once_per_stall() -> None:
    lines = Lines()
    loop = asyncio.new_event_loop()
    watch = LoopWatch(LIMIT, lines, loop, lambda task: False)  # type: ignore[arg-type]
    now = time.monotonic()
    watch.check(now)
    assert lines.lines == []
    watch.last = now - 2 * LIMIT  # no beat for twice the limit
    watch.check(now)  # seen once: not yet reported
    assert lines.lines == []
    watch.check(now + LIMIT / 2)  # seen again: SIGURG reaches this thread, no handler: ignored
    watch.check(now + LIMIT)  # the same stall: not reported again
    loop.close()
    assert len(lines.lines) == 1
    assert "The event loop has not run for 0.5 s" in lines.lines[0]
    assert "in test_a_stalled_loop_is_reported_once_per_stall" in lines.lines[0]
    watch.beat()
    watch.check(time.monotonic())
    assert len(lines.lines) == 1


def test_a_stall_seen_once_and_then_a_beat_is_not_blamed_on_the_loop() -> None:
    """A whole-process stall (GIL held elsewhere, a long GC): the loop beats again at once."""
    lines = Lines()
    loop = asyncio.new_event_loop()
    watch = LoopWatch(LIMIT, lines, loop, lambda task: False)  # type: ignore[arg-type]
    now = time.monotonic()
    watch.last = now - 2 * LIMIT
    watch.check(now)
    watch.last = now - 1.5 * LIMIT  # a beat came in between, still old by the next check
    watch.check(now)
    watch.beat()
    watch.check(time.monotonic())
    loop.close()
    assert lines.lines == []


def test_the_watchdog_survives_a_failing_check() -> None:
    """on_stuck raising inside the watchdog thread is logged; the thread keeps watching."""
    lines = Lines()

    def on_stuck() -> None:
        raise RuntimeError("the arbiter's file is gone")

    deadlines = Deadlines(LIMIT, lines, on_stuck)  # type: ignore[arg-type]
    deadlines.start()
    outcome: list[str] = []
    release = threading.Event()
    try:
        thread = threading.Thread(target=_serve, args=(deadlines, "/stuck", release.wait, outcome))
        thread.start()
        give_up = time.monotonic() + 5.0
        while not any(line.startswith("EXCEPTION") for line in lines.lines):
            assert time.monotonic() < give_up, lines.lines
            time.sleep(0.02)
        assert "watchdog failed a check" in lines.lines[-1]
        release.set()
        thread.join(2.0)
        assert outcome == ["stopped"]
        # Still watching: a later late request on another thread is stopped too.
        late = threading.Thread(target=_serve, args=(deadlines, "/late", lambda: _spin(5), outcome))
        late.start()
        late.join(3.0)
        assert outcome == ["stopped", "stopped"]
    finally:
        release.set()
        deadlines.stop()
        signal.signal(STOP_SIGNAL, signal.SIG_DFL)
