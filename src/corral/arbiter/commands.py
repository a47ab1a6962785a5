"""The control socket's commands: words in, gunicorn 27's reply shapes out, via ControlTarget."""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from corral.arbiter.plan import Phase

if TYPE_CHECKING:
    from corral.arbiter.children import Child
    from corral.config import Config
    from corral.sockets import Listener

Data = dict[str, object]

DUMP_TIMEOUT = 5.0  # how long `dump` waits for the workers' stacks before answering without some

# gunicorn's help texts for the commands both servers have, and corral's `dump`.
HELP = {
    "show all": "Show all processes (arbiter, web workers, dirty workers)",
    "show workers": "List HTTP workers with their status",
    "show dirty": "List dirty workers and apps (corral has none)",
    "show config": "Show current effective configuration",
    "show stats": "Show server statistics",
    "show listeners": "Show bound sockets",
    "worker add [N]": "Spawn N workers (default 1)",
    "worker remove [N]": "Remove N workers (default 1)",
    "worker kill <PID>": "Gracefully terminate specific worker",
    "dump": "Show the stack of every thread of every worker",
    "reload": "Graceful reload (HUP)",
    "reopen": "Reopen log files (USR1)",
    "shutdown [graceful|quick]": "Shutdown server (TERM/INT)",
    "help": "Show this help message",
}

_SHOW_TARGETS = "all|workers|dirty|config|stats|listeners"


class CommandError(ValueError):
    """A command that cannot run as given; gunicorn's reply text is "Invalid argument: ..."."""


class CommandFailed(Exception):
    """A command that cannot run now; its text is the whole error reply."""


class Pending(Protocol):
    """A reply that takes more than one turn of the arbiter's loop (`dump`)."""

    def poll(self, now: float) -> Data | None:
        """The reply once it is complete (or its time is up); None meanwhile."""


class ControlTarget(Protocol):
    """What the commands need of the arbiter; `Arbiter` implements it with thin methods."""

    pid: int

    def workers_view(self) -> list[Data]:
        """One dict per live worker, oldest first (see `worker_row`)."""

    def stats_view(self) -> Data: ...

    def config_view(self) -> Data: ...

    def listeners_view(self) -> list[Data]: ...

    def add_workers(self, count: int) -> tuple[int, int]:
        """Raise the number of workers by `count`, as TTIN does; (previous, new) number."""

    def remove_workers(self, count: int) -> tuple[int, int]:
        """Lower it by `count`, not below 1, as TTOU does; (previous, new) number."""

    def kill_worker(self, pid: int) -> bool:
        """Retire worker `pid` gracefully (a new one replaces it); False if it is not ours."""

    def reload(self) -> None: ...

    def reopen(self) -> None: ...

    def shutdown(self, graceful: bool) -> None: ...

    def dump_stacks(self) -> Pending:
        """Ask every worker for its stacks; the Pending's reply is `StackCollection`'s."""


@dataclass
class StackCollection:
    """`dump`: the workers' stack texts, gathered as they come, answered when all are in.

    Each entry is (pid, age, fetch): `fetch()` gives the worker's text once it has written it,
    None before. At the deadline the reply goes out with the missing texts as errors, so one
    hung worker does not hold the answer for the others.
    """

    workers: Sequence[tuple[int, int, Callable[[], str | None]]]
    deadline: float
    texts: dict[int, str] = field(default_factory=dict)

    def poll(self, now: float) -> Data | None:
        for pid, _, fetch in self.workers:
            if pid not in self.texts:
                text = fetch()
                if text is not None:
                    self.texts[pid] = text
        if len(self.texts) < len(self.workers) and now < self.deadline:
            return None
        rows: list[Data] = []
        for pid, age, _ in self.workers:
            text = self.texts.get(pid)
            row: Data = {"pid": pid, "age": age, "text": text}
            if text is None:
                row["error"] = f"no answer within {DUMP_TIMEOUT:g} s"
            rows.append(row)
        return {"workers": rows, "count": len(rows)}


def execute(command: str, args: Sequence[object], target: ControlTarget) -> Data | Pending:
    """Run one command line (gunicorn's rule: the words of `command`, then `args`)."""
    words = shlex.split(command) + [str(arg) for arg in args]
    if not words:
        raise CommandError("Empty command")
    verb, rest = words[0].lower(), words[1:]
    if verb == "show":
        return _show(rest, target)
    if verb == "worker":
        return _worker(rest, target)
    if verb == "dirty":
        return _dirty(rest)
    if verb == "dump":
        return target.dump_stacks()
    if verb == "reload":
        target.reload()
        return {"status": "reloading"}
    if verb == "reopen":
        target.reopen()
        return {"status": "reopening"}
    if verb == "shutdown":
        return _shutdown(rest, target)
    if verb == "help":
        return {"commands": dict(HELP)}
    raise CommandError(f"Unknown command: {verb}")


def _show(rest: list[str], target: ControlTarget) -> Data:
    if not rest:
        raise CommandError(f"Missing show target ({_SHOW_TARGETS})")
    what = rest[0].lower()
    if what == "workers":
        workers = target.workers_view()
        return {"workers": workers, "count": len(workers)}
    if what == "all":
        return show_all(target.pid, target.workers_view())
    if what == "dirty":
        return {"enabled": False, "pid": None, "workers": [], "apps": []}
    if what == "config":
        return target.config_view()
    if what == "stats":
        return target.stats_view()
    if what == "listeners":
        listeners = target.listeners_view()
        return {"listeners": listeners, "count": len(listeners)}
    raise CommandError(f"Unknown show target: {what}")


def _worker(rest: list[str], target: ControlTarget) -> Data:
    if not rest:
        raise CommandError("Missing worker action (add|remove|kill)")
    action, values = rest[0].lower(), rest[1:]
    if action in ("add", "remove"):
        # As in gunicorn: N defaults to 1, and anything below 1 counts as 1.
        count = max(1, _integer(values[0])) if values else 1
        if action == "add":
            previous, total = target.add_workers(count)
            return {"added": total - previous, "previous": previous, "total": total}
        previous, total = target.remove_workers(count)
        return {"removed": previous - total, "previous": previous, "total": total}
    if action == "kill":
        if not values:
            raise CommandError("Missing PID for worker kill")
        pid = _integer(values[0])
        # gunicorn's shape: a pid that is not one of ours is an "ok" reply saying so.
        if not target.kill_worker(pid):
            return {"success": False, "error": f"Worker {pid} not found"}
        return {"success": True, "killed": pid}
    raise CommandError(f"Unknown worker action: {action}")


def _dirty(rest: list[str]) -> Data:
    """gunicorn's dirty pool commands, answered as gunicorn does when it has none."""
    if not rest:
        raise CommandError("Missing dirty action (add|remove)")
    if rest[0].lower() not in ("add", "remove"):
        raise CommandError(f"Unknown dirty action: {rest[0].lower()}")
    return {"success": False, "error": "Dirty arbiter not running"}


def _shutdown(rest: list[str], target: ControlTarget) -> Data:
    mode = rest[0].lower() if rest else "graceful"
    # gunicorn takes any other word for graceful; a typo must not choose how a server stops.
    if mode not in ("graceful", "quick"):
        raise CommandError(f"shutdown mode must be graceful or quick, not {mode!r}")
    target.shutdown(mode == "graceful")
    return {"status": "shutting_down", "mode": mode}


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"invalid literal for int() with base 10: {text!r}") from None


def worker_row(child: Child, now: float, requests: int | None) -> Data:
    """One worker as `show workers` lists it: gunicorn's fields, then corral's.

    gunicorn's: pid, age (spawn order), booted, aborted, last_heartbeat (seconds ago).
    corral's: state (booting, serving, retiring, aborted, killed), uptime (seconds since
    fork), requests (served so far, from the counts the worker publishes with metrics_bind;
    None without it).
    """
    booted = child.heartbeat.notified()
    if child.phase is Phase.ACTIVE:
        state = "serving" if booted else "booting"
    else:
        state = child.phase.value
    return {
        "pid": child.worker.pid,
        "age": child.worker.age,
        "booted": booted,
        "aborted": child.phase is Phase.ABORTED,
        "last_heartbeat": round(now - child.heartbeat.last_update(), 2),
        "state": state,
        "uptime": round(now - child.spawned_at, 2),
        "requests": requests,
    }


def show_all(pid: int, workers: list[Data]) -> Data:
    """`show all`: gunicorn's process tree (corral has no dirty arbiter)."""
    return {
        "arbiter": {"pid": pid, "type": "arbiter", "role": "master"},
        "web_workers": [{**row, "type": "web"} for row in workers],
        "web_worker_count": len(workers),
        "dirty_arbiter": None,
        "dirty_workers": [],
        "dirty_worker_count": 0,
    }


@dataclass
class ServerStats:
    """The counts `show stats` reports beside the live ones (gunicorn's `_stats`)."""

    started: float = field(default_factory=time.time)
    spawned: int = 0
    killed: int = 0  # TERM or KILL sent to a worker, as gunicorn counts them
    reloads: int = 0

    def view(self, pid: int, current: int, target: int) -> Data:
        return {
            "uptime": round(time.time() - self.started, 2),
            "pid": pid,
            "workers_current": current,
            "workers_target": target,
            "workers_spawned": self.spawned,
            "workers_killed": self.killed,
            "reloads": self.reloads,
            "dirty_arbiter_pid": None,
        }


class StackDumps(Protocol):
    """The workers' side of `dump`, built apart from this module: how a worker is asked for the
    stacks of its threads, and how its text is read back. `Arbiter.stack_dumps` holds one;
    while it is None, `dump` answers that it is not available."""

    def ask(self, child: Child) -> Callable[[], str | None]:
        """Ask `child` for its stacks; the callable gives its text once written, None before."""


# gunicorn's `show config` keys (all of them settings in corral too).
CONFIG_KEYS = (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "worker_connections",
    "preload_app",
    "daemon",
    "pidfile",
    "proc_name",
    "reload",
    "dirty_workers",
    "dirty_apps",
    "dirty_timeout",
    "control_socket",
    "control_socket_disable",
)


def config_view(cfg: Config) -> Data:
    """`show config`: gunicorn's keys, values as JSON has them (others as text)."""
    view: Data = {}
    for key in CONFIG_KEYS:
        value = getattr(cfg, key)
        plain = value is None or isinstance(value, (str, int, float, bool, list, dict))
        view[key] = value if plain and not callable(value) else str(value)
    return view


def listeners_view(listeners: Sequence[Listener], scheme: str) -> list[Data]:
    """`show listeners`: each listening socket's address, kind and fd."""
    kinds = {socket.AF_UNIX: "unix", socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}
    return [
        {
            "address": listener.url(scheme),
            "fd": listener.fileno(),
            "type": kinds.get(listener.sock.family, "unknown"),
        }
        for listener in listeners
    ]
