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


def test_a_worker_publishes_its_counts_and_its_beat_stays_monotonic() -> None:
    heartbeat = Heartbeat()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                tally = Tally()
                tally.request(0.02, 200)
                heartbeat.publisher = tally.encode
                heartbeat.notify()
                tally.request(0.03, 500)
                heartbeat.notify(force=True)  # as a worker does on its way out
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        totals = decode(heartbeat.published(SIZE))
        assert totals is not None and totals.requests == 2 and totals.statuses[4] == 1
        # Writing the counts sets the mtime to the wall clock; notify puts the beat back.
        assert abs(heartbeat.last_update() - time.monotonic()) < 5.0
    finally:
        heartbeat.close()
