"""Open-loop load: units of requests started at a fixed rate for a fixed time, whatever the answers.

A closed loop (send, wait, send) slows down when the server does and so hides what an operation
costs; here the k-th unit starts at `start + k / rate`, on a thread pool large enough that a slow
answer does not delay the next unit. Everything is bounded: `rate * duration` units, each with
its own socket timeouts, and a final wait of at most `drain_s`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from benchmarks.reliability_clients import FAILURES, OK, TIMEOUT_S, Outcome, Unit

THREADS = 64
DRAIN_S = TIMEOUT_S * 2 + 5  # a unit makes at most two attempts of TIMEOUT_S each


@dataclass
class Tally:
    """What a row's requests came to: sent, by outcome kind, and how many were sent twice."""

    sent: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # a few failures' details, for the log
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                self.sent += 1
                self.kinds[outcome.kind] += 1
                self.retried += outcome.retried
                if outcome.status:
                    self.statuses[outcome.status] += 1
                if outcome.kind in FAILURES and len(self.examples) < 5:
                    self.examples.append(f"{outcome.kind} {outcome.status} {outcome.detail}")

    def merge(self, other: Tally) -> None:
        with self._lock:
            self.sent += other.sent
            self.kinds.update(other.kinds)
            self.retried += other.retried
            self.statuses.update(other.statuses)
            self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])

    @property
    def ok(self) -> int:
        return self.kinds[OK]

    @property
    def failed(self) -> int:
        return sum(self.kinds[kind] for kind in FAILURES)

    def breakdown(self) -> str:
        """The failures by kind, e.g. "reset 3, eof 1"; "" when none."""
        return ", ".join(f"{k} {self.kinds[k]}" for k in FAILURES if self.kinds[k])


def _guarded(unit: Unit) -> list[Outcome]:
    # A bug in a client must show as a failure of that unit, not vanish in a Future.
    try:
        return unit()
    except Exception as exc:
        return [Outcome("other", detail=f"client error: {exc!r}")]


def open_loop(
    units: Sequence[Unit],
    rate: float,
    duration: float,
    tally: Tally,
    *,
    during: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Start `rate` units a second for `duration` s, taking `units` in turn; count into `tally`.

    `during`, if given, runs in its own thread while the load runs (the row's operation); the
    call returns once every unit has ended (or DRAIN_S after the last start) and `during` has.
    `stop` ends the schedule early (the server is gone), without losing the count of units sent.
    """
    total = max(1, round(rate * duration))
    futures: list[Future[list[Outcome]]] = []
    errors: list[BaseException] = []
    operator = threading.Thread(target=_run_during, args=(during, errors), daemon=True)
    pool = ThreadPoolExecutor(THREADS, thread_name_prefix="load")
    try:
        start = time.monotonic()
        operator.start()
        for k in range(total):
            delay = start + k / rate - time.monotonic()
            if stop is not None and stop.wait(max(0.0, delay)):
                break
            if stop is None and delay > 0:
                time.sleep(delay)  # the schedule itself, not a wait for some condition
            futures.append(pool.submit(_guarded, units[k % len(units)]))
        done, pending = wait(futures, timeout=DRAIN_S)
        for future in done:
            tally.add(future.result())
        tally.add([Outcome("timeout", detail="unit never ended")] * len(pending))
    finally:
        # A unit still running past DRAIN_S is counted above; its thread ends at its timeout.
        pool.shutdown(wait=False, cancel_futures=True)
    operator.join(timeout=DRAIN_S)
    if errors:
        raise errors[0]
    if operator.is_alive():
        raise TimeoutError(f"the operation was still running {DRAIN_S}s after the load")


def _run_during(during: Callable[[], None] | None, errors: list[BaseException]) -> None:
    if during is None:
        return
    try:
        during()
    except BaseException as exc:
        errors.append(exc)
