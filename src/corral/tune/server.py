"""One `python -m corral` server on loopback for one configuration: start, find, stop by PID."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corral.tune import procs
from corral.tune.model import Cell

LISTENING = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+) \((\d+)\)")
BOOTED = re.compile(r"Booting worker with pid: (\d+)")
# corral's flags (and uvicorn's) that give an address; the servers listen on 127.0.0.1:0.
BIND_FLAGS = ("-b", "--bind", "--host", "--port", "--uds", "--fd")
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


def without_bind(args: list[str]) -> list[str]:
    """`args` without any address flag (`-b X`, `-bX`, `--bind X`, `--bind=X`, uvicorn's)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in BIND_FLAGS:
            skip = True
            continue
        if any(arg.startswith(f"{flag}=") for flag in BIND_FLAGS if flag.startswith("--")):
            continue
        if arg.startswith("-b") and not arg.startswith("--") and len(arg) > 2:
            continue
        kept.append(arg)
    return kept


@dataclass(frozen=True)
class ServerPlan:
    """What every server of one tuning run shares: the user's arguments, environment, place."""

    args: list[str]  # APP, -c, settings flags: the user's, without addresses
    cwd: str
    log_dir: Path
    overrides: list[str] = field(default_factory=list)  # e.g. --pid into the output directory
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, cell: Cell) -> list[str]:
        """The command line of the server for `cell`; these flags come last, so they win."""
        return [
            sys.executable,
            "-m",
            "corral",
            *self.args,
            "-b",
            "127.0.0.1:0",
            "-w",
            str(cell.workers),
            "-k",
            cell.kind,
            "--threads",
            str(cell.threads),
            "--max-threads",
            "0",
            "--no-control-socket",
            *self.overrides,
        ]


class Server:
    """A running server: its master's PID, start time (to tell a reused PID) and port."""

    def __init__(self, plan: ServerPlan, cell: Cell, log_path: Path) -> None:
        self.cell = cell
        self.log_path = log_path
        self.port = 0
        env = {**os.environ, **plan.env, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                plan.argv(cell),
                cwd=plan.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **procs.own_group(),
            )
        self.pid = self.popen.pid
        stat = procs.stat_of(self.pid)
        self.start_time = stat[2] if stat else 0
        self._stopping = False
        self._workers: list[tuple[int, int]] = []

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the server's output, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Callable[[int], bytes], timeout: float = START_TIMEOUT_S) -> str:
        """Wait for the listening line, every worker's boot and one answer; "" or why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                return f"the server exited with status {self.popen.returncode}"
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            found = LISTENING.search(text)
            if found and len(BOOTED.findall(text)) >= self.cell.workers:
                self.port = int(found.group(1))
                if _answers(self.port, probe(self.port), deadline):
                    return ""
            time.sleep(0.05)
        return f"no answer within {timeout:.0f} s"

    def workers(self) -> list[int]:
        """The worker processes (the master's children) now."""
        return procs.children(self.pid)

    def begin_stop(self) -> None:
        """Ask the master to stop (quick stop); `finish_stop` waits for it."""
        if self.start_time and not self._stopping:
            self._workers = procs.begin_stop(self.pid, self.start_time)
        self._stopping = True

    def finish_stop(self, grace: float = STOP_GRACE_S) -> None:
        """Wait for the server to exit; KILL it and its workers by PID after `grace` seconds."""
        self.begin_stop()
        if self.start_time:
            procs.finish_stop(self.pid, self.start_time, self._workers, grace)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


def _answers(port: int, request: bytes, deadline: float) -> bool:
    """Whether the server answers `request` with an HTTP status line before `deadline`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.settimeout(max(0.1, min(10.0, deadline - time.monotonic())))
            sock.sendall(request)
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False
