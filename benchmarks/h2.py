"""The HTTP/2 rows: `python benchmarks/h2.py`, corral against gunicorn 27 and granian, all
serving HTTP/2, loaded by h2load (nghttp2) in turns."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.h2load import H2Result
    from benchmarks.machine import Machine
    from benchmarks.proctree import ProcStat
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
H2LOAD_THREADS = 1  # one client thread: the two cores are shared with the servers
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
START_COST_S = 4  # per server: start, readiness, stop (for the time estimate)
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
    from benchmarks.servers import SERVERS

    unknown = sorted(set(names) - set(SERVER_NAMES))
    if unknown:
        raise ValueError(
            f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(SERVER_NAMES)}"
        )
    by_name = {s.name: s for s in SERVERS}
    return [with_h2(by_name[name], cert) for name in SERVER_NAMES if name in names]


@dataclass(frozen=True)
class Options:
    """What to run and for how long."""

    workloads: list[H2Workload]
    servers: list[Server]
    duration_s: int
    warmup_s: int
    runs: int
    h2load: str
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def protocol(self) -> str:
        """What h2load must report having spoken."""
        return "h2" if self.tls else "h2c"


@dataclass
class H2Cell:
    """One (workload, server) pair: its runs, or why there are none."""

    workload: H2Workload
    server: str
    config: str = ""
    runs: list[H2Result] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # the server tree's CPU in each run
    peak_rss_kib: int = 0
    note: str | None = None

    def median(self, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs))

    def total(self, metric: str) -> int:
        return int(sum(getattr(r, metric) for r in self.runs))

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.runs)


class NotReady(RuntimeError):
    """The server exited, or never answered an HTTP/2 request, in time."""


@dataclass
class _Turns:
    """A started server of one workload."""

    cell: H2Cell
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    seen: dict[int, ProcStat] = field(default_factory=dict)
    stopped: bool = False

    def stop(self, note: str | None = None) -> None:
        """Stop the server's whole tree by PID (once); with a note, the cell keeps no runs."""
        from benchmarks.proctree import stop_tree

        if note is not None:
            self.cell.note = note
            self.cell.runs.clear()
            self.cell.cpu_s.clear()
        if not self.stopped:
            stop_tree(self.proc, self.seen.values(), STOP_TIMEOUT_S)
            self.stopped = True


def wait_ready(turns: _Turns, opts: Options) -> None:
    """Return once one h2load request is answered 2xx over HTTP/2; NotReady if the server exits
    first or READY_TIMEOUT_S passes."""
    from benchmarks.h2load import H2LoadError, log_tail, probe, probe_ok

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:  # each probe is bounded by h2load's PROBE_TIMEOUT_S
        code = turns.proc.poll()
        if code is not None:
            raise NotReady(f"server exited with code {code}: {log_tail(turns.log)}")
        try:
            result = probe(opts.h2load, turns.url)
        except H2LoadError as exc:
            last = str(exc)[-200:]
        else:
            if probe_ok(result, opts.protocol):
                return
            last = (
                f"protocol {result.protocol}, {result.status_2xx} 2xx, "
                f"{result.failed} failed, {result.errored} errored"
            )
        time.sleep(0.1)
    raise NotReady(f"no HTTP/2 200 within {READY_TIMEOUT_S:.0f} s ({last}): {log_tail(turns.log)}")


def _start(server: Server, workload: H2Workload, opts: Options, tmp: Path) -> H2Cell | _Turns:
    from benchmarks.servers import missing_reason
    from benchmarks.suite import free_port, start_server

    cell = H2Cell(workload, server.name)
    missing = missing_reason(server)
    if missing is None and not _importable("h2") and server.distribution != "granian":
        missing = "the h2 library is not importable (pip install h2)"
    if missing is not None:
        cell.note = f"not available: {missing}"
        return cell
    port = free_port()
    launch = server.build(str(port), workload.as_workload(), tmp)
    cell.config = launch.config
    log = tmp / f"{server.name}-{workload.name}.log"
    url = f"{opts.scheme}://127.0.0.1:{port}/"
    turns = _Turns(cell, start_server(launch, log), url, log)
    try:
        wait_ready(turns, opts)
    except NotReady as exc:
        turns.stop(f"not available: {exc}")
        return cell
    except BaseException:
        turns.stop()
        raise
    return turns


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _take_turn(turns: _Turns, opts: Options, first: bool) -> None:
    """One measured h2load run (after the warm-up on the first turn), the RSS sampler watching;
    then the server must still answer. A failure stops the server and leaves a note."""
    from benchmarks.h2load import H2LoadError, h2load_argv, run_h2load
    from benchmarks.proctree import RssSampler, tree_cpu_s

    cell, w = turns.cell, turns.cell.workload
    try:
        if first and opts.warmup_s > 0:
            argv = h2load_argv(
                opts.h2load, turns.url, w.clients, w.streams, opts.warmup_s, H2LOAD_THREADS
            )
            run_h2load(argv, opts.warmup_s)
            wait_ready(turns, opts)
        argv = h2load_argv(
            opts.h2load, turns.url, w.clients, w.streams, opts.duration_s, H2LOAD_THREADS
        )
        cpu_before = tree_cpu_s(turns.proc.pid)
        with RssSampler(turns.proc.pid) as sampler:
            result = run_h2load(argv, opts.duration_s)
        cell.cpu_s.append(tree_cpu_s(turns.proc.pid) - cpu_before)
        cell.runs.append(result)
        cell.peak_rss_kib = max(cell.peak_rss_kib, sampler.peak_kib)
        turns.seen.update(sampler.seen)
        if result.protocol != opts.protocol:
            turns.stop(f"h2load spoke {result.protocol}, not {opts.protocol}")
            return
        wait_ready(turns, opts)
    except NotReady as exc:
        turns.stop(f"stopped answering: {exc}")
    except H2LoadError as exc:
        turns.stop(f"h2load failed: {str(exc)[:300]}")


def run_workload(workload: H2Workload, opts: Options, tmp: Path) -> list[H2Cell]:
    """Every server of one workload, started together and measured in turns, as
    benchmarks/suite.py does: round k of every server falls in the same minute or two, each
    round starting one server further on."""
    servers = [s for s in opts.servers if s.interface == workload.interface]
    cells: list[H2Cell] = []
    started: list[_Turns] = []
    try:
        for server in servers:
            cell_dir = tmp / f"{workload.name}-{server.name}"
            cell_dir.mkdir()
            got = _start(server, workload, opts, cell_dir)
            if isinstance(got, _Turns):
                cells.append(got.cell)
                started.append(got)
            else:
                cells.append(got)
                _progress(f"{workload.name} x {server.name}: {got.note}")
        for round_no in range(1, opts.runs + 1):
            shift = (round_no - 1) % max(len(started), 1)
            for turns in started[shift:] + started[:shift]:
                if turns.stopped:
                    continue
                _progress(f"{workload.name} x {turns.cell.server}, run {round_no}/{opts.runs}")
                _take_turn(turns, opts, first=round_no == 1)
                _progress(f"    {_summary(turns.cell)}")
    finally:
        failure: BaseException | None = None
        for turns in started:
            try:
                turns.stop()
            except BaseException as exc:  # a second Ctrl-C, or a tree that would not die
                failure = failure or exc
        if failure is not None:
            raise failure
    return cells


def _summary(cell: H2Cell) -> str:
    if cell.note is not None or not cell.runs:
        return cell.note or "no runs"
    run = cell.runs[-1]
    lost = f", LOST {run.lost} (failed {run.failed}, errored {run.errored})" if run.lost else ""
    return f"{run.requests_per_s:,.0f} req/s, mean {run.mean_ms:.2f} ms{lost}"


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_all(opts: Options) -> list[H2Cell]:
    """Every cell, workload by workload."""
    cells: list[H2Cell] = []
    with tempfile.TemporaryDirectory(prefix="corral-h2-") as tmpdir:
        for workload in opts.workloads:
            cells += run_workload(workload, opts, Path(tmpdir))
    return cells


def estimate_s(opts: Options) -> int:
    """About how long the run takes: each server's start and stop, warm-up and rounds."""
    cells = sum(1 for w in opts.workloads for s in opts.servers if s.interface == w.interface)
    per_cell = START_COST_S + opts.warmup_s + opts.runs * (opts.duration_s + 1)
    return cells * per_cell


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
    names = [w.name for w in h2_workloads()]
    parser = argparse.ArgumentParser(
        prog="python benchmarks/h2.py",
        description="corral's HTTP/2 against gunicorn 27 and granian, loaded by h2load in turns.",
        epilog="Exit status: 0 when every corral cell ran and lost no request; 1 otherwise; "
        "2 on a usage error or a missing h2load.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s, no warm-up, 1 run")
    parser.add_argument("--workloads", help=f"comma-separated, from: {','.join(names)}")
    parser.add_argument("--servers", help=f"comma-separated, from: {','.join(SERVER_NAMES)}")
    parser.add_argument("--duration", type=int, help=f"seconds per run ({DEFAULT_DURATION_S})")
    parser.add_argument("--warmup", type=int, help=f"seconds of warm-up ({DEFAULT_WARMUP_S})")
    parser.add_argument("--runs", type=int, help=f"rounds, medians reported ({DEFAULT_RUNS})")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve h2 over TLS (ALPN) with a throwaway certificate instead of h2c",
    )
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report to FILE")
    parser.add_argument("--h2load", default="h2load", help="the h2load binary (default: on PATH)")
    parser.add_argument("--openssl", default="openssl", help="the openssl CLI, for --tls")
    args = parser.parse_args(argv)
    args.workloads = _names(args.workloads) if args.workloads else names
    args.servers = _names(args.servers) if args.servers else list(SERVER_NAMES)
    for key, default, quick in (
        ("duration", DEFAULT_DURATION_S, 1),
        ("warmup", DEFAULT_WARMUP_S, 0),
        ("runs", DEFAULT_RUNS, 1),
    ):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else default)
    if args.duration < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--duration and --runs must be at least 1, --warmup at least 0")
    unknown = sorted(set(args.workloads) - set(names))
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(names)}")
    return args


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main(argv: Sequence[str]) -> int:
    """Run the HTTP/2 rows and print the Markdown report (see the epilog for the exit)."""
    from benchmarks import machine

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
    _progress(f"about {estimate_s(opts) / 60:.1f} minutes")
    host = machine.describe_machine()
    try:
        cells = run_all(opts)
    except KeyboardInterrupt:  # run_workload has stopped the servers it had started
        print("interrupted", file=sys.stderr)
        return 130
    report = render(host, machine.load_average(), opts, cells, _versions(opts))
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report)
    found = failures(cells)
    for failure in found:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 0 if any(cell.runs for cell in cells) and not found else 1


def _versions(opts: Options) -> dict[str, str]:
    from benchmarks import h2load, machine, servers

    found = {"Python": platform.python_version()}
    for server in opts.servers:
        found.setdefault(server.distribution, servers.server_version(server.distribution))
    for name in ("h2", "uvloop"):
        found[name] = machine.package_version(name) or "not installed"
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
    plan = (
        f"{opts.duration_s} s per run, median of {opts.runs} run(s) after a {opts.warmup_s} s "
        "warm-up; a workload's servers start together and take turns, one run each per round; "
        "h2load runs on the same machine as the servers"
    )
    how = "h2 negotiated by ALPN over TLS" if opts.tls else "h2c, by prior knowledge"
    flagged = [c for c in cells if c.lost]
    lines = [
        "# corral HTTP/2 benchmark results",
        "",
        f"- Date: {host.date}",
        f"- Machine: {host.nproc} CPUs (nproc), {host.cpu_model}, {host.kernel}",
        f"- Python: {host.python}",
        f"- Load average (1/5/15 min) at start: {host.load_at_start}; at end: {load_at_end}",
        f"- Plan: {plan}",
        f"- Protocol: {how}; every measured run must have spoken it",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
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
    lines += [
        *rounds_table(cells),
        "## Commands",
        "",
        "Servers run with benchmarks/apps as their working directory and on PYTHONPATH.",
        "",
        "```",
        *commands(opts),
        "```",
        "",
    ]
    return "\n".join(lines)


def _entry() -> int:
    # Run as a script, sys.path[0] is benchmarks/ itself; the package lives one level up.
    repo = str(Path(__file__).resolve().parent.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_entry())
