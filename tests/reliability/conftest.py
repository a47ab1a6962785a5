"""The reliability suite's shared setup: the harness in benchmarks/ made importable from a clone."""

from __future__ import annotations

import sys
from pathlib import Path

# `pytest` without `python -m` leaves the repository root off sys.path; benchmarks/ lives there.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
