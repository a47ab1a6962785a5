"""A server under test as processes: start it, learn its address, read its pids and fds, stop it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.reliability_clients import wait_listening
from benchmarks.reliability_servers import APPS_DIR, HOST, Options, ServerSpec, free_port

LISTENING = re.compile(r"Listening at: http://(\S+):(\d+) \((\d+)\)")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 40.0  # above every server's default graceful timeout (30 s)


def children_of(ppid: int) -> set[int]:
    """The live (not zombie) children of `ppid`, from /proc."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            found.add(int(entry))
    return found


def fd_count(pid: int) -> int | None:
    """How many fds `pid` has open; None once it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class ServerProcess:
    """One server started from `spec`, with its merged stdout and stderr kept line by line."""

    def __init__(
        self,
        spec: ServerSpec,
        opts: Options,
        workdir: Path,
        *,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.pidfile = opts.pidfile
        port = 0 if spec.binds_port_zero else free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            spec.argv(opts, f"{HOST}:{port}"),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        self.master = self.proc.pid
        self.seen: set[int] = {self.master}
        self._lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.addr = self._address(port)
        except BaseException:
            self.kill()
            raise

    def _address(self, port: int) -> tuple[str, int]:
        if port:
            wait_listening((HOST, port), START_TIMEOUT_S)
            return HOST, port
        match = self.wait_for(LISTENING)
        return match.group(1), int(match.group(2))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def log_since(self, mark: int) -> str:
        return "\n".join(self.lines()[mark:])

    def count(self, pattern: str | re.Pattern[str], since: int = 0) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in self.lines()[since:] if regex.search(line))

    def wait_for(
        self, pattern: str | re.Pattern[str], since: int = 0, timeout: float = START_TIMEOUT_S
    ) -> re.Match[str]:
        """The first line from index `since` on that matches; TimeoutError with the log if none."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[since:]:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = "\n".join(self._lines[-40:])
                    raise TimeoutError(f"{pattern!r} not logged in {timeout}s; log tail:\n{tail}")
                self._changed.wait(min(remaining, 0.5))

    # -- processes ---------------------------------------------------------------------------

    def children(self, pid: int) -> set[int]:
        """The live children of `pid`, remembered so that stop() can find them."""
        found = children_of(pid)
        self.seen |= found
        return found

    def workers(self) -> set[int]:
        """The master's children that serve: not helpers such as multiprocessing's tracker."""
        return {pid for pid in self.children(self.master) if not _is_helper(pid)}

    def fds(self) -> tuple[int | None, list[int]]:
        """(the master's open fd count, each worker's), read from /proc."""
        counts = [fd_count(pid) for pid in sorted(self.workers())]
        return fd_count(self.master), [c for c in counts if c is not None]

    def signal(self, sig: int, pid: int | None = None) -> None:
        os.kill(self.master if pid is None else pid, sig)

    def wait_gone(self, pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Poll until `pid` has exited (reaping it when it is ours); False after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid == self.proc.pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.05)
                    return True
            elif not alive(pid):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> bool:
        """TERM the current master and wait for it; SIGKILL everything left. True when clean."""
        self.workers()
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGTERM)
        clean = self.wait_gone(self.master)
        self.kill()
        return clean

    def kill(self) -> None:
        """SIGKILL every process of this server still alive (pids seen are checked first)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        for pid in sorted(self.seen | children_of(self.master)):
            if pid != self.proc.pid and alive(pid) and _is_python(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def _is_helper(pid: int) -> bool:
    # uvicorn's workers are spawned by multiprocessing, which starts a resource tracker too.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False


def _is_python(pid: int) -> bool:
    # A pid seen earlier may have been reused by an unrelated process since.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"python" in f.read()
    except OSError:
        return False
