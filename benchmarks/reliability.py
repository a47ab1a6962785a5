"""Reliability under operations: `python3 benchmarks/reliability.py [--servers ...] [--rows ...]`.

Starts each server with 2 workers on loopback, drives it with open-loop load from several kinds of
client, operates it meanwhile (HUP, USR2, TTIN/TTOU, SIGKILL, recycling, TERM, a low fd limit),
and counts every request that failed. Prints a Markdown table: rows x servers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.reliability_run import RowResult

DEFAULT_RATE = 200.0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(
    argv: Sequence[str], servers: Sequence[str], rows: Sequence[str]
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/reliability.py",
        description="Count the requests a server loses while it is operated under load.",
        epilog="Exit status: 0 when every corral cell lost nothing and leaked no fds; 1 otherwise; "
        "2 on a usage error. Peers are reported, not judged.",
    )
    parser.add_argument("--servers", default=",".join(servers), help=f"from: {', '.join(servers)}")
    parser.add_argument("--rows", default=",".join(rows), help=f"from: {', '.join(rows)}")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="client units started per second"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of load per row (default: per row)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--no-nginx", action="store_true", help="leave nginx out of every row")
    parser.add_argument("--verbose", action="store_true", help="print a failing row's server log")
    opts = parser.parse_args(argv)
    opts.servers = _names(opts.servers)
    opts.rows = _names(opts.rows)
    for chosen, known, what in ((opts.servers, servers, "server"), (opts.rows, rows, "row")):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            parser.error(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    if opts.rate <= 0 or (opts.duration is not None and opts.duration <= 0):
        parser.error("--rate and --duration must be positive")
    return opts


def cell(result: RowResult) -> str:
    """One table cell: failed of sent, and what else went wrong."""
    if result.na:
        return f"n/a ({result.na})"
    tally = result.tally
    text = f"{tally.failed:,} of {tally.sent:,}"
    if tally.failed:
        text += f" ({tally.breakdown()})"
    master, workers = result.fd_growth()
    # Fewer fds after than before is no leak (a worker that served may have closed a lazily
    # opened one); only growth is shown.
    if master is not None and master > 0:
        text += f"; master fds {master:+d}"
    if workers is not None and workers > 0:
        text += f"; worker fds {workers:+d}"
    if result.replaced is False:
        text += "; no worker replaced"
    if result.emfile_lines:
        text += f"; {result.emfile_lines:,} EMFILE log lines"
    if result.error:
        text += f"; error: {result.error.splitlines()[0][:120]}"
    return text


def table(results: list[RowResult], rows: Sequence[str], servers: Sequence[str]) -> str:
    """The Markdown table: one line per row, one column per server."""
    from benchmarks.reliability_rows import row_named

    found = {(r.row, r.server): r for r in results}
    lines = ["| row | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    for row in rows:
        cells = [cell(found[row, s]) if (row, s) in found else "" for s in servers]
        lines.append(f"| {row_named(row).title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(opts: argparse.Namespace) -> str:
    from benchmarks.reliability_servers import WORKERS

    return (
        f"Failed requests of those sent; {WORKERS} workers per server, "
        f"{opts.rate:g} client units/s "
        "(a pipelined unit is 2 requests), on loopback.\n"
    )


def main(argv: Sequence[str]) -> int:
    from benchmarks.reliability_rows import ROW_NAMES, row_named
    from benchmarks.reliability_run import run_row
    from benchmarks.reliability_servers import SPEC_NAMES, spec_named

    opts = parse_args(argv, SPEC_NAMES, ROW_NAMES)
    results: list[RowResult] = []
    servers = [spec_named(name) for name in opts.servers]
    for spec in servers:
        if not spec.available():
            print(f"{spec.name}: skipped, {spec.module} does not import", file=sys.stderr)
            continue
        for name in opts.rows:
            started = time.monotonic()
            result = run_row(
                spec,
                row_named(name),
                opts.rate,
                use_nginx=not opts.no_nginx,
                duration=opts.duration,
            )
            results.append(result)
            took = time.monotonic() - started
            print(f"{spec.name} x {name}: {cell(result)} [{took:.1f}s]", file=sys.stderr)
            for problem in result.problems():
                print(f"  {problem}", file=sys.stderr)
            if opts.verbose and result.log:
                print(result.log, file=sys.stderr)
    report = header(opts) + "\n" + table(results, opts.rows, [s.name for s in servers]) + "\n"
    print(report)
    if opts.markdown is not None:
        opts.markdown.write_text(report)
    corral = [r for r in results if r.server.startswith("corral-")]
    return 1 if any(r.problems() for r in corral) else 0


if __name__ == "__main__":
    # Run as a script, sys.path[0] is benchmarks/ itself, where script.py is found by its name.
    from script import run_main  # type: ignore[import-not-found,unused-ignore]

    run_main(main)
