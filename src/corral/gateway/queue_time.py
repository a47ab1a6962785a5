"""Queue time from a proxy's X-Request-Start stamp (nginx, Heroku, New Relic's convention)."""

from __future__ import annotations

import time

# The stamp's unit, told by its size: seconds since the epoch are about 1.7e9 today, so a
# value past each bound is in the next smaller unit (ms, µs, ns).
_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (float("inf"), 1e9))
# A stamp further off than this is a misconfigured clock, not a queue.
_SANE = 3600.0


def proxy_queue_time(header: str, ours: float) -> float:
    """The wait since the proxy stamped the request, ``t=1700000000.123`` (seconds with a
    fraction, as nginx's ``t=${msec}``), or whole milliseconds or microseconds, with or without
    ``t=``; ``ours`` (the wait corral saw) when the stamp is unreadable or the clocks disagree.
    """
    text = header.strip()
    if text.startswith("t="):
        text = text[2:]
    try:
        stamp = float(text)
    except ValueError:
        return ours
    for bound, per_second in _UNITS:
        if stamp < bound:
            stamp /= per_second
            break
    waited = time.time() - stamp
    return waited if ours <= waited < _SANE else ours
