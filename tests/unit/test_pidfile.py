"""The pidfile: exclusive creation, stale files, rename and guarded removal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.arbiter.pidfile import Pidfile, PidfileError, pid_alive, read_pid


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert not pid_alive(proc.pid)
    return proc.pid


def test_create_writes_pid(tmp_path: Path) -> None:
    path = tmp_path / "corral.pid"
    Pidfile(str(path)).create(4242)
    assert path.read_text() == "4242\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["corral.pid"]  # no temp file left


def test_live_holder_refuses(tmp_path: Path) -> None:
    path = tmp_path / "corral.pid"
    path.write_text(f"{os.getpid()}\n")
    with pytest.raises(PidfileError, match="still running"):
        Pidfile(str(path)).create(4242)
    assert read_pid(str(path)) == os.getpid()


def test_stale_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "corral.pid"
    path.write_text(f"{dead_pid()}\n")
    Pidfile(str(path)).create(os.getpid())
    assert read_pid(str(path)) == os.getpid()


@pytest.mark.parametrize("content", ["", "garbage\n", "-5\n", "0\n", "١٢\n"])
def test_unreadable_content_is_stale(tmp_path: Path, content: str) -> None:
    path = tmp_path / "corral.pid"
    path.write_text(content)
    assert read_pid(str(path)) is None
    Pidfile(str(path)).create(77)
    assert read_pid(str(path)) == 77


def test_own_pid_is_not_a_conflict(tmp_path: Path) -> None:
    """A container's PID 1 restarting finds its own pid in the file: not another server."""
    path = tmp_path / "corral.pid"
    path.write_text(f"{os.getpid()}\n")
    Pidfile(str(path)).create(os.getpid())
    assert read_pid(str(path)) == os.getpid()


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PidfileError, match="cannot create pidfile"):
        Pidfile(str(tmp_path / "nope" / "corral.pid")).create(1)


def test_unlink_removes_own_file(tmp_path: Path) -> None:
    pidfile = Pidfile(str(tmp_path / "corral.pid"))
    pidfile.create(4242)
    pidfile.unlink()
    assert not (tmp_path / "corral.pid").exists()


def test_unlink_leaves_a_successors_file(tmp_path: Path) -> None:
    path = tmp_path / "corral.pid"
    pidfile = Pidfile(str(path))
    pidfile.create(4242)
    path.write_text("4343\n")  # a new master took the path over
    pidfile.unlink()
    assert read_pid(str(path)) == 4343


def test_rename_moves_and_tracks(tmp_path: Path) -> None:
    path = tmp_path / "corral.pid"
    pidfile = Pidfile(str(path))
    pidfile.create(4242)
    pidfile.rename(str(path) + ".oldbin")
    assert not path.exists()
    assert read_pid(str(path) + ".oldbin") == 4242
    pidfile.unlink()
    assert not Path(str(path) + ".oldbin").exists()


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
