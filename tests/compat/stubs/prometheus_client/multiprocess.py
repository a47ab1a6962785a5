"""Stand-in for prometheus_client.multiprocess: mark_process_dead leaves a marker file."""

from __future__ import annotations

import os


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """The real one removes the dead process's gauge files; this one records the call."""
    directory = path or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    with open(os.path.join(directory, f"dead_{pid}"), "w") as marker:
        marker.write(str(pid))
