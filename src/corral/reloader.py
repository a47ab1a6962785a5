"""Code reloading for development (`reload`): watch source files with inotify, or poll them."""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import PurePath
from typing import Any

from corral.gateway.loader import LoadedApp

ENGINES = ("auto", "poll", "inotify")
# uvicorn's default --reload-exclude: hidden files and directories, bytecode, editor swap and
# backup files. Applied to what reload_include patterns find, not to modules or extra files.
DEFAULT_EXCLUDE = (".*", "*.py[cod]", ".sw.*", "~*")
# Never walked when looking for reload_include matches: they hold nothing to watch, or too much.
_PRUNED = {"__pycache__", "node_modules"}
_GLOB = frozenset("*?[")
INOTIFY_TIMEOUT_MS = 1000  # how often the inotify loop looks for new directories to watch


def module_files() -> Iterator[str]:
    """The source file of every loaded module that has one."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path:
            yield path[:-1] if path.endswith((".pyc", ".pyo")) else path


def expand(patterns: Iterable[str]) -> list[str]:
    """Extra files as given; entries with glob characters expand (recursively with `**`)."""
    out: list[str] = []
    for pattern in patterns:
        if _GLOB & set(pattern):
            out.extend(sorted(glob.glob(pattern, recursive=True)))
        else:
            out.append(pattern)
    return out


def _matches(path: PurePath, patterns: Iterable[str]) -> bool:
    """Whether the path, or a directory it is in, matches a glob pattern (from the right, as
    pathlib matches: `*.html` matches at any depth, `.git` every file under a `.git`)."""
    ancestors = [path, *list(path.parents)[:-1]]
    return any(p.match(pattern) for pattern in patterns for p in ancestors)


class Watched:
    """Which files a change to restarts the worker: the loaded modules' sources (as gunicorn),
    `extra_files` (globs expand on every pass, so new files count), files added later (one
    that failed to import), and, under `root`, files matching an `include` pattern (as
    uvicorn's --reload-include). A file matching an `exclude` pattern never counts."""

    def __init__(
        self,
        root: str,
        extra_files: Iterable[str] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> None:
        self.root = os.path.abspath(root)
        self.extra_files = list(extra_files)
        self.include = list(include)
        self.exclude = list(exclude)
        self.added: set[str] = set()

    def exact(self) -> set[str]:
        """Modules, extra files and added files, as absolute paths, exclusions left out."""
        found = {os.path.abspath(p) for p in (*module_files(), *expand(self.extra_files))}
        return {p for p in found | self.added if not self.excluded(p)}

    def files(self) -> set[str]:
        """Every file watched now, including what the include patterns find under root."""
        return self.exact() | set(self._included())

    def wanted(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` (absolute) whose change restarts the worker."""
        exact = self.exact()
        return [p for p in paths if p in exact or self._include_matches(p)]

    def directories(self) -> set[str]:
        """The directories to watch for changes to those files (each on its own, not below)."""
        dirs = {os.path.dirname(p) for p in self.exact()}
        if self.include:
            dirs.update(self._tree())
        return {d for d in dirs if os.path.isdir(d)}

    def excluded(self, path: str) -> bool:
        return bool(self.exclude) and _matches(self._relative(path), self.exclude)

    def _relative(self, path: str) -> PurePath:
        """Under root, the path from root: patterns and ancestors stop there."""
        if path.startswith(self.root + os.sep):
            return PurePath(os.path.relpath(path, self.root))
        return PurePath(path)

    def _include_matches(self, path: str) -> bool:
        if not self.include or not path.startswith(self.root + os.sep):
            return False
        rel = self._relative(path)
        return (
            any(rel.match(pattern) for pattern in self.include)
            and not _matches(rel, DEFAULT_EXCLUDE)
            and not self.excluded(path)
        )

    def _tree(self) -> Iterator[str]:
        """root and the directories below it that may hold included files."""
        for top, subdirs, _ in os.walk(self.root):
            subdirs[:] = [
                d
                for d in subdirs
                if d not in _PRUNED
                and not _matches(self._relative(os.path.join(top, d)), DEFAULT_EXCLUDE)
            ]
            yield top

    def _included(self) -> Iterator[str]:
        if not self.include:
            return
        for top in self._tree():
            try:
                names = os.listdir(top)
            except OSError:  # removed since the walk saw it
                continue
            for name in names:
                path = os.path.join(top, name)
                if self._include_matches(path) and os.path.isfile(path):
                    yield path


def choose_engine(setting: str) -> tuple[str, str | None]:
    """`reload_engine` to the engine used: `inotify` (through watchfiles) or `poll`, and why
    not the one asked for, when it is not installed."""
    if setting not in ENGINES:
        raise ValueError(f"reload_engine {setting!r}: expected one of {', '.join(ENGINES)}")
    if setting == "poll":
        return "poll", None
    if importlib.util.find_spec("watchfiles") is not None:
        return "inotify", None
    if setting == "inotify":
        return "poll", "reload_engine = inotify needs watchfiles (pip install 'corral[reload]')"
    return "poll", None


class Reloader(threading.Thread):
    """Calls `callback(path)` from a daemon thread when a watched file (see Watched) changes.

    `engine` is `poll` (one stat per file every `interval`: nothing to install) or `inotify`
    (watchfiles: changes seen within a few tens of milliseconds, no per-file cost). A file
    first seen with an mtime after `since` (when the worker began importing the app) counts as
    changed, so a save made while the worker booted is not lost. `warn` receives the reason
    when inotify fails and polling takes over.
    """

    def __init__(
        self,
        watched: Watched,
        callback: Callable[[str], None],
        *,
        engine: str = "poll",
        interval: float = 1.0,
        since: float | None = None,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        super().__init__(name="corral-reloader", daemon=True)
        self.watched = watched
        self.callback = callback
        self.engine = engine
        self.interval = interval
        self.since = since
        self.warn = warn
        self._stopped = threading.Event()
        self._mtimes: dict[str, float] = {}
        # The baseline is taken now, in the caller's thread, so that a change made between
        # construction and the thread's first pass is still seen as a change.
        self.pending = self.check()  # reported when the thread starts

    def check(self) -> list[str]:
        """One pass: record new files, return the ones whose mtime changed since the last pass
        (for a new file: since `since`)."""
        changed: list[str] = []
        now = time.time()
        for path in sorted(self.watched.files()):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            # An mtime ahead of our clock (a file from a host whose clock runs ahead) is no
            # sign of a change: counting it would restart the worker until that time came.
            since = self.since
            first = since if since is not None and since < mtime <= now else mtime
            old = self._mtimes.setdefault(path, first)
            if mtime != old:
                self._mtimes[path] = mtime
                changed.append(path)
        return changed

    def run(self) -> None:
        for path in self.pending:
            self.callback(path)
        if self.engine == "inotify":
            try:
                self._watch()
            except Exception as exc:  # the inotify watch limit, a directory gone...
                self.warn(f"reload: inotify failed ({type(exc).__name__}: {exc}); polling")
            else:
                return
            # Against the baseline taken at construction: changes the watch missed count.
            for path in self.check():
                self.callback(path)
        while not self._stopped.wait(self.interval):
            for path in self.check():
                self.callback(path)

    def _watch(self) -> None:
        import watchfiles

        while not self._stopped.is_set():
            dirs = self.watched.directories()
            armed = False
            for changes in watchfiles.watch(
                *sorted(dirs),
                watch_filter=None,
                stop_event=self._stopped,
                rust_timeout=INOTIFY_TIMEOUT_MS,
                yield_on_timeout=True,
                recursive=False,
                raise_interrupt=False,
            ):
                paths = set(self.watched.wanted({path for _, path in changes}))
                if not armed:
                    # The watch is armed by the first yield: a file saved before then (while
                    # the worker began serving) shows in its mtime, not in an event.
                    armed = True
                    paths.update(self.check())
                for path in sorted(paths):
                    self.callback(path)
                # A module imported from a new directory, or a new directory under root.
                if self.watched.directories() != dirs:
                    break

    def stop(self) -> None:
        """Ask the thread to end after its current pass."""
        self._stopped.set()


def failing_files(exc: BaseException) -> list[str]:
    """The source files an import failure points at: the file with the syntax error, and the
    files of the traceback (modules whose import failed are not in sys.modules, so a reloader
    would not otherwise watch them)."""
    files: list[str] = []
    if isinstance(exc, SyntaxError) and exc.filename:
        files.append(exc.filename)
    tb = exc.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return [os.path.abspath(f) for f in dict.fromkeys(files) if os.path.isfile(f)]


BROKEN_BODY = b"Internal Server Error: the application failed to load; see the error log.\n"
_BROKEN_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(BROKEN_BODY)).encode()),
]


def broken_app(interface: str) -> LoadedApp:
    """What a worker serves while the app cannot be imported under `reload`: 500 for every
    request (gunicorn serves its traceback; corral's stays in the error log)."""
    if interface == "asgi":
        return LoadedApp(_broken_asgi, "asgi")
    return LoadedApp(_broken_wsgi, "wsgi")


def _broken_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    headers = [(name.decode(), value.decode()) for name, value in _BROKEN_HEADERS]
    start_response("500 Internal Server Error", headers)
    return [BROKEN_BODY]


async def _broken_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        # Answered, so that `lifespan = on` does not stop the worker over a missing app.
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011})
    else:
        await send({"type": "http.response.start", "status": 500, "headers": _BROKEN_HEADERS})
        await send({"type": "http.response.body", "body": BROKEN_BODY})
