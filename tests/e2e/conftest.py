"""Shared e2e fixtures: run `python -m corral` in a subprocess and talk to it.

`corral_factory(*args)` starts a server whose stdout and stderr are captured line by line,
waits for its "Listening at:" lines, and stops it by PID at teardown (SIGKILL for it and any
worker it left behind). Apps under tests/e2e/apps are importable by module name.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

APPS = Path(__file__).parent / "apps"
LISTENING = re.compile(r"Listening at: (\S+) \((\d+)\)")
BOOTING = re.compile(r"Booting worker with pid: (\d+)")
START_TIMEOUT = 20.0
T = TypeVar("T")


class CorralProcess:
    """One `python -m corral ARGS` process and its captured output."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        listeners: int = 1,
        wait: bool = True,
        prefix: list[str] | None = None,
    ) -> None:
        environ = dict(os.environ)
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(APPS), *filter(None, [environ.get("PYTHONPATH")])]
        )
        environ["PYTHONUNBUFFERED"] = "1"
        # The control socket's default is $XDG_RUNTIME_DIR/gunicorn.ctl: one per test
        # directory, so servers of tests running at once do not take each other's.
        environ["XDG_RUNTIME_DIR"] = str(cwd)
        environ.update(env or {})
        self.args = args
        # A wrapper such as `unshare --pid` runs corral in another pid namespace: the pids in
        # its log are not ours, so they are never signalled from here.
        self.prefix = prefix or []
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "corral", *args],
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"corral-{self.pid}", daemon=True)
        self._reader.start()
        self.urls: list[str] = []
        if wait:
            matches = self.wait_for(LISTENING, count=listeners)
            self.urls = [m.group(1) for m in matches]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # -- output ------------------------------------------------------------------------------

    def log_text(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def matches(self, pattern: str | re.Pattern[str]) -> list[re.Match[str]]:
        regex = re.compile(pattern)
        return [m for line in self.lines() if (m := regex.search(line))]

    def wait_for(
        self, pattern: str | re.Pattern[str], count: int = 1, timeout: float = START_TIMEOUT
    ) -> list[re.Match[str]]:
        """Block until `pattern` has matched `count` output lines; fail with the log otherwise."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for line in self._lines if (m := regex.search(line))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not self._reader.is_alive() and self.proc.poll() is not None):
                    break
                self._changed.wait(min(remaining, 0.5))
        raise AssertionError(
            f"{pattern!r} x{count} not seen in {timeout}s (exit={self.proc.poll()}); log:\n"
            + self.log_text()
        )

    # -- addresses -----------------------------------------------------------------------------

    @property
    def addr(self) -> tuple[str, int]:
        """(host, port) of the first TCP listener."""
        for url in self.urls:
            scheme, sep, rest = url.partition("://")
            if sep and scheme in ("http", "https"):
                host, _, port = rest.rpartition(":")
                return host.strip("[]"), int(port)
        raise AssertionError(f"no TCP listener among {self.urls}")

    # -- processes -----------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        # The rest of the output; a process that inherited the pipe (an upgraded master) may
        # keep it open longer, so this wait is short.
        self._reader.join(timeout=2)
        return code

    def stop(self, timeout: float = START_TIMEOUT) -> int:
        """TERM, then KILL if it has not exited within `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGTERM)
            try:
                return self.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL the master and every worker it reported that is still a corral process."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        kill_leftovers(self.booted_pids())
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def booted_pids(self) -> list[int]:
        """Pids of every worker the log says was booted, in order (empty behind a prefix)."""
        if self.prefix:
            return []
        return [int(m.group(1)) for m in self.matches(BOOTING)]

    def worker_pids(self) -> set[int]:
        """The master's live child processes, read from /proc (zombies excluded)."""
        return children_of(self.pid)

    def wait_workers(
        self, predicate: Callable[[set[int]], bool], timeout: float = START_TIMEOUT
    ) -> set[int]:
        """Poll the master's children until `predicate` holds for them."""
        return wait_until(lambda: self.worker_pids(), predicate, timeout, self.log_text)

    # -- HTTP ---------------------------------------------------------------------------------

    def get(self, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
        return http_get(self.addr, path, timeout)


def http_get(addr: tuple[str, int], path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    """One GET on a fresh connection: (status, body text)."""
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


class InFlight:
    """A GET running in a background thread, so a test can signal the server meanwhile."""

    def __init__(self, addr: tuple[str, int], path: str, timeout: float = 60.0) -> None:
        self.outcome: tuple[int, str] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(addr, path, timeout), daemon=True)
        self._thread.start()

    def _run(self, addr: tuple[str, int], path: str, timeout: float) -> None:
        try:
            self.outcome = http_get(addr, path, timeout)
        except BaseException as exc:
            self.outcome = exc

    def running(self) -> bool:
        """The request has not ended yet."""
        return self._thread.is_alive()

    def result(self, timeout: float = START_TIMEOUT) -> tuple[int, str] | BaseException:
        """(status, body), or the exception the request ended with."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request is still running"
        assert self.outcome is not None
        return self.outcome


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process from /proc, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def threads_of(pid: int) -> list[int]:
    """The thread ids of a live process, from /proc."""
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


def children_of(ppid: int, *, zombies: bool = False) -> set[int]:
    """Children of `ppid`; zombies (exited, not yet reaped) only when asked for."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[1] == ppid and (zombies or st[0] != "Z"):
                found.add(int(entry))
    return found


def wait_until(
    probe: Callable[[], T],
    predicate: Callable[[T], bool],
    timeout: float,
    describe: Callable[[], str] = lambda: "",
) -> T:
    """Poll `probe` every 50 ms until `predicate(value)`; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not predicate(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: last {value!r}\n{describe()}")
        time.sleep(0.05)
        value = probe()
    return value


def kill_leftovers(pids: list[int]) -> None:
    """SIGKILL those of `pids` that still run corral (a pid may have been reused since)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                is_corral = b"corral" in f.read()
        except OSError:
            continue
        if is_corral:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def free_to_connect(addr: tuple[str, int]) -> bool:
    """Whether a TCP connect to `addr` is refused (nothing listens there any more)."""
    try:
        with socket.create_connection(addr, timeout=2):
            return False
    except OSError:
        return True


@pytest.fixture
def corral_factory(tmp_path: Path) -> Iterator[Callable[..., CorralProcess]]:
    """Start corral processes for one test; every one still running is killed at teardown."""
    started: list[CorralProcess] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        listeners: int = 1,
        wait: bool = True,
        prefix: list[str] | None = None,
    ) -> CorralProcess:
        proc = CorralProcess(
            list(args), cwd=tmp_path, env=env, listeners=listeners, wait=wait, prefix=prefix
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()
        else:
            kill_leftovers(proc.booted_pids())  # a dead master's workers must not outlive us
