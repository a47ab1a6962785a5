"""The scoreboard: what each worker and each of its threads is doing, where the arbiter reads it."""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

KINDS = ("sync", "threaded", "asyncio")
# Why a worker exited, as it says on its way out (the arbiter adds the reasons it knows itself:
# a timeout, a crash, a replacement it asked for).
REASONS = ("exit", "max_requests", "reload", "memory", "request_timeout", "timeout", "crash")
MAX_SLOTS = 128  # threads (or in-flight requests) shown per worker; busy ones first
METHOD_BYTES = 12
PATH_BYTES = 116
# seq, pid, kind, reason, slots, capacity, threads, requests, in-flight, busy seconds (done
# and running), process CPU seconds, the monotonic time of the write, the last dump served. The
# seq is a seqlock's: odd while the worker writes, so a reader that saw it odd, or saw it change
# while it copied, read a torn write and reads again.
_HEAD = struct.Struct("<QIBBHIIQIxxxxdddQ")
# Request durations by power of two of their microseconds (bucket i: below 2**i µs; the last
# takes the rest), and the queue time summed: the arbiter turns their growth between two reads
# into p50, p99 and mean queue time over a window.
HIST_BUCKETS = 28  # up to 2**27 µs, about 2 minutes
_HIST = struct.Struct(f"<d{HIST_BUCKETS}Q")
# busy, requests served, started (wall clock, 0 when idle), method, path
_SLOT = struct.Struct(f"<B7xQd{METHOD_BYTES}s{PATH_BYTES}s")
_SLOTS_AT = _HEAD.size + _HIST.size
SCORE_SIZE = _SLOTS_AT + MAX_SLOTS * _SLOT.size
# The arbiter's side: a dump it asks for (a sequence number), then the worker's answer.
DUMP_ASK = SCORE_SIZE
_DUMP_HEAD = struct.Struct("<QI")  # the dump's sequence number, its length
DUMP_TEXT = 192 * 1024
DUMP_AT = DUMP_ASK + 8
BOARD_SIZE = DUMP_AT + _DUMP_HEAD.size + DUMP_TEXT


class Current(Protocol):
    """What a slot knows of the request it runs (corral.http.events.Request)."""

    method: str
    path: str


class Activity:
    """One thread's (or the single thread's) state, updated on the request path.

    A request costs two clock reads the lifecycle makes anyway and four attribute stores; the
    worker turns them into bytes only at its heartbeat (about once a second).
    """

    __slots__ = ("busy", "hist", "ident", "queued", "req", "t0")

    def __init__(self, ident: int) -> None:
        self.req: Current | None = None  # the request running now
        self.t0 = 0.0  # its start, time.monotonic()
        self.busy = 0.0  # seconds spent on requests that have ended
        self.queued = 0.0  # their queue times, summed
        self.hist = [0] * 64  # their durations by bit length of µs (see HIST_BUCKETS)
        self.ident = ident  # the thread's id, for dumps

    def begin(self, req: Current, now: float) -> None:
        self.t0 = now
        self.req = req

    def end(self, now: float) -> None:
        # No count of its own: the histogram's sum is the number of requests served. Its
        # list is long enough for any duration (2**63 µs), so no bound check either.
        took = now - self.t0
        self.req = None
        self.busy += took
        self.hist[int(took * 1e6).bit_length()] += 1

    @property
    def requests(self) -> int:
        """Requests this thread has served."""
        return sum(self.hist)

    def record(self, took: float, queued: float) -> None:
        """A request that ended, counted without a begin (the asyncio worker's: many run at
        once on its one thread, and it reports them through Scoreboard.running)."""
        self.queued += queued
        self.hist[int(took * 1e6).bit_length()] += 1


class Scoreboard:
    """A worker's activities, and their encoding on its heartbeat's board.

    The threaded worker gives each pool thread an Activity of its own (``mine``) so that no
    update is shared between threads; the sync worker has one. The asyncio worker reports its
    in-flight requests through ``running`` instead, and its busy time is its CPU time: its
    capacity is one event loop.
    """

    def __init__(self, kind: str, capacity: int, *, threaded: bool = False) -> None:
        self.kind = KINDS.index(kind) if kind in KINDS else 0
        self.capacity = capacity
        self.reason = 0
        self.dumped = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._single = Activity(threading.get_ident())
        self._all: list[tuple[threading.Thread | None, Activity]] = [(None, self._single)]
        self._ended = Activity(0)  # the counts of threads that have ended
        self._seq = 0
        # asyncio: the requests in flight, as (request, start) pairs, read at publish time.
        self.running: Callable[[], Iterable[tuple[Current, float]]] | None = None
        if threaded:
            self._all = []
            self.mine = self._mine_per_thread  # type: ignore[method-assign]

    def mine(self) -> Activity:
        """The calling thread's Activity."""
        return self._single

    def _mine_per_thread(self) -> Activity:
        try:
            act: Activity = self._local.act
        except AttributeError:
            act = self._local.act = Activity(threading.get_ident())
            with self._lock:
                self._all.append((threading.current_thread(), act))
        return act

    def activities(self) -> list[Activity]:
        """Every live thread's Activity (ended threads' counts folded away)."""
        with self._lock:
            ended = [a for t, a in self._all if t is not None and not t.is_alive()]
            if ended:
                self._all = [(t, a) for t, a in self._all if t is None or t.is_alive()]
                for act in ended:
                    self._ended.busy += act.busy
                    self._ended.queued += act.queued
                    self._ended.hist = [
                        a + b for a, b in zip(self._ended.hist, act.hist, strict=True)
                    ]
            return [a for _, a in self._all]

    def encode_into(self, board: mmap.mmap, pid: int) -> None:
        """Write the scoreboard at the start of ``board`` (an mmap), seq first and last."""
        now, wall = time.monotonic(), time.time()
        acts = self.activities()
        rows: list[tuple[int, int, float, str, str]] = []
        busy = self._ended.busy
        requests = self._ended.requests
        queued = self._ended.queued
        hist = list(self._ended.hist)
        for act in acts:
            req, t0 = act.req, act.t0
            requests += act.requests
            busy += act.busy
            queued += act.queued
            hist = [a + b for a, b in zip(hist, act.hist, strict=True)]
            if req is not None:
                busy += now - t0
                rows.append((1, act.requests, wall - (now - t0), req.method, req.path))
            else:
                rows.append((0, act.requests, 0.0, "", ""))
        inflight = sum(1 for row in rows if row[0])
        cpu = time.process_time()
        if self.running is not None:  # asyncio: its requests, and the loop's CPU time
            rows = [(1, 0, wall - (now - t0), r.method, r.path) for r, t0 in self.running()]
            inflight, busy = len(rows), cpu
        rows.sort(key=lambda row: -row[0])
        rows = rows[:MAX_SLOTS]
        view = memoryview(board)
        self._seq += 1  # odd: writing
        struct.pack_into("<Q", view, 0, self._seq)
        for i, (state, served, started, method, path) in enumerate(rows):
            _SLOT.pack_into(
                view,
                _SLOTS_AT + i * _SLOT.size,
                state,
                served,
                started,
                method.encode("latin-1", "replace")[:METHOD_BYTES],
                path.encode("latin-1", "replace")[:PATH_BYTES],
            )
        head = (pid, self.kind, self.reason, len(rows), self.capacity, len(acts), requests)
        self._seq += 1  # even: written
        last = HIST_BUCKETS - 1  # the longest durations share the last bucket
        _HIST.pack_into(view, _HEAD.size, queued, *hist[:last], sum(hist[last:]))
        _HEAD.pack_into(view, 0, self._seq, *head, inflight, busy, cpu, now, self.dumped)

    def dump_asked(self, board: mmap.mmap) -> int:
        """The dump the arbiter asks for, when newer than the last one written (else 0)."""
        (asked,) = struct.unpack_from("<Q", board, DUMP_ASK)
        return int(asked) if asked > self.dumped else 0

    def write_dump(self, board: mmap.mmap, seq: int, text: str) -> None:
        """Answer dump ``seq`` with ``text`` (cut to fit)."""
        data = text.encode("utf-8", "replace")[:DUMP_TEXT]
        view = memoryview(board)
        view[DUMP_AT + _DUMP_HEAD.size : DUMP_AT + _DUMP_HEAD.size + len(data)] = data
        _DUMP_HEAD.pack_into(view, DUMP_AT, seq, len(data))
        self.dumped = seq


# -- the arbiter's side ---------------------------------------------------------------------------


@dataclass
class SlotView:
    """One thread (or in-flight request) as the arbiter reads it."""

    busy: bool
    requests: int
    started: float  # wall clock; 0 when idle
    method: str
    path: str


@dataclass
class WorkerScore:
    """One worker's published scoreboard."""

    pid: int
    kind: str
    reason: str
    capacity: int
    threads: int
    requests: int
    inflight: int
    busy: float  # seconds busy since boot (asyncio: CPU seconds)
    cpu: float
    written: float  # time.monotonic() of the write
    dumped: int
    queued: float = 0.0  # seconds of queue time, summed over the requests served
    hist: list[int] = field(default_factory=list)  # their durations (see HIST_BUCKETS)
    slots: list[SlotView] = field(default_factory=list)


def read(board: mmap.mmap) -> WorkerScore | None:
    """A worker's scoreboard, copied from its board (an mmap); None before its first write,
    or when every try met a write in progress (the writer is quick: a few microseconds)."""
    for _ in range(5):
        data = bytes(memoryview(board)[:SCORE_SIZE])
        (again,) = struct.unpack_from("<Q", board, 0)
        if again == 0:
            return None
        if again == struct.unpack_from("<Q", data)[0] and not again % 2:
            return decode(data)
        time.sleep(0.0005)
    return None


def decode(data: bytes) -> WorkerScore | None:
    """A scoreboard from a consistent copy (see ``read``)."""
    fields = _HEAD.unpack_from(data)
    pid, kind, reason, nslots, capacity, threads, requests, inflight, busy, cpu, written, dumped = (
        fields[1:]
    )
    score = WorkerScore(
        pid, KINDS[kind], REASONS[reason], capacity, threads, requests, inflight, busy, cpu,
        written, dumped,
    )  # fmt: skip
    score.queued, *score.hist = _HIST.unpack_from(data, _HEAD.size)
    for i in range(min(nslots, MAX_SLOTS)):
        state, served, started, method, path = _SLOT.unpack_from(data, _SLOTS_AT + i * _SLOT.size)
        score.slots.append(
            SlotView(
                bool(state),
                served,
                started,
                method.rstrip(b"\0").decode("latin-1"),
                path.rstrip(b"\0").decode("latin-1"),
            )
        )
    return score


def ask_dump(board: mmap.mmap, seq: int) -> None:
    """Arbiter side: ask the worker for dump ``seq`` (it answers on SIGWINCH)."""
    struct.pack_into("<Q", board, DUMP_ASK, seq)


def read_dump(board: mmap.mmap, seq: int) -> str | None:
    """Arbiter side: the worker's answer to dump ``seq``, None until it is there."""
    done, length = _DUMP_HEAD.unpack_from(board, DUMP_AT)
    if done != seq:
        return None
    start = DUMP_AT + _DUMP_HEAD.size
    raw = bytes(memoryview(board)[start : start + length])
    return raw.decode("utf-8", "replace")


def percentile(hist: list[int], share: float) -> float | None:
    """The duration (seconds, a bucket's upper bound) below which ``share`` of the requests
    counted in ``hist`` fell; None when it counts none."""
    total = sum(hist)
    if total <= 0:
        return None
    wanted = share * total
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= wanted:
            return (1 << i) / 1e6
    return (1 << (len(hist) - 1)) / 1e6
