"""Loading what a configuration names (worker class, preloaded app), and HUP's re-reading."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from corral.errors import AppLoadError
from corral.sockets import Listener, parse_bind

if TYPE_CHECKING:
    from corral.config import Config
    from corral.gateway.loader import LoadedApp
    from corral.workers.base import Worker


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
