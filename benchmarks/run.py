"""Entry point of the benchmark suite: `python benchmarks/run.py [--quick] [options]`."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks import suite

DEFAULT_DURATION_S = 10
DEFAULT_WARMUP_S = 2
DEFAULT_RUNS = 3
QUICK_DURATION_S = 1
QUICK_WARMUP_S = 1
# The same 13-byte hello over both interfaces, so CI also starts corral's asyncio worker.
QUICK_WORKLOADS = "hello,asgi-hello"
START_ALLOWANCE_S = 3  # rough cost of starting, probing and stopping one server


def parse_args(
    argv: Sequence[str], workloads: Sequence[str], servers: Sequence[str]
) -> argparse.Namespace:
    """The command line; --quick only changes the defaults of the other options."""
    from benchmarks.cli import names

    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark corral against gunicorn, granian, uvicorn, waitress and nginx.",
        epilog="Exit status: 0 when every corral cell ran cleanly; 1 when a corral cell had no "
        "runs, socket errors or non-2xx responses, or no cell produced numbers; 2 on a usage "
        "error or a missing wrk.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: workload {QUICK_WORKLOADS}, {QUICK_DURATION_S} s, 1 run (as CI does)",
    )
    parser.add_argument(
        "--workloads", type=names, help=f"comma-separated, from: {','.join(workloads)}"
    )
    parser.add_argument("--servers", type=names, help=f"comma-separated, from: {','.join(servers)}")
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
        args.workloads = names(QUICK_WORKLOADS) if quick else list(workloads)
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


def corral_failures(cells: Sequence[suite.Cell], ours: Collection[str]) -> list[str]:
    """Why each cell of our own configurations (`ours`) failed: it produced no runs (the server
    did not start, or the load generator got nothing), or it had socket errors or non-2xx
    responses. A cell skipped for a missing optional module (Flask) is not a failure, and peers
    are not judged: their failures stay notes in the table."""
    failures: list[str] = []
    for cell in cells:
        if cell.server not in ours or cell.skipped:
            continue
        where = f"{cell.workload.name} x {cell.server}"
        if not cell.runs:
            failures.append(f"{where}: {cell.note or 'no runs'}")
            continue
        errors = cell.total(lambda r: r.connect_errors + r.read_errors + r.write_errors)
        errors += cell.total(lambda r: r.timeouts)
        if errors:
            failures.append(f"{where}: {errors} socket errors")
        non_2xx = cell.total(lambda r: r.non_2xx)
        if non_2xx:
            failures.append(f"{where}: {non_2xx} non-2xx responses (or failed handshakes)")
    return failures


def main(argv: Sequence[str]) -> int:
    """Run the suite and print the Markdown report; 1 when a corral cell failed (see
    corral_failures) or no cell produced numbers."""
    from benchmarks import machine, servers, suite, tables, workloads
    from benchmarks.cli import run_and_report

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
    ours = {s.name for s in servers.SERVERS if s.distribution == "corral"}
    return run_and_report(
        lambda: suite.run_suite(opts),
        lambda cells: tables.render(host, machine.load_average(), opts, cells, versions),
        lambda cells: corral_failures(cells, ours),
        args.markdown,
    )


def _versions(opts: suite.Options, wrk: str) -> dict[str, str]:
    """Versions of Python, the servers in this run, Flask when used, and wrk."""
    from benchmarks import machine, servers

    found = servers.versions([s for s in opts.servers if any(s.serves(w) for w in opts.workloads)])
    if any(w.needs == "flask" for w in opts.workloads):
        found["Flask"] = machine.package_version("flask") or "not installed"
    # The ASGI servers' speed depends on these: uvloop (all of them, loop auto), httptools
    # (uvicorn), and the WebSocket engines (corral's own, websockets for uvicorn).
    extras: set[str] = set()
    if any(w.interface == "asgi" for w in opts.workloads):
        extras |= {"uvloop", "httptools"}
    if any(w.websocket for w in opts.workloads):
        extras |= {"websockets"}
    for name in sorted(extras):
        found[name] = machine.package_version(name) or "not installed"
    found["wrk"] = machine.wrk_version(wrk)
    return found


if __name__ == "__main__":
    # Run as a script, sys.path[0] is benchmarks/ itself, where script.py is found by its name.
    from script import run_main  # type: ignore[import-not-found,unused-ignore]

    run_main(main)
