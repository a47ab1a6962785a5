"""The HTTP/2 rows: `python benchmarks/h2.py`, corral against gunicorn 27 and granian, all
serving HTTP/2, loaded by h2load (nghttp2) in turns (benchmarks/h2suite.py runs the cells)."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.h2load import H2Result
    from benchmarks.h2suite import H2Cell, Options
    from benchmarks.machine import Machine
    from benchmarks.servers import Launch, Server
    from benchmarks.workloads import Workload

# corral's worker for each interface first: its row is the one the others are divided by.
SERVER_NAMES = (
    "corral-threaded",
    "gunicorn-gthread",
    "granian",
    "corral-asyncio",
    "gunicorn-asgi",
    "granian-asgi",
)
BASELINE = {"wsgi": "corral-threaded", "asgi": "corral-asyncio"}
DEFAULT_DURATION_S = 5
DEFAULT_WARMUP_S = 2
DEFAULT_RUNS = 5
TRUSTED = "127.0.0.1,::1"  # gunicorn serves h2c only to these peers (its default, made explicit)


@dataclass(frozen=True)
class H2Workload:
    """One load shape on one interface: h2load's connections and streams per connection."""

    name: str
    interface: str  # "wsgi" or "asgi"
    clients: int  # h2load -c: connections
    streams: int  # h2load -m: streams in flight on each connection
    description: str

    @property
    def app(self) -> str:
        return "wsgi_apps:hello" if self.interface == "wsgi" else "asgi_apps:hello"

    def as_workload(self) -> Workload:
        """The suite's Workload, which the server configurations are built from."""
        from benchmarks.workloads import Workload

        return Workload(
            self.name, self.app, self.clients, self.description, interface=self.interface
        )


def h2_workloads() -> list[H2Workload]:
    """The 13-byte hello under two shapes, for WSGI and for ASGI: many streams on a few
    connections (what HTTP/2 is for), and many connections of one stream each."""
    streams = "13-byte body, 8 connections x 16 streams in flight"
    conns = "13-byte body, 64 connections x 1 stream in flight"
    return [
        H2Workload("h2-streams", "wsgi", 8, 16, streams),
        H2Workload("h2-conns", "wsgi", 64, 1, conns),
        H2Workload("asgi-h2-streams", "asgi", 8, 16, streams),
        H2Workload("asgi-h2-conns", "asgi", 64, 1, conns),
    ]


def h2_flags(distribution: str, tls: bool) -> list[str]:
    """Each server's own options for HTTP/2 beside HTTP/1.1 (checked against their --help):
    over TLS it is offered by ALPN; in clear text, by prior knowledge (the client opens with
    the HTTP/2 preface, as h2load does)."""
    if distribution == "granian":
        return ["--http", "auto"]  # HTTP/1.1 and HTTP/2, h2c by its preface, h2 by ALPN
    flags = ["--http-protocols", "h2,h1"]
    if not tls:
        flags += ["--http2-cleartext", "prior-knowledge"]
        if distribution == "gunicorn":  # it serves h2c only to trusted peers
            flags += ["--forwarded-allow-ips", TRUSTED]
    return flags


def with_h2(server: Server, cert: tuple[str, str] | None) -> Server:
    """The same configuration serving HTTP/2: h2c, or with a certificate h2 over TLS."""
    from benchmarks.tls import with_tls

    plain = server.build
    flags = h2_flags(server.distribution, cert is not None)
    shown = "h2 by ALPN over TLS" if cert is not None else "h2c by prior knowledge"

    def build(port: str, w: Workload, tmp: Path) -> Launch:
        launch = plain(port, w, tmp)
        return dataclasses.replace(
            launch, argv=[*launch.argv, *flags], config=f"{launch.config}, {shown}"
        )

    h2 = dataclasses.replace(server, build=build)
    return with_tls(h2, cert) if cert is not None else h2


def h2_servers(names: Sequence[str], cert: tuple[str, str] | None) -> list[Server]:
    """The named configurations (from SERVER_NAMES, in that order) with HTTP/2; ValueError
    names an unknown one."""
    from benchmarks.servers import select_servers

    return [with_h2(server, cert) for server in select_servers(names, SERVER_NAMES)]


def failures(cells: Sequence[H2Cell]) -> list[str]:
    """Why corral's cells fail the run: no runs, or any request lost (failed, errored, timed
    out, or answered other than 2xx). Peers are not judged; their losses are flagged."""
    found: list[str] = []
    for cell in cells:
        if not cell.server.startswith("corral"):
            continue
        name = f"{cell.workload.name} x {cell.server}"
        if not cell.runs:
            found.append(f"{name}: {cell.note or 'no runs'}")
        elif cell.lost:
            found.append(
                f"{name}: {cell.total('failed')} failed, {cell.total('errored')} errored, "
                f"{cell.total('timeouts')} timed out, {cell.total('non_2xx')} non-2xx"
            )
    return found


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; --quick only changes the defaults of the other options."""
    from benchmarks.cli import Rounds, parse_rounds, rounds_parser

    names = [w.name for w in h2_workloads()]
    defaults = Rounds(DEFAULT_DURATION_S, DEFAULT_WARMUP_S, DEFAULT_RUNS)
    parser = rounds_parser(
        "python benchmarks/h2.py",
        "corral's HTTP/2 against gunicorn 27 and granian, loaded by h2load in turns.",
        "Exit status: 0 when every corral cell ran and lost no request; 1 otherwise; "
        "2 on a usage error or a missing h2load.",
        names,
        SERVER_NAMES,
        defaults,
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve h2 over TLS (ALPN) with a throwaway certificate instead of h2c",
    )
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report to FILE")
    parser.add_argument("--h2load", default="h2load", help="the h2load binary (default: on PATH)")
    parser.add_argument("--openssl", default="openssl", help="the openssl CLI, for --tls")
    return parse_rounds(parser, argv, names, SERVER_NAMES, defaults)


def main(argv: Sequence[str]) -> int:
    """Run the HTTP/2 rows and print the Markdown report (see the epilog for the exit)."""
    from benchmarks import machine
    from benchmarks.cli import run_and_report
    from benchmarks.h2suite import Options, estimate_s, run_all
    from benchmarks.turns import progress

    args = parse_args(argv)
    h2load = shutil.which(args.h2load)
    if h2load is None:
        print(f"error: {args.h2load} not found (apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    cert = None
    if args.tls:
        from benchmarks.stime import throwaway_cert

        openssl = shutil.which(args.openssl)
        if openssl is None:
            print(f"error: {args.openssl} not found (apt-get install openssl)", file=sys.stderr)
            return 2
        cert = throwaway_cert(openssl)
    try:
        servers = h2_servers(args.servers, cert)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workloads = [w for w in h2_workloads() if w.name in args.workloads]
    opts = Options(workloads, servers, args.duration, args.warmup, args.runs, h2load, tls=args.tls)
    progress(f"about {estimate_s(opts) / 60:.1f} minutes")
    host = machine.describe_machine()
    return run_and_report(
        lambda: run_all(opts),
        lambda cells: render(host, machine.load_average(), opts, cells, _versions(opts)),
        failures,
        args.markdown,
    )


def _versions(opts: Options) -> dict[str, str]:
    from benchmarks import h2load, servers

    found = servers.versions(opts.servers, ("h2", "uvloop"))
    found["h2load"] = h2load.h2load_version(opts.h2load)
    return found


def _row(values: Sequence[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def round_ratios(cell: H2Cell, cells: Sequence[H2Cell]) -> list[float] | None:
    """The cell's rate over corral's (same workload) round by round; None without a usable
    baseline. A cell keeps all its rounds or none, so the rounds pair up."""
    name = BASELINE[cell.workload.interface]
    base = next((c for c in cells if c.workload == cell.workload and c.server == name), None)
    if base is None or not base.runs or not cell.runs:
        return None
    if any(r.requests_per_s <= 0 for r in base.runs):
        return None
    pairs = zip(cell.runs, base.runs, strict=True)
    return [a.requests_per_s / b.requests_per_s for a, b in pairs]


def ratio(cell: H2Cell, cells: Sequence[H2Cell]) -> str:
    """The median of the per-round ratios to corral's row, as `1.23x`."""
    ratios = round_ratios(cell, cells)
    return "-" if ratios is None else f"{statistics.median(ratios):.2f}x"


HEADER = (
    "workload",
    "server",
    "config",
    "req/s",
    "vs corral",
    "mean ms",
    "max ms",
    "server CPU µs per request",
    "h2load CPU %",
    "failed / errored / timeout",
    "non-2xx",
    "peak RSS MiB",
)


def result_row(cell: H2Cell, cells: Sequence[H2Cell]) -> list[str]:
    """One row of the table; a cell without runs shows its note in place of the numbers."""
    if not cell.runs:
        return [cell.workload.name, cell.server, cell.note or "no runs"] + ["-"] * (len(HEADER) - 3)
    rate = f"{cell.median('requests_per_s'):,.0f}"
    if cell.lost:
        rate += " (LOST REQUESTS)"
    cpu_us = [1e6 * cpu / r.done for cpu, r in zip(cell.cpu_s, cell.runs, strict=True) if r.done]
    client = statistics.median(100 * r.client_cpu_s / _wall(r) for r in cell.runs)
    lost = f"{cell.total('failed')} / {cell.total('errored')} / {cell.total('timeouts')}"
    return [
        cell.workload.name,
        cell.server,
        cell.config,
        rate,
        ratio(cell, cells),
        f"{cell.median('mean_ms'):.2f}",
        f"{cell.median('max_ms'):.1f}",
        f"{statistics.median(cpu_us):.0f}" if cpu_us else "-",
        f"{client:.0f}",
        lost,
        str(cell.total("non_2xx")),
        f"{cell.peak_rss_kib / 1024:.1f}",
    ]


def _wall(run: H2Result) -> float:
    """The measured window of a run, from h2load's own figures."""
    return run.done / run.requests_per_s if run.requests_per_s > 0 else 1.0


def results_table(cells: Sequence[H2Cell]) -> list[str]:
    lines = [_row(HEADER), _row(["---"] * len(HEADER))]
    return [*lines, *(_row(result_row(c, cells)) for c in cells), ""]


def rounds_table(cells: Sequence[H2Cell]) -> list[str]:
    """Every round's rate and ratio behind each median; empty when no cell ran twice."""
    if all(len(c.runs) < 2 for c in cells):
        return []
    header = ("workload", "server", "req/s per round", "vs corral per round", "lost per round")
    lines = ["## Round by round", "", _row(header), _row(["---"] * len(header))]
    for cell in cells:
        if cell.runs:
            rates = " / ".join(f"{r.requests_per_s:,.0f}" for r in cell.runs)
            each = round_ratios(cell, cells)
            shown = " / ".join(f"{x:.2f}x" for x in each) if each else "-"
            lost = " / ".join(str(r.lost) for r in cell.runs)
            lines.append(_row([cell.workload.name, cell.server, rates, shown, lost]))
    return [*lines, ""]


def commands(opts: Options) -> list[str]:
    """Each server's command line and each workload's h2load command."""
    from benchmarks.h2load import h2load_argv
    from benchmarks.h2suite import H2LOAD_THREADS
    from benchmarks.tables import shown_command

    lines: list[str] = []
    if opts.tls:
        from benchmarks.stime import CERT_ARGS
        from benchmarks.tls import CERT_FILE, KEY_FILE

        lines += [f"openssl {CERT_ARGS} -keyout $TMPDIR/{KEY_FILE} -out $TMPDIR/{CERT_FILE}", ""]
    for server in opts.servers:
        for w in opts.workloads:
            if server.interface == w.interface:
                shown = dataclasses.replace(w.as_workload(), app="$APP")
                launch = server.build("$PORT", shown, Path("$TMPDIR"))
                line = f"{server.name}: {shown_command(launch.argv)}"
                if line not in lines:
                    lines.append(line)
    lines.append("")
    url = f"{opts.scheme}://127.0.0.1:$PORT/"
    for w in opts.workloads:
        argv = h2load_argv("h2load", url, w.clients, w.streams, opts.duration_s, H2LOAD_THREADS)
        lines.append(f"{w.name} (APP={w.app}): {shown_command(argv)}")
    return lines


def render(
    host: Machine,
    load_at_end: str,
    opts: Options,
    cells: Sequence[H2Cell],
    versions: dict[str, str],
) -> str:
    """The whole Markdown report."""
    from benchmarks.tables import commands_section, machine_lines, plan_line, versions_line

    how = "h2 negotiated by ALPN over TLS" if opts.tls else "h2c, by prior knowledge"
    flagged = [c for c in cells if c.lost]
    lines = [
        "# corral HTTP/2 benchmark results",
        "",
        *machine_lines(host, load_at_end),
        plan_line(opts.duration_s, opts.runs, opts.warmup_s, "h2load runs"),
        f"- Protocol: {how}; every measured run must have spoken it",
        versions_line(versions),
        "",
        *results_table(cells),
        "`vs corral` divides by corral's row of the same workload (threaded for WSGI, asyncio",
        "for ASGI): the median of the per-round ratios. mean and max ms: h2load's time for a",
        "request, from its stream's HEADERS to its end (h2load gives no percentiles). Server",
        "CPU: the server's whole process tree (user + system, from /proc) over the run, per",
        "request done; h2load CPU: the client's own share of one core. failed counts every",
        "stream of the measured window that did not end in a 2xx/3xx answer (errored: reset",
        "or lost with its connection); non-2xx counts answers as they arrived.",
        "",
    ]
    if flagged:
        lines += ["**Requests were lost in these cells; their rates mean nothing:**", ""]
        lines += [
            f"- {c.workload.name} x {c.server}: {c.total('failed')} failed, "
            f"{c.total('errored')} errored, {c.total('timeouts')} timed out, "
            f"{c.total('non_2xx')} non-2xx"
            for c in flagged
        ]
        lines.append("")
    lines += [*rounds_table(cells), *commands_section(commands(opts))]
    return "\n".join(lines)


if __name__ == "__main__":
    # Run as a script, sys.path[0] is benchmarks/ itself, where script.py is found by its name.
    from script import run_main  # type: ignore[import-not-found,unused-ignore]

    run_main(main)
