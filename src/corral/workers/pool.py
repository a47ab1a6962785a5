"""Sizes the threaded worker's pool from what its threads spend their busy time on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# With no max_threads set, the pool may grow to this many threads per process: a quarter over
# DOUBLE_UNTIL, room for a worker that holds more than its share of the connections, while each
# thread past it costs memory (20-100 KiB resident) that a pool stuck at the bound would waste.
AUTO_MAX_THREADS = 160
# The pool doubles while smaller than this; from here on it grows by an eighth at a time, so a
# worker that needs a few more threads than this gets them without doubling into idle ones.
DOUBLE_UNTIL = 128
# Grow only when the busy threads spent less than this share of their busy time on the CPU...
WAITING_SHARE = 0.5
# ...and the whole process used less than this much of one core (beyond it, the GIL is the wall).
PROCESS_CPU_BOUND = 0.8
# Busy time is measured on one request in this many (and scaled), to keep syscalls off the path.
SAMPLE_EVERY = 8
# A request asleep on a futex for longer than this waits on the app's own lock or event (another
# request may be the one to set it), not on the GIL, which changes hands every few ms.
GIL_WAIT_BOUND = 0.05
# Retire one extra thread after this long with at most half of the pool busy.
SHRINK_AFTER = 30.0


class ThreadSlot:
    """One pool thread's bookkeeping: whether it is busy, and its CPU and wall time when busy."""

    __slots__ = (
        "_c0",
        "_n",
        "_w0",
        "busy_since",
        "cpu",
        "following",
        "retire",
        "runq_seen",
        "runq_tick",
        "thread",
        "tid",
        "wall",
    )

    def __init__(self) -> None:
        self.busy_since = 0.0
        self.following = False  # waiting on its own connection for the next request
        self.cpu = 0.0
        self.wall = 0.0
        self.retire = False
        self.thread: threading.Thread | None = None
        self.tid = 0  # the kernel's thread id, set by the thread itself
        self.runq_seen = 0.0  # run-queue wait read at tick runq_tick
        self.runq_tick = -1
        self._c0 = 0.0  # thread CPU time at the start of a measured request; 0 when not measuring
        self._w0 = 0.0
        self._n = 0

    def _task_file(self, name: str) -> bytes | None:
        """This thread's /proc/self/task/<tid>/<name>; None off Linux or before it started."""
        if not self.tid:
            return None
        try:
            with open(f"/proc/self/task/{self.tid}/{name}", "rb") as f:
                return f.read()
        except OSError:
            return None

    def runqueue_wait(self) -> float | None:
        """Seconds this thread has spent runnable but not running (Linux schedstat), if known."""
        text = self._task_file("schedstat")
        try:
            return None if text is None else int(text.split()[1]) / 1e9
        except (ValueError, IndexError):
            return None

    def kernel_wait(self) -> str | None:
        """Where this thread sleeps in the kernel (Linux wchan; "0" when running), if known."""
        text = self._task_file("wchan")
        return None if text is None else text.decode("ascii", "replace")

    def begin(self) -> None:
        """The thread picked up work."""
        self.busy_since = time.perf_counter()
        self._n += 1
        if not self._n % SAMPLE_EVERY:
            # thread_time() is a real syscall (~0.6 µs here, against 0.05 µs for perf_counter):
            # one request in SAMPLE_EVERY is measured, and counted SAMPLE_EVERY times.
            self._w0 = self.busy_since
            self._c0 = time.thread_time()

    def end(self) -> None:
        """The thread is going back to wait for work."""
        if self._c0:
            self.cpu += (time.thread_time() - self._c0) * SAMPLE_EVERY
            self.wall += (time.perf_counter() - self._w0) * SAMPLE_EVERY
            self._c0 = 0.0
        self.busy_since = 0.0


class PoolTuner:
    """Starts the first ``threads`` threads (``start``), then grows or shrinks the pool.

    More threads only help when the busy ones are waiting (on a database, a remote API, sleep),
    not when they compute: then the GIL serialises them and extra threads only add switching.
    So the pool grows when every thread is busy, their busy time is mostly off the CPU, and the
    process is not already using a whole core.
    """

    def __init__(
        self, threads: int, max_threads: int, start: Callable[[ThreadSlot], threading.Thread]
    ) -> None:
        self.minimum = max(1, threads)
        self.maximum = max(self.minimum, max_threads if max_threads > 0 else AUTO_MAX_THREADS)
        self._start = start
        self.slots: list[ThreadSlot] = []
        self._last = (time.perf_counter(), time.process_time(), 0.0, 0.0)
        self._calm_since = time.monotonic()
        self._tick = 0

    def start(self) -> None:
        """Start the first ``threads`` threads.

        Not in ``__init__``: the threads ask their tuner ``alone()`` from the start, so the
        worker must hold the tuner before any of them runs.
        """
        self.grow(self.minimum)

    def alone(self) -> bool:
        """Whether the pool is down to one thread (a retiring one still counts until it exits)."""
        return len(self.slots) == 1

    def grow(self, count: int) -> None:
        """Start ``count`` more threads (within the maximum)."""
        for _ in range(min(count, self.maximum - len(self.slots))):
            slot = ThreadSlot()
            self.slots.append(slot)
            slot.thread = self._start(slot)

    def tune(self) -> None:
        """Called about ten times a second: grow or shrink by what was measured since last time."""
        now, proc = time.perf_counter(), time.process_time()
        cpu = sum(s.cpu for s in self.slots)
        wall = sum(s.wall for s in self.slots)
        last_now, last_proc, last_cpu, last_wall = self._last
        self._last = (now, proc, cpu, wall)
        self.slots = [s for s in self.slots if not s.retire or _running(s)]
        live = [s for s in self.slots if not s.retire]
        busy = sum(1 for s in live if s.busy_since)
        # A thread following its connection takes no new work, so it counts against capacity;
        # but its wait is the client's think time, not the app's, so it adds no waiting share
        # (begin/end exclude it) and does not hold off shrinking.
        engaged = sum(1 for s in live if s.busy_since or s.following)
        # Requests still running count as waiting for this tick's share of their time: a pool
        # whose every thread sits in a long request must grow too. The process CPU bound below
        # keeps long computations from growing it.
        running = sum(now - max(s.busy_since, last_now) for s in live if s.busy_since)
        busy_wall = wall - last_wall + running
        self._tick += 1
        if engaged == len(live) and len(live) < self.maximum and busy_wall > 0:
            runq = self._runqueue_delta(live)
            if runq is not None:
                # Off-CPU time that was spent waiting for a core is not waiting on I/O: on a
                # busy machine a computing thread would otherwise look like a blocked one.
                waiting = 1.0 - (cpu - last_cpu + runq) / busy_wall
                process_cpu = (proc - last_proc) / max(now - last_now, 1e-6)
                if (
                    waiting > WAITING_SHARE
                    and process_cpu < PROCESS_CPU_BOUND
                    and _waiting_on_io(live, now)
                ):
                    self.grow(growth_step(len(live)))
            self._calm_since = time.monotonic()
        elif busy * 2 > len(live):
            self._calm_since = time.monotonic()
        elif len(live) > self.minimum and time.monotonic() - self._calm_since > SHRINK_AFTER:
            live[-1].retire = True
            self._calm_since = time.monotonic()

    def _runqueue_delta(self, live: list[ThreadSlot]) -> float | None:
        """Run-queue wait of the live threads since the previous tick; None without a baseline.

        Read only on ticks where growing is considered, so a steady pool reads nothing. A
        thread whose count is unavailable (not Linux, or not started yet) counts as zero.
        """
        total = 0.0
        complete = True
        for slot in live:
            seen = slot.runqueue_wait()
            if seen is None:
                continue
            if slot.runq_tick == self._tick - 1:
                total += seen - slot.runq_seen
            else:
                complete = False
            slot.runq_seen, slot.runq_tick = seen, self._tick
        return total if complete else None

    def join(self, timeout: float) -> None:
        """Wait (bounded) for the threads to notice the worker is stopping."""
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))


def growth_step(size: int) -> int:
    """How many threads a pool of ``size`` adds when it grows: all of them while small, then an
    eighth.

    On `io` (2 workers, 256 connections, 10 ms sleep) one worker often holds 130-140 of the
    connections; capped at 128 threads, its extra connections waited for a thread to free up.
    Growing past it by eighths (to 144, sometimes 160 threads) beat a bound of 128 in 17 of 24
    alternating pairs of runs (median +6.5 %; 2 level, 5 behind by 4-8 %, most of those on a
    busy host). Doubling 128 to 256 instead would leave a hundred threads idle.
    """
    return size if size < DOUBLE_UNTIL else size // 8


def _waiting_on_io(live: list[ThreadSlot], now: float) -> bool:
    """Whether the busy threads sleep on I/O rather than on the GIL.

    A thread waiting for the GIL is off the CPU and off the run queue too, so with two or more
    threads on CPU-bound requests that wait looked like I/O and grew the pool to 32 threads on
    `hello`, each one only adding switching. So at the tick where growing is considered, each
    busy thread's kernel wait channel is read. Asleep on a socket, a timer or poll is I/O; on a
    futex it is the GIL, unless the request has lasted past GIL_WAIT_BOUND, when it waits on the
    app's own lock or event (another request may be the one to release it: the pool must grow).
    More threads on I/O than on the GIL, or no way to tell, lets the pool grow.
    """
    on_io = on_lock = 0
    for slot in live:
        if not slot.busy_since:
            continue
        where = slot.kernel_wait()
        if where is None:
            return True  # not Linux, or not started yet: the other signals decide
        if "futex" in where and now - slot.busy_since < GIL_WAIT_BOUND:
            on_lock += 1
        elif where.strip() != "0":
            on_io += 1
    return on_io > on_lock


def _running(slot: ThreadSlot) -> bool:
    return slot.thread is not None and slot.thread.is_alive()
