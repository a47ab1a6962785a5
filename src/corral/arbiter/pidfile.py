"""The master's pidfile: created exclusively, renamed on a USR2 upgrade, removed on exit."""

from __future__ import annotations

import contextlib
import os
import tempfile


class PidfileError(Exception):
    """The pidfile cannot be created: another live process holds it, or the path is unusable."""


def read_pid(path: str) -> int | None:
    """The pid stored in `path`; None when the file is missing, empty or not a pid."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64).strip()
    except OSError:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    pid = int(text)
    return pid if pid > 0 else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class Pidfile:
    """A pidfile at `path` holding our pid; only ever removed while it still holds our pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def create(self, pid: int) -> None:
        """Write `pid`; PidfileError when the file names another process that is still running.

        The content is written to a temporary file first and linked into place, so nobody ever
        reads a half-written pidfile, and of two masters starting at once only one wins the link.
        """
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".corral-pid-", dir=directory)
        except OSError as exc:
            raise PidfileError(f"cannot create pidfile {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{pid}\n")
            os.chmod(tmp, 0o644)
            self._install(tmp, pid)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.pid = pid

    def _install(self, tmp: str, pid: int) -> None:
        try:
            os.link(tmp, self.path)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            raise PidfileError(f"cannot create pidfile {self.path}: {exc}") from exc
        other = read_pid(self.path)
        if other is not None and other != pid and pid_alive(other):
            raise PidfileError(
                f"pidfile {self.path} names pid {other}, which is still running: "
                "is another corral already serving?"
            )
        # Stale (its process is gone) or unreadable: replace it atomically.
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            raise PidfileError(f"cannot replace stale pidfile {self.path}: {exc}") from exc

    def rename(self, new_path: str) -> None:
        """Move the pidfile (`<pidfile>.oldbin` during an upgrade, and back)."""
        os.replace(self.path, new_path)
        self.path = new_path

    def unlink(self) -> None:
        """Remove the file if it still holds our pid (a successor may have taken the path)."""
        if self.pid is not None and read_pid(self.path) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.pid = None
