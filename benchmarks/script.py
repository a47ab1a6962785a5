"""Running a benchmark as a script, `python benchmarks/NAME.py`: Python puts benchmarks/ itself
first on sys.path, not the repository above it, where the `benchmarks` package lives. So the
script's `__main__` block imports this module by its bare name and hands it the script's main."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn


def run_main(main: Callable[[Sequence[str]], int]) -> NoReturn:
    """Put the repository on sys.path (once), run main on the command line's arguments and exit
    with its status."""
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    sys.exit(main(sys.argv[1:]))
