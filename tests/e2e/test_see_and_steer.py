"""`corral ctl` sees inside the workers (show workers with their running requests, dump with
the stacks of busy requests) and `corral top` shows them live in a terminal (tmux)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess, wait_until

Start = Callable[..., CorralProcess]
LISTENING_AT = r"Control socket listening at (\S+)"
APPS = {"sync": "observe:app", "threaded": "observe:app", "asyncio": "observe:asgi"}
KNOWN = {"sync": "held_in_known_function", "threaded": "held_in_known_function"}
KNOWN["asyncio"] = "held_in_known_coroutine"


def _start(factory: Start, worker: str, *extra: str) -> tuple[CorralProcess, str]:
    server = factory("-b", "127.0.0.1:0", "-w", "2", "-k", worker, *extra, APPS[worker])
    path = server.wait_for(LISTENING_AT)[0].group(1)
    server.wait_workers(lambda pids: len(pids) == 2)
    return server, path


def _ctl(path: str, command: str, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "ctl", "-s", path, "-c", command, *flags],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class Held:
    """A request held in the app's known function until ``release()``."""

    def __init__(self, server: CorralProcess, flag: Path) -> None:
        self.flag = flag
        self.thread = threading.Thread(target=server.get, args=(f"/hold?{flag}", 30))
        self.thread.start()

    def release(self) -> None:
        self.flag.touch()
        self.thread.join(30)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Callable[[CorralProcess], Held]]:
    made: list[Held] = []

    def hold(server: CorralProcess) -> Held:
        made.append(Held(server, tmp_path / f"release-{len(made)}"))
        return made[-1]

    yield hold
    for each in made:
        each.release()


def _busy(path: str) -> list[dict[str, object]]:
    rows = json.loads(_ctl(path, "show workers", "-j"))["workers"]
    return [t for row in rows for t in row["threads"] if t["state"] == "busy"]


@pytest.mark.parametrize("worker", sorted(APPS))
def test_show_workers_and_dump_see_a_request_held_in_a_known_function(
    corral_factory: Start, worker: str, held: Callable[[CorralProcess], Held]
) -> None:
    server, path = _start(corral_factory, worker)
    request = held(server)
    [busy] = wait_until(lambda: _busy(path), lambda rows: len(rows) == 1, 15)
    assert busy["method"] == "GET" and busy["path"] == "/hold"
    assert 0 <= float(busy["age"]) < 30  # type: ignore[arg-type]
    table = _ctl(path, "show workers")
    assert "GET /hold" in table
    dump = _ctl(path, "dump")
    assert dump.count("=== worker ") == 2
    assert "GET /hold running" in dump
    assert KNOWN[worker] in dump  # where the request waits, by function name
    assert "no request running" in dump  # the other worker
    request.release()
    wait_until(lambda: _busy(path), lambda rows: rows == [], 15)
    assert server.get("/")[0] == 200


def test_a_terminal_resize_signal_is_not_a_dump(corral_factory: Start) -> None:
    """SIGWINCH reaches a foreground group on every resize: a worker asked nothing ignores it."""
    server, path = _start(corral_factory, "threaded")
    for pid in server.worker_pids():
        os.kill(pid, 28)  # SIGWINCH
    assert server.get("/")[0] == 200
    assert "no request running" in _ctl(path, "dump")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_corral_top_in_a_terminal(
    corral_factory: Start, held: Callable[[CorralProcess], Held], tmp_path: Path
) -> None:
    server, path = _start(corral_factory, "threaded")
    request = held(server)
    wait_until(lambda: _busy(path), lambda rows: len(rows) == 1, 15)
    session = f"corral-top-{os.getpid()}"
    tmux = ["tmux", "-L", session, "-f", os.devnull]
    top = f"{sys.executable} -m corral top -s {path} -i 0.2"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "30", top],
        check=True, timeout=30, env={**os.environ, "TERM": "xterm-256color"},
    )  # fmt: skip
    try:

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", session],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip

        shown = wait_until(screen, lambda text: "GET /hold" in text, 15)
        assert "corral top" in shown and "utilisation" in shown
        for pid in server.worker_pids():
            assert str(pid) in shown
        request.release()
        wait_until(screen, lambda text: "GET /hold" not in text, 15)
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True, timeout=10)
        wait_until(
            lambda: subprocess.run([*tmux, "has-session", "-t", session], check=False).returncode,
            lambda code: code != 0,
            10,
        )
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=10)


def test_corral_top_once_prints_a_screen(corral_factory: Start) -> None:
    server, path = _start(corral_factory, "sync")
    assert server.get("/")[0] == 200
    done = subprocess.run(
        [sys.executable, "-m", "corral", "top", "-s", path, "--once"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("workers 2 ")
    assert any(line.split()[:1] == [str(pid)] for pid in server.worker_pids() for line in lines)
