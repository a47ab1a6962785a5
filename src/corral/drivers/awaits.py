"""Where a suspended coroutine waits: the chain of awaits request_timeout logs for a late task."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any


def await_stack(coro: Any) -> str:
    """Where a suspended coroutine waits: its chain of awaits, outermost first.

    ``Task.get_stack`` shows only the outermost frame of a suspended coroutine; the frames it
    awaits hang off ``cr_await`` (``gi_yieldfrom`` for generator-based ones).
    """
    return "".join(traceback.StackSummary.extract(_await_frames(coro)).format())


def _await_frames(coro: Any) -> Iterator[tuple[FrameType, int]]:
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            return
        yield frame, frame.f_lineno
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
