"""Process titles (`corral: master [name]`) through setproctitle when it is installed."""

from __future__ import annotations

import importlib


def set_title(role: str, name: str) -> bool:
    """Show `corral: <role> [<name>]` in ps and top; False (and nothing done) without setproctitle.

    Called a few times per process (at start, at fork, on reload), so the import is not cached.
    """
    try:
        module = importlib.import_module("setproctitle")
    except ImportError:
        return False
    module.setproctitle(f"corral: {role} [{name}]")
    return True
