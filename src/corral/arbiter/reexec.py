"""USR2 upgrades: exec a new master that inherits the listeners, as gunicorn and nginx do."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from typing import NoReturn

from corral.logging import Logger
from corral.sockets import INHERIT_ENV, Listener

MASTER_PID_ENV = "CORRAL_MASTER_PID"


def take_master_pid(environ: MutableMapping[str, str]) -> int:
    """In a new master: the old master's pid (0 when we were not started by an upgrade).

    The variable is removed so that our own children, and a later upgrade, never see it.
    """
    value = environ.pop(MASTER_PID_ENV, "")
    return int(value) if value.isascii() and value.isdigit() else 0


def exec_new_master(
    master_pid: int, listeners: Sequence[Listener], cwd: str, log: Logger
) -> NoReturn:
    """In the child forked for an upgrade: exec the same command line with the listeners.

    Runs the interpreter again with its original arguments (`sys.orig_argv`), so the new master
    imports the new code. The listening fds stay open across exec and are named in CORRAL_FDS.
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
