"""A worker's request counts for Prometheus (metrics_bind), and their form in shared memory."""

from __future__ import annotations

import bisect
import struct
import threading
from dataclasses import dataclass, field

# The Prometheus client libraries' default duration buckets, in seconds: dashboards and
# alerts written for other Python servers read ours without change.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Queue time is mostly well under a millisecond on a server with room: finer at the low end.
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# seq, requests, one count per status class, one per bucket plus +Inf (not cumulative), the
# sum of durations in whole microseconds, the same two for queue time, then seq again: a reader
# that sees two different seqs read a torn write. The sums are integers so that they never go
# down: float sums added in another order (a worker's counts moving to the retired totals) can
# come out 1 ulp smaller, which Prometheus would read as a counter reset.
_LAYOUT = struct.Struct(f"<QQ{len(STATUS_CLASSES)}Q{len(BUCKETS) + 1}QQ{len(QUEUE_BUCKETS) + 1}QQQ")
SIZE = _LAYOUT.size


@dataclass
class Totals:
    """Request counts: one worker's, or the sum over many."""

    requests: int = 0
    statuses: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    micros: int = 0  # durations, summed
    queue_buckets: list[int] = field(default_factory=lambda: [0] * (len(QUEUE_BUCKETS) + 1))
    queue_micros: int = 0  # queue times, summed

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.statuses = [a + b for a, b in zip(self.statuses, other.statuses, strict=True)]
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.micros += other.micros
        self.queue_buckets = [
            a + b for a, b in zip(self.queue_buckets, other.queue_buckets, strict=True)
        ]
        self.queue_micros += other.queue_micros


# Where each count sits in Tally's flat list: one slot per status // 100 (0 and 6-9: no
# response, or a status no client would class), one per bucket plus +Inf, then microseconds.
_FIRST_BUCKET = 10
_MICROS = _FIRST_BUCKET + len(BUCKETS) + 1
_FIRST_QUEUE = _MICROS + 1
_QUEUE_MICROS = _FIRST_QUEUE + len(QUEUE_BUCKETS) + 1


class Tally:
    """Counts a worker's requests (the Metrics protocol's ``request``); ``encode`` publishes them.

    The counts stay in this process's memory and reach the arbiter through the heartbeat's
    board at each heartbeat (about once a second, see Heartbeat.notify), so a request pays for a few
    list updates (0.2 us), never a system call. In the threaded worker each pool thread counts
    in a list of its own, since ``+=`` on a shared list item could lose counts and a lock would
    double the cost; ``encode`` sums the lists, folding in those of threads that have ended.
    """

    def __init__(self, *, threaded: bool = False) -> None:
        self._lock = threading.Lock()
        self._counts: list[int] = _zeros()  # the single thread's, or the ended threads'
        self._seq = 0
        self._local: threading.local | None = None
        self._threads: list[tuple[threading.Thread, list[int]]] = []
        if threaded:
            self._local = threading.local()
            self.request = self._request_per_thread  # type: ignore[method-assign]

    def request(self, duration_s: float, status: int) -> None:
        counts = self._counts
        counts[status // 100 if 99 < status < 1000 else 0] += 1
        # bisect_left: a duration equal to a bound counts in that bucket (`le` is <=).
        counts[_FIRST_BUCKET + bisect.bisect_left(BUCKETS, duration_s)] += 1
        counts[_MICROS] += round(duration_s * 1_000_000)

    def _thread_counts(self) -> list[int]:
        """The calling pool thread's own counts."""
        assert self._local is not None
        try:
            counts: list[int] = self._local.counts
        except AttributeError:
            counts = self._local.counts = _zeros()
            with self._lock:
                self._threads.append((threading.current_thread(), counts))
        return counts

    def _request_per_thread(self, duration_s: float, status: int) -> None:
        counts = self._thread_counts()
        counts[status // 100 if 99 < status < 1000 else 0] += 1
        counts[_FIRST_BUCKET + bisect.bisect_left(BUCKETS, duration_s)] += 1
        counts[_MICROS] += round(duration_s * 1_000_000)

    def queued(self, seconds: float) -> None:
        counts = self._counts if self._local is None else self._thread_counts()
        counts[_FIRST_QUEUE + bisect.bisect_left(QUEUE_BUCKETS, seconds)] += 1
        counts[_QUEUE_MICROS] += round(seconds * 1_000_000)

    def gauge(self, name: str, value: float) -> None:
        """Gauges are the arbiter's to report (it knows the workers)."""

    def incr(self, name: str, value: int = 1) -> None:
        """Log-level counters go to statsd only."""

    def histogram(self, name: str, value: float) -> None:
        """The backlog histogram goes to statsd only (Prometheus has the gauge)."""

    def close(self) -> None:
        pass

    def encode(self) -> bytes:
        """The counts so far, as the arbiter's `decode` reads them."""
        with self._lock:
            self._fold_ended()
            counts = list(self._counts)
            for _, more in self._threads:
                counts = [a + b for a, b in zip(counts, more, strict=True)]
            self._seq += 1
            seq = self._seq
        requests = sum(counts[:_FIRST_BUCKET])
        statuses = counts[1 : 1 + len(STATUS_CLASSES)]
        buckets = counts[_FIRST_BUCKET:_MICROS]
        queue = counts[_FIRST_QUEUE:_QUEUE_MICROS]
        return _LAYOUT.pack(
            seq, requests, *statuses, *buckets, counts[_MICROS], *queue, counts[_QUEUE_MICROS], seq
        )

    def _fold_ended(self) -> None:
        """Add the counts of pool threads that have ended to ``_counts`` (their last adds are
        done), so the list of threads does not grow as the pool shrinks and grows again."""
        ended = [counts for thread, counts in self._threads if not thread.is_alive()]
        if ended:
            self._threads = [(t, counts) for t, counts in self._threads if t.is_alive()]
            for counts in ended:
                self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]


def _zeros() -> list[int]:
    return [0] * (_QUEUE_MICROS + 1)


def decode(data: bytes) -> Totals | None:
    """A worker's published counts; None when it has published none or the write was torn."""
    if len(data) < SIZE:
        return None
    fields = _LAYOUT.unpack_from(data)
    if fields[0] != fields[-1] or fields[0] == 0:
        return None
    statuses_end = 2 + len(STATUS_CLASSES)
    buckets_end = statuses_end + len(BUCKETS) + 1
    queue_end = buckets_end + 1 + len(QUEUE_BUCKETS) + 1
    return Totals(
        requests=fields[1],
        statuses=list(fields[2:statuses_end]),
        buckets=list(fields[statuses_end:buckets_end]),
        micros=fields[buckets_end],
        queue_buckets=list(fields[buckets_end + 1 : queue_end]),
        queue_micros=fields[queue_end],
    )
