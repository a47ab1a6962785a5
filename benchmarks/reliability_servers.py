"""The servers the reliability rows run: how to start each, and what each cannot be asked to do."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
WORKERS = 2
GTHREAD_THREADS = 8
APPS_DIR = Path(__file__).resolve().parent
WSGI_APP = "reliability_apps:wsgi_app"
ASGI_APP = "reliability_apps:asgi_app"


@dataclass(frozen=True)
class Options:
    """A row's settings for the server: worker count and the recycling limits it turns on."""

    workers: int = WORKERS
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_worker_memory_mib: int = 0
    pidfile: Path | None = None


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration: its argv for given options, and the operations it lacks."""

    name: str
    family: str  # "corral", "gunicorn" or "uvicorn": how its master behaves
    interface: str  # "wsgi" or "asgi"
    argv: Callable[[Options, str], list[str]]  # (options, "HOST:PORT") -> command line
    lacks: dict[str, str]  # operation name -> why it does not apply ("n/a: <why>")
    module: str  # what must import for it to run

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    @property
    def binds_port_zero(self) -> bool:
        """Whether it logs its real address after binding port 0 (else a free port is chosen)."""
        return self.family != "uvicorn"

    @property
    def app(self) -> str:
        return ASGI_APP if self.interface == "asgi" else WSGI_APP


def free_port() -> int:
    """A port free on HOST now, for servers that do not report the port they bound (uvicorn)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _common(opts: Options) -> list[str]:
    """gunicorn's flags, which corral takes unchanged."""
    args = ["-w", str(opts.workers)]
    if opts.max_requests:
        args += ["--max-requests", str(opts.max_requests)]
        args += ["--max-requests-jitter", str(opts.max_requests_jitter)]
    if opts.pidfile is not None:
        args += ["--pid", str(opts.pidfile)]
    return args


def _corral(worker: str, app: str) -> Callable[[Options, str], list[str]]:
    def argv(opts: Options, bind: str) -> list[str]:
        args = [sys.executable, "-m", "corral", *_common(opts), "-k", worker, "-b", bind]
        if opts.max_worker_memory_mib:
            args += ["--max-worker-memory", str(opts.max_worker_memory_mib)]
        return [*args, app]

    return argv


def _gunicorn_script() -> str:
    """The `gunicorn` console script beside this interpreter, as users start it.

    Not `python -m gunicorn`: on USR2 gunicorn re-executes its argv, and a re-executed
    `gunicorn/__main__.py` puts gunicorn's own package first on sys.path, where its `http`
    subpackage hides the standard library's (the asgi worker then fails to import).
    """
    beside = Path(sys.executable).with_name("gunicorn")
    return str(beside) if beside.exists() else shutil.which("gunicorn") or "gunicorn"


def _gunicorn(worker: str, app: str, *extra: str) -> Callable[[Options, str], list[str]]:
    def argv(opts: Options, bind: str) -> list[str]:
        # The control socket's default path is one per user: two gunicorns (or an upgrade)
        # would fight over it, and the rows do not use it.
        args = [_gunicorn_script(), *_common(opts), "-k", worker, *extra]
        return [*args, "--no-control-socket", "-b", bind, app]

    return argv


def _uvicorn(opts: Options, bind: str) -> list[str]:
    host, _, port = bind.rpartition(":")
    args = [sys.executable, "-m", "uvicorn", "--workers", str(opts.workers), "--host", host]
    args += ["--port", port, "--no-access-log", "--log-level", "info"]
    if opts.max_requests:
        args += ["--limit-max-requests", str(opts.max_requests)]
        args += ["--limit-max-requests-jitter", str(opts.max_requests_jitter)]
    return [*args, ASGI_APP]


NO_MEMORY_LIMIT = "no memory limit setting"
NO_UPGRADE = "no USR2 upgrade"
CORRAL_LACKS: dict[str, str] = {}
GUNICORN_LACKS = {"max_worker_memory": NO_MEMORY_LIMIT}
UVICORN_LACKS = {"max_worker_memory": NO_MEMORY_LIMIT, "usr2": NO_UPGRADE}

SPECS: tuple[ServerSpec, ...] = (
    ServerSpec("corral-sync", "corral", "wsgi", _corral("sync", WSGI_APP), CORRAL_LACKS, "corral"),
    ServerSpec(
        "corral-threaded", "corral", "wsgi", _corral("threaded", WSGI_APP), CORRAL_LACKS, "corral"
    ),
    ServerSpec(
        "corral-asyncio", "corral", "asgi", _corral("asyncio", ASGI_APP), CORRAL_LACKS, "corral"
    ),
    ServerSpec(
        "gunicorn-sync", "gunicorn", "wsgi", _gunicorn("sync", WSGI_APP), GUNICORN_LACKS, "gunicorn"
    ),
    ServerSpec(
        "gunicorn-gthread",
        "gunicorn",
        "wsgi",
        _gunicorn("gthread", WSGI_APP, "--threads", str(GTHREAD_THREADS)),
        GUNICORN_LACKS,
        "gunicorn",
    ),
    ServerSpec(
        "gunicorn-asgi",
        "gunicorn",
        "asgi",
        _gunicorn("asgi", ASGI_APP),
        GUNICORN_LACKS,
        "gunicorn.workers.gasgi",
    ),
    ServerSpec("uvicorn", "uvicorn", "asgi", _uvicorn, UVICORN_LACKS, "uvicorn"),
)
SPEC_NAMES = tuple(spec.name for spec in SPECS)
CORRAL_NAMES = tuple(spec.name for spec in SPECS if spec.family == "corral")


def spec_named(name: str) -> ServerSpec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown server {name!r}; known: {', '.join(SPEC_NAMES)}")
