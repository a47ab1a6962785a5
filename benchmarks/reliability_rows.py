"""The reliability rows: which clients, which server settings, and the operation done under load.

An operation runs in its own thread while the open-loop load runs, and acts on the server's
processes by pid, as an operator (or a process manager) does. Every wait in it is bounded.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.reliability_clients import BURST
from benchmarks.reliability_process import ServerProcess
from benchmarks.reliability_servers import WORKERS, Options

OP_TIMEOUT_S = 30.0
MEMORY_LIMIT_MIB = 64  # a fresh worker is 20 to 35 MiB; /leak adds 256 KiB a request
ALL_CLIENTS = ("keepalive", "pipelined", "newconn", "nginx")


@dataclass(frozen=True)
class Row:
    """One operation under load. `replaces` says the row must see new worker pids at its end."""

    name: str
    title: str
    operate: Callable[[ServerProcess, float], None] | None = None
    clients: tuple[str, ...] = ALL_CLIENTS
    path: str = "/"
    duration: float = 4.0
    rate_scale: float = 1.0  # units per second = the rate times this (a burst is BURST requests)
    options: Options = field(default_factory=Options)
    replaces: bool = False
    pidfile: bool = False  # the server writes a pidfile (the USR2 row reads the new pid there)
    kill_safe: bool = False  # clients that retry a GET once, and nginx with a next upstream
    about: str = ""


def _spaced(count: int, duration: float, action: Callable[[int], None]) -> None:
    """Call action(0..count-1) at even intervals inside the load (not at its very ends)."""
    step = duration / (count + 1)
    start = time.monotonic()
    for i in range(count):
        delay = start + step * (i + 1) - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the schedule of the operation, not a wait for a condition
        action(i)


def _wait(probe: Callable[[], bool], what: str, timeout: float = OP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def hup(server: ServerProcess, duration: float) -> None:
    _spaced(5, duration, lambda _: server.signal(signal.SIGHUP))


def ttin_ttou(server: ServerProcess, duration: float) -> None:
    sigs = (signal.SIGTTIN, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTTOU)
    _spaced(len(sigs), duration, lambda i: server.signal(sigs[i]))


def kill_worker(server: ServerProcess, duration: float) -> None:
    def kill(_: int) -> None:
        server.signal(signal.SIGKILL, min(server.workers()))

    _spaced(1, duration, kill)


def _new_master(pidfile: Path, old: int) -> int | None:
    # corral moves the old pidfile aside (PIDFILE.oldbin) and the new master writes PIDFILE;
    # gunicorn's new master writes PIDFILE.2 until the old one is gone.
    for path in (pidfile, pidfile.with_name(pidfile.name + ".2")):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) != old:
            return int(text)
    return None


def usr2(server: ServerProcess, duration: float) -> None:
    """USR2; once the new master has its workers, WINCH and then TERM to the old master."""
    pidfile = server.pidfile
    assert pidfile is not None, "the usr2 row needs a pidfile"
    old = server.master
    time.sleep(duration / 5)  # the schedule: the load runs on the old master first
    server.signal(signal.SIGUSR2)
    found: list[int] = []

    def new_master_known() -> bool:
        pid = _new_master(pidfile, old)
        found.extend([pid] if pid else [])
        return bool(found)

    _wait(new_master_known, "a new master in the pidfile")
    new = found[0]
    server.seen.add(new)
    _wait(lambda: len(server.children(new)) >= WORKERS, "the new master's workers")
    # gunicorn ignores WINCH unless daemonized; its old workers then stop with their master.
    server.signal(signal.SIGWINCH, old)
    time.sleep(duration / 5)  # the schedule: both generations serve for a while
    server.signal(signal.SIGTERM, old)
    if not server.wait_gone(old, OP_TIMEOUT_S):
        raise TimeoutError(f"old master {old} still running {OP_TIMEOUT_S}s after TERM")
    server.master = new


ROWS: tuple[Row, ...] = (
    Row("baseline", "no operation", about="the load alone"),
    Row("hup", "HUP x5", hup, replaces=True, about="five HUPs, spread over the load"),
    Row(
        "usr2",
        "USR2, WINCH + TERM old master",
        usr2,
        duration=6.0,
        pidfile=True,
        replaces=True,
        about="binary upgrade: a new master on the same listeners, then the old one stops",
    ),
    Row("ttin_ttou", "TTIN x2, TTOU x2", ttin_ttou, about="two workers more, then two fewer"),
    Row(
        "kill_worker",
        "SIGKILL a worker",
        kill_worker,
        clients=("newconn", "nginx"),
        kill_safe=True,
        replaces=True,
        about="a worker dies with its connections; new connections and nginx retry a GET",
    ),
    Row(
        "max_requests",
        "max_requests 50 (+jitter 10)",
        options=Options(max_requests=50, max_requests_jitter=10),
        replaces=True,
        about="every worker is replaced after 50 to 60 requests",
    ),
    Row(
        "max_worker_memory",
        f"max_worker_memory {MEMORY_LIMIT_MIB} MiB, leaking app",
        options=Options(max_worker_memory_mib=MEMORY_LIMIT_MIB),
        path="/leak",
        duration=6.0,
        replaces=True,
        about="each request leaks 256 KiB; a worker over the limit is replaced",
    ),
    Row(
        "term_drain",
        "TERM: 1 slow request in flight + 9 in the backlog",
        clients=(),
        options=Options(workers=1),
        about="one worker, ten 0.3 s requests, TERM while the first runs",
    ),
    Row(
        "emfile",
        "RLIMIT_NOFILE: EMFILE under load",
        clients=("burst",),
        path="/slow?ms=20&quiet=1",
        rate_scale=5 / 200,
        about=f"each worker may open 2 more fds; bursts of {BURST} 20 ms requests, 5 a second",
    ),
)
ROW_NAMES = tuple(row.name for row in ROWS)


def row_named(name: str) -> Row:
    for row in ROWS:
        if row.name == name:
            return row
    raise ValueError(f"unknown row {name!r}; known: {', '.join(ROW_NAMES)}")
