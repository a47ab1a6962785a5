"""Entry point of the benchmark suite: `python benchmarks/run.py [--quick] [options]`."""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks import suite

DEFAULT_DURATION_S = 10
DEFAULT_WARMUP_S = 2
DEFAULT_RUNS = 3
QUICK_DURATION_S = 1
QUICK_WARMUP_S = 1
QUICK_WORKLOADS = "hello"
START_ALLOWANCE_S = 3  # rough cost of starting, probing and stopping one server


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(
    argv: Sequence[str], workloads: Sequence[str], servers: Sequence[str]
) -> argparse.Namespace:
    """The command line; --quick only changes the defaults of the other options."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark corral against gunicorn, granian, uvicorn, waitress and nginx.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: workload {QUICK_WORKLOADS}, {QUICK_DURATION_S} s, 1 run (as CI does)",
    )
    parser.add_argument(
        "--workloads", type=_names, help=f"comma-separated, from: {','.join(workloads)}"
    )
    parser.add_argument(
        "--servers", type=_names, help=f"comma-separated, from: {','.join(servers)}"
    )
    parser.add_argument(
        "--duration", type=int, help=f"seconds per wrk run (default {DEFAULT_DURATION_S})"
    )
    parser.add_argument(
        "--warmup", type=int, help=f"seconds of warm-up (default {DEFAULT_WARMUP_S})"
    )
    parser.add_argument(
        "--runs", type=int, help=f"runs per cell, the median is reported (default {DEFAULT_RUNS})"
    )
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report to FILE")
    parser.add_argument("--wrk", default="wrk", help="the wrk binary (default: wrk on PATH)")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.workloads is None:
        args.workloads = _names(QUICK_WORKLOADS) if quick else list(workloads)
    if args.servers is None:
        args.servers = list(servers)
    if args.duration is None:
        args.duration = QUICK_DURATION_S if quick else DEFAULT_DURATION_S
    if args.warmup is None:
        args.warmup = QUICK_WARMUP_S if quick else DEFAULT_WARMUP_S
    if args.runs is None:
        args.runs = 1 if quick else DEFAULT_RUNS
    if args.duration < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--duration and --runs must be at least 1, --warmup at least 0")
    return args


def main(argv: Sequence[str]) -> int:
    """Run the suite and print the Markdown report; 1 when no cell produced numbers."""
    from benchmarks import machine, servers, suite, tables, workloads

    args = parse_args(argv, workloads.WORKLOAD_NAMES, servers.SERVER_NAMES)
    try:
        chosen_workloads = workloads.select_workloads(args.workloads)
        chosen_servers = servers.select_servers(args.servers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wrk = shutil.which(args.wrk)
    if wrk is None:
        print(
            f"error: {args.wrk} not found. Install it with `apt-get install wrk` "
            "(or pass --wrk PATH).",
            file=sys.stderr,
        )
        return 2
    opts = suite.Options(
        chosen_workloads, chosen_servers, args.duration, args.warmup, args.runs, wrk
    )
    host = machine.describe_machine()
    versions = _versions(opts, wrk)
    for server in chosen_servers:
        reason = servers.missing_reason(server)
        if reason is not None:
            print(f"note: skipping {server.name}: {reason}", file=sys.stderr)
    cells = sum(1 for w in chosen_workloads for s in chosen_servers if s.serves(w))
    per_cell = START_ALLOWANCE_S + args.warmup + args.runs * args.duration
    print(f"{cells} cells, about {cells * per_cell / 60:.1f} min", file=sys.stderr)
    try:
        results = suite.run_suite(opts)
    except KeyboardInterrupt:  # run_cell has already stopped the server it had started
        print("interrupted", file=sys.stderr)
        return 130
    report = tables.render(host, machine.load_average(), opts, results, versions)
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report)
    return 0 if any(cell.runs for cell in results) else 1


def _versions(opts: suite.Options, wrk: str) -> dict[str, str]:
    """Versions of Python, the servers in this run, Flask when used, and wrk."""
    from benchmarks import machine, servers

    found = {"Python": platform.python_version()}
    for server in opts.servers:
        found.setdefault(server.distribution, servers.server_version(server.distribution))
    if any(w.needs == "flask" for w in opts.workloads):
        found["Flask"] = machine.package_version("flask") or "not installed"
    found["wrk"] = machine.wrk_version(wrk)
    return found


def _entry() -> int:
    # Run as a script, sys.path[0] is benchmarks/ itself; the package lives one level up.
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_entry())
