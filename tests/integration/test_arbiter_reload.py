"""HUP's side effects in-process: listeners rebound and the pidfile moved, on real files."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.arbiter.pidfile import Pidfile, read_pid
from corral.arbiter.reload import rebind, repoint_pidfile
from corral.config import Config, load
from corral.logging import Logger
from corral.sockets import Listener, close_listeners, open_listeners


@pytest.fixture
def errlog(tmp_path: Path) -> Path:
    return tmp_path / "error.log"


@pytest.fixture
def log(errlog: Path) -> Iterator[Logger]:
    logger = Logger(load(["--error-logfile", str(errlog), "x:app"], {}))
    yield logger
    logger.close()


def config(*binds: str) -> Config:
    return load([arg for b in binds for arg in ("-b", b)] + ["x:app"], {})


def serves(listener: Listener) -> bool:
    """A client can connect to the listener's Unix socket."""
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(listener.sock.getsockname())
    return True


def test_rebind_keeps_opens_and_closes(tmp_path: Path, log: Logger, errlog: Path) -> None:
    a, b, c = (f"unix:{tmp_path / name}" for name in ("a.sock", "b.sock", "c.sock"))
    current = open_listeners([a, b], {}, os.getpid(), backlog=4, reuse_port=False, owner=None)
    kept_sock = current[0].sock
    after = rebind(current, config(a, c), os.getpid(), None, log, unlink=True)
    try:
        assert [str(listener.spec) for listener in after] == [a, c]
        assert after[0].sock is kept_sock  # the same socket: no connection in its queue is lost
        assert all(serves(listener) for listener in after)
        assert not (tmp_path / "b.sock").exists() and current[1].sock.fileno() == -1
    finally:
        close_listeners(after, unlink=True)
    log.close()
    assert f"Listening at: {c}" in errlog.read_text()


@pytest.mark.parametrize("bad", ["192.0.2.1:8000", "unix:/nonexistent-dir/x.sock"])
def test_rebind_failure_keeps_the_current_listeners(
    tmp_path: Path, log: Logger, errlog: Path, bad: str
) -> None:
    a = f"unix:{tmp_path / 'a.sock'}"
    current = open_listeners([a], {}, os.getpid(), backlog=4, reuse_port=False, owner=None)
    try:
        assert rebind(current, config(bad), os.getpid(), None, log, unlink=True) is current
        assert serves(current[0])
    finally:
        close_listeners(current, unlink=True)
    log.close()
    assert "keeping the current listeners" in errlog.read_text()


def test_repoint_pidfile(tmp_path: Path, log: Logger, errlog: Path) -> None:
    first, second = str(tmp_path / "first.pid"), str(tmp_path / "second.pid")
    pidfile = Pidfile(first)
    pidfile.create(os.getpid())
    assert repoint_pidfile(pidfile, first, os.getpid(), log) is pidfile
    moved = repoint_pidfile(pidfile, second, os.getpid(), log)
    assert moved is not None and moved.path == second
    assert read_pid(second) == os.getpid() and not os.path.exists(first)
    assert repoint_pidfile(moved, None, os.getpid(), log) is None
    assert not os.path.exists(second)


def test_repoint_pidfile_held_by_a_live_process(tmp_path: Path, log: Logger, errlog: Path) -> None:
    held = tmp_path / "held.pid"
    held.write_text(f"{os.getppid()}\n")  # our parent: alive, and not us
    assert repoint_pidfile(None, str(held), os.getpid(), log) is None
    assert read_pid(str(held)) == os.getppid()
    log.close()
    assert "Reload: " in errlog.read_text()
