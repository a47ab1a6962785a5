"""Loading what a configuration names (worker class, preloaded app), and HUP's re-reading."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corral.arbiter.pidfile import Pidfile, PidfileError
from corral.arbiter.sizing import resolve_workers
from corral.errors import AppLoadError
from corral.logging import Logger
from corral.sockets import BindError, Listener, close_listeners, open_listeners, parse_bind

if TYPE_CHECKING:
    from corral.config import Config
    from corral.gateway.loader import LoadedApp
    from corral.workers.base import Worker


@dataclass(frozen=True)
class Generation:
    """What a configuration makes of the master.

    The arbiter keeps the one a reload replaced, so a reload whose workers cannot boot can be
    undone.
    """

    cfg: Config
    worker_class: type[Worker]
    app: LoadedApp | None
    num_workers: int


# The environment as corral was started with, before raw_env: the CLI imports this module
# before it applies raw_env, so this is what a HUP goes back to before it applies the new
# raw_env (gunicorn's `env_orig`).
ORIGINAL_ENVIRON = dict(os.environ)


def raw_env_pairs(raw_env: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` items as a dict (a later item wins, as when they are applied in order)."""
    pairs: dict[str, str] = {}
    for item in raw_env:
        key, _, value = item.partition("=")
        pairs[key] = value
    return pairs


def switch_environ(old: Sequence[str], new: Sequence[str]) -> None:
    """Undo raw_env `old` in os.environ (back to ORIGINAL_ENVIRON), then apply raw_env `new`.

    Workers forked from here on inherit the result, so a HUP's new workers see the new raw_env.
    """
    for key in raw_env_pairs(old):
        if key in ORIGINAL_ENVIRON:
            os.environ[key] = ORIGINAL_ENVIRON[key]
        else:
            os.environ.pop(key, None)
    os.environ.update(raw_env_pairs(new))


def prepare(
    argv: Sequence[str], cwd: str, raw_env: Sequence[str] = ()
) -> tuple[Generation, Logger]:
    """HUP: the configuration as loaded now, its worker class, preloaded app and logger.

    `raw_env` is the one in effect: as in gunicorn, the config file is read without it, and
    the new raw_env is in os.environ before the app is preloaded and for the workers forked
    after. Raises whatever loading raises (a config file or an app can raise anything); the
    environment is then as before, and nothing else of the running master has changed.
    """
    applied: Sequence[str] = ()
    switch_environ(raw_env, applied)
    try:
        cfg = load_config(argv, cwd)
        applied = cfg.raw_env
        switch_environ((), applied)
        cls = worker_class(cfg)
        app = preload(cfg) if cfg.preload_app else None
        resolve_workers(cfg, cls)
        return Generation(cfg, cls, app, cfg.workers), Logger(cfg)
    except BaseException:
        switch_environ(applied, raw_env)
        raise


def load_config(argv: Sequence[str], cwd: str) -> Config:
    """The configuration as the command line would load it now, from `cwd` (where it started).

    Relative paths in argv (`-c corral.conf.py`, `--chdir app`) mean what they meant at start,
    even though the master has changed directory since (`--chdir`).
    """
    from corral.config import load

    here = os.getcwd()
    os.chdir(cwd)
    try:
        return load(argv, os.environ)
    finally:
        os.chdir(here)


def diff_binds(
    listeners: Sequence[Listener], binds: Sequence[str]
) -> tuple[list[Listener], list[str], list[Listener]]:
    """Split into (listeners to keep, binds to open, listeners to close).

    Listeners handed to us (systemd, an upgrade) have no bind of their own to compare: with any
    of those, everything is kept and nothing opened, since their sockets are managed outside.
    BindError when a new bind is malformed.
    """
    wanted = {parse_bind(b): b for b in binds}
    if any(listener.spec is None for listener in listeners):
        return list(listeners), [], []
    kept = [listener for listener in listeners if listener.spec in wanted]
    removed = [listener for listener in listeners if listener.spec not in wanted]
    have = {listener.spec for listener in kept}
    added = [text for spec, text in wanted.items() if spec not in have]
    return kept, added, removed


def worker_class(cfg: Config) -> type[Worker]:
    """The worker class the settings name (ConfigError when there is none)."""
    from corral.workers import resolve

    return resolve(cfg.worker_class, cfg.threads)


def preload(cfg: Config) -> LoadedApp:
    """Load the app in the master (preload_app), so workers share its memory after fork."""
    from corral.gateway.loader import load_app

    if not cfg.app_uri:
        raise AppLoadError("no application given: pass APP as module:callable")
    return load_app(cfg.app_uri)


def rebind(
    listeners: list[Listener],
    cfg: Config,
    pid: int,
    owner: tuple[int, int] | None,
    log: Logger,
    *,
    unlink: bool,
) -> list[Listener]:
    """HUP: the listeners for ``cfg.bind``: open the binds it added, close the ones it removed,
    keep the rest. On a bad or unbindable address the current listeners stay, and it is logged.
    """
    try:
        kept, added, removed = diff_binds(listeners, cfg.bind)
    except BindError as exc:
        log.error("Reload: %s; keeping the current listeners", exc)
        return listeners
    if not (added or removed):
        return listeners
    try:
        fresh = open_listeners(
            added, {}, pid, backlog=cfg.backlog, reuse_port=cfg.reuse_port, owner=owner
        )
    except BindError as exc:
        log.error("Reload: %s; keeping the current listeners", exc)
        return listeners
    close_listeners(removed, unlink=unlink)
    for listener in fresh:
        log.info("Listening at: %s (%s)", listener.url(cfg.scheme), pid)
    return kept + fresh


def repoint_pidfile(
    pidfile: Pidfile | None, path: str | None, pid: int, log: Logger
) -> Pidfile | None:
    """HUP: move the pidfile to the reloaded ``pidfile`` setting; the one now in use, if any."""
    if pidfile is not None and pidfile.path == path:
        return pidfile
    if pidfile is not None:
        pidfile.unlink()
    if path is None:
        return None
    fresh = Pidfile(path)
    try:
        fresh.create(pid)
    except PidfileError as exc:
        log.error("Reload: %s", exc)
        return None
    return fresh
