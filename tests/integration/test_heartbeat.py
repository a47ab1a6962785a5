"""The heartbeat file a forked worker shares with its arbiter: liveness, asking to be replaced."""

from __future__ import annotations

import os
import time

from corral.arbiter.heartbeat import Heartbeat
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


def test_a_worker_publishes_its_counts_on_the_board_it_shares() -> None:
    heartbeat = Heartbeat(board=SIZE)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                tally = Tally()
                tally.request(0.02, 200)
                heartbeat.publisher = tally.encode
                heartbeat.publish()  # not a beat: a worker that never booted stays unbooted
                os._exit(0 if not heartbeat.notified() else 3)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not heartbeat.notified()
        totals = decode(heartbeat.published(SIZE))
        assert totals is not None and totals.requests == 1 and totals.statuses[1] == 1
    finally:
        heartbeat.close()


def test_notify_publishes_and_the_beat_stays_monotonic() -> None:
    heartbeat = Heartbeat(board=SIZE)
    try:
        tally = Tally()
        heartbeat.publisher = tally.encode
        tally.request(0.03, 500)
        heartbeat.notify()
        totals = decode(heartbeat.published(SIZE))
        assert totals is not None and totals.statuses[4] == 1
        assert abs(heartbeat.last_update() - time.monotonic()) < 5.0
    finally:
        heartbeat.close()


def test_without_a_board_nothing_is_published() -> None:
    heartbeat = Heartbeat()
    try:
        heartbeat.publisher = Tally().encode
        heartbeat.notify()
        assert heartbeat.published(SIZE) == b""
    finally:
        heartbeat.close()
