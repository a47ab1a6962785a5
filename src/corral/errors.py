"""corral's exception hierarchy and the process exit codes that go with it."""

from __future__ import annotations

# Exit statuses shared by the CLI, the arbiter and the workers. A worker that exits with
# WORKER_BOOT_ERROR or APP_LOAD_ERROR makes the arbiter halt instead of respawning it, so a
# broken app never turns into a fork loop (the same contract gunicorn's arbiter keeps).
USAGE_ERROR = 2
WORKER_BOOT_ERROR = 3
APP_LOAD_ERROR = 4


class CorralError(Exception):
    """Base class of every error corral raises on purpose; `exit_code` is the process status."""

    exit_code: int = 1


class ConfigError(CorralError):
    """A setting, flag or config file is wrong: a usage error, reported on one line."""

    exit_code = USAGE_ERROR


class AppLoadError(CorralError):
    """The application could not be imported, found or called."""

    exit_code = APP_LOAD_ERROR


class HaltServer(CorralError):
    """Stop the whole server: `reason` is logged and the arbiter exits with `exit_code`."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
