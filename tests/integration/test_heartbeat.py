"""The heartbeat file a forked worker shares with its arbiter: liveness, asking to be replaced."""

from __future__ import annotations

import os

from corral.arbiter.heartbeat import Heartbeat


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
