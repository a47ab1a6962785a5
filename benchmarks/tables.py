"""Render the suite's results as Markdown: machine, versions, a table per family, commands."""

from __future__ import annotations

import dataclasses
import re
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import Machine
from benchmarks.servers import Server
from benchmarks.suite import Cell, Options
from benchmarks.workloads import Workload
from benchmarks.wrkrun import WrkResult, wrk_argv
from benchmarks.wsrun import WS_PATH, WSLOAD, wsload_argv


@dataclass(frozen=True)
class Family:
    """One results table: the workloads of one kind and the rows their ratios divide by, one
    `vs` column each, in this order (granian's first: the peer corral is measured against)."""

    key: str  # Workload.family
    title: str
    baselines: tuple[str, ...]
    rate: str  # the unit of the rate column


FAMILIES = (
    Family("wsgi", "WSGI", ("granian", "gunicorn-sync", "gunicorn-gthread"), "req/s"),
    Family("asgi", "ASGI (HTTP)", ("granian-asgi", "uvicorn-asgi", "gunicorn-asgi"), "req/s"),
    Family(
        "websocket",
        "WebSocket echo (wsload)",
        ("granian-asgi", "uvicorn-asgi", "gunicorn-asgi"),
        "msg/s",
    ),
)
_FAMILY = {f.key: f for f in FAMILIES}


def header(family: Family) -> list[str]:
    """The column names of one family's table; WebSocket rows have no MiB/s and count failed
    handshakes where HTTP rows count non-2xx responses."""
    ratios = [f"vs {name.replace('-', ' ')}" for name in family.baselines]
    names = ["workload", "server", "config", family.rate, *ratios, "p50 ms", "p99 ms"]
    # What the rate costs the server: it holds when the load generator takes another share of
    # the CPUs, where a rate does not.
    names.append(f"server CPU µs per {'message' if family.key == 'websocket' else 'request'}")
    if family.key == "websocket":
        return [*names, "socket errors c/r/w/t", "failed handshakes", "peak RSS MiB"]
    return [*names, "MiB/s", "socket errors c/r/w/t", "non-2xx", "peak RSS MiB"]


def server_cpu_us(cell: Cell) -> str:
    """The median over the runs of the server tree's CPU time (user + system, every process
    and thread) per request served: what the rate costs the server, whatever the load
    generator's share of the two cores was."""
    pairs = zip(cell.cpu_s, cell.runs, strict=False)  # no CPU figures: a cell built elsewhere
    each = [1e6 * cpu / r.requests for cpu, r in pairs if r.requests]
    return f"{statistics.median(each):.0f}" if each else "-"


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(values: list[str]) -> str:
    return "| " + " | ".join(_cell_text(v) for v in values) + " |"


def _rate(run: WrkResult) -> float:
    return run.requests_per_s


def round_ratios(cell: Cell, base: Cell | None) -> list[float] | None:
    """The cell's rate over the baseline's, round by round; None without a usable baseline.

    Run k of both was taken in the same minutes (see suite.run_workload), so a machine that
    slowed down between rounds slowed both. A cell keeps all its rounds or none, so the rounds
    pair up.
    """
    if base is None or not base.runs or not all(_rate(r) > 0 for r in base.runs):
        return None
    return [_rate(a) / _rate(b) for a, b in zip(cell.runs, base.runs, strict=True)]


def ratio(cell: Cell, base: Cell | None) -> str:
    """The median of the per-round ratios (round_ratios), as `1.23x`; a dash without one."""
    ratios = round_ratios(cell, base)
    return "-" if ratios is None else f"{statistics.median(ratios):.2f}x"


def baselines(cells: list[Cell], workload: str) -> dict[str, Cell]:
    """The baseline configurations' cells that produced numbers for the workload."""
    return {
        c.server: c
        for c in cells
        if c.workload.name == workload and c.server in _FAMILY[c.workload.family].baselines
        if c.runs
    }


def result_row(cell: Cell, base: dict[str, Cell]) -> list[str]:
    """One table row; a cell without runs shows its note in place of the numbers."""
    family = _FAMILY[cell.workload.family]
    if not cell.runs:
        return [cell.workload.name, cell.server, cell.note or "no runs"] + ["-"] * (
            len(header(family)) - 3
        )
    rps = cell.median(lambda r: r.requests_per_s)
    errors = "/".join(
        str(cell.total(metric))
        for metric in (
            lambda r: r.connect_errors,
            lambda r: r.read_errors,
            lambda r: r.write_errors,
            lambda r: r.timeouts,
        )
    )
    row = [
        cell.workload.name,
        cell.server,
        cell.config,
        f"{rps:,.0f}",
        *(ratio(cell, base.get(name)) for name in family.baselines),
        f"{cell.median(lambda r: r.p50_ms):.2f}",
        f"{cell.median(lambda r: r.p99_ms):.2f}",
        server_cpu_us(cell),
    ]
    if family.key != "websocket":
        row.append(f"{cell.median(lambda r: r.transfer_mib_s):,.1f}")
    row += [errors, str(cell.total(lambda r: r.non_2xx)), f"{cell.peak_rss_kib / 1024:.1f}"]
    return row


def results_table(cells: list[Cell]) -> list[str]:
    """One Markdown table per family that has cells (WSGI, ASGI, WebSocket), rows in run order."""
    lines: list[str] = []
    for family in FAMILIES:
        rows = [c for c in cells if c.workload.family == family.key]
        if not rows:
            continue
        names = header(family)
        lines += [f"### {family.title}", "", _row(names), _row(["---"] * len(names))]
        lines += [_row(result_row(c, baselines(cells, c.workload.name))) for c in rows]
        lines.append("")
    return lines


def rounds_table(cells: list[Cell]) -> list[str]:
    """What each median is taken from: every round's rate and ratios, one table per family.

    A target met by a median of 5.03x with rounds from 4.3x to 5.1x reads differently from one
    met with every round above 5x; the machine is shared, and a single round moves by 20 %.
    Empty when no cell ran more than once.
    """
    if all(len(c.runs) < 2 for c in cells):
        return []
    lines = ["## Round by round", ""]
    for family in FAMILIES:
        rows = [c for c in cells if c.workload.family == family.key and c.runs]
        if not rows:
            continue
        ratios = [f"vs {name.replace('-', ' ')}" for name in family.baselines]
        names = ["workload", "server", f"{family.rate} per round", *ratios]
        lines += [f"### {family.title}", "", _row(names), _row(["---"] * len(names))]
        for cell in rows:
            base = baselines(cells, cell.workload.name)
            row = [
                cell.workload.name,
                cell.server,
                " / ".join(f"{_rate(r):,.0f}" for r in cell.runs),
            ]
            for name in family.baselines:
                each = round_ratios(cell, base.get(name))
                row.append("-" if each is None else " / ".join(f"{x:.2f}x" for x in each))
            lines.append(_row(row))
        lines.append("")
    return lines


def shown_command(argv: list[str]) -> str:
    """argv as a shell line, `python` for this interpreter, $PLACEHOLDERS left unquoted."""
    words = ["python" if word == sys.executable else word for word in argv]
    words[0] = Path(words[0]).name if words[0].startswith("/") else words[0]
    return " ".join(w if re.fullmatch(r"[\w@%+=:,./$-]+", w) else shlex.quote(w) for w in words)


def server_commands(servers: list[Server], workloads: list[Workload]) -> list[str]:
    """Each configuration's command line, with $PORT and $APP (and $TMPDIR for nginx)."""
    tmp = Path("$TMPDIR")
    lines: list[str] = []
    nginx_conf = ""
    for server in servers:
        for workload in workloads:
            if not server.serves(workload):
                continue
            launch = server.build("$PORT", dataclasses.replace(workload, app="$APP"), tmp)
            line = f"{server.name}: {shown_command(launch.argv)}"
            if line not in lines:
                lines.append(line)
            nginx_conf = nginx_conf or "".join(launch.files.values())
    if nginx_conf:
        lines += ["", "nginx.conf:", "", *nginx_conf.rstrip("\n").splitlines()]
    return lines


def wrk_commands(workloads: list[Workload], duration_s: int) -> list[str]:
    """Each workload's app, load command line (wrk, or wsload for WebSocket) and Lua script."""
    lines: list[str] = []
    for w in workloads:
        if w.websocket:
            url = f"ws://127.0.0.1:$PORT{WS_PATH}"
            argv = wsload_argv(url, w.connections, duration_s, w.deflate)
            argv = ["benchmarks/wsload.py" if a == str(WSLOAD) else a for a in argv]
            lines.append(f"{w.name} (APP={w.app}): {shown_command(argv)}")
            continue
        script = Path(f"{w.name}.lua") if w.lua else None
        argv = wrk_argv("http://127.0.0.1:$PORT/", w.connections, duration_s, script)
        lines.append(f"{w.name} (APP={w.app}): {shown_command(argv)}")
        if w.lua:
            lines += [f"{w.name}.lua:", *("    " + s for s in w.lua.rstrip("\n").splitlines())]
    return lines


def machine_lines(machine: Machine, load_at_end: str) -> list[str]:
    """A report's first facts: the date, the machine, Python, the load average."""
    return [
        f"- Date: {machine.date}",
        f"- Machine: {machine.nproc} CPUs (nproc), {machine.cpu_model}, {machine.kernel}",
        f"- Python: {machine.python}",
        f"- Load average (1/5/15 min) at start: {machine.load_at_start}; at end: {load_at_end}",
    ]


def plan_line(duration_s: int, runs: int, warmup_s: int, load: str) -> str:
    """A report's plan: rounds in turns; `load` says what generates the load (`wrk runs`)."""
    plan = (
        f"{duration_s} s per run, median of {runs} run(s) after a {warmup_s} s "
        "warm-up; a workload's servers start together and take turns, one run each per round; "
        f"{load} on the same machine as the servers"
    )
    return f"- Plan: {plan}"


def versions_line(versions: dict[str, str]) -> str:
    return "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items())


def commands_section(commands: list[str]) -> list[str]:
    """A report's last section: the servers' and the load's command lines."""
    return [
        "## Commands",
        "",
        "Servers run with benchmarks/apps as their working directory and on PYTHONPATH.",
        "",
        "```",
        *commands,
        "```",
        "",
    ]


def render(
    machine: Machine, load_at_end: str, opts: Options, cells: list[Cell], versions: dict[str, str]
) -> str:
    """The whole Markdown report."""
    lines = [
        "# corral benchmark results",
        "",
        *machine_lines(machine, load_at_end),
        f"- Wake-up cost at start: {machine.wakeup}",
        plan_line(opts.duration_s, opts.runs, opts.warmup_s, "wrk (or wsload) runs"),
        versions_line(versions),
        "",
        *results_table(cells),
        "Ratios divide by the same workload's baseline rows from this run: granian, gunicorn sync",
        "and gthread for WSGI; granian, uvicorn (httptools + uvloop) and gunicorn's asgi worker",
        "for ASGI and WebSocket.",
        "Each is the median of the per-round ratios, run k of one server over run k of the",
        "baseline, taken minutes apart at most.",
        "Socket errors are wrk's connect/read/write/timeout counts, summed over the runs; non-2xx",
        "counts responses wrk saw with a status of 400 or more. For WebSocket, wsload counts",
        "failed connects, lost connections or wrong echoes (r), and echoes missing after 2 s (t),",
        "and upgrades answered without 101; p50/p99 are one echo's round trip. Peak RSS is the",
        "largest sum of VmRSS over the server's whole process tree, sampled every 100 ms during",
        "the measured runs.",
        "",
        *rounds_table(cells),
        *commands_section(
            [
                *server_commands(opts.servers, opts.workloads),
                "",
                *wrk_commands(opts.workloads, opts.duration_s),
            ]
        ),
    ]
    return "\n".join(lines)
