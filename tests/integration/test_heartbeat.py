"""The heartbeat file a forked worker shares with its arbiter: liveness, asking to be replaced."""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable

from corral.arbiter.heartbeat import Heartbeat
from corral.http.events import Request
from corral.scoreboard import BOARD_SIZE, Scoreboard, read
from corral.tally import SIZE, Tally, decode


def _in_child(heartbeat: Heartbeat, ask: bool) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            heartbeat.notify()
            if ask:
                heartbeat.ask_replacement()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_worker_that_notifies_has_booted_and_asks_nothing() -> None:
    heartbeat = Heartbeat()
    try:
        assert not heartbeat.notified()
        _in_child(heartbeat, ask=False)
        assert heartbeat.notified()
        assert not heartbeat.asks_replacement()
    finally:
        heartbeat.close()


def test_a_worker_asks_its_arbiter_for_a_replacement() -> None:
    heartbeat = Heartbeat()
    try:
        _in_child(heartbeat, ask=True)
        assert heartbeat.asks_replacement()
        assert heartbeat.notified()
    finally:
        heartbeat.close()


def _publisher(tally: Tally, board_of: Scoreboard) -> Callable[[mmap.mmap], None]:
    """What a worker publishes: its scoreboard, then its counts after it (as workers/base.py)."""

    def publish(board: mmap.mmap) -> None:
        board_of.encode_into(board, os.getpid())
        data = tally.encode()
        board[BOARD_SIZE : BOARD_SIZE + len(data)] = data

    return publish


def test_a_worker_publishes_its_scoreboard_and_counts_on_the_board_it_shares() -> None:
    heartbeat = Heartbeat(board=BOARD_SIZE + SIZE)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                tally, score = Tally(), Scoreboard("sync", 1)
                tally.request(0.02, 200)
                score.mine().begin(Request("POST", "/upload", "/upload", "", "1.1", [], True,
                                           False, None, 10, False), time.monotonic())  # fmt: skip
                heartbeat.publisher = _publisher(tally, score)
                heartbeat.publish()  # not a beat: a worker that never booted stays unbooted
                os._exit(0 if not heartbeat.notified() else 3)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not heartbeat.notified()
        totals = decode(heartbeat.published(SIZE, BOARD_SIZE))
        assert totals is not None and totals.requests == 1 and totals.statuses[1] == 1
        assert heartbeat.board is not None
        seen = read(heartbeat.board)
        assert seen is not None and seen.pid == pid and seen.inflight == 1
        assert [(s.busy, s.method, s.path) for s in seen.slots] == [(True, "POST", "/upload")]
    finally:
        heartbeat.close()


def test_notify_publishes_and_the_beat_stays_monotonic() -> None:
    heartbeat = Heartbeat(board=BOARD_SIZE + SIZE)
    try:
        tally = Tally()
        heartbeat.publisher = _publisher(tally, Scoreboard("threaded", 4, threaded=True))
        tally.request(0.03, 500)
        heartbeat.notify()
        totals = decode(heartbeat.published(SIZE, BOARD_SIZE))
        assert totals is not None and totals.statuses[4] == 1
        assert abs(heartbeat.last_update() - time.monotonic()) < 5.0
    finally:
        heartbeat.close()


def test_without_a_board_nothing_is_published() -> None:
    heartbeat = Heartbeat()
    try:
        heartbeat.publisher = _publisher(Tally(), Scoreboard("sync", 1))
        heartbeat.notify()
        assert heartbeat.published(SIZE) == b""
    finally:
        heartbeat.close()
