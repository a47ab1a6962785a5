"""A write that cannot block, made without letting go of the GIL, for a crowded thread pool."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import cast

# send(fd, data, length, flags) -> bytes sent, or -1 (errno left for the normal path to see).
SendFn = Callable[[int, bytes, int, int], int]
FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
# Above this, copying into the socket buffer takes long enough that the other threads should
# run meanwhile, so the write lets go of the GIL as usual.
QUICK_MAX = 16384


@functools.cache
def libc_send() -> SendFn | None:
    """libc's send(2), called with the GIL held (ctypes.PyDLL); None where it is not found.

    Python's socket.send releases the GIL around every call, even one that cannot block. With
    a hundred threads of one worker waiting for it (an I/O-bound app), each release wakes one
    of them, which mostly finds the GIL taken again by the sender a few microseconds later and
    goes back to sleep: two context switches and several futex calls for nothing
    (docs/design.md, section 10).
    """
    import ctypes  # only once a pool is crowded: a WSGI worker otherwise never loads it

    try:
        send = ctypes.PyDLL(None).send
    except (OSError, AttributeError):
        return None
    send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    send.restype = ctypes.c_ssize_t
    return cast(SendFn, send)


class SendMode:
    """Whether a worker's transports write small responses keeping the GIL.

    Off by default, and while a pool has one thread: with nobody waiting for the GIL, letting
    go of it costs less than the ctypes call. The threaded worker turns it on while its pool
    runs more than one thread.
    """

    __slots__ = ("send",)

    def __init__(self) -> None:
        self.send: SendFn | None = None

    def crowded(self, yes: bool) -> None:
        if not yes:
            self.send = None
            return
        try:
            self.send = libc_send()
        except (OSError, ImportError):
            # Importing ctypes opens files: with the worker out of descriptors (EMFILE), writes
            # go on letting go of the GIL, and the next call tries again (a failure is not cached).
            self.send = None
