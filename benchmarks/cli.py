"""What the benchmark scripts' command lines share: the rounds' options with their defaults and
checks (benchmarks/tls.py, benchmarks/h2.py), lists of names, and the ending of a run: the report
printed and written, the failures, the exit status (those two and benchmarks/run.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.turns import C


@dataclass(frozen=True)
class Rounds:
    """How long each run is, the warm-up before the first, and how many rounds."""

    duration_s: int
    warmup_s: int
    runs: int


QUICK = Rounds(duration_s=1, warmup_s=0, runs=1)  # --quick, a smoke run


def names(text: str) -> list[str]:
    """A comma-separated list of names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def rounds_parser(
    prog: str,
    description: str,
    epilog: str,
    workloads: Sequence[str],
    servers: Sequence[str],
    defaults: Rounds,
) -> argparse.ArgumentParser:
    """A parser with the options every such script starts with: --quick, --workloads,
    --servers, --duration, --warmup and --runs; see parse_rounds."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s, no warm-up, 1 run")
    parser.add_argument("--workloads", help=f"comma-separated, from: {','.join(workloads)}")
    parser.add_argument("--servers", help=f"comma-separated, from: {','.join(servers)}")
    parser.add_argument("--duration", type=int, help=f"seconds per run ({defaults.duration_s})")
    parser.add_argument("--warmup", type=int, help=f"seconds of warm-up ({defaults.warmup_s})")
    parser.add_argument("--runs", type=int, help=f"rounds, medians reported ({defaults.runs})")
    return parser


def parse_rounds(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    workloads: Sequence[str],
    servers: Sequence[str],
    defaults: Rounds,
) -> argparse.Namespace:
    """The command line, parsed: the workloads and servers as lists of names (all of them by
    default), a round option not given takes its default (QUICK's with --quick, which changes
    nothing else); a usage error (exit 2) for an unknown workload or an impossible round.
    Unknown servers are left to servers.select_servers, which names the choices."""
    args = parser.parse_args(argv)
    args.workloads = names(args.workloads) if args.workloads else list(workloads)
    args.servers = names(args.servers) if args.servers else list(servers)
    chosen = QUICK if args.quick else defaults
    for key, default in (
        ("duration", chosen.duration_s),
        ("warmup", chosen.warmup_s),
        ("runs", chosen.runs),
    ):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.duration < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--duration and --runs must be at least 1, --warmup at least 0")
    unknown = sorted(set(args.workloads) - set(workloads))
    if unknown:
        choices = ", ".join(workloads)
        parser.error(f"unknown workload(s): {', '.join(unknown)}; choose from {choices}")
    return args


def run_and_report(
    run: Callable[[], list[C]],
    report: Callable[[list[C]], str],
    failures: Callable[[list[C]], list[str]],
    markdown: Path | None,
) -> int:
    """Run every cell, then print the report (and write it to `markdown`) and each failure to
    stderr. The exit status: 130 on a Ctrl-C (the servers started are stopped by then), 0 when
    some cell ran and nothing failed, else 1."""
    try:
        cells = run()
    except KeyboardInterrupt:  # run_workload has stopped the servers it had started
        print("interrupted", file=sys.stderr)
        return 130
    text = report(cells)
    print(text)
    if markdown is not None:
        markdown.write_text(text)
    found = failures(cells)
    for failure in found:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 0 if any(cell.runs for cell in cells) and not found else 1
