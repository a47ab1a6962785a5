"""Fixtures for tests/compat: the e2e `corral_factory`, and the environment both servers get.

Each config under configs/ is run twice as a user would: `corral -c FILE -b 127.0.0.1:0 APP`
serving a request, and `--print-config` of corral and of gunicorn 27 side by side
(printed.py compares them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import APPS, corral_factory

__all__ = ["APPS", "CONFIGS", "compat_env", "corral_factory", "print_config"]

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
STUBS = HERE / "stubs"
# What a developer's shell may hold that would change either server's settings.
_SCRUBBED = ("GUNICORN_CMD_ARGS", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "SENDFILE")


def compat_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for both servers: ours scrubbed, the apps (and stand-ins) importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED and not k.startswith(("CORRAL_", "GUNICORN_"))
    }
    # prometheus_client's stand-in, ahead of the real one when it is installed: its
    # mark_process_dead leaves a marker per worker, so the test sees child_exit ran for each
    # (the real one only removes gauge files these workers never wrote).
    paths = [str(APPS), str(STUBS)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def print_config(server: str, args: list[str], env: dict[str, str], cwd: Path) -> str:
    """`corral|gunicorn --print-config ARGS`; its stdout, after checking it succeeded."""
    command = [sys.executable, "-m", server, "--print-config", *args]
    if server == "gunicorn" and shutil.which("gunicorn") is None:
        raise AssertionError("gunicorn 27 is needed: pip install -e '.[bench]'")
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
