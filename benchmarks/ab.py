"""corral against itself: this checkout and an earlier revision, in turns, on the same workload.

    python benchmarks/ab.py --base 1d4003b --workloads hello --kinds threaded,sync,asyncio \
        --runs 5 --duration 5

What a change costs (or saves) is the ratio of the two, as medians of rounds taken in turns
(the suite's rule: a shared machine's speed drifts, so run k of each falls in the same minute).
The revision is checked out with `git worktree` into a temporary directory and imported ahead of
the installed corral; the worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/ab.py` from a clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.servers import HOST, WORKERS, Launch, Server
from benchmarks.suite import Cell, Options, run_workload
from benchmarks.workloads import Workload, select_workloads

REPO = Path(__file__).resolve().parents[1]
KINDS = ("sync", "threaded", "asyncio")


def _corral_from(src: Path | None, kind: str) -> Callable[[str, Workload, Path], Launch]:
    """A launcher for corral's `kind` worker, imported from `src` (None: the installed one)."""

    def build(port: str, w: Workload, tmp: Path) -> Launch:
        args = ["-w", str(WORKERS), "-k", kind, "-b", f"{HOST}:{port}", w.app]
        if src is None:
            argv = [sys.executable, "-m", "corral", *args]
        else:
            boot = (
                f"import sys; sys.path.insert(0, {str(src)!r}); from corral.cli import main; main()"
            )
            argv = [sys.executable, "-c", boot, *args]
        return Launch(argv, f"{WORKERS} {kind} workers")

    return build


def _servers(kind: str, base: Path, rev: str) -> list[Server]:
    interface = "asgi" if kind == "asyncio" else "wsgi"
    return [
        Server(f"corral-{kind}", "corral", _corral_from(None, kind), interface=interface),
        Server(f"corral-{kind}@{rev}", "corral", _corral_from(base, kind), interface=interface),
    ]


def _ratio(cells: list[Cell]) -> str:
    head, base = cells
    if not (head.runs and base.runs):
        return f"no numbers: {head.note or base.note}"
    pairs = [
        a.requests_per_s / b.requests_per_s for a, b in zip(head.runs, base.runs, strict=False)
    ]
    pairs.sort()
    median = pairs[len(pairs) // 2]
    return (
        f"{head.median(lambda r: r.requests_per_s):,.0f} vs "
        f"{base.median(lambda r: r.requests_per_s):,.0f} req/s; per-round ratio median "
        f"{median:.3f} (range {pairs[0]:.3f}-{pairs[-1]:.3f}); p99 "
        f"{head.median(lambda r: r.p99_ms):.2f} vs {base.median(lambda r: r.p99_ms):.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier revision (any git rev)")
    parser.add_argument("--workloads", default="hello")
    parser.add_argument("--kinds", default="threaded", help=f"from {','.join(KINDS)}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("ab.py: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="corral-ab-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.base],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            for workload in select_workloads(args.workloads.split(",")):
                for kind in args.kinds.split(","):
                    if (kind == "asyncio") != (workload.interface == "asgi"):
                        continue
                    servers = _servers(kind, tree / "src", args.base)
                    opts = Options([workload], servers, args.duration, args.warmup, args.runs)
                    cell_dir = Path(tmp) / f"{workload.name}-{kind}"
                    cell_dir.mkdir()
                    cells = run_workload(workload, servers, opts, cell_dir)
                    print(f"{workload.name} x corral-{kind}: {_ratio(cells)}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                check=False, capture_output=True,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
