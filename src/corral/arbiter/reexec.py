"""USR2 upgrades: exec a new master that inherits the listeners, as gunicorn and nginx do."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, MutableMapping, Sequence
from typing import NoReturn

from corral.arbiter.pidfile import Pidfile
from corral.arbiter.signals import SignalQueue
from corral.logging import Logger
from corral.sockets import INHERIT_ENV, Listener

MASTER_PID_ENV = "CORRAL_MASTER_PID"


class Upgrade:
    """One master's part in an upgrade: the successor it started, or the predecessor it replaces.

    Old master: USR2 forks and execs the successor; both serve until the operator sends WINCH
    (stop the old workers) and then TERM or QUIT to the old master. New master: it started with
    CORRAL_MASTER_PID and is promoted once that process is gone (it is then re-parented).
    While either side exists, Unix socket files are shared and must not be removed.
    """

    def __init__(self) -> None:
        self.successor = 0
        self.predecessor = 0

    def take_environment(self, environ: MutableMapping[str, str]) -> None:
        """Read (and remove, so no child sees it) the predecessor's pid."""
        value = environ.pop(MASTER_PID_ENV, "")
        self.predecessor = int(value) if value.isascii() and value.isdigit() else 0

    @property
    def in_progress(self) -> bool:
        return bool(self.successor or self.predecessor)

    def refusal(self) -> str | None:
        """Why a USR2 cannot start an upgrade now; None when it can."""
        if self.successor:
            return f"USR2 ignored: the new master (pid {self.successor}) is running"
        if self.predecessor:
            return f"USR2 ignored: the old master (pid {self.predecessor}) is running"
        return None

    def promoted(self) -> bool:
        """True once, when the predecessor has exited and we are the only master."""
        if self.predecessor and os.getppid() != self.predecessor:
            self.predecessor = 0
            return True
        return False


def start_new_master(
    listeners: Sequence[Listener],
    cwd: str,
    log: Logger,
    signals: SignalQueue,
    *,
    pidfile: Pidfile | None,
    before_exec: Callable[[], None],
) -> int:
    """USR2 in the old master: fork a child that execs the new master; return its pid.

    The pidfile moves aside to `PATH.oldbin` (nginx's name), so the new master can write its own
    at PATH. In the child, `before_exec` releases what the new master must not inherit and
    runs the pre_exec hook; the exec happens even when it fails.
    """
    if pidfile is not None:
        pidfile.rename(pidfile.path + ".oldbin")
    master_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    with signals.blocked_for_fork():
        pid = os.fork()
        if pid == 0:
            try:
                signals.reset_in_child()
                # exec keeps the signal mask: the new master must start with its signals open.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.signals)
                before_exec()
            finally:
                exec_new_master(master_pid, listeners, cwd, log)
    return pid


def exec_new_master(
    master_pid: int, listeners: Sequence[Listener], cwd: str, log: Logger
) -> NoReturn:
    """In the child forked for an upgrade: exec the same command line with the listeners.

    Runs the interpreter again with its original arguments (`sys.orig_argv`) from the directory
    they were given in, so the new master imports the new code. The listening fds stay open
    across exec and are named in CORRAL_FDS.
    """
    try:
        environ = dict(os.environ)
        environ[MASTER_PID_ENV] = str(master_pid)
        environ[INHERIT_ENV] = ",".join(str(listener.fileno()) for listener in listeners)
        for listener in listeners:
            listener.sock.set_inheritable(True)
        os.chdir(cwd)
        os.execve(sys.executable, list(sys.orig_argv), environ)
    except BaseException:
        log.exception("Upgrade: cannot exec the new master")
    finally:
        sys.stderr.flush()
        os._exit(1)
