"""HUP: read the configuration again and work out which listeners change."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from corral.sockets import Listener, parse_bind

if TYPE_CHECKING:
    from corral.config import Config


def load_config(argv: Sequence[str]) -> Config:
    """The configuration as the command line would load it now (config file, env, argv)."""
    from corral.config import load

    return load(argv, os.environ)


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
