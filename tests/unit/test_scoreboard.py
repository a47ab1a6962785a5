"""The scoreboard's encoding, the arbiter's utilisation windows and exit reasons, queue time."""

from __future__ import annotations

import mmap
import threading
import time

import pytest

from corral.arbiter.board import Boards
from corral.arbiter.heartbeat import Heartbeat
from corral.gateway.queue_time import proxy_queue_time
from corral.http.events import Request
from corral.scoreboard import (
    BOARD_SIZE,
    MAX_SLOTS,
    Scoreboard,
    ask_dump,
    percentile,
    read,
    read_dump,
)


def _req(method: str = "GET", path: str = "/") -> Request:
    return Request(method, path, path, "", "1.1", [], True, False, None, None, False)


def test_an_empty_board_reads_as_nothing() -> None:
    assert read(mmap.mmap(-1, BOARD_SIZE)) is None


def test_busy_and_idle_threads_with_their_requests() -> None:
    board = mmap.mmap(-1, BOARD_SIZE)
    score = Scoreboard("threaded", 8, threaded=True)
    done = threading.Event()

    def serve_one() -> None:
        act = score.mine()
        act.begin(_req(), time.monotonic())
        act.end(time.monotonic())
        done.wait(5)  # alive, so its slot is a live thread's

    helper = threading.Thread(target=serve_one)
    helper.start()
    act = score.mine()
    act.begin(_req("POST", "/upload/" + "x" * 300), time.monotonic() - 2.0)
    score.encode_into(board, 1234)
    done.set()
    helper.join()
    seen = read(board)
    assert seen is not None
    assert (seen.pid, seen.kind, seen.capacity, seen.threads) == (1234, "threaded", 8, 2)
    assert seen.inflight == 1 and seen.requests == 1
    busy, idle = seen.slots  # busy first
    assert busy.busy and busy.method == "POST" and busy.path.startswith("/upload/xxx")
    assert 1.5 < time.time() - busy.started < 10
    assert not idle.busy and idle.requests == 1 and idle.path == ""
    assert seen.busy >= 2.0  # the running request's time counts as busy


def test_ended_threads_keep_their_counts() -> None:
    board = mmap.mmap(-1, BOARD_SIZE)
    score = Scoreboard("threaded", 4, threaded=True)

    def serve(n: int) -> None:
        act = score.mine()
        for _ in range(n):
            act.begin(_req(), time.monotonic())
            act.end(time.monotonic())

    for n in (3, 4):
        thread = threading.Thread(target=serve, args=(n,))
        thread.start()
        thread.join()
    score.encode_into(board, 1)
    seen = read(board)
    assert seen is not None and seen.requests == 7 and seen.threads == 0


def test_at_most_max_slots_rows_busy_first() -> None:
    board = mmap.mmap(-1, BOARD_SIZE)
    score = Scoreboard("asyncio", 1)
    now = time.monotonic()
    score.running = lambda: [(_req(path=f"/{i}"), now) for i in range(MAX_SLOTS + 10)]
    for took in (0.0001, 0.0001, 0.2):
        score.mine().record(took, 0.001)
    score.encode_into(board, 1)
    seen = read(board)
    assert seen is not None and seen.inflight == MAX_SLOTS + 10 and seen.requests == 3
    assert seen.queued == pytest.approx(0.003)
    assert percentile(seen.hist, 0.5) == pytest.approx(128e-6)  # 100 µs: below 2**7 µs
    assert percentile(seen.hist, 0.99) == pytest.approx(262144e-6)  # 200 ms: below 2**18 µs
    assert len(seen.slots) == MAX_SLOTS and all(slot.busy for slot in seen.slots)


def test_a_write_in_progress_is_not_read() -> None:
    board = mmap.mmap(-1, BOARD_SIZE)
    score = Scoreboard("sync", 1)
    score.encode_into(board, 1)
    board[0:8] = (3).to_bytes(8, "little")  # odd: a writer is half way through
    assert read(board) is None


def test_dump_asked_answered_and_read() -> None:
    board = mmap.mmap(-1, BOARD_SIZE)
    score = Scoreboard("sync", 1)
    assert score.dump_asked(board) == 0
    ask_dump(board, 5)
    assert score.dump_asked(board) == 5 and read_dump(board, 5) is None
    score.write_dump(board, 5, "GET / running 1.000s:\n  File x")
    assert read_dump(board, 5) == "GET / running 1.000s:\n  File x"
    assert score.dump_asked(board) == 0  # answered: a resize's WINCH finds nothing to do


def _worker_board(busy: float, capacity: int = 2) -> Heartbeat:
    heartbeat = Heartbeat(board=BOARD_SIZE)
    score = Scoreboard("sync", capacity)
    score._ended.busy = busy
    assert heartbeat.board is not None
    score.encode_into(heartbeat.board, 7)
    return heartbeat


def test_utilisation_over_windows() -> None:
    boards = Boards()
    heartbeat = _worker_board(0.0)
    try:
        boards.sample([heartbeat], now=100.0)
        assert boards.utilisation(heartbeat, 1.0) is None  # one sample: no rate yet
        for step in range(1, 21):  # busy 1 s of every second on a capacity of 2
            assert heartbeat.board is not None
            score = Scoreboard("sync", 2)
            score._ended.busy = float(step)
            score.encode_into(heartbeat.board, 7)
            boards.sample([heartbeat], now=100.0 + step)
        assert boards.utilisation(heartbeat, 10.0) == pytest.approx(0.5)
        assert boards.server_utilisation([heartbeat], 1.0) == pytest.approx(0.5)
    finally:
        heartbeat.close()


@pytest.mark.parametrize(
    ("arbiter", "told", "code", "counted"),
    [
        ("timeout", "exit", 1, "timeout"),
        ("memory", "exit", 0, "memory"),
        (None, "max_requests", 0, "max_requests"),
        (None, "exit", 1, "crash"),
        (None, "exit", 0, "exit"),
    ],
)
def test_exit_reasons(arbiter: str | None, told: str, code: int, counted: str) -> None:
    boards = Boards()
    heartbeat = Heartbeat(board=BOARD_SIZE)
    try:
        score = Scoreboard("sync", 1)
        score.reason = ("exit", "max_requests").index(told)
        assert heartbeat.board is not None
        score.encode_into(heartbeat.board, 9)
        assert boards.exited(heartbeat, arbiter, code) == counted
        assert boards.restarts[counted] == 1
    finally:
        heartbeat.close()


STAMPS = {
    "seconds": lambda t: f"t={t:.3f}",
    "seconds-bare": lambda t: f"{t:.6f}",
    "milliseconds": lambda t: f"t={int(t * 1e3)}",
    "microseconds": lambda t: f"t={int(t * 1e6)}",
}


@pytest.mark.parametrize("unit", sorted(STAMPS))
def test_x_request_start_in_any_unit(unit: str) -> None:
    waited = proxy_queue_time(STAMPS[unit](time.time() - 0.25), 0.001)
    assert 0.2 < waited < 5.0


@pytest.mark.parametrize("header", ["soon", "t=", "ahead", "t=12"])
def test_an_unusable_stamp_keeps_our_own_queue_time(header: str) -> None:
    if header == "ahead":  # a proxy whose clock is a minute ahead of ours
        header = f"t={time.time() + 60:.3f}"
    assert proxy_queue_time(header, 0.004) == 0.004
