"""Detach from the terminal (`daemon = True`): the classic double fork."""

from __future__ import annotations

import os
import sys


def daemonize(keep_stdio: bool = False) -> None:
    """Continue in a grandchild that has no controlling terminal and /dev/null for stdio.

    The first fork returns the shell its prompt; setsid() leaves the terminal's session; the
    second fork makes sure we are not a session leader, so we can never reacquire a terminal.
    `keep_stdio` (enable_stdio_inheritance) leaves stdin, stdout and stderr as they are.
    Call it before any thread exists and before files are opened.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    if keep_stdio:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        if null > 2:
            os.close(null)
