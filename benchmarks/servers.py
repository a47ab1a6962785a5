"""The server configurations under test: how to launch each, whether it is here, its version."""

from __future__ import annotations

import functools
import importlib.util
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import package_version
from benchmarks.workloads import Workload

HOST = "127.0.0.1"
WORKERS = 2
GTHREAD_THREADS = 8
GTHREAD_IO_THREADS = 32
WAITRESS_THREADS = 4  # waitress's own default
UVICORN_WSGI_THREADS = 10  # fixed inside uvicorn's WSGIMiddleware
APPS_DIR = Path(__file__).resolve().parent / "apps"


@dataclass(frozen=True)
class Launch:
    """One server process to start: its argv, and files to write before starting it."""

    argv: list[str]
    config: str  # workers x threads, for the table
    files: dict[Path, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Server:
    """A server configuration: `build(port, workload, tmpdir)` gives the process to start."""

    name: str
    distribution: str  # the installed package (or binary) that provides it
    build: Callable[[str, Workload, Path], Launch]
    only: frozenset[str] | None = None  # workloads it serves; None means all of its interface
    interface: str = "wsgi"  # the workloads' interface it serves: "wsgi" or "asgi"
    module: str | None = None  # what must import for it to run; None means `distribution`
    # It agrees to permessage-deflate (RFC 7692), so it takes part in ws-echo-deflate; gunicorn's
    # asgi worker and granian answer the offer without the extension.
    deflate: bool = False

    def serves(self, workload: Workload) -> bool:
        """Whether this configuration takes part in the workload."""
        if workload.interface != self.interface:
            return False
        if workload.deflate and not self.deflate:
            return False
        return self.only is None or workload.name in self.only


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _corral_sync(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("corral", "-w", str(WORKERS), "-k", "sync", "-b", f"{HOST}:{port}", w.app)
    return Launch(argv, f"{WORKERS} workers")


def _corral_threaded(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("corral", "-w", str(WORKERS), "-k", "threaded", "-b", f"{HOST}:{port}", w.app)
    defaults = corral_thread_defaults()
    shown = f"default threads ({defaults})" if defaults else "default threads"
    return Launch(argv, f"{WORKERS} workers, {shown}")


def _corral_threaded_pinned(port: str, w: Workload, tmp: Path) -> Launch:
    # The same worker with each process pinned to a CPU of its own, as docs/settings.md advises
    # when corral has the machine to itself.
    launch = _corral_threaded(port, w, tmp)
    return Launch([*launch.argv, "--cpu-affinity", "auto"], f"{launch.config}, cpu_affinity=auto")


def _corral_threads(count: int) -> Callable[[str, Workload, Path], Launch]:
    """The threaded worker with `--threads N`, as gunicorn users set it: a cap of N, threads
    started on demand (so it should cost nothing against the default under light load)."""

    def launch(port: str, w: Workload, tmp: Path) -> Launch:
        argv = _python("corral", "-w", str(WORKERS), "-k", "threaded", "--threads", str(count))
        return Launch(
            [*argv, "-b", f"{HOST}:{port}", w.app], f"{WORKERS} workers x {count} threads"
        )

    return launch


def _gunicorn_sync(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("gunicorn", "-w", str(WORKERS), "-k", "sync", "-b", f"{HOST}:{port}", w.app)
    return Launch(argv, f"{WORKERS} workers")


def _gunicorn_gthread(port: str, w: Workload, tmp: Path) -> Launch:
    threads = GTHREAD_IO_THREADS if w.name == "io" else GTHREAD_THREADS
    argv = _python("gunicorn", "-w", str(WORKERS), "-k", "gthread", "--threads", str(threads))
    return Launch([*argv, "-b", f"{HOST}:{port}", w.app], f"{WORKERS} workers x {threads} threads")


def _granian(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("granian", "--interface", "wsgi", "--workers", str(WORKERS))
    argv += ["--host", HOST, "--port", port, "--no-access-log", "--log-level", "warning", w.app]
    return Launch(argv, f"{WORKERS} workers, default blocking threads")


def _uvicorn(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("uvicorn", "--interface", "wsgi", "--workers", str(WORKERS))
    argv += ["--host", HOST, "--port", port, "--no-access-log", "--log-level", "warning", w.app]
    # uvicorn takes httptools and uvloop when they are installed (uvicorn[standard]), else h11
    # and asyncio; say which, since it changes its numbers.
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    threads = f"{WORKERS} workers x {UVICORN_WSGI_THREADS} threads"
    return Launch(argv, f"{threads}, {http} + {loop}")


def _waitress(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("waitress", "--host", HOST, "--port", port)
    argv += ["--threads", str(WAITRESS_THREADS), w.app]
    return Launch(argv, f"1 process x {WAITRESS_THREADS} threads")


def _loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _corral_asyncio(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("corral", "-w", str(WORKERS), "-k", "asyncio", "-b", f"{HOST}:{port}", w.app)
    # corral's `loop = auto` takes uvloop when it imports, as the other ASGI servers do.
    return Launch(argv, f"{WORKERS} workers, loop auto ({_loop_name()})")


def _uvicorn_asgi(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("uvicorn", "--workers", str(WORKERS), "--http", "httptools", "--loop", "uvloop")
    argv += ["--host", HOST, "--port", port, "--no-access-log", "--log-level", "warning", w.app]
    return Launch(argv, f"{WORKERS} workers, httptools + uvloop, --ws auto")


def _gunicorn_asgi(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("gunicorn", "-w", str(WORKERS), "-k", "asgi", "-b", f"{HOST}:{port}", w.app)
    return Launch(argv, f"{WORKERS} workers, --asgi-loop auto ({_loop_name()})")


def _granian_asgi(port: str, w: Workload, tmp: Path) -> Launch:
    argv = _python("granian", "--interface", "asgi", "--workers", str(WORKERS))
    argv += ["--host", HOST, "--port", port, "--no-access-log", "--log-level", "warning", w.app]
    return Launch(argv, f"{WORKERS} workers, --loop auto")


def nginx_conf(port: str, tmp: Path) -> str:
    """A minimal foreground nginx answering every request with the hello body; all paths in tmp."""
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "daemon off;\n"
        f"worker_processes {WORKERS};\n"
        f"pid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        "    default_type text/plain;\n"
        # nginx closes a keep-alive connection after 1000 requests by default; the Python servers
        # have no such cap, so lift it for a fair ceiling.
        "    keepalive_requests 10000000;\n"
        f"{temp_paths}"
        "    server {\n"
        f"        listen {HOST}:{port};\n"
        '        location / { return 200 "Hello, World!"; }\n'
        "    }\n"
        "}\n"
    )


def _nginx(port: str, w: Workload, tmp: Path) -> Launch:
    conf = tmp / "nginx.conf"
    argv = [shutil.which("nginx") or "nginx", "-p", str(tmp), "-e", str(tmp / "error.log")]
    argv += ["-c", str(conf)]
    return Launch(argv, f"{WORKERS} workers, `return 200`", {conf: nginx_conf(port, tmp)})


SERVERS: tuple[Server, ...] = (
    Server("corral-sync", "corral", _corral_sync),
    Server("corral-threaded", "corral", _corral_threaded),
    Server("corral-threaded-pinned", "corral", _corral_threaded_pinned),
    Server("corral-threads-8", "corral", _corral_threads(8)),
    Server("corral-threads-128", "corral", _corral_threads(128)),
    Server("gunicorn-sync", "gunicorn", _gunicorn_sync),
    Server("gunicorn-gthread", "gunicorn", _gunicorn_gthread),
    Server("granian", "granian", _granian),
    Server("uvicorn", "uvicorn", _uvicorn),
    Server("waitress", "waitress", _waitress),
    Server("nginx", "nginx", _nginx, only=frozenset({"hello"})),
    Server("corral-asyncio", "corral", _corral_asyncio, interface="asgi", deflate=True),
    Server("uvicorn-asgi", "uvicorn", _uvicorn_asgi, interface="asgi", deflate=True),
    # gunicorn's own asyncio ASGI worker (`-k asgi`) first shipped after 23.0, hence the module.
    Server(
        "gunicorn-asgi",
        "gunicorn",
        _gunicorn_asgi,
        interface="asgi",
        module="gunicorn.workers.gasgi",
    ),
    Server("granian-asgi", "granian", _granian_asgi, interface="asgi"),
)

SERVER_NAMES: tuple[str, ...] = tuple(s.name for s in SERVERS)


def select_servers(names: Sequence[str], known: Sequence[str] = SERVER_NAMES) -> list[Server]:
    """The configurations named, in the order of `known` (the suite's, by default); a name not
    in `known` raises ValueError."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(known)}")
    by_name = {s.name: s for s in SERVERS}
    return [by_name[name] for name in known if name in names]


def missing_reason(server: Server) -> str | None:
    """Why the server cannot run here (not installed), or None when it can be tried."""
    if server.distribution == "nginx":
        return None if shutil.which("nginx") else "nginx not found (apt-get install nginx)"
    module = server.module or server.distribution
    try:
        found = importlib.util.find_spec(module)
    except ImportError:  # the parent package of a dotted name is missing
        found = None
    if found is None:
        return f"{module} is not importable (pip install -e .[bench])"
    return None


def server_version(distribution: str) -> str:
    """The installed version of a server, or a note saying why it is unknown."""
    if distribution == "nginx":
        path = shutil.which("nginx")
        if path is None:
            return "not installed"
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10, check=False)
        return (done.stderr or done.stdout).strip().rpartition("/")[2] or "unknown"
    return package_version(distribution) or "not installed"


def versions(servers: Sequence[Server], packages: Sequence[str] = ()) -> dict[str, str]:
    """Python's version, then each server's (once per distribution), then each package's."""
    found = {"Python": platform.python_version()}
    for server in servers:
        found.setdefault(server.distribution, server_version(server.distribution))
    for name in packages:
        found[name] = package_version(name) or "not installed"
    return found


_THREADS_PROBE = (
    "import corral.config as c; "
    "cfg = c.load(['-k', 'threaded', 'wsgi_apps:hello'], {}); "
    "names = [k for k in ('threads', 'max_threads') if hasattr(cfg, k)]; "
    "print(' '.join(f'{k}={getattr(cfg, k)}' for k in names))"
)


@functools.cache
def corral_thread_defaults() -> str | None:
    """corral's default `threads` (and `max_threads`, the pool's bound) for the threaded worker,
    as `threads=N max_threads=M`, asked of corral.config in a subprocess (so a broken corral
    cannot break the harness); None when it cannot tell."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _THREADS_PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            cwd=APPS_DIR,
        )
    except subprocess.TimeoutExpired:
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out.startswith("threads=") else None
