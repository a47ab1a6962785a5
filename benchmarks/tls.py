"""The TLS rows: `python benchmarks/tls.py`, corral against its peers, all serving HTTPS."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import ssl
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.machine import Machine
    from benchmarks.servers import Launch, Server
    from benchmarks.suite import Cell, Options
    from benchmarks.workloads import Workload
    from benchmarks.wrkrun import WrkResult

# The peers the issue names, with corral's worker for each interface first: its row is the one
# the others are divided by.
SERVER_NAMES = (
    "corral-threaded",
    "gunicorn-gthread",
    "granian",
    "uvicorn",
    "corral-asyncio",
    "uvicorn-asgi",
    "granian-asgi",
    "gunicorn-asgi",
)
BASELINE = {"wsgi": "corral-threaded", "asgi": "corral-asyncio"}
KEEPALIVE_CONNECTIONS = 64  # as the plain `hello` row
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"  # written into each server's own directory
# Each server's own names for the certificate and key options (checked against their --help).
_TLS_FLAGS = {
    "corral": ("--certfile", "--keyfile"),
    "gunicorn": ("--certfile", "--keyfile"),
    "uvicorn": ("--ssl-certfile", "--ssl-keyfile"),
    "granian": ("--ssl-certificate", "--ssl-keyfile"),
}
DEFAULT_DURATION_S = 3
DEFAULT_WARMUP_S = 1
DEFAULT_RUNS = 3
# Resumed sessions below this share of corral's connections fail the run: one context, made
# before the fork, serves every worker, so every timed connection should resume.
CORRAL_MIN_RESUMED = 0.99


def tls_workloads() -> list[Workload]:
    """The four TLS workloads: hello with keep-alive (wrk) and hello on a new connection per
    request with the session resumed (s_time), for WSGI and for ASGI."""
    from benchmarks.stime import STIME_PROCESSES
    from benchmarks.workloads import Workload

    keep, new = "13-byte body over TLS, keep-alive", "13-byte body, a new TLS connection each"
    wsgi, asgi = "wsgi_apps:hello", "asgi_apps:hello"
    return [
        Workload("tls-hello", wsgi, KEEPALIVE_CONNECTIONS, keep, tls=True),
        Workload("tls-resume", wsgi, STIME_PROCESSES, new, tls=True, resume=True),
        Workload("asgi-tls-hello", asgi, KEEPALIVE_CONNECTIONS, keep, interface="asgi", tls=True),
        Workload(
            "asgi-tls-resume", asgi, STIME_PROCESSES, new, interface="asgi", tls=True, resume=True
        ),
    ]


def with_tls(server: Server, cert: tuple[str, str]) -> Server:
    """The same configuration serving TLS: its certificate and key written into the server's own
    directory before it starts, and passed with that server's own option names."""
    cert_flag, key_flag = _TLS_FLAGS[server.distribution]
    plain = server.build

    def build(port: str, w: Workload, tmp: Path) -> Launch:
        launch = plain(port, w, tmp)
        files = {**launch.files, tmp / CERT_FILE: cert[0], tmp / KEY_FILE: cert[1]}
        argv = [*launch.argv, cert_flag, str(tmp / CERT_FILE), key_flag, str(tmp / KEY_FILE)]
        return dataclasses.replace(launch, argv=argv, files=files)

    return dataclasses.replace(server, build=build)


def tls_servers(names: Sequence[str], cert: tuple[str, str]) -> list[Server]:
    """The named configurations (from SERVER_NAMES, in that order) with TLS; ValueError names
    an unknown one."""
    from benchmarks.servers import select_servers

    return [with_tls(server, cert) for server in select_servers(names, SERVER_NAMES)]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; --quick only changes the defaults of the other options."""
    from benchmarks.cli import Rounds, parse_rounds, rounds_parser

    names = [w.name for w in tls_workloads()]
    defaults = Rounds(DEFAULT_DURATION_S, DEFAULT_WARMUP_S, DEFAULT_RUNS)
    parser = rounds_parser(
        "python benchmarks/tls.py",
        "corral over TLS against gunicorn gthread, uvicorn and granian, in turns.",
        "Exit status: 0 when every corral cell ran cleanly (and resumed its sessions); "
        "1 otherwise; 2 on a usage error or a missing wrk or openssl.",
        names,
        SERVER_NAMES,
        defaults,
    )
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report to FILE")
    parser.add_argument("--wrk", default="wrk", help="the wrk binary (default: wrk on PATH)")
    parser.add_argument("--openssl", default="openssl", help="the openssl CLI (default: on PATH)")
    return parse_rounds(parser, argv, names, SERVER_NAMES, defaults)


def failures(cells: Sequence[Cell]) -> list[str]:
    """Why corral's cells failed: no runs, socket errors or bad answers (as run.py judges),
    or, on a new connection per request, sessions that did not resume."""
    from benchmarks.run import corral_failures

    ours = {c.server for c in cells if c.server.startswith("corral")}
    found = corral_failures(cells, ours)
    for cell in cells:
        if cell.server in ours and cell.workload.resume and cell.runs:
            resumed, total = cell.total(lambda r: r.resumed), cell.total(lambda r: r.requests)
            if resumed < CORRAL_MIN_RESUMED * total:
                found.append(f"{cell.workload.name} x {cell.server}: {resumed} of {total} resumed")
    return found


def main(argv: Sequence[str]) -> int:
    """Run the TLS rows and print the Markdown report (see the module's epilog for the exit)."""
    from benchmarks import machine, stime, suite
    from benchmarks.cli import run_and_report

    args = parse_args(argv)
    wrk, openssl = shutil.which(args.wrk), shutil.which(args.openssl)
    if wrk is None or openssl is None:
        missing = args.wrk if wrk is None else args.openssl
        print(f"error: {missing} not found (apt-get install wrk openssl)", file=sys.stderr)
        return 2
    try:
        servers = tls_servers(args.servers, stime.throwaway_cert(openssl))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workloads = [w for w in tls_workloads() if w.name in args.workloads]
    opts = suite.Options(
        workloads, servers, args.duration, args.warmup, args.runs, wrk, openssl=openssl
    )
    host = machine.describe_machine()
    return run_and_report(
        lambda: suite.run_suite(opts),
        lambda cells: render(host, machine.load_average(), opts, cells, _versions(opts)),
        failures,
        args.markdown,
    )


def _versions(opts: Options) -> dict[str, str]:
    from benchmarks import machine, servers

    found = servers.versions(opts.servers, ("uvloop", "httptools"))
    found["wrk"] = machine.wrk_version(opts.wrk)
    done = subprocess.run(
        [opts.openssl, "version"], capture_output=True, text=True, timeout=10, check=False
    )
    found["openssl CLI (wrk, s_time)"] = done.stdout.strip() or "unknown"
    found["Python's ssl"] = ssl.OPENSSL_VERSION
    return found


def _row(values: Sequence[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def _baseline(cell: Cell, cells: Sequence[Cell]) -> Cell | None:
    name = BASELINE.get(cell.workload.interface)
    return next((c for c in cells if c.workload == cell.workload and c.server == name), None)


def _ratio(cell: Cell, cells: Sequence[Cell], each: bool = False) -> str:
    """The median of the per-round ratios to corral's row (every round's with `each`)."""
    from benchmarks.tables import round_ratios

    base = _baseline(cell, cells)
    ratios = round_ratios(cell, base if base is not None and base.runs else None)
    if ratios is None:
        return "-"
    if each:
        return " / ".join(f"{x:.2f}x" for x in ratios)
    return f"{statistics.median(ratios):.2f}x"


def _errors(cell: Cell) -> str:
    metrics: list[Callable[[WrkResult], int]] = [
        lambda r: r.connect_errors,
        lambda r: r.read_errors,
        lambda r: r.write_errors,
        lambda r: r.timeouts,
    ]
    return "/".join(str(cell.total(m)) for m in metrics)


KEEPALIVE_HEADER = (
    "workload",
    "server",
    "config",
    "req/s",
    "vs corral",
    "p50 ms",
    "p99 ms",
    "server CPU µs per request",
    "socket errors c/r/w/t",
    "non-2xx",
    "peak RSS MiB",
)
RESUME_HEADER = (
    "workload",
    "server",
    "config",
    "connections/s",
    "vs corral",
    "mean ms per connection",
    "server CPU µs per connection",
    "sessions resumed",
    "wrong answers",
    "peak RSS MiB",
)


def result_row(cell: Cell, cells: Sequence[Cell]) -> list[str]:
    """One row of the keep-alive or the new-connection table; a cell without runs shows its
    note in place of the numbers."""
    from benchmarks.stime import mean_connection_ms
    from benchmarks.tables import server_cpu_us

    width = len(RESUME_HEADER if cell.workload.resume else KEEPALIVE_HEADER)
    if not cell.runs:
        return [cell.workload.name, cell.server, cell.note or "no runs"] + ["-"] * (width - 3)
    row = [cell.workload.name, cell.server, cell.config]
    row += [f"{cell.median(lambda r: r.requests_per_s):,.0f}", _ratio(cell, cells)]
    rss = f"{cell.peak_rss_kib / 1024:.1f}"
    if cell.workload.resume:
        processes = cell.workload.connections
        mean = cell.median(lambda r: mean_connection_ms(r, processes))
        resumed, total = cell.total(lambda r: r.resumed), cell.total(lambda r: r.requests)
        share = f"{100 * resumed / total:.1f} % ({resumed:,} of {total:,})"
        wrong = str(cell.total(lambda r: r.non_2xx))
        return [*row, f"{mean:.2f}", server_cpu_us(cell), share, wrong, rss]
    p50, p99 = cell.median(lambda r: r.p50_ms), cell.median(lambda r: r.p99_ms)
    errors, non_2xx = _errors(cell), str(cell.total(lambda r: r.non_2xx))
    return [*row, f"{p50:.2f}", f"{p99:.2f}", server_cpu_us(cell), errors, non_2xx, rss]


def results_tables(cells: Sequence[Cell]) -> list[str]:
    """The keep-alive table, then the new-connection table (each only if it has cells)."""
    lines: list[str] = []
    for resume, title, header in (
        (False, "TLS, keep-alive (wrk)", KEEPALIVE_HEADER),
        (True, "TLS, a new connection per request, session resumed (s_time)", RESUME_HEADER),
    ):
        rows = [c for c in cells if c.workload.resume == resume]
        if rows:
            lines += [f"### {title}", "", _row(header), _row(["---"] * len(header))]
            lines += [_row(result_row(c, cells)) for c in rows]
            lines.append("")
    return lines


def rounds_table(cells: Sequence[Cell]) -> list[str]:
    """Every round's rate and ratio behind each median; empty when no cell ran twice."""
    if all(len(c.runs) < 2 for c in cells):
        return []
    header = ("workload", "server", "rate per round", "vs corral per round")
    lines = ["## Round by round", "", _row(header), _row(["---"] * len(header))]
    for cell in cells:
        if cell.runs:
            rates = " / ".join(f"{r.requests_per_s:,.0f}" for r in cell.runs)
            lines.append(_row([cell.workload.name, cell.server, rates, _ratio(cell, cells, True)]))
    return [*lines, ""]


def commands(opts: Options) -> list[str]:
    """The certificate, each server's command line, and each workload's load command."""
    from benchmarks.stime import CERT_ARGS, STIME_PROCESSES, stime_argv
    from benchmarks.tables import shown_command
    from benchmarks.wrkrun import wrk_argv

    lines = [f"openssl {CERT_ARGS} -keyout $TMPDIR/{KEY_FILE} -out $TMPDIR/{CERT_FILE}", ""]
    for server in opts.servers:
        for workload in opts.workloads:
            if server.serves(workload):
                shown = dataclasses.replace(workload, app="$APP")
                launch = server.build("$PORT", shown, Path("$TMPDIR"))
                line = f"{server.name}: {shown_command(launch.argv)}"
                if line not in lines:
                    lines.append(line)
    lines.append("")
    for w in opts.workloads:
        if w.resume:
            argv = stime_argv("openssl", "127.0.0.1", "$PORT", opts.duration_s)
            load = f"{STIME_PROCESSES} at once: {shown_command(argv)}"
        else:
            url = "https://127.0.0.1:$PORT/"
            load = shown_command(wrk_argv(url, w.connections, opts.duration_s, None))
        lines.append(f"{w.name} (APP={w.app}): {load}")
    return lines


def render(
    host: Machine, load_at_end: str, opts: Options, cells: Sequence[Cell], versions: dict[str, str]
) -> str:
    """The whole Markdown report."""
    from benchmarks.tables import commands_section, machine_lines, plan_line, versions_line

    lines = [
        "# corral TLS benchmark results",
        "",
        *machine_lines(host, load_at_end),
        plan_line(opts.duration_s, opts.runs, opts.warmup_s, "the load generators run"),
        versions_line(versions),
        "- Certificate: a throwaway self-signed ECDSA P-256 one, made by the openssl CLI",
        "",
        *results_tables(cells),
        "`vs corral` divides by corral's row of the same workload (threaded for WSGI, asyncio",
        "for ASGI): the median of the per-round ratios. config ends with what a probe",
        "negotiated. On a new connection per request, 8 `openssl s_time -reuse` processes each",
        "run one connection at a time (handshake resuming the last session, `GET /` HTTP/1.0,",
        "answer, close); s_time marks every connection resumed or not, and the mean time of one",
        "is 8 / rate. Wrong answers: connections whose answer's length was not that of the",
        "probe's 200. Server CPU is the server's whole process tree (user + system, from",
        "/proc) over the run, per request or connection: the load generators share the two",
        "cores, so a server that costs less CPU per request leaves them more.",
        "",
        *rounds_table(cells),
        *commands_section(commands(opts)),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    # Run as a script, sys.path[0] is benchmarks/ itself, where script.py is found by its name.
    from script import run_main  # type: ignore[import-not-found,unused-ignore]

    run_main(main)
